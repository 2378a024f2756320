import gzip
import http.server
import threading
import time
from urllib.parse import parse_qs, urlparse

import pandas as pd
import pytest

from adapters.influx.server import InfluxServer
from adapters.influx.spool import Spool
from adapters.influx.transport import _message
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

    from adapters.influx.schema import InfluxSpec

    config = {f.name: f.default for f in dataclasses.fields(InfluxConfig)}
    for name, field in InfluxSpec.model_fields.items():
        if name.endswith(("_env", "_file")) and name != "ca_file":
            continue  # where a secret comes from: resolved into password / token
        assert name in config, f"outputs.influx.{name} has no InfluxConfig field"
        if name != "url":
            assert field.default == config[name], name


def test_a_field_type_conflict_drops_only_the_conflicting_points(influxdb):
    """InfluxDB stores the good points of a batch: the counters say so, not "all lost"."""
    influxdb.query('CREATE DATABASE "conflict"')
    first = InfluxWriter(InfluxConfig(url=influxdb.url, db="conflict")).open()
    first.write(["m v=1 1466481600"])
    first.close()
    writer = InfluxWriter(InfluxConfig(url=influxdb.url, db="conflict")).open()
    writer.write(["m v=2 1466481601", 'm v="text" 1466481602', "m v=4 1466481603"])
    with pytest.raises(InfluxError, match=r"HTTP 400\): partial write: field type conflict"):
        writer.close()
    stats = writer.stats
    assert (stats.points_written, stats.points_dropped, stats.points_unaccounted) == (2, 1, 0)
    assert _count(influxdb, "conflict") == 3


def test_a_missing_database_names_the_server_the_existing_ones_and_the_nearest(influxdb):
    influxdb.query('CREATE DATABASE "plant_prod"')
    config = InfluxConfig(url=influxdb.url, db="plant_prd")
    with pytest.raises(InfluxError, match=r"did you mean 'plant_prod'\? existing: .*plant_prod"):
        InfluxWriter(config).open()
    answer = influxdb.query("SHOW DATABASES")
    assert ["plant_prd"] not in answer["results"][0]["series"][0]["values"]  # not created


def test_api_v2_against_a_1_6_server_is_refused_at_open(influxdb):
    config = InfluxConfig(url=influxdb.url, api="v2", token="t", org="o", bucket="twin")
    with pytest.raises(InfluxError, match=r"InfluxDB 1\.6\.7.* no /api/v2/write .* api: v1"):
        InfluxWriter(config).open()


def test_a_v2_error_body_given_as_str_reads_as_the_message():
    """influxdb-client hands 1.x error bodies over as str (PITFALLS.md)."""
    assert _message("404 page not found\n") == "404 page not found"
    assert _message('{"error": "database not found"}') == "database not found"
    assert _message(b'{"error": "x"}') == "x"


def test_an_unexpected_error_in_the_sender_is_counted_and_delivery_goes_on(own_influx, tmp_path):
    """The spool directory is gone (a full or removed disk): that batch is lost and says so;
    the thread survives and the next batch reaches the server."""
    spool = tmp_path / "spool"
    config = InfluxConfig(
        url=own_influx.url,
        db="robust",
        create_database=True,
        retries=0,
        spool_dir=str(spool),
        backoff_s=0.05,
    )
    writer = InfluxWriter(config).open()
    own_influx.stop()
    spool.rmdir()
    spool.write_text("not a directory")
    writer.write(_lines(300))
    writer.flush()
    deadline = time.monotonic() + 60
    while writer.stats.thread_errors == 0:
        assert time.monotonic() < deadline, "the sender never reported the error"
        time.sleep(0.05)
    own_influx.start()
    spool.unlink()
    spool.mkdir()
    writer.write(_lines(200, start=1466490000))
    stats = writer.close()
    assert stats.thread_errors == 1 and stats.points_dropped == 300
    assert stats.points_written == 200 and stats.points_unaccounted == 0
    assert "unexpected NotADirectoryError" in stats.errors[0]
    assert _count(own_influx, "robust") == 200


def test_the_spool_count_is_exact_across_writers(tmp_path):
    """Batches and points left are counted from the files, whoever wrote them."""
    spool = tmp_path / "spool"
    url = f"http://127.0.0.1:{free_port()}"
    for n in (700, 5):
        writer = InfluxWriter(
            InfluxConfig(url=url, retries=0, spool_dir=str(spool), batch_size=500)
        ).open()
        writer.write(_lines(n))
        stats = writer.close(timeout_s=30)
    files = sorted(spool.glob("*.lp.gz"))
    on_disk = sum(gzip.decompress(f.read_bytes()).count(b"\n") for f in files)
    assert (stats.spooled_left, stats.spooled_points_left) == (len(files), on_disk) == (3, 705)
    assert stats.points_unaccounted == 0


