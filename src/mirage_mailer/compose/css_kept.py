"""premailer's CSS work on the template's own text, kept from one run to the next (``util.kept``).

The first ``inline_css`` of a process cost about 70 ms of the 170 ms a send spent rendering
the sample's two languages: cssutils parsing the ``<style>`` block into premailer's rules and
the leftover media queries, then each rule's declarations and each matched element's own
``style`` into name/value pairs. Those results are strings derived from the template's text
alone (the issue's articles carry no CSS: ``render.markdown_to_html`` drops ``style``), the
same every run and every issue, so they are kept by that text, with the versions of premailer
and cssutils that computed them. A kept result is exactly what premailer computed: the
leftover rules as the text premailer itself wrote into the ``<style>`` element.
"""

from __future__ import annotations

from typing import Any

import cssutils
import premailer
import premailer.merge_style
import premailer.premailer
from premailer import Premailer

from mirage_mailer.util import kept


def _rules_valid(value: Any) -> bool:
    if not (isinstance(value, tuple) and len(value) == 3 and isinstance(value[0], list)
            and isinstance(value[1], str) and isinstance(value[2], bool)):
        return False
    return all(isinstance(rule, tuple) and len(rule) == 3 and isinstance(rule[0], tuple)
               and all(type(n) is int for n in rule[0])
               and isinstance(rule[1], str) and isinstance(rule[2], str) for rule in value[0])


def _pairs_valid(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(pair, tuple) and len(pair) == 2
        and isinstance(pair[0], str) and isinstance(pair[1], str) for pair in value)


VERSION = kept.library_stamp(premailer, cssutils)
RULES = kept.kind("premailer-rules", VERSION, _rules_valid, 40)  # a stylesheet each
PAIRS = kept.kind("premailer-pairs", VERSION, _pairs_valid)
# an image's ``float`` by its style text (``render._align_floats``): otherwise the one
# cssutils parse of a warm run, which pays cssutils' first-parse set-up
FLOATS = kept.kind("image-float", VERSION, lambda value: isinstance(value, str))


class LeftoverText(str):
    """The leftover rules of one ``<style>`` block, already written as premailer writes them."""


class KeptPremailer(Premailer):  # type: ignore[misc]
    """premailer, with each ``<style>`` block's rules and leftover text kept by its text.

    Only for the options ``render.inline_css`` passes (the key holds the ones that change
    the rules); ``_parse_style_rules`` and ``_css_rules_to_string`` are premailer's own
    steps, which ``transform`` calls once per ``<style>`` element, in that order."""

    def _parse_style_rules(self, css_body: str, ruleset_index: int) -> tuple[list[Any], list[Any]]:
        if not css_body:
            return super()._parse_style_rules(css_body, ruleset_index)  # type: ignore[no-any-return]
        key = (css_body, ruleset_index, bool(self.disable_validation),
               bool(self.strip_important), bool(self.exclude_pseudoclasses),
               bool(self.include_star_selectors))

        def compute() -> tuple[list[Any], str, bool]:
            rules, leftover = super(KeptPremailer, self)._parse_style_rules(
                css_body, ruleset_index)
            return rules, super(KeptPremailer, self)._css_rules_to_string(leftover), \
                bool(leftover)

        rules, text, any_left = RULES.get(key, compute)
        return list(rules), [LeftoverText(text)] if any_left else []

    def _css_rules_to_string(self, rules: list[Any]) -> str:
        if len(rules) == 1 and isinstance(rules[0], LeftoverText):
            return str(rules[0])
        return super()._css_rules_to_string(rules)  # type: ignore[no-any-return]


_own_pairs = premailer.merge_style.csstext_to_pairs


def kept_pairs(csstext: str, validate: bool = True) -> list[tuple[str, str]]:
    """premailer's ``csstext_to_pairs`` (a declaration block as name/value pairs), kept."""
    pairs: list[tuple[str, str]] = PAIRS.get(
        (csstext, bool(validate)),
        lambda: [tuple(pair) for pair in _own_pairs(csstext, validate=validate)])
    return pairs


# premailer calls csstext_to_pairs through these two module names (its transform and its
# merge_styles); the kept function returns what premailer's own returns for every text. Its
# own finds its lock through the module name: the lock goes along.
kept_pairs._lock = _own_pairs._lock  # type: ignore[attr-defined]
premailer.premailer.csstext_to_pairs = kept_pairs
premailer.merge_style.csstext_to_pairs = kept_pairs
