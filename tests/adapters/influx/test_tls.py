"""https to a real influxd with a certificate of the test's own: verified by default."""

import subprocess
from pathlib import Path

import pytest

from adapters.influx.server import InfluxServer
from adapters.influx.writer import InfluxConfig, InfluxError, InfluxWriter


@pytest.fixture(scope="module")
def tls_influx(tmp_path_factory: pytest.TempPathFactory) -> InfluxServer:
    """influxd over https with a self-signed certificate for 127.0.0.1."""
    where = tmp_path_factory.mktemp("influxdb-tls")
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"]
        + ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )
    server = InfluxServer(where / "data", tls=(cert, key)).start()
    yield server
    server.stop()


def test_https_with_the_ca_file_writes(tls_influx):
    ca = str(tls_influx.tls[0])
    config = InfluxConfig(url=tls_influx.url, db="tls", create_database=True, ca_file=ca)
    writer = InfluxWriter(config).open()
    writer.write(["m v=1 1466481600", "m v=2 1466481601"])
    assert writer.close().points_written == 2
    answer = tls_influx.query("SELECT COUNT(v) FROM m", db="tls")
    assert answer["results"][0]["series"][0]["values"][0][1] == 2


def test_an_unverifiable_certificate_is_an_error_at_open_not_a_spool(tls_influx, tmp_path):
    spool = tmp_path / "spool"
    config = InfluxConfig(url=tls_influx.url, db="tls", spool_dir=str(spool))
    with pytest.raises(InfluxError, match=r"TLS failed .*CERTIFICATE_VERIFY_FAILED.*ca_file"):
        InfluxWriter(config).open()
    assert not list(Path(spool).glob("*"))


def test_a_missing_ca_file_is_named(tls_influx, tmp_path):
    missing = str(tmp_path / "nope.pem")
    with pytest.raises(InfluxError, match=r"ca_file .*nope\.pem.* does not exist"):
        InfluxWriter(InfluxConfig(url=tls_influx.url, ca_file=missing))
