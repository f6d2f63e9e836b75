"""`web.signup_lists`: only the lists the officer names take public sign-ups. A list file is
not an invitation (a board, partner or press list sits beside the newsletter): its form, its
posts, a pending confirmation, its snippet and the archive's links all answer as for a list
that does not exist."""

from __future__ import annotations

from pathlib import Path

import httpx
from web_support import (
    BASE,
    TestClient,
    client_for,
    csrf_of,
    main_of,
    outbox,
    part,
    path_of,
    serving,
    settings_of,
    signer_of,
    store_of,
)

from helpers import RunCli, edit
from mirage_mailer.util.tokens import load_secret
from mirage_mailer.web.csrf import CsrfTokens
from mirage_mailer.web.snippet import signup_snippet
from mirage_mailer.web.static_site import write_archive

KEY = "  signup_lists: [subscribers]\n"
NEW = "outsider@example.org"
FORM = {"email": NEW, "name": "Out Sider", "lang": "en", "consent": "yes"}


def add_list(root: Path, name: str) -> None:
    (root / "lists" / f"{name}.csv").write_text("email,name\nceo@partner.example,CEO\n",
                                                encoding="utf-8")


def set_key(root: Path, value: str | None) -> None:
    """``web.signup_lists: value`` below the privacy notice; None: no such key."""
    config = root / "mirage.yaml"
    lines = [line for line in config.read_text(encoding="utf-8").splitlines(keepends=True)
             if not line.startswith("  signup_lists:")]
    if value is not None:
        at = next(i for i, line in enumerate(lines) if line.startswith("  privacy_url:"))
        lines.insert(at + 1, f"  signup_lists: {value}\n")
    config.write_text("".join(lines), encoding="utf-8")


def line_of(root: Path, text: str) -> int:
    lines = (root / "mirage.yaml").read_text(encoding="utf-8").splitlines()
    return next(number for number, line in enumerate(lines, 1) if text in line)


def csrf_for(root: Path, path: str) -> str:
    """A genuine CSRF token for ``path``: what an attacker gets from any open form page."""
    settings = settings_of(root)
    return CsrfTokens(load_secret(settings.state_dir, settings.tracking.secret_env)).issue(path)


def subscriptions(root: Path, address: str = NEW) -> list[dict[str, object]]:
    with store_of(root) as store:
        return list(store.export(address)["subscriptions"])


def refused_like_an_unknown_list(client: TestClient, root: Path, name: str) -> None:
    """Every sign-up route for ``name`` answers what it answers for a name with no file."""
    unknown = client.get("/subscribe/no-such-list")
    assert unknown.status_code == 404
    answers = [client.get(f"/subscribe/{name}")]
    for path in (f"/subscribe/{name}", f"/subscribe/{name}/finish"):
        answers.append(client.post(path, data={**FORM, "csrf": csrf_for(root, path)},
                                   headers={"Origin": BASE}))
    for response in answers:
        assert response.status_code == 404, (response.url, response.status_code)
        assert main_of(response.text) == main_of(unknown.text)


def test_init_opens_the_sample_list_only(web_project: Path) -> None:
    assert KEY in (web_project / "mirage.yaml").read_text(encoding="utf-8")
    assert settings_of(web_project).web.signup_lists == ("subscribers",)


def test_a_list_not_named_answers_as_an_unknown_list(web_project: Path) -> None:
    add_list(web_project, "board-internal")
    with client_for(web_project) as client:
        refused_like_an_unknown_list(client, web_project, "board-internal")
        assert client.get("/subscribe/subscribers").status_code == 200  # the named one is open
    assert subscriptions(web_project) == [] and outbox(web_project) == []


def test_without_the_key_the_only_list_takes_sign_ups(web_project: Path) -> None:
    set_key(web_project, None)
    with client_for(web_project) as client:
        token = csrf_of(client.get("/subscribe/subscribers").text)
        sent = client.post("/subscribe/subscribers", data={**FORM, "csrf": token},
                           headers={"Origin": BASE})
    assert sent.status_code == 200 and "Check your mailbox" in sent.text
    assert [row["status"] for row in subscriptions(web_project)] == ["pending"]


