"""Commands about the project and one issue before it is sent: ``init``, ``validate``,
``preview`` and ``rotate-secret``. Each parses, calls ``services`` and prints."""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from mirage_mailer.commands.common import (
    Context,
    email_option,
    err,
    issue_folder,
    on_terminal,
)
from mirage_mailer.commands.init_prompts import ask_project
from mirage_mailer.services.loader import open_project
from mirage_mailer.services.preview import write_preview
from mirage_mailer.services.projects import (
    check_init_target,
    init,
    new_issue,
    rotate_signing_key,
    validate,
)
from mirage_mailer.util.errors import ExitCode, display_path


@click.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", help="The project's name as readers know it (default: the folder's "
              "name).")
@click.option("--website", metavar="URL", help="The project's website, https://... (an empty "
              "value: none).")
@click.option("--contact", metavar="EMAIL", help="The address readers can write to; also the "
              "newsletter's sender and reply-to address.")
@click.option("--lang", metavar="LANG", help="The newsletter's default language, an ISO 639-1 "
              "code (default: en).")
@click.option("--preset", metavar="PRESET", help="The EU disclaimer: amif-2014-2020 (default), "
              "eu-2021-2027-direct or eu-2021-2027-shared.")
@click.option("--authority", metavar="NAME", help="The granting authority, for "
              "eu-2021-2027-direct, as the grant agreement names it.")
@click.option("--privacy-url", metavar="URL", help="Your privacy notice, https://... (sign-up "
              "needs it; default: left for you to set in mirage.yaml).")
def init_command(directory: Path, name: str | None, website: str | None, contact: str | None,
                 lang: str | None, preset: str | None, authority: str | None,
                 privacy_url: str | None) -> int:
    """Scaffold a working project in DIRECTORY: config, templates, a list, an issue.

    On a terminal, asks for the project's name, website, contact address, privacy notice,
    default language and disclaimer preset (the flags answer in advance; with all of them,
    or without a terminal, nothing is asked). Without a terminal and without any flag, the
    sample keeps the MIraGE project's own settings.
    """
    given = {"name": name, "website": website, "contact": contact, "lang": lang,
             "preset": preset, "authority": authority, "privacy-url": privacy_url}
    check_init_target(directory)
    answers = ask_project(directory, given, interactive=on_terminal())
    if answers is None:
        err("mirage-mailer: no terminal and no --name/--contact: the project keeps the MIraGE "
            "sample's name and addresses; edit 'project:' and 'sender:' in mirage.yaml")
    for path in init(directory, answers):
        click.echo(f"created {display_path(path)}")
    folder = display_path(directory)
    if folder.startswith("-"):  # "cd -Νέο" is an option to cd, and "cd -- -" is cd's "-"
        folder = f"./{folder}"
    click.echo(f"next: cd {shlex.quote(folder)} && mirage-mailer validate "
               "issues/2021-10-partners-meeting")
    return ExitCode.OK


@click.command("new-issue")
@click.argument("issue_id", required=False, metavar="[ID]")
@click.option("--from", "start_from", metavar="ISSUE",
              help="Start from this issue (folder or id) instead of the latest one.")
@click.pass_obj
def new_issue_command(obj: Context, issue_id: str | None, start_from: str | None) -> int:
    """Start the next issue from the latest one and print the files to edit.

    Same lists and title, number + 1, an empty subject and one empty article per article
    of the last issue (translations too); date and send_at are left unset. ID is the new
    folder's name; without it, the last id counted on (2021-10-news -> 2021-11-news,
    issue-07 -> issue-08). validate and send refuse the issue until its subject and
    articles are written.
    """
    started, note = new_issue(obj.config, issue_id, start_from)
    if note:
        err(note)
    for path in started.files:
        click.echo(display_path(path))
    number = f"number {started.number}, " if started.number is not None else ""
    lists = ", ".join(started.lists) or "none"
    err(f"{display_path(started.folder)}: started from {display_path(started.source)} "
        f"({number}lists: {lists}); write the subject and the articles above, then: "
        f"mirage-mailer validate {shlex.quote(started.folder.name)}")
    return ExitCode.OK


