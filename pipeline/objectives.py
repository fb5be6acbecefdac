"""Which XGBoost objectives and metrics fit each model kind: the rules the job spec checks when it loads.

Kept apart from :mod:`pipeline.kinds` (which needs NumPy and Arrow) so that loading a spec, which every DAG
file does when Airflow parses it, imports nothing heavy.
"""

from __future__ import annotations

from typing import Any

KINDS = ("binary", "multiclass", "regression")
DEFAULT_OBJECTIVE = {"binary": "binary:logistic", "multiclass": "multi:softprob", "regression": "reg:squarederror"}
OBJECTIVES = {
    "binary": ("binary:logistic", "binary:logitraw"),
    "multiclass": ("multi:softprob", "multi:softmax"),
    "regression": (
        "reg:squarederror",
        "reg:squaredlogerror",
        "reg:pseudohubererror",
        "reg:absoluteerror",
        "reg:quantileerror",
        "reg:logistic",
        "reg:gamma",
        "reg:tweedie",
        "count:poisson",
    ),
}
# metric name -> True when higher is better
METRICS: dict[str, dict[str, bool]] = {
    "binary": {"auc": True, "logloss": False, "brier": False, "precision": True, "recall": True},
    "multiclass": {"logloss": False, "accuracy": True, "macro_f1": True},
    "regression": {"rmse": False, "mae": False, "r2": True, "pinball": False, "coverage": True},
}
PRIMARY = {"binary": "auc", "multiclass": "logloss", "regression": "rmse"}


def kind_of_objective(objective: str) -> str | None:
    return next((k for k, names in OBJECTIVES.items() if objective in names), None)


def objective(training: Any, kind: str) -> str:
    return training.objective or DEFAULT_OBJECTIVE[kind]


def quantiles_of(params: dict[str, Any]) -> tuple[float, ...]:
    q = params.get("quantile_alpha")
    if q is None:
        return ()
    return tuple(float(x) for x in (q if isinstance(q, list) else [q]))


def primary_metric(kind: str, training: Any = None, quantiles: tuple[float, ...] = ()) -> str:
    """The champion gate's metric: ``training.metric`` or the kind's default (pinball loss for quantile models)."""
    if training is not None and training.metric:
        return str(training.metric)
    return "pinball" if kind == "regression" and quantiles else PRIMARY[kind]


def check_training(kind: str, training: Any, decision: Any) -> None:
    """Refuse an objective, metric or parameter that does not fit the kind (a ValueError naming the field)."""
    obj = objective(training, kind)
    fits = kind_of_objective(obj)
    if fits != kind:
        allowed = ", ".join(OBJECTIVES[kind])
        said = f"is for {fits} models" if fits else "is not an objective nightscore can score (ranking and survival are not supported)"
        raise ValueError(f"training.objective {obj} {said}; this job's model.kind is {kind}: use one of {allowed}")
    q = quantiles_of(training.params)
    if q and obj != "reg:quantileerror":
        raise ValueError("training.params.quantile_alpha is for objective reg:quantileerror")
    if obj == "reg:quantileerror":
        if not q:
            raise ValueError("objective reg:quantileerror needs training.params.quantile_alpha, e.g. [0.1, 0.5, 0.9]")
        if any(not 0 < a < 1 for a in q) or len(set(q)) != len(q) or list(q) != sorted(q):
            raise ValueError("training.params.quantile_alpha must be distinct values between 0 and 1, ascending")
    if "num_class" in training.params:
        raise ValueError("training.params.num_class comes from decision.classes: leave it out")
    if "objective" in training.params:
        raise ValueError("set the objective as training.objective, not in training.params")
    if training.metric is not None:
        known = METRICS[kind]
        if training.metric not in known:
            raise ValueError(f"training.metric {training.metric!r} is not a {kind} metric: use one of {', '.join(known)}")
        if training.metric in ("pinball", "coverage") and not q:
            raise ValueError(f"training.metric {training.metric} is for quantile models (objective reg:quantileerror)")


def higher_is_better(kind: str, metric: str) -> bool:
    return METRICS[kind].get(metric, True)
