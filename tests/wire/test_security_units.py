"""SASL exchanges and the TLS context of the listener, without a listener (broker/wire/_sasl.py,
_tls.py). SCRAM is checked against scramp's own client, PLAIN against RFC 4616 tokens."""

import socket
import ssl
import threading

import pytest
from scramp import ScramClient

from broker import ConfigError
from broker.wire import ListenerConfig
from broker.wire._sasl import (
    AuthenticationFailed,
    SaslServer,
    SaslSettings,
    users_from_env,
)
from broker.wire._sasl_api import ListenerSecurity, listener_security
from broker.wire._tls import TlsSettings, server_context
from tests.fixtures.kafka import make_tls_files

USERS = {"alice": "s3cret-pw", "bob": "other-pw"}


@pytest.fixture(scope="module")
def server():
    return SaslServer(SaslSettings(users=USERS))


def test_plain_admits_the_right_password_only(server):
    ex = server.start("PLAIN")
    assert ex.step(b"\0alice\0s3cret-pw") == b"" and ex.done and ex.user == "alice"
    for token in (b"\0alice\0wrong", b"\0nobody\0s3cret-pw", b"bob\0alice\0s3cret-pw"):
        with pytest.raises(AuthenticationFailed, match="invalid username or password"):
            server.start("PLAIN").step(token)
    with pytest.raises(AuthenticationFailed, match="malformed PLAIN"):
        server.start("PLAIN").step(b"alice:s3cret-pw")


@pytest.mark.parametrize("mech", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_scram_admits_the_right_password_and_proves_itself(server, mech):
    client = ScramClient([mech], "bob", "other-pw")
    ex = server.start(mech)
    client.set_server_first(ex.step(client.get_client_first().encode()).decode())
    final = ex.step(client.get_client_final().encode()).decode()
    client.set_server_final(final)  # raises unless the server knew the credentials
    assert ex.done and ex.user == "bob"


@pytest.mark.parametrize("user, password", [("bob", "wrong"), ("nobody", "other-pw")])
def test_scram_refuses_a_wrong_password_or_user(server, user, password):
    client = ScramClient(["SCRAM-SHA-256"], user, password)
    ex = server.start("SCRAM-SHA-256")
    with pytest.raises(AuthenticationFailed, match="invalid username or password") as info:
        client.set_server_first(ex.step(client.get_client_first().encode()).decode())
        ex.step(client.get_client_final().encode())
    assert password not in str(info.value) and not ex.done


def test_unserved_mechanisms_and_bad_settings():
    server = SaslServer(SaslSettings(mechanisms=("SCRAM-SHA-512",), users=USERS))
    assert server.start("PLAIN") is None and server.start("GSSAPI") is None
    with pytest.raises(ConfigError, match="'GSSAPI' is not served"):
        SaslSettings(mechanisms=("GSSAPI",), users=USERS)
    with pytest.raises(ConfigError, match="no users"):
        SaslSettings()
    assert "s3cret" not in repr(SaslSettings(users=USERS))


def test_users_come_from_the_environment_and_a_bad_entry_is_named_not_shown():
    assert users_from_env({"EDGE_KAFKA_SASL_USERS": "alice:a:b, bob:pw"}) == {"alice": "a:b", "bob": "pw"}
    assert users_from_env({}) == {}
    with pytest.raises(ConfigError, match="entry 2: expected user:password") as info:
        users_from_env({"EDGE_KAFKA_SASL_USERS": "alice:x,secretword"})
    assert "secretword" not in str(info.value)


def test_only_loopback_may_be_served_without_authentication(tls_files):
    d = tls_files.ca_cert.parent
    for host in ("127.0.0.1", "::1", "localhost"):
        ListenerConfig(host, 0)
    with pytest.raises(ConfigError, match="not a loopback address, and no authentication"):
        ListenerConfig("0.0.0.0", 0)
    with pytest.raises(ConfigError, match="no authentication"):  # TLS alone proves no client
        ListenerConfig("0.0.0.0", 0, security=ListenerSecurity(tls=TlsSettings(d / "broker.pem", d / "broker.key")))
    ListenerConfig("0.0.0.0", 0, security=ListenerSecurity(SaslSettings(users=USERS)))
    ListenerConfig("0.0.0.0", 0, security=ListenerSecurity(
        tls=TlsSettings(d / "broker.pem", d / "broker.key", cafile=tls_files.ca_cert)))


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    return make_tls_files(tmp_path_factory.mktemp("tls"))


def test_tls_context_serves_a_client_that_trusts_the_ca(tls_files):
    d = tls_files.ca_cert.parent
    ctx = server_context(TlsSettings(d / "broker.pem", d / "broker.key"))
    listener = socket.create_server(("127.0.0.1", 0))
    got = []

    def serve():
        conn, _ = listener.accept()
        with ctx.wrap_socket(conn, server_side=True) as tls:
            got.append(tls.recv(5))

    t = threading.Thread(target=serve)
    t.start()
    client_ctx = ssl.create_default_context(cafile=tls_files.ca_cert)
    with socket.create_connection(listener.getsockname()) as raw:
        with client_ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(b"hello")
    t.join(10)
    listener.close()
    assert got == [b"hello"]


def test_tls_files_that_cannot_serve_are_named(tls_files, tmp_path):
    d = tls_files.ca_cert.parent
    with pytest.raises(ConfigError, match="certfile .*missing.pem: no such file"):
        server_context(TlsSettings(tmp_path / "missing.pem", d / "broker.key"))
    with pytest.raises(ConfigError, match="cannot use certfile .*broker.pem with keyfile .*ca.key"):
        server_context(TlsSettings(d / "broker.pem", d / "ca.key"))
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match="cafile .*garbage.pem"):
        server_context(TlsSettings(d / "broker.pem", d / "broker.key", garbage))


def test_listener_security_from_options(tmp_path):
    assert listener_security(env={}) is None
    sec = listener_security(env={"EDGE_KAFKA_SASL_USERS": "alice:pw"})
    assert sec is not None and sec.sasl is not None and sec.sasl.mechanisms == ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
    users = tmp_path / "users"
    users.write_text("# who may connect\nbob:b0b-pw\n\n")
    users.chmod(0o600)
    sec = listener_security(mechanisms=["PLAIN"], users_file=str(users), env={})
    assert sec is not None and sec.sasl is not None and dict(sec.sasl.users) == {"bob": "b0b-pw"}
    with pytest.raises(ConfigError, match="no users"):
        listener_security(mechanisms=["PLAIN"], env={})
    with pytest.raises(ConfigError, match="a certificate and its key are both needed"):
        listener_security(tls_cert="cert.pem", env={})
    users.write_text("bob b0b-pw\n")
    with pytest.raises(ConfigError, match="line 1: expected user:password") as info:
        listener_security(users_file=str(users), env={})
    assert "b0b-pw" not in str(info.value)
