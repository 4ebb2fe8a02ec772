"""Where each local partition resumes at a connect: the upstream checkpoint over what is
known locally (``_resume_positions``), then the re-sends under way (``_resend.py``)."""

from __future__ import annotations

import logging

from broker import TopicPartition

from ._base import _UplinkBase
from ._resend import settle
from ._resume import scan_upstream

log = logging.getLogger("edge.uplink")

class _Resuming(_UplinkBase):
    async def _resume_positions(self, checkpoint: dict[TopicPartition, int]
                                ) -> dict[TopicPartition, int]:
        """Where each local partition resumes (exactly once): the checkpoint, never below
        what is known to be upstream (the local group's commits, what this process saw
        committed); a topic whose checkpoint is gone (expired while the box was away) is
        looked up in the upstream topic's headers (``_resume.py``)."""
        floor = await self._in_thread(self._open_local.committed_positions)
        for tp, off in self._replicated.items():
            floor[tp] = max(off, floor.get(tp, 0))
        out = dict(floor)
        have = {tp.topic for tp in checkpoint}
        for topic in {tp.topic for tp in floor} - have:
            # A topic with no local commit was never replicated by this log: nothing to find
            # (and a box re-imaged with the same edge id must not skip its new records).
            parts = {tp.partition: off for tp, off in floor.items() if tp.topic == topic}
            upstream = self._upstream[topic]
            found = await scan_upstream(self._client_options(), self.config.edge_id, upstream,
                                        len(await self._connected_producer.partitions_for(upstream)), parts,
                                        self.config.resume_scan_records)
            log.info("uplink %s: no checkpoint upstream for %r; resuming after the last records"
                     " found upstream %s (local commits %s)", self.config.edge_id, topic,
                     found, parts)
            for p, off in found.items():
                tp = TopicPartition(topic, p)
                out[tp] = max(off, out.get(tp, 0))
        for tp, off in checkpoint.items():
            out[tp] = max(off, out.get(tp, 0))
        # Upstream says more was sent than this log ever held: it was another log under our
        # edge id (a box re-imaged or its topic recreated), whose offsets say nothing here;
        # trusting them would skip this log's records silently.
        ends = await self._in_thread(self._open_local.end_offsets)
        for tp, off in out.items():
            if tp in ends and off > ends[tp]:
                log.warning("uplink %s: upstream has %s up to offset %d but this log ends at %d:"
                            " it came from another log with this edge id; sending %s from"
                            " offset %d (the local commit)", self.config.edge_id, tp, off,
                            ends[tp], tp, floor.get(tp, 0))
                out[tp] = floor.get(tp, 0)
        return out

    async def _resume_resends(self, usual: dict[TopicPartition, int] | None
                              ) -> dict[TopicPartition, int] | None:
        """Where the partitions with a re-send under way resume instead (``_resend.py``),
        over ``usual`` (None: the local commits); their commits settled before any send."""
        local = self._open_local
        resends = await self._in_thread(local.resends)
        if not resends:
            self._resending = {}
            return usual
        if usual is None:
            usual = await self._in_thread(local.committed_positions)
        positions, store = settle(resends, usual)
        self._resending = await self._in_thread(local.keep_resends, positions, store)
        if self._resending:
            log.info("uplink %s: sending again %s", self.config.edge_id,
                     ", ".join(f"{tp.topic}[{tp.partition}] from {positions[tp]} to {end}"
                               for tp, end in sorted(self._resending.items())))
        return {**usual, **positions}
