"""Reading the YAML files and values users hand the twin.

Every way a file can be unreadable (missing, a directory, too large, not UTF-8 text,
not YAML, nested too deeply) becomes a :class:`~twin.errors.ScenarioError` naming the
file and what was expected, never a Python traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from twin.errors import Problem, ScenarioError

__all__ = ["MAX_INPUT_BYTES", "parse_yaml", "read_yaml"]

#: Largest scenario or campaign file read (bytes); real ones are a few kB.
MAX_INPUT_BYTES = 1_000_000


def parse_yaml(text: str, source: str, path: str = "") -> Any:
    """Parse YAML text; a syntax error names ``source`` and ``path``.

    Raises
    ------
    ScenarioError
        If ``text`` is not valid YAML or is nested too deeply to parse.
    """
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        # the problem and where, never PyYAML's quote of the line: it may hold a password
        problem = getattr(exc, "problem", None) or getattr(exc, "context", None) or "syntax"
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ScenarioError([Problem(path, f"not valid YAML: {problem}{where}")], source) from None
    except RecursionError:
        raise ScenarioError([Problem(path, "YAML nested too deeply")], source) from None


def read_yaml(path: str | Path, what: str = "scenario") -> Any:
    """Read a YAML file of at most :data:`MAX_INPUT_BYTES` UTF-8 bytes.

    Parameters
    ----------
    path : str or Path
        The file.
    what : str
        What the file should hold (``scenario``, ``campaign``), for the messages.

    Raises
    ------
    ScenarioError
        If the file is missing, not a regular file, too large, not UTF-8 text or
        not valid YAML.
    """
    path = Path(path)
    source = str(path)

    def fail(message: str) -> ScenarioError:
        return ScenarioError([Problem("", message)], source)

    try:
        if path.is_dir():
            raise fail(f"is a directory; expected a {what} YAML file")
        size = path.stat().st_size
        if size > MAX_INPUT_BYTES:
            raise fail(
                f"{size:,} bytes; expected a {what} YAML file of at most {MAX_INPUT_BYTES:,} bytes"
            )
        data = path.read_bytes()
    except FileNotFoundError:
        raise fail(f"cannot read the {what} file: file not found") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        reason = getattr(exc, "strerror", None) or str(exc)
        raise fail(f"cannot read the {what} file: {reason}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise fail(
            f"not UTF-8 text (byte {exc.start}); expected a {what} YAML file, is it binary?"
        ) from None
    if "\x00" in text:
        raise fail(f"contains NUL bytes; expected a {what} YAML file, is it binary?")
    return parse_yaml(text, source)
