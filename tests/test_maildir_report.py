"""The report's contract shape on the embedded default transport: a recipient the Maildir
took is ``"smtp_code": 250`` (the local equivalent of a relay's acceptance), as on SMTP, so a
check of the JSON shape passes on every transport; a Maildir that cannot be written leaves
recipients pending with no code. Real CLI runs, a real SQLite store and Maildir."""

from __future__ import annotations

from pathlib import Path

from helpers import SAMPLE_ISSUE, RunCli, report


def test_maildir_deliveries_report_smtp_code_250(project: Path, run_cli: RunCli) -> None:
    sent = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert sent.code == 0, sent.err
    recipients = report(run_cli)["recipients"]
    assert isinstance(recipients, list) and len(recipients) == 5
    assert {(r["status"], r["smtp_code"], r["smtp_response"]) for r in recipients} == {
        ("sent", 250, "delivered to Maildir")}
    assert len(list((project / "outbox" / "new").iterdir())) == 5


def test_a_maildir_that_cannot_be_written_leaves_pending_rows_without_a_code(
        project: Path, run_cli: RunCli) -> None:
    (project / "outbox").mkdir()
    (project / "outbox" / "tmp").write_text("a file where the Maildir's tmp/ folder goes")
    sent = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert sent.code == 3, sent.err
    assert "cannot create the Maildir" in sent.err
    recipients = report(run_cli)["recipients"]
    assert isinstance(recipients, list)
    assert {(r["status"], r["smtp_code"]) for r in recipients} == {("pending", None)}
