"""What `validate` refuses without a browser (WCAG 2.1 AA): text contrast, the document's and
the translated parts' language, images without alt, links without text; and what it warns
about in articles (vague link texts, skipped heading levels). Each case runs the real CLI on
the sample project with one flaw and asserts the exact `file:line: message (fix)` line."""

from __future__ import annotations

import time
from pathlib import Path

import lxml.html
import pytest

from helpers import SAMPLE_ISSUE, RunCli, edit
from mirage_mailer.compose.accessibility import Part, check_rendered
from mirage_mailer.compose.contrast import (
    colour_in,
    hex_of,
    needed,
    parse_colour,
    ratio,
    suggest,
)
from mirage_mailer.compose.disclaimer import EMBLEM_ALT
from mirage_mailer.compose.render import emblem_bytes
from mirage_mailer.project.article_text import MARKDOWN, article_html

HTML = "templates/newsletter.html.j2"
PARTIAL = "templates/partials/disclaimer.html.j2"
ARTICLE = f"{SAMPLE_ISSUE}/online-trainings.md"
LANG_HINT = 'write <html lang="{{ lang }}"> so screen readers speak the right language'


def line_of(path: Path, needle: str) -> int:
    """The line of the one occurrence of ``needle``: the assertion stays exact when the
    sample template moves."""
    lines = [n for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if needle in line]
    assert len(lines) == 1, (needle, lines)
    return lines[0]


def errors(text: str) -> list[str]:
    return [line for line in text.splitlines() if ": warning: " not in line]


def warnings(text: str) -> list[str]:
    return [line for line in text.splitlines() if ": warning: " in line]


def test_the_sample_project_passes(project: Path, run_cli: RunCli) -> None:
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 0, result.err
    assert [w for w in warnings(result.err) if "disclaimer" not in w] == []
    assert run_cli("preview", SAMPLE_ISSUE).code == 0
    fr = (project / "preview" / "2021-10-partners-meeting" / "fr.html").read_text("utf-8")
    assert fr.startswith('<!DOCTYPE html>\n<html lang="fr"')
    # the French issue's disclaimer has no confirmed translation: its English says so
    assert 'data-mirage="eu-disclaimer" lang="en"' in fr


@pytest.mark.parametrize(("rule", "old", "new", "expected"), [
    pytest.param(".article-meta", "color: #666666; margin: 0 0 12px", "color: #aaaaaa; margin: "
                 "0 0 12px", 'text colour #aaaaaa on #ffffff has a contrast of 2.32:1, below the '
                 '4.5:1 WCAG 2.1 AA asks for normal text (in <p class="article-meta">) (use '
                 "#757575 or darker for this text)", id="article-meta-grey"),
    pytest.param(".eu-text", "color: #333333; padding: 10px", "color: #999999; padding: 10px",
                 'text colour #999999 on #ffffff has a contrast of 2.85:1, below the 4.5:1 '
                 'WCAG 2.1 AA asks for normal text (in <td class="eu-text">) (use #767676 or '
                 "darker for this text)", id="disclaimer-grey"),
    pytest.param(".masthead-meta", "color: #dfe6f5;", "color: #4d6bb3;",
                 "text colour #4d6bb3 on #003399 has a contrast of 2.10:1, below the 4.5:1 WCAG "
                 '2.1 AA asks for normal text (in <p class="masthead-meta">) (use #96a8d2 or '
                 "lighter for this text)", id="light-on-dark"),
])
def test_low_contrast_text_is_refused_at_its_template_line(
        project: Path, run_cli: RunCli, rule: str, old: str, new: str, expected: str) -> None:
    template = project / HTML
    edit(template, old, new)
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2
    line = line_of(template, f"  {rule} {{")
    assert errors(result.err) == [f"{HTML}:{line}: {expected}"]  # once, not once per language
    refused = run_cli("preview", SAMPLE_ISSUE)
    assert refused.code == 2 and f"{HTML}:{line}: {expected}" in refused.err


def test_large_text_needs_3_to_1_and_normal_text_4_5_to_1(project: Path, run_cli: RunCli) -> None:
    """#909090 on reflex blue is 3.40:1: enough for the 24 px bold title, not for 14 px."""
    template = project / HTML
    edit(template, "font-weight: bold; color: #ffffff; margin: 0; }",
         "font-weight: bold; color: #909090; margin: 0; }")
    assert run_cli("validate", SAMPLE_ISSUE).code == 0
    edit(template, "color: #dfe6f5;", "color: #909090;")
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2
    title = line_of(template, "  .masthead-title { font-size: 24px")
    assert errors(result.err) == [
        f"{HTML}:{title}: text colour #909090 on #003399 has "
        "a contrast of 3.40:1, below the 4.5:1 WCAG 2.1 AA asks for normal text (in <p "
        'class="masthead-meta">) (use #a7a7a7 or lighter for this text)']


