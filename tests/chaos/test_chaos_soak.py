"""The chaos soak: the whole appliance under a seeded fault schedule, beside an MQTT → Kafka
bridge under the same schedule, checked by an independent checker (tests/chaos/checker.py).

Short profile (default run, a few minutes): every fault kind once. Long profile (an hour,
``-m soak``): eighteen shuffled rounds. ``CHAOS_SEED`` replays a run's schedule (the seed is
printed first), ``CHAOS_RESULT`` names the JSON result file the results page reads.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from tests.chaos._soak import Profile, Soak, profile_from_env
from tests.fixtures.kafka import ProxiedCluster


def _seed() -> int:
    return int(os.environ.get("CHAOS_SEED") or random.SystemRandom().randrange(1, 1_000_000))


def _assert_appliance(result: dict, profile: Profile) -> None:
    edge, stream, bridge = result["systems"]
    assert edge["emitted"] > 0 and edge["arrived"] > 0
    assert result["crashes"]["appliance"] == 0, "the service exited on its own"
    assert edge["lost_acked"] == 0, "acknowledged readings lost"
    assert edge["uplink_duplicates"] == 0, "the uplink wrote a local record twice"
    assert edge["order_violations"] == 0, "per-key order broken upstream"
    assert edge["unledgered_gaps"] == 0, "local records missing upstream without a ledger entry"
    assert edge["unknown_upstream"] == 0, "upstream records that no device sent"
    assert edge["lost_unacked_mqtt"] == 0, "MQTT readings the simulator never got acked"
    # The quota fault filled the log with unreplicated records: dropped, and said so.
    assert edge["ledger_dropped_unreplicated"] > 0
    # Serial readings are lost only while nobody could read them: the service down (a pty
    # keeps ~4 KiB for a reader that comes back, pyserial's open discards it) or the port
    # unplugged; never at other times, and never more than were sent in those windows.
    assert edge["serial_lost_outside_windows"] == 0
    window_s = sum(
        (f["end_ms"] - f["start_ms"]) / 1000 + 10
        for f in result["faults"]
        if f["kind"] in ("service-sigkill", "service-sigterm", "serial-unplug")
    )
    assert edge["lost_unacked_serial"] <= window_s * profile.serial_rate * 3
    # Exactly once end to end: a DUP redelivery of what the service had stored but not
    # PUBACKed (a SIGKILL, a broker restart) is acknowledged, not stored again, and a
    # publisher's resend after a Mosquitto restart is dropped by every MQTT device's
    # dedupe_window (see _soak.DEDUPE_WINDOW_S).
    assert edge["duplicates"] == 0, "a reading twice upstream"
    for d in edge["drain_s"]:
        assert not d["applies"] or d["readings"] == 0 or d["drain_s"] is not None, d
    # Hostile frames (edge-sim --hostile on every simulator): each a dead letter upstream,
    # but those sent to a serial port nobody was reading, or dropped under the quota.
    assert edge["hostile_sent"] > 0
    assert edge["hostile_missing"] <= edge["dead_letters_dropped_by_quota"], (
        "hostile frames neither dead letters upstream nor explained: "
        f"{edge['hostile_missing_frames']}"
    )
    # Records the cluster refuses (a time beyond the topic's message.timestamp.after.max.ms):
    # never upstream, named in the drop ledger, kept in the local topic for them.
    refused = any(f["kind"] == "refused-record" for f in result["faults"])
    if refused:
        assert edge["refused_sent"] > 0
        assert edge["refused_upstream"] == 0, "a record the cluster refuses went upstream"
        # Each named as refused, or dropped under the quota before the uplink got to it.
        assert edge["refused_in_ledger"] + edge["refused_dropped_by_quota"] == edge[
            "refused_sent"
        ], "refused records the drop ledger does not account for"
        assert (
            edge["refused_in_local_dead_letters"] + edge["refused_local_copies_dropped"]
            >= edge["refused_in_ledger"]
        ), "refused records not kept in the local topic for them"
    # The idle topic's records, once each, through every restart (or dropped under the quota
    # before the uplink replicated them, and named by the ledger).
    assert edge["idle_topic_sent"] > 0
    assert edge["idle_topic_upstream"] + edge["idle_topic_dropped"] == edge["idle_topic_sent"]
    # A second uplink on the service's log (each delivery mode) is refused by the log's
    # uplink lock (exit 75, EX_TEMPFAIL), and the checker's 0 uplink duplicates, 0 order
    # violations and 0 acknowledged lost above hold through it.
    assert len(result["second_uplinks"]) == sum(
        f["kind"].startswith("second-uplink") for f in result["faults"]
    )
    for u in result["second_uplinks"]:
        assert u["exit"] == 75, f"a second uplink on the same log was not refused: {u}"
    # The stream processor (gps_track) wrote each fix it read once, in order, through
    # every crash
    assert stream["arrived"] > 0
    # (a reading the log holds twice is processed twice: no more duplicates than that)
    assert stream["duplicates"] <= edge["duplicates"] and stream["order_violations"] == 0
    assert stream["unknown_upstream"] == 0
    # The bridge's numbers are computed (it is expected to lose or duplicate).
    assert bridge["emitted"] > 0 and bridge["arrived"] > 0
    assert bridge["lost_acked"] is not None and bridge["duplicates"] is not None


@pytest.mark.mqtt
@pytest.mark.timeout(290)
def test_chaos_short(tmp_path: Path, kafka_cluster3_proxied: ProxiedCluster) -> None:
    profile = profile_from_env("short")
    _assert_appliance(Soak(tmp_path, kafka_cluster3_proxied, _seed(), profile).run(), profile)


@pytest.mark.soak
@pytest.mark.mqtt
@pytest.mark.timeout(2 * 3600)
def test_chaos_long(tmp_path: Path, kafka_cluster3_proxied: ProxiedCluster) -> None:
    profile = profile_from_env("long")
    _assert_appliance(Soak(tmp_path, kafka_cluster3_proxied, _seed(), profile).run(), profile)
