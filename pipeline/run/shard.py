"""One shard of a run, end to end: extract → validate → score → load.

:func:`shard_step` is the unit of work every runner calls (a worker process of the CLI's pool, a mapped
Airflow task): the shard's rows are extracted through its own query while a GX thread validates each batch
as it arrives, the snapshot is scored while validation finishes, the artifacts are stored, and the scores
are COPYed into the run's loading table (replacing what an earlier attempt of the shard loaded). Each step
records itself in ``run_shards`` (and, with one shard, on the run's own row as it goes).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import db, failpoints, registry, runs
from pipeline.config import Settings
from pipeline.errors import NightscoreError
from pipeline.feed import FanOut
from pipeline.jobs import JobSpec, load_job
from pipeline.run.frame import StageContext, shard_stage, shard_workdir
from pipeline.run.state import RunState, ShardState, shard_state
from pipeline.shadow import score_shadows
from pipeline.storage import stream_parquet

if TYPE_CHECKING:  # the stages' modules are imported by the steps that use them
    from pipeline.extract import Extracted
    from pipeline.feed import BatchFeed
    from pipeline.registry import ModelVersion
    from pipeline.score import Scored
    from pipeline.validate import ValidationOutcome

log = logging.getLogger(__name__)


def open_shard(settings: Settings, state: RunState, index: int) -> ShardState:
    """Start (or retry) shard ``index`` of the run in this process: its attempt counted in ``run_shards``."""
    shard = shard_state(state, index)
    shard.attempt = runs.claim_shard(db.ready_engine(settings), state.run_id, index)
    shutil.rmtree(shard_workdir(settings, shard), ignore_errors=True)  # an earlier attempt's leftovers
    return shard


def shard_step(settings: Settings, state: RunState, index: int, *, threads: int | None = None) -> ShardState:
    """Shard ``index`` of the run, end to end: extract its rows (through its own query and stream) while a
    GX thread validates each batch as it arrives, score the snapshot while validation finishes, store the
    artifacts, and load the scores into the run's loading table (replacing what an earlier attempt of this
    shard loaded). ``threads``: the model's and the load's (default: the settings'). Idempotent: a retry of
    the shard alone gives the same rows."""
    if threads is not None:
        settings = settings.with_overrides(threads=threads)
    shard = open_shard(settings, state, index)
    shard = extract_validate(settings, shard, score_meanwhile=True)
    if shard.predictions_uri is None:
        shard = score_shard(settings, shard)
    shard = load_shard(settings, shard)
    score_shadows(settings, state, shard)  # the shadow models on the same rows, after the load: never fails the shard
    return shard


def extract_shard(settings: Settings, shard: ShardState, feed: BatchFeed | FanOut | None = None) -> ShardState:
    from pipeline.extract import extract

    with shard_stage(settings, shard, "extract") as ctx:
        ex = extract(settings, ctx.spec, shard.day, ctx.store, shard.prefix, ctx.workdir, shard=shard.index, shards=shard.shards, feed=feed)
        _record_extract(ctx, shard, ex)
    return shard


def _record_extract(ctx: StageContext, shard: ShardState, ex: Extracted) -> None:
    shard.features_uri, shard.features_sha256 = ex.uri, ex.sha256
    shard.counts["extracted"] = ex.rows
    runs.update_shard(ctx.eng, shard.run_id, shard.index, rows_extracted=ex.rows, features_uri=ex.uri, features_sha256=ex.sha256)
    if shard.shards == 1:  # the run's row mirrors its only shard as it goes
        runs.update(ctx.eng, shard.run_id, rows_extracted=ex.rows)
    if shard.index == 0 and not shard.dry_run and ex.schema is not None:  # the job's typed view, for its key's types
        from pipeline.views import ensure_job_view

        ensure_job_view(ctx.eng, ctx.spec, ex.schema)


def extract_validate(settings: Settings, shard: ShardState, *, score_meanwhile: bool = False) -> ShardState:
    """:func:`extract_shard` then :func:`validate_shard` in one pass.

    Each batch read from the source is written to ``features.parquet`` and handed to a GX thread that
    validates it meanwhile, in runs of ``validate_batch_rows`` as the rows arrive, instead of validation
    reading the file back afterwards. Same files, counts and outcome as the two steps; a failure is
    recorded against the stage it happened in. The validate stage's seconds are what it took after the
    extract (and, with ``score_meanwhile``, the scoring) finished.

    With ``score_meanwhile``, the snapshot is also scored while validation finishes (see
    :func:`_score_early`); ``shard.predictions_uri`` is then set unless that score had to be dropped.
    """
    from concurrent.futures import ThreadPoolExecutor

    from pipeline.feed import BatchFeed

    feed = BatchFeed()
    spec = load_job(settings.jobs_dir, shard.job)
    early: Scored | None = None
    stream: _Streamed | None = None
    streamed: tuple[Scored, int] | None = None
    if score_meanwhile:  # this thread's big imports, done before the GX thread starts importing GX: two threads
        import xgboost  # noqa: F401  # importing modules they share can deadlock on Python's import locks
        from adbc_driver_postgresql import dbapi  # noqa: F401  (the streamed shard's COPY threads connect at once)

        import pipeline.drift  # noqa: F401
        import pipeline.explain  # noqa: F401
        import pipeline.publish  # noqa: F401
        import pipeline.score  # noqa: F401
    gx_span: list[float] = []  # when the GX thread ran: beside the extract, for the run report's timeline
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="nightscore-shard") as pool:
        validating = pool.submit(_validate_feed, spec, feed, settings.validate_batch_rows, shard.shards == 1, gx_span)
        try:
            if score_meanwhile and _can_stream(settings, shard, spec):
                try:
                    stream = _Streamed(settings, shard, spec, pool)
                except Exception as exc:  # (the database, say): the stages one after another say what is wrong
                    log.info(
                        "run %s: not streaming this shard (%s)", shard.run_id, str(exc).strip().splitlines()[0] if str(exc).strip() else exc
                    )
            extract_shard(settings, shard, FanOut(feed, stream.feed) if stream else feed)
        except BaseException:
            feed.abort()
            if stream is not None:
                stream.abort()
            raise
        feed.close()
        started, c_started = time.perf_counter(), time.process_time()
        if stream is not None:
            stream.feed.close()
            streamed = stream.finish()
            shard.reload = streamed is None  # a failed stream may have committed some of its rows
            started = stream.started
        elif score_meanwhile:
            early = _score_early(settings, shard)
        early_cpu = time.process_time() - c_started  # the model's threads, and the GX thread finishing meanwhile
        with shard_stage(settings, shard, "validate") as ctx:
            outcome = validating.result()
            if outcome.rows != shard.counts["extracted"]:  # cannot happen unless a batch went missing
                raise RuntimeError(f"validated {outcome.rows} rows of the {shard.counts['extracted']} extracted")
            _record_validation(ctx, shard, outcome)
    if len(gx_span) == 2:
        shard.spans["validate"] = gx_span
    if streamed is not None:
        scored, loaded = streamed
        if shard.counts.get("quarantined"):  # those rows were scored and COPYed too: again without them
            Path(scored.uri).unlink(missing_ok=True)
            if scored.reasons_uri:
                Path(scored.reasons_uri).unlink(missing_ok=True)
            shard.reload = True
        else:
            with shard_stage(settings, shard, "score", started=started, cpu_before=early_cpu) as ctx:
                _record_score(ctx, shard, scored)
            assert stream is not None
            shard.streamed, shard.counts["loaded"] = True, loaded
            shard.spans["load"] = [round(stream.loader.started, 4), round(stream.loader.ended or time.time(), 4)]
    if early is not None:
        if shard.counts.get("quarantined"):  # those rows were scored too: score again without them
            Path(early.uri).unlink(missing_ok=True)
            if early.reasons_uri:
                Path(early.reasons_uri).unlink(missing_ok=True)
        else:
            with shard_stage(settings, shard, "score", started=started, cpu_before=early_cpu) as ctx:
                _record_score(ctx, shard, early)
    return shard


def _can_stream(settings: Settings, shard: ShardState, spec: JobSpec) -> bool:
    """Whether the shard scores and COPYs its rows while they are read (:class:`_Streamed`): not for a dry run
    (nothing is loaded), nor for a Parquet source in several shards (split by row group, a shard's loaded rows
    are found again by the keys of its predictions file, which a stream writes only as it goes), nor with
    ``NIGHTSCORE_STREAM=0``."""
    return settings.stream and not shard.dry_run and not (spec.source.kind == "parquet" and shard.shards > 1)


class _Streamed:
    """A shard's scoring and loading while its rows are read: the extract hands each batch to a bounded feed;
    a thread scores it (:class:`pipeline.score.Scorer`) and hands the predictions to a
    :class:`pipeline.publish.LoadStream`, whose connections COPY them into the run's loading table. The
    slowest of read, score and COPY sets the pace (the queues hold a few batches each); validation runs on
    its own thread beside them, and its verdict decides afterwards whether what was streamed stands."""

    def __init__(self, settings: Settings, shard: ShardState, spec: JobSpec, pool: Any) -> None:
        from pipeline.feed import BatchFeed
        from pipeline.publish import LoadStream, clear_shard_rows

        self.settings, self.shard, self.spec = settings, shard, spec
        self.feed = BatchFeed()
        self.started, self.c_started = time.perf_counter(), time.process_time()
        ctx = StageContext(settings, shard.job, shard_workdir(settings, shard))
        if shard.attempt > 1:  # what an earlier attempt of the shard loaded goes first
            assert shard.loading_table
            clear_shard_rows(ctx.eng, shard.loading_table, shard.index, shard.shards)
        assert shard.loading_table
        self.loader = LoadStream(settings, shard.loading_table, settings.threads)
        self.scoring = pool.submit(self._score, ctx)

    def _score(self, ctx: StageContext) -> Scored:
        from pipeline.score import Scorer

        scorer: Scorer | None = None
        try:  # whatever fails here (the model that does not fit the spec, say) stops the feed: the extract never waits on it
            mv, booster = _model(ctx, self.shard.model_version)
            scorer = Scorer(
                ctx.spec, self.shard.day, booster, mv, self.shard.run_id, ctx.workdir / "predictions.parquet",
                threads=ctx.settings.threads, batch_rows=ctx.settings.batch_rows, reference=_feature_reference(ctx, mv),
                sink=self.loader.put,
            )  # fmt: skip
            self.feed.schema()
            for i, batch in enumerate(self.feed):
                scorer.add(batch)
                if i == 0:
                    failpoints.reached("streaming")  # a batch scored and on its way to the loading table
        except BaseException:
            if scorer is not None:
                scorer.discard()
            raise
        finally:
            self.feed.stop()
        assert scorer is not None
        return scorer.close()

    def abort(self) -> None:
        self.feed.abort()
        self.loader.abort()

    def finish(self) -> tuple[Scored, int] | None:
        """The scoring's result and the rows COPYed, or None if either failed (then nothing of it is
        committed, and the shard scores and loads again as stages of their own)."""
        try:
            scored = self.scoring.result()
        except BaseException as exc:
            self.loader.abort()
            log.info("run %s: streamed scoring failed (%s); scoring again as its own stage", self.shard.run_id, exc)
            return None
        try:
            loaded = self.loader.close()
        except BaseException as exc:
            log.info("run %s: streamed load failed (%s); loading again as its own stage", self.shard.run_id, exc)
            Path(scored.uri).unlink(missing_ok=True)
            return None
        return scored, (scored.rows if loaded < 0 else loaded)


def _score_early(settings: Settings, shard: ShardState) -> Scored | None:
    """Score the complete snapshot while the GX thread finishes its last rows, into the shard's work folder.

    Validation's tail (its last GX run, the day suite, Data Docs) keeps one core busy, the model's threads
    use the other. At 1,000,000 rows, with the whole million in one GX run after the extract: end to end
    5.0-5.4 s against 5.3-5.8 s with two half runs, one of them during the extract, and 5.1-5.7 s with
    scoring after validation. The file is stored only if validation then passes with nothing quarantined;
    a failed validation removes it with the work folder. Any error here only means scoring runs again,
    as its own stage, after validation."""
    try:
        return _score_snapshot(StageContext(settings, shard.job, shard_workdir(settings, shard)), shard, [])
    except Exception:
        log.info("run %s: scoring during validation failed; scoring again after it", shard.run_id, exc_info=True)
        return None


def _validate_feed(spec: JobSpec, feed: BatchFeed, batch_rows: int, whole_day: bool, span: list[float]) -> ValidationOutcome:
    from pipeline.feed import rebatched
    from pipeline.validate import validate_batches

    span.append(round(time.time(), 4))
    try:
        return validate_batches(spec, feed.schema(), rebatched(feed, batch_rows), whole_day=whole_day)
    finally:
        span.append(round(time.time(), 4))
        feed.stop()


def _record_validation(ctx: StageContext, shard: ShardState, outcome: ValidationOutcome) -> None:
    """Save the result (JSON + Data Docs) and any quarantine, update the shard, raise if it failed."""
    from pipeline.validate import raise_if_failed

    shard.validation_uri = ctx.store.put_bytes(
        f"{shard.prefix}/validation.json", json.dumps(outcome.report(), indent=2, default=str).encode()
    )
    shard.data_docs_uri = ctx.store.put_bytes(f"{shard.prefix}/data_docs/index.html", outcome.html.encode())
    shard.counts["quarantined"] = outcome.rows_quarantined if outcome.passed else 0
    shard.counts["valid"] = outcome.rows - shard.counts["quarantined"] if outcome.passed else 0
    if outcome.passed and outcome.quarantined:
        assert shard.features_uri
        with ctx.store.local_path(ctx.store.key(shard.features_uri)) as path:
            values = _quarantined_values(path, ctx.spec.key_columns, list(outcome.quarantined))
        with ctx.eng.begin() as conn:  # a retried shard replaces its earlier attempt's quarantine
            conn.execute(
                db.query("delete_quarantined_keys"),
                {"r": shard.run_id, "keys": [str(k) for k in outcome.quarantined]},
            )
        runs.save_quarantine(ctx.eng, shard.run_id, shard.job, shard.day, outcome.quarantined, values)
        ctx.store.put_bytes(f"{shard.prefix}/quarantined_keys.json", json.dumps(sorted(map(str, outcome.quarantined))).encode())
        log.warning("run %s (%s): %s", shard.run_id, shard.where, outcome.message)
    summary = {"passed": outcome.passed, "message": outcome.message, "failed_rules": outcome.summary()}
    runs.update_shard(
        ctx.eng,
        shard.run_id,
        shard.index,
        validation_summary={"success": outcome.success, **summary},
        validation_uri=shard.validation_uri,
        data_docs_uri=shard.data_docs_uri,
        rows_valid=shard.counts["valid"],
        rows_quarantined=shard.counts["quarantined"],
    )
    if shard.shards == 1:
        runs.update(
            ctx.eng,
            shard.run_id,
            validation_success=outcome.success,
            validation_summary=summary,
            validation_report_uri=shard.validation_uri,
            data_docs_uri=shard.data_docs_uri,
            rows_valid=shard.counts["valid"],
            rows_quarantined=shard.counts["quarantined"],
        )
    if outcome.rows == 0 and shard.shards == 1:  # no rows at all is not a contract problem: say what it is
        from pipeline.extract import no_rows_error

        raise no_rows_error(ctx.settings, ctx.spec, shard.day)
    raise_if_failed(outcome, ctx.spec, where=f"{shard.where}, report {shard.validation_uri}")


def _quarantined_values(path: Any, columns: list[str], keys: list[Any]) -> dict[Any, list[dict[str, Any]]]:
    """The refused rows themselves, by key (a duplicated key has several; a key of several columns is its
    text key, and each row carries the key's columns by name)."""
    import pyarrow.compute as pc

    from pipeline.keys import key_array, key_column, with_key

    pf = stream_parquet(path)
    wanted = pa.array(keys, type=pf.schema_arrow.field(columns[0]).type if len(columns) == 1 else pa.string())
    name = key_column(columns)
    out: dict[Any, list[dict[str, Any]]] = {}
    for batch in pf.iter_batches(batch_size=250_000):  # one batch in memory at a time
        picked = with_key(batch.filter(pc.is_in(key_array(batch, columns), value_set=wanted)), columns)
        for row in picked.to_pylist():
            out.setdefault(row[name], []).append({k: v for k, v in row.items() if k != name} if len(columns) > 1 else row)
    return out


def _model(ctx: StageContext, model_version: int | None) -> tuple[ModelVersion, Any]:
    """The run's model version and its booster (checksum verified)."""
    assert model_version is not None, "the model is resolved when the run begins"
    mv = registry.get_version(ctx.eng, ctx.spec.model.name, model_version)
    booster = registry.load_booster(ctx.store, mv)
    registry.check_fits(ctx.spec, mv, booster)
    return mv, booster


def _score_snapshot(ctx: StageContext, shard: ShardState, drop_keys: list[Any]) -> Scored:
    """The shard's snapshot, less ``drop_keys``, through its model into the work folder (not stored yet)."""
    from pipeline.score import score

    assert shard.features_uri, "extract must run first"
    mv, booster = _model(ctx, shard.model_version)
    with ctx.store.local_path(ctx.store.key(shard.features_uri)) as path:
        if drop_keys and len(ctx.spec.key_columns) == 1:  # keys were saved as text; match the column's own type
            key_type = pq.ParquetFile(path).schema_arrow.field(ctx.spec.key_columns[0]).type
            drop_keys = pa.array(drop_keys).cast(key_type).to_pylist()
        return score(
            ctx.spec,
            shard.day,
            path,
            booster,
            mv,
            shard.run_id,
            ctx.workdir / "predictions.parquet",
            threads=ctx.settings.threads,
            batch_rows=ctx.settings.batch_rows,
            drop_keys=drop_keys,
            reference=_feature_reference(ctx, mv),
        )


def _feature_reference(ctx: StageContext, mv: ModelVersion) -> dict[str, Any] | None:
    """The model's feature drift reference from its manifest (None for a model trained before there was one)."""
    from pipeline.storage import model_prefix

    try:
        manifest = json.loads(ctx.store.get_bytes(f"{model_prefix(mv.name, mv.version)}/manifest.json"))
    except Exception as exc:
        log.warning("%s v%s: no manifest (%s); feature drift not measured", mv.name, mv.version, str(exc).splitlines()[0])
        return None
    return (manifest.get("reference") or {}).get("features")


def _record_score(ctx: StageContext, shard: ShardState, sc: Scored) -> None:
    """Store the scored file as the shard's predictions.parquet and count its rows."""
    shard.predictions_uri = ctx.store.put_file(f"{shard.prefix}/predictions.parquet", Path(sc.uri))
    if sc.reasons_uri:
        shard.reasons_uri = ctx.store.put_file(f"{shard.prefix}/reasons.parquet", Path(sc.reasons_uri))
        shard.explain = sc.explain
    shard.counts["scored"] = sc.rows
    runs.update_shard(
        ctx.eng, shard.run_id, shard.index, rows_scored=sc.rows, predictions_uri=shard.predictions_uri, drift_counts=sc.drift_counts
    )
    if shard.shards == 1:
        runs.update(ctx.eng, shard.run_id, rows_scored=sc.rows)


def score_shard(settings: Settings, shard: ShardState) -> ShardState:
    with shard_stage(settings, shard, "score") as ctx:
        drop: list[Any] = []
        if shard.counts.get("quarantined"):
            drop = json.loads(ctx.store.get_bytes(f"{shard.prefix}/quarantined_keys.json"))
        _record_score(ctx, shard, _score_snapshot(ctx, shard, drop))
    return shard


def load_shard(settings: Settings, shard: ShardState) -> ShardState:
    """COPY the shard's scores into the run's loading table (a dry run loads nothing) and mark it loaded."""
    from pipeline.publish import load_shard as copy_in

    with shard_stage(settings, shard, "load") as ctx:
        load_cpu, load_started = time.process_time(), time.time()
        assert shard.predictions_uri, "score must run first"
        loaded = 0
        if not shard.dry_run:
            assert shard.loading_table, "the run's loading table is created when it begins"
            if shard.streamed:  # COPYed while the rows were read: check the count
                loaded = shard.counts["loaded"]
                if loaded != shard.counts["scored"]:
                    raise NightscoreError(
                        f"shard {shard.index} loaded {loaded} rows but scored {shard.counts['scored']}",
                        where=f"nightscore_staging.{shard.loading_table}",
                        fix="rerun the day; the published data was left as it was",
                    )
                load_started = shard.spans["load"][0]
            else:
                with ctx.store.local_path(ctx.store.key(shard.predictions_uri)) as path:
                    loaded = copy_in(
                        settings,
                        ctx.eng,
                        path,
                        shard.loading_table,
                        shard.index,
                        shard.shards,
                        clear=shard.attempt > 1 or shard.reload,
                        by_keys=ctx.spec.source.kind == "parquet" and shard.shards > 1,
                    )
            if shard.reasons_uri:  # the rows' reasons, into the run's side table (cleared with the rows above)
                from pipeline.publish import load_side

                with ctx.store.local_path(ctx.store.key(shard.reasons_uri)) as path:
                    load_side(settings, path, shard.loading_table, "reasons", shard.index)
            failpoints.reached("loaded")  # its rows are in, the shard not yet marked loaded
        shard.counts["loaded"] = loaded
        shard.cpu["load"] = round(time.process_time() - load_cpu, 4)
        shard.spans["load"] = [round(load_started, 4), round(time.time(), 4)]  # (shard_stage sets it again, a moment later)
        resources = {
            "cpu": shard.cpu,
            "peak_mb": round(_peak_rss_mb(), 1),
            "spans": shard.spans,
            "explain": shard.explain,
            "reasons_uri": shard.reasons_uri,
            "streamed": shard.streamed,
        }
        runs.update_shard(
            ctx.eng, shard.run_id, shard.index, status="loaded", rows_loaded=loaded, resources=resources, finished_at=datetime.now(UTC)
        )
        shutil.rmtree(ctx.workdir, ignore_errors=True)
    return shard


def _peak_rss_mb() -> float:
    """This process's peak resident memory so far (Linux reports kilobytes)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
