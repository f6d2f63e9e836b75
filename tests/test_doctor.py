"""`doctor` end to end: the CLI asks a real DNS server on 127.0.0.1 (dnslib, UDP and TCP) that
serves a good zone, where every check passes, and broken zones, each of which must produce its
own line and exit code."""

from __future__ import annotations

import base64
import copy
import re
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from helpers import Run, RunCli, edit
from mirage_mailer.services.doctor import diagnose
from support.dns_zone import dead_nameserver, serving_zone

GOOD: dict[str, dict[str, list[Any]]] = {
    "example.org": {"TXT": ["v=spf1 a:relay.example.org mx -all", "google-site-verification=x"],
                    "MX": [(10, "mx.example.org")], "A": ["192.0.2.80"]},
    "mail.example.org": {"TXT": ["v=spf1 ip4:192.0.2.10 include:_spf.example.net -all"],
                         "MX": [(10, "mx.example.org")]},
    "_spf.example.net": {"TXT": ["v=spf1 ip4:198.51.100.0/24 ~all"]},
    "mx.example.org": {"A": ["192.0.2.25"]},
    "relay.example.org": {"A": ["192.0.2.10"], "AAAA": []},
    "news.example.org": {"A": ["192.0.2.20"]},
    "_dmarc.example.org": {"TXT": ["v=DMARC1; p=reject; rua=mailto:dmarc@example.org"]},
}


def broken(changes: dict[str, dict[str, list[Any]] | None]) -> dict[str, dict[str, list[Any]]]:
    """The good zone with names replaced (a dict of records) or removed (None)."""
    zone = copy.deepcopy(GOOD)
    for name, records in changes.items():
        if records is None:
            zone.pop(name, None)
        else:
            zone[name] = records
    return zone


@pytest.fixture
def configured(project: Path) -> Path:
    """The sample project sending as news@example.org, bounces to mail.example.org, through
    relay.example.org, with One-Click links at news.example.org."""
    config = project / "mirage.yaml"
    edit(config, "  from: MIraGE project <news@mirageproject.eu>",
         "  from: MIraGE project <news@example.org>\n  return_path: bounces@mail.example.org")
    edit(config, "  url: maildir:outbox", "  url: smtp://relay.example.org:587")
    edit(config, "  # base_url: https://news.mirageproject.eu", "  base_url: https://news.example.org")
    return project


def doctor(run_cli: RunCli, zone: dict[str, dict[str, list[Any]]]) -> tuple[Run, list[str]]:
    with serving_zone(zone) as dns:
        run = run_cli("doctor", "--nameserver", dns.address)
        assert len(dns.queries) <= 60, dns.queries  # bounded, whatever the zone says
    lines = run.out.splitlines()
    assert lines and re.match(r"doctor: \d+ ok, \d+ warning\(s\), \d+ failed", lines[-1])
    return run, lines[:-1]


def status_of(lines: list[str], topic: str) -> list[str]:
    return [line for line in lines if topic in line]


