"""The artifact store fails: the S3 endpoint gone mid-run and after the swap, an unwritable folder."""

from __future__ import annotations

import pytest

from tests.faults.conftest import Run, assert_one_paragraph, assert_promises, newest_run, publish_day, reap, run_record
from tests.s3proxy import FaultyS3Proxy

pytestmark = [pytest.mark.integration, pytest.mark.faults]


@pytest.mark.parametrize("point", ["validate", "monitor"], ids=["mid-run", "after-swap"])
def test_s3_endpoint_gone(s3_settings, s3_endpoint, tmp_path, point):
    """A proxy of the test's own in front of the S3 server is the run's endpoint; the test stops it."""
    endpoint = FaultyS3Proxy(*s3_endpoint.upstream).start()
    s = s3_settings.with_overrides(s3_endpoint_url=endpoint.url)
    old = publish_day(s)
    run = Run(s, tmp_path, failpoint=point)
    run.wait_at_point()
    endpoint.stop()  # connections refused from now on
    run.release()
    code, _, err = run.finish()
    assert code == 1
    assert_one_paragraph(err, "S3", endpoint.url)
    rec = newest_run(s)
    if point == "monitor":  # the day was published before the endpoint went: the run says so
        assert rec["status"] == "published" and rec["published_at"] and "[monitor]" in rec["error"], rec
        holder = str(rec["run_id"])
    else:
        assert rec["status"] == "failed" and "[validate]" in rec["error"], rec
        holder = old
    reap(s)
    assert_promises(s, holder)


def test_run_folder_unwritable_when_the_manifest_is_written(local_settings, tmp_path):
    s = local_settings
    publish_day(s)
    run = Run(s, tmp_path, failpoint="monitor")
    run.wait_at_point()
    rec = newest_run(s)
    manifest = tmp_path / "artifacts" / "runs" / "churn" / f"ds={rec['ds']}" / str(rec["run_id"]) / "manifest.json"
    (manifest / "in-the-way").mkdir(parents=True)  # a folder where the manifest file must go
    run.release()
    code, _, err = run.finish()
    assert code == 1
    assert_one_paragraph(err, "manifest.json", "Fix:")
    rec = run_record(s, str(rec["run_id"]))
    assert rec["status"] == "published" and "manifest.json" in rec["error"], rec  # never failed once published
    reap(s)
    assert_promises(s, str(rec["run_id"]))


def test_artifact_folder_unwritable(local_settings, tmp_path):
    s = local_settings
    old = publish_day(s)
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the artifact folder should be")
    run = Run(s.with_overrides(artifact_uri=str(blocked / "artifacts")), tmp_path)
    code, _, err = run.finish()
    assert code == 1
    assert_one_paragraph(err, str(blocked), "NIGHTSCORE_ARTIFACT_URI")
    reap(s)
    assert_promises(s, old)
