"""Signals a team acts on, end to end against real servers: an older day's evaluation alert shows in the
exported metrics and fires the README's rule; a drifted week sends one message (webhook and email), a drift
of one day under ``consecutive_days: 2`` none; training ends its window where the labels have matured."""

from __future__ import annotations

import shutil
import socket
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from typer.testing import CliRunner

from pipeline import db, metrics
from pipeline.cli import app
from pipeline.config import PROJECT_ROOT
from pipeline.errors import NightscoreError
from pipeline.jobs import load_job
from pipeline.run import score_partition
from pipeline.train import train_model
from tests.conftest import DAY, flip_outcomes, shift_day
from tests.integration.test_cli import _env
from tests.promrules import fires, readme_rules, samples

pytestmark = pytest.mark.integration
runner = CliRunner()
JOBS = PROJECT_ROOT / "dags" / "jobs"
RULES = readme_rules(PROJECT_ROOT / "docs" / "metrics.md")


def _midnight(day) -> float:
    return datetime.combine(day, time(0), tzinfo=UTC).timestamp()


def _job(tmp_path: Path, name: str, alerts: dict) -> Path:
    jobs = tmp_path / "jobs"
    if not jobs.exists():
        shutil.copytree(JOBS, jobs)
    raw = yaml.safe_load((JOBS / "churn.yml").read_text())
    raw.update(name=name, alerts=alerts)
    (jobs / f"{name}.yml").write_text(yaml.safe_dump(raw))
    return jobs


class _Smtp:
    def __init__(self) -> None:
        from aiosmtpd.controller import Controller
        from aiosmtpd.handlers import Message

        self.got: list = []
        got = self.got

        class Keep(Message):
            def handle_message(self, message) -> None:
                got.append(message)

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.server = Controller(Keep(), hostname="127.0.0.1", port=self.port)
        self.server.start()


def test_an_older_days_evaluation_alert_shows_in_the_metrics_and_fires_the_readme_rule(local_settings):
    s = local_settings
    for day in (DAY, DAY + timedelta(days=1)):  # the newer day is published after the one evaluated
        score_partition(s, "churn", day)
    path = metrics.textfile_path(s, "churn")
    before = path.read_text()
    now = datetime.now(UTC).timestamp()
    assert not fires(RULES["NightscorePerformance"], before, now=now) and not fires(RULES["NightscoreAlertRaised"], before, now=now)
    assert not fires(RULES["NightscoreRunFailed"], before, now=now) and not fires(RULES["NightscoreDrift"], before, now=now)
    flip_outcomes(s, DAY)  # what drove churn changed after DAY was scored
    res = runner.invoke(app, ["evaluate", "--job", "churn", "--ds", DAY.isoformat()], env=_env(s))
    assert res.exit_code == 0 and "alert" in res.output, res.output
    after = path.read_text()  # exported by the CLI's evaluate itself
    got = {(n, tuple(sorted(lab.items()))): v for n, lab, v in samples(after)}
    job = (("scoring_job", "churn"),)
    assert got[("nightscore_evaluation_level", job)] == 2
    assert got[("nightscore_evaluation_day_timestamp_seconds", job)] == _midnight(DAY)  # not the newest published day
    assert got[("nightscore_last_published_day_timestamp_seconds", job)] == _midnight(DAY + timedelta(days=1))
    assert got[("nightscore_alerts_total", (("kind", "performance"), ("level", "alert"), *job))] == 1
    assert got[("nightscore_evaluation_auc", job)] < 0.5 and got[("nightscore_evaluation_auc_drop", job)] > 0.06
    assert got[("nightscore_runs_total", (("scoring_job", "churn"), ("status", "succeeded")))] == 2
    assert got[("nightscore_rows_scored_total", job)] == 6_000
    info = [k for k in got if k[0] == "nightscore_model_info"]
    assert info and dict(info[0][1])["model_version"] == "1" and dict(info[0][1])["kind"] == "binary"
    assert fires(RULES["NightscorePerformance"], after, now=now)
    assert fires(RULES["NightscoreAlertRaised"], after, now=now, before=before)
    assert not fires(RULES["NightscoreNoPublish"], after, now=now) and fires(RULES["NightscoreNoPublish"], after, now=now + 27 * 3600)


