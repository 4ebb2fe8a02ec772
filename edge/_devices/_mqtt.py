"""``transport = "mqtt"``: one subscription to an MQTT broker, feeding any number of devices."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from devices import CONVENTIONS
from devices.transports import DEFAULT_MAX_PAYLOAD
from edge._schema import SKIP, Problems, setting

from ._base import DeviceConfig, Reader, tag

__all__ = ["MAX_MQTT_PAYLOAD", "MqttDevice"]

MAX_MQTT_PAYLOAD = 268_435_455  # MQTT's own limit (a 4-byte remaining length)
_FILTERS_EXPECTED = ('a non-empty array of MQTT topic filters (e.g. ["zigbee2mqtt/#"]; '
                     "'+' and '#' only as a whole level, '#' last)")
_PEM = "the path of a readable PEM file"


def valid_mqtt_filter(f: str) -> bool:
    """MQTT 3.1.1 4.7: '+' and '#' fill a whole level, '#' only the last; no NUL; <= 65535 bytes."""
    if not f or "\0" in f or len(f.encode("utf-8", "surrogatepass")) > 65535:
        return False
    levels = f.split("/")
    for i, level in enumerate(levels):
        if ("+" in level or "#" in level) and level not in ("+", "#"):
            return False
        if level == "#" and i != len(levels) - 1:
            return False
    return True


def env_name(name: str) -> str:
    """A device name as it appears in ``EDGE_DEVICE_<NAME>_PASSWORD``."""
    return re.sub(r"[^A-Za-z0-9]", "_", name).upper()


@dataclass(frozen=True, kw_only=True)
class MqttDevice(DeviceConfig):
    """An MQTT subscription: the convention (``codec``) gives each message's device id.

    A QoS 1 message is acknowledged only once it is in the log, and one redelivered
    (DUP) after a crash is never written twice. The password can come from
    ``EDGE_DEVICE_<NAME>_PASSWORD`` (the name upper-cased, other characters as _).
    """

    codecs: ClassVar[Mapping[str, Any]] = CONVENTIONS
    codecs_are: ClassVar[str] = "an MQTT convention"
    examples: ClassVar[tuple[Mapping[str, Any], ...]] = (
        {"name": "ward-sensors", "kind": "temperature", "host": "127.0.0.1", "codec": "zigbee2mqtt",
         "filters": ["zigbee2mqtt/#"], "topic": "temperature", "dedupe_window": 300},
    )

    transport: str = tag("mqtt")
    host: str = setting(kind="str", expected="a broker host name or address",
                        doc="the MQTT broker's host name or address")
    port: int = setting(1883, kind="int", check=lambda v: 0 < v < 65536,
                        expected="an integer in 1..65535", doc="the broker's port (8883 for TLS, usually)")
    filters: tuple[str, ...] = setting(
        (), kind="strlist", custom=True, expected=_FILTERS_EXPECTED,
        default_doc="the convention's own filter", doc="the MQTT topic filters subscribed to")
    qos: int = setting(1, kind="int", check=lambda v: v in (0, 1), expected="0 or 1",
                       doc="1: a message is acked only once it is in the log")
    client_id: str = setting(
        "", kind="str", custom=True, default_doc='"edge-<edge_id>-<name>"', in_example=False,
        doc="fixed, for a persistent session")
    username: str | None = setting(None, kind="str", in_example=False, example="edge",
                                   doc="for a broker that asks for one")
    password: str | None = setting(
        None, kind="str", custom=True, repr=False, in_example=False,
        doc="or EDGE_DEVICE_<NAME>_PASSWORD (a secret: never shown)")
    protocol: str = setting("3.1.1", kind="str", check=lambda v: v in ("3.1.1", "5"),
                            expected='"3.1.1" or "5"', doc="the MQTT protocol version",
                            in_example=False)
    device_id_prefix: str = setting("", kind="text", doc="prepended to the id the convention gives")
    tls: bool = setting(False, kind="bool", in_example=False, example=True,
                        doc="TLS to the broker, its hostname checked")
    ca_file: str | None = setting(None, kind="str", custom=True, in_example=False,
                                  example="/etc/edge/mqtt-ca.pem", default_doc="the system's CAs",
                                  doc="the CA certificates (PEM) the broker's certificate is checked with")
    cert_file: str | None = setting(None, kind="str", custom=True, in_example=False,
                                    example="/etc/edge/mqtt-client.pem",
                                    doc="a client certificate (PEM), for a broker that asks for one")
    key_file: str | None = setting(None, kind="str", custom=True, in_example=False,
                                   example="/etc/edge/mqtt-client.key", doc="the client certificate's key")
    max_payload: int = setting(
        DEFAULT_MAX_PAYLOAD, kind="int", check=lambda v: 0 < v <= MAX_MQTT_PAYLOAD,
        expected=f"a number of bytes in 1..{MAX_MQTT_PAYLOAD}",
        doc="bytes; a larger message is dead-lettered (its first KiB, its size)")

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    @classmethod
    def readers(cls, problems: Problems, edge_id: str, env: Mapping[str, str]) -> dict[str, Reader]:
        def filters(raw: Mapping[str, Any], path: str, out: dict[str, Any]) -> Any:
            if "filters" not in raw:
                tf = getattr(out.get("_codec"), "topic_filter", None)
                if isinstance(tf, str) and tf:
                    return (tf,)
                problems.bad(path, _FILTERS_EXPECTED)
                return SKIP
            v = raw["filters"]
            if not (isinstance(v, list) and v and all(isinstance(f, str) and valid_mqtt_filter(f)
                                                      for f in v)):
                problems.bad(path, _FILTERS_EXPECTED, v)
                return SKIP
            return tuple(v)

        def client_id(raw: Mapping[str, Any], path: str, out: dict[str, Any]) -> Any:
            v = raw.get("client_id", f"edge-{edge_id}-{out.get('name') or 'device'}")
            if not isinstance(v, str) or not v:
                problems.bad(path, "a non-empty string", v)
                return SKIP
            return v

        def password(raw: Mapping[str, Any], path: str, out: dict[str, Any]) -> Any:
            from_env = env.get(f"EDGE_DEVICE_{env_name(out.get('name') or '')}_PASSWORD")
            if from_env:
                return from_env
            v = raw.get("password")
            if v is not None and (not isinstance(v, str) or not v):
                problems.bad(path, "a non-empty string", v)
                return SKIP
            return v

        def pem(key: str) -> Reader:
            def read(raw: Mapping[str, Any], path: str, out: dict[str, Any]) -> Any:
                v = raw.get(key)
                if v is None:
                    return None
                if not isinstance(v, str) or not os.path.isfile(v):
                    problems.bad(path, _PEM, v)
                    return SKIP
                if out.get("tls") is not True:
                    problems.bad(path.rpartition(".")[0] + ".tls",
                                 f"true when {key} is set (the files are for TLS)", out.get("tls", False))
                if key == "key_file" and out.get("cert_file") is None:
                    problems.bad(path.rpartition(".")[0] + ".cert_file",
                                 "the client certificate that key_file is the key of")
                return v
            return read

        return {**super().readers(problems, edge_id, env), "filters": filters,
                "client_id": client_id, "password": password, "ca_file": pem("ca_file"),
                "cert_file": pem("cert_file"), "key_file": pem("key_file")}
