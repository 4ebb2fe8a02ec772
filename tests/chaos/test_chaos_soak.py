"""The chaos soak: the whole appliance under a seeded fault schedule, beside an MQTT → Kafka
bridge under the same schedule, checked by an independent checker (tests/chaos/checker.py).

Short profile (default run, a few minutes): every fault kind once. Long profile (an hour,
``-m soak``): sixty shuffled rounds. ``CHAOS_SEED`` replays a run's schedule (the seed is
printed first), ``CHAOS_RESULT`` names the JSON result file the results page reads.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from tests.chaos._soak import PROFILES, Soak


def _seed() -> int:
    return int(os.environ.get("CHAOS_SEED") or random.SystemRandom().randrange(1, 1_000_000))


def _assert_appliance(result: dict) -> None:
    edge, bridge = result["systems"]
    assert edge["emitted"] > 0 and edge["arrived"] > 0
    assert edge["lost_acked"] == 0, "acknowledged readings lost"
    assert edge["uplink_duplicates"] == 0, "the uplink wrote a local record twice"
    assert edge["order_violations"] == 0, "per-key order broken upstream"
    assert edge["unledgered_gaps"] == 0, "local records missing upstream without a ledger entry"
    assert edge["unknown_upstream"] == 0, "upstream records that no device sent"
    assert edge["lost_unacked_mqtt"] == 0, "MQTT readings the simulator never got acked"
    # The quota fault filled the log with unreplicated records: dropped, and said so.
    assert edge["ledger_dropped_unreplicated"] > 0
    # Serial bytes in flight when the service died or a port closed: bounded by what one
    # pty holds (4 KiB) per device and restart; the smallest frame is ~30 bytes.
    restarts = sum(f["kind"] in ("service-sigkill", "service-sigterm") for f in result["faults"])
    assert edge["lost_unacked_serial"] <= (restarts + 1) * 3 * (4096 // 30)
    # Duplicates come only from Mosquitto redelivering what a SIGKILLed service had stored
    # but not yet PUBACKed: at most Mosquitto's in-flight window (20) per subscription.
    kills = sum(f["kind"] == "service-sigkill" for f in result["faults"])
    assert edge["duplicates"] <= kills * 3 * 20
    for d in edge["drain_s"]:
        assert not d["applies"] or d["readings"] == 0 or d["drain_s"] is not None, d
    # The bridge's numbers are computed (it is expected to lose or duplicate).
    assert bridge["emitted"] > 0 and bridge["arrived"] > 0
    assert bridge["lost_acked"] is not None and bridge["duplicates"] is not None


@pytest.mark.timeout(290)
def test_chaos_short(tmp_path: Path, kafka_cluster3_proxied, capsys) -> None:  # type: ignore[no-untyped-def]
    result = Soak(tmp_path, kafka_cluster3_proxied, _seed(), PROFILES["short"]).run()
    _assert_appliance(result)


@pytest.mark.soak
@pytest.mark.timeout(2 * 3600)
def test_chaos_long(tmp_path: Path, kafka_cluster3_proxied) -> None:  # type: ignore[no-untyped-def]
    result = Soak(tmp_path, kafka_cluster3_proxied, _seed(), PROFILES["long"]).run()
    _assert_appliance(result)
