"""Start a Mosquitto broker with twin's configuration (tests, benchmarks, ``twin broker``).

The broker runs as a child process on a loopback port with its own data directory, so
its persistence file (sessions, subscriptions and queued QoS 1 messages) survives
:meth:`Mosquitto.restart`.

Without users it allows anonymous clients (a local test and demo broker). With users
(:class:`BrokerSecurity`) it refuses anonymous clients, checks passwords against a
Mosquitto password file (written with ``mosquitto_passwd``, the passwords given on its
standard input, never on a command line) and applies an ACL, by default the shipped
``acl.conf``: user ``twin`` owns ``twin/#`` and ``field/#``, a device (username = its
asset) may write only ``field/<site>/<asset>/<quantity>`` and read its setpoints. With
a certificate and key the listener speaks TLS (``mqtts://``), and with
``require_certificate`` clients must show a certificate signed by ``ca_file``.
"""

from __future__ import annotations

import getpass
import json
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

from adapters.server import ChildServer

__all__ = ["BrokerSecurity", "Mosquitto", "Subscriber", "mosquitto_config", "write_password_file"]


@dataclass
class BrokerSecurity:
    """Authentication, ACL and TLS of a broker's listener.

    Parameters
    ----------
    users : dict
        Username -> password, added to the password file.
    password_file : Path, optional
        An existing Mosquitto password file to start from (``mosquitto_passwd``).
    acl_file : Path, optional
        The ACL (default: the shipped ``acl.conf``).
    ca_file, cert_file, key_file : Path, optional
        TLS: the CA that signs client certificates, the broker's certificate and key.
    require_certificate : bool
        Clients must present a certificate signed by ``ca_file``.
    """

    users: dict[str, str] = field(default_factory=dict, repr=False)
    password_file: Path | None = None
    acl_file: Path | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    require_certificate: bool = False

    @property
    def tls(self) -> bool:
        """Whether the listener speaks TLS."""
        return self.cert_file is not None

    @property
    def authenticates(self) -> bool:
        """Whether clients must log in."""
        return bool(self.users) or self.password_file is not None


def write_password_file(path: Path, users: dict[str, str], start: Path | None = None) -> Path:
    """A Mosquitto password file with ``users`` (hashed by ``mosquitto_passwd``).

    The passwords go to ``mosquitto_passwd`` on its standard input, so they never
    appear on a command line.
    """
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        raise FileNotFoundError("'mosquitto_passwd' not found: install Debian's 'mosquitto'")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(Path(start).read_text() if start else "")
    path.chmod(0o600)
    for user, password in users.items():
        if ":" in user or not user:
            raise ValueError(f"broker user {user!r}: expected a name without ':'")
        done = subprocess.run(
            [tool, str(path), user],
            input=f"{password}\n{password}\n",
            text=True,
            capture_output=True,
            timeout=30,
        )
        if done.returncode:
            raise RuntimeError(f"mosquitto_passwd could not add user {user!r}: {done.stderr}")
    return path


def _listener(port: int, data_dir: Path, security: BrokerSecurity | None) -> str:
    if security is None or not (security.authenticates or security.tls):
        return f"listener {port} 127.0.0.1\nallow_anonymous true"
    lines = [f"listener {port} 127.0.0.1"]
    if security.authenticates:
        passwd = write_password_file(data_dir / "passwd", security.users, security.password_file)
        acl = security.acl_file or files("adapters.mqtt").joinpath("acl.conf")
        lines += ["allow_anonymous false", f"password_file {passwd}", f"acl_file {acl}"]
    else:
        lines.append("allow_anonymous true")
    if security.tls:
        if security.key_file is None:
            raise ValueError("a TLS listener needs key_file as well as cert_file")
        lines += [f"certfile {security.cert_file}", f"keyfile {security.key_file}"]
        if security.ca_file is not None:
            lines.append(f"cafile {security.ca_file}")
        if security.require_certificate:
            if security.ca_file is None:
                raise ValueError("require_certificate needs ca_file (the clients' CA)")
            lines.append("require_certificate true")
    return "\n".join(lines)


def mosquitto_config(port: int, data_dir: Path, security: BrokerSecurity | None = None) -> str:
    """The shipped ``mosquitto.conf`` filled in for ``port``, ``data_dir`` and security."""
    template = files("adapters.mqtt").joinpath("mosquitto.conf").read_text()
    return template.format(
        listener=_listener(port, data_dir, security), data_dir=data_dir, user=getpass.getuser()
    )


