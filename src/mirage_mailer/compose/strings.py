"""Interface strings of the newsletter chrome (not the disclaimer, which only config words).

Templates get them as ``t``; a language without an entry falls back to English.
"""

from __future__ import annotations

from mirage_mailer.compose.direction import start_side
from mirage_mailer.util.langs import text_direction

STRINGS: dict[str, dict[str, str]] = {
    "en": {
        "view_online": "View this issue in your browser",
        "unsubscribe": "Unsubscribe",
        "why": "You receive this newsletter because you subscribed to news from {project}.",
        "dear": "Dear {name},",
        "dear_reader": "Dear reader,",
        "issue": "Issue",
        "contact": "Contact",
        "by": "By",
        "links": "Links",
    },
    "fr": {
        "view_online": "Voir ce numéro dans votre navigateur",
        "unsubscribe": "Se désabonner",
        "why": "Vous recevez cette lettre parce que vous êtes abonné·e aux nouvelles de "
        "{project}.",
        "dear": "Bonjour {name},",
        "dear_reader": "Bonjour,",
        "issue": "Numéro",
        "contact": "Contact",
        "by": "Par",
        "links": "Liens",
    },
    "de": {
        "view_online": "Diese Ausgabe im Browser ansehen",
        "unsubscribe": "Abmelden",
        "why": "Sie erhalten diesen Newsletter, weil Sie Neuigkeiten von {project} abonniert "
        "haben.",
        "dear": "Hallo {name},",
        "dear_reader": "Hallo,",
        "issue": "Ausgabe",
        "contact": "Kontakt",
        "by": "Von",
        "links": "Links",
    },
    "es": {
        "view_online": "Ver este número en el navegador",
        "unsubscribe": "Darse de baja",
        "why": "Recibe este boletín porque se suscribió a las noticias de {project}.",
        "dear": "Hola, {name}:",
        "dear_reader": "Hola:",
        "issue": "Número",
        "contact": "Contacto",
        "by": "Por",
        "links": "Enlaces",
    },
    "it": {
        "view_online": "Leggi questo numero nel browser",
        "unsubscribe": "Annulla l'iscrizione",
        "why": "Ricevi questa newsletter perché ti sei iscritto alle notizie di {project}.",
        "dear": "Ciao {name},",
        "dear_reader": "Ciao,",
        "issue": "Numero",
        "contact": "Contatti",
        "by": "Di",
        "links": "Link",
    },
    "el": {
        "view_online": "Δείτε αυτό το τεύχος στον περιηγητή σας",
        "unsubscribe": "Διαγραφή από τη λίστα",
        "why": "Λαμβάνετε αυτό το ενημερωτικό δελτίο επειδή εγγραφήκατε στα νέα του {project}.",
        "dear": "Αγαπητέ/ή {name},",
        "dear_reader": "Αγαπητέ/ή αναγνώστη/τρια,",
        "issue": "Τεύχος",
        "contact": "Επικοινωνία",
        "by": "Από",
        "links": "Σύνδεσμοι",
    },
}


def strings_for(lang: str, project: str) -> dict[str, str]:
    """The strings for ``lang``; ``lang`` among them is the language they are really in, so
    a template can mark English standing in for a missing language (WCAG 3.1.2)."""
    found = next((code for code in (lang, lang.split("-")[0]) if code in STRINGS), "en")
    merged = {**STRINGS["en"], **STRINGS[found]}
    merged["why"] = merged["why"].format(project=project)
    merged["lang"] = found if found != lang.split("-")[0] else lang
    merged["dir"] = text_direction(merged["lang"])
    merged["align"] = start_side(merged["dir"])
    return merged
