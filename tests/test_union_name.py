"""The funding statement writes out the name of the European Union, in its own language.

"Funded by the EU" and "Financé par l'UE" are refused (EU visibility rules); the Union's name is
recognised in the 24 official languages and their grammatical forms, whatever the case or the
Unicode normal form. Refusals are checked through `validate` on the exact line printed.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli, edit
from mirage_mailer.project.eu_names import OFFICIAL_LANGUAGES, check_statement, names_the_union

ACCEPTED = [
    ("de", "Finanziert von der Europäischen Union"),
    ("de", "FINANZIERT VON DER EUROPÄISCHEN UNION"),
    ("fr", "Financé par l'Union européenne"),
    ("fr", "Financé par l\u2019Union  européenne"),
    ("pl", "Sfinansowane ze środków Unii Europejskiej"),
    ("pl", "Finansowane przez Unię Europejską"),
    ("es", "Financiado por la Unión Europea"),
    ("el", "Χρηματοδοτείται από την Ευρωπαϊκή Ένωση"),
    ("el", "ΧΡΗΜΑΤΟΔΟΤΕΊΤΑΙ ΑΠΌ ΤΗΝ ΕΥΡΩΠΑΪΚΉ ΈΝΩΣΗ"),
    ("bg", "Финансирано от Европейския съюз"),
    ("cs", "Financováno Evropskou unií"),
    ("da", "Finansieret af Den Europæiske Union"),
    ("et", "Rahastatud Euroopa Liidu poolt"),
    ("fi", "Euroopan unionin rahoittama"),
    ("ga", "Maoinithe ag an Aontas Eorpach"),
    ("hr", "Financira Europska unija"),
    ("hu", "Az Európai Unió finanszírozásával"),
    ("it", "Finanziato dall'Unione europea"),
    ("lt", "Finansuoja Europos Sąjunga"),
    ("lv", "Finansē Eiropas Savienība"),
    ("mt", "Iffinanzjat mill-Unjoni Ewropea"),
    ("nl", "Gefinancierd door de Europese Unie"),
    ("pt-BR", "Financiado pela União Europeia"),
    ("ro", "Finanțat de Uniunea Europeană"),
    ("sk", "Financované Európskou úniou"),
    ("sl", "Financira Evropska unija"),
    ("sv", "Finansieras av Europeiska unionen"),
    ("en", "Co-funded by the European Union"),
]
REFUSED = [
    ("en", "Funded by the EU"),
    ("fr", "Financé par l'UE"),
    ("de", "Gefördert durch die EU"),
    ("fr", "Funded by the European Union"),  # English in a French message is not French
    ("de", "Finanziert von der Union"),
    ("pl", "Sfinansowane przez UE"),
]


@pytest.mark.parametrize(("lang", "statement"), ACCEPTED)
def test_the_union_named_in_full_is_accepted(lang: str, statement: str) -> None:
    assert names_the_union(statement, lang)
    assert names_the_union(unicodedata.normalize("NFD", statement), lang)


@pytest.mark.parametrize(("lang", "statement"), REFUSED)
def test_an_abbreviation_or_another_language_is_refused(lang: str, statement: str) -> None:
    assert not names_the_union(statement, lang)


def test_every_official_language_is_covered() -> None:
    assert len(OFFICIAL_LANGUAGES) == 24
    assert {lang.split("-")[0] for lang, _ in ACCEPTED} == OFFICIAL_LANGUAGES


def test_a_language_outside_the_24_is_not_refused() -> None:
    """The tool cannot know Norwegian's name of the Union: never refused, warned when unknown."""
    norwegian = check_statement("Finansiert av Den europeiske union", "nb")
    assert (norwegian.official, norwegian.ok) == (False, False)
    assert check_statement("Funded by the European Union", "tr").ok


def yaml_line(project: Path, needle: str) -> int:
    lines = (project / "mirage.yaml").read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, 1) if needle in line)


def test_a_custom_statement_funded_by_the_eu_is_refused(project: Path, run_cli: RunCli) -> None:
    edit(project / "mirage.yaml", "  preset: amif-2014-2020",
         "  preset: custom\n  statement: Funded by the EU\n  text: Our grant's disclaimer.")
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2
    line = yaml_line(project, "statement: Funded by the EU")
    assert result.err.splitlines() == [
        f'mirage.yaml:{line}: disclaimer.statement must write out the name of the European '
        'Union in full in English ("European Union"); "EU" is not enough (EU visibility rules)']


