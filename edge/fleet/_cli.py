"""``edge fleet ...``: the central side's commands (a thin layer over edge.fleet).

    edge fleet keygen DIR                             a signing key pair (control.key, 0600)
    edge fleet set --edge ID|--group G FILE           validate, sign, publish a desired state
    edge fleet status [--json]                        every box's reported state: one table
    edge fleet command --edge ID|--group G NAME [K=V ...] [--ttl 10m] [--wait]
    edge fleet watch [--json]                         follow reported state and results

Imports nothing heavy until a command runs: ``edge --help`` must stay quick.
Exit statuses: 0 ok, 1 failed, 2 bad usage (a key file, a target, an argument),
75 the cluster could not be reached or refused (try again), 78 the desired state does
not validate.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import re
import sys
from collections.abc import Callable
from typing import Any

from edge._errors import ConfigError
from edge._exit import EX_CONFIG, EX_FAILURE, EX_TEMPFAIL, EX_USAGE

from ._errors import ClusterError, FleetError, FleetUsageError

__all__ = ["add_fleet_parser", "fleet_main", "parse_duration"]

Opt = Callable[..., argparse.Action]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """``10m``, ``90s``, ``2h``, ``7d``, ``500ms`` or a bare number of seconds, in seconds."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(ms|s|m|h|d)?\s*", text)
    value = float(m.group(1)) * _UNITS[m.group(2) or "s"] if m else math.nan
    if not m or not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(
            f"expected a duration such as 30s, 10m, 2h or 7d, got {text!r}")
    return value


parse_duration.__name__ = "duration"  # argparse names the type in its error


def _connection_options(opt: Opt) -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    g = common.add_argument_group("cluster connection (as the uplink's [upstream] settings)")
    opt(g, "--bootstrap-server", env="EDGE_FLEET_BOOTSTRAP_SERVER", metavar="HOST:PORT[,...]",
        default="", help="the cluster's brokers")
    opt(g, "--security-protocol", env="EDGE_FLEET_SECURITY_PROTOCOL", default="PLAINTEXT",
        metavar="P", help="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL")
    opt(g, "--sasl-mechanism", env="EDGE_FLEET_SASL_MECHANISM", default=None, metavar="M",
        help="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; the password only from "
        "$EDGE_FLEET_SASL_PASSWORD")
    opt(g, "--sasl-username", env="EDGE_FLEET_SASL_USERNAME", default=None, metavar="USER",
        help="the SASL user")
    opt(g, "--ssl-cafile", env="EDGE_FLEET_SSL_CAFILE", default=None, metavar="PEM",
        help="CA certificates (default: the system's)")
    opt(g, "--ssl-certfile", env="EDGE_FLEET_SSL_CERTFILE", default=None, metavar="PEM",
        help="a client certificate")
    opt(g, "--ssl-keyfile", env="EDGE_FLEET_SSL_KEYFILE", default=None, metavar="PEM",
        help="its key (a password from $EDGE_FLEET_SSL_KEY_PASSWORD)")
    opt(g, "--control-topics", env="EDGE_FLEET_CONTROL_TOPICS", default="edge.control",
        metavar="PREFIX", help="the control topics are PREFIX.desired, .commands, .reported "
        "and .results (the boxes' [control] *_topic; default edge.control)")
    opt(g, "--timeout", env="EDGE_FLEET_TIMEOUT", type=parse_duration, default=30.0,
        metavar="D", help="give up on an unanswered request after D (default 30s)")
    return common


def _target(p: argparse.ArgumentParser) -> None:
    t = p.add_mutually_exclusive_group(required=True)
    t.add_argument("--edge", metavar="ID", help="one box, by its edge_id")
    t.add_argument("--group", metavar="G", help="every box whose [control] groups has G")


def add_fleet_parser(sub: Any, opt: Opt) -> None:
    """Add ``fleet`` and its actions to ``edge``'s subparsers; ``opt`` is edge.cli's
    add_argument that reads a default from an environment variable."""
    common = _connection_options(opt)
    f = sub.add_parser("fleet", help="steer the fleet from the cluster: desired config, "
                       "commands, reported state (docs/fleet.md)")
    fs = f.add_subparsers(dest="fleet_command", metavar="ACTION", required=True)

    k = fs.add_parser("keygen", help="write a new Ed25519 key pair: DIR/control.key (0600, "
                      "signs) and DIR/control.pub (goes on every box)")
    k.add_argument("dir", metavar="DIR")

    def key(p: argparse.ArgumentParser) -> None:
        opt(p, "--key", env="EDGE_FLEET_KEY", default=None, metavar="FILE",
            help="the private signing key (control.key from `edge fleet keygen`)")

    s = fs.add_parser("set", parents=[common], help="validate FILE (whole edge.toml sections), "
                      "sign it and publish it as the desired state of a box or group")
    _target(s)
    s.add_argument("file", metavar="FILE", help="the desired sections, TOML")
    s.add_argument("--version", type=int, default=None, metavar="N",
                   help="the version to publish (default: the target's latest + 1)")
    opt(s, "--base", env="EDGE_FLEET_BASE", default=None, metavar="FILE",
        help="validate FILE laid over this box config (default: over a stub)")
    key(s)

    st = fs.add_parser("status", parents=[common], help="every box's latest reported state")
    opt(st, "--json", env="EDGE_FLEET_JSON", action="store_true", help="print JSON")
    opt(st, "--stale", env="EDGE_FLEET_STALE", type=parse_duration, default=600.0, metavar="D",
        help="a box not heard from for D counts as offline (default 10m: two of the boxes' "
        "default 300 s heartbeats)")

    c = fs.add_parser("command", parents=[common], help="send a signed command; "
                      "NAME: rereplicate topic=T (offset=N | timestamp_ms=MS), "
                      "enable_device device=D, disable_device device=D, report_status")
    _target(c)
    c.add_argument("name", metavar="NAME")
    c.add_argument("args", nargs="*", metavar="KEY=VALUE")
    opt(c, "--ttl", env="EDGE_FLEET_TTL", type=parse_duration, default=600.0, metavar="D",
        help="boxes that see it later than D after now skip it (default 10m)")
    opt(c, "--wait", env="EDGE_FLEET_WAIT", action="store_true",
        help="print the boxes' results as they come, until every box answered (--edge: the "
        "one; --group: each online box whose reported state lists the group), --expect "
        "results, or the time to live has passed (or Ctrl-C); names the boxes that did not")
    c.add_argument("--expect", type=int, default=None, metavar="N",
                   help="with --wait: stop after N results (default: 1 for --edge)")
    key(c)

    w = fs.add_parser("watch", parents=[common], help="print reported state and command "
                      "results as they arrive, until Ctrl-C")
    opt(w, "--json", env="EDGE_FLEET_JSON", action="store_true", help="one JSON object a line")
    w.add_argument("--from-beginning", action="store_true", help="start at the topics' starts")


