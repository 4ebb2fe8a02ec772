"""The uplink against a real 1-broker Kafka cluster: records, headers, order, DLQ (fencing:
test_uplink_fencing.py)."""

from __future__ import annotations

import pytest

from broker import KafkaConsumer
from edge.uplink import (
    TopicMapping,
    Uplink,
    UplinkConfig,
    UplinkConfigError,
    UplinkState,
)

from ._uplink_helpers import (
    TS0,
    check_exactly_once,
    create_local_topics,
    produce_local,
    read_upstream,
    unique,
    wait_for,
)


def _config(tmp_path, servers, topics, **kw) -> UplinkConfig:
    return UplinkConfig(edge_id=kw.pop("edge_id", unique("edge")), bootstrap_servers=servers,
                        data_dir=tmp_path / "log", topics=topics, **kw)


async def test_several_topics_many_keys_exactly_once_in_order_with_headers(tmp_path, kafka_cluster):
    data = tmp_path / "log"
    a, b = unique("readings"), unique("alarms")
    create_local_topics(data, {a: 3, b: 2})
    produce_local(data, a, 3000, keys=50)
    produce_local(data, b, 1000, keys=7)
    cfg = _config(tmp_path, kafka_cluster.bootstrap_servers,
                  {a: TopicMapping(a, "up." + a, partitions=3), b: "up." + b}, compression="zstd")
    async with Uplink(cfg) as uplink:
        await wait_for(lambda: uplink.status().records_total >= 4000, 60, "replication")
        produce_local(data, a, 500, keys=50, start=3000)
        await wait_for(lambda: uplink.status().records_total >= 4500, 60, "more replication")
        await wait_for(lambda: uplink.status().lag_records == 0 and uplink.status().lag, 10, "lag 0")
        status = uplink.status()
        assert status.state == UplinkState.ONLINE
        # A fresh cluster may answer "coordinator not available" once: retried, kept as last error.
        assert status.last_error is None or "Coordinator" in status.last_error
    assert uplink.state == UplinkState.STOPPED
    got = await read_upstream(kafka_cluster.bootstrap_servers, ["up." + a, "up." + b], 4500)
    check_exactly_once(got, {a: 3500, b: 1000})
    r = next(r for r in got if r.value == f"{a}:7".encode())
    headers = dict(r.headers)
    assert headers["src"] == b"test" and headers["i"] == b"7"
    assert headers["edge.id"] == cfg.edge_id.encode()
    assert r.timestamp == TS0 + 7 and r.key == b"k7"
    with KafkaConsumer(data_dir=data) as local:  # the record came from where the headers say
        tp = (a, int(headers["edge.partition"]))
        local.assign([tp])
        local.seek(tp, int(headers["edge.offset"]))
        assert next(iter(local.poll(timeout_ms=1000).values()))[0].value == r.value


async def test_at_least_once_resumes_from_local_group(tmp_path, kafka_cluster):
    data = tmp_path / "log"
    t = unique("alo")
    create_local_topics(data, {t: 2})
    produce_local(data, t, 400, keys=9)
    cfg = _config(tmp_path, kafka_cluster.bootstrap_servers, {t: "up." + t}, delivery="at-least-once",
                  compression=None)
    async with Uplink(cfg) as uplink:
        await wait_for(lambda: uplink.status().records_total >= 400, 60, "replication")
    produce_local(data, t, 100, keys=9, start=400)
    async with Uplink(cfg) as uplink:
        await wait_for(lambda: uplink.status().records_total >= 100, 60, "replication after restart")
    got = await read_upstream(kafka_cluster.bootstrap_servers, ["up." + t], 500)
    check_exactly_once(got, {t: 500})


