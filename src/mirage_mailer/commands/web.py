"""``serve`` (the subscriber-facing web app under uvicorn), ``archive`` (the same pages as
static files) and ``signup-snippet`` (the sign-up form for the project's own site). The web
modules are imported only when these commands run, so the other commands start as fast as
before.
"""

from __future__ import annotations

import errno
import logging
import socket
from pathlib import Path

import click

from mirage_mailer.commands.common import Context, err
from mirage_mailer.project.base_url import base_url_problem
from mirage_mailer.project.config import load_settings
from mirage_mailer.project.config_checks import redact
from mirage_mailer.project.signup_lists import closed_warning
from mirage_mailer.services.loader import locate_config
from mirage_mailer.services.outbound import check_signing, credentials, insecure_tls_warning
from mirage_mailer.services.signup import require_privacy_notice
from mirage_mailer.util.errors import (
    ExitCode,
    InputError,
    MirageError,
    Problem,
    display_path,
    shorten,
)

DEFAULT_PORT = 8080  # not 8025 or 1025: local test mail servers listen there
LOCAL_BASE = f"http://127.0.0.1:{DEFAULT_PORT}"


class ServeError(MirageError):
    """The server could not start (the port is taken, the address is not ours): exit 3."""

    exit_code = ExitCode.CANNOT_DELIVER


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; keep 127.0.0.1 behind a reverse proxy.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(1, 65535),
              help="TCP port to listen on.")
@click.option("--proxy-headers", is_flag=True,
              help="Behind a reverse proxy: take the client address and scheme from its "
              "X-Forwarded-For / X-Forwarded-Proto headers.")
@click.option("--forwarded-allow-ips", default="127.0.0.1", show_default=True, metavar="IPS",
              help="With --proxy-headers: comma-separated proxy addresses to trust.")
@click.option("--access-log", is_flag=True,
              help="Log every request (off by default: paths carry personal tokens).")
@click.pass_obj
def serve_command(obj: Context, host: str, port: int, proxy_headers: bool,
                  forwarded_allow_ips: str, access_log: bool) -> int:
    """Run the subscriber web app: one-click unsubscribe, double opt-in sign-up, archive.

    Links in messages point here through tracking.base_url (the public https address
    of this server, usually a reverse proxy in front of it). Sign-up needs web.privacy_url
    (or web.signup: false); only the lists in web.signup_lists take it (without the key:
    the project's only list, none when there are several). In a project that has sent, a
    missing or emptied tracking database stops it from starting (exit 2): restore it first.
    """
    import uvicorn

    from mirage_mailer.web.app import create_app

    settings = load_settings(locate_config(obj.config))
    credentials(settings)  # confirmation mails log in as send does: half-set is exit 2 here
    check_signing(settings)  # and are signed as send signs: a key that cannot sign, exit 2
    if insecure := insecure_tls_warning(settings):
        err(str(insecure))  # confirmation mails go out through the same relay
    require_privacy_notice(settings)  # sign-up on: the forms must link to the notice
    if closed := closed_warning(settings):
        err(str(closed))  # several lists, none named open: no form takes sign-ups
    here = _url(host, port).rstrip("/")
    app = create_app(settings, local_base=here)
    sock = listen(host, port)  # bound before anything says "serving"; taken: one line, exit 3
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not settings.tracking.base_url:
        err(f"warning: tracking.base_url is not set: messages carry only a mailto unsubscribe, "
            f"and confirmation links point at {here}")
    banner = (f"serving {settings.project.name} on {_url(host, port)} "
              f"(public address: {redact(settings.tracking.base_url or 'not set')}); Ctrl-C stops")
    config = uvicorn.Config(app, host=host, port=port, proxy_headers=proxy_headers,
                            forwarded_allow_ips=forwarded_allow_ips if proxy_headers else None,
                            access_log=access_log, server_header=False, log_config=None)

    class AnnouncingServer(uvicorn.Server):
        """Says "serving" once uvicorn listens on the bound socket, not before."""

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if not self.should_exit:
                click.echo(banner)

    try:
        AnnouncingServer(config).run(sockets=[sock])  # uvicorn serves the socket bound above
    except SystemExit as exc:  # uvicorn exits when it cannot start
        if exc.code not in (0, None):
            raise ServeError(Problem(f"{host}:{port}", None, "the server could not start",
                                     "see the log lines above")) from None
    finally:
        sock.close()
    return ExitCode.OK


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port, or ``ServeError`` (exit 3, one line) when the port
    is taken or the address is not one of this machine's."""
    def refused(hint: str) -> ServeError:
        return ServeError(Problem(f"{host}:{port}", None, "cannot listen on this address", hint))

    not_ours = "--host must be an address of this machine"
    try:
        family, kind, proto, _name, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except (OSError, UnicodeError):
        raise refused(not_ours) from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restart after TIME_WAIT
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise refused("is another server using the port? choose --port") from None
        if exc.errno == errno.EACCES:
            raise refused("ports below 1024 need privileges; choose --port") from None
        raise refused(not_ours) from None
    return sock


