"""Errors of the uplink, leaves under ``edge``'s root ``EdgeError``::

    EdgeError (edge/_errors.py)
    ├── ConfigError (edge/_errors.py)
    │   └── UplinkConfigError     a bad UplinkConfig value: names the key and the value
    └── UplinkError               the uplink could not do its job
        ├── UpstreamError         the cluster failed or is unreachable (retriable: the
        │                         uplink itself retries these forever, with backoff)
        ├── FencedError           another uplink with the same edge id took over
        │                         (not retriable: this one stops writing)
        └── UplinkLockedError     another uplink with the same edge id runs on this
                                  log (``run()`` refuses to start; retriable: it may stop)

aiokafka's errors are translated in one place (``_translate.py``).
"""

from __future__ import annotations

from edge._errors import ConfigError, ConfigProblem, EdgeError

__all__ = ["FencedError", "UplinkConfigError", "UplinkError", "UplinkLockedError", "UpstreamError"]


class UplinkError(EdgeError):
    """Root of the uplink's own errors."""


class UpstreamError(UplinkError):
    """The upstream cluster failed a request or cannot be reached."""

    retriable = True


class FencedError(UplinkError):
    """A newer uplink with the same edge id (transactional id) fenced this one."""

    retriable = False


class UplinkLockedError(UplinkError):
    """Another uplink with the same edge id holds this log's uplink lock (``_fence.py``)."""

    retriable = True


class UplinkConfigError(ConfigError):
    """An ``UplinkConfig`` value that does not validate (``key``, ``got`` name it)."""

    def __init__(self, key: str, expected: str, got: object = ConfigProblem._MISSING) -> None:
        super().__init__(ConfigProblem("uplink", key, expected, got))

    @classmethod
    def of(cls, problems: list[ConfigProblem]) -> UplinkConfigError:
        """One error for several problems: ``key``, ``got`` are the first's, ``errors`` all."""
        error = cls.__new__(cls)
        ConfigError.__init__(error, problems)
        return error
