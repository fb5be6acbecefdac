"""Alerts: one short message to the people a job spec names (``alerts:``), by webhook and email.

Every alert goes through :func:`route`, whatever raised it (a failed or late day, a quarantine share, drift,
performance, a training outcome): it is recorded in ``alert_log`` and sent unless the job's
``alerts.rules.<kind>`` holds it back (below ``min_level``; within ``cooldown`` of the last one of its kind;
drift that has not yet lasted ``consecutive_days``), and never twice for the same job, kind and day.

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
from pipeline.errors import first_line, redact
from pipeline.jobs import Alerts

log = logging.getLogger(__name__)
TIMEOUT = 10  # seconds for each webhook or SMTP call


LEVELS = ("info", "warn", "alert")
ICONS = {
    "failed": ":red_circle:",
    "quarantine": ":warning:",
    "late": ":hourglass:",
    "performance": ":chart_with_downwards_trend:",
    "performance_estimated": ":crystal_ball:",  # estimated from the scores before the outcomes arrive (pipeline.estimate)
    "drift": ":ocean:",
    "training": ":brain:",
}


@dataclass
class Alert:
    job: str
    ds: str | None
    kind: str  # failed | late | quarantine | drift | performance | performance_estimated | training
    summary: str  # one line: what happened
    detail: str = ""  # the error, or the numbers
    run_id: str | None = None
    airflow_run_id: str | None = None
    links: dict[str, str] = field(default_factory=dict)
    level: str = "alert"  # info | warn | alert
    # what crossed which threshold: [{"what": "monthly_spend psi", "value": 0.31, "threshold": 0.25, "level": "alert"}]
    crossed: list[dict[str, Any]] = field(default_factory=list)

    def text(self) -> str:
        head = ICONS.get(self.kind, "")
        lines = [f"{head} nightscore {self.job} {self.ds or ''} [{self.level}]: {self.summary}".replace("  ", " ").strip()]
        lines += [
            f"- {c['what']}: {c['value']} ({'above' if c.get('above', True) else 'below'} {c['level']} {c['threshold']})"
            for c in self.crossed
        ]
        if self.detail:
            lines.append(self.detail)
        ids = [f"run {self.run_id}" if self.run_id else "", f"Airflow run {self.airflow_run_id}" if self.airflow_run_id else ""]
        if any(ids):
            lines.append(", ".join(i for i in ids if i))
        lines += [f"{name}: {url}" for name, url in self.links.items()]
        return "\n".join(lines)


def crossing(what: str, value: Any, limits: Any, level: str) -> dict[str, Any]:
    """One line of an alert's ``crossed``: ``what`` at ``value`` reached its ``level`` (``limits``: a spec's
    ``{warn, alert}`` pair, or the threshold itself)."""
    threshold = getattr(limits, level) if hasattr(limits, level) else limits
    return {"what": what, "value": value, "threshold": threshold, "level": level}


@dataclass
class Routed:
    """What :func:`route` did with an alert: where it went, or why it was held back."""

    sent_to: list[str]
    held_back: str | None = None


def route(eng: Any, alerts: Alerts, alert: Alert, *, streak: int | None = None) -> Routed:
    """Record ``alert`` in ``alert_log`` and send it to the job's channels unless a rule holds it back.

    ``streak`` (drift): how many published days in a row, up to this one, reached the alert's level. With no
    database (``eng`` None, or it fails) the alert is sent as :func:`send` would, unrecorded: an alert is
    never lost because the ledger is down."""
    from pipeline import db

    rule = alerts.rule(alert.kind)
    held: str | None = None
    if LEVELS.index(alert.level) < LEVELS.index(rule.min_level):
        held = f"below min_level {rule.min_level}"
    elif alert.kind == "drift" and rule.consecutive_days > 1 and (streak or 1) < rule.consecutive_days:
        held = f"{streak or 1} of {rule.consecutive_days} days in a row"
    if eng is None:
        return Routed([] if held else send(alerts, alert), held)
    sent: list[str] | None = None
    try:
        with eng.begin() as conn:
            params = {"job": alert.job, "kind": alert.kind}
            conn.execute(db.query("lock_alerts"), params)  # two runs of the job at once decide one after the other
            if held is None and conn.execute(db.query("alert_sent_for_day"), {**params, "ds": alert.ds, "level": alert.level}).scalar():
                held = "already sent for this day"
            if held is None and rule.cooldown_delta():
                last = conn.execute(db.query("last_alert_sent"), params).mappings().first()
                if last is not None:
                    from datetime import UTC, datetime

                    if datetime.now(UTC) - last["created_at"] < rule.cooldown_delta():
                        held = f"cooldown {rule.cooldown} (the last one: {last['created_at']:%Y-%m-%d %H:%M} UTC, day {last['ds']})"
            sent = [] if held else send(alerts, alert)
            detail = {"crossed": alert.crossed, "detail": alert.detail, "run_id": alert.run_id, "links": alert.links}
            conn.execute(
                db.query("insert_alert"),
                {
                    **params,
                    "ds": alert.ds,
                    "level": alert.level,
                    "summary": alert.summary,
                    "detail": json.dumps(detail, default=str),
                    "sent_to": sent,
                    "held_back": held,
                },
            )
    except Exception as exc:  # the ledger is down or not migrated: better twice than never
        if sent is not None or held is not None:
            return Routed(sent or [], held)
        log.warning("alert for %s %s not recorded (%s); sent without the rules' memory", alert.job, alert.ds, first_line(exc))
        return Routed(send(alerts, alert))
    if held:
        log.info("alert for %s %s (%s, %s) held back: %s", alert.job, alert.ds, alert.kind, alert.level, held)
    return Routed(sent, held)


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
