"""A page opened in headless Chromium over the DevTools protocol (websocket-client).

``with Browser() as browser: page = browser.open(path)`` loads a file, waits until every
plotly graph has drawn, and collects console errors and uncaught exceptions;
``browser.evaluate(js)`` returns a JSON value, ``browser.screenshot(path)`` writes a PNG.
"""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import websocket

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: Set to 1 to skip the browser tests where chromium cannot be installed.
SKIP_ENV = "TWIN_SKIP_BROWSER"


def require_chromium(chromium: str | None = CHROMIUM) -> str:
    """The chromium binary; a missing one fails the test unless ``TWIN_SKIP_BROWSER=1``."""
    import os

    import pytest

    if chromium:
        return chromium
    if os.environ.get(SKIP_ENV) == "1":
        pytest.skip(f"chromium missing and {SKIP_ENV}=1")
    pytest.fail(f"chromium missing: `make servers` installs it ({SKIP_ENV}=1 skips these tests)")


#: Resolves once every plotly graph on the page has drawn its SVG.
PLOTS_DRAWN = """
new Promise(function (resolve) {
  function check() {
    var graphs = document.querySelectorAll('.plotly-graph-div');
    var done = Array.prototype.every.call(graphs, function (g) {
      return g._fullLayout && g.querySelector('.main-svg');
    });
    if (done && document.readyState === 'complete') resolve(graphs.length);
    else setTimeout(check, 50);
  }
  check();
})
"""


class Browser:
    """Headless Chromium with one page, driven over the DevTools protocol."""

    def __init__(self, width: int = 1280, height: int = 900, timeout_s: float = 120.0) -> None:
        if CHROMIUM is None:
            raise RuntimeError("chromium is not installed (`make servers` installs it)")
        self.width, self.height, self.timeout_s = width, height, timeout_s
        self.errors: list[str] = []
        self._ids = itertools.count(1)

    def __enter__(self) -> Browser:
        self._profile = tempfile.TemporaryDirectory(prefix="twin-chromium-")
        self._proc = subprocess.Popen(
            [
                CHROMIUM,
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--remote-debugging-port=0",
                f"--user-data-dir={self._profile.name}",
                f"--window-size={self.width},{self.height}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port = self._port()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list") as reply:
            targets = json.loads(reply.read())
        url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
        self._ws = websocket.create_connection(url, timeout=self.timeout_s, suppress_origin=True)
        for method in ("Runtime.enable", "Page.enable", "Log.enable"):
            self.send(method)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._ws.close()
        finally:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._profile.cleanup()

    def _port(self) -> int:
        path = Path(self._profile.name) / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            if path.is_file():
                lines = path.read_text().split()
                if lines:
                    return int(lines[0])
            if self._proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {self._proc.returncode}")
            time.sleep(0.05)
        raise RuntimeError("chromium did not open its DevTools port")

    def _note(self, message: dict[str, Any]) -> None:
        """Keep console errors and uncaught exceptions of an event."""
        method, params = message.get("method"), message.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            args = " ".join(str(a.get("value", a.get("description"))) for a in params["args"])
            self.errors.append(f"console.{params['type']}: {args}")
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            text = details.get("exception", {}).get("description") or details.get("text")
            self.errors.append(f"exception: {text}")
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            self.errors.append(f"log: {params['entry'].get('text')}")

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        """Call a DevTools method; its result (events meanwhile are noted)."""
        ident = next(self._ids)
        self._ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self._ws.recv())
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self._note(message)

    def _wait_event(self, method: str) -> None:
        while True:
            message = json.loads(self._ws.recv())
            self._note(message)
            if message.get("method") == method:
                return

    def open(self, path: Path) -> int:
        """Load a file and wait until its plots are drawn; the number of plotly graphs."""
        self.send(
            "Emulation.setDeviceMetricsOverride",
            width=self.width,
            height=self.height,
            deviceScaleFactor=1,
            mobile=False,
        )
        self.send("Page.navigate", url=Path(path).resolve().as_uri())
        self._wait_event("Page.loadEventFired")
        return int(self.evaluate(PLOTS_DRAWN))

    def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression (a promise is awaited)."""
        reply = self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in reply:
            raise RuntimeError(f"{expression[:80]}: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    def screenshot(self, path: Path, full_page: bool = False, scale: float = 1.0) -> Path:
        """Write a PNG of the viewport (or the whole page)."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = self.send("Page.getLayoutMetrics")["cssContentSize"]
            params["captureBeyondViewport"] = True
            params["clip"] = {
                "x": 0,
                "y": 0,
                "width": size["width"],
                "height": size["height"],
                "scale": scale,
            }
        data = self.send("Page.captureScreenshot", **params)["data"]
        Path(path).write_bytes(base64.b64decode(data))
        return Path(path)