def test_hidden_text_is_not_judged(project: Path, run_cli: RunCli) -> None:
    """Hidden text is never read, so its colour is never judged (a template may still colour a
    hidden preheader like its background, which spam filters dislike: tests/test_spam_score)."""
    edit(project / HTML, "line-height: 1px; opacity: 0; }", "line-height: 1px; color: #eef1f6; }")
    assert run_cli("validate", SAMPLE_ISSUE).code == 0
    edit(project / HTML, "display: none; max-height: 0; max-width: 0; overflow: hidden;",
         "display: block;")
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2
    assert "text colour #eef1f6 on #eef1f6 has a contrast of 1.00:1" in result.err


def test_text_over_a_background_image_is_left_to_the_browser(project: Path,
                                                              run_cli: RunCli) -> None:
    """White on white, but a photo sits behind it: only axe-core in a browser can judge."""
    edit(project / HTML, "background-color: #003399; padding: 24px;",
         "background-color: #ffffff; padding: 24px;")
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2 and "text colour #ffffff on #ffffff" in result.err
    edit(project / HTML, '<tr><td class="masthead">',
         '<tr><td class="masthead" background="https://www.mirageproject.eu/masthead.jpg">')
    assert run_cli("validate", SAMPLE_ISSUE).code == 0


def test_the_document_must_declare_its_language(project: Path, run_cli: RunCli) -> None:
    template = project / HTML
    edit(template, '<html lang="{{ lang }}"', "<html")
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2
    assert errors(result.err) == [f"{HTML}:2: the <html> element has no lang attribute "
                                  f"({LANG_HINT})"]
    edit(template, "<html", '<html lang="en"')
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2
    assert errors(result.err) == [f'{HTML}:2: the <html> element says lang="en" in the fr '
                                  'newsletter (write <html lang="{{ lang }}">)']


def test_an_untranslated_article_keeps_its_own_language(project: Path, run_cli: RunCli) -> None:
    (project / f"{SAMPLE_ISSUE}/online-trainings.fr.md").unlink()
    assert run_cli("preview", SAMPLE_ISSUE, "--lang", "fr").code == 0
    fr = (project / "preview" / "2021-10-partners-meeting" / "fr.html").read_text("utf-8")
    assert '<div class="article" lang="en"' in fr and '<div class="article" lang="fr"' in fr
    template = project / HTML
    edit(template, '<div class="article" lang="{{ article.lang }}"', '<div class="article"')
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2
    assert errors(result.err) == [
        f"{HTML}:{line_of(template, '{{ article.title }}')}: the untranslated article 'Training "
        "materials now free to reuse' is in 'en' but the fr newsletter marks it as 'fr' (keep "
        "lang=\"{{ article.lang }}\" on the element around each article, as 'mirage-mailer "
        "init' writes it)"]


def test_the_same_words_earlier_in_a_translated_article_are_not_the_untranslated_one(
        project: Path, run_cli: RunCli) -> None:
    """A French article with a heading "Agenda" above an untranslated English article titled
    "Agenda": the check took the heading for the title and refused the untouched sample
    template (exit 2, nothing sent)."""
    issue = project / SAMPLE_ISSUE
    (issue / "online-trainings.fr.md").unlink()
    edit(issue / "online-trainings.md", "title: Training materials now free to reuse",
         "title: Agenda")
    with (issue / "partners-meeting.fr.md").open("a", encoding="utf-8") as handle:
        handle.write("\n## Agenda\n\nLa suite pour les partenaires.\n")
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 0, result.err
    template = project / HTML
    edit(template, '<div class="article" lang="{{ article.lang }}"', '<div class="article"')
    broken = run_cli("validate", SAMPLE_ISSUE)
    assert broken.code == 2
    assert "the untranslated article 'Agenda' is in 'en'" in broken.err


