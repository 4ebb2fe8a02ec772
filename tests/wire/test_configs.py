"""Topic configs over the wire: describe, replace, and change one key at a time."""

from __future__ import annotations

import io
from typing import Any

from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType
from kio.schema.incremental_alter_configs.v0.request import (
    AlterableConfig,
    AlterConfigsResource,
    IncrementalAlterConfigsRequest,
)
from kio.schema.incremental_alter_configs.v0.response import IncrementalAlterConfigsResponse
from kio.serial import entity_reader, entity_writer

import broker

from ._server import ThreadedListener, raw_request


def _topic_config(listener: ThreadedListener, name: str) -> dict[str, str]:
    return dict(broker.KafkaAdminClient(listener.data_dir).describe_topics([name])[0].config)


def test_kafka_python_describes_and_alters_topic_configs(listener: ThreadedListener) -> None:
    broker.KafkaAdminClient(listener.data_dir).create_topics(
        [broker.NewTopic("cfg", 1, topic_configs={"retention.ms": "60000"})])
    admin = KafkaAdminClient(bootstrap_servers=listener.bootstrap)
    try:
        (desc,) = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "cfg")])
        entries = {e[0]: e[1] for e in desc.resources[0][4]}
        assert entries["retention.ms"] == "60000" and "priority" in entries
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, "cfg", configs={"priority": "5"})])
        cfg = _topic_config(listener, "cfg")
        # AlterConfigs replaces: what is not named returns to the log's default
        assert cfg["priority"] == "5"
        assert cfg["retention.ms"] == broker.TopicConfig().to_kafka()["retention.ms"]
        (bad,) = admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, "cfg",
                                                     configs={"retention.ms": "soon"})]).resources
        assert bad[0] == 40  # INVALID_CONFIG
    finally:
        admin.close()


def test_incremental_alter_sets_and_deletes_one_key(listener: ThreadedListener) -> None:
    broker.KafkaAdminClient(listener.data_dir).create_topics([broker.NewTopic("inc", 1)])

    def alter(*configs: tuple[str, int, str | None]) -> Any:
        req = IncrementalAlterConfigsRequest(resources=(AlterConfigsResource(
            resource_type=2, resource_name="inc",  # type: ignore[arg-type]
            configs=tuple(AlterableConfig(name=n, config_operation=op, value=v)  # type: ignore[arg-type]
                          for n, op, v in configs)),), validate_only=False)
        buf = io.BytesIO()
        entity_writer(IncrementalAlterConfigsRequest)(buf, req)
        resp = raw_request(listener.port, 44, 0, buf.getvalue())
        assert resp is not None
        return entity_reader(IncrementalAlterConfigsResponse)(resp, 4)[0].responses[0]

    assert alter(("retention.bytes", 0, "1000000"), ("priority", 0, "9")).error_code.value == 0
    assert _topic_config(listener, "inc")["retention.bytes"] == "1000000"
    assert _topic_config(listener, "inc")["priority"] == "9"
    assert alter(("priority", 1, None)).error_code.value == 0  # DELETE: back to the default
    assert _topic_config(listener, "inc")["priority"] == "0"
    assert alter(("priority", 2, "1")).error_code.value == 40  # APPEND has no meaning here

