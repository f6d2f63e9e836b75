"""The gettext catalogs of the web side: the .pot matches the code, French is complete, and the
language of a request is chosen as the contract says (token or page, Accept-Language, project).
"""

from __future__ import annotations

import gettext
import re
from pathlib import Path

import pytest
from babel.messages.frontend import CommandLineInterface
from babel.messages.pofile import read_po

from mirage_mailer.web import i18n
from mirage_mailer.web.pages import ERROR_TITLES, render_text

ROOT = Path(__file__).resolve().parents[2]
LOCALE = ROOT / "src" / "mirage_mailer" / "data" / "locale"
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")


def msgids(path: Path) -> set[str | tuple[str, ...]]:
    with path.open("rb") as handle:
        return {m.id if isinstance(m.id, str) else tuple(m.id) for m in read_po(handle) if m.id}


def test_the_pot_is_what_pybabel_extracts_from_the_code(tmp_path: Path) -> None:
    """Run the documented command into a temporary file: a string added to a template or a
    route without `pybabel extract` and `pybabel update` fails here."""
    fresh = tmp_path / "messages.pot"
    CommandLineInterface().run([
        "pybabel", "-q", "extract", "-F", str(ROOT / "babel.cfg"), "--no-location",
        "--sort-output", "-o", str(fresh), str(ROOT / "src" / "mirage_mailer")])
    shipped = msgids(LOCALE / "messages.pot")
    extracted = msgids(fresh)
    assert extracted == shipped, (
        f"missing from messages.pot: {sorted(map(str, extracted - shipped))}; "
        f"no longer in the code: {sorted(map(str, shipped - extracted))}. Run the extract and "
        "update commands of babel.cfg")
    assert len(extracted) > 80  # pages, mail, feed, errors: not an accidental empty run


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_each_catalog_holds_exactly_the_pot(lang: str) -> None:
    assert msgids(LOCALE / lang / "LC_MESSAGES" / "messages.po") == msgids(LOCALE / "messages.pot")


def test_french_translates_every_message_with_its_placeholders() -> None:
    with (LOCALE / "fr" / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        catalog = read_po(handle, locale="fr")
    assert not catalog.fuzzy
    checked = 0
    for message in catalog:
        if not message.id:
            continue
        assert "fuzzy" not in message.flags, message.id
        ids = [message.id] if isinstance(message.id, str) else list(message.id)
        strings = [message.string] if isinstance(message.string, str) else list(message.string)
        assert strings and all(s.strip() for s in strings), f"untranslated: {message.id!r}"
        wanted = set(PLACEHOLDER.findall(ids[-1]))
        for string in strings:
            assert set(PLACEHOLDER.findall(string)) == wanted, (message.id, string)
            assert string.count("<a ") == ids[0].count("<a "), (message.id, string)
        checked += 1
    assert checked == len(msgids(LOCALE / "messages.pot"))


def test_the_french_catalog_is_compiled_in_memory_and_used() -> None:
    french = i18n.translations("fr")
    assert french.gettext(ERROR_TITLES[404]) == "Page introuvable"
    assert french.ngettext("x", "y", 1) == "x"  # unknown: the source
    assert isinstance(i18n.translations("en"), gettext.NullTranslations)
    assert i18n.translations("de").gettext("Subscribe") == "Subscribe"  # no catalog: English
    assert i18n.catalog_languages() >= {"en", "fr"}


@pytest.mark.parametrize(("header", "wanted"), [
    ("fr-CH, fr;q=0.9, en;q=0.5", ["fr-CH", "fr", "en"]),
    ("en;q=0.5, fr", ["fr", "en"]),
    ("de;q=0.1, fr;q=0.8, en;q=0.8", ["fr", "en", "de"]),  # equal weights keep their order
    ("fr;q=0, en", ["en"]),  # q=0: "not this one"
    ("fr;q=abc, en", ["en"]),
    ("", []),
    ("*", ["*"]),
    ("fr;q=1.5, en", ["en"]),
    ("<script>, en", ["en"]),
])
def test_accept_language_is_parsed_with_its_weights(header: str, wanted: list[str]) -> None:
    assert i18n.parse_accept_language(header) == wanted


@pytest.mark.parametrize(("preferred", "header", "project", "expected"), [
    ([None], "fr-CH, fr;q=0.9, en;q=0.5", "en", "fr"),
    ([None], "de", "en", "en"),
    ([None], "de", "fr", "fr"),  # nothing the reader reads: the project's language
    ([None], None, "fr", "fr"),
    ([None], None, "de", "en"),  # a project language without a catalog: the source
    (["fr"], "en", "en", "fr"),  # the token's language first
    (["pt-BR"], "fr;q=0.3, de", "en", "fr"),  # no catalog for the token's: the header
    ([None], "de, *;q=0.5, fr;q=0.1", "fr", "fr"),
    ([None], "en-GB;q=0.2, fr-FR", "en", "fr"),
])
def test_the_language_is_negotiated(preferred: list[str | None], header: str | None,
                                    project: str, expected: str) -> None:
    assert i18n.negotiate(preferred, header, project) == expected


def test_a_template_variable_is_escaped_inside_a_translation() -> None:
    """Translations are trusted markup; what they carry from outside is not."""
    from mirage_mailer.web.links import Links

    page = render_text("subscribe_sent.html.j2", lang="fr", links=Links("/"), site=_Site(),
                       title="t", noindex=False, email="<b>x</b>@example.org")
    assert "&lt;b&gt;x&lt;/b&gt;@example.org" in page and "<b>x</b>" not in page
    assert "Sauf si l'adresse <strong>" in page


class _Site:
    name = "MIraGE"
    website = ""
    contact = "info@example.org"
