"""The name of the European Union in its 24 official languages, with its grammatical forms.

The EU visibility rules want the funding statement to write the Union's name out in full, in
the language of the message: "Funded by the EU" or "Financé par l'UE" is not enough. Matching is
done on a folded form (Unicode NFKD, combining marks dropped, case folded, apostrophes and
spaces unified), so "EUROPÄISCHEN UNION", "Europäischen  Union" and a decomposed "ä" all match,
and each language's pattern covers the declension that statements use ("von der Europäischen
Union", "ze środków Unii Europejskiej", "Ευρωπαϊκής Ένωσης").
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from babel import Locale, UnknownLocaleError

# language -> (the name as the message quotes it, a pattern in natural spelling; folded below)
_NAMES: dict[str, tuple[str, str]] = {
    "bg": ("Европейски съюз", r"европейски(?:я|ят)?\s+съюз"),
    "cs": ("Evropská unie", r"evropsk(?:á|é|ou|ý|ých)\s+uni(?:e|í|i)\b"),
    "da": ("Den Europæiske Union", r"europæiske\s+union"),
    "de": ("Europäische Union", r"europäische[nrms]?\s+union"),
    "el": ("Ευρωπαϊκή Ένωση", r"ευρωπαϊκ(?:ή|ής)\s+ένωση"),
    "en": ("European Union", r"european\s+union"),
    "es": ("Unión Europea", r"unión\s+europea"),
    "et": ("Euroopa Liit", r"euroopa\s+lii[td]"),
    "fi": ("Euroopan unioni", r"euroopan\s+unioni"),
    "fr": ("Union européenne", r"union\s+européenne"),
    "ga": ("an tAontas Eorpach", r"aontai?s\s+eorpa(?:ch|igh)"),
    "hr": ("Europska unija", r"europsk(?:a|e|oj|u|om)\s+unij"),
    "hu": ("Európai Unió", r"európai\s+unió"),
    "it": ("Unione europea", r"unione\s+europea"),
    "lt": ("Europos Sąjunga", r"europos\s+sąjung"),
    "lv": ("Eiropas Savienība", r"eiropas\s+savienīb"),
    "mt": ("l-Unjoni Ewropea", r"unjoni\s+ewropea"),
    "nl": ("Europese Unie", r"europese\s+unie"),
    "pl": ("Unia Europejska", r"uni(?:a|i|ę|ą)\s+europejsk(?:a|iej|ą|ie)"),
    "pt": ("União Europeia", r"união\s+europeia"),
    "ro": ("Uniunea Europeană", r"uniun(?:ea|ii|e|ii)\s+europe(?:ană|ne)"),
    "sk": ("Európska únia", r"európsk(?:a|ej|ou|u)\s+úni(?:a|e|ou|i|u)"),
    "sl": ("Evropska unija", r"evropsk(?:a|e|i|o)\s+unij"),
    "sv": ("Europeiska unionen", r"europeiska\s+unionen"),
}
# Abbreviations of the Union a statement might use instead of its name.
_ABBREVIATIONS = re.compile(r"(?<!\w)(EU|UE|ЕС|ΕΕ|EÚ|EL|ES|AE)(?!\w)")


def fold(text: str) -> str:
    """Text as the patterns compare it: no accents, no case, one kind of space and apostrophe."""
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    bare = bare.replace("\u2019", "'").replace("\u02bc", "'").replace("\u2011", "-")
    return " ".join(bare.casefold().split())


_PATTERNS = {lang: re.compile(r"(?<!\w)t?" + fold(pattern)) if lang == "ga"
             else re.compile(r"(?<!\w)" + fold(pattern))
             for lang, (_, pattern) in _NAMES.items()}
OFFICIAL_LANGUAGES = frozenset(_NAMES)


@dataclass(frozen=True)
class NameCheck:
    """What the statement says about the Union, for one language."""

    lang: str  # the base language checked (fr for fr-BE)
    official: bool  # one of the 24 official languages of the EU
    ok: bool  # names the Union in full in that language
    expected: str | None  # the name in that language, for the message
    found_in: str | None  # another language whose name it does use (e.g. en in a French one)
    abbreviation: str | None  # "EU", "UE"… when it uses one


def base_language(lang: str) -> str:
    return lang.replace("_", "-").split("-")[0].lower()


def names_the_union(statement: str, lang: str) -> bool:
    """The statement writes out the Union's name in ``lang`` (one of the 24)."""
    pattern = _PATTERNS.get(base_language(lang))
    return bool(pattern and pattern.search(fold(statement)))


def check_statement(statement: str, lang: str) -> NameCheck:
    """Does ``statement`` (in ``lang``) write out the name of the European Union?

    For one of the 24 official languages the name must be in that language. For any other
    language the tool cannot know the name: a statement using one of the 24 names passes, and
    one that uses none is reported (``ok`` False, ``official`` False) for a warning, not a
    refusal.
    """
    base = base_language(lang)
    folded = fold(statement)
    found = [code for code, pattern in _PATTERNS.items() if pattern.search(folded)]
    abbreviation = _ABBREVIATIONS.search(statement)
    if base in _PATTERNS:
        ok = base in found
        expected: str | None = _NAMES[base][0]
        other = None if ok else next(iter(found), None)
        return NameCheck(base, True, ok, expected, other,
                         abbreviation.group(1) if abbreviation else None)
    return NameCheck(base, False, bool(found), None, next(iter(found), None),
                     abbreviation.group(1) if abbreviation else None)


RULE = "EU visibility rules"
# The presets' (English) statements beside the emblem.
FUNDED = "Funded by the European Union"
CO_FUNDED = "Co-funded by the European Union"


def language_name(lang: str) -> str:
    """'French' for fr: the messages speak of languages as an officer does."""
    try:
        return str(Locale.parse(base_language(lang)).english_name)
    except (ValueError, TypeError, UnknownLocaleError):
        return f"'{lang}'"


def statement_problem(field: str, statement: str, lang: str) -> str | None:
    """The refusal for a statement that does not name the Union in full in ``lang``, or None.

    ``field`` names the setting as the officer wrote it (``disclaimer.translations.fr.statement``)
    or as the preset gives it. Languages outside the 24 are never refused here (see
    ``statement_warning``).
    """
    check = check_statement(statement, lang)
    if check.ok or not check.official:
        return None
    language = language_name(check.lang)
    message = (f"{field} must write out the name of the European Union in full in {language} "
               f"(\"{check.expected}\")")
    if check.found_in:
        message += f"; it names it in {language_name(check.found_in)}, not in {language}"
    elif check.abbreviation:
        message += f"; \"{check.abbreviation}\" is not enough"
    return message


def statement_warning(field: str, statement: str, lang: str) -> str | None:
    """For a language outside the 24: the tool cannot check the name, so it says so once."""
    check = check_statement(statement, lang)
    if check.ok or check.official:
        return None
    return (f"{field} is in {language_name(check.lang)}, which is not an official language of "
            "the EU: mirage-mailer cannot check that it writes out the name of the European "
            "Union in full")
