"""Where the console listens: with /health by default, on its own address when given one
(the [health] address then serves /health and /metrics only), over TLS when configured."""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path

import aiohttp
import pytest

from edge.console import Console, HttpServer
from tests.console._helpers import LogOnlySource, config, log_config
from tests.edge._helpers import health, start_edge, stop_edge, wait_for, write_config
from tests.fixtures.mosquitto import free_port

pytestmark = pytest.mark.timeout(60)


async def status(url: str, **kw: object) -> int:
    async with aiohttp.ClientSession() as s, s.get(url, **kw) as r:  # type: ignore[arg-type]
        return r.status


async def test_the_console_on_its_own_address(tmp_path: Path) -> None:
    own = free_port()
    cfg, port = write_config(tmp_path, "", extra=f'[console]\naddress = "127.0.0.1:{own}"\n')
    edge_log = tmp_path / "edge.log"
    edge = start_edge(cfg, edge_log)
    try:
        wait_for(lambda: health(port), 30, "/health")
        assert await status(f"http://127.0.0.1:{own}/api/overview") == 200
        assert await status(f"http://127.0.0.1:{own}/health") == 200
        assert await status(f"http://127.0.0.1:{port}/api/overview") == 404
        assert await status(f"http://127.0.0.1:{port}/metrics") == 200
    finally:
        assert stop_edge(edge, edge_log) == 0, edge_log.read_text()


async def test_switched_off_only_health_is_served(tmp_path: Path) -> None:
    cfg, port = write_config(tmp_path, "", extra="[console]\nenabled = false\n")
    edge_log = tmp_path / "edge.log"
    edge = start_edge(cfg, edge_log)
    try:
        wait_for(lambda: health(port), 30, "/health")
        assert await status(f"http://127.0.0.1:{port}/") == 404
    finally:
        assert stop_edge(edge, edge_log) == 0, edge_log.read_text()


def self_signed(tmp: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp / "console.pem", tmp / "console.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


async def test_tls_when_configured(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    cfg = config(tmp_path)
    console = Console(LogOnlySource(cfg), log_config(cfg), lambda: None)
    server = HttpServer(console, "127.0.0.1", 0, whole=True, tls=(str(cert), str(key)))
    await console.start()
    await server.start()
    try:
        trust = ssl.create_default_context(cafile=str(cert))
        assert await status(f"https://localhost:{server.port}/api/overview", ssl=trust) == 200
        with pytest.raises(aiohttp.ClientError):
            await status(f"http://localhost:{server.port}/api/overview")
    finally:
        await console.close()
        await server.close()
