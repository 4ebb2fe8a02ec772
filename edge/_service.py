"""The service: wires devices → the local log → streams and uplink, with health, metrics and systemd.

One asyncio process; its rooms, each in its own module: device runners
(``_runner.py``), the event writer (``_writer.py``, its completions in
``_completions.py``), the stream topologies (``_topologies.py``, each
supervised by ``_streams.py``), the uplink (``_upstream.py``), what SIGHUP
cannot apply (``_reload.py``), logging (``_logging.py``). Restarts and stops
go through one primitive (``devices.supervise``, ``devices.stop_child``).
This module opens the log, starts and stops them, and answers /health (served, with
the web console, by ``edge.console``).

Signals: SIGTERM/SIGINT stop intake, flush and close within the shutdown
bound and exit 0; SIGHUP re-reads the config file and starts, stops or
restarts only the devices and stream topologies whose settings changed, moves
/health to a new [health] address and applies show_values; a change to
edge_id, data_dir, [log], [upstream], [clock] or [console] is logged by key as needing a
restart (docs/operations.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from broker import (
    BrokerError,
    Clock,
    KafkaAdminClient,
    KafkaProducer,
    SystemClock,
)
from devices import stop_child
from edge._clock import ClockJump, ClockStatus, ClockTrust, ntp_synced
from edge._config import Config, DeviceConfig, HealthConfig, load_config
from edge._disk import DiskWrites, process_write_bytes
from edge._early_signals import EarlySignals
from edge._errors import ConfigError, EdgeError, StartupError
from edge._exit import health_bind_error, log_open_error
from edge._logconfig import log_config_of
from edge._logging import setup_logging
from edge._malloc import tune_malloc
from edge._metrics import Metrics
from edge._notify import sd_notify, watchdog_interval
from edge._reload import RESTART_FIELDS, restart_needed
from edge._runlock import RunLock
from edge._runner import DeviceRunner
from edge._topologies import Topologies
from edge._upstream import UplinkRunner
from edge._writer import EventWriter
from edge.console import Console, HttpServer
from edge.console._listeners import console_server, health_server

log = logging.getLogger("edge")

__all__ = ["Service", "run_service"]


def _withhold_values(devices: dict[str, dict[str, Any]]) -> None:
    """Drop the last readings' values from /health: any local user can read it, and a
    value may be a patient's; the key and time stay (``[health] show_values`` shows all)."""
    for d in devices.values():
        last = d.get("last_reading")
        if last and "value" in last:
            d["last_reading"] = {k: v for k, v in last.items() if k != "value"}
            d["last_reading"]["value_withheld"] = True


