-- Runs: one row per `privsync run`.
CREATE TABLE runs (
  id          TEXT PRIMARY KEY,
  started_at  TEXT NOT NULL,
  finished_at TEXT,
  state       TEXT NOT NULL,              -- planning | running | finished
  mode        TEXT NOT NULL,              -- incremental | snapshot
  input_key   TEXT NOT NULL DEFAULT '',   -- SHA-256 over input hashes and mode: recognises a resumed run
  inputs      TEXT NOT NULL DEFAULT '[]', -- JSON: path, sha256, rows, rejected
  stats       TEXT NOT NULL DEFAULT '{}'  -- JSON: the plan's counts
);

-- What each vendor holds (confirmed) or is being told about each subject.
CREATE TABLE subjects (
  vendor         TEXT NOT NULL,
  id_type        TEXT NOT NULL,
  subject_id     TEXT NOT NULL,
  restrictions   INTEGER NOT NULL DEFAULT 0, -- bit set, confirmed by the vendor
  erasure        INTEGER NOT NULL DEFAULT 0, -- 0 none, 1 suppressed, 2 erased
  erased_at      INTEGER,                    -- unix ns
  updated_at     INTEGER,                    -- unix ns of the row behind the desired state
  access_request TEXT NOT NULL DEFAULT '',
  in_flight      INTEGER NOT NULL DEFAULT 0, -- fingerprint of the row being sent
  settled        INTEGER NOT NULL DEFAULT 0, -- fingerprint of the last row fully dealt with
  failures       INTEGER NOT NULL DEFAULT 0,
  retry_at       INTEGER,                    -- unix ns: back-off across runs
  PRIMARY KEY (vendor, id_type, subject_id)
) WITHOUT ROWID;

-- Settled fingerprints, as sorted little-endian uint64 blobs per bucket (the
-- top 16 bits), plus a journal of changes folded in by compaction.
CREATE TABLE fp_buckets (bucket INTEGER PRIMARY KEY, fps BLOB NOT NULL);
CREATE TABLE fp_delta (fp INTEGER PRIMARY KEY, present INTEGER NOT NULL);

CREATE TABLE batches (
  id           INTEGER PRIMARY KEY,
  run_id       TEXT NOT NULL,
  vendor       TEXT NOT NULL,
  operation    TEXT NOT NULL,
  state        TEXT NOT NULL,   -- waiting | planned | sending | submitted | done | failed | split
  after_batch  INTEGER,
  attempts     INTEGER NOT NULL DEFAULT 0,
  vendor_ref   TEXT NOT NULL DEFAULT '',
  last_error   TEXT NOT NULL DEFAULT '',
  created_at   INTEGER,
  submitted_at INTEGER,
  updated_at   INTEGER
);
CREATE INDEX batches_open ON batches(state) WHERE state NOT IN ('done', 'failed', 'split');
CREATE INDEX batches_after ON batches(after_batch) WHERE after_batch IS NOT NULL;

CREATE TABLE items (
  id             INTEGER PRIMARY KEY,
  batch_id       INTEGER NOT NULL,
  run_id         TEXT NOT NULL,
  vendor         TEXT NOT NULL,
  id_type        TEXT NOT NULL,
  subject_id     TEXT NOT NULL,
  operation      TEXT NOT NULL,
  restrictions   INTEGER NOT NULL DEFAULT 0,
  access_request TEXT NOT NULL DEFAULT '',
  fp             INTEGER NOT NULL,  -- the row's fingerprint, settled when its last item succeeds
  last           INTEGER NOT NULL,  -- 1 when no operation of the row follows this one
  outcome        TEXT NOT NULL DEFAULT 'pending',
  detail         TEXT NOT NULL DEFAULT '',
  data_url       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX items_batch ON items(batch_id);

-- The append-only audit log: one row per outcome, the rows of the report.
CREATE TABLE events (
  seq          INTEGER PRIMARY KEY,
  run_id       TEXT NOT NULL,
  run_seq      INTEGER NOT NULL,
  recorded_at  TEXT NOT NULL,
  vendor       TEXT NOT NULL,
  subject_id   TEXT NOT NULL,
  id_type      TEXT NOT NULL,
  operation    TEXT NOT NULL,
  restrictions TEXT NOT NULL,
  outcome      TEXT NOT NULL,
  vendor_ref   TEXT NOT NULL,
  attempts     INTEGER NOT NULL,
  detail       TEXT NOT NULL,
  item_id      INTEGER,
  UNIQUE (run_id, run_seq)
);
CREATE INDEX events_subject ON events(subject_id);
