"""Commands on the box: ``on_command`` verifies one, runs it once, answers it; ``execute``
says what each does, as (result, detail).

Enabling and disabling a device is stored (the set of disabled devices is laid over the
effective config, so it holds across a reboot and across new desired configs) and
applied through the same path as a desired config.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from broker import BrokerError, KafkaConsumer, TopicPartition
from edge._errors import ConfigError, EdgeError
from edge._logconfig import log_config_of

from ._envelope import verify
from ._errors import ControlRefused
from ._messages import Command, encode_json, parse_command, result_payload
from ._overlay import effective_config

__all__ = ["execute", "on_command", "send_result"]

log = logging.getLogger("edge.control")


async def on_command(loop: Any, key: str, value: bytes, seen_before: bool) -> None:
    """One record of the commands topic for this box (ControlLoop ``loop``)."""
    if seen_before:
        return
    now = loop.service.trust.now_ms()
    try:
        command = parse_command(verify(value, loop.keys, loop.settings.max_record_bytes))
        if command.target != key:
            raise ControlRefused("malformed", f"signed for {command.target!r}, sent as {key!r}")
    except ControlRefused as exc:
        log.warning("control: command for %s refused: %s", key, exc)
        await send_result(loop, None, result_payload("", loop.edge_id, now, "refused", str(exc)))
        return
    if command.id in loop.store.state.commands:
        return  # executed (or answered) once already: redelivered
    if command.expired(now):
        outcome, detail = "expired", f"issued {command.issued_ms}, ttl {command.ttl_ms} ms, now {now}"
    else:
        outcome, detail = await execute(loop, command)
    # Stored before it is sent: a crash between the two sends it at the next connect and
    # never runs the command again.
    result = {**result_payload(command.id, loop.edge_id, now, outcome, detail), "sent": False}
    await asyncio.to_thread(loop.store.put, {f"command/{command.id}": result})
    await send_result(loop, command.id, result)


async def send_result(loop: Any, command_id: str | None, result: dict[str, Any]) -> None:
    """Send a result record (keyed by edge id); mark a stored one sent."""
    document = {k: v for k, v in result.items() if k != "sent"}
    await loop._producer.send_and_wait(loop.settings.results_topic, encode_json(document),
                                       key=loop.edge_id.encode())
    if command_id:
        await asyncio.to_thread(loop.store.put, {f"command/{command_id}": {**document, "sent": True}})


async def execute(loop: Any, command: Command) -> tuple[str, Any]:
    """Run ``command`` for the ControlLoop ``loop``: ("ok" | "error", detail)."""
    if command.command == "report_status":
        await loop._report(force=True)
        return "ok", {"reported": loop.applied()}
    if command.command in ("enable_device", "disable_device"):
        return await _toggle(loop, command.args.get("device"), command.command == "disable_device")
    return await _rereplicate(loop, command.args)


async def _rereplicate(loop: Any, args: dict[str, Any]) -> tuple[str, Any]:
    """Send a local topic upstream again from an offset or a time (each partition)."""
    service = loop.service
    topic, offset, at = args.get("topic"), args.get("offset"), args.get("timestamp_ms")
    mapped = set(service.cfg.upstream.settings.get("topics") or {}) or \
        {d.topic for d in service.cfg.devices} | {service.cfg.log.dead_letter_topic}
    if not isinstance(topic, str) or topic not in mapped:
        return "error", f"args.topic: expected a topic the uplink replicates ({', '.join(sorted(mapped))}), got {topic!r}"
    if (offset is None) == (at is None) or any(
            v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0) for v in (offset, at)):
        return "error", "args: expected offset or timestamp_ms, an integer >= 0 (one of them)"
    try:
        positions = await asyncio.to_thread(_positions, log_config_of(service.cfg, service.clock),
                                            topic, offset, at)
    except BrokerError as exc:
        return "error", f"{topic}: {exc}"
    if not positions:
        return "error", f"no local topic {topic!r} on this box"
    try:
        await service.rewind_uplink(positions)
    except EdgeError as exc:
        return "error", str(exc)
    return "ok", {"topic": topic, "from": {str(tp.partition): off for tp, off in positions.items()}}


def _positions(log_config: Any, topic: str, offset: int | None, at: int | None
               ) -> dict[TopicPartition, int]:
    """Each local partition of ``topic``: ``offset`` (within the log), or the first offset
    at or after ``at`` (the end where nothing is that new)."""
    consumer = KafkaConsumer(log_config=log_config, enable_auto_commit=False)
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        if not tps:
            return {}
        first, end = consumer.beginning_offsets(tps), consumer.end_offsets(tps)
        if offset is not None:
            start = offset
            return {tp: min(max(start, first[tp]), end[tp]) for tp in tps}
        out = {}
        for tp, hit in consumer.offsets_for_times({tp: at or 0 for tp in tps}).items():
            out[tp] = end[tp] if hit is None else hit.offset
        return out
    finally:
        consumer.close()


async def _toggle(loop: Any, device: object, disable: bool) -> tuple[str, Any]:
    state = loop.store.state
    if not isinstance(device, str) or not device:
        return "error", f"args.device: expected a device name, got {device!r}"
    known = {d.get("name") for d in loop.overlay_devices()} | state.disabled
    if device not in known:
        return "error", f"no device {device!r} on this box (devices: {', '.join(sorted(map(str, known)))})"
    disabled = (state.disabled | {device}) if disable else (state.disabled - {device})
    if disabled == state.disabled:
        return "ok", f"{device} already {'disabled' if disable else 'enabled'}"
    try:
        new = await asyncio.to_thread(effective_config, loop.base_raw, loop.layers(state.desired),
                                      disabled, loop.base_name)
    except ConfigError as exc:
        return "error", [str(p) for p in exc.errors]
    await loop.service.apply_config(new)
    loop.last_good = new
    await loop.put({"disabled": sorted(disabled)})
    return "ok", f"{device} {'disabled' if disable else 'enabled'}"
