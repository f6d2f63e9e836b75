"""``init``: the project's own name, website, contact, language and preset, asked on a real
pseudo-terminal or given as flags, written into mirage.yaml with its comments kept, and a
project that validates (and sends) as written."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from email import message_from_bytes
from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli
from mirage_mailer.project.config import load_settings
from mirage_mailer.project.scaffold import scaffold_root

SCAFFOLD_CONFIG = scaffold_root().joinpath("mirage.yaml").read_text(encoding="utf-8")
FLAGS = ("--name", "Acme Alliance", "--website", "https://www.acme-alliance.eu/",
         "--contact", "hello@acme-alliance.eu", "--lang", "en", "--preset",
         "eu-2021-2027-shared", "--privacy-url", "https://www.acme-alliance.eu/privacy")


def _comments(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.lstrip().startswith("#")]


def test_flags_write_the_project_and_keep_the_comments(tmp_path: Path, run_cli: RunCli) -> None:
    result = run_cli("init", "acme", *FLAGS, cwd=tmp_path)
    assert result.code == 0, result.err
    assert result.err == ""  # nothing asked, nothing to warn about
    text = (tmp_path / "acme" / "mirage.yaml").read_text(encoding="utf-8")
    assert "MIraGE" not in text and "mirageproject" not in text
    # every comment stays; the sample's addresses in them now read as the project's
    assert _comments(text) == [c.replace("https://www.mirageproject.eu",
                                         "https://www.acme-alliance.eu").replace(
        "mirageproject.eu", "acme-alliance.eu") for c in _comments(SCAFFOLD_CONFIG)]
    settings = load_settings(tmp_path / "acme" / "mirage.yaml")
    assert (settings.project.name, settings.project.website, settings.project.contact,
            settings.project.language) == ("Acme Alliance", "https://www.acme-alliance.eu",
                                           "hello@acme-alliance.eu", "en")
    assert settings.sender.from_header == "Acme Alliance <hello@acme-alliance.eu>"
    assert settings.disclaimer.preset == "eu-2021-2027-shared"
    assert "I agree that Acme Alliance sends me its newsletter" in settings.web.consent_text
    project = tmp_path / "acme"
    checked = run_cli("validate", SAMPLE_ISSUE, cwd=project)
    assert checked.code == 0, checked.err
    sent = run_cli("send", SAMPLE_ISSUE, "--yes", cwd=project)
    assert sent.code == 0, sent.err
    mail = message_from_bytes(next((project / "outbox" / "new").iterdir()).read_bytes())
    assert mail["From"] == "Acme Alliance <hello@acme-alliance.eu>"
    assert "Co-funded by the European Union" in mail.get_payload()[0].get_payload(decode=True)\
        .decode("utf-8")


@pytest.mark.parametrize("lang", ["fr", "de", "pt_br"])
def test_any_default_language_gives_a_project_that_validates(tmp_path: Path, run_cli: RunCli,
                                                             lang: str) -> None:
    result = run_cli("init", "p", "--name", "Dr. Ñ's \"Project\": #1", "--contact",
                     "info@example.org", "--lang", lang, "--preset", "eu-2021-2027-direct",
                     "--authority", "the European Research Executive Agency (REA)",
                     cwd=tmp_path)
    assert result.code == 0, result.err
    settings = load_settings(tmp_path / "p" / "mirage.yaml")
    assert settings.project.name == "Dr. Ñ's \"Project\": #1"
    assert settings.project.website is None and settings.web.privacy_url is None
    assert settings.sender.from_name == "Dr. Ñ's \"Project\": #1"
    assert settings.disclaimer.authority == "the European Research Executive Agency (REA)"
    checked = run_cli("validate", SAMPLE_ISSUE, cwd=tmp_path / "p")
    assert checked.code == 0, checked.err
    code = {"pt_br": "pt-BR"}.get(lang, lang)
    assert checked.out.split("; ")[1].startswith(f"languages {code}")
    if lang == "fr":  # the sample's French text is now the default-language one
        text = (tmp_path / "p" / SAMPLE_ISSUE / "partners-meeting.md").read_text()
        assert "Réunion des partenaires" in text
        # the preset's words are English: English readers get them, French ones are warned
        # about once (it said "en readers get the fr text" beside "fr messages carry English")
        assert "'en' translation" not in checked.err
        assert "every fr message carries the English ones" in checked.err
    config = (tmp_path / "p" / "mirage.yaml").read_text()
    preset_line = config.splitlines().index("  preset: eu-2021-2027-direct")
    assert "AMIF" not in config.splitlines()[preset_line - 1]  # no comment naming another


@pytest.mark.parametrize(("args", "line"), [
    (("--contact", "not-an-address"), "--contact: 'not-an-address' is not a valid e-mail"),
    (("--contact", "A <a@example.org>"), "--contact: 'A <a@example.org>' is not a plain"),
    (("--contact", "a@example.org", "--website", "ftp://x.org"),
     "--website: 'ftp://x.org' is not a web address"),
    (("--contact", "a@example.org", "--lang", "zz"), "--lang: 'zz' is not a known language"),
    (("--contact", "a@example.org", "--preset", "custom"), "--preset: init writes a preset"),
    (("--contact", "a@example.org", "--preset", "eu-2021-2027-direct"),
     "--authority: is needed"),
    (("--name", "Acme"), "--contact: is needed"),
    (("--contact", "a@example.org", "--name", "two\nlines"),
     "--name: the project's name must be one line"),
])
def test_a_bad_answer_in_a_script_is_one_line_and_writes_nothing(
        tmp_path: Path, run_cli: RunCli, args: tuple[str, ...], line: str) -> None:
    result = run_cli("init", "p", *args, cwd=tmp_path)
    assert result.code == 2, result.err
    assert len(result.err.splitlines()) == 1 and result.err.startswith(line), result.err
    assert not (tmp_path / "p").exists()


def test_without_a_terminal_or_flags_the_sample_stays_as_it_was(tmp_path: Path,
                                                                run_cli: RunCli) -> None:
    result = run_cli("init", "sample", cwd=tmp_path)
    assert result.code == 0, result.err
    assert (tmp_path / "sample" / "mirage.yaml").read_text(encoding="utf-8") == SCAFFOLD_CONFIG
    assert "keeps the MIraGE sample's name and addresses" in result.err


class Terminal:
    """``mirage-mailer ARGS`` on a pseudo-terminal, as a person at a keyboard runs it."""

    def __init__(self, cwd: Path, *args: str) -> None:
        self.master, slave = pty.openpty()
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "TERM": "dumb", "COLUMNS": "200"}
        self.proc = subprocess.Popen([sys.executable, "-m", "mirage_mailer", *args], cwd=cwd,
                                     stdin=slave, stdout=slave, stderr=slave, env=env)
        os.close(slave)
        self.seen = ""

    def expect(self, text: str, timeout: float = 30) -> str:
        """Read until ``text`` appears; everything read so far."""
        deadline = time.monotonic() + timeout
        while text not in self.seen:
            left = deadline - time.monotonic()
            assert left > 0, f"never saw {text!r} in:\n{self.seen}"
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:  # the other side closed
                    chunk = b""
                assert chunk, f"the program ended before {text!r}:\n{self.seen}"
                self.seen += chunk.decode("utf-8", "replace").replace("\r\n", "\n")
        return self.seen

    def answer(self, prompt: str, reply: str) -> None:
        self.expect(prompt)
        self.seen = self.seen[self.seen.index(prompt) + len(prompt):]
        os.write(self.master, reply.encode("utf-8") + b"\r")

    def finish(self, timeout: float = 60) -> tuple[int, str]:
        rest = ""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:
                    chunk = b""
                if not chunk:
                    break
                rest += chunk.decode("utf-8", "replace")
            elif self.proc.poll() is not None:
                break
        code = self.proc.wait(timeout=10)
        os.close(self.master)
        return code, self.seen + rest.replace("\r\n", "\n")


def test_on_a_terminal_init_asks_and_asks_again_after_a_wrong_answer(
        tmp_path: Path, run_cli: RunCli) -> None:
    term = Terminal(tmp_path, "init", "green-bridges", "--lang", "zz")
    term.answer("Project name [green-bridges]: ", "")  # Enter keeps the folder's name
    term.answer("Project website (Enter: none): ", "www.green-bridges.eu")
    assert "is not a web address (write it like https://www.example.org)" in term.expect(
        "Project website (Enter: none): ")
    term.answer("Project website (Enter: none): ", "https://www.green-bridges.eu")
    # the contact's default comes from the website; the --lang flag given was wrong: asked
    term.answer("Contact address readers can write to [info@green-bridges.eu]: ", "")
    privacy = "Address of your privacy notice (Enter: none yet; sign-up needs it): "
    term.answer(privacy, "http://www.green-bridges.eu/privacy")
    assert "must start with https://" in term.expect(privacy)
    term.answer(privacy, "https://www.green-bridges.eu/privacy")
    assert "'zz' is not a known language code" in term.expect("(ISO 639-1) [en]: ")
    term.answer("(ISO 639-1) [en]: ", "fr")
    assert "eu-2021-2027-shared: 2021-2027 funds under shared management" in term.expect(
        "EU disclaimer preset [amif-2014-2020]: ")
    term.answer("EU disclaimer preset [amif-2014-2020]: ", "custom")
    assert "init writes a preset" in term.expect("EU disclaimer preset [amif-2014-2020]: ")
    term.answer("EU disclaimer preset [amif-2014-2020]: ", "eu-2021-2027-direct")
    term.answer("as your grant agreement names it: ", "the European Commission")
    code, output = term.finish()
    assert code == 0, output
    assert "created green-bridges/mirage.yaml" in output
    settings = load_settings(tmp_path / "green-bridges" / "mirage.yaml")
    assert (settings.project.name, settings.project.website, settings.project.contact,
            settings.project.language, settings.disclaimer.preset,
            settings.disclaimer.authority) == (
        "green-bridges", "https://www.green-bridges.eu", "info@green-bridges.eu", "fr",
        "eu-2021-2027-direct", "the European Commission")
    assert settings.web.privacy_url == "https://www.green-bridges.eu/privacy"
    checked = run_cli("validate", SAMPLE_ISSUE, cwd=tmp_path / "green-bridges")
    assert checked.code == 0, checked.err


def test_on_a_terminal_every_flag_given_asks_nothing(tmp_path: Path) -> None:
    term = Terminal(tmp_path, "init", "acme", *FLAGS)
    code, output = term.finish()
    assert code == 0, output
    assert "questions" not in output and "[" not in output.split("created")[0]
    assert (tmp_path / "acme" / "mirage.yaml").is_file()


def _written(root: Path) -> dict[Path, str]:
    return {path.relative_to(root): path.read_text(encoding="utf-8")
            for path in sorted(root.rglob("*")) if path.is_file()}


@pytest.mark.parametrize("website", ["https://gdh.example.eu", None])
def test_answers_leave_nothing_of_mirage_in_any_file(tmp_path: Path, run_cli: RunCli,
                                                     website: str | None) -> None:
    """The sample issue names, links and gives the address of the new project, in every
    language; without a website its links are left as plain text."""
    site = ("--website", website) if website else ()
    result = run_cli("init", "p2", "--name", "Green Deal Hub", *site, "--contact",
                     "news@gdh.example.eu", "--lang", "fr", "--preset", "eu-2021-2027-direct",
                     "--authority", "the European Commission", cwd=tmp_path)
    assert result.code == 0, result.err
    files = _written(tmp_path / "p2")
    found = [(rel, line) for rel, text in files.items() for line in text.splitlines()
             if "MIraGE" in line or "mirageproject" in line]
    assert found == []
    issue = Path(SAMPLE_ISSUE)
    assert "Lettre d'information Green Deal Hub" in files[issue / "issue.yaml"]
    assert "[news@gdh.example.eu](mailto:news@gdh.example.eu)" in files[
        issue / "online-trainings.en.md"]
    if website:
        assert "[project website](https://gdh.example.eu)" in files[
            issue / "online-trainings.en.md"]
        assert "[site du projet](https://gdh.example.eu)" in files[issue / "online-trainings.md"]
    else:
        assert "on the project website, or" in files[issue / "online-trainings.en.md"]
    checked = run_cli("validate", SAMPLE_ISSUE, cwd=tmp_path / "p2")
    assert checked.code == 0, checked.err


def test_an_odd_name_in_the_sample_issue_reads_back_as_given(tmp_path: Path,
                                                             run_cli: RunCli) -> None:
    name = "Dr. Ñ's \"Project\": #1 *x*"
    result = run_cli("init", "p", "--name", name, "--contact", "info@example.org",
                     cwd=tmp_path)
    assert result.code == 0, result.err
    checked = run_cli("validate", SAMPLE_ISSUE, cwd=tmp_path / "p")
    assert checked.code == 0, checked.err
    preview = run_cli("preview", SAMPLE_ISSUE, "--out", "out", cwd=tmp_path / "p")
    assert preview.code == 0, preview.err
    text = " ".join((tmp_path / "p" / "out" / "en.txt").read_text(encoding="utf-8").split())
    assert f"{name} partners' meeting, October 2021" in text
    # the body's Markdown escapes what would be markup (its typographer curls the quotes)
    assert "Project”: #1 *x* partners met" in text and "MIraGE" not in text


def test_the_privacy_notice_is_asked_for_never_made_up(tmp_path: Path,
                                                       run_cli: RunCli) -> None:
    flags = [flag for flag in FLAGS if "privacy" not in flag]
    result = run_cli("init", "acme", *flags, cwd=tmp_path)
    assert result.code == 0, result.err
    text = (tmp_path / "acme" / "mirage.yaml").read_text(encoding="utf-8")
    assert "/privacy" not in text.replace("https://www.example.org/privacy", "")
    assert "  # privacy_url: https://www.example.org/privacy   # set it: sign-up needs your " \
           "privacy notice" in text
    assert load_settings(tmp_path / "acme" / "mirage.yaml").web.privacy_url is None
    given = run_cli("init", "given", *FLAGS, cwd=tmp_path)
    assert given.code == 0, given.err
    assert load_settings(tmp_path / "given" / "mirage.yaml").web.privacy_url == \
        "https://www.acme-alliance.eu/privacy"


@pytest.mark.parametrize(("url", "line"), [
    ("http://www.acme.eu/privacy", "--privacy-url: the privacy notice's address must start "
                                   "with https://"),
    ("https://me:secret@www.acme.eu/privacy", "--privacy-url: the privacy notice's address "
                                              "must not hold a user name or password"),
    ("www.acme.eu/privacy", "--privacy-url: 'www.acme.eu/privacy' is not a web address"),
])
def test_a_bad_privacy_url_is_one_line_and_writes_nothing(tmp_path: Path, run_cli: RunCli,
                                                          url: str, line: str) -> None:
    result = run_cli("init", "p", "--name", "Acme", "--contact", "a@example.org",
                     "--privacy-url", url, cwd=tmp_path)
    assert result.code == 2
    assert len(result.err.splitlines()) == 1 and result.err.startswith(line), result.err
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize(("lang", "start"), [
    ("fr", "J'accepte que Green Deal Hub m'envoie sa lettre d'information"),
    ("en", "I agree that Green Deal Hub sends me its newsletter"),
])
def test_the_consent_text_is_in_the_projects_language(tmp_path: Path, run_cli: RunCli,
                                                      lang: str, start: str) -> None:
    result = run_cli("init", "p", "--name", "Green Deal Hub", "--contact", "a@example.org",
                     "--lang", lang, cwd=tmp_path)
    assert result.code == 0, result.err
    assert load_settings(tmp_path / "p" / "mirage.yaml").web.consent_text.startswith(start)


@pytest.mark.parametrize("flags", [(), ("--name", "Acme", "--contact", "a@example.org")])
def test_an_existing_project_is_refused_before_anything_else(
        tmp_path: Path, run_cli: RunCli, flags: tuple[str, ...]) -> None:
    assert run_cli("init", "p7", cwd=tmp_path).code == 0
    again = run_cli("init", "p7", *flags, cwd=tmp_path)
    assert again.code == 2
    assert again.err.splitlines() == [
        "p7/issues/2021-10-partners-meeting/issue.yaml: already exists; init never overwrites "
        "files (choose an empty or new folder)"], again.err


def test_the_next_step_it_prints_runs_for_a_folder_with_a_space(tmp_path: Path,
                                                               run_cli: RunCli) -> None:
    result = run_cli("init", "news letter", *FLAGS, cwd=tmp_path)
    assert result.code == 0, result.err
    step = result.out.splitlines()[-1].removeprefix("next: ")
    assert step == "cd 'news letter' && mirage-mailer validate " + SAMPLE_ISSUE
    shell = subprocess.run(["sh", "-c", step.replace("mirage-mailer", "true", 1)],
                           cwd=tmp_path, capture_output=True, text=True, check=False)
    assert shell.returncode == 0, shell.stderr  # the cd works as printed


def test_the_next_step_it_prints_runs_for_a_folder_that_starts_with_a_dash(
        tmp_path: Path, run_cli: RunCli) -> None:
    """Was "cd '-Νέο έργο'", which cd takes for options: the folder is printed as ./-..."""
    result = run_cli("init", *FLAGS, "--", "-Νέο έργο", cwd=tmp_path)
    assert result.code == 0, result.err
    step = result.out.splitlines()[-1].removeprefix("next: ")
    assert step == "cd './-Νέο έργο' && mirage-mailer validate " + SAMPLE_ISSUE
    shell = subprocess.run(["bash", "-c", step.replace("mirage-mailer", "true", 1) + " && pwd"],
                           cwd=tmp_path, capture_output=True, text=True, check=False)
    assert shell.returncode == 0, shell.stderr  # the cd works as printed
    assert shell.stdout.strip() == str(tmp_path / "-Νέο έργο")
