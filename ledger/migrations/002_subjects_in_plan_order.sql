-- Subjects stored in the order they were first planned (a rowid table),
-- found by key through an index, and no index of events by subject.
--
-- Keyed by (vendor, id_type, subject_id), a subject's row sat where its id
-- sorts; real ids (UUIDs, hashed e-mails) sort in no useful order, so the
-- outcomes of one batch of a thousand subjects rewrote a thousand scattered
-- pages, each copied whole into the WAL at every commit: a backfill of
-- random ids cost 120 µs of CPU per item against 20 for ids in key order.
-- A new subject's row is now appended, and a batch's subjects were planned
-- together, so its outcomes rewrite a few neighbouring pages; the key index
-- is only read when they are resolved (the key does not change).
-- An item names its subject's row (items.subject), so resolving it reads
-- no index at all: the rows of a batch's subjects are found by number, and
-- the id column keeps those numbers through a VACUUM.
-- The events' index on subject_id was rewritten in scattered places the
-- same way, for one rare query (every event about one person), which now
-- reads the log through.
CREATE TABLE subjects_by_plan (
  id             INTEGER PRIMARY KEY,
  vendor         TEXT NOT NULL,
  id_type        TEXT NOT NULL,
  subject_id     TEXT NOT NULL,
  restrictions   INTEGER NOT NULL DEFAULT 0,
  erasure        INTEGER NOT NULL DEFAULT 0,
  erased_at      INTEGER,
  updated_at     INTEGER,
  access_request TEXT NOT NULL DEFAULT '',
  in_flight      INTEGER NOT NULL DEFAULT 0,
  settled        INTEGER NOT NULL DEFAULT 0,
  failures       INTEGER NOT NULL DEFAULT 0,
  retry_at       INTEGER
);
INSERT INTO subjects_by_plan (vendor, id_type, subject_id, restrictions, erasure, erased_at, updated_at, access_request,
  in_flight, settled, failures, retry_at)
  SELECT vendor, id_type, subject_id, restrictions, erasure, erased_at, updated_at, access_request,
  in_flight, settled, failures, retry_at FROM subjects;
DROP TABLE subjects;
ALTER TABLE subjects_by_plan RENAME TO subjects;
CREATE UNIQUE INDEX subjects_key ON subjects(vendor, id_type, subject_id);
ALTER TABLE items ADD COLUMN subject INTEGER; -- subjects.id; set for every item still pending
UPDATE items SET subject = (SELECT s.id FROM subjects s
  WHERE s.vendor = items.vendor AND s.id_type = items.id_type AND s.subject_id = items.subject_id)
  WHERE outcome = 'pending';
DROP INDEX events_subject;
