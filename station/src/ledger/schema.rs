//! The ledger's tables. Evidence tables are append-only: triggers refuse UPDATE and
//! DELETE on every table in [`APPEND_ONLY`].

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS devices (
    serial      TEXT PRIMARY KEY,
    hw_profile  TEXT NOT NULL,
    key_pem     TEXT NOT NULL,
    key_id      TEXT NOT NULL UNIQUE,
    enrolled_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS assignments (          -- 设备领用: who the device is issued to
    serial       TEXT NOT NULL REFERENCES devices(serial),
    officer_cert TEXT NOT NULL,
    officer_name TEXT NOT NULL,
    assigned_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (             -- one dock of one device
    id           INTEGER PRIMARY KEY,
    slot         TEXT NOT NULL,
    serial       TEXT,
    started_at   TEXT NOT NULL,
    delay_reason TEXT
);
CREATE TABLE IF NOT EXISTS session_ends (
    session     INTEGER PRIMARY KEY REFERENCES sessions(id),
    ended_at    TEXT NOT NULL,
    outcome     TEXT NOT NULL,                    -- SessionEnd: complete, quarantined, interrupted, audit
    summary     TEXT NOT NULL                     -- JSON
);
CREATE TABLE IF NOT EXISTS records (              -- leaf i of the log = bytes of log_index i
    log_index  INTEGER PRIMARY KEY,
    serial     TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    hash       BLOB NOT NULL UNIQUE,
    kind       TEXT NOT NULL,
    bytes      BLOB NOT NULL,
    sig        BLOB NOT NULL,
    session    INTEGER NOT NULL REFERENCES sessions(id),
    stored_at  TEXT NOT NULL,
    UNIQUE (serial, seq)
);
-- A clip's annotations are found without reading its device's other records.
CREATE INDEX IF NOT EXISTS records_by_kind ON records(kind, serial);
CREATE TABLE IF NOT EXISTS clips (
    record_hash    BLOB PRIMARY KEY REFERENCES records(hash),
    serial         TEXT NOT NULL,
    seq            INTEGER NOT NULL,
    number         TEXT NOT NULL,
    case_number    TEXT,
    file           TEXT NOT NULL,
    officer_cert   TEXT NOT NULL,
    signed_sha256  BLOB NOT NULL,
    signed_size    INTEGER NOT NULL,
    stored_sha256  BLOB,                          -- NULL: media missing on the device
    stored_size    INTEGER,
    recorded_end   TEXT NOT NULL,
    deadline       TEXT NOT NULL,
    stored_at      TEXT NOT NULL,
    late           INTEGER NOT NULL,
    delay_reason   TEXT
);
CREATE INDEX IF NOT EXISTS clips_by_case ON clips(case_number);
CREATE INDEX IF NOT EXISTS clips_by_number ON clips(number);
-- Searches and report pages over a year of clips (web bench: 1,000,000 records).
CREATE INDEX IF NOT EXISTS clips_by_device ON clips(serial, seq);
CREATE INDEX IF NOT EXISTS clips_by_officer ON clips(officer_cert);
CREATE INDEX IF NOT EXISTS clips_by_end ON clips(recorded_end, serial, seq);
CREATE TABLE IF NOT EXISTS bindings (             -- clip bound to a case by a later record
    record_hash BLOB PRIMARY KEY REFERENCES records(hash),
    subject     BLOB NOT NULL,
    case_number TEXT NOT NULL,
    number      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS bindings_by_case ON bindings(case_number);
CREATE INDEX IF NOT EXISTS bindings_by_subject ON bindings(subject);
CREATE INDEX IF NOT EXISTS bindings_by_number ON bindings(number);
CREATE TABLE IF NOT EXISTS unattested (           -- files no record covers, hashed by us
    id        INTEGER PRIMARY KEY,
    session   INTEGER NOT NULL REFERENCES sessions(id),
    serial    TEXT NOT NULL,
    file      TEXT NOT NULL,
    sha256    BLOB NOT NULL,
    size      INTEGER NOT NULL,
    stored_at TEXT NOT NULL,
    UNIQUE (serial, file, sha256)
);
CREATE TABLE IF NOT EXISTS findings (
    id       INTEGER PRIMARY KEY,
    session  INTEGER NOT NULL REFERENCES sessions(id),
    serial   TEXT,
    level    TEXT NOT NULL,
    code     TEXT NOT NULL,
    subject  TEXT NOT NULL,
    detail   TEXT NOT NULL,
    at       TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS quarantine (
    id        INTEGER PRIMARY KEY,
    session   INTEGER NOT NULL REFERENCES sessions(id),
    claimed   TEXT,
    folder    TEXT NOT NULL,
    files     INTEGER NOT NULL,
    bytes     INTEGER NOT NULL,
    at        TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tlog_nodes (
    level INTEGER NOT NULL,
    idx   INTEGER NOT NULL,
    hash  BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (
    size      INTEGER PRIMARY KEY,
    root      BLOB NOT NULL,
    note      TEXT NOT NULL,
    signed_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS device_telemetry (     -- fleet state, not evidence: the latest heard
    serial      TEXT PRIMARY KEY,
    received_at TEXT NOT NULL,
    telemetry   TEXT,
    status      TEXT
);
CREATE TABLE IF NOT EXISTS replicated (           -- objects the replication bucket holds
    sha256     BLOB PRIMARY KEY,
    size       INTEGER NOT NULL,
    pushed_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS station_records (      -- the station's own signed chain, leaves of the log
    log_index   INTEGER PRIMARY KEY,              -- leaf i of the log = bytes of log_index i
    seq         INTEGER NOT NULL UNIQUE,
    hash        BLOB NOT NULL UNIQUE,
    kind        TEXT NOT NULL,                    -- StationFact: document, case-closed, access
    case_number TEXT,                             -- NULL: not about one case (a login)
    bytes       BLOB NOT NULL,
    sig         BLOB NOT NULL,
    at          TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS station_records_by_case ON station_records(case_number);
CREATE TABLE IF NOT EXISTS documents (            -- 执法文书 attached to a case, stored write-once
    record_hash BLOB PRIMARY KEY REFERENCES station_records(hash),
    case_number TEXT NOT NULL,
    title       TEXT NOT NULL,
    file        TEXT NOT NULL,
    sha256      BLOB NOT NULL,
    size        INTEGER NOT NULL,
    attached_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS documents_by_case ON documents(case_number);
CREATE TABLE IF NOT EXISTS case_closures (        -- the act ended; the latest closure counts
    record_hash BLOB PRIMARY KEY REFERENCES station_records(hash),
    case_number TEXT NOT NULL,
    ended       TEXT NOT NULL,
    due         TEXT NOT NULL,
    closed_at   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS case_closures_by_case ON case_closures(case_number);
CREATE TABLE IF NOT EXISTS discs (                -- archive disc images built for a case
    record_hash  BLOB PRIMARY KEY REFERENCES station_records(hash),
    case_number  TEXT NOT NULL,
    volume_id    TEXT NOT NULL UNIQUE,
    disc_set     INTEGER NOT NULL,
    disc         INTEGER NOT NULL,
    disc_count   INTEGER NOT NULL,
    medium       TEXT NOT NULL,
    image_sha256 BLOB NOT NULL,
    image_size   INTEGER NOT NULL,
    sums_sha256  BLOB NOT NULL,
    built_at     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS discs_by_case ON discs(case_number);
CREATE INDEX IF NOT EXISTS discs_by_image ON discs(image_sha256);
CREATE TABLE IF NOT EXISTS disc_burns (           -- every burn, failed ones included
    record_hash  BLOB PRIMARY KEY REFERENCES station_records(hash),
    volume_id    TEXT NOT NULL,
    drive        TEXT NOT NULL,
    burned       INTEGER NOT NULL,
    detail       TEXT NOT NULL,
    burned_at    TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS disc_checks (          -- every read-back check of a disc
    record_hash  BLOB PRIMARY KEY REFERENCES station_records(hash),
    volume_id    TEXT NOT NULL,
    source       TEXT NOT NULL,
    intact       INTEGER NOT NULL,
    problems     INTEGER NOT NULL,
    checked_at   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS people (               -- 人员: ids are permanent, the log names people by id
    id         INTEGER PRIMARY KEY,
    login      TEXT NOT NULL UNIQUE,
    name       TEXT NOT NULL,
    department TEXT NOT NULL,
    badge      TEXT UNIQUE,                       -- 执法证号, as device records name officers
    added_at   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS role_changes (         -- roles granted and revoked; the latest counts
    id       INTEGER PRIMARY KEY,
    person   INTEGER NOT NULL REFERENCES people(id),
    role     TEXT NOT NULL,
    granted  INTEGER NOT NULL,
    at       TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS passwords (            -- argon2id PHC strings; the latest counts
    id       INTEGER PRIMARY KEY,
    person   INTEGER NOT NULL REFERENCES people(id),
    phc      TEXT NOT NULL,
    set_at   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS account_states (       -- disabled or enabled again; the latest counts
    id       INTEGER PRIMARY KEY,
    person   INTEGER NOT NULL REFERENCES people(id),
    disabled INTEGER NOT NULL,
    at       TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS access_events (        -- every access, written before content is served
    record_hash BLOB PRIMARY KEY REFERENCES station_records(hash),
    log_index   INTEGER NOT NULL UNIQUE,
    action      TEXT NOT NULL,
    person      INTEGER,
    role        TEXT,
    case_number TEXT,
    request     INTEGER,
    at          TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS access_events_by_person ON access_events(person, log_index);
CREATE INDEX IF NOT EXISTS access_events_by_case ON access_events(case_number);
CREATE INDEX IF NOT EXISTS access_events_by_request ON access_events(request);
-- An approval is used once: a second export under one request is refused by the ledger,
-- even when two exports race past their checks.
CREATE UNIQUE INDEX IF NOT EXISTS access_events_one_export ON access_events(request)
    WHERE action = 'export';
CREATE TABLE IF NOT EXISTS access_event_records ( -- the clip records each event served
    event       BLOB NOT NULL REFERENCES access_events(record_hash),
    record_hash BLOB NOT NULL,
    PRIMARY KEY (event, record_hash)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS access_event_records_by_record ON access_event_records(record_hash);
CREATE TABLE IF NOT EXISTS requests (             -- 调阅/复制申请; the id is the record's seq
    id          INTEGER PRIMARY KEY,
    record_hash BLOB NOT NULL UNIQUE REFERENCES station_records(hash),
    requester   INTEGER NOT NULL,
    role        TEXT NOT NULL,
    case_number TEXT,
    form        TEXT NOT NULL,
    outside     INTEGER NOT NULL,
    sensitive   INTEGER NOT NULL,
    requested_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS decisions (            -- approvals and rejections of requests
    record_hash BLOB PRIMARY KEY REFERENCES station_records(hash),
    request     INTEGER NOT NULL REFERENCES requests(id),
    approver    INTEGER NOT NULL,
    role        TEXT NOT NULL,
    approved    INTEGER NOT NULL,
    decided_at  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS decisions_by_request ON decisions(request);
CREATE TABLE IF NOT EXISTS receipts (
    id        INTEGER PRIMARY KEY,
    session   INTEGER NOT NULL REFERENCES sessions(id),
    serial    TEXT NOT NULL,
    max_seq   INTEGER NOT NULL,
    log_size  INTEGER NOT NULL,
    bytes     BLOB NOT NULL,
    sig       BLOB NOT NULL,
    issued_at TEXT NOT NULL
);
";

/// Every evidence table: each gets triggers refusing UPDATE and DELETE.
pub(super) const APPEND_ONLY: &[&str] = &[
    "replicated",
    "devices",
    "assignments",
    "sessions",
    "session_ends",
    "records",
    "clips",
    "bindings",
    "unattested",
    "findings",
    "quarantine",
    "tlog_nodes",
    "checkpoints",
    "receipts",
    "station_records",
    "documents",
    "case_closures",
    "discs",
    "disc_burns",
    "disc_checks",
    "people",
    "role_changes",
    "passwords",
    "account_states",
    "access_events",
    "access_event_records",
    "requests",
    "decisions",
];
