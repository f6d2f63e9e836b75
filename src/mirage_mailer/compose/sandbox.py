"""The Jinja2 environment for user templates: sandboxed, and bounded in time, size and depth.

Templates come from the project folder, which an officer edits and a CI job or a shared drive
may feed. Jinja2's sandbox stops attribute tricks (``cycler.__init__.__globals__``), but not
work: ``'x' * 10**10`` allocates ten gigabytes and ``range`` loops nest. A thread with a
timeout cannot stop CPU work in Python, so every operation that can grow or repeat checks a
budget itself: ``*``, ``**``, ``+`` and ``%`` on sizes, ``~`` joins, width arguments of filters
and string methods, loop iterations, output, and a deadline that every one of these checks.
A breach raises ``TemplateLimit`` (a ``SecurityError``) inside the template's frame, so the
error names the template and line; ``template_problem`` turns whatever a template raised into
that one ``path:line`` problem.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from pathlib import Path
from types import CodeType
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from mirage_mailer.compose import fragments as fragments_module
from mirage_mailer.compose.fragments import (
    AS_IT_IS,
    PIECE,
    FragmentCutter,
    FragmentRegistry,
    RecipientLogicError,
    RecipientValues,
    start_piece,
)
from mirage_mailer.compose.template_blocks import unclosed_block
from mirage_mailer.util import kept
from mirage_mailer.util.errors import Problem, display_path, shorten

MAX_SIZE = 1_000_000  # characters or items of one value a template computes
MAX_OUTPUT = 5_000_000  # characters of expression output in one render
MAX_SECONDS = 3.0  # one template render (a real newsletter takes milliseconds)
MAX_TOTAL_SECONDS = 8.0  # every template of one issue, all languages
MAX_LOADS = 200  # template loads ({% include %}, {% extends %}, {% import %}) in one render
MAX_INT_BITS = 256  # a template has no use for larger numbers
TICK_EVERY = 256  # loop iterations between deadline checks
_WIDTH_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})
_BIG_WIDTH = re.compile(r"\d{7,}")  # a width or precision of a million or more
_STAR_WIDTH = re.compile(r"%[^a-zA-Z%]*\*|\{[^{}]*\{")  # width taken from an argument


_PASSED = (jinja2.runtime.Context, nodes.EvalContext, jinja2.Environment)  # pass_* arguments


class TemplateLimit(SecurityError):
    """A template tried to compute or print more than a newsletter ever needs."""


def _size(value: Any) -> int:
    return len(value) if isinstance(value, str | bytes | list | tuple | dict) else 0


def _int_too_big(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and \
        abs(value).bit_length() > MAX_INT_BITS


class _BoundedCodeGenerator(CodeGenerator):
    """``a ~ b`` joins go through ``environment.bounded_join``, which checks sizes first."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        if frame.eval_ctx.volatile:
            func_name = "(markup_join if context.eval_ctx.volatile else str_join)"
        elif frame.eval_ctx.autoescape:
            func_name = "markup_join"
        else:
            func_name = "str_join"
        self.write(f"environment.bounded_join({func_name}, (")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """ImmutableSandboxedEnvironment with budgets, armed by ``render_template``; one instance
    per issue, so the issue-wide deadline covers every language."""

    intercepted_binops = frozenset({"*", "**", "+", "%", "//"})
    code_generator_class = _BoundedCodeGenerator

    def __init__(self, templates: Path, **options: Any) -> None:
        super().__init__(loader=_ConfinedLoader(templates), finalize=self._finalize,
                         **options)
        self.deadline = 0.0
        # the issue's budget counts template time only: the articles' Markdown is converted
        # between renders (bounded by ``project.article_limits``), and counted here it made
        # the next template's first check fail and take the blame
        self.seconds_left = MAX_TOTAL_SECONDS
        self.loads_left = MAX_LOADS
        self.output_left = MAX_OUTPUT
        # the budgets in force, as the limit messages name them (a piece of recipient logic
        # has its own: ``fragments``)
        self.output_limit = MAX_OUTPUT
        self.time_limit = (f"at most {MAX_SECONDS:g} seconds a template, "
                           f"{MAX_TOTAL_SECONDS:g} an issue")
        self.armed = False  # compiling a template calls some hooks on constants: no budget
        self.globals.pop("lipsum", None)  # generates text by the megabyte on request
        self.filters = {name: self._bounded_filter(name, func)
                        for name, func in self.filters.items()}
        self.filters["_mm_loop"] = self._loop
        self.filters[AS_IT_IS] = _as_it_is  # ``|safe`` on recipient logic (``fragments``)
        # pass_context: never folded into a constant when the bundle is compiled
        self.filters[PIECE] = jinja2.pass_context(
            lambda _context, index: start_piece(self, index))
        self.piece = 0  # the fragment being rendered in a ``fragments.bundle``
        self.fragments = FragmentRegistry()  # recipient logic cut out at parse time

    def render_template(self, name: str, context: dict[str, Any]) -> str:
        """Render one template with fresh budgets (compiling it first, unbudgeted)."""
        template = self.get_template(name)
        started = time.monotonic()
        self.deadline = started + min(MAX_SECONDS, self.seconds_left)
        self.output_left = self.output_limit = MAX_OUTPUT
        self.time_limit = (f"at most {MAX_SECONDS:g} seconds a template, "
                           f"{MAX_TOTAL_SECONDS:g} an issue")
        self.loads_left = MAX_LOADS
        self.armed = True
        try:
            return template.render(context)
        finally:
            self.armed = False
            self.seconds_left -= time.monotonic() - started

    # -- the budget checks ------------------------------------------------------------------

    def tick(self) -> None:
        if self.armed and time.monotonic() > self.deadline:
            raise TemplateLimit(f"rendering took too long ({self.time_limit})")

    def _refuse_size(self, size: int, what: str) -> None:
        if size > MAX_SIZE:
            raise TemplateLimit(f"{what} would be {size:,} long; a template may build at most "
                                f"{MAX_SIZE:,}")

    def _finalize(self, value: Any) -> Any:
        if not self.armed:
            return value
        self.tick()
        self.output_left -= len(value) if isinstance(value, str) else 16
        if self.output_left < 0:
            raise TemplateLimit(f"the template prints more than {self.output_limit:,} "
                                "characters")
        return value

    def _loop(self, iterable: Iterable[Any]) -> Iterator[Any]:
        """Every ``{% for %}`` iterates through here, so nested loops meet the deadline."""
        for count, item in enumerate(iterable):
            if count % TICK_EVERY == 0:
                self.tick()
            yield item

    def bounded_join(self, join: Callable[[Iterable[Any]], str], parts: tuple[Any, ...]) -> str:
        self.tick()
        self._refuse_size(sum(_size(p) for p in parts), "a joined text (~)")
        return join(parts)

    def _check_format(self, fmt: str, args: Iterable[Any]) -> None:
        values = list(args)
        if _BIG_WIDTH.search(fmt) or (_STAR_WIDTH.search(fmt)
                                      and any(isinstance(v, int) and abs(v) > MAX_SIZE
                                              for v in values)):
            raise TemplateLimit("a format width of a million or more")

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any,
                   right: Any) -> Any:
        self.tick()
        if operator == "**" and isinstance(left, int) and isinstance(right, int) \
                and abs(left) > 1 and right > 0 \
                and right * abs(left).bit_length() > MAX_INT_BITS:
            raise TemplateLimit(f"a number larger than 2**{MAX_INT_BITS}")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(times, int) and isinstance(seq, str | list | tuple):
                    self._refuse_size(len(seq) * max(times, 0), "a repeated value (*)")
            if isinstance(left, int) and isinstance(right, int) \
                    and abs(left).bit_length() + abs(right).bit_length() > MAX_INT_BITS:
                raise TemplateLimit(f"a number larger than 2**{MAX_INT_BITS}")
        if operator == "+" and isinstance(left, str | list | tuple):
            self._refuse_size(_size(left) + _size(right), "a joined value (+)")
        if operator == "%" and isinstance(left, str):
            self._check_format(left, right if isinstance(right, tuple | list) else (right,))
        result = super().call_binop(context, operator, left, right)
        if _int_too_big(result):
            raise TemplateLimit(f"a number larger than 2**{MAX_INT_BITS}")
        return result

    def call(__self, __context: jinja2.runtime.Context, __obj: Any,
             *args: Any, **kwargs: Any) -> Any:
        __self.tick()
        method = getattr(__obj, "__wrapped__", __obj)  # the sandbox wraps str.format
        owner = getattr(method, "__self__", None)
        name = getattr(method, "__name__", "")
        if isinstance(owner, str):
            if name in _WIDTH_METHODS and any(isinstance(a, int) and a > MAX_SIZE
                                              for a in (*args, *kwargs.values())):
                raise TemplateLimit("a text width of a million or more")
            if name in ("format", "format_map"):
                __self._check_format(owner, (*args, *kwargs.values()))
            if name == "join" and args:
                items = list(args[0])
                __self._refuse_size(sum(_size(i) for i in items)
                                    + len(owner) * len(items), "a joined text")
                args = (items, *args[1:])
            if name == "replace" and len(args) >= 2:
                __self._refuse_size(_replaced_size(owner, args[0], args[1]), "a replaced text")
        return super().call(__context, __obj, *args, **kwargs)

    def get_template(self, name: str | jinja2.Template, parent: str | None = None,
                     globals: MutableMapping[str, Any] | None = None) -> jinja2.Template:
        """Includes load at render time: a template that includes itself stops here."""
        if self.armed:
            self.tick()
            self.loads_left -= 1
            if self.loads_left < 0:
                raise TemplateLimit(f"more than {MAX_LOADS} includes in one render; does a "
                                    "template include itself?")
        return super().get_template(name, parent, globals)

    def getattr(self, obj: Any, attribute: str) -> Any:
        self.tick()
        if type(obj) is RecipientValues:  # a reader's own strings: nothing to guard, and
            return obj.lookup(attribute, self)  # the sandbox's checks cost most of a fragment
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        self.tick()
        if type(obj) is RecipientValues and isinstance(argument, str):
            return obj.lookup(argument, self)
        return super().getitem(obj, argument)

    def _bounded_filter(self, name: str, func: Callable[..., Any]) -> Callable[..., Any]:
        """Filters are called directly by compiled code: wrap each with the same checks."""
        def bounded(*args: Any, **kwargs: Any) -> Any:
            self.tick()
            values = [a for a in (*args, *kwargs.values())
                      if not isinstance(a, _PASSED)]
            rest = values[1:]  # the piped value itself may be any size it already is
            if name == "format" and values and isinstance(values[0], str):
                self._check_format(values[0], rest)
            elif name == "replace" and len(values) >= 3 and isinstance(values[0], str):
                self._refuse_size(_replaced_size(values[0], values[1], values[2]),
                                  "a replaced text")
            elif name == "join" and values and not isinstance(values[0], str):
                at = next(i for i, a in enumerate(args) if not isinstance(a, _PASSED))
                items = list(values[0])  # maybe a generator (map): pass on what was counted
                args = (*args[:at], items, *args[at + 1:])
                sep = values[1] if len(values) > 1 and isinstance(values[1], str) else ""
                by_attribute = "attribute" in kwargs or len(values) > 2
                texts = 0 if by_attribute else sum(len(str(i)) for i in items[:MAX_SIZE])
                self._refuse_size(texts + len(sep) * len(items), "a joined text")
            elif name == "indent" and values and isinstance(values[0], str):
                width = values[1] if len(values) > 1 else 4
                per_line = width if isinstance(width, int) else _size(width)
                self._refuse_size(len(values[0]) + per_line * (values[0].count("\n") + 1),
                                  "an indented text")
            elif any(isinstance(a, int) and not isinstance(a, bool) and abs(a) > MAX_SIZE
                     for a in rest):
                raise TemplateLimit(f"filter '{name}' given a number of a million or more")
            return func(*args, **kwargs)

        for marker in ("jinja_pass_arg",):
            if hasattr(func, marker):
                setattr(bounded, marker, getattr(func, marker))
        bounded.__name__ = getattr(func, "__name__", name)
        return bounded

    # -- compiled templates, kept ----------------------------------------------------------

    def compile(self, source: Any, name: str | None = None, filename: str | None = None,
                raw: bool = False, defer_init: bool = False) -> Any:
        """A template's text compiles to the same code every run: it is kept by that text
        (``util.kept``), unless parsing it cut recipient logic out (the fragments it
        registers are this environment's, so such a template is compiled each time)."""
        if not isinstance(source, str) or raw or defer_init:
            return super().compile(source, name, filename, raw,  # type: ignore[call-overload]
                                   defer_init)
        key = (source, name or "", self._compile_settings(name))
        code = COMPILED.find(key)
        if code is not None:
            wanted = filename or "<template>"
            return code if code.co_filename == wanted else _refiled(code, wanted)
        before = len(self.fragments.fragments)
        code = super().compile(source, name, filename)
        if len(self.fragments.fragments) == before:  # no recipient logic cut out
            COMPILED.put(key, code)
        return code

    def _compile_settings(self, name: str | None) -> str:
        """What besides the text and name shapes the compiled code: the syntax options,
        the sandbox's intercepted operators, and which filters and tests exist and what
        they are passed (the code generator reads those)."""
        autoescape = self.autoescape(name) if callable(self.autoescape) else self.autoescape
        return repr((
            self.block_start_string, self.block_end_string, self.variable_start_string,
            self.variable_end_string, self.comment_start_string, self.comment_end_string,
            self.line_statement_prefix, self.line_comment_prefix, self.trim_blocks,
            self.lstrip_blocks, self.newline_sequence, self.keep_trailing_newline,
            self.optimized, self.is_async, sorted(self.extensions), bool(autoescape),
            sorted(self.intercepted_binops), sorted(self.intercepted_unops),
            sorted((n, _passed(f)) for n, f in self.filters.items()),
            sorted((n, _passed(f)) for n, f in self.tests.items()),
            _passed(self.finalize) if self.finalize else None))

    # -- every for loop ticks ---------------------------------------------------------------

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):
            loop.iter = nodes.Filter(loop.iter, "_mm_loop", [], [], None, None,
                                     lineno=loop.iter.lineno)
        return FragmentCutter(self, self.fragments, name, filename).cut(tree)


