"""Kafka's own command-line tools (kafka-tools and the broker jar), run from lib/.

The names follow Kafka's bin/kafka-<name>.sh scripts, so Kafka's docs apply:
``producer-perf-test`` is ``bin/kafka-producer-perf-test.sh``, the peer for
the local log's benchmark.
"""

from __future__ import annotations

from collections.abc import Sequence

from ._process import HERE, ensure_jars, find_java

#: Tool name (as in bin/kafka-<name>.sh) -> main class in Kafka 3.9.
TOOLS: dict[str, str] = {
    "topics": "org.apache.kafka.tools.TopicCommand",
    "console-producer": "kafka.tools.ConsoleProducer",
    "console-consumer": "org.apache.kafka.tools.consumer.ConsoleConsumer",
    "consumer-groups": "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
    "producer-perf-test": "org.apache.kafka.tools.ProducerPerformance",
    "consumer-perf-test": "org.apache.kafka.tools.ConsumerPerformance",
    "e2e-latency": "org.apache.kafka.tools.EndToEndLatency",
}

TOOLS_LOG4J = HERE / "tools-log4j.properties"


def tool_command(name: str, args: Sequence[str] = ()) -> list[str]:
    """The argv that runs Kafka tool ``name`` with ``args`` (fetching the jars if needed).

    Raises ValueError naming the known tools for an unknown name.
    """
    try:
        main_class = TOOLS[name]
    except KeyError:
        raise ValueError(
            f"unknown Kafka tool {name!r}; known: {', '.join(sorted(TOOLS))}"
        ) from None
    return [
        find_java(),
        "-Xmx512m",
        "-XX:+UseSerialGC",
        "-XX:-UsePerfData",
        f"-Dlog4j.configuration=file:{TOOLS_LOG4J}",
        "-cp",
        ensure_jars(),
        main_class,
        *args,
    ]
