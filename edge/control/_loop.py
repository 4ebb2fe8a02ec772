"""The box's control loop: desired config and commands in, reported state and results out.

Beside the uplink, with Kafka clients of its own connected as the base file's [upstream]
says (a desired config may change [upstream]; the channel it came by stays). It reads
the compacted desired topic from the beginning and the commands topic from the stored
position, keeps the records keyed for this box (``edge:<id>``, ``group:<g>``), verifies
their signatures, and answers:

- desired: validated as ``edge config check`` validates (refused with its messages),
  applied through the SIGHUP path (``Service.apply_config``), then watched for
  ``[control] health_deadline`` seconds: devices connected, streams running, the uplink
  online. Healthy: stored in the local log (``_store.py``), so a reboot while offline
  keeps it. Not: the last good config is applied again (rolled back). Until the topic is
  read to its end at start, nothing is applied: a box back from a week offline applies
  only the latest version.
- commands: executed once per id (ids stored with their results), skipped as
  ``expired`` past their ttl, each answered on the results topic (a result not yet sent
  is sent at the next connect).
- reported: on change and every ``[control] heartbeat`` seconds (``_report.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import tomllib
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from edge._config import Config, config_from_dict
from edge._errors import ConfigError
from edge._logconfig import log_config_of

from ._client import client_options
from ._commands import on_command, send_result
from ._envelope import key_id, load_public_key, verify
from ._errors import ControlError, ControlRefused
from ._messages import Desired, encode_json, parse_desired
from ._overlay import check_sections, config_hash, effective_config, overlay, targets_of
from ._partitions import assigned_partitions
from ._report import reported, signature, unhealthy
from ._start import read_base
from ._store import ControlStore

log = logging.getLogger("edge.control")

__all__ = ["ControlLoop"]

#: How long one poll waits for records: also how often the reported state is looked at
#: for a change (a device down is reported within this).
_POLL_MS = 1000
#: How long the broker holds an empty fetch (it answers at once when a record comes).
_FETCH_WAIT_MS = 5000


class ControlLoop:
    """Runs in the service's task group until ``stop()``."""

    def __init__(self, service: Any, config_path: str) -> None:
        self.service = service
        self.config_path = config_path
        self.settings = service.cfg.control
        self.edge_id: str = service.cfg.edge_id
        self.targets = targets_of(self.edge_id, self.settings.groups)
        self.last_good: Config = service.cfg
        self.last_error: str | None = None
        self.store: ControlStore | None = None
        self.keys: dict[str, Any] = {}
        self.base_raw: dict[str, Any] = {}
        self.base_name = "edge.toml"
        self._stop = asyncio.Event()
        self._done = asyncio.Event()
        self._consumer: Any = None
        self._producer: Any = None
        self._last_sig: Any = None
        self._last_report = 0.0
        self._applied: dict[str, Any] | None = None  # applied(), until the state changes

    # -- lifecycle ------------------------------------------------------------------------

    async def stop(self) -> None:
        """Stop reading. A config still being watched is neither kept nor rolled back: it
        is not stored, so the next start runs the last stored one and sees it again."""
        self._stop.set()
        if self.store is not None:
            with contextlib.suppress(TimeoutError):  # a connect to a dead cluster: left to cancel
                async with asyncio.timeout(5.0):
                    await self._done.wait()

    def _setup(self) -> Config:
        self.keys = {key_id(k): k for k in map(load_public_key, self.settings.public_keys)}
        self.base_raw, self.base_name = read_base(self.config_path)
        base = config_from_dict(self.base_raw, self.base_name)
        self.store = ControlStore(log_config_of(base, self.service.clock))
        return base

    async def run(self) -> None:
        try:
            base = await asyncio.to_thread(self._setup)
        except (ControlError, ConfigError, OSError, tomllib.TOMLDecodeError) as exc:
            self.last_error = f"control: not started: {exc}"
            log.error("%s", self.last_error)
            return
        retry = 1.0
        try:
            while not self._stop.is_set():
                try:
                    await self._connect(base)
                    retry = 1.0
                    await self._serve()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the cluster, most likely: reconnect with backoff
                    self.last_error = f"control: {type(exc).__name__}: {exc}"
                    log.warning("%s; reconnecting in %.0f s", self.last_error, retry)
                finally:
                    await self._disconnect()
                try:
                    async with asyncio.timeout(retry):
                        await self._stop.wait()
                except TimeoutError:
                    retry = min(retry * 2, 30.0)
        finally:
            assert self.store is not None
            await asyncio.to_thread(self.store.close)
            self._done.set()

    async def _connect(self, base: Config) -> None:
        opts = client_options(base)
        s = self.settings
        self._producer = AIOKafkaProducer(**opts, acks="all", enable_idempotence=True)
        await self._producer.start()
        # The broker holds an empty fetch up to fetch_max_wait_ms and answers as soon as a
        # record comes: a long wait costs no latency, and an idle box wakes less often.
        self._consumer = AIOKafkaConsumer(**opts, group_id=None, enable_auto_commit=False,
                                          auto_offset_reset="earliest",
                                          fetch_max_wait_ms=_FETCH_WAIT_MS)
        await self._consumer.start()
        names = await self._consumer.topics()
        tps = []
        for topic in (s.desired_topic, s.commands_topic):
            # Asked of the producer only once the topic is known to exist: a metadata
            # request for a missing one may have the cluster create it, uncompacted.
            parts = await self._producer.partitions_for(topic) if topic in names else None
            if not parts:
                raise ControlError(f"topic {topic!r} does not exist on the cluster (the fleet's "
                                   "side creates it: docs/control.md)")
            # Only the partitions this box's keys hash to (Kafka's default partitioner, as
            # every producer of the fleet's side uses): a box reads its own few records, not
            # the whole fleet's, at every connect; also those of an earlier partition count.
            assert self.store is not None
            mine, counts, warning = assigned_partitions(
                topic, len(parts), self.targets, self.store.state.partition_counts.get(topic, []))
            if warning:
                self.last_error = warning  # in the first reported state, below
                log.error("%s", warning)
            if counts != self.store.state.partition_counts.get(topic):
                await self.put({f"partitions/{topic}": counts})
            tps += [TopicPartition(topic, p) for p in sorted(parts) if p in mine]
        self._consumer.assign(tps)
        assert self.store is not None
        for tp in tps:
            stored = self.store.state.positions.get(f"{tp.topic}/{tp.partition}")
            if tp.topic == s.desired_topic or stored is None:
                await self._consumer.seek_to_beginning(tp)  # compacted: the latest of every key
            else:
                self._consumer.seek(tp, stored)
        desired = [tp for tp in tps if tp.topic == s.desired_topic]
        self._desired_end = await self._consumer.end_offsets(desired)
        log.info("control: connected; reading %s and %s for %s", s.desired_topic,
                 s.commands_topic, ", ".join(self.targets))
        for command_id, result in list(self.store.state.commands.items()):
            if not result.get("sent", True):
                await send_result(self, command_id, result)

    async def _disconnect(self) -> None:
        for client in (self._consumer, self._producer):
            if client is not None:
                try:
                    await client.stop()
                except Exception as exc:  # closing a broken connection: nothing more to do
                    log.debug("control: closing a client: %s", exc)
        self._consumer = self._producer = None

    # -- the loop -------------------------------------------------------------------------

    async def _serve(self) -> None:
        assert self.store is not None
        pending: dict[str, Desired] = {}
        caught_up = False
        await self._report(force=True)
        while not self._stop.is_set():
            batch = await self._poll()
            moved: dict[str, int] = {}
            for tp, records in batch.items():
                at = self.store.state.positions.get(f"{tp.topic}/{tp.partition}", 0)
                for r in records:
                    key = r.key.decode(errors="replace") if r.key else ""
                    if key in self.targets:
                        if tp.topic == self.settings.desired_topic:
                            self._on_desired(key, r.value, r.offset < at, pending)
                        else:
                            await on_command(self, key, r.value, r.offset < at)
                moved[f"position/{tp.topic}/{tp.partition}"] = max(at, records[-1].offset + 1)
            if moved:
                await asyncio.to_thread(self.store.put, moved)
            if not caught_up:
                caught_up = all([await self._consumer.position(tp) >= end
                                 for tp, end in self._desired_end.items()])
            if caught_up and pending:
                await self._apply(dict(pending))
                pending.clear()
            await self._report()

    async def _poll(self) -> dict[Any, list[Any]]:
        """The next records, within _POLL_MS; nothing when stop() is asked meanwhile."""
        fetch = asyncio.ensure_future(self._consumer.getmany(timeout_ms=_POLL_MS))
        stop = asyncio.ensure_future(self._stop.wait())
        await asyncio.wait({fetch, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if not fetch.done():
            fetch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await fetch
            return {}
        return fetch.result()

    def _on_desired(self, key: str, value: bytes, seen_before: bool,
                    pending: dict[str, Desired]) -> None:
        assert self.store is not None
        try:
            desired = parse_desired(verify(value, self.keys, self.settings.max_record_bytes))
            if desired.target != key:
                raise ControlRefused("malformed", f"signed for {desired.target!r}, sent as {key!r}")
        except ControlRefused as exc:
            if not seen_before:  # said once, not again at every start
                log.warning("control: desired config for %s refused: %s", key, exc)
                self._set_result({"version": None, "target": key, "result": "refused",
                                  "reason": exc.reason, "errors": [str(exc)]})
            return
        if desired.version <= self.store.state.seen.get(key, 0):
            return  # handled already (compaction keeps the latest; we read it at each start)
        if key not in pending or desired.version > pending[key].version:
            pending[key] = desired

    def _set_result(self, result: dict[str, Any]) -> None:
        assert self.store is not None
        self.store.state.desired_result = result
        self.last_error = None if result["result"] == "applied" else \
            f"desired {result['target']} v{result['version']}: {result['result']}: " \
            + "; ".join(result.get("errors") or [result.get("reason") or ""])

    def layers(self, desired: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
        return [desired[t]["config"] for t in self.targets if t in desired]

    def overlay_devices(self) -> list[dict[str, Any]]:
        """The device tables of the effective config, disabled ones included."""
        assert self.store is not None
        devices = overlay(self.base_raw, self.layers(self.store.state.desired)).get("devices")
        return [d for d in devices or [] if isinstance(d, dict)]

    async def _apply(self, pending: dict[str, Desired]) -> None:
        """Validate, apply, watch; keep it or roll back; store and report what happened."""
        assert self.store is not None
        state = self.store.state
        candidate = dict(state.desired)
        for t, d in pending.items():
            candidate[t] = {"kind": "desired", "target": t, "version": d.version,
                            "issued_ms": d.issued_ms, "config": d.config}
        main = pending.get(self.targets[-1]) or pending[[t for t in self.targets if t in pending][-1]]
        result: dict[str, Any] = {"version": main.version, "target": main.target}
        seen = {f"seen/{t}": d.version for t, d in pending.items()}
        try:
            for d in pending.values():
                check_sections(d.config, self.base_name)
            new = await asyncio.to_thread(effective_config, self.base_raw, self.layers(candidate),
                                          state.disabled, self.base_name)
        except ConfigError as exc:
            result.update(result="refused", reason="invalid", errors=[str(p) for p in exc.errors])
            log.warning("control: desired %s v%d refused: %s", main.target, main.version,
                        "; ".join(result["errors"]))
            self._set_result(result)
            await self.put({**seen, "desired_result": result})
            await self._report(force=True)
            return
        log.info("control: applying desired %s v%d", main.target, main.version)
        try:
            later = await self.service.apply_config(new)
            problems = await self._wait_healthy(self.settings.health_deadline)
        except Exception as exc:  # applying failed half-way: the rollback below undoes it
            later, problems = [], [f"applying failed: {type(exc).__name__}: {exc}"]
        if self._stop.is_set():
            log.info("control: stopping while desired %s v%d was watched; seen again at the "
                     "next start", main.target, main.version)
            return
        if not problems:
            result.update(result="applied", reason=None, errors=[], restart_needed=later)
            self.last_good = new
            stored: dict[str, Any] = {f"desired/{t}": candidate[t] for t in pending}
            log.info("control: desired %s v%d applied", main.target, main.version)
        else:
            reason = f"not healthy within {self.settings.health_deadline:g} s: " + "; ".join(problems)
            result.update(result="rolled_back", reason=reason, errors=problems)
            log.error("control: desired %s v%d rolled back: %s", main.target, main.version, reason)
            await self.service.apply_config(self.last_good)
            stored = {}
        self._set_result(result)
        await self.put({**stored, **seen, "desired_result": result})
        await self._report(force=True)

    async def _wait_healthy(self, deadline_s: float) -> list[str]:
        """What is not healthy once the deadline passed ([] when all was, for a moment
        of settling: a stream that crashes right after its start counts)."""
        end = time.monotonic() + deadline_s
        settle = min(2.0, deadline_s / 4)
        healthy_since: float | None = None
        while True:
            problems = unhealthy(self.service.health())
            now = time.monotonic()
            if problems:
                healthy_since = None
            elif healthy_since is None:
                healthy_since = now
            if healthy_since is not None and now - healthy_since >= settle:
                return []
            if now >= end or self._stop.is_set():
                return problems or ["did not stay healthy"]
            await asyncio.sleep(0.25)

    async def reloaded(self, base: Config) -> Config:
        """SIGHUP: the re-read file with the desired sections laid over it again."""
        if self.store is None:  # the control channel did not start: the file as it is
            return base
        try:
            raw, name = await asyncio.to_thread(read_base, self.config_path)
            new = await asyncio.to_thread(effective_config, raw, self.layers(self.store.state.desired),
                                          self.store.state.disabled, name)
        except (ConfigError, OSError, tomllib.TOMLDecodeError) as exc:
            log.error("SIGHUP: the desired config does not validate over the new file; running "
                      "the file as it is: %s", str(exc).replace("\n", "; "))
            return base
        self.base_raw, self.base_name, self.last_good = raw, name, new
        self._applied = None
        return new

    # -- reported state -------------------------------------------------------------------

    async def put(self, records: dict[str, Any]) -> None:
        """Store records (in a thread); what applied() shows is computed again after."""
        assert self.store is not None
        await asyncio.to_thread(self.store.put, records)
        self._applied = None

    def applied(self) -> dict[str, Any]:
        """Versions per target and the hash of the effective config (hashed once per change)."""
        if self._applied is None:
            self._applied = self._compute_applied()
        return self._applied

    def _compute_applied(self) -> dict[str, Any]:
        assert self.store is not None
        state = self.store.state
        versions = {t: state.desired[t]["version"] for t in self.targets if t in state.desired}
        main = next((t for t in reversed(self.targets) if t in versions), None)
        raw = overlay(self.base_raw, self.layers(state.desired), state.disabled)
        return {"version": versions.get(main, 0) if main else 0, "target": main,
                "targets": versions, "hash": config_hash(raw),
                "disabled_devices": sorted(state.disabled)}

    def describe(self) -> dict[str, Any]:
        """The control channel's part of /health (no network: what the box knows)."""
        if self.store is None:
            return {"connected": False, "last_error": self.last_error}
        return {"connected": self._producer is not None, "applied": self.applied(),
                "desired_result": self.store.state.desired_result, "last_error": self.last_error}

    async def _report(self, force: bool = False) -> None:
        """Write the reported state when it changed, when due, or when ``force``."""
        assert self.store is not None
        health = self.service.health()
        uplink = self.service.uplink.uplink
        lag_s = None
        if uplink is not None:
            lag = uplink.status().lag
            lag_s = round(max((p.seconds for p in lag), default=0.0), 3)
        document = reported(self.edge_id, self.service.trust.now_ms(), health, self.applied(),
                            self.store.state.desired_result, self.last_error, lag_s,
                            list(self.settings.groups))
        sig = signature(document)
        now = time.monotonic()
        if not force and sig == self._last_sig and now - self._last_report < self.settings.heartbeat:
            return
        await self._producer.send_and_wait(self.settings.reported_topic, encode_json(document),
                                           key=self.edge_id.encode())
        self._last_sig, self._last_report = sig, now
