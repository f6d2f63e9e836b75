"""What only the PostgreSQL backend has: its migrations beside SQLite's, the advisory write
lock, the server's errors as one line, and the SQL functions standing in for SQLite's Python
ones. Against a real server (tests/support/postgres.py); the store's behaviour on both
backends is tests/test_store.py's, parametrized."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, Clock, RunCli, edit
from mirage_mailer.store import MIGRATIONS, NewRecipient, Store, StoreUnavailable, hashed_key
from mirage_mailer.store.dialect import translate
from mirage_mailer.store.pg import WRITE_LOCK
from mirage_mailer.store.pg_schema import PG_MIGRATIONS
from mirage_mailer.util.database import PostgresUrl, parse_postgres
from mirage_mailer.util.errors import ExitCode
from support.ports import RefusingPorts
from support.postgres import PASSWORD_ROLE, raw


def sub(email: str) -> NewRecipient:
    return NewRecipient(email, None, None, "main", {})


def test_both_backends_have_the_same_migrations_by_number_and_name() -> None:
    assert [name for name, _ in PG_MIGRATIONS] == [name for name, _ in MIGRATIONS]


def test_open_applies_every_migration_once(pg_url: PostgresUrl) -> None:
    with Store(pg_url) as s:
        assert s.schema_version == len(PG_MIGRATIONS) == 12
        assert s.backend == "postgresql"
    versions = raw(pg_url, "SELECT version, name FROM schema_migrations ORDER BY 1")
    assert versions == [(n, name) for n, (name, _) in enumerate(MIGRATIONS, start=1)]


def _sqlite_shape(path: Path) -> tuple[dict[str, list[str]], set[tuple[str, str]]]:
    tables = [r[0] for r in raw(path, "SELECT name FROM sqlite_master WHERE type = 'table'"
                                      " AND name NOT LIKE 'sqlite_%'")]
    columns = {str(t): [str(r[1]) for r in raw(path, f"PRAGMA table_info({t})")]
               for t in tables}
    indexes = {(str(r[0]), str(r[1])) for r in raw(
        path, "SELECT tbl_name, name FROM sqlite_master WHERE type = 'index'"
              " AND sql IS NOT NULL")}
    return columns, indexes


def _pg_shape(url: PostgresUrl) -> tuple[dict[str, list[str]], set[tuple[str, str]]]:
    columns: dict[str, list[str]] = {}
    for table, column in raw(url, "SELECT table_name, column_name FROM information_schema.columns"
                                  " WHERE table_schema = current_schema()"
                                  " ORDER BY table_name, ordinal_position"):
        columns.setdefault(str(table), []).append(str(column))
    indexes = {(str(t), str(i)) for t, i in raw(
        url, "SELECT tablename, indexname FROM pg_indexes WHERE schemaname = current_schema()"
             " AND indexname NOT LIKE '%_pkey'")}
    return columns, indexes


def test_both_backends_end_with_the_same_tables_columns_and_indexes(
        tmp_path: Path, pg_url: PostgresUrl) -> None:
    Store(tmp_path / "t.sqlite").close()
    Store(pg_url).close()
    assert _pg_shape(pg_url) == _sqlite_shape(tmp_path / "t.sqlite")


def test_partial_indexes_keep_their_conditions(pg_url: PostgresUrl) -> None:
    Store(pg_url).close()
    found = dict(raw(pg_url, "SELECT indexname, indexdef FROM pg_indexes"
                             " WHERE indexname LIKE 'events_%'"))
    assert "WHERE (kind = ANY (ARRAY['opened'::text, 'clicked'::text]))" in str(
        found["events_engagement"])
    assert "WHERE (kind = 'soft-bounced'::text)" in str(found["events_soft_bounces"])


@pytest.mark.parametrize("key", ["anna@example.org", "élodie@exemple.fr", "x+tag@例え.jp",
                                 "sha256:" + "0" * 64, ""])
def test_mm_hashed_is_hashed_key_byte_for_byte(pg_url: PostgresUrl, key: str) -> None:
    Store(pg_url).close()
    assert raw(pg_url, "SELECT mm_hashed(?)", (key,)) == [(hashed_key(key),)]


def test_two_openers_of_a_new_database_race_through_the_migrations(pg_url: PostgresUrl) -> None:
    errors: list[BaseException] = []

    def open_it() -> None:
        try:
            Store(pg_url).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert raw(pg_url, "SELECT count(*) FROM schema_migrations") == [(len(MIGRATIONS),)]


def test_a_writer_waits_for_the_advisory_lock_and_gives_up_with_exit_3(
        pg_url: PostgresUrl) -> None:
    import psycopg

    with Store(pg_url) as s:
        s.add_recipients("i", [sub("a@example.org")])
        (row,) = s.iter_pending("i")
    holder = psycopg.connect(pg_url.url, autocommit=True)
    holder.execute("BEGIN")
    holder.execute(f"SELECT pg_advisory_xact_lock({WRITE_LOCK})")  # another host writing
    try:
        with Store(pg_url, timeout=0.2) as s:
            began = time.monotonic()
            with pytest.raises(StoreUnavailable) as caught:
                s.record([], [(row.id, "<a@x>")])
            assert time.monotonic() - began < 5
            assert caught.value.exit_code == ExitCode.CANNOT_DELIVER
            [problem] = caught.value.problems
            assert problem.path == pg_url.url
            assert "lock timeout" in problem.message and "rerun" in problem.hint
            assert s.counts("i")["pending"] == 1  # rolled back, and the connection still works
            # a shared write takes row locks only: it does not queue behind the global lock
            with s._write(shared=True) as conn:
                conn.execute("UPDATE recipients SET attempts = attempts WHERE id = ?",
                             (row.id,))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    with Store(pg_url) as s:
        assert s.record([], [(row.id, "<a@x>")]) == {row.id}


def test_a_server_that_is_not_there_is_one_line_exit_3(tmp_path: Path,
                                                      refusing_port: RefusingPorts) -> None:
    port = refusing_port()  # nothing listens
    url = PostgresUrl(f"postgresql://mirage@127.0.0.1:{port}/mirage")
    with pytest.raises(StoreUnavailable) as caught:
        Store(url, timeout=2)
    assert caught.value.exit_code == ExitCode.CANNOT_DELIVER
    [problem] = caught.value.problems
    assert problem.path == url.url
    assert problem.message.startswith("cannot connect to the tracking database: ")
    assert "\n" not in str(problem) and "PGPASSWORD" in problem.hint


def test_a_database_that_does_not_exist_is_exit_3_naming_it(
        pg_url: PostgresUrl) -> None:
    missing = PostgresUrl(pg_url.url.rsplit("/", 1)[0] + "/no_such_db")
    with pytest.raises(StoreUnavailable, match='database "no_such_db" does not exist'):
        Store(missing)


def test_password_env_is_handed_to_the_server(pg_url: PostgresUrl,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The role PASSWORD_ROLE must authenticate with a password (scram-sha-256 in the test
    cluster's pg_hba.conf): the one from tracking.password_env's variable gets in, a wrong
    one is one line, exit 3, that does not echo it."""
    dbname = pg_url.url.rsplit("/", 1)[1]
    raw(pg_url, f"CREATE ROLE {PASSWORD_ROLE} LOGIN PASSWORD 'right-one'")
    raw(pg_url, f"ALTER DATABASE {dbname} OWNER TO {PASSWORD_ROLE}")
    raw(pg_url, f"ALTER SCHEMA public OWNER TO {PASSWORD_ROLE}")
    url = parse_postgres(pg_url.url.replace("postgres@", f"{PASSWORD_ROLE}@"),
                         "MIRAGE_PG_PASSWORD")
    monkeypatch.setenv("MIRAGE_PG_PASSWORD", "wrong-one")
    with pytest.raises(StoreUnavailable, match="password authentication failed") as caught:
        Store(url)
    assert "wrong-one" not in str(caught.value)
    monkeypatch.setenv("MIRAGE_PG_PASSWORD", "right-one")
    with Store(url) as s:
        assert s.schema_version == len(MIGRATIONS)