def test_a_disclaimer_in_another_language_says_so(project: Path, run_cli: RunCli) -> None:
    partial = project / PARTIAL
    edit(partial, ' lang="{{ disclaimer.lang }}"', "")
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2
    hint = ("keep lang=\"{{ disclaimer.lang }}\" on the disclaimer table of partials/"
            "disclaimer.html.j2, as 'mirage-mailer init' writes it")
    assert errors(result.err) == [
        f"{PARTIAL}:{line_of(partial, '{{ disclaimer.statement }}')}: the EU funding statement "
        f"is in 'en' but the fr newsletter marks it as 'fr' ({hint})",
        f"{PARTIAL}:{line_of(partial, '{{ disclaimer.text }}')}: the EU disclaimer text is in "
        f"'en' but the fr newsletter marks it as 'fr' ({hint})"]
    # a confirmed French translation is French: nothing else to mark
    edit(project / "mirage.yaml", "  translations: {}", (
        "  translations:\n    fr:\n      statement: Financé par l'Union européenne\n"
        "      text: Ce projet a été financé par le Fonds Asile, migration et intégration de "
        "l'Union européenne."))
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 0, result.err


def test_the_emblem_alt_text_says_it_is_english_in_a_translated_block(
        project: Path, run_cli: RunCli) -> None:
    """The alt text is English; a block marked French would have it read with French rules."""
    edit(project / "mirage.yaml", "  translations: {}", (
        "  translations:\n    fr:\n      statement: Financé par l'Union européenne\n"
        "      text: Ce projet a été financé par le Fonds Asile, migration et intégration de "
        "l'Union européenne."))
    result = run_cli("preview", SAMPLE_ISSUE, "--out", "seen")
    assert result.code == 0, result.err
    langs: dict[str, tuple[str | None, str | None]] = {}
    for lang in ("en", "fr"):
        doc = lxml.html.document_fromstring((project / f"seen/{lang}.html").read_bytes())
        emblem = next(img for img in doc.iter("img") if img.get("alt") == EMBLEM_ALT)
        block = next(emblem.iterancestors("table"))
        langs[lang] = (block.get("lang"), emblem.get("lang"))
    assert langs == {"en": ("en", None), "fr": ("fr", "en")}


def test_template_images_need_alt_and_links_need_text(project: Path, run_cli: RunCli) -> None:
    template = project / HTML
    edit(template, '<p class="masthead-title"',
         '<a href="https://www.mirageproject.eu/logo"><img src="https://www.mirageproject.eu/'
         'logo.png" width="40" height="40"></a><p class="masthead-title"')
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2
    line = line_of(template, "logo.png")
    assert errors(result.err) == [
        f"{HTML}:{line}: an image has no alt attribute (https://www.mirageproject.eu/logo.png) "
        '(describe it with alt="...", or write alt="" if it is only decoration)',
        f"{HTML}:{line}: a link has no text a screen reader can say (https://www.mirageproject"
        ".eu/logo) (put words in the link, or an image with alt text)"]
    edit(template, 'logo.png" width', 'logo.png" alt="MIraGE home page" width')
    assert run_cli("validate", SAMPLE_ISSUE).code == 0


def append(project: Path, text: str) -> int:
    """Add ``text`` at the end of the English article; the line it starts on."""
    path = project / ARTICLE
    before = path.read_text(encoding="utf-8")
    path.write_text(before + "\n" + text, encoding="utf-8")
    return len(before.splitlines()) + 2


def test_article_images_need_a_description(project: Path, run_cli: RunCli) -> None:
    (project / SAMPLE_ISSUE / "pic.png").write_bytes(emblem_bytes())
    line = append(project, "A photo: ![](pic.png)\nand <img src=\"pic.png\" width=\"10\">\n"
                  "and a border: <img src=\"pic.png\" alt=\"\">\n")
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2
    assert errors(result.err) == [
        f"{ARTICLE}:{line}: image 'pic.png' has no description (write ![what it shows](pic.png)"
        "; for a purely decorative image write <img src=\"pic.png\" alt=\"\">)",
        f"{ARTICLE}:{line + 1}: image 'pic.png' has no alt attribute (describe it with "
        "alt=\"...\", or write alt=\"\" if it is only decoration)"]


@pytest.mark.parametrize(("alt", "code"), [('""', 0), ("Trainers at work", 0), ('"  "', 2)])
def test_front_matter_image_alt_empty_means_decorative(project: Path, run_cli: RunCli,
                                                       alt: str, code: int) -> None:
    (project / SAMPLE_ISSUE / "pic.png").write_bytes(emblem_bytes())
    edit(project / ARTICLE, "author: MIraGE consortium\n",
         f"author: MIraGE consortium\nimage: pic.png\nimage_alt: {alt}\n")
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == code, result.err
    if code:
        assert errors(result.err) == [
            f"{ARTICLE}:6: 'image_alt' is only spaces (describe the picture, or write "
            "image_alt: \"\" if it is only decoration)"]
    else:
        assert run_cli("preview", SAMPLE_ISSUE, "--lang", "en").code == 0
        html = (project / "preview" / "2021-10-partners-meeting" / "en.html").read_text("utf-8")
        assert f'src="en.1.pic.png" alt="{alt.strip(chr(34))}"' in html


