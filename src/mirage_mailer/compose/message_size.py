"""How big the images make each message, checked before anything is built or sent.

Every image is a base64 part of every message, a third larger than its file. Relays refuse
a message above their size limit, and every subscriber gets the same message, so an issue
over it fails for the whole list: Gmail takes at most 25 MB, and the default of Exchange
Server, which many partner organisations run, is 10 MB. So the images of
one language's message may add up to ``MAX_BYTES`` (10 MB as sent, the smallest of these
common limits); above ``WARN_BYTES`` (1 MB) ``validate`` warns: spam filters score heavy
messages, and each reader on a phone downloads it all. The relay's own ``SIZE`` limit, where
it announces one, is checked again by ``send`` on the real bytes (``delivery.connection``).
"""

from __future__ import annotations

from pathlib import Path

from mirage_mailer.project.content import Issue
from mirage_mailer.util.errors import Problem, display_path, shorten

MAX_BYTES = 10_000_000
WARN_BYTES = 1_000_000
LINE = 76  # base64 characters per line, each line ending CRLF on the wire


def wire_size(size: int) -> int:
    """The bytes of a ``size``-byte file as a base64 part body on the wire."""
    encoded = 4 * -(-size // 3)
    return encoded + 2 * -(-encoded // LINE)


def _mb(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB"


def image_size_problems(issue: Issue) -> list[Problem]:
    """An error per issue language whose images pass ``MAX_BYTES`` as sent, else a warning
    above ``WARN_BYTES``; languages with the same images share one line."""
    from mirage_mailer.compose.render import emblem_bytes  # read as a file, no resources

    emblem = wire_size(len(emblem_bytes()))
    found: dict[tuple[Path, ...], list[str]] = {}
    for lang, articles in issue.articles.items():
        shown = dict.fromkeys(path for article in articles
                              for path in (article.image, *article.images) if path is not None)
        found.setdefault(tuple(shown), []).append(lang)
    problems = []
    for files, langs in found.items():
        sizes = {path: wire_size(path.stat().st_size) for path in files}
        total = emblem + sum(sizes.values())
        if total <= WARN_BYTES:
            continue
        biggest = sorted(sizes, key=lambda path: -sizes[path])[:3]
        named = ", ".join(f"{shorten(path.name, 80)} {_mb(sizes[path])}" for path in biggest)
        more = f" and {len(sizes) - 3} more" if len(sizes) > 3 else ""
        which = f"issue {issue.id} ({', '.join(langs)})"
        if total > MAX_BYTES:
            problems.append(Problem(
                display_path(issue.path), issue.lines.get("articles"),
                f"{which}: the images make each message {_mb(total)} as sent (base64); at "
                f"most {MAX_BYTES // 1_000_000} MB: {named}{more}",
                "relays refuse larger messages for every reader, Exchange at 10 MB and Gmail "
                "at 25 MB: export photos as JPEG about 1,100 pixels wide, or show fewer"))
        else:
            problems.append(Problem(
                display_path(issue.path), issue.lines.get("articles"),
                f"{which}: the images make each message {_mb(total)} as sent (base64): "
                f"{named}{more}", "above 1 MB spam filters grow wary and phones download it "
                "all: export photos as JPEG about 1,100 pixels wide", warning=True))
    return problems
