-- Per day of a job in [:first, :last]: the run now published (or, for a day never published, the latest
-- attempt), with how many attempts the day took
SELECT DISTINCT ON (r.ds)
       r.ds, r.run_id::text AS run_id, r.status, r.model_name, r.model_version, r.rows_extracted, r.rows_quarantined,
       r.rows_published, r.stage_seconds, r.drift, r.started_at, r.finished_at, r.published_at, r.error,
       extract(epoch FROM (coalesce(r.finished_at, r.published_at) - r.started_at)) AS seconds,
       count(*) OVER (PARTITION BY r.ds) AS attempts
FROM scoring_runs r
WHERE r.job = :job AND r.ds BETWEEN :first AND :last AND NOT r.dry_run
ORDER BY r.ds, (r.published_at IS NOT NULL) DESC, r.published_at DESC NULLS LAST, r.started_at DESC
