-- A plain table shaped like predictions (columns, collations, NOT NULL and CHECK constraints) to bulk-load
-- one day into, with the day's CHECK that lets ATTACH PARTITION skip its scan. Added while the table is
-- empty, it costs nothing; COPY then checks each row as it arrives (added after the load, it rescanned
-- the day: 0.1 s per 1,000,000 rows).
CREATE TABLE {loading} (LIKE predictions INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
ALTER TABLE {loading} ADD CONSTRAINT {check_name} CHECK (job = %(job)s AND ds = %(ds)s);
