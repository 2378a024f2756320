"""Credentials: accepted from the scenario, an environment variable, a file or the URL;
checked against a real influxd with ``auth-enabled``; never written anywhere."""

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from adapters.server import free_port
from twin.errors import ScenarioError
from twin.run import RunCheckError, run_scenario
from twin.scenario import validate_scenario

SECRET = "s3cret"  # the auth_influx fixture's admin password


def _everything_written(run_dir: Path) -> str:
    """Every file of a run as text (gzip spool files decompressed)."""
    out = []
    for path in run_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            out.append(
                (gzip.decompress(data) if path.name.endswith(".gz") else data).decode(
                    errors="replace"
                )
            )
    return "\n".join(out)


def _twin_run(raw: dict, tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump({**raw, "duration": "1h"}))  # start-up is what counts
    return subprocess.run(
        [sys.executable, "-m", "twin.cli", "run", str(path), "--no-progress"]
        + ["--out", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
    )


@pytest.mark.parametrize("how", ["env", "file", "url", "value"])
def test_each_way_of_giving_the_password_writes_and_stores_no_secret(
    auth_influx, tmp_path, small_raw, how
):
    influx = {"url": auth_influx.url, "username": "admin"}
    env = {}
    if how == "env":
        influx["password_env"] = "TWIN_TEST_INFLUX_PW"
        env["TWIN_TEST_INFLUX_PW"] = SECRET
    elif how == "file":
        (tmp_path / "pw").write_text(SECRET + "\n")
        influx["password_file"] = str(tmp_path / "pw")
    elif how == "url":
        influx = {"url": auth_influx.url.replace("://", f"://admin:{SECRET}@")}
    else:
        influx["password"] = SECRET
    run = tmp_path / "run"
    raw = {**small_raw, "outputs": {"influx": influx}}
    done = _twin_run(raw, tmp_path, env)
    assert done.returncode == 0, done.stdout + done.stderr
    meta = json.loads((run / "run.json").read_text())
    assert meta["status"] == "finished" and meta["influx"]["points_written"] > 0
    stored = meta["scenario"]["outputs"]["influx"]
    assert stored["password"] in (None, "**********") and stored["url"] == auth_influx.url
    assert SECRET not in _everything_written(run) + done.stdout + done.stderr


def test_a_wrong_password_stops_the_run_at_set_up_without_a_traceback(
    auth_influx, tmp_path, small_raw
):
    wrong = "not-the-password"
    (tmp_path / "pw").write_text(wrong)
    run = tmp_path / "run"
    influx = {"url": auth_influx.url, "username": "admin", "password_file": str(tmp_path / "pw")}
    done = _twin_run({**small_raw, "outputs": {"influx": influx}}, tmp_path, {})
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert f"InfluxDB {auth_influx.url}" in done.stderr and "authorization failed" in done.stderr
    assert "Traceback" not in output and wrong not in output
    meta = json.loads((run / "run.json").read_text())
    assert meta["status"] == "failed" and "HTTP 401" in meta["error"]
    assert wrong not in _everything_written(run)


def test_an_unset_password_variable_is_named(auth_influx, tmp_path, small_raw):
    influx = {"url": auth_influx.url, "username": "admin", "password_env": "TWIN_NOT_SET_PW"}
    done = _twin_run({**small_raw, "outputs": {"influx": influx}}, tmp_path, {})
    assert done.returncode == 2
    assert "outputs.influx.password_env: environment variable 'TWIN_NOT_SET_PW' is not set" in (
        done.stderr
    )


def test_spooled_batches_and_check_messages_hold_no_secret(tmp_path, small_raw):
    dead = f"http://admin:{SECRET}@127.0.0.1:{free_port()}"
    raw = {**small_raw, "outputs": {"influx": {"url": dead, "retries": 0}}}
    with pytest.raises(RunCheckError) as caught:
        run_scenario(validate_scenario(raw), tmp_path / "run")
    assert list((tmp_path / "run" / "influx-spool").glob("*.lp.gz"))
    assert SECRET not in _everything_written(tmp_path / "run") + str(caught.value)


def test_a_malformed_secret_is_not_repeated_in_the_validation_error(small_raw):
    raw = {**small_raw, "outputs": {"influx": {"url": "http://h:8086", "password": 987654}}}
    with pytest.raises(ScenarioError, match=r"outputs\.influx\.password") as caught:
        validate_scenario(raw)
    assert "987654" not in str(caught.value)


def test_a_secret_is_given_one_way(small_raw):
    influx = {"url": "http://h:8086", "password": "x", "password_env": "PW"}
    with pytest.raises(ScenarioError, match="give password one way, not password and"):
        validate_scenario({**small_raw, "outputs": {"influx": influx}})


@pytest.mark.parametrize(
    "url", ["http://h:8086/?u=admin&p=S3cretPW", "http://admin:S3cret/PW@host:8086"]
)
def test_a_login_the_url_would_keep_is_refused_without_echo(small_raw, url):
    with pytest.raises(ScenarioError, match=r"outputs\.influx\.url") as caught:
        validate_scenario({**small_raw, "outputs": {"influx": {"url": url}}})
    assert "S3cret" not in str(caught.value)
