"""The chaos soak's driver: the whole appliance, a bridge beside it, a seeded fault schedule.

One run starts, on real parts: three serial devices (one ``edge-sim`` each, over ptys
linked at a stable path), an MQTT fleet (``edge-sim --output mqtt`` recording Mosquitto's
PUBACKs), Mosquitto, ``edge run`` as a subprocess replicating to a 3-broker Kafka cluster
through TCP proxies, the MQTT → Kafka bridge (tests/chaos/bridge.py) on the same
Mosquitto and cluster, and the checker's ``watch`` consumer on the brokers' direct
listener. It then plays the fault schedule against both systems at once, waits for the
backlog to drain, stops everything and runs the checker on what was recorded.

Nothing here is imported by the checker: the driver may use the project's fixtures and
helpers, the checker only stdlib and kafka-python.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.chaos import checker
from tests.chaos._timeline import ProcessSampler, arrivals_per_window
from tests.edge._helpers import BIN, health, start_edge, wait_for
from tests.fixtures.mosquitto import Mosquitto, free_port

HERE = Path(__file__).resolve().parent

#: Every fault kind: the first seven in the order the README lists them, the rest as
#: docs/faults.md does.
FAULT_KINDS = (
    "service-sigkill",
    "service-sigterm",
    "network-cut",
    "broker-kill",
    "mosquitto-restart",
    "serial-unplug",
    "disk-quota",
    "refused-record",
    "second-uplink-eos",
    "second-uplink-alo",
)
#: Faults that mean something to the bridge (it has no serial ports and no disk quota of
#: its own; the disk-quota fault is a long network cut, which it does feel; refused records
#: and a second uplink are the appliance's own).
BRIDGE_FAULTS = tuple(
    k for k in FAULT_KINDS
    if k not in ("serial-unplug", "refused-record", "second-uplink-eos", "second-uplink-alo")
)
#: The upstream blood-pressure topic refuses a record stamped more than this far ahead of
#: the broker's clock; the refused-record fault sends readings REFUSED_AHEAD_MS ahead, which
#: the appliance itself takes (its own limit is a day ahead of a trusted clock).
TIMESTAMP_AFTER_MAX_MS = 3_600_000
REFUSED_AHEAD_MS = 2 * 3_600_000
#: Where the uplink keeps records the cluster refused (edge/uplink's dlq_topic default).
LOCAL_REFUSED_TOPIC = "uplink.dlq"

# Thermometers send one reading a second: their frames carry whole seconds and two decimals,
# so two readings of one room in one second could be told apart by position only.
SERIAL = (  # (device id, sim fleet flag, service codec, codec options, sim extra args)
    ("car-1", "--gps", "nmea0183", "", ()),
    (
        "room-1",
        "--rooms",
        "gatt.0x2A1C",
        '{ framing = "hex" }',
        ("--temperature-format", "gatt", "--rate", "1"),
    ),
    ("bed-1", "--patients", "gatt.0x2A35", '{ framing = "hex" }', ()),
)
MQTT = (  # (service device name, kind, convention, MQTT topic level)
    ("gps-mqtt", "gps", "owntracks", "owntracks"),
    ("rooms-mqtt", "temperature", "gatt.hex", "ble"),
    ("beds-mqtt", "blood_pressure", "bp.json", "bp"),
)
#: Content dedupe (edge's ``dedupe_window``) for every MQTT device: a publisher resending
#: after a Mosquitto restart is then written once. It needs device time that names a
#: reading: bp.json carries ms (cuffs tick every 125 ms), the rooms (gatt.hex) and the GPS
#: units (owntracks' ``tst``) carry whole seconds and tick once a second, as real ones do
#: (the simulator stamps tick k at start + k periods, so no two share a second).
DEDUPE_WINDOW_S = {"gps-mqtt": 300, "rooms-mqtt": 300, "beds-mqtt": 300}
#: The simulator processes publishing over MQTT (cuffs; GPS units; thermometers).
MQTT_SIMS = ("mqtt", "mqtt-gps", "mqtt-rooms")
LOCAL_TOPICS = ("gps", "temperature", "blood_pressure", "dead-letters", "idle")
#: A topic written only at the start of the load (IDLE_READINGS readings of one thermometer),
#: then idle through every fault and the restarts: a checkpoint the cluster lets expire
#: (offsets.retention.minutes) would have a restarted uplink send them again.
IDLE_TOPIC, IDLE_READINGS = "idle", 5
#: Stream processors on the box (edge/streams built-ins), exactly once over the local log;
#: their outputs are replicated like the readings.
STREAMS = """
[[streams]]
name = "fleet"
source = "gps"
sink = "gps.track"
steps = [{ builtin = "gps_track" }]

