"""The listener's core against real clients and raw bytes: ApiVersions, Metadata, framing."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from kafka import KafkaAdminClient

import broker
from broker import ConfigError
from broker.wire import ListenerConfig, default_registry

from ._server import ThreadedListener, raw_request, read_frame

REPO = Path(__file__).resolve().parents[2]


def test_kafka_python_admin_sees_the_box_as_one_broker(listener: ThreadedListener) -> None:
    broker.KafkaAdminClient(listener.data_dir).create_topics([broker.NewTopic("bankbranch", 2, 1)])
    admin = KafkaAdminClient(bootstrap_servers=listener.bootstrap, client_id="lab")
    try:
        assert admin.list_topics() == ["bankbranch"]
        cluster = admin.describe_cluster()
        assert cluster["brokers"] == [{"node_id": 0, "host": "127.0.0.1", "port": listener.port, "rack": None}]
        assert cluster["controller_id"] == 0
        (topic,) = admin.describe_topics(["bankbranch"])
        assert topic["error_code"] == 0
        assert [(p["partition"], p["leader"], p["replicas"]) for p in topic["partitions"]] == [
            (0, 0, [0]), (1, 0, [0])]
    finally:
        admin.close()
    m = listener.metrics()
    assert m["requests"]["Metadata"] >= 1 and m["requests"]["ApiVersions"] >= 1


def test_api_versions_answers_exactly_what_is_registered(listener: ThreadedListener) -> None:
    resp = raw_request(listener.port, 18, 0)
    assert resp is not None
    corr, code, n = struct.unpack_from(">ihi", resp, 0)
    assert (corr, code) == (7, 0)
    served = {struct.unpack_from(">hhh", resp, 10 + 6 * i) for i in range(n)}
    assert served == {(a.api_key, a.min_version, a.max_version) for a in default_registry().apis()}


def test_api_versions_too_new_is_answered_at_v0_with_unsupported_version(listener: ThreadedListener) -> None:
    resp = raw_request(listener.port, 18, 99, flexible=True)
    assert resp is not None
    corr, code, n = struct.unpack_from(">ihi", resp, 0)
    assert (corr, code) == (7, 35)  # UNSUPPORTED_VERSION
    assert (18, 0, 3) in {struct.unpack_from(">hhh", resp, 10 + 6 * i) for i in range(n)}


@pytest.mark.parametrize("api_key, version", [(9999, 0), (3, 99)], ids=["unknown-key", "unknown-version"])
def test_an_api_not_served_closes_the_connection_with_a_log_line(
        listener: ThreadedListener, caplog: pytest.LogCaptureFixture, api_key: int, version: int) -> None:
    assert raw_request(listener.port, api_key, version) is None
    assert "not served here" in caplog.text or "served at versions" in caplog.text
    # and the listener still serves others
    assert raw_request(listener.port, 18, 0) is not None


def test_an_oversize_request_closes_the_connection_before_it_is_read(tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    with ThreadedListener(tmp_path / "log", max_request_bytes=4096) as srv:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
            s.sendall(struct.pack(">i", 1 << 30) + b"x" * 10)
            assert read_frame(s) is None
        assert "larger than max_request_bytes=4096" in caplog.text
        assert srv.metrics()["errors"]["oversize"] == 1


def test_a_truncated_body_closes_the_connection(listener: ThreadedListener) -> None:
    # Metadata v1 with a topic array claiming 5 topics and holding none
    assert raw_request(listener.port, 3, 1, struct.pack(">i", 5)) is None
    assert listener.metrics()["errors"]["malformed"] == 1


def test_a_client_sending_one_byte_and_nothing_more_is_closed(tmp_path: Path) -> None:
    with ThreadedListener(tmp_path / "log", request_timeout_s=0.3, idle_timeout_s=60) as srv:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
            s.sendall(b"\x00")
            assert read_frame(s) is None  # closed by the server after request_timeout_s
        assert srv.metrics()["errors"]["request_timeout"] == 1


def test_an_idle_connection_is_closed(tmp_path: Path) -> None:
    with ThreadedListener(tmp_path / "log", idle_timeout_s=0.3) as srv:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
            assert read_frame(s) is None
        assert srv.metrics()["errors"]["idle_timeout"] == 1


def test_binding_beyond_loopback_without_authentication_is_refused() -> None:
    with pytest.raises(ConfigError, match="not a loopback address, and no authentication"):
        ListenerConfig(host="0.0.0.0")
    ListenerConfig(host="localhost")
    ListenerConfig(host="::1")


def test_edge_broker_serve_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-m", "broker", "serve", "--data-dir", str(tmp_path / "log"), "--listen", "127.0.0.1:0"],
        stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert "listening on 127.0.0.1:" in line, line
        port = int(line.split("listening on 127.0.0.1:")[1].split()[0])
        admin = KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{port}")
        try:
            assert admin.list_topics() == []
        finally:
            admin.close()
    finally:
        proc.terminate()
        assert proc.wait(20) == 0
        if proc.stderr is not None:
            proc.stderr.close()


def test_edge_broker_serve_refuses_a_public_address_and_says_why(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run(
        [sys.executable, "-m", "broker", "serve", "--data-dir", str(tmp_path / "log"), "--listen", "0.0.0.0:0"],
        capture_output=True, text=True, env=env, timeout=30)
    assert out.returncode == 1
    assert "not a loopback address, and no authentication is configured" in out.stderr
