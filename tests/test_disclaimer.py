"""The EU disclaimer block: presets, translations and every rule of the checker."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli, edit
from mirage_mailer.compose.disclaimer import (
    AMIF_TEXT,
    CO_FUNDED,
    DIRECT_TEXT,
    FUNDED,
    DisclaimerBlock,
    block_for,
    check_html,
    check_text,
)
from mirage_mailer.project.config import DisclaimerConfig, DisclaimerText

HTML_TEMPLATE = "templates/newsletter.html.j2"
PARTIAL = "templates/partials/disclaimer.html.j2"
SRC = "cid:eu-emblem@mirage-mailer"
BLOCK = DisclaimerBlock("en", FUNDED, AMIF_TEXT, True)


def page(statement_style: str = "font-family: Arial; color: #003399",
         emblem: str = f'<img src="{SRC}" alt="Flag of the European Union" height="60">',
         extra: str = "", text: str = AMIF_TEXT, outer_style: str = "") -> str:
    return (f'<html><body><div style="{outer_style}">{extra}<table><tr><td>{emblem}</td>'
            f'<td style="{statement_style}">{FUNDED}</td></tr>'
            f'<tr><td style="font-size: 12px">{text}</td></tr></table></div></body></html>')


def test_compliant_block_passes() -> None:
    assert check_html(page(), BLOCK, SRC) == []


@pytest.mark.parametrize(("html", "rule"), [
    (page(emblem=""), "the EU emblem image (cid:eu-emblem@mirage-mailer) is missing"),
    (page(emblem=f'<img src="{SRC}" alt="flag" height="60">'),
     "the EU emblem's alt text must name the European Union"),
    (page(statement_style="font-family: 'Times New Roman'; color: #003399"),
     "the funding statement's font ('times new roman') is not allowed"),
    (page(statement_style="color: #003399"), "the funding statement's font (not set)"),
    (page(statement_style="font-family: Verdana; color: red"),
     "the funding statement's colour (red) must be reflex blue #003399, black or white"),
    (page(outer_style="display:none"),
     "the EU emblem is hidden (display: none in the style of <div>)"),
    (page(statement_style="font-family: Arial; color: #000; font-size: 6px"),
     "the funding statement is set in 6px type"),
    (page(extra='<img src="logo.png" alt="Project logo" height="120">'),
     "the EU emblem (60px high) is smaller than another logo (logo.png, 120px)"),
    (page(text=AMIF_TEXT.replace("only", "mostly")),
     "the disclaimer text is missing from the HTML part or was altered"),
    (page(extra=f'<p style="font-family: Arial; color: #039">{FUNDED}</p>').replace(
        f'<td style="font-family: Arial; color: #003399">{FUNDED}</td>', ""),
     "the funding statement must stand beside the EU emblem (same table)"),
])
def test_each_rule_is_enforced(html: str, rule: str) -> None:
    broken = check_html(html, BLOCK, SRC)
    assert any(b.startswith(rule) for b in broken), broken


def test_colour_spellings_are_normalised() -> None:
    for colour in ("#039", "rgb(0, 51, 153)", "black", "#FFFFFF"):
        html = page(statement_style=f"font-family: Tahoma, sans-serif; color: {colour}")
        assert check_html(html, BLOCK, SRC) == [], colour


def test_text_part_rules() -> None:
    cut = AMIF_TEXT.index(" ", 50)
    assert check_text(f"x\n{FUNDED}\n{AMIF_TEXT[:cut]}\n{AMIF_TEXT[cut + 1:]}", BLOCK) == []
    assert check_text(FUNDED, BLOCK) == ["the text part lacks the exact disclaimer text"]
    assert check_text(AMIF_TEXT, DisclaimerBlock("en", CO_FUNDED, None, True)) == [
        f'the text part lacks the funding statement "{CO_FUNDED}"']


def test_presets_and_translations() -> None:
    direct = DisclaimerConfig("eu-2021-2027-direct", "the European Research Executive Agency",
                              None, None)
    block = block_for(direct, "en", "en")
    assert block.statement == FUNDED
    assert block.text is not None
    assert "the European Union or the European Research Executive Agency. Neither" in block.text
    shared = block_for(DisclaimerConfig("eu-2021-2027-shared", None, None, None), "en", "en")
    assert (shared.statement, shared.text) == (CO_FUNDED, None)
    amif = DisclaimerConfig("amif-2014-2020", None, None, None,
                            {"fr": DisclaimerText("Financé par l'Union européenne", "Texte.")})
    assert block_for(amif, "fr", "en") == DisclaimerBlock(
        "fr", "Financé par l'Union européenne", "Texte.", True)
    assert block_for(amif, "de", "en") == DisclaimerBlock("de", FUNDED, AMIF_TEXT, False)


@pytest.mark.parametrize("command", ["validate", "preview"])
def test_template_without_the_disclaimer_is_refused(project: Path, run_cli: RunCli,
                                                    command: str) -> None:
    edit(project / HTML_TEMPLATE, '{% include "partials/disclaimer.html.j2" %}', "")
    result = run_cli(command, SAMPLE_ISSUE)
    assert result.code == 2
    assert ("templates/newsletter.html.j2: EU disclaimer rule broken (en HTML): the EU emblem "
            "image (cid:eu-emblem@mirage-mailer) is missing (keep the disclaimer include and the "
            ".eu-* styles of templates/newsletter.html.j2 as 'mirage-mailer init' writes them)"
            ) in result.err.splitlines()
    assert not (project / "preview").exists()


def test_reworded_disclaimer_in_text_part_is_refused(project: Path, run_cli: RunCli) -> None:
    edit(project / "templates/partials/disclaimer.txt.j2",
         "{{ disclaimer.text | wordwrap(72) }}", "Paid for by someone.")
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2
    assert ("templates/newsletter.txt.j2: EU disclaimer rule broken (en text): the text part "
            "lacks the exact disclaimer text (restore templates/partials/disclaimer.txt.j2 as "
            "'mirage-mailer init' writes it)"
            ) in result.err.splitlines()


def test_restyled_statement_is_refused(project: Path, run_cli: RunCli) -> None:
    edit(project / HTML_TEMPLATE, "font-weight: bold; color: #003399; padding: 0 12px;",
         "font-weight: bold; color: #cc0000; padding: 0 12px;")
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2
    assert "the funding statement's colour (#cc0000) must be reflex blue" in result.err


def test_confirmed_translation_is_used_without_warning(project: Path, run_cli: RunCli) -> None:
    edit(project / "mirage.yaml", "  translations: {}", (
        "  translations:\n    fr:\n      statement: Financé par l'Union européenne\n"
        "      text: Texte confirmé de la convention de subvention."))
    result = run_cli("preview", SAMPLE_ISSUE, "--lang", "fr")
    assert result.code == 0, result.err
    assert "warning" not in result.err
    text = (project / "preview/2021-10-partners-meeting/fr.txt").read_text(encoding="utf-8")
    assert "Financé par l'Union européenne" in text
    assert "Texte confirmé de la convention de subvention." in text
    assert "Asylum" not in text


def test_direct_preset_needs_an_authority(project: Path, run_cli: RunCli) -> None:
    edit(project / "mirage.yaml", "  preset: amif-2014-2020", "  preset: eu-2021-2027-direct")
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2
    assert ("mirage.yaml:29: preset eu-2021-2027-direct names a granting authority (add "
            "it, e.g. 'authority: the European Research Executive Agency (REA)')"
            ) in result.err.splitlines()


DIRECT = DisclaimerBlock("en", FUNDED, DIRECT_TEXT.format(authority="the European Commission"),
                         True)


def direct_page(statement_cell: bool = True) -> str:
    """The 2021-27 direct block as `init` lays it out: its grey text begins with the statement."""
    cell = (f'<td style="font-family: Arial; color: #003399">{FUNDED}</td>'
            if statement_cell else "<td></td>")
    return (f'<html><body><table><tr><td><img src="{SRC}" alt="Flag of the European Union" '
            f'height="60"></td>{cell}</tr><tr><td colspan="2" style="font-family: Arial; '
            f'color: #333333; font-size: 12px">{DIRECT.text}</td></tr></table></body></html>')


def test_a_disclaimer_text_beginning_with_the_statement_is_not_the_statement() -> None:
    assert check_html(direct_page(), DIRECT, SRC) == []
    assert check_html(direct_page(statement_cell=False), DIRECT, SRC) == [
        f'the funding statement "{FUNDED}" is not live text in the HTML part']


def test_the_statement_may_stand_below_the_emblem_and_after_the_text() -> None:
    """A stacked block (emblem, then text, then statement) is still the statement beside it."""
    stacked = direct_page().replace("</td><td style=", "</td></tr><tr><td style=")
    text_row = stacked[stacked.index("<tr><td colspan"):stacked.index("</table>")]
    stacked = stacked.replace(text_row, "").replace("<table>", "<table>" + text_row, 1)
    assert stacked.index(DIRECT.text or "") < stacked.index(f">{FUNDED}<")
    assert check_html(stacked, DIRECT, SRC) == []


def test_text_part_needs_the_statement_besides_a_text_that_begins_with_it() -> None:
    assert DIRECT.text is not None
    assert check_text(f"{FUNDED}\n\n{DIRECT.text}", DIRECT) == []
    assert check_text(DIRECT.text, DIRECT) == [
        f'the text part lacks the funding statement "{FUNDED}"']


@pytest.mark.parametrize(("written", "reads"), [
    ("European Commission", "or the European Commission. Neither"),
    ("the European Commission", "or the European Commission. Neither"),
    ("The  European Research Executive Agency (REA)",
     "or the European Research Executive Agency (REA). Neither"),
    ("HaDEA", "or HaDEA. Neither"),
])
def test_the_authority_reads_naturally_with_or_without_the(written: str, reads: str) -> None:
    block = block_for(DisclaimerConfig("eu-2021-2027-direct", written, None, None), "en", "en")
    assert block.text is not None and reads in block.text
    assert "the the" not in block.text.lower()


def test_untouched_templates_are_never_blamed(project: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """A rule that refuses what `init` wrote is our bug: the hint says so, not 'restore'."""
    from mirage_mailer.cli import main
    from mirage_mailer.compose import render

    monkeypatch.chdir(project)
    monkeypatch.setattr(render, "check_html", lambda *args: ["a rule that is wrong"])
    with pytest.raises(SystemExit) as stopped:
        main(["validate", SAMPLE_ISSUE])
    assert stopped.value.code == 2
    assert ("templates/newsletter.html.j2: EU disclaimer rule broken (en HTML): a rule that is "
            "wrong (the templates are as 'mirage-mailer init' writes them, so this is a bug in "
            "mirage-mailer's check: please report it)") in capsys.readouterr().err.splitlines()


def test_an_edited_partial_is_named_in_the_hint(project: Path, run_cli: RunCli) -> None:
    edit(project / PARTIAL, 'class="eu-statement" valign="middle"',
         'class="eu-statement" valign="middle" style="color: #ff0000"')
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2
    assert ("templates/newsletter.html.j2: EU disclaimer rule broken (en HTML): the funding "
            "statement's colour (#ff0000) must be reflex blue #003399, black or white (restore "
            "templates/partials/disclaimer.html.j2 as 'mirage-mailer init' writes it)"
            ) in result.err.splitlines()
