"""A template must not be able to hide the EU disclaimer block (audit: a media query, a
<template>, a zero-height box and more passed validate, preview and send with exit 0).

The CLI cases run the real command in a subprocess on the scaffolded project; the catalogue
of tricks runs the checker on the sample's real rendered HTML, changed as a template would
change it and inlined again as the pipeline does.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from browser import browser
from helpers import SAMPLE_ISSUE, RunCli, edit
from mirage_mailer.compose.disclaimer import check_html
from mirage_mailer.compose.render import RenderedLanguage, inline_css
from mirage_mailer.compose.template_lines import locate
from mirage_mailer.services.loader import open_project, render
from mirage_mailer.util.errors import InputError

TEMPLATE = "templates/newsletter.html.j2"
INCLUDE = '{% include "partials/disclaimer.html.j2" %}'
HINT = ("(keep the disclaimer include and the .eu-* styles of templates/newsletter.html.j2 as "
        "'mirage-mailer init' writes them)")
BROKEN = "EU disclaimer rule broken (en HTML): "
DISCLAIMER_TABLE = re.compile(r'<table[^>]*data-mirage="eu-disclaimer".*?</table>', re.S)


def where(template: Path, text: str) -> str:
    """``templates/newsletter.html.j2:LINE``, the line of the template that holds ``text``."""
    lines = template.read_text(encoding="utf-8").splitlines()
    return f"{TEMPLATE}:{next(n for n, line in enumerate(lines, 1) if text in line)}: "


def hide_in_media_query(template: Path) -> None:
    """The audit's first reproduction, as it wrote it."""
    text = template.read_text(encoding="utf-8")
    template.write_text(text.replace(
        "</style>", "@media screen { .eu-block { display:none !important; } }</style>", 1),
        encoding="utf-8")


def test_media_query_hiding_the_block_fails_validate(project: Path, run_cli: RunCli) -> None:
    hide_in_media_query(project / TEMPLATE)
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2, result.err
    assert (f"{where(project / TEMPLATE, '@media screen {')}{BROKEN}the EU emblem is hidden "
            "(display: none in the <style> rule '.eu-block' "
            f"in @media screen) {HINT}"
            ) in result.err.splitlines()


def test_template_element_around_the_block_fails_preview(project: Path,
                                                         run_cli: RunCli) -> None:
    edit(project / TEMPLATE, INCLUDE, f"<template>{INCLUDE}</template>")
    result = run_cli("preview", SAMPLE_ISSUE)
    assert result.code == 2, result.err
    assert (f"{where(project / TEMPLATE, INCLUDE)}{BROKEN}the EU emblem is hidden (inside "
            f"<template>, which browsers and mail clients do not show) {HINT}"
            ) in result.err.splitlines()
    assert not (project / "preview").exists()


def test_zero_height_box_around_the_block_fails_send(project: Path, run_cli: RunCli) -> None:
    edit(project / TEMPLATE, INCLUDE,
         f'<div style="height:0;overflow:hidden">{INCLUDE}</div>')
    result = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert result.code == 2, result.err
    assert (f"{where(project / TEMPLATE, INCLUDE)}{BROKEN}the EU emblem is hidden (height: 0 "
            f"in the style of <div>, with overflow: hidden in the style of <div>) {HINT}"
            ) in result.err.splitlines()
    assert not list((project / "outbox").glob("*/*"))


@pytest.mark.parametrize(("preset", "extra"), [
    ("amif-2014-2020", ()), ("eu-2021-2027-direct", ("--authority", "European Commission")),
    ("eu-2021-2027-shared", ())])
def test_every_preset_init_writes_passes(tmp_path: Path, run_cli: RunCli, preset: str,
                                         extra: tuple[str, ...]) -> None:
    made = run_cli("init", str(tmp_path / "new"), "--contact", "hello@example.org",
                   "--preset", preset, *extra, cwd=tmp_path)
    assert made.code == 0, made.err
    result = run_cli("validate", SAMPLE_ISSUE, cwd=tmp_path / "new")
    assert result.code == 0, result.err
    assert "rule broken" not in result.err


def with_css(html: str, css: str) -> str:
    return html.replace("</style>", css + "</style>", 1)


def wrapped(html: str, before: str, after: str) -> str:
    found = DISCLAIMER_TABLE.search(html)
    assert found is not None
    return html[:found.start()] + before + found.group(0) + after + html[found.end():]


def checked(sample: RenderedLanguage, html: str) -> list[str]:
    return check_html(inline_css(html), sample.block, sample.emblem_src)


def test_the_untouched_sample_passes(rendered: RenderedLanguage) -> None:
    assert checked(rendered, rendered.html) == []