def test_a_drifted_week_sends_one_message_and_a_one_day_drift_none(local_settings, tmp_path, monkeypatch):
    from tests.conftest import Webhook

    hook, smtp = Webhook(), _Smtp()
    monkeypatch.setenv("NIGHTSCORE_SMTP_URL", f"smtp://127.0.0.1:{smtp.port}")
    try:
        channels = {"webhook": hook.url, "email": ["ops@example.com"]}
        _job(tmp_path, "churn_weekly", {**channels, "rules": {"drift": {"cooldown": "7d"}}})
        jobs = _job(tmp_path, "churn_twice", {**channels, "rules": {"drift": {"consecutive_days": 2}}})
        s = local_settings.with_overrides(jobs_dir=jobs)
        week = [DAY - timedelta(days=6) + timedelta(days=i) for i in range(7)]
        for day in week:
            shift_day(s, day)
        for day in week:
            score_partition(s, "churn_weekly", day)
        drift = [r["json"] for r in hook.received if r["json"]["nightscore"]["kind"] == "drift"]
        assert len(drift) == 1 and len(smtp.got) == 1, [d["text"] for d in drift]
        first = drift[0]["nightscore"]
        assert first["ds"] == week[0].isoformat() and first["level"] == "alert"
        crossed = {c["what"] for c in first["crossed"]}
        assert {"monthly_spend psi", "plan js"} <= crossed and "tenure_months psi" not in crossed, crossed
        assert "monthly_spend psi" in drift[0]["text"] and "report" in first["links"]
        with db.engine(s).connect() as conn:
            held = conn.execute(sa.text("SELECT held_back FROM alert_log WHERE job = 'churn_weekly' AND kind = 'drift' ORDER BY ds")).scalars().all()
        assert held[0] is None and len(held) == 7 and all(h.startswith("cooldown 7d") for h in held[1:]), held
        # consecutive_days 2: a drift of one day (then a quiet day) says nothing; a second drifted day in a row does
        hook.received.clear()
        quiet = DAY + timedelta(days=1)
        for day in (week[0], quiet):
            score_partition(s, "churn_twice", day)
        assert [r for r in hook.received if r["json"]["nightscore"]["kind"] == "drift"] == []
        score_partition(s, "churn_twice", week[1])  # week[0] and week[1]: two drifted days in a row
        [msg] = [r["json"] for r in hook.received if r["json"]["nightscore"]["kind"] == "drift"]
        assert msg["nightscore"]["ds"] == week[1].isoformat() and "2 days in a row" in msg["text"]
    finally:
        hook.close()
        smtp.server.stop()


def test_training_ends_its_window_where_the_labels_have_matured(local_settings):
    s = local_settings
    spec = load_job(s.jobs_dir, "churn")  # evaluation.mature_days: 30
    now = datetime.combine(DAY + timedelta(days=33), time(12), tzinfo=UTC)  # today is DAY + 33: matured until DAY + 3
    gone = DAY - timedelta(days=2)
    with db.engine(s).begin() as conn:  # an empty day inside the window: reported, not silently absorbed
        conn.execute(sa.text("DELETE FROM demo.customer_activity WHERE ds = :d"), {"d": gone})
    res = train_model(s, spec, promote="never", now=now)
    w = res.window
    assert w["holdout_end"] == DAY + timedelta(days=3) and w["labels_matured_until"] == DAY + timedelta(days=3)
    assert w["empty_days"] == [gone.isoformat()] and w["holdout_days_with_rows"] == 6
    assert res.notes and gone.isoformat() in res.notes[0] and "6 of its 7 days" in res.notes[0]
    with pytest.raises(NightscoreError, match=r"ends 2026-03-20, but labels are complete only 30 day\(s\) after") as err:
        train_model(s, spec, end=DAY + timedelta(days=5), promote="never", now=now)
    assert "--end 2026-03-18" in str(err.value) and "--allow-immature-labels" in str(err.value)
    # the CLI with today's date: yesterday's labels have not matured
    res = runner.invoke(app, ["train", "--job", "churn", "--end", (datetime.now(UTC).date() - timedelta(days=1)).isoformat()], env=_env(s))
    assert res.exit_code == 1 and "have not happened yet" in " ".join(res.output.split()), res.output


def test_the_job_reports_default_window_reaches_back_to_matured_days(local_settings, tmp_path):
    from pipeline.lookback import evaluate, write_report

    s = local_settings
    spec = load_job(s.jobs_dir, "churn")  # mature_days 30
    scored = DAY + timedelta(days=1)
    score_partition(s, "churn", scored)
    evaluate(s, spec, scored, today=scored + timedelta(days=31))
    last = scored + timedelta(days=32)  # 3 days with matured outcomes: scored .. scored + 2
    done = write_report(s, spec, 3, last=last, path=tmp_path / "r.html")
    assert (done.first, done.last) == (scored, last) and done.summary["evaluations"] == 1 and done.summary["days_published"] == 1
    html = done.path.read_text()
    assert 'id="performance"' in html and "<svg" in html.split('id="performance"')[1]