class Service:
    """The running appliance. ``await run()`` until ``request_stop()`` (or SIGTERM)."""

    def __init__(self, cfg: Config, *, config_path: str | None = None,
                 shutdown_timeout: float = 10.0, clock: Clock | None = None,
                 ntp: Callable[[], bool] | None = None) -> None:
        """``clock`` (wall and monotonic) and ``ntp`` (is the system clock synced?) are
        injectable so tests can step time; by default the machine's own."""
        self.cfg = cfg
        self.config_path = config_path
        self.shutdown_timeout = shutdown_timeout
        self.metrics = Metrics()
        self.clock = clock if clock is not None else SystemClock()
        self.trust = ClockTrust(self.clock, on_jump=self._on_clock_jump,
                                jump_threshold_s=cfg.clock.jump_threshold,
                                gps_max_age_s=cfg.clock.gps_max_age,
                                ntp=ntp if ntp is not None else ntp_synced)
        self.runners: dict[str, tuple[DeviceRunner, asyncio.Task[None]]] = {}
        self.topologies = Topologies(log_config_of(cfg, self.clock), cfg.log.dead_letter_topic,
                                     self.metrics.registry, shutdown_timeout)
        self.log_info: dict[str, Any] = {}
        self.disk = DiskWrites()
        self.log_ok = True
        self._stop = asyncio.Event()
        self.uplink = UplinkRunner(cfg, self._stop, shutdown_timeout)
        self.started_ms = time.time_ns() // 1_000_000
        self._started_mono = self.clock.monotonic_ms()
        self._reload = asyncio.Event()
        self._tg: asyncio.TaskGroup | None = None
        self.producer: KafkaProducer | None = None
        self.writer: EventWriter | None = None
        self.health_server: HttpServer | None = None
        self.console_server: HttpServer | None = None
        self.console: Console | None = None
        self.kafka: Any = None  # broker.wire.WireServer when [kafka] listen is set
        self._run_lock = RunLock(cfg.data_dir)
        self.control: Any = None  # an edge.control ControlLoop while [control] is enabled

    def _health_token(self) -> str | None:
        return self.cfg.health.token  # read per request: SIGHUP may change it

    # -- what the console reads (edge.console.ConsoleSource) --

    def metrics_registry(self) -> Any:
        return self.metrics.registry

    def uplink_health(self) -> dict[str, Any] | None:
        return self.uplink.health()

    def streams_health(self) -> dict[str, dict[str, Any]]:
        return self.topologies.health()

    def clock_status(self) -> str:
        return str(self.trust.describe()["status"])

    def request_stop(self) -> None:
        self._stop.set()

    def request_reload(self) -> None:
        self._reload.set()

    def health(self, show_values: bool | None = None) -> dict[str, Any]:
        """What /health returns; ``ok`` is true when every device and the log are well.

        ``show_values``: the last readings' values (None: as ``[health] show_values`` says)."""
        now, mono = self.trust.now_ms(), self.clock.monotonic_ms()
        devices = {name: r.health(now) for name, (r, _) in self.runners.items()}
        if not (self.cfg.health.show_values if show_values is None else show_values):
            _withhold_values(devices)
        w = self.writer
        # Failing from a refused write until the log writes a record again (not for a
        # fixed time after it): /health turns 200 with the first write that succeeds.
        failing = (w is not None and w.last_failure is not None and self.producer is not None
                   and self.producer.metrics()["records"] == w.records_at_failure)
        log_ok = self.log_ok and not failing
        info = dict(self.log_info, ok=log_ok,
                    last_write_error=w.last_failure if failing and w is not None else None)
        uplink = self.uplink.health()
        streams = self.topologies.health()
        ok = log_ok and all(d["connected"] for d in devices.values()) and (
            uplink is None or bool(uplink.get("ok", True))) and all(
            st["ok"] for st in streams.values())
        clock = self.trust.describe()
        if w is not None:
            clock["held_timestamps"] = w.stamps.held
        return {"ok": ok, "edge_id": self.cfg.edge_id,
                "uptime_s": round((mono - self._started_mono) / 1000, 1),
                "clock": clock["status"], "time": clock,
                "devices": devices, "log": info, "uplink": uplink, "disk": self._disk_health(),
                **({"streams": streams} if streams else {}),
                **({"control": self.control.describe()} if self.control is not None else {}),
                **({"kafka": self.kafka.metrics.snapshot()} if self.kafka is not None else {})}

    def _disk_health(self) -> dict[str, Any]:
        """Bytes written (None until two housekeeping passes) beside the log's file sizes."""
        return {**(self.disk.describe() or {"bytes_written": None}),
                "log_file_bytes": self.log_info.get("file_bytes"),
                "log_disk_bytes": self.log_info.get("disk_bytes")}

    def _on_clock_jump(self, jump: ClockJump) -> None:
        self.metrics.clock_jumps.labels(jump.direction).inc()

    def _start_device(self, d: DeviceConfig) -> None:
        assert self._tg is not None and self.writer is not None
        runner = DeviceRunner(d, self.writer, self.metrics, trust=self.trust,
                              data_dir=self.cfg.data_dir)
        task = self._tg.create_task(runner.run(), name=f"device:{d.name}")
        self.runners[d.name] = (runner, task)
        log.info("device %s: starting (%s %s, codec %s, topic %s)", d.name, d.transport,
                 d.where, d.codec, d.topic)

    async def _stop_device(self, name: str) -> None:
        runner, task = self.runners.pop(name)
        await stop_child(task, runner.stop, name=f"device {name}", timeout=self.shutdown_timeout)

    async def _reload_loop(self) -> None:
        while True:
            await self._reload.wait()
            self._reload.clear()
            if self.config_path is None:
                log.warning("SIGHUP: no config file to reload")
                continue
            try:
                new = await asyncio.to_thread(load_config, self.config_path)
            except ConfigError as exc:
                log.error("SIGHUP: config not reloaded, keeping the running one: %s",
                          str(exc).replace("\n", "; "))
                continue
            if self.control is not None:  # the fleet's desired sections stay laid over the file
                new = await self.control.reloaded(new)
            await self._apply_reload(new)

    async def apply_config(self, new: Config) -> list[str]:
        """Apply a desired config from the fleet (edge/control): SIGHUP's path, and the
        uplink restarted when [upstream] changed; returns the keys left for a restart."""
        old = self.cfg
        await self._apply_reload(new, why="control")
        if new.upstream != old.upstream and self._tg is not None:
            log.info("control: [upstream] changed: restarting the uplink with it")
            await self.uplink.restart(new, self._tg)
            self.cfg = dataclasses.replace(self.cfg, upstream=new.upstream)
        return [k for k in restart_needed(old, new) if not k.startswith("upstream")]

    async def rewind_uplink(self, positions: dict[Any, int]) -> None:
        """Restart the uplink so it sends these local partitions again from these offsets
        (the fleet's rereplicate command); EdgeError when no uplink runs."""
        if self._tg is None or not self.cfg.upstream.enabled:
            raise EdgeError("no uplink runs on this box ([upstream] is off)")
        await self.uplink.restart(self.cfg, self._tg, rewind=positions)

    async def _apply_reload(self, new: Config, why: str = "SIGHUP") -> None:
        """SIGHUP: apply what can change while running; name what needs a restart."""
        old = self.cfg
        wanted = {d.name: d for d in new.devices}
        for name in list(self.runners):
            if name not in wanted or wanted[name] != self.runners[name][0].cfg:
                log.info("%s: stopping device %s", why, name)
                await self._stop_device(name)
        for name, d in wanted.items():
            if name not in self.runners:
                self._start_device(d)
        await self.topologies.reload(new.streams, self._stop.is_set)
        health = await self._reload_health(old, new)
        pending = [k for k in restart_needed(old, new)
                   if not (why == "control" and k.startswith("upstream"))]
        if pending:
            log.warning("%s: %s changed: applied at the next restart (systemctl restart "
                        "edge); running with the values it started with", why, ", ".join(pending))
        self.cfg = dataclasses.replace(new, health=health,
                                       **{f: getattr(old, f) for f in RESTART_FIELDS})
        log.info("%s: config reloaded: %d devices, %d stream topologies",
                 why, len(self.runners), len(self.topologies))

    async def _reload_health(self, old: Config, new: Config) -> HealthConfig:
        """Move /health to a new address (listening there first); returns what now runs."""
        if (new.health.host, new.health.port) == (old.health.host, old.health.port):
            return new.health
        assert self.console is not None
        server = health_server(self.console, dataclasses.replace(new, console=old.console))
        try:
            await server.start()
        except OSError as exc:
            log.error("SIGHUP: %s; /health stays on %s",
                      health_bind_error(exc, new.health.address, new.file), old.health.address)
            return dataclasses.replace(new.health, address=old.health.address)
        previous, self.health_server = self.health_server, server
        if previous is not None:
            await previous.close()
        log.info("SIGHUP: /health moved from %s to %s", old.health.address, new.health.address)
        return new.health

    async def _housekeeping(self, admin: KafkaAdminClient) -> None:
        ping = watchdog_interval()
        last_ping = 0.0
        while True:
            try:
                # Shielded: a cancel at shutdown waits for the thread's read to end,
                # so admin.close() never runs under a describe_log in flight.
                read = asyncio.ensure_future(asyncio.to_thread(
                    lambda: (admin.describe_log(), process_write_bytes())))
                try:
                    info, written = await asyncio.shield(read)
                except asyncio.CancelledError:
                    await asyncio.wait([read])
                    if not read.cancelled():
                        read.exception()  # seen: shutting down, nothing to report
                    raise
                self.log_info = {k: info[k] for k in ("data_dir", "bytes", "records", "file_bytes", "disk_bytes",
                                                      "quota_bytes", "dropped_records", "expired_records",
                                                      "topics")}
                m = self.metrics
                m.log_bytes.set(info["bytes"])
                m.log_records.set(info["records"])
                m.log_file_bytes.set(info["file_bytes"])
                m.log_disk_bytes.set(info["disk_bytes"])
                m.log_dropped.set(info["dropped_records"])
                m.log_expired.set(info["expired_records"])
                if written is not None and self.producer is not None:
                    m.disk_written.inc(self.disk.sample(time.monotonic(), written,
                                                        self.producer.metrics()["records"]))
                    m.disk_per_day.set((self.disk.describe() or {}).get("projected_bytes_per_day", 0))
                uplink = self.uplink.uplink
                if uplink is not None:
                    m.uplink_up.set(1 if str(uplink.state.value) == "online" else 0)
                    for mm in uplink.status().partition_mismatches:
                        m.uplink_partition_mismatch.labels(mm.local).set(1)
                # Also looks for clock jumps while no events flow.
                status = self.trust.status()
                for s in ClockStatus:
                    m.clock_status.labels(s.value).set(1 if s is status else 0)
                self.log_ok = True
            except Exception as exc:  # reported in /health, then retried
                if self.log_ok:
                    log.error("log: cannot describe the log: %s", exc)
                self.log_ok = False
            if ping is not None and time.monotonic() - last_ping >= ping:
                # Only ping while the loop runs and the log answers: a hung box gets restarted.
                if self.log_ok:
                    sd_notify("WATCHDOG=1")
                last_ping = time.monotonic()
            await asyncio.sleep(min(1.0, ping or 1.0))

    async def run(self) -> None:
        """Run until request_stop(); then stop intake, flush and close within the bound.

        Raises StartupError when the log, its run lock or the health address cannot be had."""
        cfg = self.cfg
        producer, admin = await asyncio.to_thread(self._open_log)
        self.producer = producer
        self.writer = EventWriter(producer, cfg, self.metrics, self.trust)
        self.console = Console(self, log_config_of(cfg, self.clock), self._health_token)
        self.health_server = health_server(self.console, cfg)
        self.console_server = console_server(self.console, cfg)
        try:
            if cfg.kafka.listen is not None:  # before /health: an answer there means clients can connect
                # Imported only by boxes with [kafka]: the listener's schemas take time to load.
                from edge._kafka_serve import register_metrics, start_kafka_listener

                self.kafka = await start_kafka_listener(cfg, log_config_of(cfg, self.clock))
                register_metrics(self.metrics.registry, self.kafka)
            await self.console.start()
            try:
                await self.health_server.start()
            except OSError as exc:
                raise health_bind_error(exc, cfg.health.address, cfg.file) from exc
            if self.console_server is not None:
                try:
                    await self.console_server.start()
                except OSError as exc:
                    err = health_bind_error(exc, str(cfg.console.address), cfg.file)
                    raise type(err)(str(err).replace("health.address", "console.address")
                                    .replace("[health]", "[console]"), err.exit_status) from exc
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                for d in cfg.devices:
                    self._start_device(d)
                helpers = [tg.create_task(self._housekeeping(admin), name="housekeeping"),
                           tg.create_task(self._reload_loop(), name="reload")]
                self.topologies.start_all(tg, cfg.streams)
                self.uplink.start(tg)
                if cfg.control.enabled and self.config_path is not None:
                    from edge.control._loop import ControlLoop  # only boxes with [control] need it

                    self.control = ControlLoop(self, self.config_path)
                    helpers.append(tg.create_task(self.control.run(), name="control"))
                sd_notify(f"READY=1\nSTATUS=running {len(cfg.devices)} devices")
                log.info("edge %s running: %d devices, log in %s", cfg.edge_id, len(cfg.devices),
                         cfg.data_dir)
                await self._stop.wait()
                sd_notify("STOPPING=1")
                log.info("stopping: intake first, then flush")
                t0 = time.monotonic()
                if self.control is not None:  # no config applied while the rest stops
                    await self.control.stop()
                await asyncio.gather(*(self._stop_device(n) for n in list(self.runners)))
                await self.topologies.stop_all()  # after intake: each commits its current batch
                # The uplink finishes its current transaction and stops; what is not yet
                # upstream stays in the log (its group is protected) and goes at the
                # next start, so shutdown stays bounded while offline.
                await self.uplink.stop()
                for t in helpers:
                    t.cancel()
                # Wait for the cancellations to land: housekeeping may be inside
                # admin.describe_log, and admin is closed right after this block.
                for t in helpers:
                    with contextlib.suppress(asyncio.CancelledError):
                        await t
        finally:
            if self.kafka is not None:  # before the log's clients close: it shares them
                await self.kafka.close()
            if self.console is not None:
                await self.console.close()  # ends open pages' streams first
            for server in (self.console_server, self.health_server):
                if server is not None:
                    await server.close()
            left = max(1.0, self.shutdown_timeout - (time.monotonic() - t0)) if "t0" in locals() \
                else self.shutdown_timeout
            await asyncio.to_thread(producer.close, left)
            admin.close()
            self._run_lock.release()
        log.info("stopped cleanly in %.2fs", time.monotonic() - t0)

    def _open_log(self) -> tuple[KafkaProducer, KafkaAdminClient]:
        """Open the log (blocking); a log that cannot be used raises StartupError."""
        cfg = self.cfg
        try:
            producer = KafkaProducer(log_config=log_config_of(cfg, self.clock))
        except (BrokerError, OSError) as exc:
            raise log_open_error(exc, cfg.data_dir) from exc
        try:
            self._run_lock.acquire()
            admin = KafkaAdminClient(log_config=log_config_of(cfg, self.clock))
        except (BrokerError, OSError) as exc:
            producer.close(1.0)
            self._run_lock.release()
            raise log_open_error(exc, cfg.data_dir) from exc
        except StartupError:
            producer.close(1.0)
            raise
        return producer, admin


