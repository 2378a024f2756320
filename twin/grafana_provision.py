"""Grafana provisioning files for the twin's dashboards, and links to a run.

:func:`write_all` writes ``dashboards/*.json`` and ``provisioning/`` (the InfluxDB
datasource, the dashboard provider and the alert rules on the health indices,
:mod:`twin.grafana_alerting`) under a directory: ``twin grafana --out grafana/``.
The datasource's URL, database and user are options; a password is never written: the
file names an environment variable (``secureJsonData.password: $TWIN_INFLUX_PASSWORD``)
that Grafana expands when it reads its provisioning.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from models.base import Clock
from twin.errors import TwinError
from twin.grafana import DATASOURCE_UID, OVERVIEW_UID, dashboards, to_json
from twin.grafana_alerting import alert_rules_yaml
from twin.grafana_queries import RUN_END, RUN_START, run_span_fields

__all__ = ["DatasourceOptions", "GrafanaConfigError", "run_link", "write_all"]

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class GrafanaConfigError(TwinError):
    """A ``twin grafana`` option or run directory that cannot be used."""


@dataclass(frozen=True)
class DatasourceOptions:
    """The InfluxDB the provisioned datasource points at.

    Parameters
    ----------
    url : str
        InfluxDB URL as Grafana's server sees it (``http://influxdb:8086`` in compose).
    database : str
        InfluxDB 1.x database (``outputs.influx.db`` of the runs).
    user : str or None
        InfluxDB user, if the server requires authentication.
    password_env : str or None
        Name of the environment variable holding the password in Grafana's environment;
        the password itself is never written.
    """

    url: str = "http://influxdb:8086"
    database: str = "twin"
    user: str | None = None
    password_env: str | None = None

    def __post_init__(self) -> None:
        if not re.match(r"^https?://[^\s\"'@/]+(/[^\s\"'@]*)?$", self.url):
            raise GrafanaConfigError(
                "--influx-url: expected http(s)://host:port with no login in it (give "
                "--user and --password-env: the password is never written to a file)"
            )
        if not self.database or any(c.isspace() for c in self.database):
            raise GrafanaConfigError(f"--database: expected a database name, got {self.database!r}")
        if self.user is not None and (not self.user or any(c.isspace() for c in self.user)):
            raise GrafanaConfigError(f"--user: expected a user name, got {self.user!r}")
        if self.password_env is not None and not _ENV_NAME.match(self.password_env):
            raise GrafanaConfigError(
                f"--password-env: expected an environment variable name, got {self.password_env!r}"
            )
        if self.password_env is not None and self.user is None:
            raise GrafanaConfigError("--password-env needs --user")

    def yaml(self) -> str:
        """The datasource provisioning file."""
        lines = [
            "# Grafana provisioning: the InfluxDB the twin writes to (written by `twin grafana`).",
            "apiVersion: 1",
            "datasources:",
            "  - name: twin InfluxDB",
            f"    uid: {DATASOURCE_UID}",
            "    type: influxdb",
            "    access: proxy",
            f"    url: {json.dumps(self.url)}",
        ]
        if self.user is not None:
            lines.append(f"    user: {json.dumps(self.user)}")
        lines += [
            "    jsonData:",
            f"      dbName: {json.dumps(self.database)}",
            "      httpMode: POST",
        ]
        if self.password_env is not None:
            lines += [
                "    # Grafana reads the password from its environment when provisioning.",
                "    secureJsonData:",
                f"      password: ${self.password_env}",
            ]
        lines.append("    isDefault: true")
        return "\n".join(lines) + "\n"


DASHBOARDS_YAML = """\
# Grafana provisioning: load the generated dashboards (written by `twin grafana`).
apiVersion: 1
providers:
  - name: twin
    folder: twin
    type: file
    disableDeletion: false
    allowUiUpdates: true
    options:
      path: /var/lib/grafana/dashboards/twin
"""


def write_all(out_dir: str | Path, datasource: DatasourceOptions | None = None) -> list[Path]:
    """Write ``dashboards/*.json`` and ``provisioning/`` (datasource, dashboards, alert rules)."""
    out = Path(out_dir)
    written = []
    for stem, board in dashboards().items():
        path = out / "dashboards" / f"{stem}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(to_json(board), indent=2, sort_keys=True) + "\n")
        written.append(path)
    for rel, text in {
        "provisioning/datasources/influxdb.yaml": (datasource or DatasourceOptions()).yaml(),
        "provisioning/dashboards/twin.yaml": DASHBOARDS_YAML,
        "provisioning/alerting/twin_health.yaml": alert_rules_yaml(DATASOURCE_UID),
    }.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written


def run_link(run_dir: str | Path, grafana_url: str = "http://localhost:3000") -> str:
    """The overview dashboard's URL with this run selected and its time range set.

    Raises
    ------
    GrafanaConfigError
        If ``run_dir`` has no readable ``run.json``.
    """
    path = Path(run_dir) / "run.json"
    try:
        meta = json.loads(path.read_text())
        spec = meta["scenario"]
        start = pd.Timestamp(spec["start"])
        step_s = int(pd.Timedelta(spec["step"]).total_seconds())
        n_steps = int(pd.Timedelta(spec["duration"]).total_seconds()) // step_s
        query = {"var-site": spec["name"], "var-run_id": meta["run_id"]}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise GrafanaConfigError(
            f"{path}: expected a run's run.json (run_id, scenario start/step/duration): {exc}"
        ) from exc
    span = run_span_fields(Clock(start, step_s, n_steps))
    query.update({"from": str(int(span[RUN_START])), "to": str(int(span[RUN_END]))})
    base = grafana_url.rstrip("/")
    return f"{base}/d/{OVERVIEW_UID}/twin-overview?{urllib.parse.urlencode(query)}"
