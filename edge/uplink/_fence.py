"""One uplink per edge id: a lock on this box, a lease upstream.

**This box** (both modes): ``LocalLock`` holds an exclusive ``flock`` on
``<data_dir>/uplink-<edge_id>.lock`` while ``run()`` runs; a second uplink with the same
edge id on the same log is refused at once (``UplinkLockedError``, naming the holder's pid).
The kernel drops the lock when its process dies, so a crash leaves nothing to clean up.

**Other boxes** with the same edge id (a cloned SD card, a copied config) share no lock.
Exactly once, Kafka fences them: each connect starts a transactional producer with
``transactional_id = edge-uplink-<edge_id>``, which bumps the producer epoch, so the older
uplink's next transaction fails (``ProducerFenced``) and what it had not committed is
aborted: nothing it writes after that is visible to a ``read_committed`` reader.

At least once the records are written by an idempotent producer without transactions
(faster, and possible on clusters without transactions), which Kafka cannot fence. So a
second producer with the same transactional id is used only to fence (``FenceLease``):
it bumps the epoch at connect, then every ``HEARTBEAT_S`` commits a transaction that holds
only the uplink's checkpoint (the upstream group ``edge-uplink-<edge_id>``, as exactly
once writes it). An uplink sends a batch only within ``HOLD_S`` of the start of its last
successful heartbeat; a newer uplink fences the older one at its connect and sends its
first batch ``GRACE_S`` (> ``HOLD_S``) after its own first heartbeat. The older one's
heartbeat fails with ``ProducerFenced`` (state ``fenced``, it stops) and, whatever its
heartbeats do, its lease has run out before the newer one's first send: the two never
send side by side. What this leaves: a batch the older uplink handed to its producer
before its lease ran out and that the cluster takes more than ``GRACE_S - HOLD_S`` to
accept can land after the newer one's first records.
A cluster that refuses transactions (no ``TransactionalId`` ACL, or no transactions at
all) gets no lease: the uplink says so in the log and relies on the local lock.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    InvalidProducerEpoch,
    KafkaError,
    ProducerFenced,
    TransactionalIdAuthorizationFailed,
    UnsupportedVersionError,
)
from aiokafka.structs import OffsetAndMetadata
from aiokafka.structs import TopicPartition as UpTP

from ._errors import FencedError, UplinkLockedError, UpstreamError

__all__ = ["GRACE_S", "HEARTBEAT_S", "HOLD_S", "FenceLease", "LocalLock"]

log = logging.getLogger("edge.uplink")

#: A heartbeat transaction every this many seconds (at least once).
HEARTBEAT_S = 0.5
#: A batch is sent only this long after the start of the last successful heartbeat.
HOLD_S = 1.5
#: A newly connected uplink sends its first batch this long after its first heartbeat.
GRACE_S = 2.5

_NO_TRANSACTIONS = (TransactionalIdAuthorizationFailed, ClusterAuthorizationFailedError,
                    UnsupportedVersionError)


class LocalLock:
    """An exclusive ``flock`` on ``<data_dir>/uplink-<edge_id>.lock`` (blocking file I/O:
    call from the uplink's thread)."""

    def __init__(self, data_dir: Path, edge_id: str) -> None:
        self.path = Path(data_dir) / f"uplink-{edge_id}.lock"
        self._edge_id = edge_id
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise ``UplinkLockedError`` naming the process that holds it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise UplinkLockedError(
                f"another uplink with edge id {self._edge_id!r} is running on this log (pid"
                f" {holder}, lock {self.path}); stop it first, or give this one its own edge_id"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Let go of the lock; safe to call twice."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)   # closing the only descriptor drops the flock


class FenceLease:
    """At least once: fences every other uplink with our transactional id at ``start()``,
    then holds the lease with heartbeat transactions (see the module's docstring).

    ``checkpoint()`` returns the offsets each heartbeat commits (any non-empty set of
    offsets makes the coordinator check our epoch). ``hold()`` is awaited before each batch.
    """

    def __init__(self, options: dict[str, Any], transactional_id: str, group_id: str,
                 checkpoint: Callable[[], dict[UpTP, OffsetAndMetadata]], timeout_s: float) -> None:
        self._options = options
        self._timeout_s = timeout_s
        self._transactional_id = transactional_id
        self._group_id = group_id
        self._checkpoint = checkpoint
        self._producer: AIOKafkaProducer | None = None
        self._task: asyncio.Task[None] | None = None
        self._valid_until = 0.0
        self._renewed = asyncio.Event()
        self.available = False

    async def start(self) -> None:
        """Fence the others, take the lease, wait ``GRACE_S``. Raises ``UpstreamError``."""
        producer = AIOKafkaProducer(**self._options, transactional_id=self._transactional_id,
                                    enable_idempotence=True, acks="all")
        try:
            await producer.start()
        except _NO_TRANSACTIONS as exc:
            await producer.stop()
            log.warning("uplink: the cluster refuses transactional id %r (%s): another box with"
                        " this edge id would not be fenced, only a second uplink on this box",
                        self._transactional_id, type(exc).__name__)
            return
        except BaseException:
            await producer.stop()
            raise
        self._producer = producer
        self.available = True
        await self._heartbeat()
        self._task = asyncio.create_task(self._beat(), name="uplink-fence-lease")
        await asyncio.sleep(GRACE_S)   # the uplink we fenced stops sending meanwhile
        await self.hold()

    async def hold(self) -> None:
        """Return when the lease holds (at once, normally); raise ``FencedError`` if another
        uplink took it, ``UpstreamError`` if the heartbeats fail."""
        while self.available:
            if self._task is not None and self._task.done():
                self._task.result()   # the heartbeat's failure: fenced or upstream
                raise UpstreamError("upstream: the fencing heartbeat stopped")
            if time.monotonic() < self._valid_until:
                return
            self._renewed.clear()
            await self._renewed.wait()

    async def close(self) -> None:
        """Stop the heartbeats and the producer (without committing anything); safe twice."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                await asyncio.wait_for(producer.stop(), 5)
            except Exception as exc:  # closing a broken producer
                log.debug("closing the fencing producer: %r", exc)

    async def _beat(self) -> None:
        try:
            while True:
                await asyncio.sleep(HEARTBEAT_S)
                await self._heartbeat()
        finally:
            self._renewed.set()   # wake hold(): it sees the task done and raises its error

    async def _heartbeat(self) -> None:
        producer = self._producer
        if producer is None:  # close() cancels the heartbeats before it drops the producer
            raise UpstreamError("upstream: a fencing heartbeat after the lease was closed")
        started = time.monotonic()
        offsets = self._checkpoint()
        try:
            # aiokafka waits for an unreachable coordinator forever inside a transaction.
            async with asyncio.timeout(self._timeout_s):
                await producer.begin_transaction()
                await producer.send_offsets_to_transaction(offsets, self._group_id)
                await producer.commit_transaction()
        except (ProducerFenced, InvalidProducerEpoch) as exc:
            raise FencedError(f"upstream: fenced by a newer uplink with the same edge id"
                              f" ({exc!r})") from exc
        except (KafkaError, OSError, TimeoutError) as exc:
            raise UpstreamError(f"upstream: fencing heartbeat: {type(exc).__name__}: {exc}"
                                ) from exc
        self._valid_until = started + HOLD_S
        self._renewed.set()
