"""SASL (PLAIN, SCRAM-SHA-256/512) and TLS on the listener, with real clients: kafka-python
and kcat (librdkafka). A wrong password is refused with Kafka's error and never logged; a
client that skips authentication is closed before it reads anything."""

import logging
import os
import socket
import ssl
import struct
import subprocess
import sys

import pytest
from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from broker import KafkaAdminClient as LocalAdmin
from broker import NewTopic
from broker.wire._sasl import SaslSettings
from broker.wire._sasl_api import ListenerSecurity
from broker.wire._tls import TlsSettings
from tests.fixtures.kafka import make_tls_files

from ._server import ThreadedListener, raw_request, read_frame

USERS = {"alice": "alice-s3cret", "bob": "bob-s3cret"}
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    return make_tls_files(tmp_path_factory.mktemp("tls"))


def _listener(tmp_path, tls_files=None, **sasl):
    tls = None
    if tls_files is not None:
        d = tls_files.ca_cert.parent
        tls = TlsSettings(d / "broker.pem", d / "broker.key")
    security = ListenerSecurity(SaslSettings(users=USERS, **sasl) if sasl is not None else None, tls)
    LocalAdmin(data_dir=tmp_path / "log").create_topics([NewTopic("readings", 2, 1)])
    return ThreadedListener(tmp_path / "log", security=security)


def _topics(srv, **client):
    admin = KafkaAdminClient(bootstrap_servers=srv.bootstrap, request_timeout_ms=5000, **client)
    try:
        return admin.list_topics()
    finally:
        admin.close()


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_kafka_python_authenticates_with_each_mechanism(tmp_path, mechanism):
    with _listener(tmp_path) as srv:
        assert "readings" in _topics(srv, security_protocol="SASL_PLAINTEXT", sasl_mechanism=mechanism,
                                     sasl_plain_username="bob", sasl_plain_password="bob-s3cret")


def test_a_wrong_password_is_refused_and_never_logged(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    with _listener(tmp_path) as srv:
        with pytest.raises(KafkaError) as info:
            _topics(srv, security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-512",
                    sasl_plain_username="alice", sasl_plain_password="not-the-pw")
        assert srv.metrics()["errors"].get("authentication", 0) >= 1
    # kafka-python's admin raises something generic once no broker lets it in; its
    # connection's log line carries what the listener answered.
    assert "SaslAuthenticationFailedError" in caplog.text and info.value is not None
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("broker"))
    assert "not-the-pw" not in ours and "alice-s3cret" not in ours
    assert "failed SCRAM-SHA-512 authentication" in ours


def test_a_client_without_sasl_is_closed_before_it_reads_anything(tmp_path, caplog):
    with _listener(tmp_path) as srv:
        assert raw_request(srv.port, 3, 0, b"\x00\x00\x00\x00") is None  # Metadata v0, all topics
        assert raw_request(srv.port, 18, 0) is not None  # ApiVersions is answered
    assert "before authenticating: this listener requires SASL" in caplog.text


def test_a_mechanism_not_configured_is_refused_naming_those_that_are(tmp_path):
    with _listener(tmp_path, mechanisms=("SCRAM-SHA-256",)) as srv:
        with pytest.raises(KafkaError):
            _topics(srv, security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
                    sasl_plain_username="bob", sasl_plain_password="bob-s3cret")


def test_tls_with_scram_for_kafka_python(tmp_path, tls_files):
    with _listener(tmp_path, tls_files) as srv:
        assert "readings" in _topics(srv, security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-256",
                                     sasl_plain_username="alice", sasl_plain_password="alice-s3cret",
                                     ssl_context=_trusting(tls_files))


def test_tls_alone_on_loopback(tmp_path, tls_files):
    d = tls_files.ca_cert.parent
    security = ListenerSecurity(None, TlsSettings(d / "broker.pem", d / "broker.key"))
    LocalAdmin(data_dir=tmp_path / "log").create_topics([NewTopic("readings", 1, 1)])
    with ThreadedListener(tmp_path / "log", security=security) as srv:
        assert "readings" in _topics(srv, security_protocol="SSL", ssl_context=_trusting(tls_files))


def _trusting(tls_files):
    # A context of our own: kafka-python's from ssl_cafile uses the deprecated PROTOCOL_TLS.
    return ssl.create_default_context(cafile=tls_files.ca_cert)


def _kcat(srv, *args, **conf):
    props = [x for k, v in conf.items() for x in ("-X", f"{k.replace('_', '.')}={v}")]
    return subprocess.run(["kcat", "-b", srv.bootstrap, *props, *args], capture_output=True,
                          text=True, timeout=30)


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-512"])
def test_kcat_lists_topics_over_sasl_ssl(tmp_path, tls_files, mechanism):
    with _listener(tmp_path, tls_files) as srv:
        out = _kcat(srv, "-L", security_protocol="SASL_SSL", sasl_mechanisms=mechanism,
                    sasl_username="alice", sasl_password="alice-s3cret",
                    ssl_ca_location=str(tls_files.ca_cert))
        assert out.returncode == 0, out.stderr
        assert 'topic "readings" with 2 partitions' in out.stdout
        bad = _kcat(srv, "-L", "-m", "2", security_protocol="SASL_SSL", sasl_mechanisms=mechanism,
                    sasl_username="alice", sasl_password="wrong",
                    ssl_ca_location=str(tls_files.ca_cert))
        assert bad.returncode != 0 and "Authentication failed" in bad.stderr


