"""``doctor``: the sending domain's DNS checked as a provider would, one line per check."""

from __future__ import annotations

import click

from mirage_mailer.commands.common import Context
from mirage_mailer.services.doctor import diagnose


@click.command("doctor")
@click.option("--nameserver", metavar="HOST[:PORT]",
              help="Ask this DNS server (IP or name, port 53 by default) instead of the "
              "system resolver: a split-horizon set-up, or a test.")
@click.pass_obj
def doctor_command(obj: Context, nameserver: str | None) -> int:
    """Check the sending domain as a mail provider would.

    SPF of the return-path and From domains and whether it covers the relay, the DKIM
    key in DNS against the private key, DMARC and its alignment, MX for bounces, and the
    One-Click unsubscribe set-up: one line per check, ok, warn or fail, with what to fix.
    Sends nothing. A look-up that fails (SERVFAIL, REFUSED, a timeout) fails its own check;
    the others still run. Exit 0 when nothing failed (warnings allowed), 1 when a check
    failed, 2 for a bad config, 3 when DNS answered no look-up at all.
    """
    diagnosis = diagnose(obj.config, nameserver)
    for check in diagnosis.checks:
        fix = f" ({check.fix})" if check.fix and check.status != "ok" else ""
        click.echo(f"{check.status:<4}  {check.topic}: {check.message}{fix}")
    click.echo(f"doctor: {diagnosis.count('ok')} ok, {diagnosis.count('warn')} warning(s), "
               f"{diagnosis.count('fail')} failed ({diagnosis.queries} DNS look-ups)")
    return diagnosis.exit_code


COMMANDS: tuple[click.Command, ...] = (doctor_command,)
