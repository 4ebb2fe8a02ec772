"""The appliance's config: one TOML file into small frozen dataclasses, declared once.

Pure: ``parse_config(text, file)`` and ``config_from_dict(data, file)`` touch no
file, port or socket; ``load_config(path)`` reads the file and the environment.
Each table is a dataclass whose fields are its keys (``edge._schema.setting``: type,
default, check and doc in one place); ``[[devices]]`` tables are one kind per
transport (edge/_devices). Every problem is collected in one pass, so ``edge config
check`` can report all of them; each names the file, the key path and what was
expected::

    edge.toml: devices[2].baudrate: expected an integer, got "fast"

The example config (edge/_example.py) and docs/configuration.md (edge/_reference.py)
are rendered from the same fields. Times are in seconds. Secrets can come from the
environment instead of the file (see ``SECRET_ENV``), and are never part of a repr.
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from broker import MAX_COMMIT_INTERVAL_MS, MIN_QUOTA_BYTES
from edge._devices import DeviceConfig, read_device
from edge._errors import ConfigError, ConfigProblem
from edge._kafka_config import KafkaSettings
from edge._schema import (
    ID_EXPECTED,
    SKIP,
    TOPIC_EXPECTED,
    Problems,
    is_id,
    read_table,
    setting,
    split_address,
    writable_topic,
)

if TYPE_CHECKING:
    from edge.streams._config import TopologyConfig

__all__ = [
    "DEFAULT_HEALTH_ADDRESS",
    "SECRET_ENV",
    "ClockSettings",
    "Config",
    "ConsoleConfig",
    "ControlSettings",
    "DeviceConfig",
    "HealthConfig",
    "LogSettings",
    "UpstreamSettings",
    "config_from_dict",
    "load_config",
    "parse_config",
]

DEFAULT_HEALTH_ADDRESS = "127.0.0.1:9108"

#: Environment variables that override secrets in the file.
SECRET_ENV = {
    "EDGE_UPSTREAM_SASL_PASSWORD": "upstream.sasl_password",
    "EDGE_UPSTREAM_SSL_KEY_PASSWORD": "upstream.ssl_key_password",
    "EDGE_HEALTH_TOKEN": "health.token",
    "EDGE_CONSOLE_TOKEN": "console.token",
    "EDGE_CONSOLE_USER": "console.user",
    "EDGE_CONSOLE_PASSWORD": "console.password",
    "EDGE_KAFKA_SASL_USERS": "the Kafka listener's SASL users, user:password,... (beside kafka.sasl_users_file)",
    "EDGE_DEVICE_<NAME>_PASSWORD": "devices[name=<name>].password (name upper-cased, "
    "other characters as _)",
}


@dataclass(frozen=True)
class LogSettings:
    """The local log: partitions of new topics, retention, disk quota, durability."""

    partitions: int = setting(3, kind="int", check=lambda v: 1 <= v <= 1024,
                              expected="an integer in 1..1024",
                              doc="partitions of the topics the appliance creates")
    retention_seconds: int = setting(
        7 * 24 * 3600, kind="int", check=lambda v: v == -1 or v > 0,
        expected="a positive integer of seconds, or -1 (forever)",
        doc="how long records are kept (7 days); -1: forever")
    retention_bytes: int = setting(
        -1, kind="int", check=lambda v: v == -1 or v > 0,
        expected="a positive integer of bytes, or -1 (no limit)",
        doc="bytes kept per partition; -1: no size limit")
    quota_bytes: int | None = setting(
        None, kind="int", check=lambda v: v == 0 or v >= MIN_QUOTA_BYTES, convert=lambda v: v or None,
        expected=f"0 (no quota) or an integer >= {MIN_QUOTA_BYTES} (the least a log takes on disk)",
        example=0, doc="what the log's files may take on disk (docs/quota.md); 0: none")
    full_policy: str = setting("reject", kind="str", check=lambda v: v in ("reject", "drop-oldest"),
                               expected='"reject" or "drop-oldest"',
                               doc='at the quota: "reject" new events or "drop-oldest"')
    durability: str = setting("fsync", kind="str", check=lambda v: v in ("fsync", "no-fsync"),
                              expected='"fsync" or "no-fsync"',
                              doc='"fsync" (survives power loss) or "no-fsync"')
    # 1 s: five sensors' readings share a commit (docs/disk-wear.md); a commit starts sooner
    # once 16 MQTT QoS 1 deliveries wait for their PUBACKs, below Mosquitto's in-flight
    # window of 20, so publishers never stall; serial readings, acknowledged to nobody, wait.
    commit_interval_ms: int = setting(
        1000, kind="int", check=lambda v: 0 <= v <= MAX_COMMIT_INTERVAL_MS,
        expected=f"an integer of milliseconds in 0..{MAX_COMMIT_INTERVAL_MS}",
        doc="how long an event may wait for others to share its commit (docs/disk-wear.md): "
            "fewer SD-card writes at low rates; MQTT acks and a power cut's loss of serial "
            "readings wait as long; 0: commit at once")
    dead_letter_topic: str = setting(
        "dead-letters", kind="str", check=writable_topic, expected=TOPIC_EXPECTED,
        doc="where frames that did not decode go, with their raw bytes and the reason")


_TOKEN = "a string of 16 or more printable characters, no spaces"


@dataclass(frozen=True)
class HealthConfig:
    """Where /health (JSON) and /metrics (Prometheus) listen, and what /health shows.

    The last reading's values (a patient's blood pressure) appear on /health and in
    `edge status` only with ``show_values = true`` (any local user can read /health), or
    for a request with ``Authorization: Bearer <token>`` when ``token`` is set (`edge
    status -c FILE` sends it; the file is root's). State, counts and the last reading's
    time are always there.
    """

    address: str = setting(
        DEFAULT_HEALTH_ADDRESS, kind="str", check=lambda v: split_address(v) is not None,
        expected='"host:port" with a port in 1..65535 (e.g. "127.0.0.1:9108")',
        doc="where GET /health and /metrics are served (loopback by default)")
    show_values: bool = setting(False, kind="bool",
                                doc="true: /health shows each device's last reading's values")
    token: str | None = setting(
        None, kind="str", check=lambda v: len(v) >= 16 and v.isprintable() and " " not in v,
        expected=_TOKEN, repr=False, in_example=False, example="a long random string",
        doc="or: the values for `Authorization: Bearer <token>` only (or EDGE_HEALTH_TOKEN)")

    # The address was checked to split when the config was read, so neither is None.
    @property
    def host(self) -> str:
        return split_address(self.address)[0]  # type: ignore[index]

    @property
    def port(self) -> int:
        return split_address(self.address)[1]  # type: ignore[index]


@dataclass(frozen=True)
class ConsoleConfig:
    """The web console (docs/console.md): read-only pages of the devices, the log and the uplink.

    By default it shares the [health] address (loopback). Bound to any other address,
    every page and API request needs ``token`` (Bearer, or ``?token=``) or ``user`` and
    ``password`` (Basic); without them such a request gets 401.
    """

    enabled: bool = setting(True, kind="bool", doc="serve the web console")
    address: str | None = setting(
        None, kind="str", check=lambda v: split_address(v) is not None,
        expected='"host:port" with a port in 1..65535 (e.g. "0.0.0.0:8080")',
        default_doc="the [health] address", example="127.0.0.1:9108",
        doc="where the console is served; /health and /metrics are served there too")
    token: str | None = setting(
        None, kind="str", check=lambda v: len(v) >= 16 and v.isprintable() and " " not in v,
        expected=_TOKEN, repr=False, in_example=False, example="a long random string",
        doc="`Authorization: Bearer <token>` or `?token=` (or EDGE_CONSOLE_TOKEN)")
    user: str | None = setting(
        None, kind="str", check=lambda v: v.isprintable() and ":" not in v,
        expected="a user name without ':'", in_example=False, example="operator",
        doc="with password: HTTP Basic auth (or EDGE_CONSOLE_USER)")
    password: str | None = setting(
        None, kind="str", check=lambda v: len(v) >= 8 and v.isprintable(),
        expected="a string of 8 or more printable characters", repr=False, in_example=False,
        example="a long passphrase", doc="with user (or EDGE_CONSOLE_PASSWORD)")
    tls_cert: str | None = setting(None, kind="str", in_example=False, example="/etc/edge/console.pem",
                                   doc="with tls_key: serve HTTPS with this PEM certificate chain")
    tls_key: str | None = setting(None, kind="str", in_example=False, example="/etc/edge/console.key",
                                  doc="the certificate's private key (PEM)")


@dataclass(frozen=True)
class ClockSettings:
    """How the service judges its clock (edge/_clock.py).

    Every event's "clock" header says how far its time can be trusted: "synced" (NTP
    set the system clock), "gps" (it has not, but a GPS fix gave UTC: times are then
    the monotonic clock plus the fix's offset), "unknown", or "unsynced" (before 2025).
    """

    gps_time: bool = setting(True, kind="bool",
                             doc="learn UTC from valid NMEA fixes while NTP has not synced")
    gps_max_age: float = setting(3600.0, kind="num", check=lambda v: v > 0,
                                 expected="a positive number of seconds",
                                 doc="seconds a fix's time is used for after it arrived")
    jump_threshold: float = setting(
        2.0, kind="num", check=lambda v: v > 0, expected="a positive number of seconds",
        doc="seconds the wall clock may step before it counts as a jump (logged, counted)")


def _strs(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(s, str) and s for s in v)


@dataclass(frozen=True)
class ControlSettings:
    """The fleet control channel (docs/control.md): signed desired config and commands from
    the cluster, reported state back. It connects with [upstream]'s settings as this file
    gives them: a desired config can change [upstream], never the channel it came by.
    """

    enabled: bool = setting(False, kind="bool",
                            doc="take desired config and commands from the cluster")
    public_keys: tuple[str, ...] = setting(
        (), kind="any", check=_strs, convert=tuple, expected="an array of PEM file paths",
        example=["/etc/edge/control.pub"],
        doc="Ed25519 public keys (PEM) whose signatures the box accepts")
    groups: tuple[str, ...] = setting(
        (), kind="any", check=lambda v: _strs(v) and all(is_id(g) for g in v), convert=tuple,
        expected=f"an array of group names of {ID_EXPECTED}", example=["ward3"],
        doc='groups whose desired config applies to this box (keys "group:<name>"), first '
            'to last, then its own ("edge:<edge_id>")')
    health_deadline: float = setting(
        60.0, kind="num", check=lambda v: v > 0, expected="a positive number of seconds",
        doc="seconds a new config has to come up healthy (devices, streams, the uplink "
            "online) before it is rolled back")
    heartbeat: float = setting(300.0, kind="num", check=lambda v: v > 0,
                               expected="a positive number of seconds",
                               doc="seconds between reported states when nothing changed")
    max_record_bytes: int = setting(
        256 * 1024, kind="int", check=lambda v: 1024 <= v <= 64 * 1024 * 1024,
        expected="an integer of bytes in 1024..67108864",
        doc="a desired config or command record larger than this is refused (and reported) "
            "before it is parsed")
    desired_topic: str = setting("edge.control.desired", kind="str", check=writable_topic,
                                 expected=TOPIC_EXPECTED, doc="upstream: desired config (compacted)")
    commands_topic: str = setting("edge.control.commands", kind="str", check=writable_topic,
                                  expected=TOPIC_EXPECTED, doc="upstream: commands")
    reported_topic: str = setting("edge.control.reported", kind="str", check=writable_topic,
                                  expected=TOPIC_EXPECTED, doc="upstream: reported state (compacted)")
    results_topic: str = setting("edge.control.results", kind="str", check=writable_topic,
                                 expected=TOPIC_EXPECTED, doc="upstream: command results")


@dataclass(frozen=True)
class UpstreamSettings:
    """The [upstream] table, kept as given: its keys are ``edge.uplink.UplinkConfig``'s."""

    enabled: bool = setting(True, kind="bool", example=False,
                            doc="replicate the log to a Kafka cluster (the uplink)")
    settings: Mapping[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Config:
    """A whole, validated appliance config."""

    edge_id: str = setting(kind="str", check=is_id, example="edge-1",
                           expected=f"an id of {ID_EXPECTED} (e.g. \"edge-1\")",
                           doc='stamped on every event (header "edge_id")')
    # "" would be the current directory of whoever starts the service.
    data_dir: Path = setting(kind="str", check=lambda v: bool(v.strip()), convert=Path,
                             expected="a directory path", example="/var/lib/edge",
                             doc="the local log lives here (log.db)")
    log: LogSettings = setting(kind="table", custom=True, factory=LogSettings, doc="[log]")
    health: HealthConfig = setting(kind="table", custom=True, factory=HealthConfig, doc="[health]")
    console: ConsoleConfig = setting(kind="table", custom=True, factory=ConsoleConfig,
                                     doc="[console]")
    devices: tuple[DeviceConfig, ...] = setting((), kind="any", custom=True, doc="[[devices]]")
    upstream: UpstreamSettings = setting(kind="table", custom=True, factory=UpstreamSettings,
                                         doc="[upstream]")
    clock: ClockSettings = setting(kind="table", custom=True, factory=ClockSettings, doc="[clock]")
    # [[streams]]: see edge/streams/_config.py
    streams: tuple[TopologyConfig, ...] = setting((), kind="any", custom=True, doc="[[streams]]")
    control: ControlSettings = setting(kind="table", custom=True, factory=ControlSettings,
                                       doc="[control]")
    kafka: KafkaSettings = setting(kind="table", custom=True, factory=KafkaSettings, doc="[kafka]")
    file: str = "edge.toml"


def config_from_dict(data: Mapping[str, Any], file: str = "edge.toml",
                     env: Mapping[str, str] | None = None) -> Config:
    """Validate a parsed TOML document; raises ConfigError listing every problem.

    ``env`` (default: none) supplies secret overrides, see ``SECRET_ENV``.
    """
    env = env or {}
    problems = Problems(file)

    def table(cls: type, prefix: str, extra: Mapping[str, Any] | None = None) -> Any:
        def read(raw: Mapping[str, Any], path: str, out: dict[str, Any]) -> Any:
            given = raw.get(prefix, {})
            if not isinstance(given, dict):
                problems.bad(path, "a table", given)
                return SKIP
            values = read_table(cls, given, f"{prefix}.", problems)
            return cls(**{**values, **(extra or {})})
        return read

    def health(raw: Mapping[str, Any], path: str, out: dict[str, Any]) -> Any:
        token = env.get("EDGE_HEALTH_TOKEN")
        return table(HealthConfig, "health", {"token": token} if token else None)(raw, path, out)

    def console(raw: Mapping[str, Any], path: str, out: dict[str, Any]) -> Any:
        secrets = {key: env[var] for var, key in (("EDGE_CONSOLE_TOKEN", "token"),
                                                  ("EDGE_CONSOLE_USER", "user"),
                                                  ("EDGE_CONSOLE_PASSWORD", "password"))
                   if env.get(var)}
        got = table(ConsoleConfig, "console", secrets)(raw, path, out)
        if isinstance(got, ConsoleConfig):
            _check_console(got, problems)
        return got

    def devices(raw: Mapping[str, Any], path: str, out: dict[str, Any]) -> Any:
        given = raw.get("devices", [])
        if not isinstance(given, list) or not all(isinstance(d, dict) for d in given):
            problems.bad(path, "an array of tables ([[devices]])", given)
            return SKIP
        found: list[DeviceConfig] = []
        seen: dict[str, int] = {}
        for i, table_ in enumerate(given):
            dev = read_device(table_, f"devices[{i}]", problems, out.get("edge_id") or "edge", env)
            if dev is None:
                continue
            if dev.name in seen:
                problems.bad(f"devices[{i}].name",
                             f"a name not used before (devices[{seen[dev.name]}] has it)", dev.name)
            seen[dev.name] = i
            found.append(dev)
        return tuple(found)

    def upstream(raw: Mapping[str, Any], path: str, out: dict[str, Any]) -> Any:
        return _upstream(raw.get("upstream", {}), problems, env, out)

    def streams(raw: Mapping[str, Any], path: str, out: dict[str, Any]) -> Any:
        if "streams" not in raw:
            return ()
        from edge.streams._config import parse_streams  # lazily: it imports the engine

        found, more = parse_streams(raw["streams"], file)
        problems.problems.extend(more)
        return found

    def control(raw: Mapping[str, Any], path: str, out: dict[str, Any]) -> Any:
        value = table(ControlSettings, "control")(raw, path, out)
        if value is not SKIP and value.enabled:
            if not value.public_keys:
                problems.bad("control.public_keys", "at least one public key file when enabled", [])
            if not (out.get("upstream") and out["upstream"].enabled):
                problems.bad("upstream", "an enabled [upstream] table: [control] talks to its "
                             "cluster", raw.get("upstream", {}))
        return value

    readers = {"log": table(LogSettings, "log"), "health": health, "console": console,
               "devices": devices,
               "upstream": upstream, "clock": table(ClockSettings, "clock"), "streams": streams,
               "control": control, "kafka": table(KafkaSettings, "kafka")}
    values = read_table(Config, data, "", problems, readers=readers)
    if problems.problems:
        raise ConfigError(problems.problems)
    return Config(**values, file=file)


def _check_console(c: ConsoleConfig, problems: Problems) -> None:
    """Settings that only make sense together."""
    if (c.user is None) != (c.password is None):
        problems.bad("console.user" if c.user is None else "console.password",
                     "user and password together (HTTP Basic auth needs both)")
    if (c.tls_cert is None) != (c.tls_key is None):
        problems.bad("console.tls_cert" if c.tls_cert is None else "console.tls_key",
                     "tls_cert and tls_key together (HTTPS needs both)")


def uplink_topics(devices: list[DeviceConfig] | tuple[DeviceConfig, ...], dead_letter_topic: str
                  ) -> dict[str, str]:
    """Default [upstream] topic mapping: every device topic (and dead letters) under its own name."""
    topics = {d.topic: d.topic for d in devices}
    topics[dead_letter_topic] = dead_letter_topic
    return topics


def _upstream(raw: Any, problems: Problems, env: Mapping[str, str], out: dict[str, Any]) -> Any:
    """The [upstream] table: ``enabled`` here, every other key the uplink's own."""
    if not isinstance(raw, dict):
        problems.bad("upstream", "a table", raw)
        return SKIP
    if not raw:
        return UpstreamSettings(enabled=False)
    settings = {k: v for k, v in raw.items() if k != "enabled"}
    enabled = read_table(UpstreamSettings, {"enabled": raw["enabled"]} if "enabled" in raw else {},
                         "upstream.", problems).get("enabled", True)
    for var, key in (("EDGE_UPSTREAM_SASL_PASSWORD", "sasl_password"),
                     ("EDGE_UPSTREAM_SSL_KEY_PASSWORD", "ssl_key_password")):
        if env.get(var):
            settings[key] = env[var]
    if enabled:
        if "bootstrap_servers" not in raw:
            problems.bad("upstream.bootstrap_servers", '"host:port[,host:port...]"')
        else:
            _check_uplink(problems, settings, out.get("edge_id") or "edge",
                          str(out.get("data_dir") or "/tmp"), out.get("devices") or ())
    return UpstreamSettings(bool(enabled), settings)


def _check_uplink(problems: Problems, settings: dict[str, Any], edge_id: str, data_dir: str,
                  devices: tuple[DeviceConfig, ...]) -> None:
    """Let the uplink validate its own keys now, so `config check` names them."""
    try:
        from edge.uplink import UplinkConfig
        from edge.uplink._config import FROM_EDGE
    except ImportError:
        return  # a build without the uplink: `edge run` says so
    import dataclasses

    known = {f.name for f in dataclasses.fields(UplinkConfig)} - FROM_EDGE
    problems.unknown(settings, known, "upstream.")
    if any(k not in known for k in settings):
        return
    kw = dict(settings)
    kw.setdefault("topics", uplink_topics(devices, "dead-letters"))
    try:
        UplinkConfig(edge_id=edge_id, data_dir=Path(data_dir), **kw)
    except ConfigError as exc:
        for p in exc.errors:
            problems.bad(f"upstream.{p.key}", p.expected, *(() if p.missing else (p.got,)))
    except (TypeError, ValueError) as exc:
        problems.bad("upstream", f"settings the uplink accepts ({exc})", "a table")


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
