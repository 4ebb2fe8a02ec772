"""Errors of the fleet's central side, leaves under ``edge``'s root ``EdgeError``::

    EdgeError (edge/_errors.py)
    └── FleetError               a fleet command could not do its job; one line a person
        │                        can act on
        ├── FleetUsageError      bad input to a fleet command: a key file, a desired
        │                        document, a target or a duration (not retriable)
        ├── ClusterError         the cluster refused a request or cannot be reached
        │                        (retriable: run the command again)
        └── PartitionsChanged    partitions were added to the desired or commands topic:
                                 boxes would miss what is sent (not retriable)

aiokafka's errors are translated in one place (``_cluster.translate``).
"""

from __future__ import annotations

from edge._errors import EdgeError

__all__ = ["ClusterError", "FleetError", "FleetUsageError", "PartitionsChanged"]


class FleetError(EdgeError):
    """Root of the fleet CLI's own errors."""


class FleetUsageError(FleetError):
    """Input a fleet command cannot use: the message names it and what was expected."""

    retriable = False


class ClusterError(FleetError):
    """The cluster failed a request or could not be reached within the timeout."""

    retriable = True


class PartitionsChanged(FleetError):
    """A desired or commands topic's records no longer sit where their keys hash to."""

    retriable = False
