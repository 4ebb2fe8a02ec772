"""Live updates for open pages: new readings and alerts as server-sent events.

Woken by the log's commit notification (the writer touches ``log.notify`` after
every commit; ``broker``'s ``CommitWatcher`` turns that into a readable inotify
descriptor, which the event loop watches with ``add_reader``), never by polling the
database. Only while a page is open: with no subscriber nothing is watched or read.
The new records are read in ``LogReads``' worker threads; each subscriber has a
bounded queue, and one that falls ``QUEUE_EVENTS`` behind is dropped (its page's
EventSource reconnects), so a slow client costs neither the loop nor memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from broker import KafkaConsumer, TopicPartition
from broker._notify import CommitWatcher
from edge.console._reads import LogReads, alert_item, decode_value

log = logging.getLogger("edge.console")

__all__ = ["QUEUE_EVENTS", "LiveHub", "sse_event"]

#: Events a subscriber may be behind before it is dropped.
QUEUE_EVENTS = 1000
#: The stream reads the log at most this often (commits in between are read together)...
LIVE_INTERVAL_S = 0.5
#: ...and at most this many of each partition's newest records per read (a `skipped` event
#: says what was left out). At 10,000
#: events/s no page can draw every reading, and reading them all would cost the box more
#: than the pages are worth: above that rate the stream carries the newest readings (a
#: page reads the whole history from /api/devices/{id}/readings).
LIVE_PER_PARTITION = 50
#: Where inotify is missing, how often the hub looks for new records instead.
_FALLBACK_S = 0.2
#: How often the topics read are looked up again (a device's topic appears with its
#: first reading, an alert topic with its first alert).
_REFRESH_TOPICS_S = 5.0


def sse_event(event: str, data: Any) -> bytes:
    """One server-sent event; ``data`` as compact JSON on one line."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class Subscriber:
    """One open stream: its queue of encoded events, and whether it fell too far behind."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(QUEUE_EVENTS)
        self.overflowed = False

    def put(self, event: bytes) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True


class LiveHub:
    """Fans new readings and alerts out to subscribers; ``overview`` to those who want it."""

    def __init__(self, reads: LogReads, notify_path: Path,
                 topics: Callable[[], tuple[dict[str, str], list[str]]]) -> None:
        """``topics()``: ({device topic: kind}, [alert topics]) of the current config."""
        self._reads = reads
        self._notify_path = notify_path
        self._topics = topics
        self.subscribers: set[Subscriber] = set()
        self._watcher: CommitWatcher | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._started = asyncio.Event()  # set once the running task knows where to read from
        self._positions: dict[TopicPartition, int] = {}
        self._last_refresh = 0.0

    async def subscribe(self) -> Subscriber:
        """A new subscriber, once the hub knows where it reads from: every record committed
        after this returns reaches it, so a page that opens its stream and then reads the API
        (as each page does) misses nothing in between."""
        sub = Subscriber()
        self.subscribers.add(sub)
        if self._task is None:
            self._started = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._tail(), name="console-live")
        task, started = self._task, asyncio.ensure_future(self._started.wait())
        try:
            await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            started.cancel()
        if not self._started.is_set():  # the hub could not start: this stream ends at once
            sub.overflowed = True
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)

    def publish(self, event: bytes) -> None:
        for sub in list(self.subscribers):
            sub.put(event)

    async def close(self) -> None:
        """End every open stream (their handlers return) and the tailing task."""
        for sub in list(self.subscribers):
            sub.overflowed = True
            with contextlib.suppress(asyncio.QueueFull):
                sub.queue.put_nowait(b"")  # wakes its handler
        self.subscribers.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _tail(self) -> None:
        loop = asyncio.get_running_loop()
        watcher = await asyncio.to_thread(CommitWatcher, self._notify_path)
        event_driven = watcher.event_driven
        fd = watcher.fileno()

        def woken() -> None:
            # The descriptor is level-triggered: read its events, and stop watching until the
            # next wait (a reader left in place fired on every turn of the loop while commits
            # came, all through the read and the pause after it). Commits meanwhile leave it
            # readable, so the next add_reader fires at once: nothing is missed.
            watcher.drain()
            loop.remove_reader(fd)
            self._wake.set()

        self._positions = {}
        try:
            await self._reads.run(self._start_at_end)
            self._started.set()
            while self.subscribers:
                if event_driven:
                    self._wake.clear()
                    loop.add_reader(fd, woken)
                    with contextlib.suppress(TimeoutError):
                        # The timeout also ends the task soon after the last page closed.
                        await asyncio.wait_for(self._wake.wait(), 5.0)
                    loop.remove_reader(fd)
                else:
                    await asyncio.sleep(_FALLBACK_S)
                t0 = loop.time()
                events = await self._reads.run(self._read_new)
                for e in events:
                    self.publish(e)
                await asyncio.sleep(max(0.0, LIVE_INTERVAL_S - (loop.time() - t0)))
        except asyncio.CancelledError:
            raise
        except Exception:  # a page must not take the service down: it reconnects
            log.exception("console: live updates stopped; open pages reconnect")
            for sub in list(self.subscribers):
                sub.overflowed = True
        finally:
            self._started.set()  # a subscriber waiting on a hub that failed to start: its
            # stream is marked overflowed above and ends, and the page reconnects
            if event_driven:
                loop.remove_reader(fd)
            watcher.close()
            self._task = None

    def _start_at_end(self, consumer: KafkaConsumer) -> None:
        self._refresh(consumer, at_end=True)

    def _refresh(self, consumer: KafkaConsumer, at_end: bool) -> None:
        """Follow the topics of the current config; a partition new to us starts at its end
        (at the start) or its beginning (a topic created since: its first records are new)."""
        import time

        self._last_refresh = time.monotonic()
        devices, alerts = self._topics()
        tps = []
        for topic in [*devices, *alerts]:
            parts = consumer.partitions_for_topic(topic)
            tps += [TopicPartition(topic, p) for p in sorted(parts or ())]
        new = [tp for tp in tps if tp not in self._positions]
        if new:
            start = consumer.end_offsets(new) if at_end else consumer.beginning_offsets(new)
            self._positions.update(start)
        self._positions = {tp: self._positions[tp] for tp in tps}

    def _read_new(self, consumer: KafkaConsumer) -> list[bytes]:
        """Events for the records committed since the last call (a worker thread)."""
        import time

        devices, alerts = self._topics()
        known = {tp.topic for tp in self._positions}
        if (time.monotonic() - self._last_refresh > _REFRESH_TOPICS_S
                or any(t not in known for t in [*devices, *alerts])):
            # A topic not in the log yet is looked for at each commit: a device's first
            # reading (or a first alert) creates it, and is news like any other.
            self._refresh(consumer, at_end=False)
        if not self._positions:
            return []
        tps = list(self._positions)
        ends = consumer.end_offsets(tps)
        events: list[bytes] = []
        for tp in tps:
            # Each partition up to the end read above: records committed meanwhile are the
            # next read's, so a busy log cannot keep one read going. Alerts are all sent;
            # readings, the newest LIVE_PER_PARTITION.
            first = self._positions[tp]
            if tp.topic in devices and ends[tp] - first > LIVE_PER_PARTITION:
                # Said, so that a page drawing every reading (a device's plot) reads the gap
                # from /api/devices/{id}/readings rather than drawing a hole.
                events.append(sse_event("skipped", {
                    "topic": tp.topic, "partition": tp.partition,
                    "from_offset": first, "to_offset": ends[tp] - LIVE_PER_PARTITION}))
                first = ends[tp] - LIVE_PER_PARTITION
            if first >= ends[tp]:
                continue
            consumer.assign([tp])
            consumer.seek(tp, first)
            for r in consumer.poll_raw(0, max_records=ends[tp] - first):
                key = None if r.key is None else r.key.decode("utf-8", "backslashreplace")
                value = decode_value(r.value)
                if tp.topic in devices:
                    events.append(sse_event("reading", {
                        "device": key, "ts_ms": r.timestamp, "partition": r.partition,
                        "offset": r.offset, "value": value}))
                else:
                    schema = dict(r.decoded_headers()).get("schema")
                    events.append(sse_event("alert", alert_item(
                        r.topic, r.timestamp, key, value,
                        None if schema is None else schema.decode("utf-8", "replace"))))
            self._positions[tp] = ends[tp]
        return events
