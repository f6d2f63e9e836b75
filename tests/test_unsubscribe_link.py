"""Every message carries a visible link to its reader's own unsubscribe address (DESIGN: "The
body has a visible per-recipient unsubscribe link"). Audit 9b: a template without it, with it
hidden, or with it pointing at a fixed page validated, previewed and sent with exit 0.

The CLI cases run the real command on the scaffolded project; the catalogue runs the checker
on the sample's real rendered HTML, changed as a template would change it and inlined again
as the pipeline does.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli, edit
from mirage_mailer.compose.render import RenderedLanguage, inline_css, track_links
from mirage_mailer.compose.unsubscribe_link import check_html, check_text

HTML = "templates/newsletter.html.j2"
TEXT = "templates/newsletter.txt.j2"
LINK = '<a href="{{ unsubscribe_url }}">{{ t.unsubscribe }}</a>'
TEXT_LINE = "{{ t.unsubscribe }}: {{ unsubscribe_url }}\n"
HTML_HINT = ('(every message needs a visible <a href="{{ unsubscribe_url }}">{{ t.unsubscribe '
             "}}</a>, as 'mirage-mailer init' writes it in the footer)")
TEXT_HINT = ("(add the line '{{ t.unsubscribe }}: {{ unsubscribe_url }}', as 'mirage-mailer "
             "init' writes it in the footer)")
SLOT = "__MM_unsubscribe_url__"


def line_of(path: Path, text: str) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(n for n, line in enumerate(lines, 1) if text in line)


def drop_both(project: Path) -> None:
    """The audit's reproduction: the link out of the HTML footer, the line out of the text."""
    edit(project / HTML, LINK, "")
    edit(project / TEXT, TEXT_LINE, "")


def test_a_template_without_the_link_fails_validate(project: Path, run_cli: RunCli) -> None:
    drop_both(project)
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2, result.err
    body_end = line_of(project / HTML, "</body>")
    last = len((project / TEXT).read_text(encoding="utf-8").splitlines())
    errors = [line for line in result.err.splitlines() if "warning:" not in line]
    assert errors == [
        line for lang in ("en", "fr") for line in (
            f"{HTML}:{body_end}: unsubscribe rule broken ({lang} HTML): the HTML part has no "
            f"link to the reader's own unsubscribe address {HTML_HINT}",
            f"{TEXT}:{last}: unsubscribe rule broken ({lang} text): the text part lacks the "
            f"reader's own unsubscribe address {TEXT_HINT}")], result.err


def test_a_template_without_the_link_fails_send(project: Path, run_cli: RunCli) -> None:
    drop_both(project)
    result = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert result.code == 2, result.err
    assert "unsubscribe rule broken (en HTML)" in result.err
    assert not list((project / "outbox").glob("*/*"))


def test_a_text_part_without_the_address_fails_preview(project: Path,
                                                       run_cli: RunCli) -> None:
    edit(project / TEXT, TEXT_LINE, "{{ t.unsubscribe }}: https://example.org/unsubscribe\n")
    result = run_cli("preview", SAMPLE_ISSUE)
    assert result.code == 2, result.err
    at = line_of(project / TEXT, "{{ t.unsubscribe }}")
    assert (f"{TEXT}:{at}: unsubscribe rule broken (en text): the text part lacks the reader's "
            f"own unsubscribe address {TEXT_HINT}") in result.err.splitlines()
    assert "(en HTML)" not in result.err
    assert not (project / "preview").exists()


def test_a_hidden_link_is_refused_at_the_line_that_hides_it(project: Path,
                                                            run_cli: RunCli) -> None:
    edit(project / HTML, LINK,
         '<a href="{{ unsubscribe_url }}" style="display:none">{{ t.unsubscribe }}</a>')
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2, result.err
    at = line_of(project / HTML, 'style="display:none"')
    assert (f"{HTML}:{at}: unsubscribe rule broken (en HTML): the unsubscribe link is hidden "
            f"(display: none in the style of <a>) {HTML_HINT}") in result.err.splitlines()


def test_a_link_to_a_fixed_page_is_refused(project: Path, run_cli: RunCli) -> None:
    edit(project / HTML, LINK, '<a href="https://example.org/unsubscribe">{{ t.unsubscribe }}</a>')
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2, result.err
    at = line_of(project / HTML, "https://example.org/unsubscribe")
    assert (f"{HTML}:{at}: unsubscribe rule broken (en HTML): the HTML part has no link to the "
            f"reader's own unsubscribe address {HTML_HINT}") in result.err.splitlines()


def test_the_untouched_sample_passes(rendered: RenderedLanguage) -> None:
    assert check_html(rendered.html) == []
    assert check_text(rendered.text) == []
    assert check_html(track_links(rendered.html)[0]) == []  # click tracking leaves it alone


def changed_link(html: str, new: str) -> str:
    old = f'<a href="{SLOT}"'
    assert html.count(old) == 1
    return html.replace(old, new, 1)


@pytest.mark.parametrize(("change", "rule"), [
    (lambda h: changed_link(h, '<a href="https://example.org/unsubscribe"'),
     "the HTML part has no link to the reader's own unsubscribe address"),
    (lambda h: changed_link(h, f'<a title="{SLOT}"'),
     "the reader's unsubscribe address is not the href of a link"),
    (lambda h: changed_link(h, f'<a href="{SLOT}" style="mso-hide:all"'),
     "the unsubscribe link is hidden (mso-hide: all in the style of <a>)"),
    (lambda h: changed_link(h, f'<a href="{SLOT}" style="font-size:3px"'),
     "the unsubscribe link is set in 3px type, too small to read"),
    (lambda h: changed_link(h, f'<a href="{SLOT}" style="color:transparent"'),
     "the unsubscribe link is hidden (color: transparent in the style of <a>)"),
    (lambda h: h.replace("</style>", "@media screen { .footer a { display: none } }</style>"),
     "the unsubscribe link is hidden (display: none in the <style> rule '.footer a' in @media"),
    (lambda h: h.replace('<td class="footer"', '<td class="footer" hidden'),
     'the unsubscribe link is hidden (the hidden attribute of <td class="footer">)'),
])
def test_a_link_a_reader_cannot_use_is_refused(rendered: RenderedLanguage,
                                               change: Callable[[str], str], rule: str) -> None:
    broken = check_html(inline_css(change(rendered.html)))
    assert len(broken) == 1 and broken[0].startswith(rule), broken


def test_one_visible_link_is_enough(rendered: RenderedLanguage) -> None:
    html = changed_link(rendered.html, f'<a href="{SLOT}" style="display:none">x</a><a '
                        f'href="{SLOT}"')
    assert check_html(inline_css(html)) == []


def test_a_link_without_words_is_refused(rendered: RenderedLanguage) -> None:
    html = rendered.html.replace(f'<a href="{SLOT}"', f'<a href="{SLOT}"></a><b', 1)
    assert check_html(inline_css(html)) == [
        "the unsubscribe link has no words a reader can see"]


def test_the_text_part_needs_the_reader_s_address(rendered: RenderedLanguage) -> None:
    assert check_text(rendered.text.replace(SLOT, "https://example.org/unsubscribe")) == [
        "the text part lacks the reader's own unsubscribe address"]