def test_links_need_words_that_say_where_they_lead(project: Path, run_cli: RunCli) -> None:
    line = append(project, "More [here](https://www.mirageproject.eu/a).\n\n"
                  "#### Deep\n")
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 0, result.err  # warnings: the sentence may give the context
    assert [w for w in warnings(result.err) if ARTICLE in w] == [
        f"{ARTICLE}:{line}: warning: link text 'here' says nothing on its own (name where it "
        "leads, e.g. [the training modules](https://www.mirageproject.eu/a); screen readers "
        "list links out of their sentence)",
        f"{ARTICLE}:{line + 2}: warning: heading '####' skips a level after the article's "
        "title (use '##' here; screen readers list headings by level)"]
    append(project, "And [](https://www.mirageproject.eu/b).\n")
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2
    assert errors(result.err) == [
        f"{ARTICLE}:{line + 4}: link to https://www.mirageproject.eu/b has no text (write "
        "[words that say where it leads](...))"]


def test_wcag_contrast_figures() -> None:
    black, white = (0, 0, 0), (255, 255, 255)
    assert ratio(black, white) == pytest.approx(21.0)
    assert ratio(white, white) == pytest.approx(1.0)
    assert ratio((0x76, 0x76, 0x76), white) >= 4.5 > ratio((0x77, 0x77, 0x77), white)
    assert round(ratio((0x00, 0x33, 0x99), white), 2) == 10.86  # reflex blue on white
    assert needed(16, False) == 4.5 and needed(24, False) == 3.0
    assert needed(18.66, True) == 3.0 and needed(18.66, False) == 4.5


@pytest.mark.parametrize(("value", "expected"), [
    ("#fff", (255, 255, 255)), ("#003399", (0, 51, 153)), ("#039", (0, 51, 153)),
    ("rgb(0, 51, 153)", (0, 51, 153)), ("RGB(100%,0%,0%)", (255, 0, 0)), ("grey", (128,) * 3),
    ("#00339980", None), ("rgba(0,0,0,.5)", None), ("transparent", None), ("var(--x)", None),
])
def test_colours_as_templates_write_them(value: str, expected: object) -> None:
    assert parse_colour(value) == expected


def test_background_shorthand_and_suggestions() -> None:
    assert colour_in("#f5f7fb none repeat") == (245, 247, 251)
    assert colour_in("#fff url(x.png)") is None  # an image behind the text: only a browser knows
    for text, back in [((0xaa,) * 3, (255,) * 3), ((0x33, 0x66, 0xcc), (0, 0x33, 0x99))]:
        better = suggest(text, back, 4.5)
        assert ratio(better, back) >= 4.5
        assert hex_of(better) != hex_of(text)


def test_english_interface_words_in_another_language_say_so(project: Path,
                                                             run_cli: RunCli) -> None:
    """mirage-mailer has no Portuguese interface strings: a pt issue gets English ones,
    marked lang="en" (the articles and the disclaimer, untranslated, are English too)."""
    edit(project / SAMPLE_ISSUE / "issue.yaml", "\ntitle:", '\n  pt: "Notícias do MIraGE"\ntitle:')
    assert run_cli("preview", SAMPLE_ISSUE).code == 0
    pt = (project / "preview" / "2021-10-partners-meeting" / "pt.html").read_text("utf-8")
    assert '<html lang="pt"' in pt and '<td class="footer" lang="en"' in pt
    assert '<span lang="en" dir="ltr">Issue 4</span>' in pt
    assert '<p class="greeting" lang="en"' in pt
    assert '<p class="masthead-title" lang="en"' in pt  # no Portuguese title either
    en = (project / "preview" / "2021-10-partners-meeting" / "en.html").read_text("utf-8")
    assert '<td class="footer" style' in en  # no redundant lang where the words match
    template = project / HTML
    edit(template, '<tr><td class="footer"{% if t.lang != lang %} lang="{{ t.lang }}"'
         ' dir="{{ t.dir }}" style="text-align: {{ t.align }};"{% endif %}>',
         '<tr><td class="footer">')
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2
    assert errors(result.err) == [
        f"{HTML}:{line_of(template, '{{ t.unsubscribe }}')}: the interface text (no 'pt' "
        "strings, English stands in) is in 'en' but the pt newsletter marks it as 'pt' (keep "
        "lang=\"{{ t.lang }}\" on the footer when t.lang != lang, as 'mirage-mailer init' "
        "writes it)"]


