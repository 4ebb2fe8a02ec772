"""The uplink against really secured listeners: SASL PLAIN and SCRAM, TLS, and SCRAM over TLS.

One 1-broker cluster (``kafka_cluster_secured``) serves SASL_PLAINTEXT, SSL and SASL_SSL
listeners with users created at format time and a CA made with openssl for the session.
What arrived is read back over the broker's plain listener.
"""

from __future__ import annotations

import logging

import pytest

from edge.uplink import Uplink, UplinkConfig, UplinkConfigError, UplinkState

from ._uplink_helpers import (
    check_exactly_once,
    create_local_topics,
    produce_local,
    read_upstream,
    unique,
    wait_for,
)

USER = "edge-uplink"


async def _replicate(tmp_path, secured, **security) -> None:
    data = tmp_path / "log"
    t = unique("sec")
    create_local_topics(data, {t: 2})
    produce_local(data, t, 300, keys=7)
    cfg = UplinkConfig(edge_id=unique("edge"), data_dir=data, topics={t: "up." + t}, **security)
    async with Uplink(cfg) as uplink:
        await wait_for(lambda: uplink.status().records_total >= 300, 60, "replication", uplink)
        assert uplink.state == UplinkState.ONLINE
    got = await read_upstream(secured.direct_bootstrap_servers, ["up." + t], 300)
    check_exactly_once(got, {t: 300})


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
async def test_replicates_over_sasl_plaintext(tmp_path, kafka_cluster_secured, mechanism):
    s = kafka_cluster_secured
    await _replicate(tmp_path, s, bootstrap_servers=s.sasl_plaintext_servers,
                     security_protocol="SASL_PLAINTEXT", sasl_mechanism=mechanism,
                     sasl_username=USER, sasl_password=s.users[USER])


async def test_replicates_over_tls(tmp_path, kafka_cluster_secured):
    s = kafka_cluster_secured
    await _replicate(tmp_path, s, bootstrap_servers=s.ssl_servers, security_protocol="SSL",
                     ssl_cafile=str(s.tls.ca_cert))


async def test_replicates_with_scram_over_tls(tmp_path, kafka_cluster_secured, monkeypatch):
    s = kafka_cluster_secured
    monkeypatch.setenv("EDGE_UPSTREAM_SASL_USERNAME", USER)     # credentials from the environment
    monkeypatch.setenv("EDGE_UPSTREAM_SASL_PASSWORD", s.users[USER])
    await _replicate(tmp_path, s, bootstrap_servers=s.sasl_ssl_servers, security_protocol="SASL_SSL",
                     sasl_mechanism="SCRAM-SHA-512", ssl_cafile=str(s.tls.ca_cert))


async def _offline_error(tmp_path, **kw) -> str:
    data = tmp_path / "log"
    t = unique("refused")
    create_local_topics(data, {t: 1})
    produce_local(data, t, 5, keys=1)
    cfg = UplinkConfig(edge_id=unique("edge"), data_dir=data, topics={t: "up." + t},
                       request_timeout_s=5, backoff_initial_s=0.5, **kw)
    async with Uplink(cfg) as uplink:
        await wait_for(lambda: uplink.state == UplinkState.OFFLINE, 30, "offline", uplink)
        status = uplink.status()
    assert status.records_total == 0 and status.last_error
    return status.last_error


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256"])
async def test_wrong_password_is_a_clear_error_and_never_logged(tmp_path, kafka_cluster_secured,
                                                                caplog, capfd, mechanism):
    s = kafka_cluster_secured
    wrong = "Wr0ng-pa55word-" + mechanism
    caplog.set_level(logging.DEBUG)   # aiokafka's debug lines too
    error = await _offline_error(tmp_path, bootstrap_servers=s.sasl_plaintext_servers,
                                 security_protocol="SASL_PLAINTEXT", sasl_mechanism=mechanism,
                                 sasl_username=USER, sasl_password=wrong)
    assert "authentication failed" in error and repr(USER) in error and mechanism in error
    assert "sasl_password" in error    # names the setting to fix
    out, err = capfd.readouterr()
    for where, text in (("last_error", error), ("logs", caplog.text), ("stdout", out),
                        ("stderr", err)):
        assert wrong not in text, f"the password appears in {where}"
    assert "authentication failed" in caplog.text   # the uplink did log the failure


async def test_untrusted_certificate_is_a_clear_error(tmp_path, kafka_cluster_secured):
    s = kafka_cluster_secured
    error = await _offline_error(tmp_path, bootstrap_servers=s.ssl_servers, security_protocol="SSL",
                                 ssl_cafile=str(s.tls.other_ca_cert))
    assert "not trusted" in error and "ssl_cafile" in error and "certificate" in error


async def test_tls_to_a_plaintext_listener_is_a_clear_error(tmp_path, kafka_cluster_secured):
    s = kafka_cluster_secured
    error = await _offline_error(tmp_path, bootstrap_servers=s.sasl_plaintext_servers,
                                 security_protocol="SSL", ssl_cafile=str(s.tls.ca_cert))
    assert "TLS" in error or "no answer" in error, error


def test_tls_files_are_checked_when_configured(tmp_path):
    base = {"edge_id": "e1", "bootstrap_servers": "h:9093", "data_dir": tmp_path,
            "topics": {"r": "up.r"}}
    missing = str(tmp_path / "nope.pem")
    with pytest.raises(UplinkConfigError) as info:
        UplinkConfig(**base, security_protocol="SSL", ssl_cafile=missing)
    assert info.value.key == "ssl_cafile" and missing in str(info.value)
    with pytest.raises(UplinkConfigError, match="TLS is off"):
        UplinkConfig(**base, ssl_cafile=missing)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    cfg = UplinkConfig(**base, security_protocol="SSL", ssl_cafile=str(garbage))
    with pytest.raises(UplinkConfigError) as info:
        Uplink(cfg)
    assert info.value.key == "ssl_cafile"
