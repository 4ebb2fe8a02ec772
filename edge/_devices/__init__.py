"""The ``[[devices]]`` tables: one device kind per transport, chosen by the ``transport`` key.

A new transport's config is a module here (a ``DeviceConfig`` subclass whose fields
are its keys, declared with ``edge._schema.setting``) and one line in ``DEVICE_TYPES``;
the example config and docs/configuration.md pick it up from there. What runs it is
its adapter builder, one line in ``edge._runner.ADAPTERS`` (a test keeps the two
tables' transports equal).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edge._schema import SKIP, Problems, read_table, settings_of

from ._base import MAX_DEDUPE_WINDOW, DeviceConfig
from ._mqtt import MAX_MQTT_PAYLOAD, MqttDevice, env_name
from ._serial import SerialDevice
from ._w1 import W1Device

__all__ = ["DEVICE_TYPES", "MAX_DEDUPE_WINDOW", "MAX_MQTT_PAYLOAD", "DeviceConfig", "MqttDevice",
           "SerialDevice", "W1Device", "env_name", "read_device"]

#: transport -> its device kind: the tagged union of ``[[devices]]`` tables.
DEVICE_TYPES: dict[str, type[DeviceConfig]] = {
    "serial": SerialDevice,
    "mqtt": MqttDevice,
    "w1": W1Device,
}


def _keys(cls: type) -> frozenset[str]:
    return frozenset(f.name for f, _ in settings_of(cls))


def read_device(raw: Mapping[str, Any], path: str, problems: Problems, edge_id: str,
                env: Mapping[str, str]) -> DeviceConfig | None:
    """One ``[[devices]]`` table as its kind, or None (a problem was reported, or enabled = false)."""
    before = len(problems)
    tag = raw.get("transport")
    cls = DEVICE_TYPES.get(tag) if isinstance(tag, str) else None
    # An unknown transport: read the common keys, and let any kind's keys pass.
    extra = frozenset().union(*map(_keys, DEVICE_TYPES.values())) if cls is None else frozenset()

    def transport(raw: Mapping[str, Any], key: str, out: dict[str, Any]) -> Any:
        if cls is None:
            problems.bad(key, " or ".join(f'"{t}"' for t in DEVICE_TYPES),
                         *(() if tag is None else (tag,)))
            return SKIP
        return tag

    kind = cls or DeviceConfig
    readers = {**kind.readers(problems, edge_id, env), "transport": transport}
    values = read_table(kind, raw, f"{path}.", problems, readers=readers, extra_keys=extra)
    if cls is None or len(problems) > before or values.get("enabled") is False:
        return None
    return cls(**{k: v for k, v in values.items() if not k.startswith("_")})
