"""The DAGs' retry policy: transient failures (the database, the artifact store) are retried with
exponential backoff; errors that another attempt cannot fix fail the task at once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk.definitions.retry_policy import ExceptionRetryPolicy, RetryAction, RetryRule

NO_RETRY = ExceptionRetryPolicy(
    rules=[
        RetryRule(
            exception=[
                "pipeline.errors.ValidationFailed",
                "pipeline.errors.JobSpecError",
                "pipeline.errors.ModelError",
                "pipeline.errors.ConfigError",
            ],
            action=RetryAction.FAIL,
            reason="the input or the configuration is wrong; a retry would fail the same way",
        )
    ]
)

DEFAULT_ARGS: dict[str, Any] = {
    "retries": 3,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=30),
    "retry_policy": NO_RETRY,
}
