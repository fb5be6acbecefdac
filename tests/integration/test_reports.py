"""Reports and metrics on real parts: the run's HTML report beside its artifacts and the job report over
time, opened in Debian's Chromium with the network cut off (a screenshot that is not blank, every plot
drawn); the run metrics as a node-exporter textfile and pushed over HTTP the way a Pushgateway takes them."""

from __future__ import annotations

import http.server
import re
import threading
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote

import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from pipeline import db, metrics
from pipeline.errors import ValidationFailed
from pipeline.evaluate import evaluate_matured
from pipeline.jobs import load_job
from pipeline.report import job_report
from pipeline.run import score_partition
from pipeline.storage import open_store
from tests.conftest import CHROMIUM, DAY, NO_CHROMIUM, shift_day

pytestmark = pytest.mark.integration


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for fam in text_string_to_metric_families(text) for s in fam.samples}


def _open_offline(path, screenshot, width: int = 1100):
    """Open a report in Chromium ``width`` pixels wide with every request but the file itself refused; return
    what the page shows."""
    if CHROMIUM is None:
        pytest.skip(NO_CHROMIUM)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": width, "height": 900})
        asked: list[str] = []
        page.route("**/*", lambda route: (asked.append(route.request.url), route.continue_() if route.request.url.startswith("file:") else route.abort()))
        page.goto(path.as_uri())
        page.screenshot(path=str(screenshot), full_page=True)
        seen = {
            "title": page.title(),
            "asked": asked,
            "svgs": {
                sid: page.locator(f"#{sid} svg").count()
                for sid in ("timings", "score-distribution", "feature-drift", "quarantine", "rows", "drift", "performance", "durations")
            },
            "drawn": page.evaluate("() => [...document.querySelectorAll('svg')].map(s => s.getBoundingClientRect().height > 50 && s.querySelectorAll('path, rect, use').length > 10)"),
            "text": page.inner_text("body"),
            "overflow": page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth"),
            "ticks": page.evaluate("() => [...document.querySelectorAll('#performance svg text')].map(t => t.textContent)"),
        }
        browser.close()
    return seen


def _not_blank(png) -> None:
    from PIL import Image, ImageStat

    image = Image.open(png).convert("L")
    stat = ImageStat.Stat(image)
    assert image.size[1] > 1000 and stat.stddev[0] > 20, (image.size, stat.stddev)  # more than a blank page or a lone header
    assert len(image.getcolors(1 << 16) or []) > 50  # many shades: plots, not a flat fill


@pytest.mark.browser
def test_a_run_writes_its_report_beside_its_artifacts_and_chromium_shows_it(local_settings, tmp_path):
    day = DAY + timedelta(days=1)
    shift_day(local_settings, day)  # drift at the alert level, to be coloured
    with db.engine(local_settings).begin() as conn:  # and a few rows to quarantine
        conn.execute(sa.text("UPDATE demo.customer_activity SET tenure_months = -1 WHERE ds = :d AND customer_id <= 12"), {"d": day})
    jobs = tmp_path / "jobs"
    import shutil

    shutil.copytree(local_settings.jobs_dir, jobs)
    spec_text = (jobs / "churn.yml").read_text().replace("policy: fail", "policy: quarantine\n  max_bad_ratio: 0.01")
    (jobs / "churn.yml").write_text(spec_text)
    settings = local_settings.with_overrides(jobs_dir=jobs)
    state = score_partition(settings, "churn", day)
    store = open_store(settings)
    key = f"{state.prefix}/report.html"
    assert state.report_uri == store.uri(key) and store.exists(key)
    import json

    manifest = json.loads(store.get_bytes(f"{state.prefix}/manifest.json"))
    assert manifest["report_uri"] == state.report_uri
    with store.local_path(key) as path:
        html = path.read_text()
        for loads in ("<script", "<link", "<img", " src=", "@import", "url(http", "url(//"):  # nothing from a CDN, nothing fetched
            assert loads not in html, loads
        seen = _open_offline(path, tmp_path / "run.png")
    _not_blank(tmp_path / "run.png")
    assert seen["asked"] == [path.as_uri()], seen["asked"]
    assert seen["title"].startswith(f"churn {day}")
    assert {k: seen["svgs"][k] for k in ("timings", "score-distribution", "feature-drift", "quarantine")} == {
        "timings": 1, "score-distribution": 1, "feature-drift": 1, "quarantine": 1,
    }  # fmt: skip
    assert seen["drawn"] and all(seen["drawn"]), seen["drawn"]
    text = seen["text"]
    assert "12" in text and "tenure_months" in text and "monthly_spend" in text  # the quarantine reason names the rule's column
    assert "Alert level:" in text and "monthly_spend:psi" in text and "plan:js" in text
    assert "Data Docs" in text and "Run manifest" in text


