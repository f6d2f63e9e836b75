"""Language codes in mirage.yaml are read as issues and lists read them: `EN`, `pt-br` and `FR`
name the same languages as `en`, `pt-BR` and `fr`."""

from __future__ import annotations

from pathlib import Path

from helpers import SAMPLE_ISSUE, RunCli, edit

FR = ("  translations:\n    {key}:\n      statement: Financé par l'Union européenne\n"
      "      text: Texte confirmé de la convention de subvention.")


def test_project_language_in_capitals_is_the_same_language(project: Path,
                                                           run_cli: RunCli) -> None:
    edit(project / "mirage.yaml", "  language: en", "  language: EN")
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 0, result.err
    assert "default language 'EN'" not in result.err
    assert "languages en, fr;" in result.out


def test_translation_key_in_capitals_is_used(project: Path, run_cli: RunCli) -> None:
    edit(project / "mirage.yaml", "  translations: {}", FR.format(key="FR"))
    result = run_cli("preview", SAMPLE_ISSUE, "--lang", "fr")
    assert result.code == 0, result.err
    assert "warning" not in result.err
    text = (project / "preview/2021-10-partners-meeting/fr.txt").read_text(encoding="utf-8")
    assert "Texte confirmé de la convention de subvention." in text


def test_translation_given_twice_in_two_cases_is_refused(project: Path,
                                                          run_cli: RunCli) -> None:
    edit(project / "mirage.yaml", "  translations: {}",
         FR.format(key="fr") + "\n" + FR.format(key="FR").split("\n", 1)[1])
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2
    assert ("mirage.yaml:35: disclaimer translation 'FR' repeats 'fr' (keep only one "
            "translation per language)") in result.err.splitlines()
