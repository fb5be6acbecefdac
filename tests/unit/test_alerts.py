"""Alerts to real servers on loopback: a webhook (HTTP) and an SMTP server (aiosmtpd)."""

from __future__ import annotations

import socket

import pytest

from pipeline import alerts
from pipeline.jobs import Alerts
from tests.conftest import Webhook


def _alert() -> alerts.Alert:
    return alerts.Alert(job="churn", ds="2026-11-23", kind="failed", summary="the day failed in validate", detail="column 'plan': ...", run_id="r1")


@pytest.mark.integration
def test_webhook_gets_slack_compatible_json():
    hook = Webhook()
    try:
        assert alerts.send(Alerts(webhook=hook.url), _alert()) == ["webhook"]
        [msg] = hook.received
        assert msg["content_type"] == "application/json"
        assert msg["json"]["text"].startswith(":red_circle: nightscore churn 2026-11-23 [alert]: the day failed in validate")
        assert msg["json"]["nightscore"]["detail"] == "column 'plan': ..."
    finally:
        hook.close()


@pytest.mark.unit
def test_a_webhook_that_cannot_be_reached_is_logged_and_never_raises(caplog):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    assert alerts.send(Alerts(webhook=f"http://127.0.0.1:{port}/hook"), _alert()) == []
    assert "not sent to the webhook: the webhook could not be reached" in caplog.text


@pytest.mark.unit
def test_an_unset_webhook_variable_sends_nothing_and_says_so(monkeypatch, caplog):
    monkeypatch.delenv("NIGHTSCORE_ALERT_WEBHOOK", raising=False)
    assert alerts.send(Alerts(webhook_env="NIGHTSCORE_ALERT_WEBHOOK"), _alert()) == []
    assert "the webhook URL variable NIGHTSCORE_ALERT_WEBHOOK is not set" in caplog.text


@pytest.mark.integration
def test_email_goes_through_the_smtp_server(monkeypatch):
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message

    got = []

    class Keep(Message):
        def handle_message(self, message) -> None:
            got.append(message)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = Controller(Keep(), hostname="127.0.0.1", port=port)
    server.start()
    try:
        monkeypatch.setenv("NIGHTSCORE_SMTP_URL", f"smtp://127.0.0.1:{port}")
        monkeypatch.setenv("NIGHTSCORE_ALERT_FROM", "nightscore@example.com")
        assert alerts.send(Alerts(email=["ops@example.com", "ds@example.com"]), _alert()) == ["email"]
    finally:
        server.stop()
    [msg] = got
    assert msg["To"] == "ops@example.com, ds@example.com" and msg["From"] == "nightscore@example.com"
    assert msg["Subject"] == "[nightscore] churn 2026-11-23: the day failed in validate"
    assert "column 'plan': ..." in msg.get_payload()


@pytest.mark.unit
def test_a_spec_refuses_a_bad_address_and_a_webhook_that_is_no_url():
    with pytest.raises(ValueError, match="not an email address: ops"):
        Alerts(email=["ops"])
    with pytest.raises(ValueError):
        Alerts(webhook="hooks.slack.com/x")
