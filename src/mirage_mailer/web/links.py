"""Where pages link to, the same for the live server and the static archive.

The server links from its root path; the static archive links relatively (it may be hosted
in any folder, or opened from disk) and names ``index.html`` explicitly, which a file:// view
needs. Subscribe forms exist only on the server: the static pages link to ``base_url``.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

LANG_PARAM = "lang"  # /subscribe/<list>?lang=fr: the sign-up form in the reader's language


@dataclass(frozen=True)
class Links:
    root: str  # "/" on the server, "", "../../" ... in the static archive
    static: bool = False
    server: str | None = None  # absolute base of the live server, for the static archive

    def _dir(self, path: str) -> str:
        return f"{self.root}{path}index.html" if self.static else f"{self.root}{path}"

    def home(self) -> str:
        return self._dir("") or "./"

    def issue(self, issue_id: str, lang: str | None = None) -> str:
        path = f"issues/{quote(issue_id)}/" + (f"{quote(lang)}/" if lang else "")
        return self._dir(path)

    def asset(self, name: str) -> str:
        return f"{self.root}static/{name}"

    def feed(self) -> str:
        return f"{self.root}feed.xml"

    def subscribe(self, list_name: str, lang: str | None = None) -> str | None:
        """The sign-up form; ``lang``: the language of the page that links to it, so that a
        French page leads to the French form whatever the browser's setting."""
        path = f"subscribe/{quote(list_name)}" + (f"?{LANG_PARAM}={quote(lang)}" if lang else "")
        if not self.static:
            return f"{self.root}{path}"
        return f"{self.server}/{path}" if self.server else None

    def manage(self, lang: str | None = None) -> str:
        """The page that says how to unsubscribe (every message has its own link): what the
        archive's copy of an issue, which is for no one in particular, links to."""
        return self._dir("subscription/" + (f"{quote(lang)}/" if lang else ""))

    def below(self, depth: int) -> Links:
        """The same links as seen from a page ``depth`` folders further down (static only)."""
        if not self.static:
            return self
        return Links("../" * depth + self.root, True, self.server)