@pytest.mark.parametrize("text", [
    "postgresql://bob:secret@db.example.org/mirage",
    "postgres://bob:@db.example.org/mirage",
    "postgresql://db.example.org/mirage?password=secret",
])
def test_a_password_in_the_url_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="holds a password"):
        parse_postgres(text)


def test_translation_keeps_literals_and_reorders_parameters() -> None:
    text, order = translate("SELECT ?2, '?1 IS NOT x', ?1 WHERE a IS NOT ?2 AND b IS NOT NULL"
                            " FROM temp.t")
    assert text == ("SELECT $1, '?1 IS NOT x', $2 WHERE a IS DISTINCT FROM $3"
                    " AND b IS NOT NULL FROM pg_temp.t")
    assert order == (1, 0, 1)
    with pytest.raises(ValueError, match="ON CONFLICT DO NOTHING"):
        translate("INSERT OR IGNORE INTO t VALUES (1)")


# -- mirage.yaml: tracking.database as a URL ------------------------------------------------------


def test_validate_refuses_a_password_in_the_url_naming_the_line(
        project: Path, run_cli: RunCli) -> None:
    edit(project / "mirage.yaml", "  database: .mirage/tracking.sqlite",
         "  database: postgresql://mirage:hunter2@db.example.org/news")
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2
    assert "mirage.yaml:34: 'tracking.database' 'postgresql://***@db.example.org/news' " \
           "holds a password" in result.err
    assert "PGPASSWORD" in result.err and "tracking.password_env" in result.err
    assert "hunter2" not in result.out + result.err


