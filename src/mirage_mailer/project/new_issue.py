"""``new-issue``: the next issue folder, started from the last one.

The new ``issue.yaml`` is the last one's text with only what changes rewritten, so its
comments, key order and lists stay as the officer wrote them: the subject and preheader
become empty texts in the same languages, ``number`` goes up by one, ``date`` and
``send_at`` are left unset, and ``articles`` names one empty article per article of the last
issue (with a file per translation it had). Empty subjects and article bodies are errors for
``validate``, ``preview`` and ``send``, so a draft nobody finished cannot go out by accident.

The next id follows the shapes ids take: ``2021-10-partners-meeting`` -> ``2021-11-...``
(year-month: next month), ``2024-Q4`` -> ``2025-Q1``, ``issue-07`` -> ``issue-08`` (the
issue's number where the id holds it, else its last number, zero padding kept).
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from pathlib import Path

from mirage_mailer.project.yamlsrc import LineDict, LineList, load_yaml_file
from mirage_mailer.util.errors import InputError, Problem, display_path, shorten
from mirage_mailer.util.writes import writing

_UNDATED = "~"  # sorts after every ISO date: an issue not dated yet is the newest
ISSUE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")  # the rule content.py applies
_YEAR_MONTH = re.compile(r"^(?P<pre>(?:.*[-_.])?)(?P<y>(?:19|20|21)\d{2})-(?P<m>0[1-9]|1[0-2])"
                         r"(?:-(?P<d>[0-3]\d))?(?P<rest>(?:[-_.].*)?)$")
_QUARTER = re.compile(r"^(?P<y>\d{4})(?P<sep>[-_.]?)(?P<q>[Qq])(?P<n>[1-4])(?P<rest>(?:[-_.].*)?)$")
_DIGITS = re.compile(r"\d+")
_TOP_KEY = re.compile(r"^(?P<key>[A-Za-z_][A-Za-z0-9_-]*)\s*:")
_TRANSLATION = re.compile(r"^(?P<stem>.+)\.(?P<lang>[a-zA-Z]{2}(?:[-_][a-zA-Z0-9]{2,3})?)\.md$")
_EMPTIED = ("subject", "preheader")  # localised texts to write again: same languages, empty
_CHAIN = 1000  # at most this many existing ids skipped to find a free one


@dataclass(frozen=True)
class StartedIssue:
    """A new issue folder: where it came from, and the files to edit, issue.yaml first."""

    folder: Path
    source: Path
    number: int | None
    lists: tuple[str, ...]
    files: tuple[Path, ...]


def next_issue_id(issue_id: str, number: object = None) -> str | None:
    """The id after ``issue_id``; None when it holds no number to count on."""
    match = _YEAR_MONTH.match(issue_id)
    if match:
        year, month = int(match["y"]), int(match["m"]) + 1
        if month == 13:
            year, month = year + 1, 1
        head = f"{match['pre']}{year:04d}-{month:02d}"
        if match["d"] is not None:
            day = min(int(match["d"]), calendar.monthrange(year, month)[1])
            head += f"-{day:02d}"
        return head + match["rest"]
    match = _QUARTER.match(issue_id)
    if match:
        year, quarter = int(match["y"]), int(match["n"]) + 1
        if quarter == 5:
            year, quarter = year + 1, 1
        return f"{year:04d}{match['sep']}{match['q']}{quarter}{match['rest']}"
    runs = list(_DIGITS.finditer(issue_id))
    if not runs:
        return None
    wanted = str(number).strip() if isinstance(number, int | str) else ""
    run = next((r for r in reversed(runs) if wanted.isdigit() and int(r[0]) == int(wanted)),
               runs[-1])
    bumped = str(int(run[0]) + 1).zfill(len(run[0]))
    return issue_id[:run.start()] + bumped + issue_id[run.end():]


def start_issue(issues_dir: Path, source: Path, new_id: str | None) -> StartedIssue:
    """Write ``issues/<id>/`` from ``source``; ``new_id`` None derives it from the source's
    id (skipping forward past ids that exist). Refuses an existing folder."""
    data = _issue_data(source)
    if new_id is None:
        new_id, source, data = _derived(issues_dir, source, data)
    elif not ISSUE_ID.match(new_id):
        raise InputError(Problem("new-issue", None, f"'{shorten(new_id)}' is not a usable "
                                 "issue id", "use letters, digits, '.', '_' and '-' only, "
                                 "starting with a letter or digit"))
    folder = issues_dir / new_id
    if folder.exists():
        raise InputError(Problem(display_path(folder), None, "already exists; new-issue never "
                                 "overwrites an issue", "give another id: mirage-mailer "
                                 "new-issue ID"))
    articles = _articles(source, data)
    names = [f"article-{n}.md" for n in range(1, len(articles) + 1)]
    written = _written_number(data)
    number = _number(written)
    text = _issue_yaml(source, data, names, written)
    files: list[tuple[Path, str]] = [(folder / "issue.yaml", text)]
    for n, (old, langs) in enumerate(articles, start=1):
        files.append((folder / names[n - 1], _article(n, old, None)))
        files.extend((folder / f"article-{n}.{lang}.md", _article(n, old, lang))
                     for lang in langs)
    with writing(folder, "the new issue"):
        folder.mkdir(parents=True)
        for path, content in files:
            path.write_text(content, encoding="utf-8")
    return StartedIssue(folder, source, None if number is None else number + 1,
                        _lists(data), tuple(path for path, _ in files))


LATEST_RULE = "by number, then date, an undated draft counting as newest"


def latest_issue(issues_dir: Path) -> Path | None:
    """The latest issue, one rule for every command (``new-issue`` continues it; ``validate``,
    ``preview``, ``send`` without an argument take it): the highest ``number``, then the
    latest ``send_at`` or ``date``, then the last folder name. Numbers come first and an
    issue without a date counts as the newest, because a draft started by new-issue has its
    number but no date yet (it is dated the day it is sent), and it must be the one that
    ``preview`` shows next. An unreadable issue.yaml counts by name."""
    best: tuple[int, str, str] | None = None
    found: Path | None = None
    for folder in sorted(issues_dir.iterdir()) if issues_dir.is_dir() else []:
        if not (folder / "issue.yaml").is_file() or not ISSUE_ID.match(folder.name):
            continue
        try:
            data = load_yaml_file(folder / "issue.yaml")
        except InputError:
            data = None
        number, when = -1, ""
        if isinstance(data, LineDict):
            number = _number(_written_number(data)) or -1
            when = str(data.get("send_at") or data.get("date") or _UNDATED)[:10]
        key = (number, when, folder.name)
        if best is None or key > best:
            best, found = key, folder
    return found


def _issue_data(folder: Path) -> LineDict:
    path = folder / "issue.yaml"
    data = load_yaml_file(path)
    if not isinstance(data, LineDict):
        raise InputError(Problem(display_path(path), 1, "issue.yaml must be a mapping",
                                 "fix it, or start from another issue with --from"))
    return data


def _derived(issues_dir: Path, source: Path,
             data: LineDict) -> tuple[str, Path, LineDict]:
    """The first free id in the sequence after ``source``; the issue just before it
    becomes the source (so a draft started earlier is continued, not skipped)."""
    for _ in range(_CHAIN):
        new_id = next_issue_id(source.name, _written_number(data))
        if new_id is None or not ISSUE_ID.match(new_id):
            raise InputError(Problem(display_path(source), None, f"cannot tell the next "
                                     f"issue's id from '{shorten(source.name)}' (no number "
                                     "in it)", "give one: mirage-mailer new-issue ID"))
        candidate = issues_dir / new_id
        if not candidate.exists():
            return new_id, source, data
        if not (candidate / "issue.yaml").is_file():
            raise InputError(Problem(display_path(candidate), None, "already exists (without "
                                     "an issue.yaml)", "give another id: mirage-mailer "
                                     "new-issue ID"))
        source, data = candidate, _issue_data(candidate)
    raise InputError(Problem(display_path(source), None, "too many issues in this sequence",
                             "give an id: mirage-mailer new-issue ID"))


def _written_number(data: LineDict) -> str | None:
    """``number`` as written: YAML 1.1 reads ``number: 010`` as 8, the office means 10."""
    return data.text("number")


def _number(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _lists(data: LineDict) -> tuple[str, ...]:
    value = data.get("list")
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value) if isinstance(value, LineList) else ()


def _articles(source: Path, data: LineDict) -> list[tuple[str, list[str]]]:
    """(file name, translation languages) of each article of ``source``; at least one."""
    found: list[tuple[str, list[str]]] = []
    names = data.get("articles")
    for name in names if isinstance(names, LineList) else []:
        if not isinstance(name, str) or not name.endswith(".md") or "/" in name:
            continue
        stem = name[:-3]
        langs = sorted(m["lang"] for p in source.glob(f"{glob_escape(stem)}.*.md")
                       if (m := _TRANSLATION.match(p.name)) and m["stem"] == stem)
        found.append((name, langs))
    return found or [("", [])]


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def _languages(value: object) -> list[str] | None:
    """The languages of a localised value; None for a plain text."""
    if isinstance(value, dict):
        return [str(k) for k in value]
    return None


def _issue_yaml(source: Path, data: LineDict, articles: list[str],
                number: str | None) -> str:
    """The source's issue.yaml, line by line, with the changing keys written afresh."""
    lines = (source / "issue.yaml").read_text(encoding="utf-8-sig").splitlines()
    out: list[str] = []
    index = 0
    while index < len(lines):
        match = _TOP_KEY.match(lines[index])
        if match is None:
            out.append(lines[index])
            index += 1
            continue
        key = match["key"]
        end = index + 1
        while end < len(lines) and lines[end][:1] in (" ", "\t"):
            end += 1  # the key's block: its indented lines
        block = lines[index:end]
        out.extend(_rewrite(key, block, data, articles, number))
        index = end
    if "articles" not in data:
        out.extend(_rewrite("articles", [], data, articles, number))
    return "\n".join(out) + "\n"


