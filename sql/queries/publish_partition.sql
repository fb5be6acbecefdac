-- Replace one (job, ds) partition of predictions with the staged rows, in the caller's transaction.
-- {staging} is composed with psycopg2.sql.Identifier; %(job)s / %(ds)s are bind parameters.
-- Writers of the same (job, ds) queue on the advisory lock; readers keep seeing the old day until commit.
SELECT pg_advisory_xact_lock(hashtext('nightscore.publish'), hashtext(%(job)s || '/' || %(ds)s));

DELETE FROM predictions WHERE job = %(job)s AND ds = %(ds)s;

INSERT INTO predictions (job, ds, entity_id, score, label, model_name, model_version, run_id, scored_at)
SELECT job, ds, entity_id, score, label, model_name, model_version, CAST(run_id AS uuid), scored_at
FROM {staging}
WHERE job = %(job)s AND ds = %(ds)s;
