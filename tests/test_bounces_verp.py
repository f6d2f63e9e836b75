"""VERP tokens: shape (RFC 5321 local part, lower case), signature, rotation, forgery; and the
``bounces:`` section's checks, each one ``path:line`` line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mirage_mailer.project.config import load_settings
from mirage_mailer.services.verp import TOKEN, Verp, envelope_sender, verp_for
from mirage_mailer.util.errors import InputError

OLD, NEW = b"o" * 32, b"n" * 32


def test_token_shape_is_a_short_lower_case_dot_atom() -> None:
    verp = Verp("bounces", "+", "example.org", [NEW])
    for row in (1, 35, 36, 10**9):
        address = verp.address("2024-12 issue/é", row, "Jean@Example.org")
        local = address.partition("@")[0]
        assert re.fullmatch(rf"bounces\+{TOKEN}", local), local
        assert local == local.lower() and len(local) <= 64
        (token,) = verp.find(f"To: <{address}>")
        assert token.row_id == row
        assert verp.genuine(token, "2024-12 issue/é", "jean@example.org")  # case of address


def test_a_token_is_bound_to_its_issue_row_and_address() -> None:
    verp = Verp("bounces", "+", "example.org", [NEW])
    (token,) = verp.find(verp.address("a", 7, "jean@example.org"))
    assert verp.genuine(token, "a", "jean@example.org")
    assert not verp.genuine(token, "b", "jean@example.org")
    assert not verp.genuine(token, "a", "maria@example.org")
    other_row = Verp("bounces", "+", "example.org", [NEW]).find(
        verp.address("a", 7, "jean@example.org").replace("+7-", "+8-"))
    assert not verp.genuine(other_row[0], "a", "jean@example.org")


def test_earlier_keys_still_verify_after_a_rotation_and_others_do_not() -> None:
    sent = Verp("bounces", "+", "example.org", [OLD]).address("a", 7, "jean@example.org")
    (token,) = Verp("bounces", "+", "example.org", [NEW]).find(sent)
    assert Verp("bounces", "+", "example.org", [NEW, OLD]).genuine(token, "a",
                                                                  "jean@example.org")
    assert not Verp("bounces", "+", "example.org", [NEW]).genuine(token, "a",
                                                                  "jean@example.org")


def test_find_ignores_other_addresses_and_lookalikes() -> None:
    verp = Verp("bounces", "+", "example.org", [NEW])
    real = verp.address("a", 7, "jean@example.org")
    text = (f"x{real} bounces+7-short@example.org bounces+7-0123456789abcdef0123@example.org.evil "
            f"mybounces+7-0123456789abcdef0123@example.org {real.upper()}")
    assert [t.text for t in verp.find(text)] == [real.partition("+")[2].partition("@")[0]]


def test_find_anywhere_adds_tokens_on_other_bases_marked_as_not_here() -> None:
    """After ``bounces.address`` changed, a token on the earlier base (any local part, either
    delimiter, any domain) is found, marked ``here=False``, and verifies as before."""
    sent = Verp("bounces", "+", "example.org", [NEW]).address("a", 7, "jean@example.org")
    verp = Verp("returns", "-", "mail.example.net", [NEW])
    assert verp.find(sent) == [] and not verp.malformed(sent)
    (token,) = verp.find_anywhere(f"Delivered-To: {sent.upper()}")
    assert (token.row_id, token.here) == (7, False)
    assert verp.genuine(token, "a", "jean@example.org")
    here = verp.address("a", 8, "maria@example.org")
    assert [(t.row_id, t.here) for t in verp.find_anywhere(f"{sent} {here}")] == [
        (8, True), (7, False)]
    # no token: too long a row, a MAC cut short, nothing before the delimiter
    assert verp.find_anywhere("x+0123456789abcde-0123456789abcdef0123@d.example "
                              "x+7-0123456789abcdef012@d.example "
                              "<+7-0123456789abcdef0123@d.example>") == []


def write(tmp_path: Path, bounces: str, sender: str = "news@example.org") -> Path:
    path = tmp_path / "mirage.yaml"
    path.write_text("project: {name: P, contact: info@example.org}\n"
                    f"sender: {{from: {sender}}}\n" + bounces, encoding="utf-8")
    return path


def test_defaults_and_envelope_sender(tmp_path: Path) -> None:
    path = write(tmp_path, "bounces:\n")
    (tmp_path / ".mirage").mkdir()
    (tmp_path / ".mirage" / "secret").write_bytes(NEW + b"\n")
    settings = load_settings(path)
    config = settings.bounces
    assert config is not None
    assert (config.address, config.verp, config.soft_limit, config.soft_window_days,
            config.processed, config.mailbox_set) == ("news@example.org", True, 3, 30, "seen",
                                                      False)
    assert re.fullmatch(rf"news\+{TOKEN}@example\.org", envelope_sender(settings, "i")(5, "a@b"))
    off = load_settings(write(tmp_path, "bounces: {verp: false}\n"))
    assert envelope_sender(off, "i")(5, "a@b") == "news@example.org"
    none = load_settings(write(tmp_path, ""))
    assert none.bounces is None and envelope_sender(none, "i")(5, "a@b") == "news@example.org"


def test_every_verp_address_is_lower_case(tmp_path: Path) -> None:
    """Some MTAs lower-case local parts: the base address is lowered too, not just the token."""
    path = write(tmp_path, "bounces: {address: 'Bounces@MirageProject.EU'}\n")
    (tmp_path / ".mirage").mkdir()
    (tmp_path / ".mirage" / "secret").write_bytes(NEW + b"\n")
    settings = load_settings(path)
    address = envelope_sender(settings, "i")(5, "A@B.example")
    assert re.fullmatch(rf"bounces\+{TOKEN}@mirageproject\.eu", address), address
    verp = verp_for(settings)
    assert verp is not None and verp.address("i", 5, "A@B.example") == address
    [token] = verp.find(f"To: <{address.upper()}>")
    assert verp.genuine(token, "i", "a@b.example")


@pytest.mark.parametrize(("section", "says"), [
    ("bounces: {soft_limit: 0}", "'bounces.soft_limit' must be a whole number from 1 to 100"),
    ("bounces: {soft_window_days: 400}", "'bounces.soft_window_days' must be a whole number "
     "from 1 to 365"),
    ("bounces: {processed: delete}", "'bounces.processed' must be seen, move or keep"),
    ("bounces: {delimiter: '='}", "'bounces.delimiter' must be + or -"),
    ("bounces: {mailbox: 'imaps://u:pw@mail.example.org/INBOX'}", "holds a user name or "
     "password"),
    ("bounces: {mailbox: 'pop3://mail.example.org'}", "has an unknown scheme"),
    ("bounces: {mailbox: 'imaps://mail.example.org/INBOX'}", "needs 'bounces.username_env' "
     "and 'bounces.password_env'"),
    ("bounces: {address: " + "b" * 37 + "@example.org}", "at most 36"),
    ("bounces: {address: bounces+x@example.org}", "already holds the delimiter"),
    ("bounces: {address: not an address}", "'bounces.address'"),
    ("bounces: {ca_file: missing.pem}", "'bounces.ca_file' 'missing.pem' is not a file"),
    ("bounces: {done_folder: ../x}", "'bounces.done_folder' '../x' is not a usable folder"),
    ("bounces: {unmatched_folder: .x}", "'bounces.unmatched_folder' '.x' is not a usable "
     "folder"),
    ("bounces: {verp: yes please}", "'bounces.verp' must be true or false"),
    ("bounces: {password: hunter2}", "'bounces.password' puts a secret in the config file"),
    ("bounces: {colour: red}", "unknown key"),
])
def test_bad_values_are_one_line_with_the_file_and_line(tmp_path: Path, section: str,
                                                        says: str) -> None:
    path = write(tmp_path, section + "\n")
    with pytest.raises(InputError) as caught:
        load_settings(path)
    lines = [str(p) for p in caught.value.problems]
    assert any(line.startswith(f"{path.name}:3: ") or line.startswith(f"{path}:3: ")
               for line in lines), lines
    assert any(says in line for line in lines), lines


@pytest.mark.parametrize(("sender", "bounces", "warned"), [
    ("news@a.example.co.uk", "bounces@b.example.co.uk", False),  # one organisational domain
    ("news@example.org", "bounces@mail.example.org", False),
    ("news@example.co.uk", "bounces@other.co.uk", True),  # co.uk is a public suffix
    ("news@example.org", "bounces@example.org.evil.example", True),
])
def test_alignment_warning_uses_organisational_domains(tmp_path: Path, sender: str,
                                                       bounces: str, warned: bool) -> None:
    from mirage_mailer.services.verp import bounce_warnings

    settings = load_settings(write(tmp_path, f"bounces: {{address: {bounces}}}\n", sender))
    found = bounce_warnings(settings.bounces, settings.sender.from_email, "mirage.yaml", 3)
    assert bool(found) is warned, found
