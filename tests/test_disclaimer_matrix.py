"""Every disclaimer preset x the templates `init` writes x every kind of issue language.

Each case runs the real console command in-process (``main``): `init` into tmp_path, an edit of
mirage.yaml as an officer would make it, then `validate`, `preview` and `send --dry-run`, which
must be clean.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, edit
from mirage_mailer.cli import main

PRESETS: dict[str, str] = {
    "amif": "  preset: amif-2014-2020",
    "direct": "  preset: eu-2021-2027-direct\n  authority: European Commission",
    "direct-the": ("  preset: eu-2021-2027-direct\n"
                   "  authority: the European Research Executive Agency (REA)"),
    "shared": "  preset: eu-2021-2027-shared",
    "custom": ("  preset: custom\n  statement: Funded by the European Union\n"
               "  text: The MIraGE project is funded by the European Union's AMIF. Views are "
               "the authors' own."),
}
# The French statement and text an officer copies from the grant agreement (confirmed).
FRENCH = {
    "shared": "    fr:\n      statement: Cofinancé par l'Union européenne\n",
    "other": ("    fr:\n      statement: Financé par l'Union européenne\n"
              "      text: Texte confirmé de la convention de subvention.\n"),
}
ENGLISH_TEXT = {
    "amif": "Asylum, Migration and Integration Fund",
    "direct": "the European Union or the European Commission. Neither",
    "direct-the": ("the European Union or the European Research Executive Agency (REA). "
                   "Neither"),
    "shared": "Co-funded by the European Union",
    "custom": "Views are the authors' own.",
}


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The console command in-process: exit code, stdout, stderr."""
    with pytest.raises(SystemExit) as stopped:
        main(list(args))
    out, err = capsys.readouterr()
    code = stopped.value.code
    return (code if isinstance(code, int) else 0), out, err


def only_english(root: Path) -> None:
    """The issue without any French: no translated article, subject, title or preheader."""
    issue = root / SAMPLE_ISSUE
    for path in issue.glob("*.fr.md"):
        path.unlink()
    lines = (issue / "issue.yaml").read_text(encoding="utf-8").splitlines()
    kept = [line for line in lines if not line.startswith("  fr:")]
    (issue / "issue.yaml").write_text("\n".join(kept) + "\n", encoding="utf-8")


@pytest.mark.parametrize("languages", ["fr-confirmed", "fr-unconfirmed", "en-only"])
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_validates_and_previews_clean(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        preset: str, languages: str) -> None:
    monkeypatch.chdir(tmp_path)
    assert run(capsys, "init", "proj")[0] == 0
    root = tmp_path / "proj"
    monkeypatch.chdir(root)
    edit(root / "mirage.yaml", "  preset: amif-2014-2020", PRESETS[preset])
    if languages == "fr-confirmed":
        edit(root / "mirage.yaml", "  translations: {}",
             "  translations:\n" + FRENCH["shared" if preset == "shared" else "other"])
    if languages == "en-only":
        only_english(root)

    code, _, err = run(capsys, "validate", SAMPLE_ISSUE)
    assert code == 0, err
    problems = [line for line in err.splitlines() if line.strip()]
    if languages == "fr-unconfirmed":
        assert len(problems) == 1, err
        assert problems[0].startswith("mirage.yaml:")
        assert (": warning: no confirmed 'fr' translation of the EU disclaimer; fr readers get "
                "the en text") in problems[0]
    else:
        assert problems == [], err

    code, _, err = run(capsys, "preview", SAMPLE_ISSUE, "--out", "out")
    assert code == 0, err
    code, _, err = run(capsys, "send", SAMPLE_ISSUE, "--dry-run")
    assert code == 0, err
    english = (root / "out/en.txt").read_text(encoding="utf-8")
    assert ENGLISH_TEXT[preset] in " ".join(english.split())
    assert "Funded by the European Union" in (root / "out/en.html").read_text(
        encoding="utf-8") or preset == "shared"
    if languages == "en-only":
        assert not (root / "out/fr.html").exists()
        return
    french = " ".join((root / "out/fr.txt").read_text(encoding="utf-8").split())
    if languages == "fr-confirmed":
        assert "financé par l'union européenne" in french.lower().replace("cof", "f")
        assert ENGLISH_TEXT[preset] not in french
    else:
        assert ENGLISH_TEXT[preset] in french


@pytest.mark.parametrize(("given", "missing"), [
    ("      statement: Financé par l'Union européenne\n", "text"),
    ("      text: Texte confirmé de la convention de subvention.\n", "statement"),
])
def test_a_partial_translation_says_what_it_lacks_and_where(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        given: str, missing: str) -> None:
    """An officer who copied only the statement (or only the text) is told which part to
    add, at the translation's own line, not that there is no translation at all."""
    monkeypatch.chdir(tmp_path)
    assert run(capsys, "init", "proj")[0] == 0
    root = tmp_path / "proj"
    monkeypatch.chdir(root)
    edit(root / "mirage.yaml", "  translations: {}", "  translations:\n    fr:\n" + given)
    line = (root / "mirage.yaml").read_text(encoding="utf-8").splitlines().index("    fr:") + 1

    code, _, err = run(capsys, "validate", SAMPLE_ISSUE)
    assert code == 0, err
    assert [p for p in err.splitlines() if p.strip()] == [
        f"mirage.yaml:{line}: warning: disclaimer.translations.fr has no {missing}, which "
        "preset amif-2014-2020 needs; fr readers get the en text (add "
        f"{missing}: under disclaimer.translations.fr from your grant agreement; never "
        "machine-translate)"]
