-- Runs once, when the PostgreSQL volume is first created: one database for Airflow, one for nightscore.
CREATE ROLE airflow LOGIN PASSWORD :'airflow_password';
CREATE DATABASE airflow OWNER airflow;
CREATE ROLE nightscore LOGIN CREATEROLE PASSWORD :'nightscore_password';
CREATE DATABASE nightscore OWNER nightscore;
