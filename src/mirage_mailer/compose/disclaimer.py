"""The EU funding disclaimer: presets, confirmed translations, and the compliance checker.

The checker reads the *rendered* output (after CSS inlining), not the template, so a template
that drops, hides, restyles or rewords the block is caught whatever it does to get there.
Rules follow the EU emblem guidelines: live-text statement beside the emblem, in an allowed
font, in reflex blue, black or white, the emblem no smaller than any other logo.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import lxml.html
from lxml.html import HtmlElement

from mirage_mailer.compose.css_sources import StyleSources
from mirage_mailer.compose.visibility import unseen
from mirage_mailer.project.config import DisclaimerConfig
from mirage_mailer.project.eu_names import CO_FUNDED as CO_FUNDED
from mirage_mailer.project.eu_names import FUNDED as FUNDED
from mirage_mailer.project.eu_names import base_language, language_name, statement_warning
from mirage_mailer.util.errors import display_path

AMIF_TEXT = (
    "This project was funded by the European Union's Asylum, Migration and Integration Fund. "
    "The content of this document represents the views of the author only and is his/her sole "
    "responsibility. The European Commission does not accept any responsibility for use that "
    "may be made of the information it contains."
)
DIRECT_TEXT = (
    "Funded by the European Union. Views and opinions expressed are however those of the "
    "author(s) only and do not necessarily reflect those of the European Union or {authority}. "
    "Neither the European Union nor the granting authority can be held responsible for them."
)
EMBLEM_ALT = "Flag of the European Union"
EMBLEM_ALT_LANG = "en"  # the language EMBLEM_ALT is written in, for the <img>'s lang
EMBLEM_CID = "eu-emblem@mirage-mailer"
EMBLEM_FILE = "eu-emblem.png"
EMBLEM_WIDTH, EMBLEM_HEIGHT = 90, 60
ALLOWED_FONTS = ("arial", "calibri", "garamond", "trebuchet ms", "trebuchet", "tahoma",
                 "verdana", "ubuntu")
ALLOWED_COLOURS = {"#003399": "reflex blue", "#000000": "black", "#ffffff": "white"}
_NAMED = {"black": "#000000", "white": "#ffffff"}


@dataclass(frozen=True)
class DisclaimerBlock:
    """What one language's messages must carry."""

    lang: str
    statement: str
    text: str | None
    confirmed: bool  # False when the default language stands in for a missing translation
    emblem_alt: str = EMBLEM_ALT
    emblem_alt_lang: str = EMBLEM_ALT_LANG


def preset_texts(config: DisclaimerConfig) -> tuple[str, str | None]:
    """(statement, text) of the default language."""
    if config.preset == "amif-2014-2020":
        return config.statement or FUNDED, config.text or AMIF_TEXT
    if config.preset == "eu-2021-2027-direct":
        text = DIRECT_TEXT.format(authority=authority_phrase(config.authority))
        return config.statement or FUNDED, config.text or text
    if config.preset == "eu-2021-2027-shared":
        return config.statement or CO_FUNDED, config.text
    return config.statement or "", config.text


def authority_phrase(authority: str | None) -> str:
    """The authority as it reads after "…of the European Union or": one "the", not zero or two.

    ``European Commission`` and ``the European Commission`` both give "the European
    Commission"; a name of one word (an acronym such as ``REA`` or ``HaDEA``) is used as
    written, since "or the REA" is not how the agreements put it.
    """
    name = normalise_space(authority or "")
    if not name:
        return "the granting authority"
    if name.lower().startswith("the "):
        return "the " + name[4:].lstrip()
    return name if " " not in name else "the " + name


def union_name_warnings(config: DisclaimerConfig,
                        language: str) -> list[tuple[str, str, str]]:
    """(setting, message, hint) for statements the tool cannot vouch for: warnings, not refusals.

    A preset's built-in statement and text are English: in a project whose language is another
    one they stand in for the missing wording, as a missing translation does. A statement in a
    language outside the 24 official ones that names the Union in none of them cannot be
    checked, so the tool says so.
    """
    out = []
    if not config.statement and config.preset != "custom" and base_language(language) != "en":
        out.append(("disclaimer.preset", (
            f"preset {config.preset} gives its statement and text in English, but the project's "
            f"language is {language_name(language)}: every {language} message carries the "
            "English ones"), f"write disclaimer.statement and disclaimer.text in "
            f"{language_name(language)} as your grant agreement words them"))
    statements = [(f"disclaimer.translations.{lang}.statement", entry.statement, lang)
                  for lang, entry in config.translations.items() if entry.statement]
    if config.statement:
        statements.insert(0, ("disclaimer.statement", config.statement, language))
    return out + [(key, said, "make sure it does, as your grant agreement words it")
                  for key, statement, lang in statements
                  if (said := statement_warning(key, statement, lang))]


