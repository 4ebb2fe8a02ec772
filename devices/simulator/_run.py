"""The simulator's main loop: a fleet of models, encoded by the codecs, sent to an output."""

from __future__ import annotations

import json
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from devices._reading import Reading
from devices.codecs import CODECS, CONVENTIONS
from devices.simulator._faults import (
    HOSTILE_CODECS,
    Faults,
    corrupt_frame,
    garbage,
    hostile_frame,
    hostile_names,
    truncate_frame,
)
from devices.simulator._models import DEFAULT_ROUTE, Model, Patient, Room, Vehicle, load_gpx
from devices.simulator._outputs import MqttPublisher, SimulatedPort, StreamOutput

OUTPUTS = ("pty", "mqtt", "stdout", "file")
DEFAULT_CONVENTIONS = {"gps": "owntracks", "temperature": "zigbee2mqtt", "blood_pressure": "bp.json"}
#: Serial codec per kind (the adapter must be configured with the same one).
SERIAL_CODECS = {
    "gps": ("nmea0183", {}),
    "temperature": ("text", {}),
    "blood_pressure": ("gatt.0x2A35", {"framing": "hex"}),
}


@dataclass(frozen=True)
class SimConfig:
    """One simulator run. Rates in readings/s per device; times in seconds of simulated time."""

    gps: int = 1
    rooms: int = 1
    patients: int = 1
    rate: float = 1.0
    count: int | None = None  # readings per device
    duration: float | None = None
    realtime: bool = True
    seed: int | None = None
    start_ms: int | None = None
    output: str = "stdout"
    file: str | None = None
    link_dir: str | None = None
    wait_reader: float | None = 30.0
    unplug_seconds: float = 0.5
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    mqtt_qos: int = 1
    mqtt_client_id: str = ""
    mqtt_username: str | None = None
    mqtt_password: str | None = field(default=None, repr=False)
    mqtt_protocol: str = "3.1.1"
    conventions: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_CONVENTIONS))
    temperature_format: str = "text"  # on serial/stdout/file: "text" or "gatt" (0x2A1C hex)
    faults: Faults = field(default_factory=Faults)
    route_gpx: str | None = None
    truth: str | None = None
    acks: str | None = None  # --output mqtt: seq of each reading the broker acknowledged
    progress: bool = True

    def __post_init__(self) -> None:
        if min(self.gps, self.rooms, self.patients) < 0 or self.gps + self.rooms + self.patients == 0:
            raise ValueError(
                f"need at least one device, got gps={self.gps} rooms={self.rooms} patients={self.patients}"
            )
        if not self.rate > 0:
            raise ValueError(f"rate must be > 0 readings/s, got {self.rate!r}")
        if self.count is None and self.duration is None and not self.realtime:
            raise ValueError("a --fast run needs --count or --duration, got neither")
        if self.count is not None and self.count < 0:
            raise ValueError(f"count must be >= 0, got {self.count!r}")
        if self.output not in OUTPUTS:
            raise ValueError(f"output must be one of {', '.join(OUTPUTS)}, got {self.output!r}")
        if self.output == "file" and not self.file:
            raise ValueError("output 'file' needs a file path, got none")
        if self.temperature_format not in ("text", "gatt"):
            raise ValueError(f"temperature format must be 'text' or 'gatt', got {self.temperature_format!r}")
        for kind, name in self.conventions.items():
            if name not in CONVENTIONS:
                raise ValueError(f"MQTT convention for {kind} must be one of {sorted(CONVENTIONS)}, got {name!r}")


def build_fleet(cfg: SimConfig, rng: random.Random) -> list[Model]:
    """The devices of a run, each with its own Random derived from `rng` (stable per id)."""
    route = load_gpx(cfg.route_gpx) if cfg.route_gpx else DEFAULT_ROUTE
    fleet: list[Model] = []
    for i in range(cfg.gps):
        v = Vehicle(f"car-{i + 1}", random.Random(rng.random()), route)
        v.leg = i % len(route)  # spread the vehicles along the route
        fleet.append(v)
    fleet += [Room(f"room-{i + 1}", random.Random(rng.random())) for i in range(cfg.rooms)]
    fleet += [Patient(f"bed-{i + 1}", random.Random(rng.random())) for i in range(cfg.patients)]
    return fleet


def serial_codec_name(kind: str, cfg: SimConfig) -> tuple[str, dict[str, Any]]:
    """The codec (name, options) that a device of `kind` speaks on a serial line."""
    if kind == "temperature" and cfg.temperature_format == "gatt":
        return "gatt.0x2A1C", {"framing": "hex"}
    return SERIAL_CODECS[kind]


