"""Any registered twin model as a mosaik simulator in its own process.

mosaik starts it (its ``cmd`` form; mosaik fills in ``%(python)s``, the interpreter
running the world, and ``%(addr)s``, the address to call back)::

    sim_config = {"Grid": {"cmd": "%(python)s -m twin.simulator --model grid %(addr)s"}}
    sim = world.start("Grid", clock=clock.to_dict())

or it runs first and waits for mosaik (its ``connect`` form)::

    python -m twin.simulator --model grid --remote 127.0.0.1:5678
    sim_config = {"Grid": {"connect": "127.0.0.1:5678"}}

Without ``--model`` the world names the model at start
(``world.start("Grid", model="grid", clock=...)``), exactly as for the in-process
:class:`twin.wrapper.ModelSimulator`; ``units``, ``context`` and ``record`` go to
``create`` as there (see :mod:`twin.assembly`). ``python -m twin.simulator --help``
lists the options.
"""

from __future__ import annotations

import sys
from typing import Any

import mosaik_api_v3

from twin.errors import TwinError
from twin.registry import UnknownModelError, get_model
from twin.wrapper import ModelSimulator

__all__ = ["ModelChoiceError", "RemoteModelSimulator", "main"]

DESCRIPTION = "Run a registered twin model (pv, load, grid, battery...) as a mosaik simulator."
OPTIONS = ["-m MODEL, --model MODEL  Registered model to run (else named by the world at start)"]


class ModelChoiceError(TwinError):
    """No model named, or the command line and the world name different ones."""


class RemoteModelSimulator(ModelSimulator):
    """:class:`~twin.wrapper.ModelSimulator` whose model may come from the command line."""

    def __init__(self) -> None:
        super().__init__()
        self.cli_model: str | None = None

    def configure(self, args: dict[str, Any]) -> None:
        """Take ``--model`` from the command line (checked against the registry)."""
        self.cli_model = args.get("--model")
        if self.cli_model is not None:
            get_model(self.cli_model)  # an unknown name fails before connecting

    def init(
        self,
        sid: str,
        time_resolution: float = 1.0,
        *,
        clock: dict[str, Any],
        model: str | None = None,
    ) -> dict[str, Any]:
        """Load the model (``model`` or ``--model``) and declare its meta."""
        if model is None and self.cli_model is None:
            raise ModelChoiceError(
                f"{sid}: no model: give --model on the command line or model=... at start"
            )
        if model is not None and self.cli_model is not None and model != self.cli_model:
            raise ModelChoiceError(
                f"{sid}: started with --model {self.cli_model} but the world asks for {model!r}"
            )
        chosen = model or self.cli_model
        assert chosen is not None
        return super().init(sid, time_resolution, model=chosen, clock=clock)


def main() -> int:
    """Parse the command line (mosaik's ``HOST:PORT`` and options) and serve one world."""
    try:
        return mosaik_api_v3.start_simulation(
            RemoteModelSimulator(), DESCRIPTION, OPTIONS, configure_logging=False
        )
    except UnknownModelError as exc:
        print(f"twin.simulator: {exc.args[0]}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
