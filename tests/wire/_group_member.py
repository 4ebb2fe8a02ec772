"""One kafka-python consumer of a group, run as a subprocess by test_groups_clients.py.

Prints one JSON line per event on stdout: {"assigned": [partitions]} after each
rebalance, {"p": partition, "o": offset} per record, printed *before* its offset is
committed (synchronously, record by record), so a member killed between the two is
seen to have consumed a record whose offset it never committed. SIGTERM closes the
consumer (it leaves the group) and exits.

    python -m tests.wire._group_member BOOTSTRAP TOPIC GROUP SESSION_TIMEOUT_MS
"""

import json
import signal
import sys

from kafka import KafkaConsumer, OffsetAndMetadata, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener


def _say(**event: object) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


class _Listener(ConsumerRebalanceListener):
    def on_partitions_revoked(self, revoked):  # type: ignore[no-untyped-def]
        pass

    def on_partitions_assigned(self, assigned):  # type: ignore[no-untyped-def]
        _say(assigned=sorted(tp.partition for tp in assigned))


def main() -> None:
    bootstrap, topic, group, session_ms = sys.argv[1:5]
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
        enable_auto_commit=False, session_timeout_ms=int(session_ms),
        heartbeat_interval_ms=max(100, int(session_ms) // 10), max_poll_interval_ms=20_000,
        client_id=f"member-{group}")
    consumer.subscribe([topic], listener=_Listener())
    while not stop:
        for tp, records in consumer.poll(timeout_ms=100).items():
            for r in records:
                _say(p=r.partition, o=r.offset, v=r.value.decode())
                consumer.commit({TopicPartition(tp.topic, tp.partition): OffsetAndMetadata(r.offset + 1, "", -1)})
    consumer.close()
    _say(closed=True)


if __name__ == "__main__":
    main()
