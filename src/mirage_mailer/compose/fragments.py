"""Recipient logic in templates: an ``{% if %}``, a filter or a test on a recipient field runs
once per recipient, on that recipient's values, while the newsletter around it is rendered
once per language.

A bare ``{{ recipient.name }}`` stays a plain slot (``slots``): filling it is a string join.
Anything else that computes with a recipient field (``{{ recipient.name|title }}``,
``{{ recipient.org|default("your organisation") }}``, ``{% if recipient.org %}...{% endif %}``)
would otherwise act on the slot marker, not on the value: the ``if`` is always true, the
``default`` never applies, ``|title`` turns the marker into text no one fills. So at parse time
each such piece is cut out of the template, replaced by a fragment slot
``__MM_frag_<n>__``, and compiled on its own; a message fills that slot by rendering the
fragment with the recipient's values (tens of microseconds, no Markdown or CSS pass; see
docs/design.md). Templates that only print fields keep the fast path untouched.

A fragment is rendered outside the CSS inlining, so in an HTML template it may hold text
only, and it sees the template's top-level variables, not a loop's or a macro's: both are
refused where the template is parsed, with the line and the fix.

List values are hostile (a public sign-up form feeds them). In an HTML template a reader's
value is always escaped: ``|safe`` in a fragment leaves its value as it is (escaped when
printed, as a plain slot would be), and ``{% autoescape %}`` or markup in a fragment's own
text is refused. A value never stops a run: marker text in it is the reader's own text (a
fragment's output is inserted as it is, never scanned for slots), and each fragment's output
budget grows with the reader's values, so only the template's own output can exceed it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import jinja2
from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.meta import find_undeclared_variables
from jinja2.utils import pass_eval_context

from mirage_mailer.compose.slots import (
    BUILTIN,
    FRAGMENT_PREFIX,
    MARKER_TEXT,
    RECIPIENT,
    Blank,
    field_slot,
    leftover_markers,
    split_slots,
)
from mirage_mailer.util.errors import InputError, Problem, display_path, shorten

if TYPE_CHECKING:
    from mirage_mailer.compose.sandbox import BoundedSandbox

# what a template sees at its top level (render.py builds it), besides the globals
TOP_LEVEL = frozenset({"lang", "t", "project", "issue", "articles", "disclaimer", RECIPIENT,
                       "unsubscribe_url", "view_online_url"})
_NO_INCLUDE = (nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends, nodes.Macro,
               nodes.CallBlock, nodes.Block)
SEPARATOR = "\x00"  # between fragments in ``bundle``: list values never hold it (headersafe)
FRAGMENT_SECONDS = 1.0  # one fragment for one reader (it takes microseconds)
FRAGMENT_OUTPUT = 100_000  # characters one fragment may print for one reader, plus:
VALUE_TIMES = 10  # times the reader's own values (a 40,000-character cell printed is fine)
_TAG = re.compile(r"<[A-Za-z!/?]")  # markup in a fragment's literal text
AS_IT_IS = "_mm_value"  # what ``|safe`` becomes in a fragment of an HTML template
PIECE = "_mm_piece"  # filter that opens the next fragment's budget in ``bundle``
HINT_TAGS = ("keep the HTML tags outside: <p>{% if recipient.x %}text{% else %}other"
             "{% endif %}</p>")


class RecipientLogicError(jinja2.TemplateSyntaxError):
    """A piece of recipient logic that cannot run per recipient; ``hint`` says what to do."""

    def __init__(self, message: str, hint: str, lineno: int, name: str | None,
                 filename: str | None) -> None:
        super().__init__(message, lineno, name, filename)
        self.hint = hint


@dataclass(frozen=True)
class Fragment:
    """One cut-out piece: its compiled template, and where it came from."""

    node: nodes.Node  # the statement or output cut out (for ``bundle``)
    template: jinja2.Template  # the node alone: names the line when the bundle fails
    filename: str | None
    line: int
    html: bool  # rendered with autoescape: its output is HTML already, filled as it is
    fields: frozenset[str]  # recipient fields it names ('' when it looks one up by a variable)


@dataclass
class FragmentRegistry:
    """Every fragment of one template environment, by slot name."""

    fragments: dict[str, Fragment] = field(default_factory=dict)

    def add(self, fragment: Fragment) -> str:
        name = f"{FRAGMENT_PREFIX}{len(self.fragments) + 1}"
        self.fragments[name] = fragment
        return name


def _is_recipient(node: nodes.Node) -> bool:
    return isinstance(node, nodes.Name) and node.name == RECIPIENT


def plain_field(node: nodes.Node) -> bool:
    """``recipient.x`` or ``recipient['x']``: printed as it is, a plain slot does."""
    if isinstance(node, nodes.Getattr):
        return _is_recipient(node.node)
    if isinstance(node, nodes.Getitem):
        return (_is_recipient(node.node) and isinstance(node.arg, nodes.Const)
                and isinstance(node.arg.value, str))
    return False


def uses_recipient(node: nodes.Node) -> bool:
    return _is_recipient(node) or any(_is_recipient(n) for n in node.find_all(nodes.Name))


def fields_named(node: nodes.Node) -> frozenset[str]:
    """The recipient fields ``node`` names; '' stands for a lookup by a variable."""
    names: set[str] = set()
    for sub in (node, *node.find_all((nodes.Getattr, nodes.Getitem, nodes.Name))):
        if isinstance(sub, nodes.Getattr | nodes.Getitem) and _is_recipient(sub.node):
            if isinstance(sub, nodes.Getattr):
                names.add(sub.attr)
            else:
                key = sub.arg
                names.add(key.value if isinstance(key, nodes.Const) and plain_field(sub)
                          else "")
    return frozenset(names)


def _own_expressions(node: nodes.Node) -> Iterator[nodes.Node]:
    """The expressions a statement evaluates itself (an ``if``'s tests, a loop's iterable),
    not those of the statements in its body."""
    for name in node.fields:
        value = getattr(node, name, None)
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, nodes.Expr):
                yield item
            elif isinstance(item, nodes.If) and isinstance(node, nodes.If):
                yield from _own_expressions(item)  # an elif's test decides with the if's


class FragmentCutter:
    """Cuts the recipient logic out of one parsed template (see the module doc)."""

    def __init__(self, env: BoundedSandbox, registry: FragmentRegistry, name: str | None,
                 filename: str | None) -> None:
        self.env = env
        self.registry = registry
        self.name = name
        self.filename = filename
        autoescape = env.autoescape
        self.html = bool(autoescape(name) if callable(autoescape) else autoescape)

    def cut(self, tree: nodes.Template) -> nodes.Template:
        tree.body = self._body(tree.body)
        return tree

    def _body(self, body: list[nodes.Node]) -> list[nodes.Node]:
        out: list[nodes.Node] = []
        for node in body:
            if isinstance(node, nodes.Output):
                node.nodes = [self._output_item(item) for item in node.nodes]
                out.append(node)
            elif isinstance(node, nodes.Assign) and plain_field(node.node):
                out.append(node)  # {% set who = recipient.name %}: the slot, printed later
            elif any(uses_recipient(e) for e in _own_expressions(node)) or (
                    isinstance(node, nodes.FilterBlock) and uses_recipient(node)):
                # ({% filter upper %} changes what its body prints: a field in it too)
                out.append(nodes.Output([self._marker(node)], lineno=node.lineno))
            else:
                for name in node.fields:
                    value = getattr(node, name, None)
                    if isinstance(value, list) and value and isinstance(value[0], nodes.Stmt):
                        setattr(node, name, self._body(value))
                out.append(node)
        return out

    def _output_item(self, item: nodes.Expr) -> nodes.Expr:
        if isinstance(item, nodes.TemplateData) or plain_field(item) or not uses_recipient(item):
            return item
        return self._marker(nodes.Output([item], lineno=item.lineno))

    def _marker(self, node: nodes.Node) -> nodes.Expr:
        self._refuse(node)
        piece = nodes.Template([node], lineno=node.lineno)
        piece.set_environment(self.env)
        code = self.env.compile(piece, self.name, self.filename)
        template = self.env.template_class.from_code(self.env, code, self.env.globals, None)
        slot = self.registry.add(Fragment(node, template, self.filename, node.lineno,
                                          self.html, fields_named(node)))
        return nodes.MarkSafe(nodes.Const(f"__MM_{slot}__"), lineno=node.lineno)

    def _refuse(self, node: nodes.Node) -> None:
        """A piece that cannot run on its own, per recipient, stops here with the fix."""
        what = _what(node)
        if isinstance(node, nodes.Assign | nodes.AssignBlock):
            self._error(node, f"{what} stores a recipient field in a variable; the newsletter "
                        "is rendered once for all readers",
                        "use the recipient field where it is printed, e.g. "
                        "{{ recipient.name|title }}")
        inner = next(node.find_all(_NO_INCLUDE), None)
        if isinstance(node, _NO_INCLUDE) or inner is not None:
            self._error(node, f"{what} on a recipient field holds an include, import, macro "
                        "or block", "keep the include outside the {% if %}, or print the "
                        "field plainly")
        literals = [*(d.data for d in node.find_all(nodes.TemplateData)),
                    *(c.value for c in node.find_all(nodes.Const) if isinstance(c.value, str))]
        if any(MARKER_TEXT.search(text) for text in literals):
            self._error(node, f"{what} on a recipient field holds the internal marker text "
                        "__MM_", "print recipient fields as {{ recipient.x }}")
        if self.html:
            if any("<" in d.data for d in node.find_all(nodes.TemplateData)) or any(
                    _TAG.search(text) for text in literals):
                self._error(node, f"{what} on a recipient field holds HTML tags, which "
                            "would miss the CSS inlining done once for all readers (and "
                            "bypass the checks on the newsletter, such as no <script>)",
                            HINT_TAGS)
            if isinstance(node, nodes.ScopedEvalContextModifier | nodes.EvalContextModifier) \
                    or next(node.find_all((nodes.ScopedEvalContextModifier,
                                           nodes.EvalContextModifier)), None) is not None:
                self._error(node, f"{what} on a recipient field holds an {{% autoescape %}}: "
                            "a reader's value is always escaped in the HTML part",
                            "remove the {% autoescape %} around it")
            for call in node.find_all(nodes.Filter):  # a list value is never markup: it
                if call.name == "safe":  # stays as it is, escaped when printed
                    call.name = AS_IT_IS
                elif call.name == "map" and call.args and isinstance(call.args[0], nodes.Const) \
                        and call.args[0].value == "safe":
                    call.args[0] = nodes.Const(AS_IT_IS, lineno=call.lineno)
        piece = nodes.Template([node])
        piece.set_environment(self.env)
        outside = sorted(find_undeclared_variables(piece) - TOP_LEVEL - set(self.env.globals))
        if outside:
            self._error(node, f"{what} on a recipient field uses '{outside[0]}', which the "
                        "template sets itself (a loop, macro or {% set %} variable); recipient "
                        "logic runs on its own for each reader",
                        "move the recipient test outside the loop, or use only top-level "
                        "variables (issue, project, t, lang) in it")

    def _error(self, node: nodes.Node, message: str, hint: str) -> None:
        raise RecipientLogicError(message, hint, node.lineno, self.name, self.filename)


def _what(node: nodes.Node) -> str:
    if isinstance(node, nodes.Output):
        return "an expression"
    return "{% " + type(node).__name__.lower().replace("assignblock", "set") \
        .replace("assign", "set").replace("filterblock", "filter") + " %}"


class RecipientValues:
    """What a fragment sees as ``recipient``: the reader's own values. An empty value is
    ``Blank``, which ``default`` treats as missing (a spreadsheet's empty cell)."""

    __slots__ = ("_fields", "_values")
    _mm_recipient = True

    def __init__(self, values: Mapping[str, str], fields: frozenset[str]) -> None:
        self._values = values
        self._fields = fields

    def __repr__(self) -> str:
        return "recipient"

    def __getattr__(self, name: str) -> str:
        if name.startswith("_"):
            raise AttributeError(name)
        if name in ("email", "name", "greeting"):
            key = name
        elif name in self._fields:
            key = field_slot(name)
        else:
            raise AttributeError(name)
        value = self._values.get(key, "")
        return value if value else Blank()

    def __getitem__(self, name: str) -> str:
        try:
            return self.__getattr__(name)
        except AttributeError:
            raise KeyError(name) from None

    def lookup(self, name: str, env: jinja2.Environment) -> Any:
        """``recipient.name`` in a fragment: the value, or an undefined naming the field."""
        try:
            return self.__getattr__(name)
        except AttributeError:
            return env.undefined(obj=self, name=name)


@pass_eval_context
def default_filter(eval_ctx: nodes.EvalContext, value: Any, default_value: Any = "",
                   boolean: bool = False) -> Any:
    """Jinja2's ``default``, which also applies to an empty recipient field."""
    del eval_ctx
    if isinstance(value, jinja2.Undefined | Blank) or (boolean and not value):
        return default_value
    return value


def bundle(env: BoundedSandbox, fragments: Iterable[Fragment]) -> jinja2.Template:
    """One template that prints every fragment, ``SEPARATOR`` between them, each with its
    own template's autoescape: one render per message instead of one per fragment (a Jinja2
    render costs some 40 µs whatever it prints). Each fragment opens with ``start_piece``,
    which gives it its own budgets and tells a failure which fragment it was."""
    body: list[nodes.Node] = []
    for n, fragment in enumerate(fragments):
        if n:
            body.append(nodes.Output([nodes.TemplateData(SEPARATOR)]))
        body.append(nodes.Output([nodes.Filter(nodes.Const(n), PIECE, [], [], None, None)]))
        body.append(nodes.ScopedEvalContextModifier(
            [nodes.Keyword("autoescape", nodes.Const(fragment.html))], [fragment.node]))
    tree = nodes.Template(body)
    tree.set_environment(env)
    return env.from_string(tree)


@dataclass(frozen=True)
class LanguageFragments:
    """The fragments one language's output holds, and what they need to run per reader."""

    env: BoundedSandbox
    context: Mapping[str, Any]  # the language's top-level template variables
    fragments: Mapping[str, Fragment]
    fields: frozenset[str]  # the list columns templates may use
    together: jinja2.Template  # ``bundle`` of ``fragments``, in their order

    @classmethod
    def bind(cls, env: BoundedSandbox, context: Mapping[str, Any],
             fragments: Mapping[str, Fragment], fields: frozenset[str]) -> LanguageFragments:
        return cls(env, context, fragments, fields, bundle(env, fragments.values()))

    def fill(self, values: dict[str, str]) -> None:
        """Add each fragment's output for the reader whose slot values are ``values``;
        raises ``InputError`` naming the template line if one fails for this reader.

        The output is not searched for marker text: what a reader's value holds is that
        reader's text (``bind_fragments`` checks what the template itself prints)."""
        try:
            outs = self._render(self.together, values).split(SEPARATOR)
        except Exception as exc:  # filters and tests on a reader's value raise anything
            failed = list(self.fragments.values())[self.env.piece]
            raise self._failure(failed, values, exc) from None
        if len(outs) != len(self.fragments):  # a fragment printed the separator (no row has it)
            for name, fragment in self.fragments.items():
                values[name] = self.run(fragment, values)
            return
        values.update(zip(self.fragments, outs, strict=True))

    def run(self, fragment: Fragment, values: Mapping[str, str]) -> str:
        """One fragment alone for the reader whose slot values are ``values``."""
        try:
            return self._render(fragment.template, values)
        except Exception as exc:  # filters and tests on a reader's value raise anything
            raise self._failure(fragment, values, exc) from None

    def _failure(self, fragment: Fragment, values: Mapping[str, str],
                 exc: Exception) -> InputError:
        who = values.get("email") or "a recipient"
        where = display_path(fragment.filename or "template")
        if isinstance(exc, SecurityError) and self.env.output_left < 0:
            return InputError(Problem(
                where, fragment.line,
                f"recipient logic prints more than {self.env.output_limit:,} characters for "
                f"{who} (a piece may print {FRAGMENT_OUTPUT:,}, plus {VALUE_TIMES} times the "
                "length of the reader's own values)",
                "print the field without a loop or repetition around it"))
        return InputError(Problem(
            where, fragment.line, f"recipient logic failed for {who}: "
            f"{type(exc).__name__}: {shorten(str(exc), 200)}",
            "make the template line work for every value of the field (an empty one too)"))

    def _render(self, template: jinja2.Template, values: Mapping[str, str]) -> str:
        env = self.env
        local = dict(self.context)
        local[RECIPIENT] = RecipientValues(values, self.fields)
        local["unsubscribe_url"] = values.get("unsubscribe_url", "")
        local["view_online_url"] = values.get("view_online_url") or None
        env.output_limit = FRAGMENT_OUTPUT + VALUE_TIMES * sum(map(len, values.values()))
        env.time_limit = f"at most {FRAGMENT_SECONDS:g} second a piece of recipient logic"
        start_piece(env, 0)
        env.armed = True
        try:
            return template.render(local)
        finally:
            env.armed = False

    @staticmethod
    def check(out: str, fragment: Fragment) -> None:
        """No marker in what ``fragment`` printed for a sample reader (values of ours)."""
        left = leftover_markers(out, ())
        if left:  # the template itself printed marker text
            raise InputError(Problem(
                display_path(fragment.filename or "template"), fragment.line,
                f"recipient logic prints the internal marker {shorten(left[0], 60)}",
                "print recipient fields as {{ recipient.x }}, not through another variable"))


def start_piece(env: BoundedSandbox, index: int) -> str:
    """Fragment ``index`` of a render starts: its own deadline and output budget."""
    env.piece = index
    env.deadline = time.monotonic() + FRAGMENT_SECONDS
    env.output_left = env.output_limit
    return ""


def bind_fragments(env: BoundedSandbox, context: Mapping[str, Any], fields: set[str],
                   parts: Mapping[str, str], slots: Iterable[str]) -> LanguageFragments | None:
    """The fragments in one language's rendered ``parts`` (template path -> output), checked
    now, so that validate says what would fail: a field no list has, a fragment that fails on
    an empty or a sample value, and any marker filling would leave (``slots``: the tracking
    slots the output may also hold). None when the language has no recipient logic."""
    names = sorted({n for part in parts.values() for n in split_slots(part)[1]
                    if n.startswith(FRAGMENT_PREFIX)})
    bound = LanguageFragments.bind(env, context, {n: env.fragments.fragments[n] for n in names},
                                   frozenset(fields))
    known = {"email", "name", "greeting"} | fields
    problems: list[Problem] = []
    for fragment in bound.fragments.values():
        for name in sorted(fragment.fields - known - {""}):
            problems.append(Problem(
                display_path(fragment.filename or "template"), fragment.line,
                f"recipient has no field '{name}' (known: {', '.join(sorted(known))})",
                "fix the name, or add the column to the list"))
    if not problems:
        sample = {field_slot(f): f"[{f}]" for f in fields} | {
            "email": "reader@example.org", "name": "Sample Reader",
            "greeting": "Dear Sample Reader,"}
        for values in ({}, sample):
            try:
                for fragment in bound.fragments.values():
                    bound.check(bound.run(fragment, values), fragment)
                bound.fill(dict(values))
            except InputError as exc:
                problems.extend(exc.problems)
    allowed = {*BUILTIN, *slots, *names, *(field_slot(f) for f in fields)}
    for path, part in parts.items():
        for marker in leftover_markers(part, allowed):
            problems.append(Problem(
                path, None, f"the rendered newsletter still holds the internal marker "
                f"'{shorten(marker, 60)}', which would reach every reader",
                "print recipient fields as {{ recipient.x }}, with any filter or test on "
                "them inside the same {{ }} or {% if %}; see docs/guide/templates.md"))
    if problems:
        raise InputError(list(dict.fromkeys(problems)))
    return bound if names else None
