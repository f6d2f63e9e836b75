"""What ``init`` asks (the project's name, website, contact address, language and disclaimer
preset), how each answer is checked, and how the answers go into the scaffold's files.

The scaffold's ``mirage.yaml`` is the MIraGE sample with its comments; the answers replace
the sample's values line by line, so every comment that explains a setting stays; the privacy
notice is only ever the officer's answer, and the consent text is in the project's language
where init has one. The sample issue names, links and gives the address of the new project
instead of MIraGE. It is written in English and French: a project in French gets the French
text as its default-language articles, and a project in another language gets the English
text under its own language code (to be replaced, as every sample article is), so the
project validates as written whatever language it chose.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from mirage_mailer.project.config import PRESETS
from mirage_mailer.project.config_checks import has_userinfo
from mirage_mailer.project.origins import origin_of
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
    privacy_url: str | None = None  # None: left for the officer to set before sign-up


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


def check_privacy_url(value: str) -> str | None:
    """As ``web.privacy_url`` is checked in mirage.yaml: https, no user name or password."""
    text = value.strip()
    if not text:
        return None  # none yet: the key is left commented out, and sign-up waits for it
    if has_userinfo(text) or "@" in urlsplit(text).netloc:
        return "the privacy notice's address must not hold a user name or password"
    host = (urlsplit(text).hostname or "").lower()
    if not re.match(r"^https?://", text, re.IGNORECASE) or origin_of(text) is None \
            or " " in text or _CONTROL.search(text):
        return f"'{text[:80]}' is not a web address (the page of your privacy notice, e.g. " \
               "https://www.example.org/privacy)"
    if not text.lower().startswith("https://") and host not in ("localhost", "127.0.0.1"):
        return "the privacy notice's address must start with https://"
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
    _set_privacy_url(lines, answers.privacy_url.strip() if answers.privacy_url else None)
    _set_consent(lines, name, normalise_language(answers.language))
    out = []
    for line in lines:
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


CONSENT = {
    "en": "I agree that {name} sends me its newsletter by e-mail and keeps my address for that "
          "purpose only. I can unsubscribe at any time with the link in every message.",
    "fr": "J'accepte que {name} m'envoie sa lettre d'information par e-mail et conserve mon "
          "adresse à cette seule fin. Je peux me désabonner à tout moment grâce au lien "
          "présent dans chaque message.",
}


def _set_privacy_url(lines: list[str], url: str | None) -> None:
    """``web.privacy_url``: the answer, or commented out (never made up from the website)."""
    for i, line in enumerate(lines):
        if line.startswith("  privacy_url:"):
            lines[i] = (f"  privacy_url: {scalar(url)}" if url else
                        "  # privacy_url: https://www.example.org/privacy   # set it: sign-up "
                        "needs your privacy notice")
            return


def _set_consent(lines: list[str], name: str, lang: str) -> None:
    """``web.consent_text`` naming the project, in its language where init has the text
    (else English: the web forms mark it with ``lang``)."""
    head = next((i for i, line in enumerate(lines) if line.startswith("  consent_text:")), None)
    if head is None:
        return
    end = head + 1
    while end < len(lines) and lines[end].startswith("    "):
        end += 1
    base = lang.split("-")[0]
    text = CONSENT.get(base, CONSENT["en"]).format(name=name)
    note = [] if base in CONSENT else [
        f"  # Written in English: translate it into the project's language ({lang}), as the",
        "  # sign-up forms say it is written in that language."]
    lines[head:end] = [*note, "  consent_text: >-", *textwrap.wrap(
        text, width=92, initial_indent="    ", subsequent_indent="    ",
        break_long_words=False, break_on_hyphens=False)]


_SAMPLE_NAME = "MIraGE"
_SAMPLE_CONTACT = "info@" + SAMPLE_DOMAIN
_YAML_LINE = re.compile(r"^(?P<key>\s*[\w-]+:\s+)(?P<value>\S.*)$")
_WEBSITE_LINK = re.compile(r"\[(?P<text>[^\]]*)\]\(" + re.escape(SAMPLE_URL) + r"/?\)")
_CONTACT_LINK = re.compile(r"\[" + re.escape(_SAMPLE_CONTACT) + r"\]\(mailto:"
                           + re.escape(_SAMPLE_CONTACT) + r"\)")
_MARKDOWN_SPECIALS = re.compile(r"([\\`*_\[\]<>#&!|~])")


def _yaml_lines(text: str, name: str) -> str:
    """The sample's name replaced in YAML ``key: value`` lines, each value written again as
    a scalar so that any name (quotes, colons, #) reads back as it was given."""
    out = []
    for line in text.split("\n"):
        match = _YAML_LINE.match(line)
        if match and _SAMPLE_NAME in match["value"]:
            value = yaml.safe_load(match["value"])
            if isinstance(value, str):
                line = match["key"] + scalar(value.replace(_SAMPLE_NAME, name))
        out.append(line)
    return "\n".join(out)


def _markdown(text: str, answers: ProjectAnswers) -> str:
    """An article's body naming and linking the project instead of the sample's."""
    website = answers.website.strip().rstrip("/") if answers.website else None
    contact = answers.contact.strip()
    text = _WEBSITE_LINK.sub(lambda m: f"[{m['text']}]({website})" if website else m["text"],
                             text)
    text = _CONTACT_LINK.sub(lambda m: f"[{contact}](mailto:{contact})", text)
    return text.replace(_SAMPLE_NAME, _MARKDOWN_SPECIALS.sub(r"\\\1", answers.name.strip()))


def personalise_sample(files: dict[Path, bytes], answers: ProjectAnswers) -> dict[Path, bytes]:
    """The sample issue naming, linking and giving the address of the new project instead of
    MIraGE (its text is the sample's, to be replaced): nothing a new project sends names
    or links another project. A project without a website keeps the link texts, unlinked."""
    name = answers.name.strip()
    out: dict[Path, bytes] = {}
    for rel, data in files.items():
        if rel.parts[0] != "issues":
            out[rel] = data
            continue
        text = data.decode("utf-8")
        if rel.suffix == ".md" and text.startswith("---\n"):
            _start, head, body = text.split("---\n", 2)
            text = "---\n" + _yaml_lines(head, name) + "---\n" + _markdown(body, answers)
        elif rel.suffix == ".md":
            text = _markdown(text, answers)
        else:
            text = _yaml_lines(text, name)
        out[rel] = text.encode("utf-8")
    return out


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