class Mosquitto(ChildServer):
    """A Mosquitto child process with twin's configuration.

    Parameters
    ----------
    data_dir : Path
        Directory for the configuration, persistence file and log.
    port : int, optional
        Loopback port (default: a free one).
    security : BrokerSecurity, optional
        Users, ACL and TLS (default: anonymous clients, plain TCP).
    """

    name = "mosquitto"
    package = "mosquitto"

    def __init__(
        self, data_dir: Path, port: int | None = None, security: BrokerSecurity | None = None
    ) -> None:
        super().__init__(data_dir, port)
        self.security = security
        self.config = self.data_dir / "mosquitto.conf"
        self.config.write_text(mosquitto_config(self.port, self.data_dir, security))

    @property
    def url(self) -> str:
        """``mqtt://127.0.0.1:<port>`` (``mqtts://`` with TLS)."""
        scheme = "mqtts" if self.security is not None and self.security.tls else "mqtt"
        return f"{scheme}://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        """``mosquitto -c <config>``."""
        return [self.executable, "-c", str(self.config)]

    def ready(self) -> bool:
        """Whether the broker accepts TCP connections."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False


class Subscriber:
    """``mosquitto_sub`` with a persistent QoS 1 session, recording every message.

    A separate process and client library from the twin's, as an independent check
    (tests) and a consumer that keeps up (benchmarks). ``messages`` holds (topic,
    payload) in arrival order and ``arrivals`` the arrival times (Unix seconds).

    Parameters
    ----------
    broker : Mosquitto
        The broker.
    topic : str
        Topic filter to subscribe to.
    client_id : str
        Session name (kept by the broker while the subscriber is away).
    output : Path, optional
        Write ``mosquitto_sub``'s output to this file instead of reading it in a thread
        of this process: a consumer that shares nothing with the caller (throughput
        benchmarks); :meth:`refresh` reads what arrived so far.
    """

    def __init__(
        self, broker: Mosquitto, topic: str, client_id: str, output: Path | None = None
    ) -> None:
        self.broker = broker
        self.messages: list[tuple[str, str]] = []
        self.arrivals: list[float] = []
        self._output = output
        self._sink = open(output, "w") if output is not None else None  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                "mosquitto_sub",
                "-h",
                "127.0.0.1",
                "-p",
                str(broker.port),
                "-c",
                "-i",
                client_id,
                "-q",
                "1",
                "-F",
                "%U %t %p",
                "-t",
                topic,
                "-t",
                f"probe/{client_id}",
            ],  # fmt: skip
            stdout=self._sink if self._sink is not None else subprocess.PIPE,
            text=True,
        )
        if self._sink is None:
            self._reader = threading.Thread(target=self._read, daemon=True)
            self._reader.start()
        probe = f"probe/{client_id}"
        deadline = time.monotonic() + 10
        while not any(t == probe for t, _ in self.refresh()):  # subscribed once it hears this
            subprocess.run(
                ["mosquitto_pub", "-p", str(broker.port), "-q", "1", "-t", probe, "-m", "x"],
                check=True,
            )
            time.sleep(0.1)
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError("mosquitto_sub did not subscribe within 10 s")

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._add(line)

    def _add(self, line: str) -> None:
        stamp, topic, payload = (line.rstrip("\n").split(" ", 2) + [""])[:3]
        self.messages.append((topic, payload))
        self.arrivals.append(float(stamp))

    def refresh(self) -> list[tuple[str, str]]:
        """The messages so far (read from ``output`` when the subscriber writes a file)."""
        if self._output is not None:
            self.messages, self.arrivals = [], []
            with open(self._output) as lines:
                for line in lines:
                    if line.endswith("\n"):  # a line mosquitto_sub finished writing
                        self._add(line)
        return self.messages

    def count(self, prefix: str) -> int:
        """Messages so far whose topic starts with ``prefix``."""
        return sum(t.startswith(prefix) for t, _ in self.messages)

    def wait_for(self, count: int, prefix: str, timeout_s: float = 30.0) -> bool:
        """Wait until ``count`` messages under ``prefix`` arrived; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.count(prefix) >= count:
                return True
            time.sleep(0.05)
        return False

    def by_topic(self, prefix: str) -> dict[str, list[dict]]:
        """JSON payloads per topic under ``prefix`` (not meta/status), in arrival order."""
        out: dict[str, list[dict]] = {}
        for topic, payload in self.messages:
            if topic.startswith(prefix) and not topic.endswith(("/meta", "/status")):
                out.setdefault(topic, []).append(json.loads(payload))
        return out

    def stop(self) -> None:
        """End the subscriber process (and read its file, if it writes one)."""
        self.process.terminate()
        self.process.wait(5)
        if self._sink is None:
            self._reader.join(5)
        else:
            self._sink.close()
            self.refresh()
        if self.process.stdout is not None:
            self.process.stdout.close()