def test_credentials_refused_mid_run_keep_the_batches_for_a_replay(auth_influx, tmp_path):
    """A 401 is not the data's fault: the batch waits in the spool, the error is raised."""
    auth_influx.query(
        "CREATE USER \"bob\" WITH PASSWORD 'first' WITH ALL PRIVILEGES", auth=("admin", "s3cret")
    )
    spool = str(tmp_path / "spool")
    config = InfluxConfig(
        url=auth_influx.url, db="twin", username="bob", password="first", spool_dir=spool
    )
    writer = InfluxWriter(config).open()
    auth_influx.query("SET PASSWORD FOR \"bob\" = 'second'", auth=("admin", "s3cret"))
    writer.write(_lines(400, start=1466500000))
    with pytest.raises(InfluxError, match=r"HTTP 401\): authorization failed"):
        writer.close()
    stats = writer.stats
    assert (stats.points_spooled, stats.spooled_points_left, stats.points_dropped) == (400, 400, 0)
    assert "first" not in " ".join(stats.errors)
    config.password = "second"
    replay = InfluxWriter(config).open().close()
    assert replay.points_replayed == 400 and replay.spooled_points_left == 0


def test_loading_a_run_that_only_reached_the_spool_raises(tmp_path):
    from adapters.influx.load import write_results
    from adapters.influx.writer import IncompleteWrite

    frame = pd.DataFrame(
        {
            "time": pd.to_datetime(["2016-06-21T12:00:00Z", "2016-06-21T12:15:00Z"]),
            "site": "s",
            "run_id": "r",
            "kind": "battery",
            "asset": "bess",
            "source": "twin",
            "quantity": "soc",
            "value": [0.5, 0.6],
        }
    )
    url = f"http://127.0.0.1:{free_port()}"
    config = InfluxConfig(url=url, retries=0, spool_dir=str(tmp_path / "spool"))
    with pytest.raises(IncompleteWrite, match=r"2 points left in .*spool") as caught:
        write_results(frame, config)
    assert caught.value.stats.spooled_points_left == 2


def test_a_hung_server_at_close_leaves_every_point_accounted_for(own_influx, tmp_path):
    """influxd stopped (SIGSTOP) answers nothing: close gives up in time and says where
    each point is (in flight or spooled), none unaccounted."""
    import os
    import signal

    config = InfluxConfig(
        url=own_influx.url,
        db="hung",
        create_database=True,
        retries=0,
        timeout_s=30,
        spool_dir=str(tmp_path / "spool"),
    )
    writer = InfluxWriter(config).open()
    os.kill(own_influx.process.pid, signal.SIGSTOP)
    try:
        writer.write(_lines(300))
        writer.flush()
        writer.write(_lines(200, start=1466490000))
        stats = writer.close(timeout_s=1.0)
        snapshot = (stats.closing_timed_out, stats.points_in_flight, stats.points_spooled)
        unaccounted = stats.points_unaccounted
    finally:
        os.kill(own_influx.process.pid, signal.SIGCONT)
    timed_out, in_flight, spooled = snapshot
    assert timed_out and in_flight + spooled == 500 and unaccounted == 0
    assert in_flight in (0, 300)


def test_two_writers_on_one_spool_keep_both_batches(tmp_path):
    first, second = Spool(tmp_path), Spool(tmp_path)  # both start numbering at 0
    first.put(b"a v=1 1\n")
    second.put(b"b v=1 1\n")  # the same number and line count: the same name before
    assert first.pending() == second.pending()
    assert (first.pending().batches, first.pending().points) == (2, 2)


def test_a_corrupt_spool_file_is_set_aside_and_the_rest_delivered(influxdb, tmp_path):
    spool = tmp_path / "spool"
    Spool(spool).put("\n".join(_lines(10)).encode() + b"\n")
    Spool(spool).put("\n".join(_lines(20, start=1466500000)).encode() + b"\n")
    broken = sorted(spool.glob("*.lp.gz"))[0]
    data = bytearray(broken.read_bytes())
    data[20] ^= 0xFF  # one flipped byte inside the deflate stream
    broken.write_bytes(bytes(data))
    influxdb.query('CREATE DATABASE "mended"')
    writer = InfluxWriter(InfluxConfig(url=influxdb.url, db="mended", spool_dir=str(spool)))
    stats = writer.open().close(timeout_s=30)
    assert stats.points_replayed == 20 and stats.points_dropped == 10
    assert stats.thread_errors == 0 and len(list(spool.glob("*.bad"))) == 1
    assert _count(influxdb, "mended") == 20
