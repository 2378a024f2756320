"""Who connects to the broker and how: broker URLs, credentials and TLS.

- ``mqtt://host:port`` (port 1883) is plain TCP; ``mqtts://host:port`` (port 8883) is
  TLS, verified against ``ca_file`` (or the system's CAs) with the broker's host name.
- A username and password come from the URL (``mqtt://user:pw@host``), the scenario
  (``username``, ``password``, ``password_env``, ``password_file``) or the command
  line. The password is kept out of every URL, message and file the twin writes: the
  URL is shown :func:`redacted`, and :class:`MqttAuth` never prints it.
- A client certificate (``cert_file``, ``key_file``) authenticates the client to a
  broker that asks for one.

The broker side (password file, ACL, TLS listener) is in :mod:`adapters.mqtt.broker`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from twin.errors import TwinError

__all__ = [
    "BrokerAddress",
    "MqttAuth",
    "MqttAuthError",
    "parse_broker",
    "read_secret",
    "redacted",
]

SCHEMES = {"mqtt": False, "tcp": False, "mqtts": True, "ssl": True}


class MqttAuthError(TwinError, ValueError):
    """Credentials or TLS files that cannot be used (named, never shown)."""


@dataclass(frozen=True)
class BrokerAddress:
    """A parsed broker URL (the password is never part of its text)."""

    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """``scheme://[user@]host:port``, without the password."""
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"


def parse_broker(url: str) -> BrokerAddress:
    """Parse ``mqtt[s]://[user[:password]@]host[:port]`` (or ``host:port``).

    Raises
    ------
    ValueError
        For another scheme or a URL without a host (the password is not repeated).
    """
    parsed = urlparse(url if "://" in url else f"mqtt://{url}")
    if parsed.scheme not in SCHEMES or not parsed.hostname:
        raise ValueError(
            f"broker URL {redacted(url)!r}: expected mqtt://host:port or mqtts://host:port"
        )
    tls = SCHEMES[parsed.scheme]
    try:
        port = parsed.port or (8883 if tls else 1883)
    except ValueError:
        raise ValueError(f"broker URL {redacted(url)!r}: the port is not a number") from None
    return BrokerAddress(
        parsed.hostname,
        port,
        tls,
        unquote(parsed.username) if parsed.username else None,
        unquote(parsed.password) if parsed.password is not None else None,
    )


def redacted(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    userinfo, at, host = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{host}"


def read_secret(*, env: str | None = None, file: str | Path | None = None, what: str) -> str:
    """A secret from an environment variable or a file (its first line).

    Raises
    ------
    MqttAuthError
        Naming the variable or file (and ``what`` it was for), never the secret.
    """
    if env is not None:
        value = os.environ.get(env)
        if not value:
            raise MqttAuthError(f"{what}: environment variable {env} is not set")
        return value
    if file is not None:
        try:
            lines = Path(file).read_text().splitlines()
        except OSError as exc:
            raise MqttAuthError(f"{what}: cannot read {file}: {exc.strerror or exc}") from None
        if not lines or not lines[0]:
            raise MqttAuthError(f"{what}: {file} is empty")
        return lines[0]
    raise MqttAuthError(f"{what}: no environment variable or file given")


@dataclass(frozen=True)
class MqttAuth:
    """Credentials and TLS settings of one client.

    ``tls`` is switched on by an ``mqtts://`` URL or by any TLS file. The password is
    excluded from ``repr`` and from :meth:`public`.
    """

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> MqttAuth:
        """From :meth:`as_dict` (``None`` or empty: no authentication, no TLS)."""
        return cls(**(data or {}))

    @classmethod
    def from_spec(cls, login: Any, tls: Any = None, *, what: str = "mqtt") -> MqttAuth:
        """From a scenario's login and TLS section.

        ``login`` has ``username``, ``password`` (a SecretStr), ``password_env`` and
        ``password_file``; ``tls`` has ``ca_file``, ``cert_file`` and ``key_file``. The
        password is read here, when the run starts, not when the scenario is validated
        (the environment and files of the machine that runs it count).
        """
        password = None
        if login is not None:
            if login.password is not None:
                password = login.password.get_secret_value()
            elif login.password_env or login.password_file:
                password = read_secret(
                    env=login.password_env, file=login.password_file, what=f"{what} password"
                )
        files = {}
        if tls is not None:
            files = {
                name: str(getattr(tls, name)) if getattr(tls, name) else None
                for name in ("ca_file", "cert_file", "key_file")
            }
        return cls(
            username=login.username if login is not None else None,
            password=password,
            tls=tls is not None,
            **files,
        )

    def as_dict(self) -> dict[str, Any]:
        """All fields (with the password: hand it only to an in-process simulator)."""
        return {
            "username": self.username,
            "password": self.password,
            "tls": self.tls,
            "ca_file": self.ca_file,
            "cert_file": self.cert_file,
            "key_file": self.key_file,
        }

    def public(self) -> dict[str, Any]:
        """What may be shown: everything but the password."""
        shown = self.as_dict()
        shown["password"] = "**********" if self.password else None
        return shown

    def for_url(self, address: BrokerAddress) -> MqttAuth:
        """These settings completed by the URL's scheme and credentials."""
        return replace(
            self,
            tls=self.tls or address.tls or bool(self.ca_file or self.cert_file),
            username=self.username or address.username,
            password=self.password if self.password is not None else address.password,
        )

    def apply(self, client: Any) -> None:
        """Configure a paho client (credentials, TLS)."""
        if self.username is not None:
            client.username_pw_set(self.username, self.password)
        if self.tls:
            for name in ("ca_file", "cert_file", "key_file"):
                path = getattr(self, name)
                if path is not None and not Path(path).is_file():
                    raise MqttAuthError(f"TLS {name} {path} does not exist")
            if bool(self.cert_file) != bool(self.key_file):
                raise MqttAuthError("TLS needs both cert_file and key_file (or neither)")
            client.tls_set(ca_certs=self.ca_file, certfile=self.cert_file, keyfile=self.key_file)