TABLE = 'table[data-mirage="eu-disclaimer"]'


@pytest.mark.parametrize(("css", "said"), [
    (".eu-block { visibility: hidden }", "visibility: hidden"),
    (".eu-block { opacity: 0.01 }", "opacity: 0.01"),
    (f"{TABLE} {{ height: 0; overflow: hidden }}", "height: 0"),
    (f"{TABLE} {{ max-height: 0 }}", "max-height: 0"),
    (f"{TABLE} {{ width: 0; overflow: hidden }}", "width: 0"),
    (f"{TABLE} {{ max-width: 0; overflow: hidden }}", "max-width: 0"),
    (f"{TABLE} {{ line-height: 0; overflow: hidden }}", "line-height: 0"),
    (f"{TABLE} {{ transform: scale(0) }}", "transform: scale(0)"),
    (f"{TABLE} {{ transform: scaleX(0) }}", "transform: scalex(0)"),
    (f"{TABLE} {{ transform: scaleY(0) }}", "transform: scaley(0)"),
    (f"{TABLE} {{ transform: matrix(0, 0, 0, 0, 0, 0) }}", "transform: matrix"),
    (f"{TABLE} {{ transform: translateX(-9999px) }}", "translatex(-9999px)"),
    (f"{TABLE} {{ clip-path: inset(50%) }}", "clip-path: inset(50%)"),
    (f"{TABLE} {{ clip-path: circle(0) }}", "clip-path: circle(0)"),
    (f"{TABLE} {{ position: absolute; clip: rect(0, 0, 0, 0) }}", "clip: rect(0, 0, 0, 0)"),
    (f"{TABLE} {{ position: absolute; clip: rect(0 0 0 0) }}", "clip: rect(0 0 0 0)"),
    (f"{TABLE} {{ position: absolute; left: -9999px }}", "left: -9999px"),
    (f"{TABLE} {{ position: absolute; top: -9999px }}", "top: -9999px"),
    (f"{TABLE} {{ position: fixed; right: 9999px }}", "right: 9999px"),
    (f"{TABLE} {{ position: absolute; bottom: 9999px }}", "bottom: 9999px"),
    (f"{TABLE} {{ margin-top: -9999px }}", "margin-top: -9999px"),
    (f"{TABLE} {{ text-indent: -9999px }}", "text-indent: -9999px"),
    (f"{TABLE} {{ content-visibility: hidden }}", "content-visibility: hidden"),
    (f"{TABLE} {{ filter: opacity(0) }}", "filter: opacity(0)"),
    (".eu-statement { color: transparent }", "color: transparent"),
    (".eu-text { color: rgba(0, 0, 0, 0) }", "color: rgba(0, 0, 0, 0)"),
    (".eu-emblem { width: 0 }", "width: 0"),
    (".eu-text { font-size: 4px }", "4px type"),
    (".eu-text::first-line { font-size: 1px }", "1px type"),
    ("@supports (display: grid) { td { display: none } }", "display: none"),
    (":dir(ltr) td { display: none }", "a selector mirage-mailer cannot read"),
    (":root { --gone: none } .eu-block { display: var(--gone) }", "where var(--gone) may give"),
    (".eu-block { opacity: var(--unset, 0) }", "opacity: 0"),
    (f"{TABLE} {{ block-size: 0; overflow: hidden }}", "block-size: 0"),
    (f"{TABLE} {{ contain: strict; overflow: hidden }}", "contain: strict"),
    (".eu-emblem { content: url(https://example.org/other.png) }", "content: url("),
    (".eu-text { font: bold 2px/1 Arial }", "2px type"),
    (".eu-text { color: hsla(0, 0%, 0%, 0.05) }", "color: hsla(0, 0%, 0%, 0.05)"),
    ("@keyframes gone { to { opacity: 0 } } .eu-block { animation: gone 1s forwards }",
     "opacity: 0 in @keyframes gone"),
])
def test_a_media_query_cannot_hide_the_block(rendered: RenderedLanguage, css: str,
                                             said: str) -> None:
    """Each rule inside a media query: premailer leaves it in the <style> block."""
    broken = checked(rendered, with_css(rendered.html, f"@media screen {{ {css} }}"))
    assert any(said in rule for rule in broken), broken
    assert all(rule.startswith(("the EU emblem is ", "the funding statement is ",
                                "the disclaimer text is ", "the funding statement's colour"))
               for rule in broken), broken


