"""Message building: per-recipient substitution versus an EmailMessage per recipient.

Both routes run side by side in this process on the sample issue, and the result is a ratio,
so the figure does not depend on how fast this machine is. Also prints the one-off cost of
the per-language work (Markdown, Jinja2, premailer) that substitution lets us pay once.

    python bench/build_speed.py [--recipients 10000] [--baseline 500]
    python bench/build_speed.py --recipient-logic   # the template also has an {% if %} and
                                                    # filters on fields (compose/fragments.py)
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid
from pathlib import Path

from mirage_mailer.compose.message import MessageFactory, Personal, fill
from mirage_mailer.compose.render import inline_css
from mirage_mailer.project.scaffold import init_project
from mirage_mailer.services.loader import open_project, render
from mirage_mailer.util.tokens import Signer

ISSUE = "issues/2021-10-partners-meeting"
# audit 9b's line: an if, a default and two filters on recipient fields, run per reader
LOGIC = ("<p>Org: {% if recipient.organisation %}{{ recipient.organisation }}{% else %}"
         '(none){% endif %} | {{ recipient.organisation|default("your organisation") }} | '
         "{{ recipient.name|title }} | {{ recipient.name|upper }}|</p>")


def people(count: int) -> list[Personal]:
    return [Personal(f"reader{n}@example.org", f"Réader {n}", "subscribers",
                     {"organisation": f"Org {n}"}) for n in range(count)]


def email_message_route(factory: MessageFactory, person: Personal, lang: str) -> bytes:
    """What a straightforward mailer does: fill the parts, build, serialise, per recipient."""
    rendered = factory.rendered[lang]
    values = factory.values_for(person, lang)
    message = EmailMessage()
    message["From"] = formataddr((factory.settings.sender.from_name,
                                  factory.settings.sender.from_email))
    message["To"] = formataddr((person.name or "", person.email))
    message["Subject"] = rendered.subject
    message["Date"] = formatdate()
    message["Message-ID"] = make_msgid(domain=factory.domain)
    message["List-Unsubscribe"] = f"<{values['unsubscribe_url']}>"
    message.set_content(fill(rendered.text, values, html=False))
    message.add_alternative(fill(rendered.html, values, html=True), subtype="html")
    html_part = message.get_payload()[1]  # type: ignore[index]
    for image in rendered.images:
        html_part.add_related(image.data, "image", "png", cid=f"<{image.cid}>")
    return message.as_bytes()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--baseline", type=int, default=500,
                        help="recipients for the slow route (it is timed per message)")
    parser.add_argument("--recipient-logic", action="store_true",
                        help="add an {%% if %%} and filters on recipient fields to the template")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="mirage-bench-"))
    try:
        init_project(tmp / "p")
        if args.recipient_logic:
            html = tmp / "p/templates/newsletter.html.j2"
            html.write_text(html.read_text(encoding="utf-8").replace(
                "{{ recipient.greeting }}</p>", "{{ recipient.greeting }}</p>" + LOGIC),
                encoding="utf-8")
        project = open_project(tmp / "p/mirage.yaml", tmp / "p" / ISSUE)
        started = time.perf_counter()
        rendered = render(project, {"organisation"})
        per_issue = time.perf_counter() - started
        raw_html = rendered["en"].html
        started = time.perf_counter()
        for _ in range(5):
            inline_css(raw_html)
        premailer_ms = (time.perf_counter() - started) / 5 * 1000
        factory = MessageFactory(project.settings, project.issue.id, rendered, Signer(b"k"))
        crowd = people(args.recipients)
        size = len(factory.build(crowd[0], "en"))

        started = time.perf_counter()
        for person in crowd:
            factory.build(person, "en")
        fast = time.perf_counter() - started

        started = time.perf_counter()
        for person in crowd[: args.baseline]:
            email_message_route(factory, person, "en")
        slow = (time.perf_counter() - started) / args.baseline * args.recipients
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"message size: {size / 1024:.1f} KiB (en, with the emblem as a CID part)")
    print(f"per issue, all languages (Markdown + Jinja2 + premailer + text): "
          f"{per_issue * 1000:.0f} ms; premailer alone: {premailer_ms:.1f} ms per call")
    print(f"substitution:     {args.recipients / fast:9.0f} msg/s "
          f"({fast / args.recipients * 1e6:.1f} us per message)")
    print(f"EmailMessage:     {args.recipients / slow:9.0f} msg/s "
          f"({slow / args.recipients * 1e6:.1f} us per message; timed on {args.baseline})")
    print(f"speed-up: {slow / fast:.1f}x (target >= 20x)")


if __name__ == "__main__":
    main()
