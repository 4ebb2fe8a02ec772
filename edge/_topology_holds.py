"""Lifting the retention hold of topologies taken out of the config.

It runs at every start, with or without ``[[streams]]``, so it lives apart from the
stream engine (edge.streams and edge/_streams.py, ~2 MB of RSS), which is imported
only when a topology is configured.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from broker import KafkaAdminClient, LogConfig

log = logging.getLogger("edge.streams")

#: A topology's input group is this and its name (edge.streams' ``Topology.group_id``;
#: tests/edge/test_lazy_imports.py checks that the two agree).
GROUP_PREFIX = "streams."


def release_removed_topologies(log_config: LogConfig, configured: Iterable[str]) -> list[str]:
    """Unprotect the input groups of topologies not in ``configured`` (names); return those groups.

    Blocks (SQLite).  Their committed offsets stay, so a topology put back
    resumes where it was; what retention removed meanwhile it counts as skipped.
    """
    keep = {GROUP_PREFIX + name for name in configured}
    released = []
    with KafkaAdminClient(log_config=log_config) as admin:
        for group, _ in admin.list_consumer_groups():
            if group.startswith(GROUP_PREFIX) and group not in keep \
                    and admin.describe_consumer_group(group).protected:
                admin.protect_consumer_group(group, protected=False)
                released.append(group)
                log.info("streams: group %s is no longer configured; retention no longer keeps "
                         "its unprocessed input", group)
    return released
