"""Upstream topics: created with the local partition count, an existing one's count checked.

A keyed record goes to ``murmur2(key) % partitions`` on both sides, so a key has the same
partition number here and upstream only if the two counts are equal. A topic the uplink
creates gets the local count (or the mapping's explicit ``partitions``); a topic that
already exists upstream with another count is left as it is (changing a topic's count
moves keys, the operator's call) and reported: logged once, in ``UplinkStatus`` and in the
``edge_uplink_partition_mismatch`` metric.
"""

from __future__ import annotations

import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from ._config import TopicMapping
from ._status import PartitionMismatch

__all__ = ["UpstreamTopics"]

log = logging.getLogger("edge.uplink")


class UpstreamTopics:
    """Makes sure each mapped upstream topic exists before the first record goes to it.

    ``ensure()`` is called per connection with the local topics present now; a local topic
    that appears later is ensured before its first batch (``ensure`` again): aiokafka's
    metadata request would otherwise let the cluster auto-create it with its own default
    count (``num.partitions``, 1 unless configured).
    """

    def __init__(self, mappings: tuple[TopicMapping, ...]) -> None:
        self._mappings = {m.local: m for m in mappings}
        self._ensured: set[str] = set()   # local topics whose upstream topic exists (this connection)
        self.mismatches: dict[str, PartitionMismatch] = {}
        # Upstream topic -> why the cluster refused to create it (a replication factor it
        # cannot meet, a policy); the uplink replicates the other topics meanwhile.
        self.refused: dict[str, str] = {}

    def reset(self) -> None:
        """Forget what was ensured: a new connection looks again (the topic may be gone)."""
        self._ensured.clear()

    def ensured(self, local: str) -> bool:
        return local in self._ensured

    async def ensure(self, admin: AIOKafkaAdminClient, local_counts: dict[str, int]) -> None:
        """Create the missing upstream topics of ``local_counts`` (local topic -> its partition
        count), check the existing ones' counts; one the cluster refuses to create is
        kept in ``refused``."""
        todo = {t: n for t, n in local_counts.items() if t not in self._ensured}
        if not todo:
            return
        existing = set(await admin.list_topics())
        for t in todo:
            if self._mappings[t].upstream in existing:   # made meanwhile, by someone else
                self.refused.pop(self._mappings[t].upstream, None)
        wanted = {t: self._mappings[t].partitions or n for t, n in todo.items()}
        new = [NewTopic(self._mappings[t].upstream, wanted[t], self._mappings[t].replication_factor)
               for t in todo if self._mappings[t].upstream not in existing]
        if new:
            response = await admin.create_topics(new)
            for topic, code, *rest in response.topic_errors:
                if code and for_code(code) is not TopicAlreadyExistsError:
                    self.refused[topic] = (f"creating upstream topic {topic!r} was refused:"
                                           f" {for_code(code).__name__}: {rest[0] if rest else ''}")
                else:
                    self.refused.pop(topic, None)
        counts = await self._upstream_counts(admin, [self._mappings[t].upstream for t in todo])
        for local, n in todo.items():
            m = self._mappings[local]
            up = counts.get(m.upstream)
            if up is None:   # just created, metadata not yet propagated: look again next batch
                continue
            self._ensured.add(local)
            if up != n:
                mismatch = PartitionMismatch(local, m.upstream, n, up)
                if self.mismatches.get(local) != mismatch:
                    log.warning("uplink: %s", mismatch)
                self.mismatches[local] = mismatch
            else:
                self.mismatches.pop(local, None)

    @staticmethod
    async def _upstream_counts(admin: AIOKafkaAdminClient, topics: list[str]) -> dict[str, int]:
        out = {}
        for t in await admin.describe_topics(topics):
            if not t["error_code"] and t["partitions"]:
                out[t["topic"]] = len(t["partitions"])
        return out
