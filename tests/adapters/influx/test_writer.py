import gzip
import http.server
import threading
import time
from urllib.parse import parse_qs, urlparse

import pytest

from adapters.influx.server import InfluxServer
from adapters.influx.writer import InfluxConfig, InfluxError, InfluxWriter
from adapters.server import free_port


def _lines(n: int, start: int = 1466481600) -> list[str]:
    return [f"m,asset=a{i % 7},source=twin v={i}.5 {start + i}" for i in range(n)]


def _count(server: InfluxServer, db: str) -> int:
    answer = server.query("SELECT COUNT(v) FROM m", db=db)
    series = answer["results"][0].get("series")
    return series[0]["values"][0][1] if series else 0


def test_batches_reach_the_server(influxdb):
    writer = InfluxWriter(
        InfluxConfig(url=influxdb.url, db="w1", create_database=True, batch_size=1000)
    ).open()
    writer.write(_lines(2500))
    stats = writer.close()
    assert stats.points_written == 2500 and stats.batches_written == 3
    assert _count(influxdb, "w1") == 2500


def test_bad_credentials_name_the_servers_message(auth_influx):
    config = InfluxConfig(url=auth_influx.url, db="twin", username="admin", password="wrong")
    with pytest.raises(InfluxError, match=r"HTTP 401\): authorization failed"):
        InfluxWriter(config).open()
    good = InfluxConfig(url=auth_influx.url, db="twin", username="admin", password="s3cret")
    writer = InfluxWriter(good).open()
    writer.write(_lines(3))
    assert writer.close().points_written == 3


def test_a_missing_database_is_named(influxdb):
    config = InfluxConfig(url=influxdb.url, db="nowhere", create_database=False)
    with pytest.raises(InfluxError, match="database 'nowhere' does not exist"):
        InfluxWriter(config).open()


def test_an_unreachable_server_without_spool_is_an_error():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(InfluxError, match=f"InfluxDB {url} .* unreachable"):
        InfluxWriter(InfluxConfig(url=url, retries=0)).open()


def test_a_rejected_line_is_counted_and_raised_at_close(influxdb):
    """1.x writes the good lines of a batch: only the bad one is dropped."""
    writer = InfluxWriter(InfluxConfig(url=influxdb.url, db="w2", create_database=True)).open()
    writer.write(["m v=1 1466481600", "m v=not-a-number 1466481601"])
    with pytest.raises(InfluxError, match=r"HTTP 400\): .*unable to parse"):
        writer.close()
    assert writer.stats.points_dropped == 1 and writer.stats.points_written == 1
    assert _count(influxdb, "w2") == 1


def test_the_spool_keeps_everything_while_the_server_is_down(own_influx, tmp_path):
    config = InfluxConfig(
        url=own_influx.url,
        db="spool",
        create_database=True,
        batch_size=500,
        retries=1,
        backoff_s=0.1,
        backoff_max_s=0.5,
        spool_dir=str(tmp_path / "spool"),
    )
    writer = InfluxWriter(config).open()
    writer.write(_lines(1000))
    time.sleep(0.5)
    own_influx.stop()
    writer.write(_lines(3000, start=1466490000))  # the server is away: spooled
    deadline = time.monotonic() + 10
    while writer.stats.points_spooled < 3000 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert writer.stats.points_spooled == 3000
    assert len(list((tmp_path / "spool").glob("*.lp.gz"))) == 6
    own_influx.start()
    stats = writer.close()
    assert stats.points_replayed == 3000 and stats.points_dropped == 0
    assert _count(own_influx, "spool") == 4000  # nothing lost, nothing twice
    assert not list((tmp_path / "spool").glob("*.lp.gz"))


def test_a_spool_left_behind_is_replayed_by_the_next_writer(influxdb, tmp_path):
    spool = tmp_path / "spool"
    url = f"http://127.0.0.1:{free_port()}"
    dead = InfluxWriter(
        InfluxConfig(url=url, retries=0, spool_dir=str(spool), backoff_max_s=0.2)
    ).open()
    dead.write(_lines(700))
    dead.close(timeout_s=2)
    assert len(list(spool.glob("*.lp.gz"))) == 1
    influxdb.query('CREATE DATABASE "later"')
    again = InfluxWriter(InfluxConfig(url=influxdb.url, db="later", spool_dir=str(spool))).open()
    assert again.close().points_replayed == 700
    assert _count(influxdb, "later") == 700


class _Capture(http.server.BaseHTTPRequestHandler):
    requests: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Capture.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_the_v2_path_sends_line_protocol_with_token_org_and_bucket():
    """No 2.x server runs here: a capturing HTTP server shows what influxdb-client sends."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Capture)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Capture.requests.clear()
    try:
        config = InfluxConfig(
            url=f"http://127.0.0.1:{server.server_address[1]}",
            api="v2",
            token="my-token",
            org="my-org",
            bucket="twin/autogen",
        )
        writer = InfluxWriter(config)
        writer._thread = threading.Thread(target=writer._run, daemon=True)  # no ping (POST only)
        writer._thread.start()
        writer.write(_lines(3))
        assert writer.close().points_written == 3
    finally:
        server.shutdown()
        server.server_close()
    (request,) = _Capture.requests
    url = urlparse(request["path"])
    assert url.path == "/api/v2/write"
    assert parse_qs(url.query) == {
        "org": ["my-org"],
        "bucket": ["twin/autogen"],
        "precision": ["s"],
    }
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert headers["authorization"] == "Token my-token"
    assert headers["content-encoding"] == "gzip"
    assert gzip.decompress(request["body"]).decode().splitlines() == _lines(3)


def test_the_scenario_section_and_the_writer_config_agree():
    """``outputs.influx`` is handed to :class:`InfluxConfig` field by field."""
    import dataclasses

    from twin.scenario import InfluxSpec

    config = {f.name: f.default for f in dataclasses.fields(InfluxConfig)}
    for name, field in InfluxSpec.model_fields.items():
        if name.endswith(("_env", "_file")) and name != "ca_file":
            continue  # where a secret comes from: resolved into password / token
        assert name in config, f"outputs.influx.{name} has no InfluxConfig field"
        if name != "url":
            assert field.default == config[name], name