def _passed(function: Any) -> str:
    """What jinja2 passes a filter, test or finalize first (``pass_context``...): the code
    generator reads it."""
    return str(getattr(function, "jinja_pass_arg", None))


def _refiled(code: CodeType, filename: str) -> CodeType:
    """``code`` as compiled from ``filename`` (a traceback names the template file)."""
    consts = tuple(_refiled(c, filename) if isinstance(c, CodeType) else c
                   for c in code.co_consts)
    return code.replace(co_filename=filename, co_consts=consts)


def _code_valid(value: Any) -> bool:
    return isinstance(value, CodeType)


# jinja2's parse and code generation of the sample's four templates cost some 30 ms a run;
# the code generator is jinja2's with this module's and ``fragments``' changes. About 15 KB
# a template: 40 keep a project's templates through a few edits (past that, the last run's).
COMPILED = kept.kind("jinja-code", kept.library_stamp(jinja2, sys.modules[__name__],
                                                      fragments_module), _code_valid, 40)


def _as_it_is(value: Any) -> Any:
    return value


def _replaced_size(text: str, old: Any, new: Any) -> int:
    if not isinstance(old, str) or not isinstance(new, str):
        return len(text)
    count = len(text) + 1 if old == "" else text.count(old)
    return len(text) + count * max(len(new) - len(old), 0)


