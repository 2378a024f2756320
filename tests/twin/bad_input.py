"""Helpers of the bad-input tests: a named failure, and nothing left that looks like a result."""

from pathlib import Path

from click.testing import Result

#: Files whose presence says "a run (or campaign) produced something".
RESULT_FILES = ("results.parquet", "kpis.json", "run.json", "summary.parquet", "summary.csv")


def assert_named_failure(result: Result, *needles: str) -> None:
    """Exit code 2 through the CLI's error path, no traceback, the needles in the message."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert "error:" in result.output, result.output
    for needle in needles:
        assert needle in result.output, (needle, result.output)


def results_under(root: Path) -> list[Path]:
    """Every file under ``root`` that looks like a result."""
    return [path for name in RESULT_FILES for path in root.rglob(name)]
