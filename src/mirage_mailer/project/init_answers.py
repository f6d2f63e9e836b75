"""What ``init`` asks (the project's name, website, contact address, language and disclaimer
preset), how each answer is checked, and how the answers go into the scaffold's files.

The scaffold's ``mirage.yaml`` is the MIraGE sample with its comments; the answers replace
the sample's values line by line, so every comment that explains a setting stays. The sample
issue is written in English and French: a project in French gets the French text as its
default-language articles, and a project in another language gets the English text under its
own language code (to be replaced, as every sample article is), so the project validates as
written whatever language it chose.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from mirage_mailer.project.config import PRESETS
from mirage_mailer.util.addresses import check_address, parse_mailbox
from mirage_mailer.util.langs import check_language, normalise_language

INIT_PRESETS = tuple(p for p in PRESETS if p != "custom")
PRESET_HELP = {
    "amif-2014-2020": "AMIF 2014-2020 grants (the MIraGE project's)",
    "eu-2021-2027-direct": "2021-2027 grants managed by the Commission or an agency "
                           "(names the granting authority)",
    "eu-2021-2027-shared": "2021-2027 funds under shared management ('Co-funded by the "
                           "European Union')",
}
SAMPLE_URL = "https://www.mirageproject.eu"
SAMPLE_DOMAIN = "mirageproject.eu"
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")
_MAILBOX_SPECIALS = re.compile(r'[()<>@,;:\\".\[\]]')


@dataclass(frozen=True)
class ProjectAnswers:
    """A new project's identity: what ``init`` writes instead of the MIraGE sample's."""

    name: str
    website: str | None
    contact: str
    language: str
    preset: str
    authority: str | None = None


# -- checks: None when the answer is good, else what is wrong and how to fix it ---------------


def check_name(value: str) -> str | None:
    text = value.strip()
    if not text:
        return "the project's name is empty (give it as readers know it, e.g. MIraGE)"
    if _CONTROL.search(text):
        return "the project's name must be one line of text"
    if len(text) > 120:
        return f"the project's name is {len(text)} characters long; at most 120"
    return None


def check_website(value: str) -> str | None:
    text = value.strip()
    if not text:
        return None  # no website: the key is left out
    parts = urlsplit(text)
    if parts.scheme not in ("https", "http") or not parts.hostname or " " in text \
            or _CONTROL.search(text):
        return f"'{text[:80]}' is not a web address (write it like https://www.example.org)"
    if parts.username or parts.password:
        return "the website must not hold a user name or password"
    return None


def check_contact(value: str) -> str | None:
    text = value.strip()
    if not text:
        return "the contact address is empty (the address readers can write to, e.g. " \
               "info@example.org)"
    if "<" in text or " " in text:
        return f"'{text[:80]}' is not a plain e-mail address (give the address alone, " \
               "e.g. info@example.org)"
    return check_address(text)[1]


def check_lang(value: str) -> str | None:
    problem = check_language(value.strip())
    if problem:
        return f"{problem} (use an ISO 639-1 code such as en, fr or pt-BR)"
    return None


def check_preset(value: str) -> str | None:
    text = value.strip()
    if text == "custom":
        return ("init writes a preset; for your own statement and text, choose one now, then "
                "set disclaimer.preset: custom, statement and text in mirage.yaml")
    if text not in INIT_PRESETS:
        return f"'{text[:40]}' is not a disclaimer preset (choose {', '.join(INIT_PRESETS)})"
    return None


def check_authority(value: str) -> str | None:
    text = value.strip()
    if not text:
        return ("eu-2021-2027-direct names the granting authority as your grant agreement "
                "does, e.g. 'the European Research Executive Agency (REA)'")
    if _CONTROL.search(text) or len(text) > 200:
        return "the granting authority must be one line of at most 200 characters"
    return None


def default_contact(website: str | None) -> str | None:
    """``info@`` the website's domain, as most projects' public address reads."""
    host = urlsplit(website).hostname if website else None
    if not host or "." not in host:
        return None
    return "info@" + (host[4:] if host.startswith("www.") else host)


# -- writing the answers -----------------------------------------------------------------------


def scalar(value: str) -> str:
    """``value`` as a YAML scalar on one line: plain where that reads back the same."""
    dumped = yaml.safe_dump(value, allow_unicode=True, width=10**6, default_flow_style=True)
    text = dumped.removesuffix("\n...\n").removesuffix("\n")
    return text


def mailbox(name: str, address: str) -> str:
    """``Name <address>``, the name quoted where RFC 5322 needs it."""
    if _MAILBOX_SPECIALS.search(name):
        name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{name} <{address}>"


def _set_key(lines: list[str], section: str, key: str, value: str | None) -> None:
    """Set ``section.key`` (2-space indent) to ``value``; None comments it out."""
    head = next((i for i, line in enumerate(lines)
                 if re.match(rf"^{re.escape(section)}:\s*(#.*)?$", line)), None)
    if head is None:
        lines.extend(["", f"{section}:"])
        head = len(lines) - 1
    end = head + 1
    while end < len(lines) and (not lines[end].strip() or lines[end].startswith(" ")):
        end += 1
    new = f"  {key}: {value}" if value is not None else None
    for i in range(head + 1, end):
        if re.match(rf"^  {re.escape(key)}\s*:", lines[i]):
            if new is None:
                lines[i] = "  # " + lines[i].lstrip()
            else:
                lines[i] = new
            return
    if new is not None:
        lines.insert(head + 1, new)


def configure(text: str, answers: ProjectAnswers) -> str:
    """The scaffold's mirage.yaml with the answers in place of the sample's values."""
    name = answers.name.strip()
    contact = answers.contact.strip()
    website = answers.website.strip().rstrip("/") if answers.website else None
    domain = contact.rpartition("@")[2]
    sender = mailbox(name, contact)
    _n, _e, problem = parse_mailbox(sender)
    if problem:  # never: the name and the address were checked; say so if it happens
        raise ValueError(f"sender {sender!r}: {problem}")
    lines = text.splitlines()
    _set_key(lines, "project", "name", scalar(name))
    _set_key(lines, "project", "website", scalar(website) if website else None)
    _set_key(lines, "project", "contact", scalar(contact))
    _set_key(lines, "project", "language", scalar(normalise_language(answers.language)))
    _set_key(lines, "sender", "from", scalar(sender))
    _set_key(lines, "sender", "reply_to", scalar(contact))
    _set_key(lines, "disclaimer", "preset", answers.preset)
    if answers.preset == "eu-2021-2027-direct" and answers.authority:
        index = next(i for i, line in enumerate(lines) if line.startswith("  preset:"))
        lines.insert(index + 1, f"  authority: {scalar(answers.authority.strip())}")
    out = []
    for line in lines:
        line = line.replace("I agree that the MIraGE project sends", f"I agree that {name} sends")
        if SAMPLE_URL in line:
            if website:
                line = line.replace(SAMPLE_URL, website)
            elif line.lstrip().startswith("#"):
                line = line.replace(SAMPLE_URL, "https://www.example.org")
            else:  # a setting that needs the website (the privacy notice): left to set
                indent = len(line) - len(line.lstrip())
                line = line[:indent] + "# " + line[indent:].replace(
                    SAMPLE_URL, "https://www.example.org")
        out.append(line.replace(SAMPLE_DOMAIN, domain))
    return "\n".join(out) + "\n"


_SUBJECT_KEYS = re.compile(r"^(  )en:", re.MULTILINE)


def localise_sample(files: dict[Path, bytes], language: str) -> dict[Path, bytes]:
    """The sample issue with ``language`` as its default language (see the module's doc)."""
    lang = normalise_language(language)
    if lang == "en":
        return files
    out: dict[Path, bytes] = {}
    for rel, data in files.items():
        parts = rel.parts
        if len(parts) != 3 or parts[0] != "issues":
            out[rel] = data
            continue
        name = parts[2]
        match = re.match(r"^(?P<stem>[^.]+)(?:\.(?P<lang>[a-z]{2}))?\.md$", name)
        if lang == "fr" and match:
            if match["lang"] == "fr":  # the French text becomes the default-language one
                out[rel.with_name(f"{match['stem']}.md")] = data
            elif match["lang"] is None:
                out[rel.with_name(f"{match['stem']}.en.md")] = data
            else:
                out[rel] = data
        elif lang != "fr" and name == "issue.yaml":
            text = data.decode("utf-8")
            out[rel] = _SUBJECT_KEYS.sub(rf"\g<1>{lang}:", text).encode("utf-8")
        else:
            out[rel] = data
    return out