@pytest.mark.parametrize(("lang", "statement", "expected"), [
    ("fr", "Financé par l'UE", '("Union européenne"); "UE" is not enough'),
    ("de", "Gefördert durch die EU", '("Europäische Union"); "EU" is not enough'),
    ("fr", "Funded by the European Union",
     '("Union européenne"); it names it in English, not in French'),
])
def test_a_translation_without_the_union_in_its_language_is_refused(
        project: Path, run_cli: RunCli, lang: str, statement: str, expected: str) -> None:
    edit(project / "mirage.yaml", "  translations: {}",
         f"  translations:\n    {lang}:\n      statement: {statement}\n      text: Texte.")
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2
    language = {"fr": "French", "de": "German"}[lang]
    assert (f"mirage.yaml:{yaml_line(project, 'statement: ' + statement)}: "
            f"disclaimer.translations.{lang}.statement must write out the name of the European "
            f"Union in full in {language} {expected} (EU visibility rules)"
            ) in result.err.splitlines()


def test_translations_naming_the_union_in_their_language_pass(project: Path,
                                                              run_cli: RunCli) -> None:
    chosen = [ACCEPTED[i] for i in (0, 2, 4, 6, 7)]  # de, fr, pl, es, el as written
    assert [lang for lang, _ in chosen] == ["de", "fr", "pl", "es", "el"]
    entries = "".join(f"    {lang}:\n      statement: \"{statement}\"\n      text: Texte.\n"
                      for lang, statement in chosen)
    edit(project / "mirage.yaml", "  translations: {}\n", "  translations:\n" + entries)
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 0, result.err
    assert "visibility" not in result.err and "warning" not in result.err


def test_a_project_in_french_is_warned_that_the_preset_is_english(project: Path,
                                                                   run_cli: RunCli) -> None:
    """The presets' statements are English: in a French project they stand in (a warning, as a
    missing translation is), and a French statement of the project's own replaces them."""
    edit(project / "mirage.yaml", "  language: en", "  language: fr")
    for translated in (project / SAMPLE_ISSUE).glob("*.fr.md"):
        translated.unlink()  # the issue in one language, the project's: French
    issue = project / SAMPLE_ISSUE / "issue.yaml"
    lines = issue.read_text(encoding="utf-8").splitlines(keepends=True)
    issue.write_text("".join(line for line in lines if not line.startswith("  en:")),
                     encoding="utf-8")
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 0, result.err
    assert (f"mirage.yaml:{yaml_line(project, 'preset: amif-2014-2020')}: warning: preset "
            "amif-2014-2020 gives its statement and text in English, but the project's language "
            "is French: every fr message carries the English ones (write disclaimer.statement "
            "and disclaimer.text in French as your grant agreement words them)"
            ) in result.err.splitlines()
    edit(project / "mirage.yaml", "  preset: amif-2014-2020",
         "  preset: eu-2021-2027-shared\n  statement: Cofinancé par l'Union européenne")
    assert "warning" not in run_cli("validate", SAMPLE_ISSUE).err
    edit(project / "mirage.yaml", "Cofinancé par l'Union européenne", "Cofinancé par l'UE")
    refused = run_cli("validate", SAMPLE_ISSUE)
    assert refused.code == 2
    assert (f"mirage.yaml:{yaml_line(project, 'statement: Cofinancé')}: disclaimer.statement "
            "must write out the name of the European Union in full in French (\"Union "
            "européenne\"); \"UE\" is not enough (EU visibility rules)"
            ) in refused.err.splitlines()


def test_a_statement_in_a_language_outside_the_24_is_a_warning(project: Path,
                                                               run_cli: RunCli) -> None:
    edit(project / "mirage.yaml", "  language: en", "  language: nb")
    issue = project / SAMPLE_ISSUE / "issue.yaml"
    issue.write_text(issue.read_text(encoding="utf-8").replace("  en:", "  nb:"),
                     encoding="utf-8")
    edit(project / "mirage.yaml", "  preset: amif-2014-2020",
         "  preset: amif-2014-2020\n  statement: Finansiert av Den europeiske union")
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 0, result.err
    assert (f"mirage.yaml:{yaml_line(project, 'statement: Finansiert')}: warning: "
            "disclaimer.statement is in Norwegian Bokmål, which is not an official language of "
            "the EU: mirage-mailer cannot check that it writes out the name of the European "
            "Union in full (make sure it does, as your grant agreement words it)"
            ) in result.err.splitlines()
