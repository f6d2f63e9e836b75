"""`mirage-mailer signup-snippet LIST`, `web.allowed_origins` and `web.privacy_url` end to end:
the form it prints, the config it needs (one line each, with mirage.yaml's line, exit 2), and
`serve` refusing to take sign-ups without a privacy notice."""

from __future__ import annotations

import re
import socket
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from web_support import client_for, serving

from helpers import RunCli, edit
from mirage_mailer.project.config import load_settings
from mirage_mailer.util.errors import InputError
from support.ports import RefusingPorts

SITE = "https://www.mirageproject.eu"
COMMENTED = "  # allowed_origins:\n  #   - https://www.mirageproject.eu\n"
PRIVACY = "  privacy_url: https://www.mirageproject.eu/privacy\n"
BASE_COMMENT = "  # base_url: https://news.mirageproject.eu"


def allow(root: Path, *items: str) -> None:
    edit(root / "mirage.yaml", COMMENTED,
         "  allowed_origins:\n" + "".join(f"    - {item}\n" for item in items))


def line_of(root: Path, text: str) -> int:
    lines = (root / "mirage.yaml").read_text(encoding="utf-8").splitlines()
    return next(number for number, line in enumerate(lines, 1) if text in line)


@pytest.fixture
def ready(project: Path) -> Path:
    """The sample project with a public address and the project's site allowed."""
    edit(project / "mirage.yaml", BASE_COMMENT, "  base_url: https://news.mirageproject.eu")
    allow(project, SITE)
    return project


