"""The uplink: replicate the local log to an upstream Apache Kafka cluster.

>>> config = UplinkConfig(edge_id="car-17", bootstrap_servers="kafka:9092",
...                       data_dir="/var/lib/edge/log", topics={"readings": "edge.readings"})
>>> async with Uplink(config) as uplink:
...     print(uplink.status().state)
"""

from ._config import TopicMapping, UplinkConfig
from ._errors import (
    FencedError,
    UplinkConfigError,
    UplinkError,
    UplinkLockedError,
    UpstreamError,
)
from ._resend import request_resend
from ._status import PartitionLag, PartitionMismatch, UplinkState, UplinkStatus
from ._tls import ssl_context
from ._uplink import Uplink

__all__ = [
    "FencedError",
    "PartitionLag",
    "PartitionMismatch",
    "TopicMapping",
    "Uplink",
    "UplinkConfig",
    "UplinkConfigError",
    "UplinkError",
    "UplinkLockedError",
    "UplinkState",
    "UplinkStatus",
    "UpstreamError",
    "request_resend",
    "ssl_context",
]