class _ConfinedLoader(jinja2.FileSystemLoader):
    """Templates (and their includes) must lie in the templates folder, symlinks resolved."""

    def __init__(self, folder: Path) -> None:
        super().__init__(str(folder))
        self.folder = folder

    def get_source(self, environment: jinja2.Environment,
                   template: str) -> tuple[str, str, Callable[[], bool]]:
        try:
            source, filename, uptodate = super().get_source(environment, template)
        except UnicodeDecodeError as exc:
            path = self.folder / template
            line = exc.object[: exc.start].count(b"\n") + 1
            raise jinja2.TemplateSyntaxError("template is not valid UTF-8", line, template,
                                             str(path)) from None
        try:
            confined = Path(filename).resolve().is_relative_to(
                self.folder.resolve())
        except (OSError, RuntimeError, ValueError):
            confined = False
        if not confined:
            raise TemplateLimit(f"template '{template}' is a link to a file outside the "
                                "templates folder")
        if len(source) > MAX_SIZE:
            raise TemplateLimit(f"template '{template}' is longer than {MAX_SIZE:,} characters")
        return source, filename, uptodate


def template_problem(exc: Exception, templates: Path, main_template: str) -> Problem:
    """Point at the template file and line, whatever Jinja2 raised."""
    if isinstance(exc, RecipientLogicError):
        path = exc.filename or str(templates / (exc.name or main_template))
        return Problem(display_path(path), exc.lineno, exc.message or "", exc.hint)
    if isinstance(exc, jinja2.TemplateSyntaxError):
        path = exc.filename or str(templates / (exc.name or main_template))
        if exc.message == "template is not valid UTF-8":
            return Problem(display_path(path), exc.lineno, exc.message, "save it as UTF-8")
        opening = _opening_line(exc, path)
        if opening is not None:  # an unclosed {% if %} is fixed where it opens, not at the end
            return Problem(display_path(path), opening[0], opening[1])
        return Problem(display_path(path), exc.lineno, f"template syntax error: {exc.message}")
    if isinstance(exc, jinja2.TemplateNotFound):
        return Problem(display_path(templates / str(exc.name)), None, "template not found",
                       "restore it from 'mirage-mailer init' or fix the include")
    where = template_frame(exc)
    message = shorten(str(exc) or type(exc).__name__, 300)
    if isinstance(exc, jinja2.UndefinedError):
        message = f"undefined template variable: {message}"
        hint = ("fix the name, or define it; see docs/guide/templates.md for the variables "
                "templates get")
    elif isinstance(exc, SecurityError):
        message = f"template not allowed: {message}"
        hint = "templates run in a sandbox; see docs/guide/templates.md, 'The sandbox'"
    elif isinstance(exc, RecursionError):
        message = "a macro or include calls itself without end"
        hint = "make the recursion stop"
    else:
        message = f"template error: {type(exc).__name__}: {message}"
        hint = "check the template"
    if where:
        return Problem(display_path(where[0]), where[1], message, hint)
    return Problem(display_path(templates / main_template), None, message, hint)


def _opening_line(exc: jinja2.TemplateSyntaxError, path: str) -> tuple[int, str] | None:
    source = exc.source
    if source is None:
        try:
            source = Path(path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
    return unclosed_block(source, exc.message or "")


def template_frame(exc: BaseException) -> tuple[str, int] | None:
    """The innermost template file and line in ``exc``'s traceback, if any."""
    tb = exc.__traceback__
    where: tuple[str, int] | None = None
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if name.endswith(".j2"):
            where = (name, tb.tb_lineno)
        tb = tb.tb_next
    return where