def test_a_hundred_untranslated_articles_cost_one_walk(tmp_path: Path) -> None:
    """Styles are computed top-down once and parts are found by their own text: 100 long
    articles in another language are checked in well under a second (bounded at 3 s for a
    loaded machine; walking up the tree per element and per part took several)."""
    (tmp_path / "newsletter.html.j2").write_text('<html lang="{{ lang }}">\n', "utf-8")
    paragraph = ('<p style="color:#222222">Some words <a href="https://example.org/x" '
                 'style="color:#003399">a link</a> and more words.</p>')
    articles = "".join(
        f'<div lang="en"><h1 style="color:#003399">Article {n}</h1>{paragraph * 60}</div>'
        for n in range(100))
    html = (f'<!DOCTYPE html><html lang="fr"><body style="background-color:#eef1f6">'
            f'<table><tr><td style="background-color:#ffffff">{articles}</td></tr></table>'
            "</body></html>")
    parts = [Part(f"Article {n}", "en", f"article {n}", "{{ article.title", "") for n in range(100)]
    started = time.perf_counter()
    found = check_rendered(html, lang="fr", parts=parts, templates=tmp_path)
    took = time.perf_counter() - started
    assert found == []
    assert took < 3.0, f"{took:.2f} s"
    broken = html.replace('<div lang="en"><h1 style="color:#003399">Article 99<',
                          '<div><h1 style="color:#003399">Article 99<')
    assert [p.message for p in check_rendered(broken, lang="fr", parts=parts,
                                              templates=tmp_path)] == [
        "the article 99 is in 'en' but the fr newsletter marks it as 'fr'"]


def test_the_shared_parse_renders_as_markdown_it_does(project: Path) -> None:
    """Articles are parsed once for the checks and every language; the HTML must not
    change, the second time included (markdown-it's renderer writes image alts back)."""
    extra = ('![A *fancy* photo](x.png "t")\n\n[a reference][r]\n\n[r]: https://e.org\n\n'
             '| a | b |\n|---|---|\n| 1 | 2 |\n\n"quotes" -- dash\n\n<img src="y.png" alt="">\n')
    bodies = [p.read_text("utf-8") for p in (project / SAMPLE_ISSUE).glob("*.md")] + [extra]
    for body in bodies:
        assert article_html(body) == article_html(body) == MARKDOWN.render(body)


@pytest.mark.parametrize(("wrapper", "problems"), [('<div lang="en">', 0), ("<div>", 1)])
def test_a_part_split_by_inline_tags_is_still_found(tmp_path: Path, wrapper: str,
                                                    problems: int) -> None:
    (tmp_path / "newsletter.html.j2").write_text("{{ article.title }}\n", "utf-8")
    html = (f'<html lang="fr"><body>{wrapper}<h1>Training <em>materials</em> now free</h1>'
            "<p>Text.</p></div></body></html>")
    part = Part("Training materials now free", "en", "title", "{{ article.title", "fix")
    found = check_rendered(html, lang="fr", parts=[part], templates=tmp_path)
    assert [str(p) for p in found] == [
        f"{tmp_path / 'newsletter.html.j2'}:1: the title is in 'en' but the fr newsletter "
        "marks it as 'fr' (fix)"][:problems]


def test_an_untranslated_title_keeps_its_language(project: Path, run_cli: RunCli) -> None:
    edit(project / SAMPLE_ISSUE / "issue.yaml", "\ntitle:", '\n  de: "MIraGE-Neuigkeiten"\ntitle:')
    template = project / HTML
    edit(template, '<p class="masthead-title"{% if issue.title_lang != lang %} lang="'
         '{{ issue.title_lang }}" dir="{{ issue.title_dir }}"{% endif %}>',
         '<p class="masthead-title">')
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2
    assert errors(result.err) == [
        f"{HTML}:{line_of(template, '{{ issue.title }}')}: the issue title (no translation) is "
        "in 'en' but the de newsletter marks it as 'de' (keep lang=\"{{ issue.title_lang }}\" "
        "on it when issue.title_lang != lang, as 'mirage-mailer init' writes it, or add 'de: "
        "...' under 'title:' in issue.yaml)"]
    edit(project / SAMPLE_ISSUE / "issue.yaml", "\nnumber:", '\n  de: MIraGE-Newsletter\nnumber:')
    assert run_cli("validate", SAMPLE_ISSUE).code == 0
