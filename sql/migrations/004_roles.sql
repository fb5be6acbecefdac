-- Roles: a writer for the pipeline and a read-only role for applications.
-- Both are NOLOGIN groups: grant them to login users (GRANT nightscore_reader TO app_user).
-- On a server where the migrating user may not create roles, this step is skipped with a notice.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'nightscore_reader') THEN
        CREATE ROLE nightscore_reader NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'nightscore_writer') THEN
        CREATE ROLE nightscore_writer NOLOGIN;
    END IF;
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO nightscore_reader, nightscore_writer', current_database());
    GRANT USAGE ON SCHEMA public TO nightscore_reader;
    GRANT SELECT ON predictions, predictions_latest TO nightscore_reader;
    GRANT USAGE ON SCHEMA public, nightscore_staging TO nightscore_writer;
    GRANT CREATE ON SCHEMA nightscore_staging TO nightscore_writer;
    GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO nightscore_writer;
    GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO nightscore_writer;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'nightscore: roles not created (%); create nightscore_reader/nightscore_writer as an admin', SQLERRM;
END
$$;
