"""aiokafka's private names, behind their probe; and the public-stop fallback, for real.

``_aiokafka_private.probe()`` checks on real producers (no cluster) that ``abandon()``
closes a producer with a batch queued (its sender ended, ``stop()`` a no-op) and that
the waiters it settles are found. An aiokafka whose internals moved (emulated by changing
one of them) fails it, with a reason, and the uplink closes producers with ``stop()``
only. ``EDGE_UPLINK_ABANDON=0`` forces that fallback; both ways are run against the real
Kafka fixture: a stop against a frozen cluster is bounded and loses nothing (its sender
would otherwise hold the process for request_timeout_s).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.producer.message_accumulator import MessageBatch
from aiokafka.producer.sender import Sender

from edge.uplink import Uplink, UplinkConfig
from edge.uplink import _aiokafka_private as private

from ._uplink_helpers import (
    check_exactly_once,
    create_local_topics,
    produce_local,
    read_upstream,
    unique,
    wait_for,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def fresh_probe() -> Iterator[None]:
    private.forget_probe()
    yield
    private.forget_probe()


async def test_the_installed_aiokafka_passes_the_probe() -> None:
    assert await private.probe() is None
    assert await private.can_abandon()


async def _sender_that_stays(self: Sender) -> None:
    return None  # an aiokafka whose sender stops elsewhere: close() leaves it running


_BATCH_INIT = MessageBatch.__init__


def _batch_with_another_waiter(self, *args, **kwargs):  # type: ignore[no-untyped-def]
    _BATCH_INIT(self, *args, **kwargs)
    self._drained = self.__dict__.pop("_drain_waiter")  # the waiter renamed


# What a future aiokafka might do to the names abandon() uses, and what the probe says.
MOVED = {
    "sender closes elsewhere": (lambda m: m.setattr(Sender, "close", _sender_that_stays),
                                "sender running"),
    "drain waiter renamed": (lambda m: m.setattr(MessageBatch, "__init__", _batch_with_another_waiter),
                             "_drain_waiter"),
    "closed flag renamed": (lambda m: m.setattr(AIOKafkaProducer, "stop", _stop_by_another_flag),
                            "still waited"),
}


async def _stop_by_another_flag(self: AIOKafkaProducer) -> None:
    # An aiokafka whose stop() reads another flag than the one abandon() sets: it flushes.
    await self._message_accumulator.close()


@pytest.mark.parametrize("change", list(MOVED))
async def test_an_aiokafka_whose_internals_moved_is_closed_plainly(
        change: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    breaking, named = MOVED[change]
    breaking(monkeypatch)
    problem = await private.probe()
    assert problem is not None and named in problem
    private.forget_probe()
    with caplog.at_level(logging.WARNING, logger=private.__name__):
        assert not await private.can_abandon()
        assert not await private.can_abandon()
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "stop() only" in warnings[0] and named in warnings[0]


async def test_the_environment_turns_abandon_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(private.ENV_ABANDON, "0")
    assert not await private.can_abandon()


# In a process of its own: the fallback leaves aiokafka's sender task behind until the
# process ends, which in the test process would outlive the test.
CHILD = textwrap.dedent("""
    import asyncio, signal, sys
    from edge.uplink import Uplink, UplinkConfig

    servers, data, topic, edge_id = sys.argv[1:5]

    async def main():
        cfg = UplinkConfig(edge_id=edge_id, bootstrap_servers=servers, data_dir=data,
                           topics={topic: "up." + topic}, batch_records=100,
                           request_timeout_s=300, stop_timeout_s=1)
        uplink = Uplink(cfg)
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, uplink.stop)
        task = asyncio.create_task(uplink.run())
        while uplink.status().records_total < 200 and not task.done():
            await asyncio.sleep(0.02)
        print("replicating", flush=True)
        await task
        print("stopped", uplink.state.value, flush=True)

    asyncio.run(main())
""")


@pytest.mark.kafka
@pytest.mark.parametrize("abandon", ["1", "0"], ids=["abandon", "plain-stop"])
async def test_a_stop_against_a_frozen_cluster_is_bounded_both_ways(
        tmp_path, kafka_cluster_proxied, abandon):  # type: ignore[no-untyped-def]
    data, t, edge_id = tmp_path / "log", unique("frozen"), unique("edge")
    create_local_topics(data, {t: 2})
    produce_local(data, t, 3000, keys=20)
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    env.update(PYTHONPATH=str(ROOT), **{private.ENV_ABANDON: abandon})
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(script), kafka_cluster_proxied.bootstrap_servers, str(data), t,
        edge_id, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    try:
        assert proc.stdout is not None
        assert await asyncio.wait_for(proc.stdout.readline(), 60) == b"replicating\n"
        kafka_cluster_proxied.cut("blackhole")   # the cluster answers nothing, like SIGSTOP
        await asyncio.sleep(0.3)                 # a transaction is stuck in it now
        proc.send_signal(signal.SIGTERM)
        # request_timeout_s is 300: only stop_timeout_s and the way the producer is closed
        # end this; a sender left waiting for its requests would hold the process.
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        kafka_cluster_proxied.restore()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()[-3000:]
    assert out == b"stopped stopped\n"
    assert (b"stop() only" in err) == (abandon == "0"), err.decode()[-3000:]
    produce_local(data, t, 100, keys=20, start=3000)
    cfg = UplinkConfig(edge_id=edge_id, bootstrap_servers=kafka_cluster_proxied.bootstrap_servers,
                       data_dir=data, topics={t: "up." + t})
    async with Uplink(cfg) as again:
        await wait_for(lambda: again.status().lag_records == 0 and again.status().lag, 60,
                       "the rest after the restart", again)
    got = await read_upstream(kafka_cluster_proxied.direct_bootstrap_servers, ["up." + t], 3100)
    check_exactly_once(got, {t: 3100})


def test_errors_left_in_an_abandoned_senders_tasks_are_read_others_still_reported() -> None:
    import asyncio
    import gc

    from edge.uplink._aiokafka_private import _read_leftover_sender_errors

    # Stands for aiokafka's sender (its file is aiokafka's): a request task nobody awaits
    # after the abandon.
    scope: dict[str, object] = {}
    exec(compile("class Sender:\n    async def _send_produce_req(self):\n"
                 "        raise KeyError('batch')\n", "/x/aiokafka/producer/sender.py", "exec"), scope)
    sender = scope["Sender"]()  # type: ignore[operator]

    async def other() -> None:
        raise KeyError("ours")

    reported: list[str] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, ctx: reported.append(repr(ctx.get("exception"))))
        _read_leftover_sender_errors(loop)
        for coro in (sender._send_produce_req(), other()):
            task = asyncio.ensure_future(coro)
            await asyncio.sleep(0)
            del task
        gc.collect()

    asyncio.run(main())
    assert reported == ["KeyError('ours')"]
