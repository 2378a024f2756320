"""Schema of the ``outputs.influx`` section: where and how a run writes to InfluxDB."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import unquote

from pydantic import Field, SecretStr, model_validator

from twin.bounds import (
    bounded,
)
from twin.scenario import Strict

__all__ = ["InfluxSpec"]


class InfluxSpec(Strict):
    """Write the run to InfluxDB as it runs (``adapters.influx``).

    ``api: v1`` uses the 1.x HTTP API (``db``, ``rp``, ``username``, ``password``);
    ``api: v2`` uses influxdb-client (``token``, ``org``, ``bucket``) for 2.x and 3.x.
    A secret is given as a value (``password``), the name of an environment variable
    (``password_env``) or a file holding it (``password_file``); likewise ``token``.
    Secrets never appear in ``run.json`` (``'**********'``), logs or messages; a
    ``user:password@`` in the URL is moved to ``username`` and ``password``. The
    database must exist unless ``create_database: true``. https is verified
    (``verify_tls``) against the system CAs or ``ca_file``. While the server cannot
    take the data, batches wait in ``spool_dir`` (default ``<run dir>/influx-spool``)
    and are replayed in order (``twin influx flush RUN_DIR`` replays what a run left).
    """

    # no login left in it (moved out below), none after the host (a '/' in a password
    # must be percent-encoded) and none as query parameters (1.x reads ?u=&p=)
    url: Annotated[
        str,
        Field(pattern=r"^https?://[^@/?#\s]+(/[^@?#\s]*)?$"),
    ]
    api: Literal["v1", "v2"] = "v1"
    db: str = "twin"
    rp: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    password_env: str | None = None
    password_file: str | None = None
    token: SecretStr | None = None
    token_env: str | None = None
    token_file: str | None = None
    org: str | None = None
    bucket: str | None = None
    batch_size: Annotated[int, Field(ge=1, le=1_000_000)] = 5000
    flush_interval_s: bounded(0.0, 3600.0, low_open=True) = 1.0
    gzip: bool = True
    retries: Annotated[int, Field(ge=0, le=20)] = 3
    timeout_s: bounded(0.0, 600.0, low_open=True) = 10.0
    spool_dir: str | None = None
    create_database: bool = False
    verify_tls: bool = True
    ca_file: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _credentials_out_of_the_url(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("url"), str):
            return data
        scheme, sep, rest = data["url"].partition("://")
        host, slash, path = rest.partition("/")
        if not sep or "@" not in host:
            return data
        userinfo, host = host.rsplit("@", 1)
        user, _, password = userinfo.partition(":")
        data = {**data, "url": f"{scheme}://{host}{slash}{path}"}
        data.setdefault("username", unquote(user) or None)
        if password:
            data.setdefault("password", unquote(password))
        return data

    @model_validator(mode="after")
    def _one_source_per_secret(self) -> InfluxSpec:
        for name in ("password", "token"):
            given = [f for f in (name, f"{name}_env", f"{name}_file") if getattr(self, f)]
            if len(given) > 1:
                raise ValueError(f"give {name} one way, not {' and '.join(given)}")
        if self.api == "v2" and not (
            self.bucket and self.org and (self.token or self.token_env or self.token_file)
        ):
            raise ValueError("api v2 needs token (or token_env/token_file), org and bucket")
        return self
