"""The uplink when its network to the cluster is cut and restored (a TcpProxy before each broker).

The first tests check the proxy itself against an echo server, sync and async, so a
failure of the uplink test below cannot be a proxy that never cut anything.
"""

from __future__ import annotations

import asyncio
import socket
import threading

import pytest

from edge.uplink import Uplink, UplinkConfig, UplinkState
from tests.fixtures.tcp_proxy import TcpProxy

from ._uplink_helpers import (
    check_exactly_once,
    create_local_topics,
    produce_local,
    read_upstream,
    unique,
    wait_for,
)


@pytest.fixture
def echo_port():
    """A threaded TCP echo server on loopback; its port."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)  # close() does not wake a blocked accept(): poll the stop flag
    stop = threading.Event()

    def serve_one(conn: socket.socket) -> None:
        with conn:
            try:
                while data := conn.recv(4096):
                    conn.sendall(data)
            except OSError:
                pass  # the proxy reset us: that is what the tests do

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            threading.Thread(target=serve_one, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    server.close()
    thread.join(5)


def _echo(sock: socket.socket, payload: bytes) -> bytes:
    sock.sendall(payload)
    return sock.recv(len(payload))


def _connect_then_echo(port: int, payload: bytes) -> bytes:
    """Connect and echo once, closing the socket whatever happens."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        return _echo(sock, payload)


def test_proxy_forwards_then_drop_resets_live_and_new_connections(tcp_proxy, echo_port):
    proxy = tcp_proxy("127.0.0.1", echo_port)
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as live:
        assert _echo(live, b"ping") == b"ping"
        proxy.cut()
        assert proxy.is_cut
        with pytest.raises(ConnectionError):
            _echo(live, b"again") or _echo(live, b"again")   # reset, or EOF then reset
    # A new connection is reset as soon as the proxy accepts it; on loopback the RST can
    # even arrive before connect() returns, so the error may come from connect itself.
    with pytest.raises(ConnectionError):
        if not _connect_then_echo(proxy.port, b"x"):
            raise ConnectionResetError("closed")
    proxy.restore()
    assert _connect_then_echo(proxy.port, b"back") == b"back"
    assert proxy.connections_total == 3


def test_proxy_blackhole_is_silent_until_restore_resets(tcp_proxy, echo_port):
    proxy = tcp_proxy("127.0.0.1", echo_port)
    live = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    assert _echo(live, b"ping") == b"ping"
    proxy.cut("blackhole")
    live.settimeout(0.5)
    with pytest.raises(TimeoutError):
        _echo(live, b"lost")
    fresh = socket.create_connection(("127.0.0.1", proxy.port), timeout=0.5)  # accepted...
    with pytest.raises(TimeoutError):
        _echo(fresh, b"void")                                                # ...and silent
    proxy.restore()
    live.settimeout(5)
    with pytest.raises(ConnectionError):
        if not live.recv(10):
            raise ConnectionResetError("closed")
    with pytest.raises(ValueError, match="cut mode"):
        proxy.cut("unplug")
    live.close()
    fresh.close()


async def test_proxy_works_from_an_async_test():
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(4096):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass  # the proxy reset us: that is what the test does
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    with TcpProxy("127.0.0.1", server.sockets[0].getsockname()[1]) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"hello")
        assert await reader.readexactly(5) == b"hello"
        proxy.cut()
        with pytest.raises(ConnectionError):   # the reset reaches our loop
            if not await reader.read(10):
                raise ConnectionResetError("closed")
        writer.close()
    server.close()
    await server.wait_closed()


@pytest.mark.parametrize("mode", ["drop", "blackhole"])
async def test_network_cut_then_restored_every_record_arrives_once(tmp_path, kafka_cluster_proxied,
                                                                   mode):
    net = kafka_cluster_proxied
    data = tmp_path / "log"
    t = unique(f"cut-{mode}")
    create_local_topics(data, {t: 2})
    produce_local(data, t, 500, keys=13)
    cfg = UplinkConfig(edge_id=unique("edge"), bootstrap_servers=net.bootstrap_servers,
                       data_dir=data, topics={t: "up." + t}, request_timeout_s=3,
                       backoff_initial_s=0.2, backoff_max_s=1.0, batch_records=200)
    async with Uplink(cfg) as uplink:
        await wait_for(lambda: uplink.status().records_total >= 500, 60, "first records", uplink)
        used = net.connections_total
        assert used > 0, "the uplink did not connect through the proxies"
        net.cut(mode)
        await asyncio.to_thread(produce_local, data, t, 1500, keys=13, start=500)
        await wait_for(lambda: uplink.state == UplinkState.OFFLINE, 30, "offline", uplink)
        before = uplink.status().records_total
        await asyncio.sleep(2.0)   # reconnects fail while the link is cut
        status = uplink.status()
        assert status.state == UplinkState.OFFLINE and status.last_error
        assert status.lag_records > 0
        assert status.records_total == before < 2000
        net.restore()
        await wait_for(lambda: uplink.state == UplinkState.ONLINE
                       and uplink.status().lag_records == 0, 60, "drained after restore", uplink)
        assert uplink.status().states_seen[-3:] == [UplinkState.ONLINE, UplinkState.OFFLINE,
                                                    UplinkState.ONLINE]
        assert net.connections_total > used   # it came back through the proxies
    got = await read_upstream(net.direct_bootstrap_servers, ["up." + t], 2000)
    check_exactly_once(got, {t: 2000})
