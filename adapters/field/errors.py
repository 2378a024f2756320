"""Errors of the field emulator."""

from __future__ import annotations

from twin.errors import TwinError

__all__ = ["FieldError", "FieldLinkError"]


class FieldError(TwinError, ValueError):
    """A field option or plan that cannot be used (named, with what was expected)."""


class FieldLinkError(FieldError):
    """The broker refused the emulator's login or TLS handshake, or was unreachable."""
