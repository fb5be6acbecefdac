"""Buttons on the scoring DAG's monitor task: the run's report, Data Docs and manifest.

Each is an address the browser can open (a presigned S3 link valid 7 days, or a file:// path for a local
store), computed from the URI the task returned in its XCom, where Airflow's UI reads it."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperatorLink

from nightscore_airflow.connections import task_settings


class _ArtifactLink(BaseOperatorLink):
    name = ""
    field = ""

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        from pipeline.storage import open_store

        state = ti_key.xcom_pull(task_ids=ti_key.task_id) or {}
        uri = state.get(self.field)
        if not uri:
            return ""
        store = open_store(task_settings())
        return store.link(store.key(uri))


class DataDocsLink(_ArtifactLink):
    name = "Data Docs"
    field = "data_docs_uri"


class ManifestLink(_ArtifactLink):
    name = "Run manifest"
    field = "manifest_uri"


class RunReportLink(_ArtifactLink):
    name = "Run report"
    field = "report_uri"


REPORT_LINKS = (RunReportLink(), DataDocsLink(), ManifestLink())
