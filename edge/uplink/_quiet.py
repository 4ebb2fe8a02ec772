"""aiokafka's own warnings and errors, logged at DEBUG: the uplink says what happened.

While the cluster is away aiokafka logs an ERROR for every failed connect and metadata
request (about 130 lines a second against a stopped broker), and a WARNING for every
retried produce. The uplink logs one line per state change with the cause it found
(``status().last_error`` holds it too), so aiokafka's lines are kept for DEBUG, where
they help whoever is digging, and are dropped otherwise.
"""

from __future__ import annotations

import logging

__all__ = ["quiet_aiokafka"]


class _Demote(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno <= logging.DEBUG:
            return True
        if not logging.getLogger(record.name).isEnabledFor(logging.DEBUG):
            return False
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


_FILTER = _Demote()


def quiet_aiokafka() -> None:
    """Attach the filter to every ``aiokafka`` logger (a logger's filters do not apply to
    its children, so each needs it); safe to call again."""
    names = ["aiokafka"] + [n for n in logging.root.manager.loggerDict if n.startswith("aiokafka.")]
    for name in names:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