def block_for(config: DisclaimerConfig, lang: str, default_lang: str) -> DisclaimerBlock:
    """The block for ``lang``: a confirmed translation, or the default language's text."""
    statement, text = preset_texts(config)
    if lang == default_lang:
        return DisclaimerBlock(lang, statement, text, True)
    entry = config.translations.get(lang) or config.translations.get(lang.split("-")[0])
    if entry is None:
        return DisclaimerBlock(lang, statement, text, False)
    complete = bool(entry.statement) and (text is None or bool(entry.text))
    if not complete:
        return DisclaimerBlock(lang, statement, text, False)
    return DisclaimerBlock(lang, entry.statement or statement, entry.text if text else None, True)


def missing_parts(config: DisclaimerConfig, lang: str) -> tuple[str, ...]:
    """(the translation's code, the parts it lacks...) when ``lang`` has a translation that
    ``block_for`` drops for being partial; () otherwise. Said precisely, so the user adds the
    missing part instead of rewriting a translation that is half there."""
    code = lang if lang in config.translations else lang.split("-")[0]
    entry = config.translations.get(code)
    if entry is None:
        return ()
    _, text = preset_texts(config)
    missing = [part for part, needed, given in (("statement", True, entry.statement),
                                                ("text", text is not None, entry.text))
               if needed and not given]
    return (code, *missing) if missing else ()


def words_language(config: DisclaimerConfig, block: DisclaimerBlock, default_lang: str) -> str:
    """The language the block's words are written in, for its ``lang`` attribute.

    A confirmed translation is in its language; otherwise the words are the default
    language's: the user's own statement, or a preset's built-in English.
    """
    if block.confirmed and block.lang != default_lang:
        return block.lang
    if config.statement or config.preset == "custom":
        return default_lang
    return "en"


def rule_hint(templates: Path, kind: str) -> str:
    """What to restore when a rule fails: never blame a template that ``init`` wrote untouched.

    ``kind`` is ``html`` or ``txt``. If both the newsletter template and the disclaimer partial
    are byte for byte the scaffold's, the rule itself is wrong, and the hint says so.
    """
    from importlib import resources  # only when a rule failed: its reader costs ms at start

    newsletter, partial = f"newsletter.{kind}.j2", f"partials/disclaimer.{kind}.j2"
    scaffold = resources.files("mirage_mailer").joinpath("data", "scaffold", "templates")
    changed = []
    for rel in (newsletter, partial):
        try:
            same = (templates / rel).read_bytes() == scaffold.joinpath(rel).read_bytes()
        except OSError:
            same = False
        if not same:
            changed.append(rel)
    if not changed:
        return ("the templates are as 'mirage-mailer init' writes them, so this is a bug in "
                "mirage-mailer's check: please report it")
    what = []
    if partial in changed:
        what.append(f"restore {display_path(templates / partial)} as 'mirage-mailer init' "
                    "writes it")
    if newsletter in changed:
        styles = " and the .eu-* styles" if kind == "html" else ""
        what.append(f"keep the disclaimer include{styles} of "
                    f"{display_path(templates / newsletter)} as 'mirage-mailer init' "
                    "writes them")
    return "; ".join(what)


def normalise_space(text: str) -> str:
    return " ".join(text.split())


def check_text(text_part: str, block: DisclaimerBlock) -> list[str]:
    """Broken rules in the plain-text part.

    The statement must stand on its own: a disclaimer text that begins with the same words
    ("Funded by the European Union. Views and opinions…") does not stand in for it.
    """
    flat = normalise_space(text_part)
    broken = []
    alone = flat.replace(normalise_space(block.text), " ", 1) if block.text else flat
    if normalise_space(block.statement) not in alone:
        broken.append(f"the text part lacks the funding statement \"{block.statement}\"")
    if block.text and normalise_space(block.text) not in flat:
        broken.append("the text part lacks the exact disclaimer text")
    return broken


def check_html(html: str, block: DisclaimerBlock, emblem_src: str) -> list[str]:
    """Broken rules in the rendered, inlined HTML; an empty list means compliant."""
    doc = lxml.html.document_fromstring(html)
    broken: list[str] = []
    emblems = [img for img in doc.iter("img") if img.get("src") == emblem_src]
    if not emblems:
        return [f"the EU emblem image ({emblem_src}) is missing"]
    emblem = emblems[0]
    sources, seen = StyleSources(doc), set[str]()
    if any("stylesheet" in (link.get("rel") or "").lower().split() for link in doc.iter("link")):
        broken.append("the HTML loads a stylesheet (<link rel=\"stylesheet\">) whose rules "
                      "could hide the block unchecked; put them in the <style> block")
    if "european union" not in (emblem.get("alt") or "").lower():
        broken.append("the EU emblem's alt text must name the European Union "
                      f"(\"{EMBLEM_ALT}\")")
    broken += unseen(emblem, "the EU emblem", sources, seen, text=False)
    emblem_height = _size(emblem, "height")
    if emblem_height is None:
        broken.append("the EU emblem needs a height (attribute or style)")
    else:
        for img in doc.iter("img"):
            if img is emblem or not _is_logo(img):
                continue
            other = _size(img, "height")
            if other is not None and other > emblem_height:
                broken.append(f"the EU emblem ({emblem_height:g}px high) is smaller than "
                              f"another logo ({img.get('src')}, {other:g}px)")
    table = next(emblem.iterancestors("table"), None)
    beside = _statement_element(table if table is not None else emblem.getparent(), block)
    if beside is not None:
        broken += unseen(beside, "the funding statement", sources, seen, text=True)
        broken += _statement_style(beside, sources)
    elif _statement_element(doc, block) is not None:
        broken.append("the funding statement must stand beside the EU emblem (same table)")
    else:
        broken.append(f"the funding statement \"{block.statement}\" is not live text in the "
                      "HTML part")
    if block.text:
        text_el = _smallest_containing(doc, block.text)
        if text_el is None:
            broken.append("the disclaimer text is missing from the HTML part or was altered")
        else:
            broken += unseen(text_el, "the disclaimer text", sources, seen, text=True)
    return broken


