-- list_job_views
-- The typed per-job views and their key columns.
SELECT job, view_name, key_columns, updated_at FROM job_views ORDER BY job
