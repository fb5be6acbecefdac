"""nightscore under load (``make load``; not part of ``make test``): several jobs backfilling a month at once
while applications read all the while, then checks that nothing was lost, doubled or seen half-written.

What it runs, on the embedded PostgreSQL or the one ``NIGHTSCORE_DATABASE_URL`` names (its own database,
``nightscore_load``), with its own home under ``.nightscore/load``:

* the demo data for the month and the four weeks before it, and the demo jobs' models trained on those weeks;
* ``--jobs`` jobs (the three demo jobs, one of each model kind, then copies of churn) each backfilling
  ``--days`` days at once: with ``--mode cli`` (the default) each job by its own ``nightscore backfill``
  process, exactly as a person runs it; with ``--mode airflow`` on the Celery deployment the system test
  runs (:mod:`tools.airflow_celery`: api-server, scheduler, dag-processor and ``--workers`` Celery workers of
  ``--concurrency`` tasks each, broker on the same PostgreSQL server), each job's backfill created through
  Airflow's REST API (``POST /api/v2/backfills``), as the UI's backfill form does; ``--mode both`` runs one
  then the other, each on a fresh database;
* ``--readers`` reader sessions in a loop, as the ``nightscore_reader`` role: a random published day's rows
  counted and checked against the ledger in one snapshot (a day is all of one run's rows or none), and a
  lookup of one entity in ``predictions_latest``; every query's latency is kept. Each reader pauses
  ``--reader-pause-ms`` (100, drawn between half and one and a half times that) between its rounds, as an
  application does between requests: 16 readers then run about 250 queries a second. With 0 they loop
  without a pause, and on 2 cores their sessions took 1.8 of the cores, leaving the backfills the rest.

It reports days per minute, the readers' latency (p50, p99, max) beside the publish lock timeout, the longest
lock wait seen in ``pg_stat_activity``, and checks at the end: every day published exactly once, every ledger
row truthful, no reader ever saw a partial day, and no leak across the month (the memory of each backfill
process, or the RSS of each Celery worker's long-lived processes, at each quarter of the month: still growing
over its second half is a leak; the database's connections before and after). Under Airflow, every backfill run
must also end in success.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import threading
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DB_NAME = "nightscore_load"
DEMO = ("churn", "basket_value", "plan_choice")


def load_settings_for(home: Path) -> tuple[Any, str]:
    """A fresh database ``nightscore_load`` on the given or the embedded server, and a fresh artifact folder;
    the settings, and the server's URL."""
    from pipeline import db
    from pipeline.config import load_settings

    base = load_settings()
    server = base.database_url or db.start_embedded(base.home)
    db.drop_database(server, DB_NAME)
    shutil.rmtree(home / "artifacts", ignore_errors=True)
    settings = base.with_overrides(
        database_url=db.ensure_database(server, DB_NAME), artifact_uri=str(home / "artifacts"), jobs_dir=home / "jobs", home=home
    )
    return settings, server


def write_jobs(jobs: Path, n: int) -> list[str]:
    """The demo jobs, then copies of churn (churn_2, churn_3, ...) up to ``n`` jobs."""
    import yaml

    if jobs.exists():
        shutil.rmtree(jobs)
    shutil.copytree(ROOT / "dags" / "jobs", jobs)
    names = list(DEMO[:n])
    raw = yaml.safe_load((jobs / "churn.yml").read_text())
    for i in range(2, n - len(DEMO) + 2):
        name = f"churn_{i}"
        (jobs / f"{name}.yml").write_text(yaml.safe_dump({**raw, "name": name}))
        names.append(name)
    return names[:n]


def env_for(settings: Any) -> dict[str, str]:
    return {
        **os.environ,
        "NIGHTSCORE_HOME": str(settings.home),
        "NIGHTSCORE_DATABASE_URL": settings.database_url,
        "NIGHTSCORE_ARTIFACT_URI": settings.artifact_uri,
        "NIGHTSCORE_JOBS_DIR": str(settings.jobs_dir),
    }