async def test_record_too_large_goes_to_local_dead_letter_topic(tmp_path, kafka_cluster):
    data = tmp_path / "log"
    t = unique("big")
    create_local_topics(data, {t: 1})
    produce_local(data, t, 10, keys=2)
    produce_local(data, t, 1, keys=2, start=10, size=5000)   # over max_request_bytes
    produce_local(data, t, 10, keys=2, start=11)
    cfg = _config(tmp_path, kafka_cluster.bootstrap_servers, {t: "up." + t}, max_request_bytes=4096)
    async with Uplink(cfg) as uplink:
        await wait_for(lambda: uplink.status().records_total >= 21, 60, "replication")
        assert uplink.status().dead_lettered == 1
    got = await read_upstream(kafka_cluster.bootstrap_servers, ["up." + t], 20)
    assert sorted(int(r.value.split(b":")[1]) for r in got) == [i for i in range(21) if i != 10]
    with KafkaConsumer(cfg.dlq_topic, data_dir=data, auto_offset_reset="earliest") as dlq:
        records = [r for recs in dlq.poll(timeout_ms=2000).values() for r in recs]
    assert len(records) == 1
    headers = dict(records[0].headers)
    assert b"TooLarge" in headers["uplink.reason"]
    assert headers["uplink.source"] == f"{t}/0/10".encode()


async def test_record_under_the_limit_as_stored_but_over_it_with_the_uplinks_headers(
        tmp_path, kafka_cluster):
    # Only records near max_request_bytes are measured exactly (the rest are known to fit
    # by their stored sizes): one that fits as stored but not with the edge.* headers added
    # upstream must still be dead-lettered, and one comfortably under must go upstream.
    data = tmp_path / "log"
    t = unique("near")
    create_local_topics(data, {t: 1})
    produce_local(data, t, 1, keys=1, size=4096 - 60)              # ~4,075 B stored: over
    produce_local(data, t, 1, keys=1, start=1, size=4096 - 1200)   # inside the margin: fits
    produce_local(data, t, 1, keys=1, start=2, size=100)
    cfg = _config(tmp_path, kafka_cluster.bootstrap_servers, {t: "up." + t}, max_request_bytes=4096)
    async with Uplink(cfg) as uplink:
        await wait_for(lambda: uplink.status().records_total >= 3, 60, "replication")
        assert uplink.status().dead_lettered == 1
    got = await read_upstream(kafka_cluster.bootstrap_servers, ["up." + t], 2)
    assert sorted(int(r.value.split(b":")[1].rstrip(b".")) for r in got) == [1, 2]
    with KafkaConsumer(cfg.dlq_topic, data_dir=data, auto_offset_reset="earliest") as dlq:
        records = [r for recs in dlq.poll(timeout_ms=2000).values() for r in recs]
    assert [dict(r.headers)["uplink.source"] for r in records] == [f"{t}/0/0".encode()]
    assert b"max_request_bytes (4096)" in dict(records[0].headers)["uplink.reason"]


@pytest.mark.parametrize(("changes", "key", "bad"), [
    ({"security_protocol": "TLS"}, "security_protocol", "TLS"),
    ({"security_protocol": "SASL_SSL", "sasl_mechanism": "GSSAPI"}, "sasl_mechanism", "GSSAPI"),
    ({"topics": {"readings": "bad name!"}}, "topics.readings", "bad name!"),
    ({"delivery": "maybe"}, "delivery", "maybe"),
    ({"compression": "gzip2"}, "compression", "gzip2"),
])
def test_bad_config_names_key_and_value(tmp_path, changes, key, bad):
    base = {"edge_id": "e1", "bootstrap_servers": "127.0.0.1:9", "data_dir": tmp_path,
            "topics": {"readings": "up.readings"}}
    with pytest.raises(UplinkConfigError) as info:
        UplinkConfig(**{**base, **changes})
    assert info.value.key == key and info.value.got == bad
    assert key in str(info.value) and bad in str(info.value)


def test_missing_sasl_credentials_and_redacted_repr(tmp_path, monkeypatch):
    monkeypatch.delenv("EDGE_UPSTREAM_SASL_PASSWORD", raising=False)
    base = {"edge_id": "e1", "bootstrap_servers": "h:9093", "data_dir": tmp_path,
            "topics": {"r": "up.r"}, "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_username": "alice-user"}
    with pytest.raises(UplinkConfigError, match="sasl_password"):
        UplinkConfig(**base)
    cfg = UplinkConfig(**base, sasl_password="hunter2-secret")
    assert "hunter2" not in repr(cfg) and "alice-user" not in repr(cfg)
    monkeypatch.setenv("EDGE_UPSTREAM_SASL_PASSWORD", "from-env")
    assert UplinkConfig(**base).sasl_password == "from-env"