class Simulator:
    """Runs a SimConfig; `announce` receives 'device_id<TAB>port' lines for each pty."""

    def __init__(self, cfg: SimConfig, *, announce: Callable[[str], None] | None = None,
                 status: TextIO | None = None) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.fault_rng = random.Random(self.rng.random())
        # Its own Random, so that turning hostile frames on leaves a seed's other draws as
        # they were (the chaos soak replays schedules by seed).
        self.hostile_rng = random.Random(None if cfg.seed is None else f"hostile-{cfg.seed}")
        self.fleet = build_fleet(cfg, self.rng)
        self.announce = announce or (lambda line: print(line, flush=True))
        self.status = status if status is not None else sys.stderr
        self.counts: Counter[str] = Counter()
        self.seq = 0
        self._truth: TextIO | None = None
        self._acks: TextIO | None = None
        self._replug_requested: set[str] = set()
        self._stop_requested = False
        self._ports: dict[str, SimulatedPort] = {}
        self._mqtt: MqttPublisher | None = None
        self._stream: StreamOutput | None = None
        self._encoders: dict[str, Any] = {}
        self._hostile_cycle: dict[str, list[str]] = {}

    # -- set-up and tear-down ----------------------------------------------------------

    def open(self) -> None:
        """Create the outputs (ptys are announced, then wait for readers if so configured)."""
        cfg = self.cfg
        if cfg.truth:
            self._truth = open(cfg.truth, "w", encoding="utf-8")
        if cfg.acks:
            self._acks = open(cfg.acks, "w", encoding="utf-8")
        for m in self.fleet:
            if cfg.output == "mqtt":
                self._encoders[m.device_id] = CONVENTIONS[cfg.conventions[_kind(m)]]()
            else:
                name, opts = serial_codec_name(_kind(m), cfg)
                self._encoders[m.device_id] = CODECS[name](**opts)
        if cfg.output == "pty":
            link_dir = Path(cfg.link_dir) if cfg.link_dir else None
            if link_dir is not None:
                link_dir.mkdir(parents=True, exist_ok=True)
            for m in self.fleet:
                link = link_dir / m.device_id if link_dir else None
                port = SimulatedPort(m.device_id, link, stopping=lambda: self._stop_requested)
                self._ports[m.device_id] = port
                self.announce(f"{m.device_id}\t{port.path}" + (f"\t{link}" if link else ""))
            if cfg.wait_reader is not None:
                for port in self._ports.values():
                    if not port.wait_reader(cfg.wait_reader) and not self._stop_requested:
                        raise TimeoutError(f"no reader opened {port.path} within {cfg.wait_reader} s")
        elif cfg.output == "mqtt":
            self._mqtt = MqttPublisher(
                cfg.mqtt_host, cfg.mqtt_port, qos=cfg.mqtt_qos, client_id=cfg.mqtt_client_id,
                username=cfg.mqtt_username, password=cfg.mqtt_password, protocol=cfg.mqtt_protocol,
            )
        else:
            self._stream = StreamOutput("-" if cfg.output == "stdout" else str(cfg.file))

    def close(self) -> None:
        """Flush and close every output (ptys are drained first, so readers get all)."""
        for port in self._ports.values():
            port.close()
        if self._mqtt is not None:
            self._mqtt.close()
            self._write_acks()
            left = self._mqtt.unacked()
            if left:
                print(f"edge-sim: {left} MQTT messages not acknowledged by the broker",
                      file=self.status, flush=True)
        if self._stream is not None:
            self._stream.close()
        if self._truth is not None:
            self._truth.close()
        if self._acks is not None:
            self._acks.close()

    def request_stop(self) -> None:
        """End the run after the current tick, closing outputs as at a normal end (safe from a
        signal handler): every emitted reading stays in the truth file, in order."""
        self._stop_requested = True

    def request_replug(self) -> None:
        """Unplug and replug every pty at its next reading (safe from a signal handler)."""
        self._replug_requested = set(self._ports)

    def _write_acks(self) -> None:
        if self._mqtt is None:
            return
        seqs = self._mqtt.acked()
        if self._acks is not None and seqs:
            self._acks.write("".join(f"{seq}\n" for seq in seqs))

    # -- the loop -----------------------------------------------------------------------

    def run(self) -> Counter[str]:
        """Emit every reading; returns counts of readings, frames and faults."""
        cfg = self.cfg
        self.open()
        try:
            period_ms = 1000 / cfg.rate
            start_ms = cfg.start_ms if cfg.start_ms is not None else time.time_ns() // 1_000_000
            ticks = cfg.count
            if cfg.duration is not None:
                by_time = int(cfg.duration * cfg.rate)
                ticks = by_time if ticks is None else min(ticks, by_time)
            wall0, burst_left, last_progress = time.monotonic(), 0, time.monotonic()
            tick = 0
            while (ticks is None or tick < ticks) and not self._stop_requested:
                t_ms = start_ms + round(tick * period_ms)
                for model in self.fleet:
                    self._emit(model, model.reading(t_ms))
                    if self.fault_rng.random() < cfg.faults.burst:
                        burst_left = cfg.faults.burst_size
                        self.counts["fault_burst"] += 1
                tick += 1
                if cfg.realtime:
                    if burst_left:
                        burst_left -= 1
                    else:
                        wait = wall0 + tick / cfg.rate - time.monotonic()
                        if wait > 0:
                            time.sleep(wait)  # pacing a simulated device, not a test
                if cfg.progress and time.monotonic() - last_progress >= 1.0:
                    last_progress = time.monotonic()
                    total = f"/{ticks * len(self.fleet)}" if ticks is not None else ""
                    print(f"\redge-sim: {self.counts['readings']}{total} readings, "
                          f"{self.counts['frames']} frames", end="", file=self.status, flush=True)
            if cfg.progress and time.monotonic() - wall0 >= 1.0:
                print(file=self.status)
        finally:
            self.close()
        return self.counts

    def _emit(self, model: Model, reading: Reading) -> None:
        cfg, rng, f = self.cfg, self.fault_rng, self.cfg.faults
        device_id = model.device_id
        enc = self._encoders[device_id]
        if cfg.output == "mqtt":
            topic, payload = enc.encode(reading)
        else:
            topic, payload = None, enc.encode(reading)
        requested = device_id in self._replug_requested
        self._replug_requested.discard(device_id)
        if device_id in self._ports and (rng.random() < f.unplug or requested):
            self._replug(device_id)
        if rng.random() < f.garbage:
            noise = garbage(rng, newline=cfg.output != "mqtt")
            self._send(device_id, topic, noise)
            self._record({"type": "garbage", "device_id": device_id, "raw_hex": noise.hex()})
            self.counts["fault_garbage"] += 1
        if f.hostile and self.hostile_rng.random() < f.hostile:
            self._send_hostile(model, reading)
        fault = None
        if rng.random() < f.corrupt:
            payload, fault = corrupt_frame(payload, rng), "corrupt"
        elif rng.random() < f.truncate:
            payload, fault = truncate_frame(payload, rng), "truncate"
        if fault:
            self.counts[f"fault_{fault}"] += 1
        self._send(device_id, topic, payload, tag=self.seq + 1)
        self.seq += 1
        self.counts["readings"] += 1
        self._record({
            "type": "reading", "seq": self.seq, "device_id": device_id, "kind": reading.kind,
            "timestamp_ms": reading.timestamp_ms, "values": reading.to_event_value(),
            "fault": fault, "topic": topic,
        })
        self._write_acks()

    def _send_hostile(self, model: Model, reading: Reading) -> None:
        kind = _kind(model)
        if self.cfg.output == "mqtt":
            codec = self.cfg.conventions[kind]
        else:
            codec = serial_codec_name(kind, self.cfg)[0]
        if codec not in HOSTILE_CODECS:
            return  # a convention without a catalogue (esphome): nothing to send
        # Each device goes through its codec's whole catalogue in a seeded order before any
        # frame repeats, so a short run still sends every kind.
        cycle = self._hostile_cycle.setdefault(model.device_id, [])
        if not cycle:
            cycle += [*hostile_names(codec), "noise"]
            if self.cfg.output == "mqtt" and self.cfg.faults.max_payload is not None:
                cycle.append("oversized")
            self.hostile_rng.shuffle(cycle)
        frame = hostile_frame(codec, model.device_id, self.hostile_rng, reading.timestamp_ms or 0,
                              name=cycle.pop(), max_payload=self.cfg.faults.max_payload)
        self._send(model.device_id, frame.topic, frame.payload)
        # With the reading's time, so a checker can tell whether anyone could read it then.
        self._record({**frame.to_truth(model.device_id), "timestamp_ms": reading.timestamp_ms})
        self.counts["fault_hostile"] += 1

    def _send(self, device_id: str, topic: str | None, data: bytes, tag: int | None = None) -> None:
        self.counts["frames"] += 1
        if self._mqtt is not None:
            assert topic is not None
            self._mqtt.publish(topic, data, tag)
        elif device_id in self._ports:
            if not self._ports[device_id].write(data):
                # SIGTERM while the reader was not reading: the frame stops where it got to
                # (a reader that wakes later sees a cut frame, a dead letter).
                self.counts["frames_cut_at_stop"] += 1
        else:
            assert self._stream is not None
            self._stream.write(data)

    def _replug(self, device_id: str) -> None:
        port = self._ports[device_id]
        port.unplug()
        self._record({"type": "unplug", "device_id": device_id, "port": port.path})
        self.counts["fault_unplug"] += 1
        time.sleep(self.cfg.unplug_seconds)  # the cable stays out for a moment
        port.plug()
        print(f"edge-sim: {device_id} replugged at {port.path}", file=self.status, flush=True)
        self._record({"type": "replug", "device_id": device_id, "port": port.path})
        if (self.cfg.wait_reader is not None and not port.wait_reader(self.cfg.wait_reader)
                and not self._stop_requested):
            raise TimeoutError(f"no reader reopened {port.path} within {self.cfg.wait_reader} s")

    def _record(self, obj: dict[str, Any]) -> None:
        if self._truth is not None:
            self._truth.write(json.dumps(obj, separators=(",", ":")) + "\n")


def _kind(model: Model) -> str:
    return {Vehicle: "gps", Room: "temperature", Patient: "blood_pressure"}[type(model)]


def run(cfg: SimConfig, **kwargs: Any) -> Counter[str]:
    """Run the simulator to the end (count or duration); blocks; returns its counts.

    Raises ValueError for a bad config, TransportError if MQTT is unreachable,
    TimeoutError if no reader opens a pty within `wait_reader` seconds.
    """
    return Simulator(cfg, **kwargs).run()
