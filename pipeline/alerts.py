"""Alerts: one short message to the people a job spec names (``alerts:``), by webhook and email.

The webhook gets Slack-compatible JSON (``{"text": ...}``, which Slack, Mattermost, Rocket.Chat and Teams'
incoming webhooks read) plus a ``nightscore`` object with the same facts for machines. Email goes through
the SMTP server of ``NIGHTSCORE_SMTP_URL`` (``smtp://user:password@host:587``, ``smtps://...`` for TLS on
connect; STARTTLS is used when the server offers it), from ``NIGHTSCORE_ALERT_FROM``.

Sending never raises: an alert that cannot go out is logged with the reason, and the run's own outcome is
unchanged. No Airflow import here: the DAGs' callbacks and the CLI's publish call the same :func:`send`.
"""

from __future__ import annotations

import json
import logging
import smtplib
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from email.message import EmailMessage
from typing import Any
from urllib.parse import unquote, urlsplit

from pipeline import config
from pipeline.errors import redact
from pipeline.jobs import Alerts

log = logging.getLogger(__name__)
TIMEOUT = 10  # seconds for each webhook or SMTP call


@dataclass
class Alert:
    job: str
    ds: str | None
    kind: str  # failed | quarantine | late | performance
    summary: str  # one line: what happened
    detail: str = ""  # the error, or the numbers
    run_id: str | None = None
    airflow_run_id: str | None = None
    links: dict[str, str] = field(default_factory=dict)

    def text(self) -> str:
        head = {"failed": ":red_circle:", "quarantine": ":warning:", "late": ":hourglass:", "performance": ":chart_with_downwards_trend:"}.get(self.kind, "")
        lines = [f"{head} nightscore {self.job} {self.ds or ''}: {self.summary}".replace("  ", " ").strip()]
        if self.detail:
            lines.append(self.detail)
        ids = [f"run {self.run_id}" if self.run_id else "", f"Airflow run {self.airflow_run_id}" if self.airflow_run_id else ""]
        if any(ids):
            lines.append(", ".join(i for i in ids if i))
        lines += [f"{name}: {url}" for name, url in self.links.items()]
        return "\n".join(lines)


def webhook_url(alerts: Alerts) -> str | None:
    if alerts.webhook:
        return alerts.webhook
    if alerts.webhook_env:
        return config.alert_webhook_url(alerts.webhook_env)
    return None


def send(alerts: Alerts, alert: Alert) -> list[str]:
    """Send ``alert`` wherever ``alerts`` says; return where it went (``webhook``, ``email``)."""
    sent: list[str] = []
    if not alerts.configured:
        return sent
    url = webhook_url(alerts)
    if url:
        try:
            post_webhook(url, {"text": alert.text(), "nightscore": asdict(alert)})
            sent.append("webhook")
        except Exception as exc:  # an alert must never change the run's outcome
            log.warning("alert for %s %s not sent to the webhook: %s", alert.job, alert.ds, redact(str(exc)))
    elif alerts.webhook_env:
        log.warning("alert for %s %s not sent: the webhook URL variable %s is not set", alert.job, alert.ds, alerts.webhook_env)
    if alerts.email:
        try:
            send_email(alerts.email, f"[nightscore] {alert.job} {alert.ds or ''}: {alert.summary}"[:200], alert.text())
            sent.append("email")
        except Exception as exc:
            log.warning("alert for %s %s not emailed: %s", alert.job, alert.ds, redact(str(exc)))
    if sent:
        log.info("alert for %s %s (%s) sent by %s", alert.job, alert.ds, alert.kind, " and ".join(sent))
    return sent


def post_webhook(url: str, payload: dict[str, Any]) -> None:
    req = urllib.request.Request(url, data=json.dumps(payload, default=str).encode(), method="POST")
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
            resp.read()
    except urllib.error.HTTPError as err:
        raise RuntimeError(f"the webhook answered HTTP {err.code}") from None
    except urllib.error.URLError as err:
        raise RuntimeError(f"the webhook could not be reached ({err.reason})") from None


def send_email(to: list[str], subject: str, body: str) -> None:
    server = config.smtp_url()
    if not server:
        raise RuntimeError("NIGHTSCORE_SMTP_URL is not set (smtp://user:password@host:587)")
    parts = urlsplit(server)
    msg = EmailMessage()
    msg["From"] = config.alert_from()
    msg["To"] = ", ".join(to)
    msg["Subject"] = subject
    msg.set_content(body)
    cls = smtplib.SMTP_SSL if parts.scheme == "smtps" else smtplib.SMTP
    with cls(parts.hostname or "localhost", parts.port or (465 if parts.scheme == "smtps" else 25), timeout=TIMEOUT) as smtp:
        if parts.scheme == "smtp":
            smtp.ehlo()
            if smtp.has_extn("starttls"):
                smtp.starttls()
                smtp.ehlo()
        if parts.username:
            smtp.login(unquote(parts.username), unquote(parts.password or ""))
        smtp.send_message(msg)