class Form(HTMLParser):
    """The elements of the snippet, with their attributes, and the text of its labels."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.labels: dict[str, str] = {}
        self._label: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.elements.append((tag, found))
        if tag == "label":
            self._label = found["for"]
            self.labels[str(self._label)] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self._label = None

    def handle_data(self, data: str) -> None:
        if self._label is not None:
            self.labels[self._label] += data

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.elements if name == tag]

    def field(self, name: str) -> dict[str, str | None]:
        [found] = [a for a in self.all("input") if a.get("name") == name]
        return found


def parse(html: str) -> Form:
    form = Form()
    form.feed(html)
    return form


def test_the_snippet_is_a_plain_accessible_form(ready: Path, run_cli: RunCli) -> None:
    result = run_cli("signup-snippet", "subscribers")
    assert result.code == 0, result.err
    assert result.err == ""
    html = result.out
    form = parse(html)
    [tag] = form.all("form")
    assert tag["action"] == "https://news.mirageproject.eu/subscribe/subscribers"
    assert tag["method"] == "post" and tag["lang"] == "en"
    assert "<script" not in html.lower()
    assert not [name for _tag, attrs in form.elements for name in attrs
                if name.startswith("on")]  # no event handlers either
    email = form.field("email")
    assert email["type"] == "email" and email["autocomplete"] == "email"
    assert "required" in email
    assert form.field("name")["autocomplete"] == "name"
    assert form.field("lang") == {"type": "hidden", "name": "lang", "value": "en"}
    consent = form.field("consent")
    assert consent["type"] == "checkbox" and "required" in consent and "checked" not in consent
    settings = load_settings(ready / "mirage.yaml")
    # every visible field has its label; the consent label is the built-in form's text
    for name in ("email", "name", "consent"):
        assert form.field(name)["id"] in form.labels
    assert " ".join(form.labels[str(consent["id"])].split()) == settings.web.consent_text
    assert {"href": "https://www.mirageproject.eu/privacy"} in form.all("a")
    # the trap: off-screen (not display:none), out of the tab order, hidden from readers
    trap = form.field("website")
    assert trap["tabindex"] == "-1" and trap["autocomplete"] == "off" and trap["value"] == ""
    [hidden] = [a for a in form.all("div") if a.get("aria-hidden") == "true"]
    style = str(hidden["style"])
    assert "left:-10000px" in style and "position:absolute" in style
    assert "display:none" not in style.replace(" ", "")
    assert form.labels[str(trap["id"])] == "Leave this field empty"
    assert len({a["id"] for a in form.all("input") if a.get("id")}) == 4  # unique ids
    assert "return_url" not in html


def test_the_snippet_in_french_with_a_return_page(ready: Path, run_cli: RunCli) -> None:
    result = run_cli("signup-snippet", "subscribers", "--lang", "fr",
                     "--return-url", f"{SITE}/fr/lettre/")
    assert result.code == 0, result.err
    form = parse(result.out)
    assert form.all("form")[0]["lang"] == "fr"
    assert form.field("lang")["value"] == "fr"
    assert form.field("return_url") == {"type": "hidden", "name": "return_url",
                                        "value": f"{SITE}/fr/lettre/"}
    assert "Adresse électronique" in form.labels[str(form.field("email")["id"])]
    assert "S'abonner" in result.out


def test_a_language_without_translation_warns(ready: Path, run_cli: RunCli) -> None:
    result = run_cli("signup-snippet", "subscribers", "--lang", "de")
    assert result.code == 0
    assert result.err.startswith("--lang: warning: no translation of the form into de")
    assert 'name="lang" value="de"' in result.out


@pytest.mark.parametrize("hostile", ["https://evil.example/", "//evil.example/",
                                     f"{SITE}.evil.example/", f"{SITE}@evil.example/",
                                     "javascript:alert(1)", "http://www.mirageproject.eu/"])
def test_a_return_url_elsewhere_is_refused(ready: Path, run_cli: RunCli, hostile: str) -> None:
    result = run_cli("signup-snippet", "subscribers", "--return-url", hostile)
    assert result.code == 2 and result.out == ""
    [line] = result.err.splitlines()
    refusal = "holds a user name or password" if "@" in hostile else "is not a page of a site in"
    assert line.startswith("--return-url: ") and refusal in line


def test_what_the_snippet_needs_is_named_with_its_line(project: Path, run_cli: RunCli) -> None:
    config = project / "mirage.yaml"
    no_sites = run_cli("signup-snippet", "subscribers")  # no base_url, no sites yet
    assert no_sites.code == 2 and no_sites.out == ""
    assert no_sites.err.strip() == (
        f"mirage.yaml:{line_of(project, 'tracking:')}: tracking.base_url is not set: the form "
        "posts to 'mirage-mailer serve' at that address (set it to the server's public https "
        "address)")
    edit(config, BASE_COMMENT, "  base_url: https://news.mirageproject.eu")
    no_sites = run_cli("signup-snippet", "subscribers")
    assert no_sites.code == 2
    assert no_sites.err.startswith(f"mirage.yaml:{line_of(project, 'web:')}: "
                                   "web.allowed_origins is empty")
    allow(project, SITE)
    unknown = run_cli("signup-snippet", "nobody")
    assert unknown.code == 2 and "list 'nobody' not found" in unknown.err
    edit(config, PRIVACY, "")
    no_notice = run_cli("signup-snippet", "subscribers")
    assert no_notice.code == 2 and no_notice.out == ""
    assert no_notice.err.startswith(f"mirage.yaml:{line_of(project, 'web:')}: sign-up is on "
                                    "(web.signup) but web.privacy_url is not set")


def test_no_snippet_while_sign_up_is_off(ready: Path, run_cli: RunCli) -> None:
    edit(ready / "mirage.yaml", PRIVACY, "  signup: false\n")
    result = run_cli("signup-snippet", "subscribers")
    assert result.code == 2 and result.out == ""
    line = line_of(ready, "  signup: false")
    assert result.err.splitlines() == [
        f"mirage.yaml:{line}: sign-up is off (web.signup: false) (set it to true to take "
        "sign-ups)"]


def test_allowed_origins_are_checked_line_by_line(project: Path, run_cli: RunCli) -> None:
    allow(project, SITE, "https://*.mirageproject.eu", "https://www.mirageproject.eu/news/",
          "http://partner.example", "42", "ftp://files.example", "https://ok.example:8443")
    result = run_cli("signup-snippet", "subscribers")
    assert result.code == 2 and result.out == ""
    first = line_of(project, "allowed_origins:") + 1
    assert result.err.splitlines() == [
        f"mirage.yaml:{first + 1}: 'web.allowed_origins' 'https://*.mirageproject.eu' has a "
        "wildcard (list each site's address on its own line)",
        f"mirage.yaml:{first + 2}: 'web.allowed_origins' 'https://www.mirageproject.eu/news/' "
        "has a path (give only the site: scheme, host and port, without the page)",
        f"mirage.yaml:{first + 3}: 'web.allowed_origins' 'http://partner.example' must start "
        "with https:// (plain http is allowed only for localhost or 127.0.0.1, for testing)",
        f"mirage.yaml:{first + 4}: 'web.allowed_origins' item 5 must be a web address; you "
        "wrote 42 (write it as https://www.example.org)",
        f"mirage.yaml:{first + 5}: 'web.allowed_origins' 'ftp://files.example' is not a web "
        "address (write each site as https://www.example.org)",
    ]


@pytest.mark.parametrize(("value", "message"), [
    ("https://www.example.org", None),
    ("http://localhost:8000/", None),
    ("https://Www.Example.org:443/", None),
    ("www.example.org", "is not a web address"),
    ("https://user:pw@example.org", "is not a web address"),
    ("https://www.example.org?x", "has a path"),
])
def test_each_origin_form(project: Path, value: str, message: str | None) -> None:
    allow(project, value)
    if message is None:
        settings = load_settings(project / "mirage.yaml")
        assert settings.web.allowed_origins[0] in ("https://www.example.org",
                                                   "http://localhost:8000")
        return
    with pytest.raises(InputError) as refused:
        load_settings(project / "mirage.yaml")
    assert message in str(refused.value)
    assert "pw" not in str(refused.value)


@pytest.mark.parametrize("value", ["http://www.example.org/privacy", "privacy.html",
                                   "https://u:secret@example.org/p", "[a list]"])
def test_a_privacy_url_must_be_a_https_address(project: Path, value: str) -> None:
    edit(project / "mirage.yaml", PRIVACY, f"  privacy_url: {value}\n")
    with pytest.raises(InputError) as refused:
        load_settings(project / "mirage.yaml")
    [problem] = refused.value.problems
    assert problem.line == line_of(project, "privacy_url:")
    assert "'web.privacy_url'" in problem.message and "secret" not in str(problem)


def test_serve_will_not_take_sign_ups_without_a_privacy_notice(
        project: Path, run_cli: RunCli, refusing_port: RefusingPorts) -> None:
    edit(project / "mirage.yaml", PRIVACY, "")
    port = refusing_port()  # no other worker's server answers on it below
    result = run_cli("serve", "--port", str(port), timeout=30)
    assert result.code == 2 and result.out == ""
    assert result.err.splitlines() == [
        f"mirage.yaml:{line_of(project, 'web:')}: sign-up is on (web.signup) but "
        "web.privacy_url is not set: the sign-up forms must link to your privacy notice (GDPR "
        "art. 13) (add 'privacy_url: https://...' under 'web:' with the address of your "
        "privacy notice, or 'signup: false' to serve without sign-up)"]
    with socket.socket() as sock:  # it never listened
        assert sock.connect_ex(("127.0.0.1", port)) != 0


def test_serve_without_sign_up_needs_no_privacy_notice(project: Path) -> None:
    edit(project / "mirage.yaml", PRIVACY, "  signup: false\n")
    with serving(project) as url:
        assert httpx.get(f"{url}/subscribe/subscribers").status_code == 404
        assert httpx.get(f"{url}/").status_code == 200


def _consent_label(html: str) -> str:
    tags: list[str] = re.findall(r"<label [^>]*>", html)
    return next(tag for tag in tags if "consent" in tag)


def test_the_consent_text_says_its_language_where_the_form_is_in_another(
        ready: Path, run_cli: RunCli) -> None:
    """The consent text is written in the project's language (the sample's in English): a
    form in another language marks it, for screen readers and translation tools."""
    french = run_cli("signup-snippet", "subscribers", "--lang", "fr")
    assert french.code == 0, french.err
    assert 'lang="en"' in _consent_label(french.out)
    english = run_cli("signup-snippet", "subscribers")
    assert "lang=" not in _consent_label(english.out)
    edit(ready / "mirage.yaml", "  language: en", "  language: fr")
    edit(ready / "mirage.yaml", "I agree that the MIraGE project sends me its newsletter",
         "J'accepte que MIraGE m'envoie sa lettre d'information")
    english = run_cli("signup-snippet", "subscribers", "--lang", "en")
    assert 'lang="fr"' in _consent_label(english.out)
    assert "lang=" not in _consent_label(run_cli("signup-snippet", "subscribers").out)


def test_the_built_in_form_marks_the_consent_language_too(ready: Path) -> None:
    client = client_for(ready)
    french = client.get("/subscribe/subscribers", headers={"Accept-Language": "fr"})
    assert french.status_code == 200 and '<html lang="fr"' in french.text
    assert 'lang="en"' in _consent_label(french.text)
    english = client.get("/subscribe/subscribers", headers={"Accept-Language": "en"})
    assert "lang=" not in _consent_label(english.text)
