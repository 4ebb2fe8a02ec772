"""A real Apache Kafka cluster (KRaft, from Maven Central jars) for development and tests.

Fetch the jars once with ``deploy/kafka/fetch.sh``; then ``KafkaCluster(brokers=1|3)``
from Python, or ``python -m deploy.kafka start|stop`` from a shell.
"""

from ._config import KAFKA_VERSION, ClusterSettings, Listener
from .cluster import Broker, KafkaCluster
from .errors import (
    ClusterStartError,
    ClusterStateError,
    JarsMissingError,
    JavaNotFoundError,
    KafkaDeployError,
)

__all__ = [
    "KAFKA_VERSION",
    "Broker",
    "ClusterSettings",
    "ClusterStartError",
    "ClusterStateError",
    "JarsMissingError",
    "JavaNotFoundError",
    "KafkaCluster",
    "KafkaDeployError",
    "Listener",
]