def _connection(args: argparse.Namespace) -> Any:
    from ._connection import FleetConnection

    return FleetConnection(
        bootstrap_servers=args.bootstrap_server, security_protocol=args.security_protocol,
        sasl_mechanism=args.sasl_mechanism, sasl_username=args.sasl_username,
        sasl_password=os.environ.get("EDGE_FLEET_SASL_PASSWORD") or None,
        ssl_cafile=args.ssl_cafile, ssl_certfile=args.ssl_certfile, ssl_keyfile=args.ssl_keyfile,
        ssl_key_password=os.environ.get("EDGE_FLEET_SSL_KEY_PASSWORD") or None,
        request_timeout_s=args.timeout)


def _topics(args: argparse.Namespace) -> Any:
    from edge.control import ControlTopics

    p = args.control_topics
    return ControlTopics(f"{p}.desired", f"{p}.commands", f"{p}.reported", f"{p}.results")


def _private_key(args: argparse.Namespace) -> Any:
    from edge.control import KeyFileError, load_private_key

    if not args.key:
        raise FleetUsageError("no signing key: pass --key FILE or set $EDGE_FLEET_KEY "
                              "(`edge fleet keygen DIR` makes one)")
    try:
        return load_private_key(args.key)
    except KeyFileError as exc:
        raise FleetUsageError(str(exc)) from exc


def _target_of(args: argparse.Namespace) -> str:
    from edge.control import ControlRefused, edge_target, group_target, parse_target

    target = edge_target(args.edge) if args.edge is not None else group_target(args.group)
    try:
        parse_target(target)
    except ControlRefused as exc:
        raise FleetUsageError(f"--edge/--group: {exc.detail}") from exc
    return target


def fleet_main(args: argparse.Namespace) -> int:
    """Run one ``edge fleet`` action; returns the exit status."""
    # aiokafka logs each failed connect at ERROR before raising; the error it raises is
    # what this command reports, once, in one line.
    quiet = logging.getLogger("aiokafka")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    try:
        return _run(args)
    except ConfigError as exc:
        n = len(exc.errors)
        print(f"{exc}\nedge fleet: {n} error{'s' if n != 1 else ''} in {args.file}; "
              "nothing was published", file=sys.stderr)
        return EX_CONFIG
    except FleetUsageError as exc:
        print(f"edge fleet: {exc}", file=sys.stderr)
        return EX_USAGE
    except ClusterError as exc:
        print(f"edge fleet: {exc}", file=sys.stderr)
        return EX_TEMPFAIL
    except FleetError as exc:
        print(f"edge fleet: {exc}", file=sys.stderr)
        return EX_FAILURE


def _run(args: argparse.Namespace) -> int:
    action = args.fleet_command
    if action == "keygen":
        from edge.control import KeyFileError, generate_keypair

        try:
            private, public = generate_keypair(args.dir)
        except KeyFileError as exc:
            raise FleetUsageError(str(exc)) from exc
        print(f"{private}: the signing key (mode 0600): keep it with the fleet's operators\n"
              f"{public}: the public key: provision it on every box ([control] public_keys)")
        return 0
    if action == "set":
        from ._desired import read_desired
        from ._publish import publish_desired

        target = _target_of(args)
        sections = read_desired(args.file, args.base)  # before the key or the cluster
        if args.version is not None and args.version < 1:
            raise FleetUsageError(f"--version: expected an integer >= 1, got {args.version}")
        key = _private_key(args)
        pub = asyncio.run(publish_desired(_connection(args), target, sections, key, args.version,
                                          _topics(args)))
        print(f"{target}: desired version {pub.payload['version']} published "
              f"({', '.join(sorted(sections))}); follow it with `edge fleet status`")
        return 0
    if action == "status":
        return _status(args)
    if action == "command":
        from ._commands import command_main

        return command_main(args, _connection(args), _target_of(args), _private_key,
                            _topics(args))
    if action == "watch":
        from ._watch import watch_main

        return watch_main(_connection(args), _topics(args), as_json=args.json,
                          from_beginning=args.from_beginning)
    raise AssertionError(action)


def _status(args: argparse.Namespace) -> int:
    from . import read_inventory
    from ._cluster import now_ms
    from ._inventory import inventory_json, render_status

    boxes = asyncio.run(read_inventory(_connection(args), _topics(args).reported))
    now = now_ms()
    sys.stdout.write(inventory_json(boxes, now, args.stale) if args.json
                     else render_status(boxes, now, args.stale))
    return 0
