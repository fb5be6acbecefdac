"""Model registry: versions (XGBoost ``.ubj`` + manifest in the artifact store, metadata in PostgreSQL),
aliases such as ``champion`` with their full history, and checksum-verified loading.

Models are only ever stored in XGBoost's own format: never pickle or joblib.
"""

from __future__ import annotations

import getpass
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipeline import db
from pipeline.errors import ModelError
from pipeline.storage import ArtifactStore, model_prefix


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: int
    artifact_uri: str
    sha256: str
    features: list[dict[str, Any]]
    metrics: dict[str, Any]
    training_window: dict[str, Any]
    xgboost_version: str
    kind: str = "binary"
    origin: dict[str, Any] | None = None  # a registered model: file, sha256, MLflow run id, who, note
    created_by: str = ""

    @property
    def registered(self) -> bool:
        """Handed over as a file (``nightscore model register``), not trained by ``nightscore train``."""
        return bool(self.origin and self.origin.get("how") == "registered")

    @property
    def feature_names(self) -> list[str]:
        return [f["name"] for f in self.features]


def current_user() -> str:
    """The login registering or moving a version (``created_by``, ``changed_by``)."""
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


def _row_to_version(row: sa.Row) -> ModelVersion:
    return ModelVersion(
        name=row.model_name,
        version=row.version,
        artifact_uri=row.artifact_uri,
        sha256=row.sha256,
        features=row.features,
        metrics=row.metrics,
        training_window=row.training_window,
        xgboost_version=row.xgboost_version,
        kind=row.kind,
        origin=row.origin,
        created_by=row.created_by,
    )


def register(
    eng: Engine,
    store: ArtifactStore,
    name: str,
    model_bytes: bytes,
    manifest: dict[str, Any],
    *,
    by: str | None = None,
) -> ModelVersion:
    """Store a new version of ``name`` (next number) and record it. The model bytes must be UBJSON."""
    sha = hashlib.sha256(model_bytes).hexdigest()
    for attempt in range(10):
        try:
            with eng.begin() as conn:
                # the row claims the version number first (its primary key): a concurrent registration of the
                # same model waits for this transaction, then fails and takes the next number, so it never
                # writes over this version's files. No advisory lock, which any role could take and hold.
                version = conn.execute(db.query("next_model_version"), {"name": name}).scalar_one()
                prefix = model_prefix(name, version)
                conn.execute(
                    db.query("insert_model_version"),
                    {
                        "name": name,
                        "version": version,
                        "uri": store.uri(f"{prefix}/model.ubj"),
                        "sha": sha,
                        "features": json.dumps(manifest["features"]),
                        "metrics": json.dumps(manifest["metrics"]),
                        "window": json.dumps(manifest["training_window"], default=str),
                        "xgb": manifest["xgboost_version"],
                        "by": by or current_user(),
                        "kind": manifest.get("kind", "binary"),
                        "origin": json.dumps(manifest.get("origin"), default=str) if manifest.get("origin") else None,
                    },
                )
                uri = store.put_bytes(f"{prefix}/model.ubj", model_bytes)
                full_manifest = {**manifest, "model_name": name, "version": version, "sha256": sha, "artifact_uri": uri}
                store.put_bytes(f"{prefix}/manifest.json", json.dumps(full_manifest, indent=2, default=str).encode())
            break
        except sa.exc.IntegrityError:
            if attempt == 9:
                raise
    return get_version(eng, name, version)


def find_identical(eng: Engine, name: str, model_bytes: bytes) -> ModelVersion | None:
    """The registered version of ``name`` whose model file has exactly these bytes, if any."""
    sha = hashlib.sha256(model_bytes).hexdigest()
    return next((mv for mv in list_versions(eng, name) if mv.sha256 == sha), None)


def require_model(eng: Engine, name: str) -> None:
    """Raise a :class:`ModelError` naming the registered models when ``name`` is not one of them."""
    known = sorted({mv.name for mv in list_versions(eng)})
    if name not in known:
        raise ModelError(
            f"no model named {name!r} is registered (registered: {', '.join(known) or 'none'})",
            where="model registry",
            fix="check the name (nightscore model list), or train one (nightscore train --job <job>)",
        )


def get_version(eng: Engine, name: str, version: int) -> ModelVersion:
    row = db.fetch_one(eng, "get_model_version", name=name, version=version)
    if row is None:
        known = [v.version for v in list_versions(eng, name)]
        raise ModelError(
            f"model {name!r} has no version {version} (registered: {known or 'none'})",
            where="model registry",
            fix="pick a registered version (nightscore model list) or train one (nightscore train)",
        )
    return _row_to_version(row)


def list_versions(eng: Engine, name: str | None = None) -> list[ModelVersion]:
    with eng.connect() as conn:
        rows = conn.execute(db.query("list_model_versions"), {"name": name}).all()
    return [_row_to_version(r) for r in rows]


