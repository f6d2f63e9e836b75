"""The officer's words for the errors issue 9 found them stumbling over: each one end to end,
through the real CLI, on the exact line printed."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli, edit, use_relay
from support.ports import RefusingPorts
from support.smtp_sink import Fault, SmtpSink

ISSUE_YAML = f"{SAMPLE_ISSUE}/issue.yaml"
HTML = "templates/newsletter.html.j2"
RESUME = "nothing was lost: 5 recipients stay pending, run the same command again to resume"


def problems(err: str) -> list[str]:
    """Every line but the sample's translation warning."""
    return [line for line in err.splitlines() if ": warning: " not in line]


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MIRAGE_SMTP_USER", raising=False)
    monkeypatch.delenv("MIRAGE_SMTP_PASSWORD", raising=False)


@pytest.fixture
def auth_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink(rules=[Fault("MAIL", "530 5.7.0 Authentication required")])
    with sink.running_in_thread():
        yield sink


def test_relay_wanting_auth_names_the_unset_variables(project: Path, run_cli: RunCli,
                                                      auth_sink: SmtpSink,
                                                      no_credentials: None) -> None:
    use_relay(project, auth_sink.url, timeout=5)
    result = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert result.code == 3, result.err
    assert problems(result.err) == [
        f"mirage.yaml:17: 127.0.0.1:{auth_sink.port}: the relay requires authentication (530 "
        "5.7.0 Authentication required), and MIRAGE_SMTP_USER and MIRAGE_SMTP_PASSWORD are "
        "not set: export them "
        f"(see transport.username_env/password_env); {RESUME}"]
    assert "return_path" not in result.err
    assert auth_sink.received == []


def test_relay_wanting_auth_names_only_the_variable_missing(project: Path, run_cli: RunCli,
                                                            auth_sink: SmtpSink,
                                                            no_credentials: None) -> None:
    use_relay(project, auth_sink.url, timeout=5)
    result = run_cli("send", SAMPLE_ISSUE, "--yes", env={"MIRAGE_SMTP_PASSWORD": "s3cret"})
    assert result.code == 2, result.err
    assert problems(result.err) == [
        "mirage.yaml:19: MIRAGE_SMTP_PASSWORD is set but MIRAGE_SMTP_USER is not "
        "(export MIRAGE_SMTP_USER=... (or unset MIRAGE_SMTP_PASSWORD))"]
    assert "s3cret" not in result.err


@pytest.fixture
def login_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink(auth=("mirage", "right"), auth_required=True, auth_require_tls=False)
    with sink.running_in_thread():
        yield sink


def test_refused_credentials_name_the_variables_never_the_values(
        project: Path, run_cli: RunCli, login_sink: SmtpSink) -> None:
    use_relay(project, login_sink.url, timeout=5)
    edit(project / "mirage.yaml", "  max_attempts: 5", "  max_attempts: 5\n"
         "  allow_plaintext_auth: true")
    env = {"MIRAGE_SMTP_USER": "officer-name", "MIRAGE_SMTP_PASSWORD": "wrong-pass"}
    result = run_cli("send", SAMPLE_ISSUE, "--yes", env=env)
    assert result.code == 3, result.err
    assert problems(result.err) == [
        f"mirage.yaml:17: 127.0.0.1:{login_sink.port}: the relay refused the user name and "
        "password in MIRAGE_SMTP_USER and MIRAGE_SMTP_PASSWORD (535 5.7.8 Authentication "
        "credentials invalid): check their "
        f"values (see transport.username_env/password_env); {RESUME}"]
    assert "officer-name" not in result.err and "wrong-pass" not in result.err


def test_a_relay_without_starttls_is_named(project: Path, run_cli: RunCli) -> None:
    with SmtpSink().running_in_thread() as sink:  # offers no STARTTLS
        use_relay(project, sink.url, timeout=5)
        edit(project / "mirage.yaml", "  starttls: never", "  starttls: always")
        result = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert result.code == 3, result.err
    assert problems(result.err) == [
        f"mirage.yaml:17: 127.0.0.1:{sink.port}: does not offer STARTTLS (transport.starttls "
        "is 'always'): use smtps:// if the server speaks implicit TLS on another port, or set "
        f"starttls: auto/never only for a trusted local relay; {RESUME}"]
    assert sink.received == []