def _serve(tmp_path, *args, env=None):
    return subprocess.Popen(
        [sys.executable, "-m", "broker", "serve", "--data-dir", str(tmp_path / "log"),
         "--listen", "127.0.0.1:0", *args],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": REPO, **(env or {})})


def test_edge_broker_serve_takes_users_from_the_environment_and_tls_files(tmp_path, tls_files):
    d = tls_files.ca_cert.parent
    LocalAdmin(data_dir=tmp_path / "log").create_topics([NewTopic("readings", 1, 1)])
    proc = _serve(tmp_path, "--sasl-mechanism", "SCRAM-SHA-256", "--tls-cert", str(d / "broker.pem"),
                  "--tls-key", str(d / "broker.key"), env={"EDGE_KAFKA_SASL_USERS": "carol:c4rol-pw"})
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert "listening on 127.0.0.1:" in line, line
        port = int(line.split("listening on 127.0.0.1:")[1].split()[0])
        admin = KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{port}", security_protocol="SASL_SSL",
                                 sasl_mechanism="SCRAM-SHA-256", sasl_plain_username="carol",
                                 sasl_plain_password="c4rol-pw", ssl_context=_trusting(tls_files))
        try:
            assert admin.list_topics() == ["readings"]
        finally:
            admin.close()
    finally:
        proc.terminate()
        assert proc.wait(20) == 0
        rest = proc.stderr.read() if proc.stderr else ""
        if proc.stderr is not None:
            proc.stderr.close()
    assert "c4rol-pw" not in line + rest


def test_edge_broker_serve_refuses_a_users_file_others_can_read(tmp_path):
    users = tmp_path / "users"
    users.write_text("dave:d4ve-pw\n")
    users.chmod(0o644)
    out = subprocess.run(
        [sys.executable, "-m", "broker", "serve", "--data-dir", str(tmp_path / "log"),
         "--listen", "127.0.0.1:0", "--sasl-users-file", str(users)],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": REPO}, timeout=30)
    assert out.returncode == 1
    assert "readable by others (mode 644)" in out.stderr and f"chmod 600 {users}" in out.stderr
    assert "d4ve-pw" not in out.stderr


def test_edge_run_serves_sasl_over_tls_from_its_config(tmp_path, tls_files):
    from tests.edge._helpers import health, start_edge, stop_edge, wait_for, write_config
    from tests.fixtures.mosquitto import free_port

    d = tls_files.ca_cert.parent
    users = tmp_path / "kafka-users"
    users.write_text("erin:3rin-pw\n")
    users.chmod(0o600)
    kport = free_port()
    config, hport = write_config(tmp_path, "", extra=(
        f'[kafka]\nlisten = "127.0.0.1:{kport}"\nsasl_mechanisms = ["SCRAM-SHA-512"]\n'
        f'sasl_users_file = "{users}"\ntls_cert = "{d / "broker.pem"}"\ntls_key = "{d / "broker.key"}"\n'))
    log = tmp_path / "edge.log"
    edge = start_edge(config, log, env={"EDGE_KAFKA_SASL_USERS": "frank:fr4nk-pw"})
    try:
        wait_for(lambda: health(hport), 30, "edge run's /health")
        for user, password in (("erin", "3rin-pw"), ("frank", "fr4nk-pw")):
            admin = KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{kport}", security_protocol="SASL_SSL",
                                     sasl_mechanism="SCRAM-SHA-512", sasl_plain_username=user,
                                     sasl_plain_password=password, ssl_context=_trusting(tls_files))
            try:
                assert isinstance(admin.list_topics(), list)
            finally:
                admin.close()
    finally:
        assert stop_edge(edge, log) == 0
    text = log.read_text()
    assert "3rin-pw" not in text and "fr4nk-pw" not in text


def _frame(api_key, version, body, correlation_id):
    head = struct.pack(">hhih", api_key, version, correlation_id, 4) + b"test"
    return struct.pack(">i", len(head) + len(body)) + head + body


def test_a_failed_authentication_ends_the_connection(tmp_path):
    """As on Kafka: no second password tried on the same connection."""
    with _listener(tmp_path) as srv, socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        mech = b"PLAIN"
        s.sendall(_frame(17, 1, struct.pack(">h", len(mech)) + mech, 1))
        assert read_frame(s)[4:6] == b"\x00\x00"  # correlation id, then error NONE
        token = b"\x00alice\x00wrong"
        s.sendall(_frame(36, 0, struct.pack(">i", len(token)) + token, 2))
        answer = read_frame(s)
        assert struct.unpack(">h", answer[4:6])[0] == 58  # SASL_AUTHENTICATION_FAILED
        s.sendall(_frame(17, 1, struct.pack(">h", len(mech)) + mech, 3))
        assert read_frame(s) is None  # closed