def aliases(eng: Engine, name: str | None = None) -> dict[tuple[str, str], int]:
    with eng.connect() as conn:
        rows = conn.execute(db.query("list_model_aliases"), {"n": name}).all()
    return {(r.model_name, r.alias): r.version for r in rows}


def resolve(eng: Engine, name: str, alias: str = "champion", version: int | None = None) -> ModelVersion:
    """The version to score with: ``version`` when pinned, else the one ``alias`` points at."""
    if version is not None:
        return get_version(eng, name, version)
    current = aliases(eng, name).get((name, alias))
    if current is None:
        raise ModelError(
            f"no model is registered as {name}@{alias}",
            where="model registry",
            fix=f"train one with `nightscore train --job <job>` or promote a version with `nightscore model promote {name} <version>`",
        )
    return get_version(eng, name, current)


def set_alias(
    eng: Engine, name: str, alias: str, version: int, *, reason: str, by: str | None = None, evidence: dict[str, Any] | None = None
) -> int | None:
    """Point ``alias`` at ``version``, recording the move (and the ``evidence`` it cites, e.g. a shadow
    comparison: :func:`pipeline.compare.promotion_evidence`). Returns the previous version."""
    require_model(eng, name)
    get_version(eng, name, version)  # must exist
    with eng.begin() as conn:
        prev = conn.execute(db.query("lock_model_alias"), {"n": name, "a": alias}).scalar()
        conn.execute(db.query("upsert_model_alias"), {"name": name, "alias": alias, "version": version, "by": by or current_user()})
        conn.execute(
            db.query("insert_model_alias_history"),
            {
                "n": name,
                "a": alias,
                "f": prev,
                "t": version,
                "b": by or current_user(),
                "r": reason,
                "e": json.dumps(evidence, default=str) if evidence is not None else None,
            },
        )
    return prev


def rollback(eng: Engine, name: str, alias: str = "champion", *, by: str | None = None) -> tuple[int, int]:
    """Point ``alias`` back one step in its history: at the version it had before the current one was set,
    skipping what earlier rollbacks undid, so that rollbacks walk back (v3 → v2 → v1) instead of flipping
    between the last two. Returns (restored, replaced)."""
    require_model(eng, name)
    with eng.connect() as conn:
        moves = conn.execute(db.query("list_model_alias_history"), {"n": name, "a": alias}).all()
    stack: list[int] = []  # the versions the alias was moved forward to, still in force
    for move in moves:
        if move.reason.startswith("rollback") and stack:
            stack.pop()
        elif not stack or stack[-1] != move.to_version:
            stack.append(move.to_version)
    if len(stack) < 2:
        raise ModelError(
            f"{name}@{alias} has no earlier version to roll back to",
            where="model_alias_history",
            fix=f"promote a version explicitly: nightscore model promote {name} <version>",
        )
    current, previous = stack[-1], stack[-2]
    set_alias(eng, name, alias, previous, reason=f"rollback from v{current}", by=by)
    return previous, current


def load_booster(store: ArtifactStore, mv: ModelVersion) -> Any:
    """Fetch the model bytes, verify their sha256 against the registry, and load them with XGBoost."""
    import xgboost as xgb

    data = store.get_bytes(store.key(mv.artifact_uri))
    actual = hashlib.sha256(data).hexdigest()
    if actual != mv.sha256:
        raise ModelError(
            f"checksum mismatch for model {mv.name} version {mv.version}: registry says sha256 {mv.sha256[:12]}…, "
            f"the stored object has {actual[:12]}…; refusing to load it",
            where=mv.artifact_uri,
            fix=f"restore the object from a backup, or promote another version (nightscore model promote {mv.name} <version>)",
        )
    from pipeline.shards import xgboost_ran

    xgboost_ran()
    booster = xgb.Booster()
    booster.load_model(bytearray(data))
    if booster.feature_names and list(booster.feature_names) != mv.feature_names:
        raise ModelError(
            f"model {mv.name} v{mv.version} expects features {booster.feature_names}, its registry entry lists {mv.feature_names}",
            where=mv.artifact_uri,
            fix="retrain the model from the job's current feature contract",
        )
    return booster


def check_fits(spec: Any, mv: ModelVersion, booster: Any) -> None:
    """Refuse to score ``spec``'s job with a model that does not fit it (kind, classes, features, categories):
    the spec may have changed since the model was registered."""
    from pipeline import kinds

    problems = kinds.check_model(spec, kinds.model_info(booster))
    if problems:
        raise ModelError(
            f"model {mv.name} v{mv.version} does not fit job {spec.name!r}: " + "; ".join(problems),
            where=str(spec.spec_path),
            fix="change the spec back, or train (nightscore train) or register (nightscore model register) a model for the spec as it is",
        )