def _site_url(value: str | None, fallback: str | None) -> str:
    """The feed's base: --base-url, checked as tracking.base_url is (plain http allowed:
    a static archive may be published anywhere), shown without its password."""
    if value is not None and (bad := base_url_problem(value, http_anywhere=True)):
        message, hint = bad
        raise InputError(Problem("--base-url", None,
                                 f"{shorten(redact(value))!r} {message}", hint))
    return (value or fallback or LOCAL_BASE).rstrip("/")


@click.command("archive")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("archive"),
              show_default=True, help="Folder for the static site.")
@click.option("--base-url", metavar="URL",
              help="Where the folder will be published, for the feed's links "
              "(default: tracking.base_url); http(s), a path but no query or fragment.")
@click.pass_obj
def archive_command(obj: Context, out: Path, base_url: str | None) -> int:
    """Write the archive of sent issues as a static site: index.html, one page per issue
    and language, feed.xml (Atom) and static/ files."""
    from mirage_mailer.web.static_site import write_archive

    settings = load_settings(locate_config(obj.config))
    site_url = _site_url(base_url, settings.tracking.base_url)
    if not base_url and not settings.tracking.base_url:
        err(f"warning: feed.xml links use {LOCAL_BASE}; pass --base-url with the address the "
            "archive will be published at")
    written = write_archive(settings, out, site_url=site_url)
    for path in written.files:
        click.echo(display_path(path))
    click.echo(f"{display_path(out)}: {len(written.issues)} issue(s), "
               f"{len(written.files)} file(s)")
    return ExitCode.OK


@click.command("signup-snippet")
@click.argument("list_name", metavar="LIST")
@click.option("--lang", metavar="LANG",
              help="Language of the form and of the newsletter it signs up for "
              "(default: project.language).")
@click.option("--return-url", metavar="URL",
              help="The page that will carry the form: the thank-you page links back to it "
              "(a page of a site in web.allowed_origins).")
@click.pass_obj
def signup_snippet_command(obj: Context, list_name: str, lang: str | None,
                           return_url: str | None) -> int:
    """Print an HTML sign-up form for LIST to paste into the project's own website.

    The form posts to serve at tracking.base_url, which accepts it only from the sites in
    web.allowed_origins; it needs no JavaScript and links to web.privacy_url. LIST must
    be one the public may join (web.signup_lists).
    """
    from mirage_mailer.web.snippet import signup_snippet

    settings = load_settings(locate_config(obj.config))
    snippet = signup_snippet(settings, list_name, lang=lang, return_url=return_url)
    for warning in snippet.warnings:
        err(str(warning))
    click.echo(snippet.html, nl=False)
    return ExitCode.OK


COMMANDS: tuple[click.Command, ...] = (serve_command, archive_command, signup_snippet_command)
