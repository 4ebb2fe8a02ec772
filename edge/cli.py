"""edge: the appliance's operator command line (a thin layer over edge's library).

    edge run --config edge.toml        run the appliance (until SIGTERM / Ctrl-C)
    edge config check edge.toml        validate a config, listing every error
    edge config example                print a commented config that validates
    edge status [--watch] [--wide]     ask a running appliance's /health (or --json)
    edge streams describe -c edge.toml print the stream topologies the config will run
    edge fleet set|status|command|watch steer the fleet from the cluster (docs/fleet.md)

Every option can also come from an EDGE_* environment variable; --help names it.
Exit statuses (sysexits.h; docs/exit-status.md, edge/_exit.py): 0 ok, 1 a crash (or
unhealthy, for status), 2 bad usage, 78 a config that is missing or does not validate;
`edge run` that cannot start: 65 the log is corrupt or newer, 74 it cannot be written,
75 it is locked or the disk is full, 69 the health address is in use. Each is one line on stderr.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any

from edge._config import DEFAULT_HEALTH_ADDRESS, load_config
from edge._early_signals import EarlySignals
from edge._errors import ConfigError, EdgeError, StartupError
from edge._exit import EX_CONFIG, EX_FAILURE


def _version() -> str:
    try:
        return metadata.version("edge-appliance")
    except metadata.PackageNotFoundError:
        return "0.1.0"


def _opt(parser: argparse.ArgumentParser, *flags: str, env: str, **kw: Any) -> argparse.Action:
    """add_argument whose default comes from `env` when set; --help names the variable."""
    kw["help"] = f"{kw.get('help', '')} [env: {env}]".strip()
    if env in os.environ:
        raw = os.environ[env]
        if kw.get("action") == "store_true":
            kw["default"] = raw.strip().lower() in ("1", "true", "yes", "on")
        else:
            kw["default"] = raw
            kw.pop("required", None)
    return parser.add_argument(*flags, **kw)


def _seconds(minimum: float) -> Callable[[str], float]:
    """An argparse type: a finite number of seconds of at least ``minimum`` (0: more than 0)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
        if not math.isfinite(value) or value < minimum or (minimum == 0 and value == 0):
            bound = "more than 0" if minimum == 0 else f"at least {minimum:g}"
            raise argparse.ArgumentTypeError(f"expected {bound} seconds, got {text!r}")
        return value
    parse.__name__ = "seconds"
    return parse


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `edge`."""
    p = argparse.ArgumentParser(prog="edge", description="The IoT edge appliance: devices into a "
                                "durable local log, replicated upstream to Kafka.")
    p.add_argument("-V", "--version", action="version", version=f"%(prog)s {_version()}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    r = sub.add_parser("run", help="run the appliance until SIGTERM or Ctrl-C")
    _opt(r, "-c", "--config", env="EDGE_CONFIG", required=True, metavar="FILE",
         help="the TOML config file")
    _opt(r, "--log-level", env="EDGE_LOG_LEVEL", default="INFO",
         choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="stderr log level")
    _opt(r, "--shutdown-timeout", env="EDGE_SHUTDOWN_TIMEOUT", type=_seconds(0), default=10.0,
         metavar="S", help="on SIGTERM, flush and exit within S seconds")

    c = sub.add_parser("config", help="check a config or print an example")
    csub = c.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    chk = csub.add_parser("check", help="validate FILE; list every error with its key")
    _opt(chk, "file", env="EDGE_CONFIG", nargs="?" if "EDGE_CONFIG" in os.environ else None,
         metavar="FILE", help="the TOML config file")
    csub.add_parser("example", help="print a commented config that validates")

    st = sub.add_parser("streams", help="stream processing: show what the config will run")
    stsub = st.add_subparsers(dest="streams_command", metavar="ACTION", required=True)
    desc = stsub.add_parser("describe", help="print each configured topology's processors")
    _opt(desc, "-c", "--config", env="EDGE_CONFIG", required=True, metavar="FILE",
         help="the TOML config file")

    s = sub.add_parser("status", help="show a running appliance's health")
    _opt(s, "--address", env="EDGE_HEALTH_ADDRESS", default=None, metavar="HOST:PORT",
         help=f"where its /health listens (default: from --config, else {DEFAULT_HEALTH_ADDRESS})")
    _opt(s, "-c", "--config", env="EDGE_CONFIG", default=None, metavar="FILE",
         help="read the health address, and the token that shows the readings' values, "
         "from this config (the token also from $EDGE_HEALTH_TOKEN)")
    _opt(s, "--json", env="EDGE_STATUS_JSON", action="store_true", help="print the raw JSON")
    _opt(s, "--wide", env="EDGE_STATUS_WIDE", action="store_true",
         help="every row whole; on a terminal the default view fits its width and height")
    _opt(s, "--watch", env="EDGE_STATUS_WATCH", action="store_true",
         help="refresh every --interval seconds until Ctrl-C")
    # At least 0.1 s: 0 asked /health in a busy loop, -1 and nan ended in a traceback.
    _opt(s, "--interval", env="EDGE_STATUS_INTERVAL", type=_seconds(0.1), default=1.0, metavar="S",
         help="refresh period of --watch")

    from edge.fleet._cli import add_fleet_parser  # light: its actions import what they need

    add_fleet_parser(sub, _opt)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run `edge`; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "config":
            return _config(args)
        if args.command == "run":
            early = EarlySignals()  # before the config and the heavy imports: see the module
            cfg = load_config(args.config)
            from edge._exposure import exposed_secrets_warning
            from edge._service import run_service

            return run_service(cfg, log_level=args.log_level,
                               shutdown_timeout=args.shutdown_timeout, config_path=args.config,
                               warnings=[w for w in [exposed_secrets_warning(args.config)] if w],
                               early_signals=early)
        if args.command == "streams":
            from edge.streams._config import describe_streams

            sys.stdout.write(describe_streams(load_config(args.config).streams))
            return 0
        if args.command == "fleet":
            from edge.fleet._cli import fleet_main

            return fleet_main(args)
        if args.command == "status":
            from edge._status import status_main

            address, token = args.address, os.environ.get("EDGE_HEALTH_TOKEN") or None
            if args.config:  # its [health] address and token (which shows the readings' values)
                health = load_config(args.config).health
                address, token = address or health.address, health.token
            return status_main(address or DEFAULT_HEALTH_ADDRESS, as_json=args.json,
                               watch=args.watch, interval=args.interval, token=token,
                               wide=args.wide)
    except ConfigError as exc:
        # One line (journald keeps one entry); `edge config check` lists them one a line.
        print(f"edge: config error: {'; '.join(str(p) for p in exc.errors)}", file=sys.stderr)
        return EX_CONFIG
    except StartupError as exc:
        print(f"edge: error: {exc}", file=sys.stderr)
        return exc.exit_status
    except EdgeError as exc:
        print(f"edge: error: {exc}", file=sys.stderr)
        return EX_FAILURE
    except KeyboardInterrupt:
        return 130
    raise AssertionError(args.command)


def _config(args: argparse.Namespace) -> int:
    if args.config_command == "example":
        from edge._example import EXAMPLE_CONFIG

        sys.stdout.write(EXAMPLE_CONFIG)
        return 0
    try:
        cfg = load_config(args.file)
    except ConfigError as exc:
        n = len(exc.errors)
        print(f"{exc}\nedge: {n} error{'s' if n != 1 else ''} in {args.file}", file=sys.stderr)
        return EX_CONFIG
    from edge._exposure import exposed_secrets_warning

    warning = exposed_secrets_warning(args.file)
    if warning:
        print(f"edge: warning: {warning}", file=sys.stderr)
    print(f"{args.file}: ok ({len(cfg.devices)} device{'s' if len(cfg.devices) != 1 else ''}, "
          f"health on {cfg.health.address}, upstream {'on' if cfg.upstream.enabled else 'off'}, "
          f"{len(cfg.streams)} stream topolog{'ies' if len(cfg.streams) != 1 else 'y'})")
    return 0