def _styles(el: HtmlElement) -> dict[str, str]:
    result: dict[str, str] = {}
    for decl in (el.get("style") or "").split(";"):
        prop, sep, value = decl.partition(":")
        if sep:
            result[prop.strip().lower()] = value.strip().lower().replace("!important", "").strip()
    return result


def _computed(el: HtmlElement, prop: str, sources: StyleSources) -> list[str]:
    """Every value ``prop`` may inherit: those of the nearest ancestor-or-self that sets it,
    from its style attribute or any <style> rule (a media query may restyle the statement)."""
    node: HtmlElement | None = el
    while node is not None:
        values = [decl.value for decl in sources.props(node).get(prop, [])]
        if values:
            return values
        if prop == "color" and node.tag == "font" and node.get("color"):
            return [str(node.get("color")).lower()]
        node = node.getparent()
    return []


def _px(value: str | None) -> float | None:
    match = re.match(r"^\s*([\d.]+)\s*(px)?\s*$", value or "")
    return float(match.group(1)) if match else None


def _size(img: HtmlElement, dim: str) -> float | None:
    return _px(_styles(img).get(dim)) or _px(img.get(dim))


def _is_logo(img: HtmlElement) -> bool:
    hay = " ".join(img.get(a) or "" for a in ("alt", "class", "src", "id")).lower()
    return "logo" in hay


def _colour(value: str) -> str:
    value = value.strip().lower()
    if value in _NAMED:
        return _NAMED[value]
    if re.fullmatch(r"#[0-9a-f]{3}", value):
        return "#" + "".join(c * 2 for c in value[1:])
    rgb = re.fullmatch(r"rgb\(\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*\)", value)
    if rgb:
        return "#" + "".join(f"{int(c):02x}" for c in rgb.groups())
    return value


def _statement_style(el: HtmlElement, sources: StyleSources) -> list[str]:
    broken = []
    for node in [el, *el.iterdescendants()]:
        if not isinstance(node.tag, str) or (not (node.text or "").strip() and node is not el):
            continue
        for family in _computed(node, "font-family", sources) or ["not set"]:
            first = family.split(",")[0].strip().strip("'\"").lower()
            if first not in ALLOWED_FONTS:
                broken.append(
                    f"the funding statement's font ({family}) is not allowed; "
                    "start font-family with Arial, Calibri, Garamond, Trebuchet, Tahoma, "
                    "Verdana or Ubuntu"
                )
                break
        for value in _computed(node, "color", sources) or ["not set"]:
            colour = _colour(value)
            if colour not in ALLOWED_COLOURS:
                broken.append(f"the funding statement's colour ({colour}) must be reflex blue "
                              "#003399, black or white")
                break
        if broken:
            break
    return broken


def _statement_element(scope: HtmlElement | None, block: DisclaimerBlock) -> HtmlElement | None:
    """The element in ``scope`` whose text is the statement, never the disclaimer text.

    The tightest fit wins (shortest text holding the statement), so a disclaimer text that
    begins with the same words ("Funded by the European Union. Views…") is never taken for
    the statement, wherever it stands.
    """
    if scope is None:
        return None
    wanted = normalise_space(block.statement)
    whole = normalise_space(block.text) if block.text else None
    best: tuple[int, HtmlElement] | None = None
    for el in scope.iter():
        if not isinstance(el.tag, str) or el.tag in ("style", "title", "head", "script"):
            continue
        content = normalise_space(el.text_content())
        if wanted not in content or (whole and whole in content):
            continue
        if best is None or len(content) <= best[0]:
            best = (len(content), el)
    return best[1] if best else None


def _smallest_containing(doc: HtmlElement, text: str) -> HtmlElement | None:
    wanted = normalise_space(text)
    best = None
    body = doc.find("body")
    for el in (body if body is not None else doc).iter():
        if not isinstance(el.tag, str) or el.tag in ("style", "title", "head", "script"):
            continue
        if wanted in normalise_space(el.text_content()):
            best = el  # iter() is depth-first, so later matches are deeper
    return best
