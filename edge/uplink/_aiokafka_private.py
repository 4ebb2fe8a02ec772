"""Every use of aiokafka's private names, in one place, and the probe that checks them.

aiokafka has no public way to close a producer without flushing it: ``stop()`` waits for
every queued batch, which a cluster that went away (or froze) never takes, and a fenced
or failed transaction leaves its error on futures only ``commit``/``abort`` would read
(asyncio then prints "Future exception was never retrieved" after our clear message).
``abandon()`` does both through aiokafka's internals: the producer's closed flag, its
sender, the transaction manager's waiter and the accumulator's queued batches.

Nothing else in the uplink names them. ``can_abandon()`` runs ``probe()`` once per
process: on real producers (no cluster: a listener that never answers) it checks that a
producer with a batch queued (which ``stop()`` would wait for) is closed under it by
``abandon()``: its sender ended, ``stop()`` a no-op; and that the waiters are found where
they are read. When the probe fails (a newer aiokafka moved
them), or ``EDGE_UPLINK_ABANDON=0`` is set, the uplink closes a producer with the public
``stop()`` bounded in time instead (``close_plainly``): the same records upstream, the
stop as bounded, but a sender task left behind until the process ends, and asyncio's
"Future exception was never retrieved" noise after a fenced producer's message.

Checked against aiokafka 0.12 to 0.14; deploy/test.sh also runs the uplink tests against
the newest aiokafka release.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import aiokafka
from aiokafka import AIOKafkaProducer
from aiokafka.structs import TopicPartition

__all__ = ["ENV_ABANDON", "abandon", "can_abandon", "close_plainly", "pending_waiters", "probe"]

log = logging.getLogger(__name__)

#: ``0`` makes the uplink close producers with the public ``stop()`` only.
ENV_ABANDON = "EDGE_UPLINK_ABANDON"

_problem: list[str | None] = []  # the probe's answer, once per process
_said: set[str] = set()


async def abandon(producer: AIOKafkaProducer, grace_s: float) -> None:
    """Close `producer` without flushing: mark it closed (so ``stop()`` and its finaliser
    do nothing more), stop its sender (``grace_s`` for requests in flight), close its
    connections (which fails what is still in flight at once)."""
    producer._closed = True
    _read_leftover_sender_errors(asyncio.get_running_loop())
    # The sender, cancelled, still waits for its requests in flight, which a frozen cluster
    # holds for request_timeout_s: closing the connections fails them at once.
    closing = asyncio.ensure_future(producer._sender.close())
    await asyncio.wait([closing], timeout=grace_s)
    await producer.client.close()
    try:
        await asyncio.wait_for(closing, grace_s)
    except Exception as exc:  # a sender that failed: nothing left to save
        log.debug("closing the producer's sender: %r", exc)


def _read_leftover_sender_errors(loop: asyncio.AbstractEventLoop) -> None:
    """Read what the sender's own request tasks end in once their producer is abandoned.

    A produce request answered after the abandon re-enqueues its batch into an accumulator
    that no longer holds it (KeyError in ``reenqueue``), in a task the sender no longer
    awaits, and asyncio printed "Task exception was never retrieved" with a traceback
    after the uplink's clear message (seen once in ~20 fenced exits). Only tasks running
    aiokafka Sender methods, only that message; everything else goes where it went."""
    if getattr(loop, "_edge_sender_errors_read", False):
        return
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        task = context.get("future")
        coro = task.get_coro() if isinstance(task, asyncio.Task) else None
        code = getattr(coro, "cr_code", None)
        if ("never retrieved" in str(context.get("message", "")) and code is not None
                and f"{os.sep}aiokafka{os.sep}" in code.co_filename
                and code.co_qualname.split(".")[-2:-1] == ["Sender"]):
            log.debug("an abandoned producer's request ended in %r", context.get("exception"))
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
    loop._edge_sender_errors_read = True  # type: ignore[attr-defined]  # once per loop


def pending_waiters(producer: AIOKafkaProducer) -> list[asyncio.Future[Any]]:
    """The futures a failed producer leaves its errors on that nobody else reads: the
    transaction manager's waiter and each queued record batch's drain waiter."""
    txn = getattr(producer, "_txn_manager", None)
    waiters = [getattr(txn, "_transaction_waiter", None)]
    accumulator = producer._message_accumulator
    waiters += [batch._drain_waiter for queue in list(accumulator._batches.values())
                for batch in queue]
    return [w for w in waiters if isinstance(w, asyncio.Future)]


async def close_plainly(producer: AIOKafkaProducer, timeout_s: float) -> None:
    """The public way: ``stop()``, given `timeout_s` to flush, then the producer's
    connections closed (``client``, a public attribute), which fails its requests in flight
    at once. What it could not send stays unsent (the next producer aborts that
    transaction, or sends it again at least once). Its sender task is left to end by
    itself, or by the event loop's shutdown: no public call reaches it."""
    try:
        await asyncio.wait_for(producer.stop(), timeout_s)
        return
    except Exception as exc:  # closing a broken producer: nothing to save
        log.debug("stopping the producer: %r", exc)
    await producer.client.close()


