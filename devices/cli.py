"""edge-sim: the device simulator's command line (a thin layer over devices.simulator)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from importlib import metadata
from typing import Any

from devices._errors import DeviceError
from devices.simulator import DEFAULT_CONVENTIONS, Faults, SimConfig, Simulator

ENV_PREFIX = "EDGE_SIM_"


def _version() -> str:
    try:
        return metadata.version("edge-appliance")
    except metadata.PackageNotFoundError:
        return "0.1.0"


def _truthy(text: str) -> bool:
    return text.strip().lower() in ("1", "true", "yes", "on")


class _Group:
    """An argument group whose options also read EDGE_SIM_<NAME> (and say so in --help)."""

    def __init__(self, group: argparse._ArgumentGroup) -> None:
        self._group = group

    def add(self, *flags: str, **kw: Any) -> argparse.Action:
        """add_argument with a default from EDGE_SIM_<NAME>, named in the help."""
        dest = kw.get("dest") or flags[-1].lstrip("-").replace("-", "_")
        env = ENV_PREFIX + dest.upper()
        kw["help"] = f"{kw.get('help', '')} [env: {env}]".strip()
        if env in os.environ:
            raw = os.environ[env]
            if kw.get("action") == "store_true":
                kw["default"] = _truthy(raw)
            elif kw.get("action") == "append":
                kw["default"] = [p for p in raw.split(",") if p]
            else:
                kw["default"] = raw  # argparse applies `type` to string defaults
        return self._group.add_argument(*flags, **kw)


def _rate(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a probability within 0..1, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (every option also from an EDGE_SIM_* variable)."""
    p = argparse.ArgumentParser(
        prog="edge-sim",
        description="Simulate a fleet of GPS units, rooms and patients speaking NMEA, GATT, "
        "text and MQTT conventions, over pseudo-terminals, MQTT, stdout or a file.",
        epilog="Serial formats: GPS NMEA 0183; rooms text lines (or 0x2A1C hex with "
        "--temperature-format gatt); patients 0x2A35 hex lines. With --output pty, one "
        "'device<TAB>port[<TAB>link]' line per device goes to stdout; SIGUSR1 unplugs and "
        "replugs every pty once; SIGTERM ends the run cleanly after the current tick.",
    )
    p.add_argument("-V", "--version", action="version", version=f"%(prog)s {_version()}")
    g = _Group(p.add_argument_group("fleet"))
    g.add("--gps", type=int, default=1, metavar="N", help="GPS units on vehicles (car-1..)")
    g.add("--rooms", type=int, default=1, metavar="N", help="temperature sensors in rooms (room-1..)")
    g.add("--patients", type=int, default=1, metavar="N", help="blood-pressure cuffs (bed-1..)")
    g.add("--gpx", metavar="FILE", help="drive the vehicles along this GPX track or route")
    g = _Group(p.add_argument_group("timing"))
    g.add("--rate", type=float, default=1.0, metavar="HZ", help="readings per second per device")
    g.add("--count", type=int, metavar="N", help="stop after N readings per device")
    g.add("--duration", type=float, metavar="S", help="stop after S seconds (simulated)")
    g.add("--fast", action="store_true", help="do not pace in real time; as fast as the output takes")
    g.add("--seed", type=int, help="seed for reproducible values and faults")
    g.add("--start-ms", type=int, metavar="MS", help="simulated clock start (ms since epoch; default now)")
    g.add("--no-progress", action="store_true", help="no progress line on stderr")
    g = _Group(p.add_argument_group("output"))
    g.add("--output", choices=["pty", "mqtt", "stdout", "file"], default="stdout")
    g.add("--file", metavar="PATH", help="file for --output file")
    g.add("--link-dir", metavar="DIR", help="--output pty: symlink DIR/<device> to each pty")
    g.add("--wait-reader", type=float, default=30.0, metavar="S",
          help="--output pty: wait up to S seconds for a reader to open each port (negative: don't wait)")
    g.add("--unplug-seconds", type=float, default=0.5, metavar="S", help="how long an unplugged port stays out")
    g.add("--temperature-format", choices=["text", "gatt"], default="text", help="room frames on serial/stdout/file")
    g.add("--truth", metavar="FILE", help="write every emitted reading (and fault) as JSON lines")
    g.add("--acks", metavar="FILE",
          help="--output mqtt: write the seq of each reading the broker acknowledged (PUBACK), one a line")
    g = _Group(p.add_argument_group("MQTT"))
    g.add("--mqtt-host", default="127.0.0.1")
    g.add("--mqtt-port", type=int, default=1883)
    g.add("--mqtt-qos", type=int, choices=[0, 1], default=1)
    g.add("--mqtt-protocol", choices=["3.1.1", "5"], default="3.1.1")
    g.add("--mqtt-client-id", default="", help="publisher client id (default: broker-assigned)")
    g.add("--mqtt-username")
    g.add("--mqtt-password", help="prefer the environment variable: argv is visible to other users")
    g.add("--convention", action="append", metavar="KIND=NAME",
          help="payload convention per kind, e.g. temperature=tasmota; defaults: "
          + ", ".join(f"{k}={v}" for k, v in DEFAULT_CONVENTIONS.items()) + " (env: comma-separated)")
    g = _Group(p.add_argument_group("fault injection (probability per reading, 0..1)"))
    g.add("--corrupt", type=_rate, default=0.0, help="bad checksum (NMEA) or a damaged byte")
    g.add("--garbage", type=_rate, default=0.0, help="a line of random bytes before the frame")
    g.add("--truncate", type=_rate, default=0.0, help="frame cut short")
    g.add("--unplug", type=_rate, default=0.0, help="pty closed and reopened (new path, link follows)")
    g.add("--burst", type=_rate, default=0.0, help="start a burst: the next readings without pacing")
    g.add("--burst-size", type=int, default=20, metavar="N", help="readings per burst tick")
    g.add("--hostile", type=_rate, default=0.0,
          help="a hostile frame before the reading: a value out of physical range, a parser "
          "trap (deep JSON, 1e400, lone surrogates), noise or a truncation; each a "
          "'hostile' row in --truth")
    g.add("--max-payload", type=int, metavar="BYTES",
          help="--output mqtt: the devices' payload limit; --hostile then also sends payloads "
          "one byte over it")
    return p


