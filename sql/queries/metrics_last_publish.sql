-- When the job last published a day, and the latest day it has published
SELECT max(published_at) AS published_at, max(ds) AS ds
FROM scoring_runs
WHERE job = :job AND published_at IS NOT NULL AND NOT dry_run
