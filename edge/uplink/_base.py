"""The uplink's state and the small steps every part of it uses: its clients while
connected, its local thread, its state changes. The parts (``_resuming``, ``_connection``,
``_encoding``, ``_sending``) are layers of one class, ``Uplink`` (``_uplink.py``) on top."""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from broker import TopicPartition

from ._checkpoint import CheckpointClock
from ._config import UplinkConfig
from ._errors import UplinkError, UpstreamError
from ._fence import FenceLease, LocalLock
from ._local import LocalSide
from ._pacing import TransactionPacer
from ._refusal import RecordRefusals
from ._secrets import register_secrets
from ._status import PartitionLag, Rate, UplinkState
from ._tls import ssl_context
from ._topics import UpstreamTopics

log = logging.getLogger("edge.uplink")

_SIZE_MARGIN = 1024         # bytes a record's encoding takes beyond its stored sizes, at most


class _UplinkBase:
    """What an ``Uplink`` holds; see ``Uplink``."""

    def __init__(self, config: UplinkConfig) -> None:
        self.config = config
        register_secrets(config.sasl_password, config.ssl_key_password)
        self._ssl_context = ssl_context(config)
        self._state = UplinkState.STARTING
        self._states_seen: list[UplinkState] = [UplinkState.STARTING]
        self._stop = asyncio.Event()
        self._last_error: str | None = None
        self._rate = Rate()
        self._records_total = 0
        self._bytes_total = 0
        self._dead = 0
        self._replicated: dict[TopicPartition, int] = {}
        self._lag: list[PartitionLag] = []
        self._refusals = RecordRefusals()
        self._orphans: list[asyncio.Task[None]] = []   # checkpoint writes of failed batches
        self._topic_refusals: dict[str, str] = {}   # upstream topic -> why it cannot be created
        self._topics_tried_at = 0.0
        self._missing_topics: list[str] = []
        self._key_partition: dict[tuple[bytes, int], int] = {}
        self._keyless_next = 0
        self._edge_header = ("edge.id", config.edge_id.encode())
        # Below this many stored bytes a record cannot exceed max_request_bytes, headers
        # added upstream included (stored header text is at least as long as its bytes).
        self._measure_above = config.max_request_bytes - _SIZE_MARGIN - len(self._edge_header[1])
        self._partition_headers: dict[int, tuple[str, bytes]] = {}
        self._header_lists: dict[str | None, tuple[tuple[str, bytes | None], ...]] = {}
        self._upstream = {m.local: m.upstream for m in config.topic_mappings}
        self._topics = UpstreamTopics(config.topic_mappings)
        self._checkpoints = CheckpointClock()
        self._lock = LocalLock(config.data_dir, config.edge_id)
        self._lease: FenceLease | None = None
        self._producer: AIOKafkaProducer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._local: LocalSide | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._task: asyncio.Task[None] | None = None
        self._running = False
        self._bucket_t = time.monotonic()
        self._bucket = 0.0
        self._uncommitted: dict[TopicPartition, int] = {}
        self._last_local_commit = 0.0
        self._local_commit: asyncio.Future[None] | None = None
        self._pacer = TransactionPacer()
        self._committed_at = 0.0
        self._resending: dict[TopicPartition, int] = {}   # re-sends under way -> their end

    def __repr__(self) -> str:
        return f"<Uplink edge_id={self.config.edge_id!r} state={self._state.value}>"

    def _set_state(self, state: UplinkState, why: str | None = None) -> None:
        """Change state with one log line (the cause, if any); the same state again logs
        nothing: the line is per change, not per failed attempt."""
        if state != self._state:
            level = logging.WARNING if state == UplinkState.OFFLINE else logging.INFO
            log.log(level, "uplink %s: %s -> %s%s", self.config.edge_id, self._state.value,
                    state.value, f": {why}" if why else "")
            self._state = state
            self._states_seen.append(state)

    # The producer and admin client live from _connect() to _close_upstream(), the local
    # side for run(); every step that uses them runs in between, so None is a bug of ours.
    @property
    def _connected_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise UplinkError("the uplink has no upstream producer: it is not connected")
        return self._producer

    @property
    def _connected_admin(self) -> AIOKafkaAdminClient:
        if self._admin is None:
            raise UplinkError("the uplink has no upstream admin client: it is not connected")
        return self._admin

    @property
    def _open_local(self) -> LocalSide:
        if self._local is None:
            raise UplinkError("the uplink's local side is not open: it is not running")
        return self._local

    async def _in_thread(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def _bounded(self, step: Any) -> Any:
        # aiokafka waits for an unreachable cluster forever inside a transaction; a step
        # that takes longer than this is given up and retried from the checkpoint.
        try:
            async with asyncio.timeout(self.config.request_timeout_s):
                return await step
        except TimeoutError as exc:
            raise UpstreamError(f"upstream did not answer within {self.config.request_timeout_s} s"
                                ) from exc

    def _client_options(self) -> dict[str, Any]:
        c = self.config
        opts: dict[str, Any] = {
            "bootstrap_servers": c.bootstrap_servers,
            "client_id": f"edge-uplink-{c.edge_id}",
            "request_timeout_ms": int(c.request_timeout_s * 1000),
            "security_protocol": c.security_protocol,
        }
        if self._ssl_context is not None:
            opts["ssl_context"] = self._ssl_context
        if c.security_protocol.startswith("SASL"):
            opts.update(sasl_mechanism=c.sasl_mechanism, sasl_plain_username=c.sasl_username,
                        sasl_plain_password=c.sasl_password)
        return opts

    @property
    def state(self) -> UplinkState:
        return self._state