def run_service(cfg: Config, *, log_level: str = "INFO", shutdown_timeout: float = 10.0,
                config_path: str | os.PathLike[str] | None = None,
                warnings: list[str] | None = None,
                early_signals: EarlySignals | None = None) -> int:
    """Run the appliance in this process until SIGTERM/SIGINT; returns the exit code (0).

    ``early_signals``: what the caller held since its start (a SIGTERM during start-up then
    stops the service cleanly once it runs, instead of killing the process).

    Raises StartupError (one line, and the ``exit_status`` to exit with) when the log or
    the health address cannot be used. ``warnings``: lines to log at WARNING once logging is set up (the CLI's findings)."""
    setup_logging(log_level)
    tune_malloc()  # before the service's threads start (edge/_malloc.py)
    for warning in warnings or ():
        log.warning("%s", warning)

    if cfg.control.enabled and config_path is not None:
        from edge.control._start import effective_at_start

        cfg = effective_at_start(cfg, str(config_path))

    async def main() -> None:
        service = Service(cfg, config_path=None if config_path is None else str(Path(config_path)),
                          shutdown_timeout=shutdown_timeout)
        handlers: dict[int, Callable[[], None]] = {
            signal.SIGTERM: service.request_stop, signal.SIGINT: service.request_stop,
            signal.SIGHUP: service.request_reload}
        (early_signals or EarlySignals()).hand_over(asyncio.get_running_loop(), handlers)
        await service.run()

    asyncio.run(main())
    return 0
