"""The address links are built from (tracking.base_url, archive --base-url), and URLs given on
the command line: a base that would break every link is refused with the fix, and no
password written into a URL is ever printed or published."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli, edit

SCAFFOLD_LINE = "  # base_url: https://news.mirageproject.eu"
PASSWORD = "S3cretPW123"


def _outbox(project: Path) -> list[Path]:
    new = project / "outbox" / "new"
    return sorted(new.iterdir()) if new.is_dir() else []


@pytest.mark.parametrize(("value", "words"), [
    ("'http://127.0.0.1:18431#x'", "has a query (?...) or a fragment (#...): links built from "
     "it would lose their path (remove everything from the '?' or '#' on"),
    ("https://news.example.org/?utm_source=newsletter", "has a query (?...) or a fragment"),
    ("'https://news.example.org?'", "has a query (?...) or a fragment"),
    ("'http://127.0.0.1:18431/a b'", "contains a space or a control character (remove it, or "
     "write a space in a path as %20)"),
    ('"https://news.example.org/a\\tb"', "contains a space or a control character"),
    ("https://news.example.org/a<b>", "contains < >, which a link cannot carry unescaped "
     "(percent-encode it (< is %3C), or remove it)"),
    ("'https://news.example.org/a\"b'", "contains \", which a link cannot carry unescaped"),
    ("https://news.example.org/100%", "has a '%' without two hex digits after it (write a '%' "
     "itself as %25)"),
    ("https://bücher.example/news", "contains characters a link cannot carry as they are "
     "(write it as https://xn--bcher-kva.example/news)"),
    ("https://news.example.org:99999", "is not a web address"),
    ("https://exa_mple.org", "is not a web address"),
    ("http://news.example.org", "must be an https:// URL"),
])
def test_a_base_url_that_breaks_links_fails_validate_with_the_fix(
        project: Path, run_cli: RunCli, value: str, words: str) -> None:
    edit(project / "mirage.yaml", SCAFFOLD_LINE, f"  base_url: {value}")
    check = run_cli("validate", SAMPLE_ISSUE)
    assert check.code == 2, check.err
    lines = [line for line in check.err.splitlines() if "'tracking.base_url'" in line]
    assert len(lines) == 1 and lines[0].startswith("mirage.yaml:36: 'tracking.base_url' ")
    assert words in lines[0]


def test_send_with_a_fragment_in_base_url_sends_nothing(project: Path, run_cli: RunCli) -> None:
    """The audit's case: every one-click unsubscribe would have posted to '/' (405)."""
    edit(project / "mirage.yaml", SCAFFOLD_LINE, "  base_url: 'http://127.0.0.1:18431#x'")
    sent = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert sent.code == 2
    assert sent.err.startswith("mirage.yaml:36: 'tracking.base_url' 'http://127.0.0.1:18431#***' "
                               "has a query")
    assert _outbox(project) == []


@pytest.mark.parametrize(("value", "base"), [
    ("https://news.example.org/mirage/", "https://news.example.org/mirage"),
    ("'http://127.0.0.1:8080//'", "http://127.0.0.1:8080"),
    ("https://news.example.org/a%20b;v=1/", "https://news.example.org/a%20b;v=1"),
])
def test_a_path_and_a_trailing_slash_are_fine_and_the_slash_is_not_doubled(
        project: Path, run_cli: RunCli, value: str, base: str) -> None:
    edit(project / "mirage.yaml", SCAFFOLD_LINE, f"  base_url: {value}")
    sent = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert sent.code == 0, sent.err
    first = _outbox(project)[0].read_text(encoding="utf-8")
    header = next(line for line in first.splitlines() if line.startswith("List-Unsubscribe:"))
    assert f"<{base}/u/" in header and "//u/" not in header


@pytest.mark.parametrize(("url", "words"), [
    (f"https://u:{PASSWORD}@news.example.org", "--base-url: 'https://***@news.example.org' "
     "holds a user name or password (remove them: every reader would see them in the links)"),
    ("https://news.example.org/#top", "--base-url: 'https://news.example.org/#***' has a "
     "query (?...) or a fragment"),
])
def test_archive_base_url_is_checked_like_tracking_base_url(project: Path, run_cli: RunCli,
                                                            url: str, words: str) -> None:
    refused = run_cli("archive", "--out", "site", "--base-url", url)
    assert refused.code == 2
    assert refused.err.startswith(words), refused.err
    assert PASSWORD not in refused.out + refused.err
    assert not (project / "site").exists()  # no public feed.xml with the password in it


def test_archive_base_url_may_be_plain_http_with_a_path(project: Path, run_cli: RunCli) -> None:
    """A static archive may be published anywhere; the feed's links keep its path."""
    plain = run_cli("archive", "--out", "site", "--base-url", "http://news.example.org/news/")
    assert plain.code == 0, plain.err
    feed = (project / "site" / "feed.xml").read_text(encoding="utf-8")
    assert 'href="http://news.example.org/news/feed.xml"' in feed


@pytest.mark.parametrize(("url", "words"), [
    (f"https://u:{PASSWORD}@www.mirageproject.eu/x", "--return-url: "
     "'https://***@www.mirageproject.eu/x' holds a user name or password (remove them: every "
     "reader would see them)"),
    (f"https:/u:{PASSWORD}@www.mirageproject.eu/x", "--return-url: "
     "'https:/***@www.mirageproject.eu/x' is not a page of a site in web.allowed_origins"),
])
def test_signup_snippet_return_url_with_a_password_is_refused_masked(
        project: Path, run_cli: RunCli, url: str, words: str) -> None:
    edit(project / "mirage.yaml", SCAFFOLD_LINE, "  base_url: https://news.mirageproject.eu")
    edit(project / "mirage.yaml", "  # allowed_origins:", "  allowed_origins:")
    edit(project / "mirage.yaml", "  #   - https://www.mirageproject.eu",
         "    - https://www.mirageproject.eu")
    result = run_cli("signup-snippet", "subscribers", "--return-url", url)
    assert result.code == 2 and result.out == ""
    assert result.err.startswith(words), result.err
    assert PASSWORD not in result.err


@pytest.mark.parametrize("url", [f"imapx://u:{PASSWORD}@imap.example.org/INBOX",
                                 f"imaps:/u:{PASSWORD}@imap.example.org/INBOX",
                                 f"imaps://[zz:{PASSWORD}@imap.example.org/INBOX"])
def test_process_unsubscribes_imap_url_never_prints_its_password(run_cli: RunCli,
                                                                  url: str) -> None:
    result = run_cli("process-unsubscribes", "--imap", url, "--dry-run")
    assert result.code == 2 and result.err.startswith("--imap: ")
    assert PASSWORD not in result.out + result.err
