"""The twin's exceptions: one base class, specific subclasses users can act on."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Problem", "ResultsError", "RunError", "ScenarioError", "TwinError"]


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
