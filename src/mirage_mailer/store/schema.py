"""Schema of the tracking store: statuses, and migrations applied in order, each once."""

from __future__ import annotations

STATUSES = ("pending", "sending", "sent", "failed", "suppressed", "invalid", "unknown",
            "withdrawn")
# "sending" is internal: it marks a message handed to the server. A crash leaves such rows
# behind; they are reported as "unknown" and recover_inflight() converts them.
# "withdrawn": the row left the list (or was replaced by a corrected one) before its turn;
# it comes back to "pending" if the person returns to the list. The contract's six report
# keys come first; "withdrawn" is an extra one.
# The recipients indexes keyed by address or subject: a long list fills them in random order,
# so an issue's first plan of many rows drops them and builds them again in one sorted pass
# inside its own transaction (``RecipientsMixin._bulk_insert``). Exactly as the last
# migration that made them left them (a test compares with a new store's schema).
ADDRESS_INDEXES = (
    ("recipients_issue_email",
     "CREATE UNIQUE INDEX recipients_issue_email ON recipients (issue, email_key)"),
    ("recipients_email_key", "CREATE INDEX recipients_email_key ON recipients (email_key)"),
    ("recipients_subject", "CREATE INDEX recipients_subject ON recipients (subject)"),
)
REPORT_STATUSES = ("sent", "failed", "pending", "suppressed", "invalid", "unknown", "withdrawn")
NEW_STATUSES = ("pending", "invalid", "suppressed")