def prepare(settings: Any, jobs: list[str], first: date, last: date, customers: int) -> None:
    from pipeline import registry
    from pipeline.demo import load_demo_data
    from pipeline.jobs import load_job
    from pipeline.quickstart import initialize
    from pipeline.train import train_model

    initialize(settings)
    t0 = time.perf_counter()
    load_demo_data(settings, first - timedelta(days=28), last, customers)
    print(f"  demo data {first - timedelta(days=28)}..{last}, {customers:,} customers a day ({time.perf_counter() - t0:.0f} s)", flush=True)
    from pipeline import db

    eng = db.ready_engine(settings)
    for name in jobs:
        spec = load_job(settings.jobs_dir, name)
        if registry.aliases(eng, spec.model.name).get((spec.model.name, spec.model.alias)):
            continue
        res = train_model(settings, spec, end=first - timedelta(days=1), promote="always", allow_immature=True)
        print(f"  trained {res.model_name} v{res.version} for {name}", flush=True)


class Readers:
    """``count`` reader sessions as nightscore_reader, each in a loop until stopped."""

    def __init__(self, url: str, jobs: list[str], days: list[date], count: int, pause: float = 0.1) -> None:
        self.url, self.jobs, self.days, self.count, self.pause = url, jobs, days, count, pause
        self.latencies: list[float] = []
        self.violations: list[str] = []
        self.checked_days = 0
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._loop, args=(i,), daemon=True) for i in range(count)]
        self._lock = threading.Lock()
        self.slowest: dict[str, Any] | None = None  # the slowest query: how long, which, when (UTC)
        self.role = "nightscore_reader"
        self._pending: list[tuple[str, date, str, int]] = []  # (job, day, run, rows) seen, checked against the ledger at the end

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()

    def _loop(self, i: int) -> None:
        import psycopg2

        rng = random.Random(i)
        conn = psycopg2.connect(self.url, application_name=f"nightscore-load-reader-{i}")
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        try:
            try:  # as applications read: the reader role (a login that may not take it reads as itself)
                with conn.cursor() as cur:
                    cur.execute("SET ROLE nightscore_reader")
                conn.commit()
            except Exception:
                conn.rollback()
                self.role = "the login's own"
            while not self.stop.wait(self.pause * rng.uniform(0.5, 1.5) if self.pause else 0):  # paused, a little at random
                job, day = rng.choice(self.jobs), rng.choice(self.days)
                try:
                    with conn.cursor() as cur:
                        t0 = time.perf_counter()
                        cur.execute(
                            "SELECT count(*), count(DISTINCT run_id), min(run_id::text) FROM predictions WHERE job = %s AND ds = %s",
                            (job, day),
                        )
                        rows, runs, run_id = cur.fetchone()
                        took = time.perf_counter() - t0
                        # (the reader role may not read scoring_runs: each day seen is checked against the
                        # ledger at the end, by its run id: a day is all of one run's rows or none)
                        t1 = time.perf_counter()
                        cur.execute(
                            "SELECT entity_id FROM predictions_latest WHERE job = %s AND entity_id = %s", (job, str(rng.randint(1, 20_000)))
                        )
                        cur.fetchall()
                        took2 = time.perf_counter() - t1
                    conn.commit()
                except Exception as exc:  # a reader's error is a finding, not a crash
                    conn.rollback()
                    with self._lock:
                        self.errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
                    continue
                with self._lock:
                    self.latencies += [took, took2]
                    slow, which = max((took, "the day's count"), (took2, "a predictions_latest lookup"))
                    if self.slowest is None or slow * 1000 > self.slowest["ms"]:
                        at = time.strftime("%H:%M:%S", time.gmtime(time.time() - slow))
                        self.slowest = {"ms": round(slow * 1000, 1), "query": f"{which} ({job} {day})", "at": at}
                    if rows:
                        self.checked_days += 1
                        if runs != 1:
                            self.violations.append(f"{job} {day}: rows of {runs} runs at once")
                        else:
                            self._pending.append((job, day, run_id, rows))
        finally:
            conn.close()


