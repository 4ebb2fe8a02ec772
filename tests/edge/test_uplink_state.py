"""The uplink's state, lag and errors tell the truth, soon (issue #11, 5)."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys

import pytest

from edge.uplink import Uplink, UplinkConfig, UplinkConfigError, UplinkState

from ._uplink_helpers import create_local_topics, produce_local, unique, wait_for


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_a_cluster_gone_away_is_noticed_without_waiting_for_requests(
        tmp_path, kafka_cluster_proxied, caplog):
    """An idle uplink whose cluster vanishes: a request timeout of minutes must not keep it
    'online' (the probe notices); one line per state change, no aiokafka error per failed
    request; back online, the last error is cleared."""
    caplog.set_level(logging.INFO)
    data = tmp_path / "log"
    t = unique("probe")
    create_local_topics(data, {t: 1})
    produce_local(data, t, 20, keys=2)
    cfg = UplinkConfig(edge_id=unique("edge"), bootstrap_servers=kafka_cluster_proxied.bootstrap_servers,
                       data_dir=data, topics={t: "up." + t}, request_timeout_s=300,
                       backoff_initial_s=0.2, backoff_max_s=1)
    async with Uplink(cfg) as uplink:
        await wait_for(lambda: uplink.status().records_total >= 20 and uplink.status().lag_records == 0
                       and uplink.status().lag, 60, "replication", uplink)
        caplog.clear()
        kafka_cluster_proxied.cut("drop")
        try:
            await wait_for(lambda: uplink.state == UplinkState.OFFLINE, 60, "offline", uplink)
            assert uplink.status().last_error
            await asyncio.sleep(3)   # a few reconnects fail meanwhile
        finally:
            kafka_cluster_proxied.restore()
        offline = [r for r in caplog.records if r.name == "edge.uplink"]
        await wait_for(lambda: uplink.state == UplinkState.ONLINE, 60, "online again", uplink)
        assert uplink.status().last_error is None
    noisy = [r.getMessage() for r in caplog.records
             if r.name.startswith("aiokafka") and r.levelno >= logging.WARNING]
    assert not noisy, noisy[:5]
    assert sum("-> offline" in r.getMessage() for r in offline) == 1
    assert len(offline) <= 4, [r.getMessage() for r in offline]


async def test_lag_before_the_first_connect_is_what_was_not_replicated(tmp_path, kafka_cluster):
    data = tmp_path / "log"
    t = unique("lag")
    create_local_topics(data, {t: 2})
    produce_local(data, t, 300, keys=5)
    cfg = UplinkConfig(edge_id=unique("edge"), bootstrap_servers=kafka_cluster.bootstrap_servers,
                       data_dir=data, topics={t: "up." + t})
    async with Uplink(cfg) as uplink:
        await wait_for(lambda: uplink.status().records_total >= 300, 60, "replication", uplink)
    produce_local(data, t, 50, keys=5, start=300)
    away = UplinkConfig(edge_id=cfg.edge_id, bootstrap_servers=f"127.0.0.1:{_closed_port()}",
                        data_dir=data, topics={t: "up." + t}, request_timeout_s=2)
    async with Uplink(away) as uplink:
        await wait_for(lambda: uplink.status().lag, 30, "a lag report", uplink)
        assert uplink.status().lag_records == 50   # not the 350 of the whole log


@pytest.fixture
async def silent_port():
    """A listener that accepts connections and never says a word."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    for w in held:
        w.close()
    server.close()
    await server.wait_closed()


async def _error_for(tmp_path, servers: str, **kw) -> str:
    data = tmp_path / "log"
    create_local_topics(data, {"t": 1})
    cfg = UplinkConfig(edge_id=unique("edge"), bootstrap_servers=servers, data_dir=data,
                       topics={"t": "up.t"}, request_timeout_s=1, **kw)
    async with Uplink(cfg) as uplink:
        await wait_for(lambda: uplink.status().last_error, 30, "an error", uplink)
        assert uplink.state == UplinkState.OFFLINE
        return uplink.status().last_error


async def test_a_listener_that_never_answers_is_named(tmp_path, silent_port):
    error = await _error_for(tmp_path, f"127.0.0.1:{silent_port}")
    assert f"no answer from 127.0.0.1:{silent_port} within 1 s" in error, error


async def test_a_controller_port_is_named(tmp_path, kafka_cluster):
    port = kafka_cluster.brokers[0].ports.controller
    error = await _error_for(tmp_path, f"127.0.0.1:{port}")
    assert "KRaft controller port" in error and "bootstrap_servers" in error, error


async def test_plaintext_to_a_sasl_listener_is_named(tmp_path, kafka_cluster_secured):
    error = await _error_for(tmp_path, kafka_cluster_secured.sasl_plaintext_servers)
    assert "expects SASL" in error and "security_protocol" in error, error


async def test_a_data_dir_without_a_log_is_an_error_not_an_empty_log(tmp_path):
    missing = tmp_path / "no-such-dir"
    cfg = UplinkConfig(edge_id="e1", bootstrap_servers="127.0.0.1:9", data_dir=missing,
                       topics={"t": "up.t"})
    with pytest.raises(UplinkConfigError, match=r"data_dir.*no such directory") as err:
        await Uplink(cfg).run()
    assert err.value.key == "data_dir"
    assert not missing.exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(UplinkConfigError, match=r"data_dir.*an empty directory"):
        await Uplink(UplinkConfig(edge_id="e1", bootstrap_servers="127.0.0.1:9",
                                  data_dir=tmp_path / "empty", topics={"t": "up.t"})).run()
    with pytest.raises(UplinkConfigError, match="at least one local topic"):
        UplinkConfig(edge_id="e1", bootstrap_servers="127.0.0.1:9", data_dir=tmp_path, topics={})


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    return subprocess.run([sys.executable, "-m", "edge.uplink", "--edge-id", "e1",
                           "--bootstrap-servers", "127.0.0.1:9", *args],
                          capture_output=True, text=True, timeout=60, env=env)


def test_the_cli_refuses_no_topic_a_mistyped_topic_and_a_missing_data_dir(tmp_path):
    data = tmp_path / "log"
    create_local_topics(data, {"readings": 1, "alarms": 1})
    none = _cli("--data-dir", str(data))
    assert none.returncode == 2 and "--topic: expected at least one LOCAL=UPSTREAM" in none.stderr
    typo = _cli("--data-dir", str(data), "--topic", "readngs=up.readings")
    assert typo.returncode == 2, typo.stderr
    assert "readngs" in typo.stderr and "alarms, readings" in typo.stderr, typo.stderr
    gone = _cli("--data-dir", str(tmp_path / "nope"), "--topic", "readings=up.readings")
    assert gone.returncode == 2 and "data_dir" in gone.stderr and "no such directory" in gone.stderr
    assert not (tmp_path / "nope").exists()


async def test_a_missing_local_topic_is_reported(tmp_path, kafka_cluster):
    data = tmp_path / "log"
    create_local_topics(data, {"readings": 1})
    cfg = UplinkConfig(edge_id=unique("edge"), bootstrap_servers=kafka_cluster.bootstrap_servers,
                       data_dir=data, topics={"readngs": unique("up")})
    async with Uplink(cfg) as uplink:
        await wait_for(lambda: uplink.status().missing_topics, 30, "the missing topic", uplink)
        status = uplink.status()
        assert status.missing_topics == ["readngs"]
