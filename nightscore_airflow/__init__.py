"""nightscore's Airflow glue: what the DAG files in ``dags/`` wire, and nothing the library needs.

``pipeline`` is the library and never imports Airflow; this package is the only place that does. It is
installed beside ``pipeline`` by the same ``pyproject.toml``, so Airflow's DAG processor, a plain
``DagBag('dags')``, ``python dags/score_jobs.py`` and pytest all import it the same way.

- :mod:`nightscore_airflow.connections`: the job specs' folder and the Airflow Connections, turned into the
  plain :class:`pipeline.config.Settings` a task hands to ``pipeline``;
- :mod:`nightscore_airflow.retries`: the tasks' retry policy (errors a retry cannot fix fail at once);
- :mod:`nightscore_airflow.tasks`: the task bodies (scoring, training, evaluation), a few lines each over
  ``pipeline``;
- :mod:`nightscore_airflow.assets`: the Assets the DAGs emit and are scheduled on, and their events' extras;
- :mod:`nightscore_airflow.notifiers`: who hears about a failed or late day;
- :mod:`nightscore_airflow.links`: the report buttons on the monitor task.

Nothing here runs at parse time: the heavy libraries (pandas, pyarrow, xgboost, great_expectations,
sqlalchemy, boto3) are imported inside the task bodies, on the worker.
"""
