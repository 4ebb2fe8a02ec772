"""The payloads of the control channel and the topics they travel on (PROTOCOL.md).

Pure functions of dicts: the central side (``edge fleet``) builds desired states and
commands with ``desired_payload``/``command_payload`` and signs them; the box parses
them with ``parse_desired``/``parse_command`` (after ``verify``) and answers with
``result_payload`` records and ``reported`` documents. Times are integers in ms since
the epoch.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._errors import ControlRefused

__all__ = [
    "COMMANDS",
    "DEFAULT_TOPICS",
    "DESIRED_RESULTS",
    "RESULTS",
    "Command",
    "ControlTopics",
    "Desired",
    "command_payload",
    "decode_json",
    "desired_payload",
    "edge_target",
    "encode_json",
    "group_target",
    "parse_command",
    "parse_desired",
    "parse_target",
    "result_payload",
]

COMMANDS = frozenset({"rereplicate", "enable_device", "disable_device", "report_status"})
#: ``result`` of a command's result record.
RESULTS = frozenset({"ok", "error", "expired", "refused"})
#: ``desired_result.result`` of a reported document.
DESIRED_RESULTS = frozenset({"applied", "refused", "rolled_back"})


@dataclass(frozen=True)
class ControlTopics:
    """The upstream topics of the control channel (``[control]`` can rename them)."""

    desired: str = "edge.control.desired"  # compacted, keyed by target
    commands: str = "edge.control.commands"  # keyed by target
    reported: str = "edge.control.reported"  # compacted, keyed by edge id
    results: str = "edge.control.results"  # keyed by edge id


DEFAULT_TOPICS = ControlTopics()


def edge_target(edge_id: str) -> str:
    """The target (and record key) that addresses one box."""
    return f"edge:{edge_id}"


def group_target(group: str) -> str:
    """The target (and record key) that addresses every box in ``group``."""
    return f"group:{group}"


def parse_target(target: object) -> tuple[str, str]:
    """``("edge", id)`` or ``("group", name)``; ControlRefused("malformed") otherwise."""
    if isinstance(target, str):
        kind, sep, name = target.partition(":")
        if sep and name and kind in ("edge", "group"):
            return kind, name
    raise ControlRefused("malformed", f'target: expected "edge:<id>" or "group:<name>", got {target!r}')


def encode_json(document: Mapping[str, Any]) -> bytes:
    """The bytes of an unsigned record (reported, results): compact JSON."""
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def decode_json(value: bytes) -> dict[str, Any]:
    """An unsigned record's document; ValueError if it is not a JSON object."""
    document = json.loads(value)
    if not isinstance(document, dict):
        raise ValueError("not a JSON object")
    return document


def desired_payload(
    target: str, version: int, config: Mapping[str, Any], issued_ms: int
) -> dict[str, Any]:
    """A desired-state payload (to be signed): whole edge.toml sections as a dict."""
    parse_target(target)
    return {
        "kind": "desired",
        "target": target,
        "version": int(version),
        "issued_ms": int(issued_ms),
        "config": dict(config),
    }


def command_payload(
    target: str,
    command: str,
    args: Mapping[str, Any] | None,
    issued_ms: int,
    ttl_ms: int,
    command_id: str | None = None,
) -> dict[str, Any]:
    """A command payload (to be signed); a fresh uuid4 id unless one is given."""
    parse_target(target)
    if command not in COMMANDS:
        raise ValueError(f"command: expected one of {sorted(COMMANDS)}, got {command!r}")
    return {
        "kind": "command",
        "id": command_id or str(uuid.uuid4()),
        "target": target,
        "issued_ms": int(issued_ms),
        "ttl_ms": int(ttl_ms),
        "command": command,
        "args": dict(args or {}),
    }


def _int(payload: Mapping[str, Any], key: str, minimum: int = 0) -> int:
    value = payload.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ControlRefused("malformed", f"{key}: expected an integer >= {minimum}, got {value!r}")
    return value


@dataclass(frozen=True)
class Desired:
    """A verified desired state: ``config`` holds whole edge.toml sections."""

    target: str
    version: int
    issued_ms: int
    config: dict[str, Any] = field(hash=False)


def parse_desired(payload: Mapping[str, Any]) -> Desired:
    """A Desired from a verified payload; ControlRefused("malformed") names the bad key."""
    if payload.get("kind") != "desired":
        raise ControlRefused("malformed", f'kind: expected "desired", got {payload.get("kind")!r}')
    target = payload.get("target")
    parse_target(target)
    config = payload.get("config")
    if not isinstance(config, dict):
        raise ControlRefused("malformed", f"config: expected an object of sections, got {config!r}")
    return Desired(str(target), _int(payload, "version", 1), _int(payload, "issued_ms"), config)


@dataclass(frozen=True)
class Command:
    """A verified command; ``expired(now_ms)`` once issued_ms + ttl_ms has passed."""

    id: str
    target: str
    issued_ms: int
    ttl_ms: int
    command: str
    args: dict[str, Any] = field(hash=False)

    def expired(self, now_ms: int) -> bool:
        return now_ms > self.issued_ms + self.ttl_ms


def parse_command(payload: Mapping[str, Any]) -> Command:
    """A Command from a verified payload; ControlRefused("malformed") names the bad key."""
    if payload.get("kind") != "command":
        raise ControlRefused("malformed", f'kind: expected "command", got {payload.get("kind")!r}')
    command_id, target, command = payload.get("id"), payload.get("target"), payload.get("command")
    if not isinstance(command_id, str) or not command_id:
        raise ControlRefused("malformed", f"id: expected a non-empty string, got {command_id!r}")
    parse_target(target)
    if command not in COMMANDS:
        raise ControlRefused("malformed", f"command: expected one of {sorted(COMMANDS)}, got {command!r}")
    args = payload.get("args", {})
    if not isinstance(args, dict):
        raise ControlRefused("malformed", f"args: expected an object, got {args!r}")
    return Command(
        command_id, str(target), _int(payload, "issued_ms"), _int(payload, "ttl_ms"), str(command), args
    )


def result_payload(
    command_id: str, edge_id: str, ts_ms: int, result: str, detail: Any = None
) -> dict[str, Any]:
    """A command's result record (unsigned, keyed by edge id on the results topic)."""
    if result not in RESULTS:
        raise ValueError(f"result: expected one of {sorted(RESULTS)}, got {result!r}")
    return {
        "command_id": command_id,
        "edge_id": edge_id,
        "ts_ms": int(ts_ms),
        "result": result,
        "detail": detail,
    }
