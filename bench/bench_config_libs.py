"""What a schema library would add to the appliance's start: import time and RSS, A/B.

    python3 -m venv /tmp/cfglibs && /tmp/cfglibs/bin/pip install pydantic attrs cattrs msgspec
    .venv/bin/python bench/bench_config_libs.py --libs /tmp/cfglibs/lib/python3.11/site-packages

Each variant is a fresh interpreter (this venv's, with ``--libs`` appended to its path,
so the libraries are not a dependency of the appliance) that imports ``edge``, then the
library, defines a schema of the config's shape (a log table, three device kinds as a
union tagged by ``transport``, the top level) and validates one document with three
mistakes in it. It reports the time from its first line to the end (ms, wall) and its
peak RSS (VmHWM, MiB). ``none`` does the same with plain dataclasses and no validation:
the peer every ratio is taken against; ``walker`` is ours (edge/_schema.py, which ``edge``
already imports). Rounds interleave the variants; medians.
``errors found`` is how many of the three mistakes the library reports in one pass
(``edge config check`` must report every one).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ("none", "walker", "msgspec", "attrs+cattrs", "pydantic")

# A config with three mistakes: a bad type, a value out of range, a bad choice.
DOC = {
    "edge_id": "edge-1", "data_dir": "/var/lib/edge",
    "log": {"partitions": 0},
    "devices": [
        {"transport": "serial", "name": "car-1", "kind": "gps", "codec": "nmea0183",
         "port": "/dev/ttyUSB0", "baudrate": "fast"},
        {"transport": "mqtt", "name": "ward", "kind": "temperature", "codec": "zigbee2mqtt",
         "host": "127.0.0.1", "qos": 2},
        {"transport": "w1", "name": "boiler", "kind": "temperature", "codec": "ds18b20.w1"},
    ],
}

_NONE = '''
from dataclasses import dataclass, field
@dataclass(frozen=True)
class Log:
    partitions: int = 3
    retention_seconds: int = 604800
    full_policy: str = "reject"
    durability: str = "fsync"
    dead_letter_topic: str = "dead-letters"
@dataclass(frozen=True, kw_only=True)
class Serial:
    transport: str; name: str; kind: str; codec: str; port: str
    baudrate: int = 9600; framing: str = "line"; topic: str = ""
@dataclass(frozen=True, kw_only=True)
class Mqtt:
    transport: str; name: str; kind: str; codec: str; host: str
    port: int = 1883; qos: int = 1; filters: tuple = (); client_id: str = ""; topic: str = ""
@dataclass(frozen=True, kw_only=True)
class W1:
    transport: str; name: str; kind: str; codec: str
    directory: str = "/sys/bus/w1/devices"; interval: float = 10.0; topic: str = ""
@dataclass(frozen=True)
class Config:
    edge_id: str; data_dir: str; log: Log = field(default_factory=Log); devices: tuple = ()
kinds = {"serial": Serial, "mqtt": Mqtt, "w1": W1}
Config(DOC["edge_id"], DOC["data_dir"], Log(**DOC["log"]),
       tuple(kinds[d["transport"]](**d) for d in DOC["devices"]))
errors = 0
'''

# Ours: edge/_schema.py's field metadata over dataclasses (already imported by edge).
_WALKER = '''
from dataclasses import dataclass, field
from edge._schema import Problems, read_table, setting
@dataclass(frozen=True)
class Log:
    partitions: int = setting(3, kind="int", check=lambda v: 1 <= v <= 1024,
                              expected="an integer in 1..1024", doc="")
    retention_seconds: int = setting(604800, kind="int", doc="")
    full_policy: str = setting("reject", kind="str", check=lambda v: v in ("reject", "drop-oldest"), doc="")
    durability: str = setting("fsync", kind="str", check=lambda v: v in ("fsync", "no-fsync"), doc="")
    dead_letter_topic: str = setting("dead-letters", kind="str", doc="")
@dataclass(frozen=True, kw_only=True)
class Serial:
    transport: str = setting(kind="str", doc=""); name: str = setting(kind="str", doc="")
    kind: str = setting(kind="str", doc=""); codec: str = setting(kind="str", doc="")
    port: str = setting(kind="str", doc="")
    baudrate: int = setting(9600, kind="int", check=lambda v: v > 0, doc="")
    framing: str = setting("line", kind="str", doc=""); topic: str = setting("", kind="str", doc="")
@dataclass(frozen=True, kw_only=True)
class Mqtt:
    transport: str = setting(kind="str", doc=""); name: str = setting(kind="str", doc="")
    kind: str = setting(kind="str", doc=""); codec: str = setting(kind="str", doc="")
    host: str = setting(kind="str", doc="")
    port: int = setting(1883, kind="int", check=lambda v: 0 < v < 65536, doc="")
    qos: int = setting(1, kind="int", check=lambda v: v in (0, 1), doc="")
    filters: tuple = setting((), kind="strlist", doc=""); client_id: str = setting("", kind="str", doc="")
    topic: str = setting("", kind="str", doc="")
@dataclass(frozen=True, kw_only=True)
class W1:
    transport: str = setting(kind="str", doc=""); name: str = setting(kind="str", doc="")
    kind: str = setting(kind="str", doc=""); codec: str = setting(kind="str", doc="")
    directory: str = setting("/sys/bus/w1/devices", kind="str", doc="")
    interval: float = setting(10.0, kind="num", check=lambda v: v > 0, doc="")
    topic: str = setting("", kind="str", doc="")
kinds = {"serial": Serial, "mqtt": Mqtt, "w1": W1}
problems = Problems("edge.toml")
log = Log(**read_table(Log, DOC["log"], "log.", problems))
devices = [read_table(kinds[d["transport"]], d, f"devices[{i}].", problems)
           for i, d in enumerate(DOC["devices"])]
errors = len(problems.problems)
'''

_MSGSPEC = '''
from typing import Annotated, Literal, Union
import msgspec
from msgspec import Meta, Struct
class Log(Struct, frozen=True, forbid_unknown_fields=True):
    partitions: Annotated[int, Meta(ge=1, le=1024)] = 3
    retention_seconds: int = 604800
    full_policy: Literal["reject", "drop-oldest"] = "reject"
    durability: Literal["fsync", "no-fsync"] = "fsync"
    dead_letter_topic: Annotated[str, Meta(pattern=r"^[a-zA-Z0-9._-]{1,249}$")] = "dead-letters"
class Serial(Struct, frozen=True, kw_only=True, tag_field="transport", tag="serial",
             forbid_unknown_fields=True):
    name: str; kind: str; codec: str; port: str
    baudrate: Annotated[int, Meta(gt=0)] = 9600; framing: str = "line"; topic: str = ""
class Mqtt(Struct, frozen=True, kw_only=True, tag_field="transport", tag="mqtt",
           forbid_unknown_fields=True):
    name: str; kind: str; codec: str; host: str
    port: Annotated[int, Meta(ge=1, le=65535)] = 1883; qos: Literal[0, 1] = 1
    filters: tuple[str, ...] = (); client_id: str = ""; topic: str = ""
class W1(Struct, frozen=True, kw_only=True, tag_field="transport", tag="w1",
         forbid_unknown_fields=True):
    name: str; kind: str; codec: str
    directory: str = "/sys/bus/w1/devices"; interval: Annotated[float, Meta(gt=0)] = 10.0
    topic: str = ""
class Config(Struct, frozen=True, forbid_unknown_fields=True):
    edge_id: str; data_dir: str; log: Log = Log(); devices: tuple[Union[Serial, Mqtt, W1], ...] = ()
try:
    msgspec.convert(DOC, Config)
    errors = 0
except msgspec.ValidationError as exc:
    errors = len(str(exc).splitlines())  # one message: msgspec stops at the first mistake
'''

_CATTRS = '''
from typing import Literal, Union
import attrs
import cattrs
from cattrs.strategies import configure_tagged_union
from attrs import define, field, validators as v
@define(frozen=True)
class Log:
    partitions: int = field(default=3, validator=[v.instance_of(int), v.ge(1), v.le(1024)])
    retention_seconds: int = field(default=604800, validator=v.instance_of(int))
    full_policy: str = field(default="reject", validator=v.in_(("reject", "drop-oldest")))
    durability: str = field(default="fsync", validator=v.in_(("fsync", "no-fsync")))
    dead_letter_topic: str = field(default="dead-letters",
                                   validator=v.matches_re(r"[a-zA-Z0-9._-]{1,249}"))
@define(frozen=True, kw_only=True)
class Serial:
    name: str; kind: str; codec: str; port: str
    baudrate: int = field(default=9600, validator=[v.instance_of(int), v.gt(0)])
    framing: str = "line"; topic: str = ""
@define(frozen=True, kw_only=True)
class Mqtt:
    name: str; kind: str; codec: str; host: str
    port: int = field(default=1883, validator=[v.ge(1), v.le(65535)])
    qos: int = field(default=1, validator=v.in_((0, 1)))
    filters: tuple = (); client_id: str = ""; topic: str = ""
@define(frozen=True, kw_only=True)
class W1:
    name: str; kind: str; codec: str
    directory: str = "/sys/bus/w1/devices"; interval: float = field(default=10.0, validator=v.gt(0))
    topic: str = ""
@define(frozen=True)
class Config:
    edge_id: str; data_dir: str; log: Log = Log(); devices: tuple[Union[Serial, Mqtt, W1], ...] = ()
conv = cattrs.Converter(detailed_validation=True, forbid_extra_keys=True)
configure_tagged_union(Union[Serial, Mqtt, W1], conv, tag_name="transport",
                       tag_generator={Serial: "serial", Mqtt: "mqtt", W1: "w1"}.get)
def _count(exc):
    if isinstance(exc, BaseExceptionGroup):
        return sum(_count(e) for e in exc.exceptions)
    return 1
try:
    conv.structure(DOC, Config)
    errors = 0
except Exception as exc:
    errors = _count(exc)
'''

_PYDANTIC = '''
from typing import Annotated, Literal, Union
from pydantic import BaseModel, ConfigDict, Field, ValidationError
class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
class Log(_M):
    partitions: int = Field(3, ge=1, le=1024)
    retention_seconds: int = 604800
    full_policy: Literal["reject", "drop-oldest"] = "reject"
    durability: Literal["fsync", "no-fsync"] = "fsync"
    dead_letter_topic: str = Field("dead-letters", pattern=r"^[a-zA-Z0-9._-]{1,249}$")
class Serial(_M):
    transport: Literal["serial"]; name: str; kind: str; codec: str; port: str
    baudrate: int = Field(9600, gt=0); framing: str = "line"; topic: str = ""
class Mqtt(_M):
    transport: Literal["mqtt"]; name: str; kind: str; codec: str; host: str
    port: int = Field(1883, ge=1, le=65535); qos: Literal[0, 1] = 1
    filters: tuple[str, ...] = (); client_id: str = ""; topic: str = ""
class W1(_M):
    transport: Literal["w1"]; name: str; kind: str; codec: str
    directory: str = "/sys/bus/w1/devices"; interval: float = Field(10.0, gt=0); topic: str = ""
class Config(_M):
    edge_id: str; data_dir: str; log: Log = Log()
    devices: list[Annotated[Union[Serial, Mqtt, W1], Field(discriminator="transport")]] = []
try:
    Config.model_validate(DOC)
    errors = 0
except ValidationError as exc:
    errors = exc.error_count()
'''

_CODE = {"none": _NONE, "walker": _WALKER, "msgspec": _MSGSPEC, "attrs+cattrs": _CATTRS, "pydantic": _PYDANTIC}


def child(variant: str) -> dict[str, float]:
    """Run in a fresh interpreter: import edge, then the variant's schema; ms and MiB."""
    import time

    t0 = time.perf_counter()
    import edge  # noqa: F401 - the appliance's own import is part of what is measured

    # dont_inherit: this module's `from __future__ import annotations` would turn the
    # schemas' annotations into strings, which is not how a module of our own would define them.
    scope = {"DOC": json.loads(json.dumps(DOC))}
    exec(compile(_CODE[variant], variant, "exec", dont_inherit=True), scope)  # our own constant code
    ms = (time.perf_counter() - t0) * 1000
    with open("/proc/self/status") as f:
        hwm_kib = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    return {"ms": ms, "rss_mib": hwm_kib / 1024, "errors": scope["errors"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--libs", default="", help="a site-packages directory holding pydantic, attrs, "
                    "cattrs and msgspec (appended to the children's path)")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), args.libs) if p))
    runs: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
    for _ in range(args.rounds):
        for variant in VARIANTS:  # interleaved: a busy moment hits every variant alike
            out = subprocess.run([sys.executable, __file__, "--child", variant], env=env,
                                 capture_output=True, text=True, check=True)
            runs[variant].append(json.loads(out.stdout))

    def med(variant: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[variant])

    base_ms, base_rss = med("none", "ms"), med("none", "rss_mib")
    print(f"import edge + schema + validate one config; medians of {args.rounds} interleaved runs")
    print("| variant | ms | ms ÷ none | + ms | peak RSS MiB | RSS ÷ none | + MiB | errors found (of 3) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for v in VARIANTS:
        ms, rss = med(v, "ms"), med(v, "rss_mib")
        print(f"| {v} | {ms:.1f} | {ms / base_ms:.2f}x | {ms - base_ms:+.1f} | {rss:.1f} | "
              f"{rss / base_rss:.2f}x | {rss - base_rss:+.1f} | {int(runs[v][0]['errors'])} |")


if __name__ == "__main__":
    main()