async def can_abandon() -> bool:
    """Whether ``abandon()`` may be used: the probe passed (run once per process) and
    ``EDGE_UPLINK_ABANDON`` is not ``0``. The first no is logged once, with why."""
    if os.environ.get(ENV_ABANDON, "").strip() == "0":
        _say_once(f"{ENV_ABANDON}=0")
        return False
    if not _problem:
        _problem.append(await probe())
    if _problem[0] is not None:
        _say_once(f"aiokafka {aiokafka.__version__} failed the probe of its internals: "
                  f"{_problem[0]}")
        return False
    return True


def forget_probe() -> None:
    """Run the probe again at the next ``can_abandon()`` (tests)."""
    _problem.clear()
    _said.clear()


def _say_once(why: str) -> None:
    if why not in _said:
        _said.add(why)
        log.warning("uplink: closing producers with aiokafka's stop() only (%s): a stop against"
                    " a frozen cluster waits up to stop_timeout_s", why)


async def probe() -> str | None:
    """None when aiokafka's internals behave as ``abandon`` and ``pending_waiters`` rely
    on; else what differs, in words for a log line. No cluster: a local listener that
    accepts and never answers. Tens of milliseconds; never raises."""
    try:
        return await _probe()
    except Exception as exc:  # any failure is an answer: do not use them
        return f"{type(exc).__name__}: {exc}"


async def _probe() -> str | None:
    accepted: list[asyncio.StreamWriter] = []
    server = await asyncio.start_server(lambda _r, w: accepted.append(w), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        # A producer with a batch queued that nobody takes (stop() would wait for it) ...
        producer = AIOKafkaProducer(bootstrap_servers=f"127.0.0.1:{port}")
        try:
            await producer._sender.start()
            builder = producer.create_batch()
            builder.append(key=b"probe", value=b"probe", timestamp=None)
            await producer._message_accumulator.add_batch(builder, TopicPartition("probe", 0), 1)
            if not pending_waiters(producer):
                return "a queued batch's drain waiter was not found"
            # ... is closed under it by abandon(): its sender ends and stop() is a no-op.
            await abandon(producer, 0.5)
            task = producer._sender.sender_task
            if task is None or not task.done():
                return "abandon() left the producer's sender running"
            try:
                await asyncio.wait_for(producer.stop(), 1.0)
            except TimeoutError:
                return "stop() still waited for its queued batch after abandon()"
        finally:
            if not producer._closed:
                await abandon(producer, 0.1)
        # A transaction's waiter is where pending_waiters reads it.
        txn_producer = AIOKafkaProducer(bootstrap_servers=f"127.0.0.1:{port}",
                                        transactional_id="edge-probe")
        try:
            txn_producer._txn_manager.set_pid_and_epoch(1, 0)  # as after InitProducerId
            txn_producer._txn_manager.begin_transaction()
            waiter = txn_producer._txn_manager._transaction_waiter
            if waiter is None or waiter not in pending_waiters(txn_producer):
                return "a transaction's waiter was not found"
        finally:
            await abandon(txn_producer, 0.1)
        return None
    finally:
        server.close()
        for writer in accepted:
            writer.close()
        await server.wait_closed()