def test_unreachable_relay_says_nothing_was_lost(project: Path, run_cli: RunCli,
                                                refusing_port: RefusingPorts) -> None:
    port = refusing_port()
    use_relay(project, f"smtp://127.0.0.1:{port}", timeout=5)
    result = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert result.code == 3, result.err
    assert problems(result.err) == [
        f"mirage.yaml:17: cannot connect to 127.0.0.1:{port} (connection refused); {RESUME}"]


def test_silent_server_is_a_greeting_timeout(project: Path, run_cli: RunCli) -> None:
    with socket.socket() as silent:  # the kernel accepts; nobody ever says 220
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        use_relay(project, f"smtp://127.0.0.1:{port}", timeout=1)
        result = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert result.code == 3, result.err
    assert problems(result.err) == [
        f"mirage.yaml:17: connected to 127.0.0.1:{port}, then timed out waiting for the "
        f"greeting (after 1 s); {RESUME}"]


YAML_CASES = [
    pytest.param("mirage.yaml", "  website: https", "   website: https",
                 "mirage.yaml:6: this line is indented more than the one above (line it up "
                 "with the line above, or put the value above in quotes)", id="indented-more"),
    pytest.param(ISSUE_YAML, "number: 4", " number: 4",
                 f"{ISSUE_YAML}:7: this line is indented less than the one above, but more "
                 "than the key it belongs to (line it up with the keys it belongs with)",
                 id="indented-between"),
    pytest.param("mirage.yaml", "  name: MIraGE", "\tname: MIraGE",
                 "mirage.yaml:5: a tab is used for indentation (indent with spaces only)",
                 id="tab"),
    pytest.param("mirage.yaml", "  name: MIraGE", '  name: "MIraGE',
                 "mirage.yaml:5: this quote is never closed (end the value with the same "
                 "quote mark)", id="unclosed-quote"),
    pytest.param(ISSUE_YAML, 'lessons learned"', "lessons learned",
                 f"{ISSUE_YAML}:2: this quote is never closed (end the value with the same "
                 "quote mark)", id="unclosed-quote-before-another"),
    pytest.param("mirage.yaml", "  name: MIraGE", "  name: [MIraGE",
                 "mirage.yaml:5: this '[' is never closed (add the closing ']', or put the "
                 "value in quotes)", id="unclosed-bracket"),
    pytest.param("mirage.yaml", "  name: MIraGE", "  name: {MIraGE",
                 "mirage.yaml:5: this '{' is never closed (add the closing '}', or put the "
                 "value in quotes)", id="unclosed-brace"),
    pytest.param("mirage.yaml", "  name: MIraGE", "  name: MIraGE: the project",
                 "mirage.yaml:5: a value contains ': ' (put the value in quotes)",
                 id="colon-in-value"),
    pytest.param("mirage.yaml", "  language: en", "  language: en\n  - fr",
                 "mirage.yaml:9: a '- ' list item where a key was expected (write 'key: "
                 "value', or put the list under a key that ends with ':')", id="dash-for-key"),
    pytest.param("mirage.yaml", "  concurrency: 4", "  concurrency: 4\n  concurrency: 8",
                 "mirage.yaml:22: key 'concurrency' appears twice, also at line 21 (keep only "
                 "one of them)", id="duplicate-key"),
]


@pytest.mark.parametrize(("file", "old", "new", "expected"), YAML_CASES)
def test_yaml_syntax_in_plain_words(project: Path, run_cli: RunCli, file: str, old: str,
                                    new: str, expected: str) -> None:
    edit(project / file, old, new)
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2, result.err
    assert problems(result.err) == [expected]


TYPE_CASES = [
    pytest.param("  concurrency: 4", "  concurrency: four",
                 "mirage.yaml:21: 'transport.concurrency' must be a whole number from 1 to 100; "
                 "you wrote 'four'", id="word-for-number"),
    pytest.param("  concurrency: 4", "  concurrency: 2.5",
                 "mirage.yaml:21: 'transport.concurrency' must be a whole number from 1 to 100; "
                 "you wrote 2.5", id="fraction"),
    pytest.param("  timeout: 30", "  timeout: soon",
                 "mirage.yaml:24: 'transport.timeout' must be a number from 1 to 600; "
                 "you wrote 'soon'", id="timeout-word"),
    pytest.param("  rate_per_second: 10", "  rate_per_second: -5",
                 "mirage.yaml:22: 'transport.rate_per_second' must be a number from 0.01 to "
                 "100000, or null for no limit; you wrote -5", id="negative-rate"),
    pytest.param("  max_attempts: 5", "  max_attempts: 5\n  allow_plaintext_auth: maybe",
                 "mirage.yaml:26: 'transport.allow_plaintext_auth' must be true or false; you "
                 "wrote 'maybe'", id="flag"),
    pytest.param("  max_attempts: 5", "  max_attempts: [5]",
                 "mirage.yaml:25: 'transport.max_attempts' must be a whole number from 1 to "
                 "100; you wrote a list", id="list-for-number"),
]