@pytest.mark.parametrize(("before", "after", "said"), [
    ("<template>", "</template>", "inside <template>"),
    ("<noscript>", "</noscript>", "inside <noscript>"),
    ("<details><summary>More</summary>", "</details>", "inside a closed <details>"),
    ("<div hidden>", "</div>", "the hidden attribute of <div>"),
    ('<div style="height:0;overflow:hidden">', "</div>", "height: 0"),
    ('<div style="transform:scale(0)">', "</div>", "transform: scale(0)"),
    ('<div style="position:absolute;left:-9999px">', "</div>", "left: -9999px"),
    ('<div style="clip-path:inset(50%)">', "</div>", "clip-path: inset(50%)"),
    ('<div style="max-width:0;overflow:hidden">', "</div>", "max-width: 0"),
    ('<div style="margin-top:-9999px">', "</div>", "margin-top: -9999px"),
    ('<div style="text-indent:-9999px">', "</div>", "text-indent: -9999px"),
    ("<!--", "-->", "the EU emblem image (cid:eu-emblem@mirage-mailer) is missing"),
    ('<div style="display:/* a comment */none">', "</div>", "display: none"),
    ('<div style="scale: 0">', "</div>", "scale: 0"),
    ('<div style="translate: -9999px 0">', "</div>", "translate: -9999px 0"),
])
def test_a_wrapper_cannot_hide_the_block(rendered: RenderedLanguage, before: str, after: str,
                                         said: str) -> None:
    broken = checked(rendered, wrapped(rendered.html, before, after))
    assert any(said in rule for rule in broken), broken


@pytest.mark.parametrize("css", [
    "@media screen { .preheader { display: none } .masthead { display: none } }",
    "@media screen { .footer { font-size: 1px; color: transparent } }",
    "@media screen { .eu-statement { color: rgb(0, 0, 0) } .eu-text { color: hsl(0, 0%, 0%) } }",
    "@media screen { @keyframes gone { to { opacity: 0 } } .footer { animation-name: gone } }",
    "@media screen { u + .body .eu-block { display: none } }",  # no <u> before the body
    "@media screen { .eu-block:hover { padding: 0 } .eu-block::before { display: none } }",
    f"@media screen {{ {TABLE} {{ height: 0 }} }}",  # content overflows a box it does not clip
    f"@media screen {{ {TABLE} {{ position: relative; left: 10px; transform: scale(1.2) }} }}",
])
def test_rules_that_hide_nothing_of_the_block_pass(rendered: RenderedLanguage,
                                                   css: str) -> None:
    assert checked(rendered, with_css(rendered.html, css)) == []


@pytest.mark.parametrize(("css", "rule"), [
    (".eu-statement { color: red }", "the funding statement's colour (red) must be reflex blue"),
    (".eu-statement { font-family: 'Comic Sans MS' }", "the funding statement's font ("),
])
def test_a_media_query_cannot_restyle_the_statement(rendered: RenderedLanguage, css: str,
                                                    rule: str) -> None:
    broken = checked(rendered, with_css(rendered.html, f"@media screen {{ {css} }}"))
    assert [b for b in broken if b.startswith(rule)], broken


def test_a_stylesheet_the_check_cannot_read_is_refused(rendered: RenderedLanguage) -> None:
    html = rendered.html.replace(
        "</head>", '<link rel="stylesheet" href="data:text/css,.eu-block{display:none}"></head>')
    assert checked(rendered, html) == [
        'the HTML loads a stylesheet (<link rel="stylesheet">) whose rules could hide the block '
        "unchecked; put them in the <style> block"]


def test_the_summary_of_a_closed_details_shows(rendered: RenderedLanguage) -> None:
    html = wrapped(rendered.html, "<details><summary>", "</summary></details>")
    assert checked(rendered, html) == []
    assert checked(rendered, wrapped(rendered.html, "<details open>", "</details>")) == []


# What the checker refuses is hidden in a real browser: the statement's text is not on
# screen where a reader could see it (no area, off the page, or clipped so that the point
# at its centre belongs to something else). The untouched sample is the control.
SEEN = """() => {
  const cell = document.querySelector('[data-mirage="eu-disclaimer"] .eu-statement');
  if (!cell || !cell.firstChild) return false;
  cell.scrollIntoView({block: 'center', inline: 'center'});
  const range = document.createRange();
  range.selectNodeContents(cell);
  const box = range.getBoundingClientRect();
  if (box.width < 1 || box.height < 1) return false;
  const x = box.left + box.width / 2, y = box.top + box.height / 2;
  if (x < 0 || y < 0 || x > innerWidth || y > innerHeight) return false;
  const hit = document.elementFromPoint(x, y);
  return hit !== null && cell.contains(hit);
}"""


