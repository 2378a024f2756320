"""The twin's exceptions: one base class, specific subclasses users can act on."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Problem", "ResultsError", "RunError", "ScenarioError", "TwinError", "did_you_mean"]


class TwinError(Exception):
    """Base class of every error the twin raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One problem in a scenario: where it is and what was expected."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path or '<scenario>'}: {self.message}"


class ScenarioError(TwinError):
    """A scenario is invalid; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem], source: str = "scenario") -> None:
        self.problems = problems
        self.source = source
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem(s)\n{lines}")


class RunError(TwinError):
    """A co-simulation run failed."""


class ResultsError(TwinError):
    """The files of a run (or campaign) directory are missing, corrupt or not the twin's."""


def did_you_mean(value: str, known: Iterable[str], *, lead: bool = False) -> str:
    """A hint at the known name closest to ``value`` (``""`` when none is close).

    ``"; did you mean 'x'?"`` to follow a message, or with ``lead`` ``"did you mean
    'x'? "`` to precede a list of the known names.
    """
    close = difflib.get_close_matches(value, list(known), n=1)
    if not close:
        return ""
    return f"did you mean {close[0]!r}? " if lead else f"; did you mean {close[0]!r}?"