@pytest.mark.browser
def test_the_job_report_covers_the_days_and_chromium_shows_every_plot(local_settings, tmp_path):
    spec = load_job(local_settings.jobs_dir, "churn")
    days = [DAY + timedelta(days=i) for i in range(3)]
    for d in days:
        score_partition(local_settings, "churn", d)
    evaluate_matured(local_settings, spec, DAY + timedelta(days=60))
    out = tmp_path / "report.html"
    summary = job_report(local_settings, spec, DAY - timedelta(days=2), days[-1], out)
    assert summary == {"days_published": 3, "runs": 3, "evaluations": 3, "path": str(out)}
    for width in (1280, 390):  # a laptop and a phone
        seen = _open_offline(out, tmp_path / f"job-{width}.png", width=width)
        _not_blank(tmp_path / f"job-{width}.png")
        assert seen["asked"] == [out.as_uri()]
        assert {k: seen["svgs"][k] for k in ("rows", "drift", "performance", "durations")} == {"rows": 1, "drift": 1, "performance": 1, "durations": 1}
        assert seen["drawn"] and all(seen["drawn"])
        assert seen["overflow"] <= 0, f"{width} px: the page is {seen['overflow']} px wider than the window"
        for d in days:
            assert str(d) in seen["text"]
        assert "3 of 5 days published" in seen["text"]
        # the performance plot's x axis reads as days of the report's range (not hours, not numbers)
        dates = [t for t in seen["ticks"] if re.fullmatch(r"[A-Z][a-z]{2} \d{2}", t.strip())]
        assert {"Mar 13", "Mar 15", "Mar 17"} <= set(dates), seen["ticks"]


def test_run_metrics_land_in_a_textfile_and_follow_the_ledger(local_settings):
    state = score_partition(local_settings, "churn", DAY)
    path = metrics.textfile_path(local_settings, "churn")
    got = _samples(path.read_text())
    job = (("scoring_job", "churn"),)
    with db.engine(local_settings).connect() as conn:
        published_at = conn.execute(sa.text("SELECT published_at FROM scoring_runs WHERE run_id = CAST(:r AS uuid)"), {"r": state.run_id}).scalar()
    assert got[("nightscore_last_publish_timestamp_seconds", job)] == pytest.approx(published_at.timestamp())
    assert got[("nightscore_last_run_rows", (("outcome", "published"), *job))] == 3_000
    assert got[("nightscore_last_run_status", (("scoring_job", "churn"), ("status", "succeeded")))] == 1
    assert got[("nightscore_last_run_stage_seconds", (("scoring_job", "churn"), ("stage", "score")))] == state.seconds["score"]
    assert got[("nightscore_drift_level", job)] == 0
    assert got[("nightscore_drift_psi", (("feature", "monthly_spend"), *job))] >= 0
    assert got[("nightscore_drift_day_timestamp_seconds", job)] == datetime.combine(DAY, datetime.min.time(), tzinfo=UTC).timestamp()
    # a failed run: its status, and the last publish time still the earlier one (an alert rule on it keeps counting)
    with db.engine(local_settings).begin() as conn:
        conn.execute(sa.text("DELETE FROM demo.customer_activity WHERE ds = :d"), {"d": DAY + timedelta(days=1)})
    with pytest.raises(ValidationFailed, match="no rows"):
        score_partition(local_settings, "churn", DAY + timedelta(days=1))
    got = _samples(path.read_text())
    assert got[("nightscore_last_run_status", (("scoring_job", "churn"), ("status", "failed")))] == 1
    assert got[("nightscore_last_publish_timestamp_seconds", job)] == pytest.approx(published_at.timestamp())
    # after an evaluation: its metrics too
    evaluate_matured(local_settings, load_job(local_settings.jobs_dir, "churn"), DAY + timedelta(days=60))
    metrics.export(local_settings, "churn")
    got = _samples(path.read_text())
    assert 0.6 < got[("nightscore_evaluation_auc", job)] < 1
    assert "# EOF" in metrics.openmetrics(db.engine(local_settings), "churn")


class _Pushgateway:
    """An HTTP server taking pushes at the Pushgateway's address scheme (PUT /metrics/job/<job>/<label>/<value>)."""

    def __init__(self) -> None:
        self.pushes: list[tuple[str, str, str]] = []
        pushes = self.pushes

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_PUT(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                pushes.append((unquote(self.path), self.headers.get("Content-Type") or "", body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_with_a_pushgateway_the_metrics_are_pushed_not_written(local_settings):
    gateway = _Pushgateway()
    try:
        settings = local_settings.with_overrides(pushgateway_url=gateway.url)
        score_partition(settings, "churn", DAY)
        assert not metrics.textfile_path(settings, "churn").exists()
        [(path, content_type, body)] = gateway.pushes
        assert path == "/metrics/job/nightscore/scoring_job/churn"  # the job's own group, replaced whole at each push
        assert content_type.startswith("text/plain")
        got = _samples(body)
        assert got[("nightscore_last_run_rows", (("outcome", "published"), ("scoring_job", "churn")))] == 3_000
    finally:
        gateway.close()
    # a Pushgateway that is down: the run still succeeds, the export is only logged
    state = score_partition(settings, "churn", DAY + timedelta(days=1))
    assert state.counts["published"] == 3_000
