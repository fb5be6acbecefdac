from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
import yaml

from pipeline.config import PROJECT_ROOT
from pipeline.errors import JobSpecError, NightscoreError
from pipeline.jobs import load_job, load_spec, parse_ds, render_binds

pytestmark = pytest.mark.unit

JOBS = PROJECT_ROOT / "dags" / "jobs"


def _write(tmp_path: Path, **changes) -> Path:
    raw = yaml.safe_load((JOBS / "churn.yml").read_text())
    for key, value in changes.items():
        raw[key] = value
    for name in ("churn.sql", "churn_train.sql", "churn_outcomes.sql"):
        (tmp_path / name).write_text((JOBS / name).read_text())
    path = tmp_path / f"{raw.get('name', 'churn')}.yml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_demo_job_loads_with_its_contract():
    spec = load_job(JOBS, "churn")
    assert spec.entity_key == "customer_id"
    assert spec.columns[0] == "customer_id" and len(spec.feature_names) == 10
    assert [f.name for f in spec.features if f.type == "category"] == ["plan", "region", "payment_method"]
    assert spec.model.alias == "champion"


def test_unknown_job_lists_known_ones():
    with pytest.raises(JobSpecError, match=r"unknown job 'nope' \(known jobs: basket_value, churn, plan_choice\)"):
        load_job(JOBS, "nope")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"features": [{"name": "plan", "type": "category"}]},
            r"field 'features\.0': category feature 'plan' needs a non-empty 'values' list",
        ),
        ({"features": [{"name": "x", "type": "decimal"}]}, r"field 'features\.0\.type'"),
        ({"schedule_interval": "@daily"}, r"field 'schedule_interval': Extra inputs are not permitted"),
        ({"timezone": "Mars/Olympus"}, r"field 'timezone': unknown timezone 'Mars/Olympus'"),
        ({"entity_key": "plan"}, r"entity_key 'plan' cannot also be a feature"),
        ({"features": [{"name": "a", "type": "float", "min": 5, "max": 1}]}, r"min > max"),
        ({"evaluation": {"sql": "churn_outcomes.sql", "schedule": "daily"}}, r"field 'evaluation\.schedule': schedule 'daily'"),
        ({"evaluation": {"sql": "churn_outcomes.sql", "auc_drop": {"warn": 0.1, "alert": 0.05}}}, r"field 'evaluation\.auc_drop'"),
        ({"evaluation": {"sql": "churn_outcomes.sql", "mature_days": -1}}, r"field 'evaluation\.mature_days'"),
    ],
)
def test_invalid_spec_names_file_field_and_reason(tmp_path, change, message):
    path = _write(tmp_path, **change)
    with pytest.raises(JobSpecError, match=message) as info:
        load_spec(path)
    assert str(path) in str(info.value)


def test_spec_name_must_match_file(tmp_path):
    path = _write(tmp_path)
    other = path.with_name("other.yml")
    path.rename(other)
    with pytest.raises(JobSpecError, match="differs from the file name"):
        load_spec(other)


def test_evaluation_block_defaults_and_its_outcome_query(tmp_path):
    spec = load_job(JOBS, "churn")
    assert spec.evaluation is not None and spec.evaluation.mature_days == 30 and spec.outcome_label == "churned"
    assert "WHERE ds = DATE '2026-03-15'" in spec.outcomes_sql(parse_ds("2026-03-15"))
    path = _write(tmp_path, evaluation={"sql": "missing.sql"})
    with pytest.raises(JobSpecError, match=r"evaluation\.sql file 'missing\.sql' does not exist"):
        load_spec(path)


def test_missing_sql_file_is_reported(tmp_path):
    path = _write(tmp_path, source={"sql": "missing.sql"})
    with pytest.raises(JobSpecError, match="source.sql file 'missing.sql' does not exist"):
        load_spec(path)


def test_broken_yaml_is_reported(tmp_path):
    path = tmp_path / "churn.yml"
    path.write_text("name: churn\nfeatures: [\n")
    with pytest.raises(JobSpecError, match="not valid YAML"):
        load_spec(path)


def test_binds_render_typed_literals():
    sql = "SELECT * FROM t WHERE ds = :ds AND ts >= :start AND ts < :end AND x::text = 'a'"
    out = render_binds(sql, ds=date(2026, 3, 15))
    assert "ds = DATE '2026-03-15'" in out
    assert "ts >= TIMESTAMPTZ '2026-03-15T00:00:00+00:00'" in out
    assert "ts < TIMESTAMPTZ '2026-03-16T00:00:00+00:00'" in out
    assert "x::text" in out  # casts are left alone
    train = render_binds("WHERE ds >= :start AND ds < :end", start=date(2026, 1, 1), end=date(2026, 2, 1))
    assert train == "WHERE ds >= DATE '2026-01-01' AND ds < DATE '2026-02-01'"


def test_bad_date_is_a_clear_error():
    with pytest.raises(NightscoreError, match=r"'2026-13-01' is not a date.*YYYY-MM-DD"):
        parse_ds("2026-13-01")


def test_a_spec_is_loaded_once_per_process_until_its_file_changes(tmp_path):
    """The stages of a run share one spec: a second load returns the same object, an edited file is read again."""
    import shutil

    from pipeline.config import PROJECT_ROOT
    from pipeline.jobs import load_spec

    jobs = tmp_path / "jobs"
    shutil.copytree(PROJECT_ROOT / "dags" / "jobs", jobs)
    path = jobs / "churn.yml"
    first = load_spec(path)
    assert load_spec(path) is first
    path.write_text(path.read_text().replace("shards: 1", "shards: 2") if "shards: 1" in path.read_text() else path.read_text() + "shards: 2\n")
    again = load_spec(path)
    assert again is not first and again.shards == 2