def test_password_env_without_a_postgresql_database_is_refused(
        project: Path, run_cli: RunCli) -> None:
    edit(project / "mirage.yaml", "  database: .mirage/tracking.sqlite",
         "  database: .mirage/tracking.sqlite\n  password_env: MIRAGE_PG_PASSWORD")
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2
    assert "mirage.yaml:35: 'tracking.password_env' is only for a postgresql:// database" \
        in result.err


def test_a_url_is_parsed_as_a_server_and_a_path_stays_a_path(project: Path) -> None:
    from mirage_mailer.project.config import load_settings

    edit(project / "mirage.yaml", "  database: .mirage/tracking.sqlite",
         "  database: postgres://mirage@db.example.org:5433/news?sslmode=require\n"
         "  password_env: MIRAGE_PG_PASSWORD")
    settings = load_settings(project / "mirage.yaml")
    assert settings.tracking.database == PostgresUrl(
        "postgres://mirage@db.example.org:5433/news?sslmode=require", "MIRAGE_PG_PASSWORD")


def test_without_psycopg_a_postgresql_store_is_one_line_saying_what_to_install(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from mirage_mailer.store import StoreError

    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg raises ImportError
    with pytest.raises(StoreError) as caught:
        Store(PostgresUrl("postgresql://mirage@127.0.0.1:1/news"))
    assert caught.value.exit_code == ExitCode.INVALID_INPUT
    assert "pip install 'mirage-mailer[postgresql]'" in str(caught.value)


# -- the same story on both backends, every reader compared ---------------------------------------


def _story(store: Store, clock: Clock) -> None:
    """A little of everything a project does: plans, sends, a crash, relays, bounces,
    unsubscribes, sign-ups, opens and clicks, an erasure."""
    store.reconcile("2024-05", [NewRecipient(f"R{n}@Example.org", f"R {n}",
                                             ("en", "fr", None)[n % 3],
                                             ("main", "partners")[n % 3 == 0], {"n": str(n)},
                                             subject=f"s{n}") for n in range(12)])
    rows = list(store.iter_pending("2024-05"))
    clock.tick(5)
    store.record([], [(r.id, f"<{r.id}@x>") for r in rows[:9]])
    clock.tick(1)
    store.record([(rows[0].id, "sent", 250, "ok"), (rows[1].id, "sent", 250, "ok"),
                  (rows[2].id, "failed", 550, "5.1.1 <r2@example.org> unknown"),
                  (rows[3].id, "deferred", 451, "later")])
    store.record_batch([(rows[4].id, hashed_key(rows[4].email), 0, "sent", 250, "ok",
                         "<4@x>", store.stamp())],
                       relays=[(rows[4].id, hashed_key(rows[4].email), 0, "smtp://relay-b")])
    store.record_batch([], relays=[(r.id, hashed_key(r.email), 0, "smtp://relay-a")
                                   for r in (rows[0], rows[2])])
    store.recover_inflight("2024-05")
    clock.tick(60)
    store.suppress("r7@example.org", source="link", reason="one-click")
    store.suppress("r1@example.org", source="cli")
    store.record_engagement("2024-05", "s0", "opened")
    store.record_engagement("2024-05", "s0", "clicked", "https://a.example/x")
    store.record_engagement("2024-05", "s1", "clicked", "https://a.example/x")
    store.record_engagement("2024-05", "s1", "clicked", "https://b.example/y")
    bounce = store.bounce_row("R2@example.org", f"<{rows[2].id}@x>")
    assert bounce is not None
    store.record_bounce("mid:<b1@x>", bounce, kind="bounced", detail="5.1.1")
    store.record_bounce("mid:<b2@x>", store.verp_row(rows[4].id) or bounce,
                        kind="soft-bounced", detail="4.2.2")
    store.mark_bounce_mail("mid:<b3@x>", "ignored")
    store.add_pending_subscriber("main", "New@Example.org", name="N", lang="fr", subject="sn",
                                 consent_text="I agree.", consent_version="1", source="web")
    store.confirm_subscriber("main", "sn")
    clock.tick(3600)
    store.reconcile("2024-06", [NewRecipient("r0@example.org", None, "en", "main",
                                             subject="t0"), "r5@example.org"])
    (june,) = store.iter_pending("2024-06")
    store.record([], [(june.id, "<j@x>")])
    store.record([(june.id, "sent", 250, "ok")])
    store.forget("r9@example.org")


def _answers(store: Store) -> dict[str, object]:
    issues = store.issues()
    per_issue = {issue: {
        "counts": store.counts(issue), "recipients": list(store.recipients(issue)),
        "relayed": list(store.recipients(issue, relay=True)),
        "unsent": list(store.recipients(issue, unsent=True)),
        "timeline": list(store.timeline(issue)), "engagement": store.engagement(issue),
        "breakdown": store.breakdown(issue), "readers": store.readers_engaged(issue),
        "bounces": store.bounce_counts(issue), "kinds": store.bounce_kinds(issue),
        "relays": store.relay_counts(issue),
        "extent": store.extent(issue),
        "rows": list(store.issue_rows(issue)), "pending": list(store.iter_pending(issue)),
    } for issue in issues}
    return {
        "issues": issues, "per_issue": per_issue,
        "unsubscriptions": store.unsubscriptions(), "first_sends": store.first_sends(),
        "reached": store.distinct_reached(issues),
        "unsubscribes_by_issue": store.unsubscribes_by_issue(),
        "events": store.events(), "suppressions": store.suppressions(),
        # a set: its repr follows hashing order, which differs between runs
        "suppressed_keys": (type(keys := store.suppressed_keys()).__name__, sorted(keys)),
        "export": [store.export(f"r{n}@example.org") for n in (0, 1, 2, 9)]
                  + [store.export("new@example.org")],
        "subscribers": list(store.web_subscribers("main")),
        "confirmed": list(store.confirmed_subscribers("main")),
        "resolve": [store.resolve_subject(s) for s in ("s0", "s9", "sn", "zz")],
        "lang": store.recipient_lang("2024-05", "s1"),
        "seen": [store.bounce_seen(k) for k in ("mid:<b1@x>", "mid:<b3@x>", "mid:<zz>")],
        "soft": store.soft_window("r4@example.org", None, 30),
        "priors": store.priors("2024-05", ["r3@example.org", "r4@example.org"]),
    }


def test_every_reader_answers_alike_on_both_backends(tmp_path: Path,
                                                     pg_url: PostgresUrl) -> None:
    """The same story on SQLite and PostgreSQL gives the same answer, value for value and
    type for type (no bool for 0/1, no Decimal for a sum, the same order)."""
    found = []
    for where in (tmp_path / "t.sqlite", pg_url):
        with Store(where, clock=Clock()) as store:
            _story(store, store._clock)  # type: ignore[arg-type]
            found.append(_answers(store))
    lite, pg = found
    for key in lite:
        assert repr(pg[key]) == repr(lite[key]), key


def test_a_user_without_rights_on_the_schema_is_one_line_exit_2(pg_url: PostgresUrl) -> None:
    """PostgreSQL 15 no longer lets every user create tables in 'public': the store says so
    (exit 2: the configuration, not the moment, is wrong) instead of a traceback."""
    from mirage_mailer.store import StoreError

    raw(pg_url, "DO $$ BEGIN CREATE ROLE clerk LOGIN; EXCEPTION WHEN duplicate_object"
                " THEN NULL; END $$", script=True)
    raw(pg_url, "REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    clerk = PostgresUrl(pg_url.url.replace("postgres@", "clerk@"))
    with pytest.raises(StoreError) as caught:
        Store(clerk)
    assert caught.value.exit_code == ExitCode.INVALID_INPUT
    [problem] = caught.value.problems
    assert problem.path == clerk.url
    assert "permission denied for schema public" in problem.message
    assert "rights" in problem.hint


def test_a_server_gone_in_the_middle_is_exit_3_and_nothing_half_written(
        pg_url: PostgresUrl) -> None:
    with Store(pg_url) as s:
        s.add_recipients("i", [sub("a@example.org"), sub("b@example.org")])
        a, b = (r.id for r in s.iter_pending("i"))
        raw(pg_url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE application_name = 'mirage-mailer'"
                    " AND datname = current_database()")  # the server restarted, say
        with pytest.raises(StoreUnavailable) as caught:
            s.record([(a, "sent", 250, "ok")], [(b, "<b@x>")])
        assert caught.value.exit_code == ExitCode.CANNOT_DELIVER
        [problem] = caught.value.problems
        assert problem.path == pg_url.url and "\n" not in problem.message
    with Store(pg_url) as again:  # a rerun finds the store as it was
        assert again.counts("i")["pending"] == 2
