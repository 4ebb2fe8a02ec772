"""Stream processing on the box: Kafka Streams-style topologies over the local log, exactly once.

>>> from edge.streams import Topology, TumblingWindows, StreamsRunner
>>> t = Topology("vitals")                                # consumer group "streams.vitals"
>>> temps = t.source("readings.temperature")
>>> temps.filter(lambda r: r.value["c"] >= 38.0).to("alerts.fever")
>>> (temps.group_by_key().windowed_by(TumblingWindows(60_000))
...       .aggregate("mean", value=lambda r: r.value["c"]).to("readings.temperature.1m"))
>>> print(t.describe())
>>> StreamsRunner(t, "/var/lib/edge").process_available()   # or: await runner.run()

Each batch of input records, its output records, its state changes and its
input offsets are committed in one SQLite transaction of the log (see
``edge/streams/README.md``).
"""

from edge.streams._dsl import GroupedStream, Stream, Table, Topology, WindowedStream
from edge.streams._errors import FencedError, StreamsError, TopologyError
from edge.streams._record import Record
from edge.streams._runner import StreamsRunner
from edge.streams._status import PartitionProgress, StreamsStatus
from edge.streams._step import KeyedStep
from edge.streams._windows import AGGREGATORS, Aggregator, HoppingWindows, TumblingWindows

__all__ = [
    "AGGREGATORS",
    "Aggregator",
    "FencedError",
    "GroupedStream",
    "HoppingWindows",
    "KeyedStep",
    "PartitionProgress",
    "Record",
    "Stream",
    "StreamsError",
    "StreamsRunner",
    "StreamsStatus",
    "Table",
    "Topology",
    "TopologyError",
    "TumblingWindows",
    "WindowedStream",
]
