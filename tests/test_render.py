"""Rendering: sanitised Markdown, readable text part, and what premailer leaves behind."""

from __future__ import annotations

from pathlib import Path

from helpers import SAMPLE_ISSUE, RunCli
from mirage_mailer.project.content import load_issue
from mirage_mailer.services.loader import open_project, render

ARTICLE = Path(SAMPLE_ISSUE) / "online-trainings.md"
HOSTILE = """
Click <a href="https://ok.example.org" onclick="steal()">here</a> or
<a href="javascript:alert(1)">there</a>.

<script>alert("pwned")</script>
<img src="https://tracker.example.org/x.png" onerror="steal()" alt="x">
<iframe src="https://evil.example.org"></iframe>
<p style="position:fixed" class="x">styled</p>
"""


def _rendered_html(project: Path) -> str:
    loaded = open_project(project / "mirage.yaml", project / SAMPLE_ISSUE)
    return render(loaded, {"organisation"})["en"].html


def test_script_and_event_handlers_are_stripped(project: Path) -> None:
    with (project / ARTICLE).open("a", encoding="utf-8") as handle:
        handle.write(HOSTILE)
    html = _rendered_html(project)
    lowered = html.lower()
    for bad in ("<script", "onclick", "onerror", "javascript:", "<iframe", "steal()",
                "position:fixed"):
        assert bad not in lowered, bad
    assert '<a href="https://ok.example.org"' in html
    assert 'alert("pwned")' not in html


def test_relative_link_is_an_error_with_its_line(project: Path, run_cli: RunCli) -> None:
    with (project / ARTICLE).open("a", encoding="utf-8") as handle:
        handle.write("\nSee [the agenda](agenda.html).\n")
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2
    assert (f"{ARTICLE}:13: link 'agenda.html' is not a full URL; a mail has no base address "
            "(write it as https://...)") in result.err.splitlines()


def test_article_image_becomes_an_inline_part(project: Path, run_cli: RunCli) -> None:
    emblem = (project / ".." / "emblem.png")
    from mirage_mailer.compose.render import emblem_bytes

    emblem.write_bytes(emblem_bytes())
    (project / SAMPLE_ISSUE / "photo.png").write_bytes(emblem_bytes())
    text = (project / ARTICLE).read_text(encoding="utf-8")
    (project / ARTICLE).write_text(text.replace(
        "author: MIraGE consortium\n",
        "author: MIraGE consortium\nimage: photo.png\nimage_alt: Trainers at work\n"),
        encoding="utf-8")
    result = run_cli("preview", SAMPLE_ISSUE, "--lang", "en")
    assert result.code == 0, result.err
    html = (project / "preview/2021-10-partners-meeting/en.html").read_text(encoding="utf-8")
    assert 'src="en.1.photo.png" alt="Trainers at work"' in html
    eml = (project / "preview/2021-10-partners-meeting/en.eml").read_bytes()
    assert b'filename="photo.png"' in eml


def test_missing_image_alt_is_an_error(project: Path, run_cli: RunCli) -> None:
    from mirage_mailer.compose.render import emblem_bytes

    (project / SAMPLE_ISSUE / "photo.png").write_bytes(emblem_bytes())
    text = (project / ARTICLE).read_text(encoding="utf-8")
    (project / ARTICLE).write_text(text.replace("author: MIraGE consortium\n",
                                                "author: MIraGE consortium\nimage: photo.png\n"),
                                   encoding="utf-8")
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2
    assert (f"{ARTICLE}:5: image has no 'image_alt' (describe the picture for screen readers "
            "and blocked images, or write image_alt: \"\" if it is only decoration)"
            ) in result.err.splitlines()


def test_issue_languages_and_fallback(project: Path) -> None:
    (project / SAMPLE_ISSUE / "online-trainings.fr.md").unlink()
    issue, warnings = load_issue(project / SAMPLE_ISSUE, "en")
    assert issue.languages == ("en", "fr")
    assert [a.lang for a in issue.articles["fr"]] == ["fr", "en"]
    assert [str(w).split(": ", 1)[1] for w in warnings] == [
        "warning: no 'fr' translation; fr readers get this version (add "
        "online-trainings.fr.md beside it)"]
    assert issue.pick_language("fr-CA") == "fr"
    assert issue.pick_language("de") == "en"
    assert issue.pick_language(None) == "en"


def test_heavy_work_once_per_language_slots_left_for_recipients(project: Path) -> None:
    html = _rendered_html(project)
    assert html.count("__MM_unsubscribe_url__") == 1
    assert "__MM_greeting__" in html


def test_sandbox_keeps_ordinary_template_code_working(project: Path) -> None:
    """The bounded sandbox checks sizes without consuming what it checks (map() is lazy)."""
    template = project / "templates/newsletter.html.j2"
    text = template.read_text(encoding="utf-8")
    template.write_text(text.replace(
        "{{ t.why }}",
        "{{ t.why }}[{{ articles|map(attribute='lang')|join(' | ') }}]"
        "[{{ ', '.join(articles|map(attribute='lang')) }}][{{ 'ab' * 3 }}]"
        "[{% for n in range(3) %}{{ loop.index }}/{{ loop.length }}{% endfor %}]"
        "[{{ '%05.1f'|format(2.5) }}][{{ 'x'|center(5) }}][{{ (2 ** 10) + 1 }}]"), encoding="utf-8")
    html = _rendered_html(project)
    assert "[en | en][en, en][ababab][1/32/33/3][002.5][  x  ][1025]" in html


def test_a_code_block_keeps_its_lines_in_the_text_part(project: Path) -> None:
    """inscriptis keeps ``<pre>``'s lines but not those of the ``<code>`` Markdown puts inside
    it: the plain-text part ran a fenced block into one line (found by an acceptance pass)."""
    with (project / ARTICLE).open("a", encoding="utf-8") as handle:
        handle.write("\n```\nline one\nline two\n    indented <three>\n```\n\nAfter `a  b`.\n")
    loaded = open_project(project / "mirage.yaml", project / SAMPLE_ISSUE)
    lines = render(loaded, {"organisation"})["en"].text.splitlines()
    start = lines.index("line one")
    assert lines[start:start + 3] == ["line one", "line two", "    indented <three>"]
    assert "After a b." in lines  # inline code is prose: its blanks collapse as before


def test_a_long_code_line_is_not_wrapped_like_prose(project: Path) -> None:
    """Prose wraps at 76 columns; a code line wrapped there would stop meaning what it says
    (the text part is quoted-printable, so a long line is still legal mail)."""
    code = "curl -s https://example.org/api?" + "&".join(f"f{n}=v{n}" for n in range(20))
    prose = "word " * 40
    with (project / ARTICLE).open("a", encoding="utf-8") as handle:
        handle.write(f"\n```\n{code}\n\n  second  line\n```\n\n{prose}\n")
    loaded = open_project(project / "mirage.yaml", project / SAMPLE_ISSUE)
    lines = render(loaded, {"organisation"})["en"].text.splitlines()
    start = lines.index(code)
    assert lines[start + 1:start + 3] == ["", "  second  line"]
    assert "\ue000" not in "\n".join(lines)
    assert max(len(line) for line in lines if line.startswith("word")) <= 76
