"""A program that writes to the log through the broker API until the power goes: ``python -m tests.powercut._writer DATA_DIR CYCLE SEED``.

It prints a line for each thing the API told it was durable, only after the
call returned (``send().get()``, ``flush()``, ``create_topics()``,
``commit()``, a transaction's ``commit()``): those lines went to the
outside world, so the log must still hold each of them after the cut.

    topic NAME                       create_topics returned
    rec TOPIC PARTITION OFFSET VALUE a send's future resolved (get or flush)
    group GROUP TOPIC PARTITION OFF  consumer.commit returned
    eos OFFSET                       a transaction's commit() returned: "out" holds o-0 ..
                                     o-(OFFSET-1), group "eos" committed OFFSET on t/1 and
                                     the state store "eos/count" says OFFSET, all or none

The log is opened after "go", so a cut may fall in its creation too.
``POWERCUT_COMMIT_INTERVAL_MS`` in the environment opens it with that
``LogConfig.commit_interval_ms`` (acknowledgements wait for company).
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

from broker import (
    KafkaAdminClient,
    KafkaConsumer,
    KafkaProducer,
    LogConfig,
    NewTopic,
    TopicAlreadyExistsError,
    TopicPartition,
)

TOPIC = "t"
PARTITIONS = 3
GROUP = "g"
OUT = "out"
EOS_GROUP = "eos"
EOS_STORE = "eos/count"


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main() -> None:
    data_dir, cycle, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rng = random.Random(seed * 1000 + cycle)
    say("ready")
    sys.stdin.readline()  # go
    cfg = LogConfig(data_dir=Path(data_dir),
                    commit_interval_ms=int(os.environ.get("POWERCUT_COMMIT_INTERVAL_MS", "0")))
    with KafkaAdminClient(log_config=cfg) as admin:
        for name, parts in ((TOPIC, PARTITIONS), (OUT, 1), (f"c{cycle}", 1)):  # one topic made per cycle
            try:
                admin.create_topics([NewTopic(name, parts, 1)])
            except TopicAlreadyExistsError:
                pass
            say(f"topic {name}")
    producer = KafkaProducer(log_config=cfg)
    consumer = KafkaConsumer(log_config=cfg, group_id=GROUP, auto_offset_reset="earliest")
    tp = TopicPartition(TOPIC, 0)
    consumer.assign([tp])
    eos_tp = TopicPartition(TOPIC, 1)
    with KafkaConsumer(log_config=cfg, group_id=EOS_GROUP) as reader:
        eos_at = reader.committed(eos_tp)
    n = 0
    while True:
        if rng.random() < 0.3:  # a consume-process-produce step, exactly once
            start = eos_at or 0
            k = min(consumer.end_offsets([eos_tp])[eos_tp] - start, rng.randint(1, 20))
            if k > 0:
                txn = producer.begin_transaction()
                for off in range(start, start + k):
                    txn.send(OUT, f"o-{off}".encode(), key=b"eos")
                txn.commit_offsets(EOS_GROUP, {eos_tp: start + k}, expected={eos_tp: eos_at})
                txn.put_state(EOS_STORE, b"n", str(start + k).encode())
                txn.commit()
                eos_at = start + k
                say(f"eos {eos_at}")
        topic = TOPIC if rng.random() < 0.8 else f"c{cycle}"
        if rng.random() < 0.5:  # one send, waited for
            value = f"{cycle}-{n}"
            md = producer.send(topic, value.encode(), key=f"dev-{n % 7}".encode()).get(30)
            say(f"rec {md.topic} {md.partition} {md.offset} {value}")
            n += 1
        else:  # a batch, then flush(): every future resolved when it returns
            futures = []
            for _ in range(rng.randint(1, 60)):
                value = f"{cycle}-{n}"
                key = None if n % 3 == 0 else f"dev-{n % 7}".encode()
                futures.append((value, producer.send(topic, value.encode(), key=key)))
                n += 1
            producer.flush(30)
            for value, fut in futures:
                md = fut.get(0)
                say(f"rec {md.topic} {md.partition} {md.offset} {value}")
        if rng.random() < 0.2:  # the group moves on: read what is there, commit
            consumer.poll(timeout_ms=0, max_records=rng.randint(1, 100))
            offset = consumer.position(tp)
            consumer.commit({tp: offset})
            say(f"group {GROUP} {TOPIC} 0 {offset}")


if __name__ == "__main__":
    main()