def _rewrite(key: str, block: list[str], data: LineDict, articles: list[str],
             number: str | None) -> list[str]:
    if key in _EMPTIED:
        langs = _languages(data.get(key))
        what = "subject" if key == "subject" else "preview text after the subject"
        if langs is None:
            return [f'{key}: ""   # TODO: the {what} (send refuses it empty)']
        return [f"{key}:   # TODO: the {what}, in each language (send refuses it empty)",
                *(f'  {lang}: ""' for lang in langs)]
    if key == "number" and (value := _number(number)) is not None:
        digits = (number or "").strip()
        return [f"number: {str(value + 1).zfill(len(digits))}"]  # 009 -> 010: padding kept
    if key == "date":
        return ["# date: YYYY-MM-DD   # the issue's date (optional: else the day it is sent)"]
    if key == "send_at":
        return ["# send_at: YYYY-MM-DDTHH:MM:SS+01:00   # for 'mirage-mailer run-due'"]
    if key == "articles":
        return ["articles:   # TODO: write each one and its translations (rename at will)",
                *(f"  - {name}" for name in articles)]
    return block


def _article(n: int, old: str, lang: str | None) -> str:
    """An empty article: its title and text to write (an empty text is an error)."""
    was = f"; the last issue's was {old}" if old else ""
    which = f"The {lang} translation of article-{n}.md" if lang else f"Article {n}{was}"
    return ("---\n"
            f"# {which}.\n"
            "# Write its title here and its text in Markdown below the second '---':\n"
            "# validate, preview and send refuse it while the text is empty. Optional keys:\n"
            "# date, author, summary, image (a file in this folder) with image_alt.\n"
            'title: ""\n'
            "---\n")