def config_from_args(args: argparse.Namespace) -> SimConfig:
    """A SimConfig from parsed arguments; raises ValueError with the bad value."""
    conventions = dict(DEFAULT_CONVENTIONS)
    for item in args.convention or []:
        kind, sep, name = item.partition("=")
        if not sep or kind not in DEFAULT_CONVENTIONS:
            raise ValueError(f"--convention: expected KIND=NAME with KIND in {sorted(DEFAULT_CONVENTIONS)}, got {item!r}")
        conventions[kind] = name
    return SimConfig(
        gps=args.gps, rooms=args.rooms, patients=args.patients, rate=args.rate,
        count=args.count, duration=args.duration, realtime=not args.fast, seed=args.seed,
        start_ms=args.start_ms, output=args.output, file=args.file, link_dir=args.link_dir,
        wait_reader=None if args.wait_reader < 0 else args.wait_reader,
        unplug_seconds=args.unplug_seconds, mqtt_host=args.mqtt_host, mqtt_port=args.mqtt_port,
        mqtt_qos=args.mqtt_qos, mqtt_client_id=args.mqtt_client_id,
        mqtt_username=args.mqtt_username, mqtt_password=args.mqtt_password,
        mqtt_protocol=args.mqtt_protocol, conventions=conventions,
        temperature_format=args.temperature_format, route_gpx=args.gpx, truth=args.truth,
        acks=args.acks,
        progress=not args.no_progress,
        faults=Faults(corrupt=args.corrupt, garbage=args.garbage, truncate=args.truncate,
                      unplug=args.unplug, burst=args.burst, burst_size=args.burst_size,
                      hostile=args.hostile,
                      max_payload=None if args.max_payload is None else int(args.max_payload)),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run edge-sim; returns the exit code (0 ok, 1 runtime failure, 2 bad usage, 130 ^C)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        cfg = config_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    sim = Simulator(cfg)
    if cfg.output == "pty":  # SIGUSR1: unplug and replug every port once (scripted chaos)
        signal.signal(signal.SIGUSR1, lambda signum, frame: sim.request_replug())
    # SIGTERM: stop after the current tick and close cleanly (drain ptys, wait for PUBACKs).
    signal.signal(signal.SIGTERM, lambda signum, frame: sim.request_stop())
    try:
        counts = sim.run()
    except KeyboardInterrupt:
        return 130
    except (DeviceError, TimeoutError, OSError, ValueError) as exc:
        print(f"edge-sim: error: {exc}", file=sys.stderr)
        return 1
    if not args.no_progress:
        summary = ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))
        print(f"edge-sim: done: {summary}", file=sys.stderr)
    return 0
