-- Runs once, when the PostgreSQL volume is first created: one database for Airflow, one for nightscore.
CREATE ROLE airflow LOGIN PASSWORD :'airflow_password';
CREATE DATABASE airflow OWNER airflow;
CREATE ROLE nightscore LOGIN CREATEROLE PASSWORD :'nightscore_password';
CREATE DATABASE nightscore OWNER nightscore;
-- the Airflow tasks' login: airflow-init grants it nightscore_writer once `nightscore init` has made the role
CREATE ROLE scorer LOGIN PASSWORD :'scorer_password';
