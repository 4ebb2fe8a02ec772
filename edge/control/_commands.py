"""What each command does on the box; ``execute`` answers (result, detail).

Enabling and disabling a device is stored (the set of disabled devices is laid over the
effective config, so it holds across a reboot and across new desired configs) and
applied through the same path as a desired config.
"""

from __future__ import annotations

import asyncio
from typing import Any

from edge._errors import ConfigError

from ._messages import Command
from ._overlay import effective_config

__all__ = ["execute"]


async def execute(loop: Any, command: Command) -> tuple[str, Any]:
    """Run ``command`` for the ControlLoop ``loop``: ("ok" | "error", detail)."""
    if command.command == "report_status":
        await loop._report(force=True)
        return "ok", {"reported": loop.applied()}
    if command.command in ("enable_device", "disable_device"):
        return await _toggle(loop, command.args.get("device"), command.command == "disable_device")
    # rereplicate needs the uplink to rewind its upstream checkpoint for one topic, which
    # it cannot do yet while running (edge/uplink/_resume.py resumes only at connect).
    return "error", "rereplicate is not supported by this box's uplink yet"


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
    await asyncio.to_thread(loop.store.put, {"disabled": sorted(disabled)})
    return "ok", f"{device} {'disabled' if disable else 'enabled'}"