[[streams]]
name = "ward"
source = "temperature"

[[streams.steps]]
builtin = "fever"
raise_at = 38.0
clear_at = 37.5
field = "temperature_c"
topic = "alerts.fever"

[[streams.steps]]
builtin = "downsample"
fields = ["temperature_c"]
window_s = 10
grace_s = 2
topic = "temperature.10s"

[[streams]]
name = "vitals"
source = "blood_pressure"
steps = [{ builtin = "blood_pressure", topic = "alerts.blood_pressure" }]
"""
STREAM_TOPICS = ("gps.track", "alerts.fever", "temperature.10s", "alerts.blood_pressure")


@dataclass(frozen=True)
class Profile:
    """How long, how loud and how often. Times in seconds."""

    name: str
    rounds: int  # each round plays every fault kind once, in a seeded order
    mqtt_devices: int = 2  # GPS units and cuffs (each)
    mqtt_rate: float = 8.0  # readings/s per cuff
    mqtt_gps_rate: float = 1.0  # owntracks reports; whole-second tst: at most one a second
    mqtt_rooms: int = 8  # thermometers, at 1 reading/s each
    serial_rate: float = 4.0
    gap_s: tuple[float, float] = (5.0, 7.0)  # quiet time after a fault, seeded within
    down_s: float = 2.0  # the service stays dead this long after SIGKILL
    cut_s: float = 6.0
    broker_down_s: float = 6.0
    # The quota is small so that a short cut fills it with unreplicated records, but not so
    # small that the drop ledger's entries (~300 B per topic per drop, which must stay
    # until replicated) rival the 1% of the quota that each drop frees.
    quota_bytes: int = 500_000
    quota_cut_s: float = 30.0  # a cut this long fills the quota with unreplicated records
    warmup_s: float = 5.0
    tail_s: float = 6.0
    drain_timeout_s: float = 90.0
    hostile_rate: float = 0.02  # edge-sim --hostile: per reading, on every simulator
    refused_records: int = 3  # per refused-record fault
    # How long a second uplink may run beside the service's: it should be refused at once,
    # but starting Python and its imports takes seconds on a busy machine (6 s was short).
    second_uplink_s: float = 60.0


PROFILES = {
    # Shorter quiet times and outages than the long run's (every fault kind still once, the
    # same checks): the default suite's 30-minute budget (was ~3 min, gaps 5-7 s, cuts 6 s).
    "short": Profile("short", rounds=1, gap_s=(2.5, 3.5), cut_s=4.0, broker_down_s=4.0),
    "long": Profile("long", rounds=18, mqtt_devices=3, gap_s=(10.0, 30.0)),  # ~1 h
}


def profile_from_env(name: str) -> Profile:
    """PROFILES[name], with ``CHAOS_ROUNDS`` (if set) as its number of rounds."""
    profile = PROFILES[name]
    rounds = os.environ.get("CHAOS_ROUNDS")
    return dataclasses.replace(profile, rounds=int(rounds)) if rounds else profile


@dataclass
class Fault:
    """One fault of the schedule: what, when (planned), and its seeded parameters."""

    kind: str
    at_s: float  # planned offset from the start of the load (faults that take longer shift it)
    gap_s: float  # quiet time between the end of the previous fault (or the start) and this one
    detail: str = ""
    params: dict[str, Any] = field(default_factory=dict)


def build_schedule(seed: int, profile: Profile) -> list[Fault]:
    """The faults of a run: `rounds` shuffled rounds of every kind, seeded, with gaps."""
    rng = random.Random(seed)
    faults: list[Fault] = []
    t, gap = profile.warmup_s, profile.warmup_s
    for _ in range(profile.rounds):
        kinds = list(FAULT_KINDS)
        rng.shuffle(kinds)
        for kind in kinds:
            f = Fault(kind, round(t, 1), round(gap, 1))
            if kind == "broker-kill":
                f.params["broker"] = rng.randrange(3)
                f.detail = f"broker {f.params['broker']} down {profile.broker_down_s:.0f} s"
                t += profile.broker_down_s
            elif kind == "serial-unplug":
                f.params["device"] = rng.choice([s[0] for s in SERIAL])
                f.detail = f"{f.params['device']} unplugged 1 s"
                t += 1.0
            elif kind == "network-cut":
                f.params["mode"] = rng.choice(("drop", "blackhole"))
                f.detail = f"uplink cut ({f.params['mode']}) {profile.cut_s:.0f} s"
                t += profile.cut_s
            elif kind == "disk-quota":
                f.detail = (
                    f"uplink cut {profile.quota_cut_s:.0f} s under a "
                    f"{profile.quota_bytes // 1000} kB quota, drop-oldest"
                )
                t += profile.quota_cut_s
            elif kind == "service-sigkill":
                f.detail = f"SIGKILL, restart after {profile.down_s:.0f} s"
                t += profile.down_s
            elif kind == "service-sigterm":
                f.detail = "SIGTERM, restart at exit"
                t += 2.0
            elif kind == "refused-record":
                f.detail = (
                    f"{profile.refused_records} cuff readings {REFUSED_AHEAD_MS // 3_600_000} h "
                    f"ahead; upstream takes {TIMESTAMP_AFTER_MAX_MS // 3_600_000} h"
                )
            elif kind.startswith("second-uplink"):
                mode = "exactly-once" if kind.endswith("eos") else "at-least-once"
                f.params["delivery"] = mode
                f.detail = f"python -m edge.uplink ({mode}) on the service's log"
                t += 6.0
            else:
                f.detail = "graceful restart (persistence kept)"
                t += 1.0
            faults.append(f)
            gap = rng.uniform(*profile.gap_s)
            t += gap
    return faults


def load_seconds(profile: Profile, faults: list[Fault]) -> float:
    """The most the simulators may run: the planned schedule, ample time for broker restarts
    and stops that take longer than planned on a busy machine, and the tail. The run stops
    them (SIGTERM, a clean end) `tail_s` after the last fault."""
    planned = (faults[-1].at_s if faults else 0) + 60
    slack = sum(60 if f.kind in ("broker-kill", "service-sigterm") else 10 for f in faults)
    return planned + slack + profile.tail_s


def schedule_text(seed: int, profile: Profile, faults: list[Fault]) -> str:
    """The schedule as printed before a run (the seed first, to replay it)."""
    lines = [
        f"chaos schedule: profile={profile.name} rounds={profile.rounds} seed={seed} "
        f"(replay: CHAOS_SEED={seed}, same profile)"
    ]
    lines += [
        f"  t+{f.at_s:6.1f}s (after {f.gap_s:4.1f}s)  {f.kind:18s} {f.detail}" for f in faults
    ]
    return "\n".join(lines)


class Soak:
    """One run of the soak in `workdir`; `run()` returns the checker's result."""

    def __init__(
        self,
        workdir: Path,
        proxied: Any,
        seed: int,
        profile: Profile,
        streams_config: str = STREAMS,
    ) -> None:
        self.dir = workdir
        self.proxied = proxied  # tests.fixtures.kafka.ProxiedCluster, 3 brokers
        self.seed = seed
        self.profile = profile
        self.streams_config = streams_config
        self.schedule = build_schedule(seed, profile)
        self.prefix = f"chaos{seed}-{int(time.time())}"
        self.edge_topics = {t: f"{self.prefix}.edge.{t}" for t in LOCAL_TOPICS}
        self.stream_topics = (
            {t: f"{self.prefix}.edge.{t}" for t in STREAM_TOPICS} if streams_config else {}
        )
        self.ledger_topic = f"{self.prefix}.edge.drop-ledger"
        self.bridge_topics = {k: f"{self.prefix}.bridge.{k}" for _, k, _, _ in MQTT}
        self.mosquitto = Mosquitto(workdir / "mosquitto")
        self.edge: subprocess.Popen[bytes] | None = None
        self.bridge: subprocess.Popen[bytes] | None = None
        self.watcher: subprocess.Popen[bytes] | None = None
        self.sims: dict[str, subprocess.Popen[str]] = {}
        self.fault_log = workdir / "faults.jsonl"
        self.started_ms = 0
        self.health_port = free_port()
        self.crashes = {"appliance": 0, "bridge": 0}  # exits nobody asked for
        self.refused_path = workdir / "refused.jsonl"
        self.refused_seq = 0
        self.second_uplinks: list[dict[str, Any]] = []  # how each second uplink ended
        self.sampler = ProcessSampler(self._edge_pid, extra=self._uplink_lag)

    # -- the parts ---------------------------------------------------------------------

    def _config(self) -> Path:
        p, links = self.profile, self.dir / "links"
        mapping = ", ".join(
            f'"{t}" = "{u}"' for t, u in {**self.edge_topics, **self.stream_topics}.items()
        )
        devices = ""
        for dev, _, codec, opts, _ in SERIAL:
            devices += (
                f'[[devices]]\nname = "{dev}"\nkind = "{_kind_of(dev)}"\n'
                f'transport = "serial"\nport = "{links / dev}"\ncodec = "{codec}"\n'
                + (f"codec_options = {opts}\n" if opts else "")
            )
        for name, kind, conv, _ in MQTT:
            devices += (
                f'[[devices]]\nname = "{name}"\nkind = "{kind}"\ntransport = "mqtt"\n'
                f'host = "127.0.0.1"\nport = {self.mosquitto.port}\ncodec = "{conv}"\n'
                f'qos = 1\ndevice_id_prefix = "mq-"\n'
                f"dedupe_window = {DEDUPE_WINDOW_S.get(name, 0)}\n"
            )
        devices += (
            f'[[devices]]\nname = "idle-mqtt"\nkind = "temperature"\ntransport = "mqtt"\n'
            f'host = "127.0.0.1"\nport = {self.mosquitto.port}\ncodec = "zigbee2mqtt"\n'
            f'qos = 1\ndevice_id_prefix = "idle-"\ntopic = "{IDLE_TOPIC}"\n'
        )
        path = self.dir / "edge.toml"
        path.write_text(
            f'edge_id = "{self.prefix}"\ndata_dir = "{self.dir / "data"}"\n'
            f'[log]\npartitions = 2\ndurability = "fsync"\nquota_bytes = {p.quota_bytes}\n'
            f'full_policy = "drop-oldest"\n'
            f'[health]\naddress = "127.0.0.1:{self.health_port}"\n'
            f'[upstream]\nbootstrap_servers = "{self.proxied.bootstrap_servers}"\n'
            f'delivery = "exactly-once"\nbatch_records = 200\ndefault_partitions = 2\n'
            f"default_replication_factor = 3\nbackoff_max_s = 2.0\nrequest_timeout_s = 10.0\n"
            f'drop_ledger_upstream = "{self.ledger_topic}"\n'
            f"topics = {{ {mapping} }}\n\n{devices}{self.streams_config}"
        )
        check = subprocess.run(
            [sys.executable, "-m", "edge", "config", "check", str(path)],
            capture_output=True,
            text=True,
        )
        assert check.returncode == 0, (
            f"the soak's config does not validate:\n{check.stdout}{check.stderr}"
        )
        return path

    def _start_edge(self) -> None:
        self.edge = start_edge(self.config, self.dir / "edge.log")

    def _start_bridge(self) -> None:
        cmd = [
            sys.executable,
            str(HERE / "bridge.py"),
            "--mqtt-port",
            str(self.mosquitto.port),
            "--bootstrap-servers",
            self.proxied.bootstrap_servers,
            "--client-id",
            f"bridge-{self.prefix}",
        ]
        for _, kind, _, level in MQTT:
            cmd += ["--map", f"{level}={self.bridge_topics[kind]}"]
        with (self.dir / "bridge.log").open("ab") as log:
            self.bridge = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)

    def _start_watcher(self) -> None:
        cmd = [
            sys.executable,
            "-m",
            "tests.chaos.checker",
            "watch",
            "--bootstrap-servers",
            self.proxied.direct_bootstrap_servers,
            "--out",
            str(self.dir / "arrivals.jsonl"),
        ]
        for t in [
            *self.edge_topics.values(),
            *self.stream_topics.values(),
            self.ledger_topic,
            *self.bridge_topics.values(),
        ]:
            cmd += ["--topic", t]
        with (self.dir / "watcher.log").open("ab") as log:
            self.watcher = subprocess.Popen(
                cmd, stdout=subprocess.DEVNULL, stderr=log, cwd=HERE.parents[1]
            )

    def _create_topics(self) -> None:
        from kafka.admin import KafkaAdminClient, NewTopic

        admin = KafkaAdminClient(bootstrap_servers=self.proxied.direct_bootstrap_servers)
        try:
            admin.create_topics([NewTopic(t, 2, 3) for t in self.bridge_topics.values()])
            # The appliance's upstream blood-pressure topic, made before its uplink would,
            # with a limit on how far ahead a record's time may be (the refused-record fault).
            admin.create_topics([
                NewTopic(
                    self.edge_topics["blood_pressure"], 2, 3,
                    topic_configs={
                        "message.timestamp.after.max.ms": str(TIMESTAMP_AFTER_MAX_MS)
                    },
                )
            ])
        finally:
            admin.close()

    def _start_sims(self, duration_s: float) -> None:
        p, links = self.profile, self.dir / "links"
        for i, (dev, flag, _, _, extra) in enumerate(SERIAL):
            fleet = ["--gps", "0", "--rooms", "0", "--patients", "0"]
            fleet[fleet.index(flag) + 1] = "1"
            self.sims[dev] = subprocess.Popen(
                [
                    str(BIN / "edge-sim"),
                    "--no-progress",
                    "--output",
                    "pty",
                    "--link-dir",
                    str(links),
                    *fleet,
                    "--rate",
                    str(p.serial_rate),
                    *extra,
                    "--duration",
                    str(duration_s),
                    "--seed",
                    str(self.seed * 10 + i),
                    "--wait-reader",
                    "600",
                    "--unplug-seconds",
                    "1",
                    "--truth",
                    str(self.dir / f"truth-{dev}.jsonl"),
                    "--hostile",
                    str(p.hostile_rate),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
        n = str(p.mqtt_devices)
        for name, fleet, rate, seed in (
            ("mqtt", ["--gps", "0", "--rooms", "0", "--patients", n], p.mqtt_rate, 8),
            ("mqtt-gps", ["--gps", n, "--rooms", "0", "--patients", "0"], p.mqtt_gps_rate, 7),
            ("mqtt-rooms", ["--gps", "0", "--rooms", str(p.mqtt_rooms), "--patients", "0"], 1.0, 9),
        ):
            self.sims[name] = subprocess.Popen(
                [
                    str(BIN / "edge-sim"),
                    "--no-progress",
                    "--output",
                    "mqtt",
                    "--mqtt-port",
                    str(self.mosquitto.port),
                    *fleet,
                    "--convention",
                    "temperature=gatt.hex",
                    "--rate",
                    str(rate),
                    "--duration",
                    str(duration_s),
                    "--seed",
                    str(self.seed * 10 + seed),
                    "--truth",
                    str(self.dir / f"truth-{name}.jsonl"),
                    "--acks",
                    str(self.dir / f"acks-{name}.txt"),
                    "--hostile",
                    str(p.hostile_rate),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )

    # -- faults ------------------------------------------------------------------------

    def _stop_middle(self, sig: int) -> None:
        """The service and the bridge get the same signal at the same moment."""
        for proc in (self.edge, self.bridge):
            if proc is not None and proc.poll() is None:
                proc.send_signal(sig)
        for proc in (self.edge, self.bridge):
            if proc is not None:
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                    raise AssertionError(f"{proc.args} did not exit after signal {sig}") from None

    def _sleep(self, seconds: float) -> None:
        """Sleep, restarting a service or bridge that died on its own meanwhile (as systemd's
        Restart=always would); each such crash is counted and reported."""
        end = time.monotonic() + seconds
        while True:
            for name, proc, start in (
                ("appliance", self.edge, self._start_edge),
                ("bridge", self.bridge, self._start_bridge),
            ):
                if proc is not None and proc.poll() is not None:
                    self.crashes[name] += 1
                    start()
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(0.2, left))

    def _signal_and_restart(self, sig: int, down_s: float) -> None:
        """Signal the service and the bridge at once; restart each `down_s` after it exits."""
        starters = {"edge": self._start_edge, "bridge": self._start_bridge}
        pending = {"edge": self.edge, "bridge": self.bridge}
        for proc in pending.values():
            assert proc is not None
            proc.send_signal(sig)
        restart_at: dict[str, float] = {}
        deadline = time.monotonic() + 30
        while pending or restart_at:
            for name, proc in list(pending.items()):
                assert proc is not None
                if proc.poll() is not None:
                    if name == "edge" and sig == signal.SIGTERM:
                        assert proc.returncode == 0, f"edge exited {proc.returncode} on SIGTERM"
                    restart_at[name] = time.monotonic() + down_s
                    del pending[name]
                elif time.monotonic() > deadline:
                    proc.kill()
                    proc.wait()
                    raise AssertionError(f"{name} did not exit within 30 s of signal {sig}")
            for name, at in list(restart_at.items()):
                if time.monotonic() >= at:
                    starters[name]()
                    del restart_at[name]
            time.sleep(0.02)

    def _devices_connected(self) -> bool:
        h = health(self.health_port)
        return bool(h) and all(d["connected"] for d in h["devices"].values())

    def _play(self, f: Fault) -> None:
        p = self.profile
        if f.kind in ("service-sigkill", "service-sigterm"):
            sig = signal.SIGKILL if f.kind == "service-sigkill" else signal.SIGTERM
            self._signal_and_restart(sig, p.down_s if sig == signal.SIGKILL else 0.5)
            # The fault lasts until the new service has its devices open again: serial
            # bytes written before that have no reader (the checker's window). A loaded
            # machine can take longer than the checker's grace just to start Python.
            wait_for(self._devices_connected, 120, "the restarted service's devices")
        elif f.kind in ("network-cut", "disk-quota"):
            self.proxied.cut(f.params.get("mode", "drop"))
            self._sleep(p.cut_s if f.kind == "network-cut" else p.quota_cut_s)
            self.proxied.restore()
        elif f.kind == "broker-kill":
            self.proxied.cluster.kill_broker(f.params["broker"])
            self._sleep(p.broker_down_s)
            self.proxied.cluster.restart_broker(f.params["broker"])
        elif f.kind == "mosquitto-restart":
            self.mosquitto.restart()
        elif f.kind == "refused-record":
            self._send_refused()
        elif f.kind.startswith("second-uplink"):
            self._second_uplink(f.params["delivery"])
        elif f.kind == "serial-unplug":
            self.sims[f.params["device"]].send_signal(signal.SIGUSR1)
            self._sleep(1.0)
            wait_for(self._devices_connected, 120, "the serial device reopened")
        else:
            raise ValueError(f"unknown fault kind {f.kind!r}")

    def _send_idle(self) -> None:
        """The idle topic's only readings."""
        from devices.simulator._outputs import MqttPublisher

        pub = MqttPublisher("127.0.0.1", self.mosquitto.port, client_id=f"idle-{self.prefix}")
        try:
            for i in range(IDLE_READINGS):
                pub.publish("zigbee2mqtt/sensor-1", json.dumps({"temperature": 20 + i}).encode(),
                            tag=i)
        finally:
            pub.close(timeout=30)
        assert len(pub.acked()) == IDLE_READINGS, "Mosquitto did not take the idle topic's readings"

    def _send_refused(self) -> None:
        """Cuff readings stamped REFUSED_AHEAD_MS ahead, each under a key of its own: the
        appliance stores them, the upstream topic refuses them."""
        from devices.simulator._outputs import MqttPublisher

        pub = MqttPublisher("127.0.0.1", self.mosquitto.port, client_id=f"refuser-{self.prefix}")
        rows = []
        try:
            for _ in range(self.profile.refused_records):
                self.refused_seq += 1
                n = self.refused_seq
                values = {"systolic": 150 + n % 40, "diastolic": 90, "pulse": 61}
                payload = {**values, "unit": "mmHg",
                           "time": int(time.time() * 1000) + REFUSED_AHEAD_MS + n}
                pub.publish(f"bp/refused-{n}", json.dumps(payload).encode(), tag=n)
                rows.append({"device": f"mq-refused-{n}", "kind": "blood_pressure",
                             "values": {"systolic_mmhg": values["systolic"],
                                        "diastolic_mmhg": values["diastolic"],
                                        "pulse_bpm": values["pulse"]}})
        finally:
            pub.close(timeout=30)
        acked = set(pub.acked())
        first = self.refused_seq - len(rows) + 1
        owed = [row for n, row in enumerate(rows, first) if n in acked]  # what Mosquitto took
        # Where each landed in the local log, so the checker can find it in the drop ledger
        # (named as refused, or dropped under the quota before the uplink reached it).
        def located() -> dict[str, tuple[int, int]]:
            keys = {row["device"].encode() for row in owed}
            return {r.key.decode(): (r.partition, r.offset)
                    for r in _snapshot(self.dir / "data", "blood_pressure") if r.key in keys}

        def all_located() -> dict[str, tuple[int, int]] | None:
            found = located()
            return found if len(found) == len(owed) else None

        where = wait_for(all_located, 30, "the refused-record fault's readings in the local log"
                         ) if owed else {}
        with self.refused_path.open("a") as out:
            for row in owed:
                part, off = where[row["device"]]
                out.write(json.dumps({**row, "partition": part, "offset": off}) + "\n")

    def _second_uplink(self, delivery: str) -> None:
        """A second uplink on the service's log and upstream topics, as an operator who
        starts ``python -m edge.uplink`` by hand beside the running service would; it should
        be refused and exit; still running after `second_uplink_s`, it gets SIGTERM."""
        cmd = [sys.executable, "-m", "edge.uplink", "--edge-id", self.prefix,
               "--bootstrap-servers", self.proxied.bootstrap_servers,
               "--data-dir", str(self.dir / "data"), "--delivery", delivery]
        for local, up in {**self.edge_topics, **self.stream_topics}.items():
            cmd += ["--topic", f"{local}={up}"]
        log_path = self.dir / f"second-uplink-{len(self.second_uplinks) + 1}.log"
        with log_path.open("ab") as log:
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
        end = time.monotonic() + self.profile.second_uplink_s
        while time.monotonic() < end and proc.poll() is None:
            self._sleep(0.2)
        ran_s = round(self.profile.second_uplink_s - max(0.0, end - time.monotonic()), 1)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or [""]
        self.second_uplinks.append({"delivery": delivery, "exit": proc.returncode,
                                    "ran_s": ran_s, "last_line": tail[0][:300]})

    def _dump_local_refused(self) -> Path:
        """The local topic of records the cluster refused, as the checker reads arrivals."""
        from broker import KafkaAdminClient
        from tests.edge._helpers import read_topic

        out = self.dir / "local-refused.jsonl"
        with KafkaAdminClient(data_dir=str(self.dir / "data")) as admin:
            present = LOCAL_REFUSED_TOPIC in admin.list_topics()
        with out.open("w") as f:
            for rec in read_topic(self.dir / "data", LOCAL_REFUSED_TOPIC) if present else []:
                f.write(json.dumps({
                    "t": LOCAL_REFUSED_TOPIC, "k": None if rec.key is None else rec.key.decode(
                        "utf-8", "replace"),
                    "v": None if rec.value is None else bytes(rec.value).decode("latin-1"),
                    "ts": rec.timestamp,
                    "h": {k: (v or b"").decode("utf-8", "replace") for k, v in rec.headers or []},
                }) + "\n")
        return out

    # -- the run -----------------------------------------------------------------------

    def run(self, out: Any = sys.stdout) -> dict[str, Any]:
        """Play the schedule; returns the checker's result (also in `self.dir`)."""
        p = self.profile
        print(schedule_text(self.seed, p, self.schedule), file=out, flush=True)
        load_s = load_seconds(p, self.schedule)
        self.mosquitto.start()
        try:
            self.config = self._config()
            self._create_topics()
            self._start_watcher()
            self._start_edge()
            self._start_bridge()
            wait_for(
                lambda: (
                    (h := health(self.health_port))
                    and all(d["connected"] for n, d in h["devices"].items() if n.endswith("-mqtt"))
                ),
                60,
                "the service's MQTT subscriptions",
            )
            time.sleep(1.0)  # the bridge's subscription too
            self.started_ms = int(time.time() * 1000)
            self.sampler.start()
            self._start_sims(load_s)
            self._send_idle()
            t0 = time.monotonic()
            with self.fault_log.open("w") as log:
                for f in self.schedule:
                    self._sleep(f.gap_s)
                    start = int(time.time() * 1000)
                    print(
                        f"t+{time.monotonic() - t0:6.1f}s  {f.kind} ({f.detail})",
                        file=out,
                        flush=True,
                    )
                    self._play(f)
                    log.write(
                        json.dumps(
                            {
                                "kind": f.kind,
                                "detail": f.detail,
                                "start_ms": start,
                                "end_ms": int(time.time() * 1000),
                            }
                        )
                        + "\n"
                    )
                    log.flush()
            self._sleep(p.tail_s)
            for sim in self.sims.values():
                sim.send_signal(signal.SIGTERM)  # edge-sim: a clean end after the current tick
            for name, sim in self.sims.items():
                _, err = sim.communicate(timeout=120)
                assert sim.returncode == 0, f"simulator {name} failed: {err}"
            load_s = (int(time.time() * 1000) - self.started_ms) / 1000
            self._wait_drained()
            # A GPS unit's last NMEA epoch waits in the service until it stops; the uplink
            # does not drain on SIGTERM: one more restart replicates what the stop wrote.
            self._stop_middle(signal.SIGTERM)
            self.bridge = None  # done: the bridge forwarded what it could
            self._start_edge()
            self._wait_drained()
        finally:
            self.sampler.stop()
            self._stop_all()
        self.refused_path.touch()
        self.local_refused = self._dump_local_refused()
        manifest = self._manifest(load_s)
        (self.dir / "manifest.json").write_text(json.dumps(manifest, indent=1))
        result = checker.check_run(manifest)
        result["timeline"] = self._timeline()
        result_path = Path(os.environ.get("CHAOS_RESULT") or self.dir / "result.json")
        result_path.parent.mkdir(parents=True, exist_ok=True)
        result_path.write_text(json.dumps(result, indent=1))
        print(checker.format_table(result), file=out, flush=True)
        print(f"result: {result_path}", file=out, flush=True)
        return result

    def _edge_pid(self) -> int | None:
        edge = self.edge
        return edge.pid if edge is not None and edge.poll() is None else None

    def _uplink_lag(self) -> dict[str, Any]:
        up = (health(self.health_port) or {}).get("uplink") or {}
        return {"lag_records": up.get("lag_records"), "uplink_state": up.get("state")}

    def _timeline(self) -> dict[str, Any]:
        """The service's RSS/CPU samples and arrivals upstream per window, for the page's plot
        (not the checker's: it judges losses, this shows memory and throughput over the run)."""
        window_ms = 5000
        return {
            "service": self.sampler.samples,
            "window_ms": window_ms,
            "upstream": arrivals_per_window(
                self.dir / "arrivals.jsonl",
                {"appliance": list(self.edge_topics.values()),
                 "bridge": list(self.bridge_topics.values())},
                window_ms,
            ),
        }

    def _check_watcher(self) -> None:
        # The checker's consumer dying (a missing codec, say) would read as "everything
        # lost"; say what really happened instead.
        w = self.watcher
        if w is not None and w.poll() is not None:
            tail = (self.dir / "watcher.log").read_text(errors="replace")[-2000:]
            raise AssertionError(f"the checker's upstream watcher exited {w.returncode}:\n{tail}")

    def _arrivals(self) -> int:
        self._check_watcher()
        try:
            with (self.dir / "arrivals.jsonl").open("rb") as f:
                return sum(1 for _ in f)
        except FileNotFoundError:
            return 0

    def _wait_drained(self) -> None:
        """Until the uplink reports no lag and nothing new arrives upstream for a while."""
        deadline = time.monotonic() + self.profile.drain_timeout_s
        seen, quiet_since = -1, time.monotonic()
        while time.monotonic() < deadline:
            n = self._arrivals()
            if n != seen:
                seen, quiet_since = n, time.monotonic()
            up = (health(self.health_port) or {}).get("uplink") or {}
            lag = up.get("lag_records", up.get("lag"))
            idle = isinstance(lag, int | float) and lag == 0
            if time.monotonic() - quiet_since > (3 if idle else 10):
                return
            self._sleep(0.5)

    def _stop_all(self) -> None:
        for proc in (self.edge, self.bridge, self.watcher):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        for sim in self.sims.values():
            if sim.poll() is None:
                sim.kill()
                sim.communicate()
        self.mosquitto.stop()

    def _manifest(self, load_s: float) -> dict[str, Any]:
        d = self.dir
        sources = [
            {"name": dev, "truth": str(d / f"truth-{dev}.jsonl"), "transport": "serial"}
            for dev, *_ in SERIAL
        ]
        for name in MQTT_SIMS:
            sources.append(
                {
                    "name": name,
                    "truth": str(d / f"truth-{name}.jsonl"),
                    "acks": str(d / f"acks-{name}.txt"),
                    "transport": "mqtt",
                    # OwnTracks names devices <user>/<device>; the sim's user is "sim".
                    "key_prefix": {"gps": "mq-sim/", "*": "mq-"},
                }
            )
        return {
            "seed": self.seed,
            "profile": self.profile.name,
            "duration_s": round(load_s),
            "started_ms": self.started_ms,
            "crashes": self.crashes,
            "second_uplinks": self.second_uplinks,
            "arrivals": str(d / "arrivals.jsonl"),
            "faults": str(self.fault_log),
            "sources": sources,
            "systems": [
                {
                    "name": "appliance",
                    "mode": "edge",
                    "sources": [s["name"] for s in sources],
                    "topics": {**self.edge_topics, **self.stream_topics},
                    "drop_ledger_topic": self.ledger_topic,
                    "refused": str(self.refused_path),
                    "idle_topic": {"topic": self.edge_topics[IDLE_TOPIC], "sent": IDLE_READINGS},
                    "local_dead_letters": str(self.local_refused),
                },
                *(
                    [
                        {
                            "name": "stream gps.track",
                            "mode": "derived",
                            "sources": [s["name"] for s in sources],
                            "topics": {self.stream_topics["gps.track"]: "gps"},
                        }
                    ]
                    if self.stream_topics
                    else []
                ),
                {
                    "name": "MQTT→Kafka bridge",
                    "mode": "bridge",
                    "sources": list(MQTT_SIMS),
                    "topics": list(self.bridge_topics.values()),
                    "faults": list(BRIDGE_FAULTS),
                    "key_prefix": "mq-",
                },
            ],
        }


def _snapshot(data_dir: Path, topic: str) -> list[Any]:
    """The records of a local topic up to its end offsets now (the service keeps writing:
    a consumer that stops after a quiet spell would never stop)."""
    from broker import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(data_dir=str(data_dir), auto_offset_reset="earliest")
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(parts)
        end = consumer.end_offsets(parts)
        out: list[Any] = []
        while any(consumer.position(tp) < end[tp] for tp in parts):
            for recs in consumer.poll(timeout_ms=200, max_records=1000).values():
                out += [r for r in recs if r.offset < end[TopicPartition(r.topic, r.partition)]]
        return out
    finally:
        consumer.close()


def _kind_of(device: str) -> str:
    return {"car": "gps", "room": "temperature", "bed": "blood_pressure"}[device.split("-")[0]]