@pytest.mark.parametrize(("case", "change"), [
    ("untouched", lambda html: html),
    ("media-scale", lambda html: with_css(html, f"@media screen {{ {TABLE} "
                                          "{ transform: scale(0) } }")),
    ("template", lambda html: wrapped(html, "<template>", "</template>")),
    ("zero-height", lambda html: wrapped(html, '<div style="height:0;overflow:hidden">',
                                         "</div>")),
    ("clip-path", lambda html: wrapped(html, '<div style="clip-path:inset(50%)">', "</div>")),
    ("off-left", lambda html: wrapped(html, '<div style="position:absolute;left:-9999px">',
                                      "</div>")),
    ("text-indent", lambda html: with_css(html, "@media screen { .eu-statement "
                                          "{ text-indent: -9999px } }")),
])
def test_chromium_agrees(rendered: RenderedLanguage, tmp_path: Path, case: str,
                         change: Any) -> None:
    html = inline_css(change(rendered.html))
    assert (checked(rendered, html) == []) == (case == "untouched")
    (tmp_path / "page.html").write_text(html, encoding="utf-8")
    with browser() as chromium:
        page: Any = chromium.new_page(viewport={"width": 600, "height": 900})  # type: ignore[attr-defined]
        page.goto((tmp_path / "page.html").as_uri())
        assert page.evaluate(SEEN) == (case == "untouched"), case


def test_the_message_names_the_line_that_hides_the_block(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    (templates / "partials").mkdir(parents=True)
    (templates / "newsletter.html.j2").write_text(
        "<style>\n.eu-block { padding: 4px; }\n@media screen {\n  .eu-block {\n"
        "    opacity: 0;\n  }\n}\n</style>\n<div style=\"max-height: 4px\">\n"
        "<div style=\"height: 0; overflow: hidden\">\n", encoding="utf-8")
    (templates / "partials/disclaimer.html.j2").write_text(
        "{# hidden: no #}\n<table data-x hidden>\n", encoding="utf-8")
    newsletter = templates / "newsletter.html.j2"
    partial = templates / "partials/disclaimer.html.j2"
    assert locate(templates, "the EU emblem is hidden (opacity: 0 in the <style> rule "
                  "'.eu-block' in @media screen)") == (newsletter, 4)
    assert locate(templates, "the EU emblem is hidden (height: 0 in the style of <div>, with "
                  "overflow: hidden in the style of <div>)") == (newsletter, 10)
    assert locate(templates, "the EU emblem is hidden (the hidden attribute of <table>)") == (
        partial, 2)
    assert locate(templates, "the EU emblem is hidden (inside <template>, which browsers and "
                  "mail clients do not show)") == (newsletter, None)


def test_a_hiding_wrapper_is_named_at_its_line_not_the_preheader_rule(
        project: Path, run_cli: RunCli) -> None:
    """Audit 9b: the wrapper's display:none was reported at the .preheader rule (line 15),
    the first line that declares display: none."""
    edit(project / TEMPLATE, INCLUDE, f'<div style="display:none">{INCLUDE}</div>')
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2, result.err
    assert (f"{where(project / TEMPLATE, INCLUDE)}{BROKEN}the EU emblem is hidden (display: "
            f"none in the style of <div>) {HINT}") in result.err.splitlines()


def refused_at(project: Path) -> set[tuple[Path, int | None]]:
    """(file, line) of each disclaimer rule the English part breaks."""
    with pytest.raises(InputError) as caught:
        render(open_project(project / "mirage.yaml", project / SAMPLE_ISSUE), set(),
               languages=("en",))
    return {(Path(p.path).resolve(), p.line) for p in caught.value.problems
            if "EU disclaimer rule broken" in p.message}


@pytest.mark.parametrize("style", ["display:none", "max-height: 0", "mso-hide:all"])
def test_a_style_attribute_is_named_where_it_is_written(project: Path, style: str) -> None:
    edit(project / TEMPLATE, INCLUDE, f'<div class="eu-x" style="{style}">\n{INCLUDE}</div>')
    at = int(where(project / TEMPLATE, f'style="{style}"').split(":")[1])
    assert refused_at(project) == {((project / TEMPLATE).resolve(), at)}


@pytest.mark.parametrize("rule", [".eu-block { display: none; }",
                                  "td.eu-block, .nothing { max-height: 0; }",
                                  "table[data-mirage] { mso-hide: all; }"])
def test_a_style_rule_is_named_only_where_it_hides_the_block(project: Path, rule: str) -> None:
    """premailer moves the rule into the element's style; the line is the rule's, not that
    of the .preheader rule, which declares the same for another element."""
    edit(project / TEMPLATE, "  .eu-emblem {", f"  {rule}\n  .eu-emblem {{")
    assert refused_at(project) == {((project / TEMPLATE).resolve(),
                                    int(where(project / TEMPLATE, rule).split(":")[1]))}
