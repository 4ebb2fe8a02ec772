"""``edge fleet command``: a command's arguments checked, signed, sent; its results printed.

Arguments are ``KEY=VALUE`` words (a value that reads as JSON is JSON: ``offset=0`` is
an integer), checked against PROTOCOL.md's table before anything is signed, so a typo
is an error here rather than an ``error`` result from every box of a group.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from edge.control import COMMANDS, ControlTopics, parse_target

from ._cluster import ensure_topics, follow, now_ms, read_compacted
from ._connection import FleetConnection
from ._errors import FleetUsageError
from ._publish import command_results, control_topic_specs, publish_command

__all__ = ["command_args", "command_main"]

#: Each command's keys: (required, one-of groups, optional).
_ARGS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "rereplicate": (("topic",), ("offset", "timestamp_ms")),
    "enable_device": (("device",), ()),
    "disable_device": (("device",), ()),
    "report_status": ((), ()),
}


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def command_args(name: str, words: list[str]) -> tuple[str, dict[str, Any]]:
    """The protocol's command name and its args from the CLI's ``NAME KEY=VALUE...``;
    ``FleetUsageError`` names what is wrong and what the command takes."""
    command = name.replace("-", "_")
    if command not in COMMANDS:
        raise FleetUsageError(f"command: expected one of {', '.join(sorted(COMMANDS))}, "
                              f"got {name!r}")
    required, one_of = _ARGS[command]
    usage = " ".join([f"{k}=..." for k in required] + (
        ["(" + " | ".join(f"{k}=..." for k in one_of) + ")"] if one_of else [])) or "no arguments"
    args: dict[str, Any] = {}
    for word in words:
        key, eq, text = word.partition("=")
        if not eq or not key:
            raise FleetUsageError(f"{command}: expected KEY=VALUE, got {word!r} ({command} "
                                  f"takes {usage})")
        if key not in required and key not in one_of:
            raise FleetUsageError(f"{command}: unknown argument {key!r} ({command} takes {usage})")
        args[key] = _value(text)
    missing = [k for k in required if k not in args]
    chosen = [k for k in one_of if k in args]
    if missing or (one_of and len(chosen) != 1):
        raise FleetUsageError(f"{command}: takes {usage}, got "
                              f"{' '.join(words) if words else 'none'}")
    for key in ("offset", "timestamp_ms"):
        v = args.get(key)
        if key in args and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
            raise FleetUsageError(f"{command}: {key}: expected an integer >= 0, got {v!r}")
    for key in ("topic", "device"):
        if key in args and (not isinstance(args[key], str) or not args[key]):
            args[key] = str(args[key])
    return command, args


def _line(doc: dict[str, Any]) -> str:
    detail = doc.get("detail")
    text = "" if detail in (None, "") else detail if isinstance(detail, str) else json.dumps(
        detail, sort_keys=True)
    return f"{doc.get('edge_id', '?')}: {doc.get('result', '?')}" + (f": {text}" if text else "")


async def _members(conn: FleetConnection, group: str, topics: ControlTopics) -> set[str] | None:
    """The boxes a group command waits for: those whose latest report lists ``group`` and
    that are not offline; None when no report lists any group (boxes older than that)."""
    from ._inventory import box_state, group_members

    boxes = [box_state(k, r.value or b"") for k, r in (await read_compacted(
        conn, topics.reported)).items()]
    if all(b.groups is None for b in boxes):
        return None
    online, offline = group_members(boxes, group, now_ms())
    if offline:
        print(f"group {group}: not waiting for {len(offline)} offline box"
              f"{'es' if len(offline) != 1 else ''}: {', '.join(sorted(offline))}", flush=True)
    return online


async def _send(conn: FleetConnection, target: str, command: str, args: dict[str, Any],
                ttl_s: float, key: Any, wait: bool, expect: int | None,
                topics: ControlTopics) -> int:
    if not wait:
        pub = await publish_command(conn, target, command, args, ttl_s, key, topics)
        print(f"{target}: command {pub.payload['id']} ({command}) sent; valid for {ttl_s:g} s")
        return 0
    await ensure_topics(conn, control_topic_specs(topics))
    kind, name = parse_target(target)
    waiting = await _members(conn, name, topics) if kind == "group" and expect is None else None
    if waiting is not None and not waiting:
        print(f"edge fleet: no online box reports group {name!r}: nothing to wait for "
              "(edge fleet status lists the boxes and their groups)", file=sys.stderr)
    async with follow(conn, [topics.results]) as records:  # before it is sent
        pub = await publish_command(conn, target, command, args, ttl_s, key, topics)
        print(f"{target}: command {pub.payload['id']} ({command}) sent; waiting for "
              + (f"{len(waiting)} box{'es' if len(waiting) != 1 else ''}" if waiting is not None
                 else "results"), flush=True)
        deadline = time.monotonic() + ttl_s
        seen = 0
        answered: set[str] = set()
        failed = False
        results = command_results(records, pub.payload["id"])
        while (expect is None or seen < expect) and (waiting is None or not waiting <= answered):
            try:
                doc = await asyncio.wait_for(anext(results), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                print(f"edge fleet: {seen} result{'s' if seen != 1 else ''} within the time to "
                      f"live ({ttl_s:g} s)", file=sys.stderr)
                if waiting is not None:
                    print(f"edge fleet: did not answer: {', '.join(sorted(waiting - answered))}",
                          file=sys.stderr)
                    return 1
                return 1 if expect is not None else (1 if failed else 0)
            seen += 1
            answered.add(str(doc.get("edge_id")))
            failed = failed or doc.get("result") != "ok"
            print(_line(doc), flush=True)
        return 1 if failed else 0


def command_main(args: argparse.Namespace, conn: FleetConnection, target: str,
                 private_key: Callable[[argparse.Namespace], Any], topics: ControlTopics) -> int:
    """``edge fleet command``: 0 when sent (with --wait: every result ok)."""
    command, cargs = command_args(args.name, args.args)
    if args.expect is not None and args.expect < 1:
        raise FleetUsageError(f"--expect: expected an integer >= 1, got {args.expect}")
    expect = args.expect if args.expect is not None else (1 if target.startswith("edge:") else None)
    key = private_key(args)
    try:
        return asyncio.run(_send(conn, target, command, cargs, args.ttl, key, args.wait, expect,
                                 topics))
    except KeyboardInterrupt:
        return 130