def with_dkim_key(configured: Path, key: rsa.RSAPrivateKey, *,
                  domain: str = "example.org") -> None:
    """``key`` in ``.mirage/dkim.pem`` and a ``dkim:`` section signing as ``domain``, s1."""
    (configured / ".mirage").mkdir(exist_ok=True)
    (configured / ".mirage/dkim.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    with (configured / "mirage.yaml").open("a", encoding="utf-8") as config:
        config.write(f"\ndkim:\n  domain: {domain}\n  selector: s1\n"
                     "  key_file: .mirage/dkim.pem\n")


def test_good_zone_passes(configured: Path, run_cli: RunCli) -> None:
    run, lines = doctor(run_cli, GOOD)
    assert run.code == 0, run.out + run.err
    assert all(line.split()[0] in ("ok", "warn") for line in lines), run.out
    expected_ok = [
        "ok    SPF mail.example.org (return path): one record, ends in -all, 1 of 10 DNS",
        "ok    SPF mail.example.org and the relay relay.example.org: covers 192.0.2.10",
        "ok    SPF example.org (From): one record, ends in -all, 2 of 10 DNS look-ups",
        "ok    DMARC _dmarc.example.org: p=reject",
        "ok    MX mail.example.org (bounces): mail goes to mx.example.org (10)",
        "ok    List-Unsubscribe: One-Click offered: https://news.example.org",
    ]
    for start in expected_ok:
        assert any(line.startswith(start) for line in lines), (start, run.out)
    # without a dkim: section, SPF alone aligns: a warning, not a failure
    assert any(line.startswith("warn  DKIM: no DKIM signing configured") for line in lines)
    assert any(line.startswith("warn  DMARC alignment for example.org: SPF via return path "
                               "mail.example.org aligns (relaxed)") for line in lines)


@pytest.mark.parametrize(("zone", "start", "said"), [
    (broken({"mail.example.org": {"MX": [(10, "mx.example.org")]}}),
     "fail  SPF mail.example.org (return path)", "no SPF record"),
    (broken({"mail.example.org": {"TXT": ["v=spf1 ip4:192.0.2.10 -all", "v=spf1 -all"],
                                  "MX": [(10, "mx.example.org")]}}),
     "fail  SPF mail.example.org (return path)", "publishes 2 SPF records"),
    (broken({"example.org": {"TXT": ["v=spf1 mx +all"], "MX": [(10, "mx.example.org")]}}),
     "fail  SPF example.org (From)", "ends in +all"),
    (broken({"example.org": {"TXT": ["v=spf1 " + " ".join(
        f"include:s{n}.example.net" for n in range(11)) + " -all"]},
        **{f"s{n}.example.net": {"TXT": ["v=spf1 ip4:198.51.100.1 -all"]} for n in range(11)}}),
     "fail  SPF example.org (From)", "more than 10 DNS look-ups"),
    (broken({"mail.example.org": {"TXT": ["v=spf1 ip4:203.0.113.5 -all"],
                                  "MX": [(10, "mx.example.org")]}}),
     "fail  SPF mail.example.org and the relay relay.example.org",
     "not covered: 192.0.2.10 (fail)"),
    (broken({"_dmarc.example.org": None}), "fail  DMARC example.org", "no DMARC record"),
    (broken({"mail.example.org": {"TXT": GOOD["mail.example.org"]["TXT"]}}),
     "fail  MX mail.example.org (bounces)", "no MX and no address"),
    (broken({"news.example.org": None}), "fail  List-Unsubscribe",
     "news.example.org has no address in DNS"),
], ids=["no-spf", "two-spf", "plus-all", "too-many-lookups", "relay-not-covered",
        "no-dmarc", "no-mx", "unsubscribe-host-unknown"])
def test_broken_zone_fails_with_its_line(zone: dict[str, dict[str, list[Any]]], start: str,
                                         said: str, configured: Path) -> None:
    """In process (the service the command prints): the CLI's lines are checked above."""
    topic = start.removeprefix("fail  ")
    with serving_zone(zone) as dns:
        diagnosis = diagnose(configured / "mirage.yaml", dns.address)
    assert diagnosis.exit_code == 1
    failed = [check for check in diagnosis.checks if check.status == "fail"]
    assert len(failed) == 1, failed  # only the broken thing fails
    assert failed[0].topic == topic and said in failed[0].message, failed[0]
    assert failed[0].fix, "a failure says what to do"


def test_dmarc_p_none_is_a_warning(configured: Path, run_cli: RunCli) -> None:
    zone = broken({"_dmarc.example.org": {"TXT": ["v=DMARC1; p=none; rua=mailto:d@example.org"]}})
    run, lines = doctor(run_cli, zone)
    assert run.code == 0, run.out
    assert status_of(lines, "DMARC _dmarc.example.org") == [
        "warn  DMARC _dmarc.example.org: p=none: monitoring only, spoofed mail is delivered "
        "(move to p=quarantine, then p=reject, once reports look clean)"]


def test_spf_include_loop_is_bounded(configured: Path, run_cli: RunCli) -> None:
    zone = broken({"example.org": {"TXT": ["v=spf1 include:loop.example.net -all"]},
                   "loop.example.net": {"TXT": ["v=spf1 include:example.org -all"]}})
    run, lines = doctor(run_cli, zone)
    assert run.code == 1
    assert "includes itself" in status_of(lines, "SPF example.org (From)")[0]


def test_no_base_url_means_no_one_click(configured: Path, run_cli: RunCli) -> None:
    edit(configured / "mirage.yaml", "  base_url: https://news.example.org",
         "  # base_url: unset")
    run, lines = doctor(run_cli, GOOD)
    assert run.code == 1
    assert status_of(lines, "List-Unsubscribe")[0].startswith(
        "fail  List-Unsubscribe: tracking.base_url is not set")


def test_dns_unreachable_is_exit_3(configured: Path, run_cli: RunCli) -> None:
    run = run_cli("doctor", "--nameserver", dead_nameserver())
    assert run.code == 3, run.out + run.err
    assert run.err.count("\n") == 1 and "DNS did not answer" in run.err


def test_a_servfail_fails_its_check_and_the_others_still_print(configured: Path,
                                                             run_cli: RunCli) -> None:
    """A DKIM selector delegated to a provider whose servers fail: that one line fails with
    the server's words, and SPF, DMARC, MX and One-Click, which answered, are all reported."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with_dkim_key(configured, key)
    zone = broken({"s1._domainkey.example.org": {"TXT": "SERVFAIL"}})  # type: ignore[dict-item]
    run, lines = doctor(run_cli, zone)
    assert run.code == 1, run.out + run.err
    assert run.err == ""
    [dkim_line] = status_of(lines, "DKIM s1._domainkey.example.org")
    assert re.match(r"fail  DKIM s1\._domainkey\.example\.org: DNS server failure \(SERVFAIL\) "
                    r"for s1\._domainkey\.example\.org TXT via 127\.0\.0\.1:\d+ \(.*delegation",
                    dkim_line), dkim_line
    for start in ["ok    SPF mail.example.org (return path)",
                  "ok    SPF mail.example.org and the relay relay.example.org",
                  "ok    SPF example.org (From)", "ok    DMARC _dmarc.example.org: p=reject",
                  "ok    DMARC alignment for example.org",
                  "ok    MX mail.example.org (bounces)", "ok    List-Unsubscribe"]:
        assert any(line.startswith(start) for line in lines), (start, run.out)
    assert [line.split()[0] for line in lines].count("fail") == 1, run.out


@pytest.mark.parametrize(("changes", "topic", "said"), [
    ({"_dmarc.example.org": {"TXT": "SERVFAIL"}}, "DMARC example.org",
     "DNS server failure (SERVFAIL) for _dmarc.example.org TXT"),
    ({"mail.example.org": {"TXT": "SERVFAIL", "MX": [(10, "mx.example.org")]}},
     "SPF mail.example.org (return path)", "(SERVFAIL) for mail.example.org TXT"),
    ({"relay.example.org": {"A": "REFUSED"}},
     "SPF mail.example.org and the relay relay.example.org",
     "the DNS server refused to answer (REFUSED) for relay.example.org A"),
    ({"mail.example.org": {"TXT": GOOD["mail.example.org"]["TXT"], "MX": "SERVFAIL"}},
     "MX mail.example.org (bounces)", "(SERVFAIL) for mail.example.org MX"),
    ({"news.example.org": {"A": "SERVFAIL"}}, "List-Unsubscribe",
     "(SERVFAIL) for news.example.org A"),
], ids=["dmarc", "spf-return-path", "relay-refused", "mx", "unsubscribe-host"])
def test_one_failed_lookup_fails_only_its_check(changes: dict[str, Any], topic: str,
                                               said: str, configured: Path) -> None:
    with serving_zone(broken(changes)) as dns:
        diagnosis = diagnose(configured / "mirage.yaml", dns.address)
    assert diagnosis.exit_code == 1
    failed = [check for check in diagnosis.checks if check.status == "fail"]
    assert len(failed) == 1, failed
    assert failed[0].topic == topic and said in failed[0].message, failed[0]
    assert failed[0].fix
    assert diagnosis.count("ok") >= 4, diagnosis.checks  # the rest was still checked


def test_every_lookup_failing_is_exit_3(configured: Path, run_cli: RunCli) -> None:
    """Nothing answered anything: nothing could be checked, exit 3 and one line."""
    failing = {kind: "SERVFAIL" for kind in ("TXT", "MX", "A", "AAAA")}
    zone = {name: failing for name in GOOD}
    with serving_zone(zone) as dns:  # type: ignore[arg-type]
        run = run_cli("doctor", "--nameserver", dns.address)
        assert len(dns.queries) <= 20, dns.queries  # each failed name asked once
    assert run.code == 3, run.out + run.err
    assert run.out == ""
    assert run.err.count("\n") == 1, run.err
    assert run.err.startswith("doctor: DNS did not answer any look-up (DNS server failure "
                              "(SERVFAIL) for mail.example.org TXT via 127.0.0.1:"), run.err


@pytest.mark.parametrize("value", ["127.0.0.1:99999", "no-such-host.invalid"])
def test_bad_nameserver_is_exit_2(value: str, configured: Path, run_cli: RunCli) -> None:
    run = run_cli("doctor", "--nameserver", value)
    assert run.code == 2 and run.err.startswith("--nameserver: ")


def test_bad_config_is_exit_2(configured: Path, run_cli: RunCli) -> None:
    edit(configured / "mirage.yaml", "  starttls: always", "  starttls: sometimes")
    run = run_cli("doctor", "--nameserver", "127.0.0.1:9")
    assert run.code == 2 and "transport.starttls" in run.err



@pytest.mark.parametrize("matching", [True, False], ids=["key-matches", "key-differs"])
def test_dkim_section_is_checked_against_dns(matching: bool, configured: Path,
                                             run_cli: RunCli) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    published = key if matching else rsa.generate_private_key(public_exponent=65537,
                                                               key_size=2048)
    with_dkim_key(configured, key)
    der = published.public_key().public_bytes(serialization.Encoding.DER,
                                              serialization.PublicFormat.SubjectPublicKeyInfo)
    zone = broken({"s1._domainkey.example.org": {
        "TXT": [f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"]}})
    run, lines = doctor(run_cli, zone)
    dkim_line = status_of(lines, "DKIM s1._domainkey.example.org")
    if matching:
        assert run.code == 0, run.out
        assert dkim_line[0].startswith("ok    DKIM s1._domainkey.example.org: published and "
                                       "matches the private key (rsa 2048 bits)")
        assert any(line.startswith("ok    DMARC alignment for example.org: SPF via return "
                                   "path mail.example.org aligns (relaxed); DKIM "
                                   "d=example.org aligns (relaxed)") for line in lines)
    else:
        assert run.code == 1
        assert dkim_line[0].startswith("fail  DKIM s1._domainkey.example.org: the published "
                                       "key does not match the private key")


def test_with_verp_the_bounce_address_is_the_envelope_domain(configured: Path,
                                                            run_cli: RunCli) -> None:
    """bounces: sends MAIL FROM bounces+token@<its domain>: that is the domain receivers
    check SPF for, and where bounces must be able to arrive."""
    with (configured / "mirage.yaml").open("a", encoding="utf-8") as config:
        config.write("\nbounces:\n  address: bounces@return.example.org\n")
    zone = broken({"return.example.org": {"TXT": ["v=spf1 ip4:192.0.2.10 -all"]}})
    run, lines = doctor(run_cli, zone)
    assert any(line.startswith("ok    SPF return.example.org (return path): one record")
               for line in lines), run.out
    assert status_of(lines, "MX return.example.org (bounces)")[0].startswith(
        "fail  MX return.example.org (bounces): no MX and no address")
    assert not status_of(lines, "SPF mail.example.org")  # return_path is not MAIL FROM now


def test_an_internationalised_from_domain_is_looked_up_and_aligned_as_a_labels(
        configured: Path, run_cli: RunCli) -> None:
    """news@bücher.de signed with d=xn--bcher-kva.de: one domain, so DKIM aligns; the DNS
    names are shown as published (A-labels)."""
    edit(configured / "mirage.yaml", "<news@example.org>\n  return_path: bounces@mail.example.org",
         "<news@bücher.de>\n  return_path: bounces@mail.xn--bcher-kva.de")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with_dkim_key(configured, key, domain="xn--bcher-kva.de")
    der = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    zone = {name.replace("example.org", "xn--bcher-kva.de"): records
            for name, records in GOOD.items()}
    zone["s1._domainkey.xn--bcher-kva.de"] = {
        "TXT": [f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"]}
    run, lines = doctor(run_cli, zone)
    assert any(line.startswith("ok    DMARC _dmarc.xn--bcher-kva.de: p=reject")
               for line in lines), run.out
    assert any(line.startswith("ok    DMARC alignment for xn--bcher-kva.de: SPF via return "
                               "path mail.xn--bcher-kva.de aligns (relaxed); DKIM "
                               "d=xn--bcher-kva.de aligns (relaxed)") for line in lines), run.out


def test_each_relay_of_transport_relays_is_checked(configured: Path, run_cli: RunCli) -> None:
    """With transport.relays, every relay's addresses must be in the return path's SPF, not
    only the first one's: one line per relay host."""
    edit(configured / "mirage.yaml", "  url: smtp://relay.example.org:587",
         "  relays:\n    - url: smtp://relay.example.org:587\n"
         "    - url: smtps://relay2.example.org")
    zone = broken({"relay2.example.org": {"A": ["203.0.113.7"]}})
    run, lines = doctor(run_cli, zone)
    assert run.code == 1, run.out + run.err
    assert status_of(lines, "and the relay relay.example.org") == [
        "ok    SPF mail.example.org and the relay relay.example.org: covers 192.0.2.10"]
    [line] = status_of(lines, "and the relay relay2.example.org")
    assert line.startswith("fail  SPF mail.example.org and the relay relay2.example.org: "
                           "not covered: 203.0.113.7 (fail)"), run.out