def test_without_the_key_several_lists_take_none_and_validate_says_so(
        web_project: Path, run_cli: RunCli) -> None:
    set_key(web_project, None)
    add_list(web_project, "board-internal")
    with client_for(web_project) as client:
        refused_like_an_unknown_list(client, web_project, "subscribers")
        refused_like_an_unknown_list(client, web_project, "board-internal")
    result = run_cli("validate", cwd=web_project)
    assert result.code == 0, result.err
    warned = [line for line in result.err.splitlines() if "signup_lists" in line]
    assert warned == [
        f"mirage.yaml:{line_of(web_project, 'web:')}: warning: the project has 2 lists "
        "(board-internal, subscribers) and web.signup_lists is not set: no list takes public "
        "sign-ups (add 'signup_lists: [NAME, ...]' under 'web:' with the lists the public may "
        "join)"]


def test_serve_warns_and_refuses_over_real_http(web_project: Path) -> None:
    set_key(web_project, None)
    add_list(web_project, "press")
    log: list[str] = []
    with serving(web_project, log=log) as url:
        assert httpx.get(f"{url}/subscribe/subscribers").status_code == 404
        assert httpx.get(f"{url}/subscribe/press").status_code == 404
    warned = [line for line in log[0].splitlines() if "signup_lists" in line]
    assert len(warned) == 1 and "warning: the project has 2 lists" in warned[0]


def test_a_name_that_is_no_list_file_is_a_config_error(web_project: Path,
                                                      run_cli: RunCli) -> None:
    set_key(web_project, "[subscribers, board]")
    result = run_cli("validate", cwd=web_project)
    assert result.code == 2
    line = line_of(web_project, "signup_lists:")
    assert f"mirage.yaml:{line}: 'web.signup_lists' names list 'board', which is not a list " \
           "file (create lists/board.csv or .yaml, or remove the name)" in result.err.splitlines()
    set_key(web_project, "yes please")
    result = run_cli("validate", cwd=web_project)
    assert result.code == 2 and "'web.signup_lists' item 'yes please' is not a list name" \
        in result.err


def test_a_pending_sign_up_cannot_be_confirmed_once_its_list_is_closed(
        web_project: Path) -> None:
    with client_for(web_project) as client:
        token = csrf_of(client.get("/subscribe/subscribers").text)
        client.post("/subscribe/subscribers", data={**FORM, "csrf": token},
                    headers={"Origin": BASE})
    [message] = outbox(web_project)
    link = path_of(next(word for word in part(message, "plain").split()
                        if "/confirm/" in word))
    add_list(web_project, "press")
    set_key(web_project, "[press]")
    nowhere = "/confirm/" + signer_of(web_project).make("confirm", "no-such-list", NEW)
    with client_for(web_project) as client:
        shown = client.get(link)
        pressed = client.post(link, data={"csrf": csrf_for(web_project, link)},
                              headers={"Origin": BASE})
        unknown = client.post(nowhere, data={"csrf": csrf_for(web_project, nowhere)},
                              headers={"Origin": BASE})
    assert unknown.status_code == 400  # a genuine link, but no sign-up on such a list
    for response in (shown, pressed):
        assert response.status_code == 400
        assert main_of(response.text) == main_of(unknown.text)
    assert [row["status"] for row in subscriptions(web_project)] == ["pending"]


def test_no_snippet_for_a_list_that_is_not_open(web_project: Path, run_cli: RunCli) -> None:
    edit(web_project / "mirage.yaml", "  # allowed_origins:\n  #   - https://www.mirageproject.eu",
         "  allowed_origins:\n    - https://www.mirageproject.eu")
    add_list(web_project, "board-internal")
    result = run_cli("signup-snippet", "board-internal", cwd=web_project)
    assert result.code == 2 and result.out == ""
    assert result.err.splitlines() == [
        f"mirage.yaml:{line_of(web_project, 'signup_lists:')}: list 'board-internal' takes no "
        "public sign-ups (web.signup_lists: subscribers) (add it to web.signup_lists if the "
        "public may join it)"]
    assert "mirage-signup-subscribers" in signup_snippet(settings_of(web_project),
                                                         "subscribers").html


def test_archive_pages_link_only_to_open_lists(sent_project: Path, tmp_path: Path) -> None:
    form = 'href="/subscribe/subscribers?lang=en"'  # the page's language (fixpub3)
    with client_for(sent_project) as client:
        assert form in client.get("/").text and form in client.get("/subscription").text
    set_key(sent_project, None)  # the issue's list, closed: several lists
    add_list(sent_project, "press")
    with client_for(sent_project) as client:
        for page in (client.get("/").text, client.get("/subscription").text):
            assert "/subscribe/" not in page
    write_archive(settings_of(sent_project), tmp_path / "site", site_url=BASE)
    for name in ("index.html", "subscription/index.html"):
        assert "/subscribe/" not in (tmp_path / "site" / name).read_text(encoding="utf-8")
