"""Errors of the fleet control channel, leaves under ``edge``'s root ``EdgeError``::

    EdgeError (edge/_errors.py)
    └── ControlError              the control channel could not do its job
        ├── ControlRefused        a desired state or command the box will not act on:
        │                         unsigned, badly signed, signed by an unknown key, or
        │                         not the shape PROTOCOL.md describes; ``reason`` is one
        │                         short word a report can carry, ``str()`` the detail
        └── KeyFileError          a signing or verifying key file cannot be read or is
                                  not an Ed25519 key in PEM (names the file)
"""

from __future__ import annotations

from edge._errors import EdgeError

__all__ = ["REFUSAL_REASONS", "ControlError", "ControlRefused", "KeyFileError"]

#: The reasons a ControlRefused carries, so the central side can count them by kind.
REFUSAL_REASONS = frozenset(
    {"unsigned", "malformed", "unknown_key", "bad_signature", "invalid", "not_for_me", "stale",
     "too_large"}
)


class ControlError(EdgeError):
    """Root of the control channel's own errors."""


class ControlRefused(ControlError):
    """A control record the box refuses; ``reason`` is one of ``REFUSAL_REASONS``."""

    retriable = False

    def __init__(self, reason: str, detail: str = "") -> None:
        if reason not in REFUSAL_REASONS:
            raise ValueError(f"unknown refusal reason {reason!r}")
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class KeyFileError(ControlError):
    """A key file that cannot be used; ``str()`` names the file and what is wrong."""

    retriable = False