@pytest.mark.parametrize(("old", "new", "expected"), TYPE_CASES)
def test_type_errors_in_the_officers_words(project: Path, run_cli: RunCli, old: str, new: str,
                                           expected: str) -> None:
    edit(project / "mirage.yaml", old, new)
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2, result.err
    assert problems(result.err) == [expected]


TEMPLATE_CASES = [
    pytest.param("  {% endif %}\n  <tr><td class=\"masthead\">", "  <tr><td class=\"masthead\">",
                 f"{HTML}:54: this {{% if %}} is never closed: add {{% endif %}}",
                 id="if-unclosed-at-end"),
    pytest.param("{{ article.image_alt }}\" width=\"552\">\n      {% endif %}",
                 "{{ article.image_alt }}\" width=\"552\">",
                 f"{HTML}:69: this {{% if %}} is never closed: add {{% endif %}}",
                 id="if-unclosed-inside-for"),
    pytest.param("    {% endfor %}", "", f"{HTML}:63: this {{% for %}} is never closed: add "
                 "{% endfor %}", id="for-unclosed"),
    pytest.param("  {% if view_online_url %}\n", "",
                 f"{HTML}:55: this {{% endif %}} has no {{% if %}} to close: delete it",
                 id="endif-alone"),
]


@pytest.mark.parametrize(("old", "new", "expected"), TEMPLATE_CASES)
def test_unclosed_block_named_where_it_opens(project: Path, run_cli: RunCli, old: str,
                                             new: str, expected: str) -> None:
    edit(project / HTML, old, new)
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2, result.err
    assert expected in result.err.splitlines(), result.err


def add_issue(project: Path, name: str, date: str) -> None:
    source = project / SAMPLE_ISSUE
    target = project / "issues" / name
    target.mkdir()
    for path in source.iterdir():
        (target / path.name).write_bytes(path.read_bytes())
    edit(target / "issue.yaml", "date: 2021-10-29", f"date: {date}")


def test_validate_and_preview_take_the_issue_id(project: Path, run_cli: RunCli) -> None:
    result = run_cli("validate", "2021-10-partners-meeting")
    assert result.code == 0, result.err
    assert result.out.startswith("2021-10-partners-meeting: 0 error(s)")
    result = run_cli("preview", "2021-10-partners-meeting", cwd=project / "lists")
    assert result.code == 0, result.err
    # the project's preview/, not lists/preview/: relative to mirage.yaml, as DESIGN says
    assert (project / "preview/2021-10-partners-meeting/en.html").is_file()
    assert not (project / "lists/preview").exists()


def test_without_an_argument_the_only_issue(project: Path, run_cli: RunCli) -> None:
    result = run_cli("validate")
    assert result.code == 0, result.err
    assert result.err.splitlines()[0] == (
        "mirage-mailer: using issues/2021-10-partners-meeting (the only issue)")
    assert result.out.startswith("2021-10-partners-meeting: 0 error(s)")


def test_without_an_argument_the_latest_issue(project: Path, run_cli: RunCli) -> None:
    add_issue(project, "a-later-one", "2022-03-01")
    add_issue(project, "zz-earlier-one", "2020-01-01")
    result = run_cli("preview")
    assert result.code == 0, result.err
    assert result.err.splitlines()[0] == (
        "mirage-mailer: using issues/a-later-one (the latest of 3 issues by number, then date, "
        "an undated draft counting as newest; name another to choose it)")
    assert (project / "preview/a-later-one/en.html").is_file()


def test_unknown_issue_id_lists_the_issues(project: Path, run_cli: RunCli) -> None:
    add_issue(project, "2022-03-spring", "2022-03-01")
    result = run_cli("validate", "2022-04-nosuch")
    assert result.code == 2, result.err
    assert problems(result.err) == [
        "mirage-mailer: no issue '2022-04-nosuch' under issues/: the issues are "
        "2021-10-partners-meeting, 2022-03-spring"]
