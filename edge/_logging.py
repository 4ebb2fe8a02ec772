"""Logging for the service: one line per event on stderr, journald-friendly."""

from __future__ import annotations

import logging
import os
import sys

__all__ = ["setup_logging"]


class _OneLineFormatter(logging.Formatter):
    """One line per log event (journald keeps them well): tracebacks folded onto the line."""

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).replace("\n", " | ")


def setup_logging(level: str = "INFO") -> None:
    """Log to stderr, one line per event; no timestamps under journald (it adds its own)."""
    fmt = "%(levelname)s %(name)s: %(message)s"
    if not os.environ.get("JOURNAL_STREAM"):
        fmt = "%(asctime)s " + fmt
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLineFormatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The uplink reports its connection state itself; aiokafka's own errors would repeat it.
    for noisy in ("aiokafka", "kafka"):
        logging.getLogger(noisy).setLevel(root.level if root.level <= logging.DEBUG else logging.CRITICAL)

