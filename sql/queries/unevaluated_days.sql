-- Published days of a job in [:first, :last] whose published run (the latest to publish the day) has no
-- evaluation yet: none, or one of a run the day has since been republished by
WITH published AS (
    SELECT DISTINCT ON (ds) ds, run_id
    FROM scoring_runs
    WHERE job = :job AND ds BETWEEN :first AND :last AND published_at IS NOT NULL AND NOT dry_run
    ORDER BY ds, published_at DESC
)
SELECT p.ds, p.run_id::text AS run_id
FROM published p
LEFT JOIN evaluations e ON e.job = :job AND e.ds = p.ds AND e.run_id = p.run_id
WHERE e.job IS NULL
ORDER BY p.ds
