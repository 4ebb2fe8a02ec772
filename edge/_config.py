"""The appliance's config: one TOML file into small frozen dataclasses.

Pure: ``parse_config(text, file)`` and ``config_from_dict(data, file)`` touch no
file, port or socket; ``load_config(path)`` reads the file and the environment.
Every problem is collected in one pass, so ``edge config check`` can report all
of them; each names the file, the key path and what was expected::

    edge.toml: devices[2].baudrate: expected an integer, got "fast"

Times are in seconds. Secrets can come from the environment instead of the
file (see ``SECRET_ENV``), and are never part of a repr.
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from broker import MIN_QUOTA_BYTES, is_internal_topic, is_topic_name
from devices import CODECS, CONVENTIONS, EARLIEST_TIMESTAMP_MS, KINDS
from devices.transports.mqtt import DEFAULT_MAX_PAYLOAD
from edge._errors import ConfigError, ConfigProblem
from edge._validate import device_check_settings

if TYPE_CHECKING:
    from edge.streams._config import TopologyConfig

__all__ = [
    "DEFAULT_HEALTH_ADDRESS",
    "SECRET_ENV",
    "ClockSettings",
    "Config",
    "DeviceConfig",
    "HealthConfig",
    "LogSettings",
    "UpstreamSettings",
    "config_from_dict",
    "load_config",
    "parse_config",
]

DEFAULT_HEALTH_ADDRESS = "127.0.0.1:9108"
TRANSPORTS = ("serial", "mqtt", "w1")
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")
_TOPIC_EXPECTED = "a topic name (letters, digits, '.', '_', '-'; not starting with '__', the log's own)"


def _writable_topic(name: str) -> bool:
    # '__' names are internal (the drop ledger, as Kafka's __consumer_offsets): the log
    # refuses every send to them, so a device writing there would only make dead letters.
    return is_topic_name(name) and not is_internal_topic(name)


def _valid_mqtt_filter(f: str) -> bool:
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

#: Environment variables that override secrets in the file.
SECRET_ENV = {
    "EDGE_UPSTREAM_SASL_PASSWORD": "upstream.sasl_password",
    "EDGE_UPSTREAM_SSL_KEY_PASSWORD": "upstream.ssl_key_password",
    "EDGE_HEALTH_TOKEN": "health.token",
    "EDGE_DEVICE_<NAME>_PASSWORD": "devices[name=<name>].password (name upper-cased, "
    "other characters as _)",
}


@dataclass(frozen=True)
class LogSettings:
    """The local log: partitions of new topics, retention, disk quota, durability."""

    partitions: int = 3
    retention_seconds: int = 7 * 24 * 3600
    retention_bytes: int = -1
    quota_bytes: int | None = None
    full_policy: str = "reject"
    durability: str = "fsync"
    dead_letter_topic: str = "dead-letters"


@dataclass(frozen=True)
class DeviceConfig:
    """One configured device (or one MQTT subscription / 1-wire bus feeding several)."""

    name: str
    kind: str
    transport: str
    codec: str  # a CODECS name (serial, w1) or a CONVENTIONS name (mqtt)
    topic: str
    codec_options: Mapping[str, Any] = field(default_factory=dict)
    device_id: str | None = None  # serial: the id every reading gets (default: name)
    device_id_prefix: str = ""  # mqtt/w1: prepended to the id the convention/bus gives
    # serial
    port: str | None = None
    baudrate: int = 9600
    framing: str = "line"  # "line" or "fixed:<bytes>"
    # mqtt
    host: str | None = None
    mqtt_port: int = 1883
    filters: tuple[str, ...] = ()
    qos: int = 1
    client_id: str = ""
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    protocol: str = "3.1.1"
    tls: bool = False  # TLS to the broker: hostname checked, ca_file (else the system's CAs)
    ca_file: str | None = None
    cert_file: str | None = None  # a client certificate, for a broker that asks for one
    key_file: str | None = None
    max_payload: int = DEFAULT_MAX_PAYLOAD  # bytes; a larger message is dead-lettered, its head kept
    # w1
    w1_dir: str = "/sys/bus/w1/devices"
    interval: float = 10.0
    names: Mapping[str, str] = field(default_factory=dict)
    # any transport: drop a device-stamped reading seen within this many seconds (0: off)
    dedupe_window: float = 0.0
    # any transport: this device's bounds for quantities of devices.RANGES (edge/_validate.py)
    ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    earliest_time_ms: int = EARLIEST_TIMESTAMP_MS  # device-stamped times before it: dead letters


@dataclass(frozen=True)
class HealthConfig:
    """Where /health and /metrics listen (loopback by default), and what /health shows.

    ``show_values``: the last reading's values (a patient's blood pressure) appear on
    /health and in `edge status` only when true (any local user can read /health), or
    for a request with ``Authorization: Bearer <token>`` when ``token`` is set (`edge
    status -c FILE` sends it; the file is root's). State, counts and the last reading's
    time are always there.
    """

    host: str = "127.0.0.1"
    port: int = 9108
    show_values: bool = False
    token: str | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class ClockSettings:
    """How the service judges its clock (see edge/_clock.py)."""

    gps_time: bool = True  # learn UTC from valid NMEA fixes while NTP has not synced
    gps_max_age: float = 3600.0  # seconds a fix's time is used for after it arrived
    jump_threshold: float = 2.0  # seconds the wall clock may step before it counts as a jump


@dataclass(frozen=True)
class UpstreamSettings:
    """The [upstream] table, kept as given (the uplink validates its own keys)."""

    enabled: bool = False
    settings: Mapping[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Config:
    """A whole, validated appliance config."""

    edge_id: str
    data_dir: Path
    log: LogSettings = field(default_factory=LogSettings)
    devices: tuple[DeviceConfig, ...] = ()
    health: HealthConfig = field(default_factory=HealthConfig)
    upstream: UpstreamSettings = field(default_factory=UpstreamSettings)
    streams: tuple[TopologyConfig, ...] = ()  # [[streams]]: see edge/streams/_config.py
    clock: ClockSettings = field(default_factory=ClockSettings)
    file: str = "edge.toml"


class _Check:
    """Collects problems while reading a dict; each reader returns a value or None."""

    _MISSING = object()

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[ConfigProblem] = []

    def bad(self, key: str, expected: str, got: object = ConfigProblem._MISSING) -> None:
        self.problems.append(ConfigProblem(self.file, key, expected, got))

    def unknown(self, table: Mapping[str, Any], known: set[str], prefix: str) -> None:
        for k in table:
            if k not in known:
                self.bad(f"{prefix}{k}", "one of the keys " + ", ".join(sorted(known)), k)

    def get(self, table: Mapping[str, Any], key: str, path: str, kind: str, default: Any = _MISSING,
            *, expected: str | None = None, check=None) -> Any:  # type: ignore[no-untyped-def]
        if key not in table:
            if default is _Check._MISSING:
                self.bad(path, expected or _KIND_WORDS[kind])
                return None
            return default
        v = table[key]
        ok = {
            "str": isinstance(v, str) and v != "",
            "text": isinstance(v, str),
            "int": isinstance(v, int) and not isinstance(v, bool),
            "num": isinstance(v, int | float) and not isinstance(v, bool),
            "bool": isinstance(v, bool),
            "table": isinstance(v, dict),
            "strlist": isinstance(v, list) and bool(v) and all(isinstance(s, str) and s for s in v),
        }[kind]
        if ok and check is not None:
            ok = check(v)
        if not ok:
            self.bad(path, expected or _KIND_WORDS[kind], v)
            return None
        return v


_KIND_WORDS = {
    "str": "a non-empty string",
    "text": "a string",
    "int": "an integer",
    "num": "a number",
    "bool": "true or false",
    "table": "a table",
    "strlist": "a non-empty array of strings",
}


def _env_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def config_from_dict(data: Mapping[str, Any], file: str = "edge.toml",
                     env: Mapping[str, str] | None = None) -> Config:
    """Validate a parsed TOML document; raises ConfigError listing every problem.

    ``env`` (default: none) supplies secret overrides, see ``SECRET_ENV``.
    """
    env = env or {}
    c = _Check(file)
    c.unknown(data, {"edge_id", "data_dir", "log", "devices", "health", "upstream", "streams",
                     "clock"}, "")
    edge_id = c.get(data, "edge_id", "edge_id", "str", check=lambda v: bool(_ID_RE.match(v)),
                    expected="an id of letters, digits, '.', '_', ':', '/' or '-' (e.g. \"edge-1\")")
    # "" would be the current directory of whoever starts the service.
    data_dir = c.get(data, "data_dir", "data_dir", "str", check=lambda v: bool(v.strip()),
                     expected="a directory path")

    log = LogSettings()
    raw_log = c.get(data, "log", "log", "table", {})
    if raw_log:
        c.unknown(raw_log, set(LogSettings.__dataclass_fields__), "log.")
        quota = c.get(raw_log, "quota_bytes", "log.quota_bytes", "int", 0,
                      check=lambda v: v == 0 or v >= MIN_QUOTA_BYTES,
                      expected=f"0 (no quota) or an integer >= {MIN_QUOTA_BYTES} (the least a log takes on disk)")
        log = LogSettings(
            partitions=c.get(raw_log, "partitions", "log.partitions", "int", log.partitions,
                             check=lambda v: 1 <= v <= 1024, expected="an integer in 1..1024") or 1,
            retention_seconds=c.get(raw_log, "retention_seconds", "log.retention_seconds", "int",
                                    log.retention_seconds, check=lambda v: v == -1 or v > 0,
                                    expected="a positive integer of seconds, or -1 (forever)") or 1,
            retention_bytes=c.get(raw_log, "retention_bytes", "log.retention_bytes", "int", -1,
                                  check=lambda v: v == -1 or v > 0,
                                  expected="a positive integer of bytes, or -1 (no limit)") or -1,
            quota_bytes=quota or None,
            full_policy=c.get(raw_log, "full_policy", "log.full_policy", "str", log.full_policy,
                              check=lambda v: v in ("reject", "drop-oldest"),
                              expected='"reject" or "drop-oldest"') or "reject",
            durability=c.get(raw_log, "durability", "log.durability", "str", log.durability,
                             check=lambda v: v in ("fsync", "no-fsync"),
                             expected='"fsync" or "no-fsync"') or "fsync",
            dead_letter_topic=c.get(raw_log, "dead_letter_topic", "log.dead_letter_topic", "str",
                                    log.dead_letter_topic, check=_writable_topic,
                                    expected=_TOPIC_EXPECTED)
            or "dead-letters",
        )

    health = HealthConfig()
    raw_health = c.get(data, "health", "health", "table", {})
    if raw_health or env.get("EDGE_HEALTH_TOKEN"):
        raw_health = raw_health or {}
        c.unknown(raw_health, {"address", "show_values", "token"}, "health.")
        addr = c.get(raw_health, "address", "health.address", "str", DEFAULT_HEALTH_ADDRESS,
                     check=lambda v: _split_address(v) is not None,
                     expected='"host:port" with a port in 1..65535 (e.g. "127.0.0.1:9108")')
        show = c.get(raw_health, "show_values", "health.show_values", "bool", False)
        token = env.get("EDGE_HEALTH_TOKEN") or c.get(
            raw_health, "token", "health.token", "str", None,
            check=lambda v: len(v) >= 16 and v.isprintable() and " " not in v,
            expected="a string of 16 or more printable characters, no spaces")
        if addr:
            host, port = _split_address(addr)  # type: ignore[misc]
            health = HealthConfig(host, port, show_values=show is True, token=token)

    devices: list[DeviceConfig] = []
    raw_devices = data.get("devices", [])
    if not isinstance(raw_devices, list) or not all(isinstance(d, dict) for d in raw_devices):
        c.bad("devices", "an array of tables ([[devices]])", raw_devices)
        raw_devices = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(raw_devices):
        dev = _device(c, raw, f"devices[{i}]", edge_id or "edge", env)
        if dev is None:
            continue
        if dev.name in seen:
            c.bad(f"devices[{i}].name", f"a name not used before (devices[{seen[dev.name]}] has it)",
                  dev.name)
        seen[dev.name] = i
        devices.append(dev)

    upstream = UpstreamSettings()
    raw_up = c.get(data, "upstream", "upstream", "table", {})
    if raw_up:
        settings = dict(raw_up)
        enabled = c.get(raw_up, "enabled", "upstream.enabled", "bool", True)
        settings.pop("enabled", None)
        for var, key in (("EDGE_UPSTREAM_SASL_PASSWORD", "sasl_password"),
                         ("EDGE_UPSTREAM_SSL_KEY_PASSWORD", "ssl_key_password")):
            if env.get(var):
                settings[key] = env[var]
        if enabled:
            c.get(raw_up, "bootstrap_servers", "upstream.bootstrap_servers", "str",
                  expected='"host:port[,host:port...]"')
            if "bootstrap_servers" in raw_up:
                _check_uplink(c, settings, edge_id or "edge", data_dir or "/tmp", devices)
        upstream = UpstreamSettings(bool(enabled), settings)

    clock = ClockSettings()
    raw_clock = c.get(data, "clock", "clock", "table", {})
    if raw_clock:
        c.unknown(raw_clock, set(ClockSettings.__dataclass_fields__), "clock.")
        positive = "a positive number of seconds"
        clock = ClockSettings(
            gps_time=c.get(raw_clock, "gps_time", "clock.gps_time", "bool", clock.gps_time)
            is not False,
            gps_max_age=c.get(raw_clock, "gps_max_age", "clock.gps_max_age", "num",
                              clock.gps_max_age, check=lambda v: v > 0, expected=positive)
            or clock.gps_max_age,
            jump_threshold=c.get(raw_clock, "jump_threshold", "clock.jump_threshold", "num",
                                 clock.jump_threshold, check=lambda v: v > 0, expected=positive)
            or clock.jump_threshold,
        )

    streams: tuple[TopologyConfig, ...] = ()
    if "streams" in data:
        from edge.streams._config import parse_streams  # lazily: it imports the engine

        streams, problems = parse_streams(data["streams"], file)
        c.problems.extend(problems)

    if c.problems:
        raise ConfigError(c.problems)
    return Config(edge_id=edge_id, data_dir=Path(data_dir), log=log, devices=tuple(devices),
                  health=health, upstream=upstream, streams=streams, clock=clock, file=file)


def uplink_topics(devices: list[DeviceConfig] | tuple[DeviceConfig, ...], dead_letter_topic: str
                  ) -> dict[str, str]:
    """Default [upstream] topic mapping: every device topic (and dead letters) under its own name."""
    topics = {d.topic: d.topic for d in devices}
    topics[dead_letter_topic] = dead_letter_topic
    return topics


def _check_uplink(c: _Check, settings: dict[str, Any], edge_id: str, data_dir: str,
                  devices: list[DeviceConfig]) -> None:
    """Let the uplink validate its own keys now, so `config check` names them."""
    try:
        from edge.uplink import UplinkConfig
    except ImportError:
        return  # a build without the uplink: `edge run` says so
    import dataclasses

    known = {f.name for f in dataclasses.fields(UplinkConfig)} - {"edge_id", "data_dir"}
    bad = [k for k in settings if k not in known]
    for k in bad:
        c.bad(f"upstream.{k}", "one of the keys " + ", ".join(sorted(known)), k)
    if bad:
        return
    kw = dict(settings)
    kw.setdefault("topics", uplink_topics(devices, "dead-letters"))
    try:
        UplinkConfig(edge_id=edge_id, data_dir=Path(data_dir), **kw)
    except ConfigError as exc:
        for p in exc.errors:
            c.bad(f"upstream.{p.key}", p.expected, *(() if p.missing else (p.got,)))
    except (TypeError, ValueError) as exc:
        c.bad("upstream", f"settings the uplink accepts ({exc})", "a table")


def _split_address(text: str) -> tuple[str, int] | None:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return host.strip("[]"), int(port)


_COMMON = {"name", "kind", "transport", "codec", "codec_options", "topic", "enabled",
           "dedupe_window", "ranges", "earliest_time"}
MAX_MQTT_PAYLOAD = 268_435_455  # MQTT's own limit (a 4-byte remaining length)
MAX_DEDUPE_WINDOW = 86_400  # a day: a publisher's resend comes within seconds or minutes
_BY_TRANSPORT = {
    "serial": {"port", "baudrate", "framing", "device_id"},
    "mqtt": {"host", "port", "filters", "qos", "client_id", "username", "password", "protocol",
             "device_id_prefix", "tls", "ca_file", "cert_file", "key_file", "max_payload"},
    "w1": {"directory", "interval", "names", "device_id_prefix"},
}


def _device(c: _Check, raw: Mapping[str, Any], p: str, edge_id: str,
            env: Mapping[str, str]) -> DeviceConfig | None:
    before = len(c.problems)
    name = c.get(raw, "name", f"{p}.name", "str", check=lambda v: bool(_ID_RE.match(v)),
                 expected="a device name of letters, digits, '.', '_', ':', '/' or '-'")
    kind = c.get(raw, "kind", f"{p}.kind", "str", check=lambda v: v in KINDS,
                 expected=" or ".join(f'"{k}"' for k in sorted(KINDS)))
    transport = c.get(raw, "transport", f"{p}.transport", "str", check=lambda v: v in TRANSPORTS,
                      expected=" or ".join(f'"{t}"' for t in TRANSPORTS))
    c.unknown(raw, _COMMON | _BY_TRANSPORT.get(transport or "", set().union(*_BY_TRANSPORT.values())),
              f"{p}.")
    registry = CONVENTIONS if transport == "mqtt" else CODECS
    what = "an MQTT convention" if transport == "mqtt" else "a codec"
    codec = c.get(raw, "codec", f"{p}.codec", "str", check=lambda v: v in registry,
                  expected=f"{what}: " + ", ".join(f'"{n}"' for n in sorted(registry)))
    options = c.get(raw, "codec_options", f"{p}.codec_options", "table", {})
    topic = c.get(raw, "topic", f"{p}.topic", "str", kind or "readings",
                  check=_writable_topic, expected=_TOPIC_EXPECTED)
    instance = None
    if codec and options is not None:  # try the options now: a typo fails `config check`, not `run`
        try:
            instance = registry[codec](**options)
        except Exception as exc:  # noqa: BLE001 - any refusal is a config mistake
            c.bad(f"{p}.codec_options", f"options that {codec} accepts ({exc})", options)
    kw: dict[str, Any] = {}
    if transport == "serial":
        kw["port"] = c.get(raw, "port", f"{p}.port", "str", expected="a device path such as "
                           '"/dev/ttyUSB0" or a pyserial URL')
        kw["baudrate"] = c.get(raw, "baudrate", f"{p}.baudrate", "int", 9600, check=lambda v: v > 0,
                               expected="an integer") or 9600
        framing = c.get(raw, "framing", f"{p}.framing", "str", "line",
                        check=lambda v: v == "line" or bool(re.fullmatch(r"fixed:[1-9][0-9]*", v)),
                        expected='"line" or "fixed:<bytes>"')
        kw["framing"] = framing or "line"
        kw["device_id"] = c.get(raw, "device_id", f"{p}.device_id", "str", name,
                                check=lambda v: bool(_ID_RE.match(v)), expected="a device id")
    elif transport == "mqtt":
        kw["host"] = c.get(raw, "host", f"{p}.host", "str", expected="a broker host name or address")
        kw["mqtt_port"] = c.get(raw, "port", f"{p}.port", "int", 1883,
                                check=lambda v: 0 < v < 65536, expected="an integer in 1..65535") or 1883
        default_filters = None
        if instance is not None:
            tf = getattr(instance, "topic_filter", None)
            default_filters = [tf] if isinstance(tf, str) else None
        filters = c.get(raw, "filters", f"{p}.filters", "strlist",
                        default_filters if default_filters else _Check._MISSING,
                        check=lambda v: all(_valid_mqtt_filter(f) for f in v),
                        expected='a non-empty array of MQTT topic filters (e.g. ["zigbee2mqtt/#"]; '
                                 "'+' and '#' only as a whole level, '#' last)")
        kw["filters"] = tuple(filters or ())
        kw["qos"] = c.get(raw, "qos", f"{p}.qos", "int", 1, check=lambda v: v in (0, 1),
                          expected="0 or 1")
        kw["client_id"] = c.get(raw, "client_id", f"{p}.client_id", "str",
                                f"edge-{edge_id}-{name or 'device'}")
        kw["username"] = c.get(raw, "username", f"{p}.username", "str", None)
        kw["password"] = env.get(f"EDGE_DEVICE_{_env_name(name or '')}_PASSWORD") or c.get(
            raw, "password", f"{p}.password", "str", None)
        kw["protocol"] = c.get(raw, "protocol", f"{p}.protocol", "str", "3.1.1",
                               check=lambda v: v in ("3.1.1", "5"), expected='"3.1.1" or "5"')
        kw["device_id_prefix"] = c.get(raw, "device_id_prefix", f"{p}.device_id_prefix", "text", "")
        _mqtt_tls(c, raw, p, kw)
        kw["max_payload"] = c.get(raw, "max_payload", f"{p}.max_payload", "int", DEFAULT_MAX_PAYLOAD,
                                  check=lambda v: 0 < v <= MAX_MQTT_PAYLOAD,
                                  expected=f"a number of bytes in 1..{MAX_MQTT_PAYLOAD}"
                                  ) or DEFAULT_MAX_PAYLOAD
    elif transport == "w1":
        kw["w1_dir"] = c.get(raw, "directory", f"{p}.directory", "str", "/sys/bus/w1/devices")
        kw["interval"] = c.get(raw, "interval", f"{p}.interval", "num", 10.0,
                               check=lambda v: v > 0, expected="a number of seconds > 0")
        names = c.get(raw, "names", f"{p}.names", "table", {})
        if names and not all(isinstance(v, str) and v for v in names.values()):
            c.bad(f"{p}.names", 'a table of sensor id = "device id" strings', names)
        kw["names"] = dict(names or {})
        kw["device_id_prefix"] = c.get(raw, "device_id_prefix", f"{p}.device_id_prefix", "text", "")
    kw["dedupe_window"] = c.get(
        raw, "dedupe_window", f"{p}.dedupe_window", "num", 0.0,
        check=lambda v: 0 <= v <= MAX_DEDUPE_WINDOW,
        expected=f"a number of seconds in 0..{MAX_DEDUPE_WINDOW} (0: off)") or 0.0
    kw["ranges"], kw["earliest_time_ms"] = device_check_settings(raw, p, c.bad)
    if len(c.problems) > before or c.get(raw, "enabled", f"{p}.enabled", "bool", True) is False:
        return None
    return DeviceConfig(name=name, kind=kind, transport=transport, codec=codec,
                        codec_options=dict(options or {}), topic=topic, **kw)


def _mqtt_tls(c: _Check, raw: Mapping[str, Any], p: str, kw: dict[str, Any]) -> None:
    """The MQTT device's TLS keys: files that exist, and only with ``tls = true``."""
    kw["tls"] = c.get(raw, "tls", f"{p}.tls", "bool", False)
    for key in ("ca_file", "cert_file", "key_file"):
        path = c.get(raw, key, f"{p}.{key}", "str", None, check=os.path.isfile,
                     expected="the path of a readable PEM file")
        if path is not None and kw["tls"] is not True:
            c.bad(f"{p}.tls", f"true when {key} is set (the files are for TLS)", kw["tls"])
        kw[key] = path
    if kw["key_file"] is not None and kw["cert_file"] is None:
        c.bad(f"{p}.cert_file", "the client certificate that key_file is the key of")


def parse_config(text: str, file: str = "edge.toml", env: Mapping[str, str] | None = None) -> Config:
    """Parse and validate TOML text; raises ConfigError (a TOML syntax error is one too)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(ConfigProblem(file, "", "valid TOML", str(exc))) from exc
    return config_from_dict(data, file, env)


#: The largest config file read: a real one is a few kB.
MAX_CONFIG_BYTES = 1 << 20


def _file_kind(mode: int) -> str:
    for test, kind in ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a regular file"


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Read, parse and validate the config file; secrets may come from ``env`` (default os.environ)."""
    name = os.fspath(path)
    try:
        # A regular file of a sane size: `-c /dev/ttyUSB0` or a FIFO blocked edge run (and a
        # SIGHUP reload, with the whole service) for ever, and /dev/zero ended in MemoryError.
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(ConfigProblem(name, "", "a regular file", _file_kind(st.st_mode)))
        with open(path, "rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
        if len(raw) > MAX_CONFIG_BYTES:
            raise ConfigError(ConfigProblem(name, "", f"a config of at most {MAX_CONFIG_BYTES} bytes",
                                            f"{st.st_size} bytes"))
        text = raw.decode("utf-8")
    except OSError as exc:
        raise ConfigError(ConfigProblem(name, "", "a readable file", exc.strerror or str(exc))) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(ConfigProblem(name, "", "UTF-8 text", str(exc))) from exc
    return parse_config(text, Path(name).name, os.environ if env is None else env)