@click.command("validate")
@click.argument("issue", required=False, metavar="[ISSUE]")
@click.pass_obj
def validate_command(obj: Context, issue: str | None) -> int:
    """Check config, issue, articles, lists, templates, the EU disclaimer and unsubscribe link.

    ISSUE is the issue folder or its id (the folder name under issues/); without it, the
    only issue, or the latest one (highest number, then date; an undated draft, such as
    the one new-issue just started, counts as newest).

    Prints every problem as path:line: message, all in one run: a mistake in one
    stage does not hide those after it (what depends on a part with errors is left
    unchecked, and the summary line says so). Exit 2 if any is an error (an issue of
    images only, with no text, is one); warnings (duplicate addresses, missing
    translations, a subject or heading in capitals or with '!!!', little text for many
    images) leave exit 0.
    """
    found = validate(obj.config, issue_folder(obj, issue))
    for problem in [*found.warnings, *found.errors]:
        err(str(problem))
    for problem in found.store_problems:
        err(f"{problem} (recipient figures below ignore the tracking store)")
    summary = f"{found.issue}: {len(found.errors)} error(s), {len(found.warnings)} warning(s)"
    if (plan := found.plan) is not None:
        already = (f", {plan.already_sent} already sent" if plan.already_sent else "")
        summary += (f"; languages {', '.join(found.languages)}; "
                    f"{plan.to_send} recipient(s) ({plan.languages()}){already}")
    if found.unchecked:
        summary += f"; not checked: {', '.join(found.unchecked)} (fix the errors above first)"
    click.echo(summary)
    return ExitCode.INVALID_INPUT if found.errors else ExitCode.OK


@click.command("preview")
@click.argument("issue", required=False, metavar="[ISSUE]")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the files (default: preview/<issue-id>/ in the project's folder, "
              "beside mirage.yaml).")
@click.option("--recipient", metavar="EMAIL",
              help="Personalise for this address (its list entry if it has one).")
@click.option("--lang", metavar="LANG",
              help="Only this language of the issue (one it has, else exit 2).")
@click.pass_obj
def preview_command(obj: Context, issue: str | None, out: Path | None, recipient: str | None,
                    lang: str | None) -> int:
    """Write <lang>.html, <lang>.txt and <lang>.eml for each language; sends nothing.

    ISSUE is the issue folder or its id; without it, the only issue, or the latest one
    (highest number, then date; an undated draft counts as newest).
    """
    if recipient is not None:
        recipient = email_option("--recipient", recipient)
    project = open_project(obj.config, issue_folder(obj, issue))
    for problem in project.warnings:  # said before the files are written, even if that fails
        err(str(problem))
    # the default is the project's preview/ folder wherever this runs; --out, as typed
    target = out if out is not None else project.settings.root / "preview" / project.issue.id
    for path in write_preview(project, target, recipient=recipient, lang=lang,
                              on_warning=lambda problem: err(str(problem))):
        click.echo(display_path(path))
    return ExitCode.OK


@click.command("rotate-secret")
@click.option("--replace-lost", is_flag=True,
              help="Write a new key in place of a lost .mirage/secret in a project that has "
              "sent: links in messages already sent stop working. Restore the file from a "
              "backup instead if you can.")
@click.pass_obj
def rotate_secret_command(obj: Context, replace_lost: bool) -> int:
    """Start signing links with a new key; links already sent keep working.

    The new key goes first in .mirage/secret and the earlier ones stay below it, used only
    to check links in messages already sent. Restart `serve` afterwards. With
    tracking.secret_env, change that variable instead (this says how). A project that has
    sent and lost .mirage/secret is refused by every command that signs; --replace-lost is
    the explicit way to start over with a new key.
    """
    done = rotate_signing_key(obj.config, replace_lost=replace_lost)
    if replace_lost:
        click.echo(f"{display_path(done.path)}: new signing key in place of the lost one; "
                   "unsubscribe links in messages already sent no longer work (restart "
                   "'serve' to use it)")
        return ExitCode.OK
    dropped = f"; {done.dropped} key(s) too short to be safe dropped" if done.dropped else ""
    click.echo(f"{display_path(done.path)}: new signing key; {done.kept} earlier key(s) kept "
               f"to check links already sent{dropped} (restart 'serve' to use it)")
    return ExitCode.OK


COMMANDS: tuple[click.Command, ...] = (init_command, new_issue_command, validate_command,
                                       preview_command, rotate_secret_command)