def ledger_rows(eng: Any, run_ids: list[str]) -> dict[str, int]:
    import sqlalchemy as sa

    if not run_ids:
        return {}
    with eng.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT run_id::text AS r, rows_published FROM scoring_runs WHERE run_id = ANY(CAST(:ids AS uuid[]))"), {"ids": run_ids}
        ).all()
    return {r.r: r.rows_published for r in rows}


def watch_locks(url: str, stop: threading.Event, seen: dict[str, Any]) -> None:
    """The longest wait on a lock in pg_stat_activity, sampled every 50 ms, with who waited (application,
    statement) and who held the lock: the analysis a lock wait needs."""
    import psycopg2

    conn = psycopg2.connect(url, application_name="nightscore-load-watch")
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            while not stop.is_set():
                cur.execute(  # the count on every look, the oldest lock waiter (if any) beside it
                    "SELECT (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()), "
                    "  extract(epoch FROM now() - w.query_start), w.application_name, left(w.query, 120), "
                    "  (SELECT string_agg(coalesce(nullif(b.application_name, ''), b.usename::text) || ': ' || left(b.query, 80), ' | ') "
                    "     FROM pg_stat_activity b WHERE b.pid = ANY(pg_blocking_pids(w.pid))) "
                    "FROM (SELECT 1) AS one LEFT JOIN LATERAL (SELECT * FROM pg_stat_activity "
                    "  WHERE datname = current_database() AND wait_event_type = 'Lock' ORDER BY query_start LIMIT 1) AS w ON true"
                )
                conns, wait, app, query, blockers = cur.fetchone()
                if wait is not None and float(wait) > seen["max_lock_wait_s"]:
                    seen["max_lock_wait_s"] = float(wait)
                    seen["max_lock_wait"] = {"seconds": round(float(wait), 3), "waiter": app or "", "query": " ".join(query.split()), "held_by": blockers or ""}
                seen["max_connections"] = max(seen["max_connections"], int(conns))
                time.sleep(0.05)
    finally:
        conn.close()


def connections(eng: Any) -> int:
    import sqlalchemy as sa

    with eng.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")).scalar()) - 1


def rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def group_memory(pgid: int) -> dict[int, tuple[float, float]]:
    """(PSS, RSS) in MB of every process in the process group ``pgid``: a Celery worker and its pool, whose forks
    share most of their pages. PSS counts a shared page once in all; RSS counts it in each process."""
    out: dict[int, tuple[float, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": state ppid pgrp ...
            if int(fields[2]) != pgid:
                continue
            kb = {k: int(v.split()[0]) for k, _, v in (line.partition(":") for line in (entry / "smaps_rollup").read_text().splitlines()[1:])}
            out[int(entry.name)] = (kb["Pss"] / 1024, kb["Rss"] / 1024)
        except (OSError, ValueError, KeyError):
            continue
    return out


def memory_growth(who: str, samples: list[float]) -> tuple[dict[str, Any], str | None]:
    """The memory at each quarter of the month (the first after a week: imports, the model and the first days'
    buffers in place), and a problem if it still grew over the month's second half: a leak grows all month,
    while a forked pool's pages, written to one by one (copy-on-write), stop growing once each has been."""
    q = [statistics.median(samples[max(0, i * len(samples) // 4 - 1) : i * len(samples) // 4 + 2]) for i in (1, 2, 3)]
    q.append(statistics.median(samples[-3:]))
    g: dict[str, Any] = {"quarters_mb": [round(x, 1) for x in q], "early_mb": round(q[0], 1), "late_mb": round(q[-1], 1), "ratio": round(q[-1] / q[0], 3)}
    mid, late = q[1], q[-1]
    if late > mid * 1.10 and late - mid > 25:
        return g, f"{who}: memory still grew over the month's second half, {mid:.0f} MB to {late:.0f} MB (a leak?)"
    return g, None


def run_cli(
    settings: Any, jobs: list[str], first: date, last: date, home: Path
) -> tuple[float, list[str], dict[str, list[float]], dict[str, list[float]]]:
    """Each job's month by its own ``nightscore backfill`` process, all at once. Returns the wall seconds, the
    problems (a process that failed), each process's RSS samples and no PSS samples (the processes share nothing)."""
    env = env_for(settings)
    t0 = time.perf_counter()
    procs = {
        job: subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli", "backfill", "--job", job, "--start", first.isoformat(), "--end", last.isoformat()],
            env=env,
            stdout=open(home / f"backfill-{job}.log", "w"),
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        for job in jobs
    }
    rss: dict[str, list[float]] = {f"backfill {job}": [] for job in jobs}
    while any(p.poll() is None for p in procs.values()):
        for job, p in procs.items():
            mb = rss_mb(p.pid) if p.poll() is None else None
            if mb is not None:
                rss[f"backfill {job}"].append(mb)
        time.sleep(1.0)
    wall = time.perf_counter() - t0
    problems = [f"backfill of {job} exited {p.returncode} (see {home}/backfill-{job}.log)" for job, p in procs.items() if p.returncode]
    return wall, problems, rss, {}


def run_airflow(
    settings: Any, server: str, jobs: list[str], first: date, last: date, home: Path, workers: int, concurrency: int, active: int
) -> tuple[float, list[str], dict[str, list[float]], dict[str, list[float]]]:
    """Each job's month as an Airflow backfill (REST, as the UI's form), all at once, on the Celery deployment.
    Returns the wall seconds from the first backfill created to the last run ended, the problems (a run that
    did not succeed) and, per worker, the RSS and the PSS of its processes that lived through the whole month."""
    from tools.airflow_celery import celery_deployment, connection_env, tail

    env = {
        **connection_env(settings),
        "NIGHTSCORE_JOBS_DIR": str(settings.jobs_dir),
        # Airflow's default, as in the compose stack (the system test's 5 s re-parses every DAG file 6x as often)
        "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "30",
    }
    names = tuple(f"w{i + 1}" for i in range(workers))
    with celery_deployment(home / "celery", server, env, workers=names, concurrency=concurrency, wait_dags=tuple(f"score_{j}" for j in jobs)) as dep:
        api = dep.api
        print(f"  Airflow (CeleryExecutor) up at {api.url}: {workers} workers x {concurrency} tasks; log {dep.log_path}", flush=True)
        for job in jobs:  # a backfill's runs stay queued on a paused DAG
            status, body = api.call("PATCH", f"/api/v2/dags/score_{job}", {"is_paused": False})
            assert status == 200, body
        t0 = time.perf_counter()
        for job in jobs:
            status, body = api.call(
                "POST",
                "/api/v2/backfills",
                {"dag_id": f"score_{job}", "from_date": f"{first}T00:00:00Z", "to_date": f"{last}T00:00:00Z", "max_active_runs": active},
            )
            if status != 200:
                raise SystemExit(f"Airflow refused the backfill of score_{job}: {status} {body}")
        pgids = {name: proc.pid for name, proc in dep.workers.items()}  # each worker leads its own process group
        samples: list[dict[str, dict[int, tuple[float, float]]]] = []
        want = len(jobs) * ((last - first).days + 1)
        states: dict[str, str] = {}
        deadline = time.monotonic() + 4 * 3600
        while True:
            states = {}
            ends: list[str] = []
            for job in jobs:
                status, listing = api.call("GET", f"/api/v2/dags/score_{job}/dagRuns?run_type=backfill&limit=100")
                assert status == 200, listing
                states.update({f"{job} {r['logical_date'][:10]}": r["state"] for r in listing["dag_runs"]})
                ends += [r["end_date"] for r in listing["dag_runs"] if r.get("end_date")]
            samples.append({name: group_memory(pgid) for name, pgid in pgids.items()})
            if len(states) == want and all(v in ("success", "failed") for v in states.values()):
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"the backfills did not end in 4 hours: {sorted(set(states.values()))}\n{tail(dep.log_path)}")
            # every 10 s: each listing costs the api-server a second of CPU under this load, and it serves the tasks too
            time.sleep(10.0)
        # to the last run's end as Airflow recorded it, not to this loop's next look
        wall = time.perf_counter() - t0 - max(0.0, time.time() - max(datetime.fromisoformat(e.replace("Z", "+00:00")).timestamp() for e in ends))
        problems = [f"Airflow run of {k} ended {v} (see {dep.log_path})" for k, v in sorted(states.items()) if v != "success"]
    # the processes of each worker that lived from the first sample to the last (the worker and its pool): RSS and PSS summed
    rss: dict[str, list[float]] = {}
    pss: dict[str, list[float]] = {}
    for name in pgids:
        lasting = set(samples[0][name]) & set(samples[-1][name])
        whole = [s[name] for s in samples if lasting <= set(s[name])]
        pss[f"worker {name}"] = [sum(mb[0] for pid, mb in s.items() if pid in lasting) for s in whole]
        rss[f"worker {name}"] = [sum(mb[1] for pid, mb in s.items() if pid in lasting) for s in whole]
    return wall, problems, rss, pss


def run_load(args: argparse.Namespace, mode: str) -> dict[str, Any]:
    import sqlalchemy as sa

    from pipeline import db
    from pipeline.schedule import default_day

    home = (args.home / mode).resolve()
    home.mkdir(parents=True, exist_ok=True)
    settings, server = load_settings_for(home)
    jobs = write_jobs(settings.jobs_dir, args.jobs)
    # under Airflow the unpaused DAGs also start their latest scheduled day: the month ends the day before it
    last = default_day("UTC") - timedelta(days=1 if mode == "cli" else 2)
    first = last - timedelta(days=args.days - 1)
    days = [first + timedelta(days=i) for i in range(args.days)]
    how = "nightscore backfill processes" if mode == "cli" else f"Airflow backfills on {args.workers} Celery workers"
    print(f"\nnightscore load ({mode}): {len(jobs)} jobs ({', '.join(jobs)}) x {args.days} days ({first}..{last}) at once as {how}, "
          f"{args.readers} readers; {os.cpu_count()} cores; database {db.safe_url(settings.database_url)}", flush=True)  # fmt: skip
    prepare(settings, jobs, first, default_day("UTC"), args.customers)
    eng = db.engine(settings)
    conns_before = connections(eng)

    readers = Readers(settings.database_url, jobs, days, args.readers, args.reader_pause_ms / 1000)
    stop_watch = threading.Event()
    seen: dict[str, Any] = {"max_lock_wait_s": 0.0, "max_connections": 0}
    watcher = threading.Thread(target=watch_locks, args=(settings.database_url, stop_watch, seen), daemon=True)
    watcher.start()
    readers.start()
    try:
        if mode == "cli":
            wall, problems, rss, pss = run_cli(settings, jobs, first, last, home)
        else:
            wall, problems, rss, pss = run_airflow(settings, server, jobs, first, last, home, args.workers, args.concurrency, args.active_runs)
        time.sleep(1.0)  # the readers see the finished month for a moment
    finally:
        readers.finish()
        stop_watch.set()
        watcher.join()

    # the readers' (job, day, run) sightings against the ledger: each the run's whole day
    published = ledger_rows(eng, sorted({r for _, _, r, _ in readers._pending}))
    for job, day, run_id, rows in readers._pending:
        if published.get(run_id) != rows:
            readers.violations.append(f"{job} {day}: saw {rows} rows of run {run_id[:8]}, which published {published.get(run_id)}")

    with eng.connect() as conn:
        for job in jobs:
            parts = conn.execute(
                sa.text(
                    "SELECT ds, count(*) AS n, count(DISTINCT run_id) AS runs, min(run_id::text) AS run FROM predictions WHERE job = :j AND ds BETWEEN :a AND :b GROUP BY ds"
                ),
                {"j": job, "a": first, "b": last},
            ).all()
            ledger = conn.execute(
                sa.text(
                    "SELECT ds, status, run_id::text AS run, rows_published, published_at FROM scoring_runs WHERE job = :j AND ds BETWEEN :a AND :b"
                ),
                {"j": job, "a": first, "b": last},
            ).all()
            by_day = {p.ds: p for p in parts}
            missing = [d for d in days if d not in by_day]
            if missing:
                problems.append(f"{job}: {len(missing)} day(s) not published: {', '.join(map(str, missing[:5]))}")
            for p in parts:
                if p.runs != 1:
                    problems.append(f"{job} {p.ds}: rows of {p.runs} runs")
            runs_of: dict[date, list[Any]] = {}
            for r in ledger:
                runs_of.setdefault(r.ds, []).append(r)
            for d in days:
                rs = runs_of.get(d, [])
                ok = [r for r in rs if r.published_at is not None]
                if len(ok) != 1:
                    problems.append(f"{job} {d}: {len(ok)} published runs in the ledger (want 1)")
                    continue
                r = ok[0]
                if r.status != "succeeded":
                    problems.append(f"{job} {d}: run {r.run[:8]} says {r.status}")
                if d in by_day and (by_day[d].run != r.run or by_day[d].n != r.rows_published):
                    problems.append(
                        f"{job} {d}: predictions hold {by_day[d].n} rows of {by_day[d].run[:8]}; the ledger says {r.rows_published} of {r.run[:8]}"
                    )
                if any(x.status == "running" for x in rs):
                    problems.append(f"{job} {d}: a run still says running")
    time.sleep(2.0)
    conns_after = connections(eng)
    if conns_after > conns_before:
        problems.append(
            f"{conns_after - conns_before} more database connection(s) after the month than before ({conns_before} → {conns_after})"
        )
    growth = {}
    for who, samples in rss.items():
        if len(samples) < 8:
            continue
        growth[who], problem = memory_growth(who, samples)
        if who in pss:
            # a Celery worker is judged on its long-lived processes' RSS. Their PSS is shown beside it, but it rises
            # and falls with the forked tasks alive at each look (a page shared with a task counts half), highest
            # when none is: at the month's end it grew 1.38x while the same processes' RSS stayed within 1 MB.
            growth[who]["pss_quarters_mb"] = memory_growth(who, pss[who])[0]["quarters_mb"]
        if problem:
            problems.append(problem)
    problems += readers.violations[:20]
    lat = sorted(readers.latencies)
    pct = (lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000) if lat else (lambda q: float("nan"))
    report = {
        "mode": mode,
        "date": date.today().isoformat(),
        "cores": os.cpu_count(),
        "jobs": jobs,
        "days": args.days,
        "customers": args.customers,
        "readers": args.readers,
        "reader_pause_ms": args.reader_pause_ms,
        **({"celery_workers": args.workers, "worker_concurrency": args.concurrency, "max_active_runs": args.active_runs} if mode == "airflow" else {}),
        "wall_seconds": round(wall, 1),
        "days_per_minute": round(len(jobs) * args.days / (wall / 60), 2),
        "reader_queries": len(lat),
        "reader_days_checked": readers.checked_days,
        "reader_errors": readers.errors[:10],
        "reader_latency_ms": {"p50": round(pct(0.50), 2), "p99": round(pct(0.99), 2), "max": round(lat[-1] * 1000, 2) if lat else None},
        "publish_lock_timeout_ms": settings.publish_lock_timeout_ms,
        "max_lock_wait_s": round(seen["max_lock_wait_s"], 3),
        "max_lock_wait": seen.get("max_lock_wait"),
        "slowest_reader_query": readers.slowest,
        "max_connections": seen["max_connections"],
        "connections_before_after": [conns_before, conns_after],
        "rss": growth,
        "problems": problems,
    }
    r = report
    print(f"\n{mode}: {len(jobs)} jobs x {args.days} days in {wall / 60:.1f} min: {r['days_per_minute']:.1f} days/min")
    print(f"readers: {r['reader_queries']:,} queries, {r['reader_days_checked']:,} published days checked against the ledger; "
          f"latency p50 {r['reader_latency_ms']['p50']:.1f} ms, p99 {r['reader_latency_ms']['p99']:.1f} ms, max {r['reader_latency_ms']['max']:.1f} ms "
          f"(publish lock timeout {settings.publish_lock_timeout_ms} ms); errors: {len(readers.errors)}")  # fmt: skip
    print(f"longest lock wait seen: {r['max_lock_wait_s'] * 1000:.0f} ms; connections {conns_before} before, {conns_after} after, "
          f"{seen['max_connections']} at most")  # fmt: skip
    if r["max_lock_wait"]:
        w = r["max_lock_wait"]
        print(f"  the longest waiter: {w['waiter'] or '(no application name)'}: {w['query']}\n  held by: {w['held_by'] or '(gone)'}")
    if readers.slowest:
        print(f"  the slowest reader query: {readers.slowest['ms']:.0f} ms, {readers.slowest['query']}, {readers.slowest['at']}")
    for who, g in growth.items():
        quarters = " / ".join(f"{x:.0f}" for x in g["quarters_mb"])
        also = f" (PSS {' / '.join(f'{x:.0f}' for x in g['pss_quarters_mb'])} MB)" if "pss_quarters_mb" in g else ""
        print(f"  {who}: RSS a week in / mid-month / three weeks in / at the end {quarters} MB ({g['ratio']:.2f}x){also}")
    r["targets"] = [
        (r["reader_latency_ms"]["p99"] < 100, f"readers' p99 {r['reader_latency_ms']['p99']:.1f} ms (target < 100 ms)"),
        (
            (r["reader_latency_ms"]["max"] or 0) < settings.publish_lock_timeout_ms,
            f"readers' max {r['reader_latency_ms']['max']:.1f} ms (target < the publish lock timeout, {settings.publish_lock_timeout_ms} ms)",
        ),
        (not problems, "nothing lost, doubled, half-seen or leaked" if not problems else f"{len(problems)} problem(s)"),
    ]
    print("targets")
    for ok, text in r["targets"]:
        print(f"  [{'ok' if ok else 'MISSED'}] {text}")
    for p in problems[:30]:
        print(f"  problem: {p}")
    return report


def main() -> int:
    ap = argparse.ArgumentParser(description="nightscore under load (make load)")
    ap.add_argument("--mode", choices=("cli", "airflow", "both"), default="cli")
    ap.add_argument("--jobs", type=int, default=4)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--readers", type=int, default=16)
    ap.add_argument(
        "--reader-pause-ms",
        type=float,
        default=100.0,
        help="each reader's pause between its rounds, as an application's between requests (0: a tight loop, which "
        "on 2 cores took 1.8 of them for the readers alone)",
    )
    ap.add_argument("--customers", type=int, default=20_000)
    ap.add_argument("--workers", type=int, default=2, help="Celery workers (--mode airflow)")
    ap.add_argument("--concurrency", type=int, default=2, help="tasks at a time per Celery worker (--mode airflow)")
    ap.add_argument("--active-runs", type=int, default=2, help="max_active_runs of each backfill (--mode airflow)")
    ap.add_argument("--home", type=Path, default=ROOT / ".nightscore" / "load")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    modes = ["cli", "airflow"] if args.mode == "both" else [args.mode]
    reports = [run_load(args, mode) for mode in modes]
    if args.json:
        args.json.write_text(json.dumps(reports[0] if len(reports) == 1 else {"runs": reports}, indent=2, default=str))
    return 0 if all(ok for r in reports for ok, _ in r["targets"]) else 1


if __name__ == "__main__":
    sys.exit(main())
