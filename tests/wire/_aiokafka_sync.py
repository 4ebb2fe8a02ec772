"""aiokafka behind kafka-python's synchronous API, for the conformance suite.

The suite (tests/broker/conformance.py) is written against kafka-python's blocking
classes; here each aiokafka client lives on one event loop in a background thread and
every call is run there and waited for.  Only what the suite uses is translated:
``poll`` is ``getmany``, a producer's ``send`` returns a future with ``get``, clients are
started at construction and stopped by ``close``.  Everything else passes through (a
coroutine is awaited), so a difference between the clients shows as a failing test, not
as a shim hiding it.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

CALL_TIMEOUT_S = 60.0


class Loop:
    """One event loop in a daemon thread; ``run`` executes a callable or coroutine there."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="aiokafka-sync", daemon=True)
        self._thread.start()

    def run(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        async def call() -> Any:
            result = fn(*args, **kw)
            return await result if inspect.isawaitable(result) else result
        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(CALL_TIMEOUT_S)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        if not self._thread.is_alive():
            self.loop.close()


class _Client:
    """Attribute access runs the aiokafka client's method on the loop and waits."""

    def __init__(self, loop: Loop, make: Callable[[], Any]) -> None:
        self._loop = loop

        async def start() -> Any:
            client = make()  # made on the loop: aiokafka binds to the running loop
            await client.start()
            return client
        self._client = loop.run(start)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr
        return lambda *a, **kw: self._loop.run(attr, *a, **kw)

    def close(self) -> None:
        self._loop.run(self._client.close if hasattr(self._client, "close") else self._client.stop)


class _Future:
    def __init__(self, loop: Loop, fut: Awaitable[Any]) -> None:
        self._loop, self._fut = loop, fut

    def get(self, timeout: float | None = None) -> Any:
        async def wait() -> Any:
            return await asyncio.wait_for(self._fut, timeout)
        return self._loop.run(wait)


class Producer(_Client):
    def __init__(self, loop: Loop, **kw: Any) -> None:
        super().__init__(loop, lambda: AIOKafkaProducer(**kw))

    def send(self, topic: str, value: Any = None, key: Any = None, headers: Any = None,
             partition: int | None = None, timestamp_ms: int | None = None) -> _Future:
        # aiokafka's send() is awaited once to queue the record and returns a future of its metadata
        fut = self._loop.run(self._client.send, topic, value=value, key=key, headers=headers,
                             partition=partition, timestamp_ms=timestamp_ms)
        return _Future(self._loop, fut)

    def close(self) -> None:
        self._loop.run(self._client.stop)


class Consumer(_Client):
    def __init__(self, loop: Loop, *topics: str, **kw: Any) -> None:
        super().__init__(loop, lambda: AIOKafkaConsumer(*topics, **kw))

    def poll(self, timeout_ms: int = 0) -> dict[Any, list[Any]]:
        return dict(self._loop.run(self._client.getmany, timeout_ms=timeout_ms))

    def partitions_for_topic(self, topic: str) -> Any:
        # aiokafka's answers from the metadata it has (and topics() does not refresh it);
        # kafka-python's asks the broker.  Its client's fetch_all_metadata is what topics() uses.
        async def fresh() -> Any:
            cluster = await self._client._client.fetch_all_metadata()
            return cluster.partitions_for_topic(topic)
        return self._loop.run(fresh)

    def seek_to_beginning(self, *partitions: Any) -> None:
        self._loop.run(self._client.seek_to_beginning, *partitions)

    def close(self) -> None:
        self._loop.run(self._client.stop)


class Admin(_Client):
    def __init__(self, loop: Loop, **kw: Any) -> None:
        super().__init__(loop, lambda: AIOKafkaAdminClient(**kw))
