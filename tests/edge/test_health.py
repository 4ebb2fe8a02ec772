"""/health and /metrics of `edge run` reflect an offline uplink; bad config exits non-zero."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest

from tests.edge._helpers import health, start_edge, stop_edge, wait_for, write_config
from tests.fixtures.mosquitto import free_port

pytestmark = pytest.mark.timeout(60)


def test_offline_uplink_is_reported_and_shutdown_is_clean(tmp_path: Path) -> None:
    dead = free_port()  # nothing listens there
    config, port = write_config(tmp_path, "", extra=f'[upstream]\nbootstrap_servers = "127.0.0.1:{dead}"\n')
    edge_log = tmp_path / "edge.log"
    edge = start_edge(config, edge_log)
    try:
        h = wait_for(lambda: (x := health(port)) and x["uplink"]["state"] == "offline" and x,
                     30, "the uplink to report offline")
        assert h["ok"] is False and h["log"]["ok"] is True
        # The uplink says why it cannot connect, naming the address and the setting.
        assert f"nothing listens at 127.0.0.1:{dead}" in h["uplink"]["last_error"]
        assert "bootstrap_servers" in h["uplink"]["last_error"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            assert "edge_uplink_up 0.0" in r.read().decode()
    finally:
        rc = stop_edge(edge, edge_log)
    text = edge_log.read_text()
    assert rc == 0, text
    assert "stopped cleanly" in text and "ERROR aiokafka" not in text


def test_unknown_path_is_404(tmp_path: Path) -> None:
    config, port = write_config(tmp_path, "")
    edge_log = tmp_path / "edge.log"
    edge = start_edge(config, edge_log)
    try:
        h = wait_for(lambda: health(port), 30, "health")
        assert h["ok"] is True and h["devices"] == {} and h["uplink"] is None
        import urllib.error

        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/nope", timeout=2)
        assert info.value.code == 404
        info.value.close()
    finally:
        assert stop_edge(edge, edge_log) == 0
