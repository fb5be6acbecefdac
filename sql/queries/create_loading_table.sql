-- A plain table shaped like predictions (columns, NOT NULL and CHECK constraints) to bulk-load one day into.
CREATE TABLE {loading} (LIKE predictions INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