def test_public_api():
    import edge.uplink
    assert set(edge.uplink.__all__) == {
        "FencedError", "PartitionLag", "PartitionMismatch", "TopicMapping", "Uplink", "UplinkConfig", "UplinkConfigError",
        "UplinkError", "UplinkLockedError", "UplinkState", "UplinkStatus", "UpstreamError",
        "request_resend", "ssl_context"}


async def test_bytes_per_second_cap_slows_the_drain(tmp_path, kafka_cluster):
    import time

    data = tmp_path / "log"
    t = unique("capped")
    create_local_topics(data, {t: 1})
    produce_local(data, t, 300, keys=3, size=200)   # about 70 kB with keys and headers
    cfg = _config(tmp_path, kafka_cluster.bootstrap_servers, {t: "up." + t}, max_bytes_per_s=25_000,
                  batch_records=50)
    async with Uplink(cfg) as uplink:
        await wait_for(lambda: uplink.state == UplinkState.ONLINE, 60, "online", uplink)
        t0 = time.monotonic()
        await wait_for(lambda: uplink.status().records_total >= 300, 60, "capped drain", uplink)
        elapsed = time.monotonic() - t0
        nbytes = uplink.status().bytes_total
    assert nbytes / elapsed <= 25_000 * 1.3, f"{nbytes} B in {elapsed:.2f} s"
    assert elapsed >= 2.0


async def test_batch_the_broker_refuses_as_too_large_is_split_and_only_the_big_record_dead_lettered(
        tmp_path, kafka_cluster):
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    data = tmp_path / "log"
    t = unique("brokerbig")
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_cluster.bootstrap_servers)
    await admin.start()
    try:   # the cluster takes batches of at most 3,000 bytes on this topic
        await admin.create_topics([NewTopic("up." + t, 1, 1,
                                            topic_configs={"max.message.bytes": "3000"})])
    finally:
        await admin.close()
    create_local_topics(data, {t: 1})
    produce_local(data, t, 5, keys=2, size=1200)
    produce_local(data, t, 1, keys=2, start=5, size=4000)   # under max_request_bytes, over 3,000
    produce_local(data, t, 5, keys=2, start=6, size=1200)
    cfg = _config(tmp_path, kafka_cluster.bootstrap_servers, {t: "up." + t}, compression=None,
                  request_timeout_s=10, backoff_initial_s=0.1)
    async with Uplink(cfg) as uplink:
        await wait_for(lambda: uplink.status().records_total >= 11, 90, "replication", uplink)
        assert uplink.status().dead_lettered == 1
    got = await read_upstream(kafka_cluster.bootstrap_servers, ["up." + t], 10)
    values = [int(r.value.split(b".")[0].split(b":")[1]) for r in got]
    assert sorted(values) == [i for i in range(11) if i != 5]
    for key in (b"k0", b"k1"):
        mine = [int(r.value.split(b".")[0].split(b":")[1]) for r in got if r.key == key]
        assert mine == sorted(mine), f"order broken for {key}"
    with KafkaConsumer(cfg.dlq_topic, data_dir=data, auto_offset_reset="earliest") as dlq:
        records = [r for recs in dlq.poll(timeout_ms=2000).values() for r in recs]
    assert [dict(r.headers)["uplink.source"] for r in records] == [f"{t}/0/5".encode()]


async def test_headers_arrive_as_written_null_values_included(tmp_path, kafka_cluster):
    from broker import KafkaProducer

    data = tmp_path / "log"
    t = unique("hdr")
    create_local_topics(data, {t: 1})
    with KafkaProducer(data) as producer:
        producer.send(t, b"v", key=b"k", headers=[("none", None), ("empty", b""), ("x", b"\xff\x00")],
                      timestamp_ms=TS0).get(timeout=30)
    cfg = _config(tmp_path, kafka_cluster.bootstrap_servers, {t: "up." + t})
    async with Uplink(cfg) as uplink:
        await wait_for(lambda: uplink.status().records_total >= 1, 60, "replication", uplink)
    (r,) = await read_upstream(kafka_cluster.bootstrap_servers, ["up." + t], 1)
    assert list(r.headers) == [("none", None), ("empty", b""), ("x", b"\xff\x00"),
                               ("edge.id", cfg.edge_id.encode()), ("edge.partition", b"0"),
                               ("edge.offset", b"0")]