# Applied in order, each once, recorded in schema_migrations. Never edit a released entry:
# append a new one, so an old .mirage/tracking.sqlite is upgraded in place. A suppression
# whose person was forgotten holds 'sha256:<hex of the lowercased address>' instead.
MIGRATIONS: tuple[tuple[str, str], ...] = (
    (
        "initial",
        """
        CREATE TABLE recipients (
            id INTEGER PRIMARY KEY, issue TEXT NOT NULL,
            email TEXT NOT NULL, email_key TEXT NOT NULL,  -- email_key: lowercased identity
            name TEXT, lang TEXT, list_name TEXT NOT NULL, fields TEXT NOT NULL DEFAULT '{}',
            status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN (
                'pending', 'sending', 'sent', 'failed', 'suppressed', 'invalid', 'unknown')),
            attempts INTEGER NOT NULL DEFAULT 0, message_id TEXT,
            smtp_code INTEGER, smtp_response TEXT,
            created_at TEXT NOT NULL, last_attempt_at TEXT);
        CREATE UNIQUE INDEX recipients_issue_email ON recipients (issue, email_key);
        CREATE TABLE events (  -- append-only; issue is NULL for unsubscriptions
            id INTEGER PRIMARY KEY, recipient_id INTEGER, issue TEXT,
            email TEXT NOT NULL, kind TEXT NOT NULL, detail TEXT, at TEXT NOT NULL);
        CREATE TABLE suppressions (  -- email is lowercased
            email TEXT PRIMARY KEY, source TEXT NOT NULL, reason TEXT, created_at TEXT NOT NULL);
        """,
    ),
    (
        "lookup-indexes",
        """
        CREATE INDEX recipients_issue_status ON recipients (issue, status, id);
        CREATE INDEX recipients_email_key ON recipients (email_key);
        CREATE INDEX events_issue ON events (issue, id);
        """,
    ),
    (
        "subscribers-subjects",
        """
        ALTER TABLE recipients ADD COLUMN subject TEXT;  -- keyed hash of the address (tokens)
        CREATE INDEX recipients_subject ON recipients (subject);
        CREATE TABLE subscribers (  -- web sign-ups, double opt-in, with proof of consent
            id INTEGER PRIMARY KEY, list_name TEXT NOT NULL,
            email TEXT NOT NULL, email_key TEXT NOT NULL, subject TEXT NOT NULL,
            name TEXT, lang TEXT,
            status TEXT NOT NULL CHECK (status IN ('pending', 'confirmed')),
            consent_text TEXT NOT NULL, consent_version TEXT NOT NULL, source TEXT NOT NULL,
            requested_at TEXT NOT NULL, confirmed_at TEXT);
        CREATE UNIQUE INDEX subscribers_list_email ON subscribers (list_name, email_key);
        CREATE INDEX subscribers_subject ON subscribers (subject);
        """,
    ),
    (
        "no-status-index",
        """
        -- Every send rewrote this index twice per message (claim, outcome): about a fifth of
        -- the cost of recording a send. Pages of an issue's rows come from an index on issue
        -- alone (ordered by rowid within an issue), which a status change never touches.
        DROP INDEX recipients_issue_status;
        CREATE INDEX recipients_issue ON recipients (issue);
        """,
    ),
    (
        "events-engagement-index",
        """
        -- events_issue was rewritten by every recorded send: a quarter of the cost of
        -- recording one. Only the opens/clicks counts need an index (the web report asks for
        -- them often); sends never touch this partial one. The rare full-log reads scan.
        DROP INDEX events_issue;
        CREATE INDEX events_engagement ON events (issue, kind)
            WHERE kind IN ('opened', 'clicked');
        """,
    ),
    (
        "withdrawn-status",
        """
        -- Lists change between runs: a row that left the list before its turn is 'withdrawn'.
        -- SQLite cannot alter a CHECK constraint, so the table is rebuilt the documented way
        -- (create, copy with the same ids, drop, rename, re-index) inside this migration's
        -- single transaction. Columns keep their order (subject last, as ALTER left it).
        CREATE TABLE recipients_new (
            id INTEGER PRIMARY KEY, issue TEXT NOT NULL,
            email TEXT NOT NULL, email_key TEXT NOT NULL,
            name TEXT, lang TEXT, list_name TEXT NOT NULL, fields TEXT NOT NULL DEFAULT '{}',
            status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN (
                'pending', 'sending', 'sent', 'failed', 'suppressed', 'invalid', 'unknown',
                'withdrawn')),
            attempts INTEGER NOT NULL DEFAULT 0, message_id TEXT,
            smtp_code INTEGER, smtp_response TEXT,
            created_at TEXT NOT NULL, last_attempt_at TEXT, subject TEXT);
        INSERT INTO recipients_new (id, issue, email, email_key, name, lang, list_name, fields,
            status, attempts, message_id, smtp_code, smtp_response, created_at,
            last_attempt_at, subject)
            SELECT id, issue, email, email_key, name, lang, list_name, fields, status,
            attempts, message_id, smtp_code, smtp_response, created_at, last_attempt_at,
            subject FROM recipients ORDER BY id;
        DROP TABLE recipients;
        ALTER TABLE recipients_new RENAME TO recipients;
        CREATE UNIQUE INDEX recipients_issue_email ON recipients (issue, email_key);
        CREATE INDEX recipients_email_key ON recipients (email_key);
        CREATE INDEX recipients_subject ON recipients (subject);
        CREATE INDEX recipients_issue ON recipients (issue);
        """,
    ),
    (
        "bounces",
        """
        -- Every bounce mail read by process-bounces, by its Message-ID (or a hash of its
        -- bytes): reading the same mailbox twice never counts a bounce twice. No address.
        CREATE TABLE bounce_mail (
            key TEXT PRIMARY KEY, outcome TEXT NOT NULL, at TEXT NOT NULL);
        -- Bounce and complaint counts per issue for report; sends never touch this index.
        CREATE INDEX events_bounces ON events (issue, kind)
            WHERE kind IN ('bounced', 'soft-bounced', 'complained');
        CREATE INDEX events_soft_bounces ON events (email, at)
            WHERE kind = 'soft-bounced';
        """,
    ),
    (
        "relays",
        """
        -- transport.relays: the relay (its URL, no login) that last carried the row's message.
        ALTER TABLE recipients ADD COLUMN relay TEXT;
        """,
    ),
    (
        "leases",
        """
        -- Several senders of an issue on one PostgreSQL store (store/leases.py): the sender
        -- that holds a row, and the senders with their lease. SQLite has one sender per
        -- issue (the send lock) and never fills them; the columns keep both schemas alike.
        -- No index on lease_owner: claims and outcomes would rewrite it (store/leases.py).
        ALTER TABLE recipients ADD COLUMN lease_owner TEXT;
        CREATE TABLE senders (
            owner TEXT PRIMARY KEY, issue TEXT NOT NULL, host TEXT NOT NULL,
            pid INTEGER NOT NULL, started_at TEXT NOT NULL, expires_at TEXT NOT NULL);
        """,
    ),
    (
        "sending-index",
        """
        -- A send starts and ends by turning the issue's rows left 'sending' into 'unknown':
        -- without an index that read every row of the issue (0.7 s at a million rows, at
        -- both ends of every send and run-due). A row is 'sending' only while its message is
        -- on the wire (at most the concurrency), so this index stays a few entries long; a
        -- claim and its outcome each touch it once.
        CREATE INDEX recipients_sending ON recipients (issue) WHERE status = 'sending';
        """,
    ),
    (
        "issue-plans",
        """
        -- What run-due needs to know of each issue without reading its folder again or any
        -- list: the lists' size and time at its last real plan (a list edited since may
        -- hold a fix for a row recorded 'invalid'), and its subject (default language),
        -- number and date (a renamed or copied folder of an issue already sent is refused).
        CREATE TABLE issue_plans (
            issue TEXT PRIMARY KEY, subject TEXT NOT NULL, number TEXT, issue_date TEXT,
            lists TEXT NOT NULL, planned_at TEXT NOT NULL);
        CREATE INDEX issue_plans_subject ON issue_plans (subject);
        """,
    ),
    (
        "issues-as-sent",
        """
        -- Each issue's language as its first readers got it (store/as_sent.py): the subject
        -- and the rendered HTML, not yet personalised, with its article images (JSON), and
        -- a digest of the inputs that decided it (issue.yaml, articles, templates, the
        -- disclaimer). The archive and view-online links show this, not today's files;
        -- a rerun after an edit warns. Replaced only while no reader has the issue.
        CREATE TABLE issues_as_sent (
            issue TEXT NOT NULL, lang TEXT NOT NULL, subject TEXT NOT NULL,
            html TEXT NOT NULL, images TEXT NOT NULL, inputs TEXT NOT NULL,
            digest TEXT NOT NULL, recorded_at TEXT NOT NULL, PRIMARY KEY (issue, lang));
        """,
    ),
)
