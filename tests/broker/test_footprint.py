"""What a process that only imports ``broker`` carries: the log's memory is a Pi's.

asyncio (with the ssl it loads) was ~10 MB of RSS for send_and_wait alone, and
ctypes.util's find_library ran ldconfig in a subprocess and brought subprocess,
tempfile and shutil (~3 MB); bench/_log_perf.py's peak RSS is compared with a Kafka
broker's (issue #12: at most 25%).
"""

from __future__ import annotations

import json
import subprocess
import sys

from broker import KafkaProducer

from ._helpers import REPO

HEAVY = ("asyncio", "ssl", "subprocess", "tempfile", "shutil")


def test_importing_broker_loads_no_asyncio_nor_subprocess() -> None:
    code = ("import json, sys, broker, broker._notify as n; "
            f"print(json.dumps([[m for m in {HEAVY!r} if m in sys.modules], n._inotify_init1 is not None]))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         check=True, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    loaded, inotify = json.loads(out.stdout)
    assert loaded == []
    assert inotify, "inotify was not found in the C library: readers would poll every 50 ms"


def test_a_future_runs_one_or_many_callbacks_in_the_order_added(tmp_path: object) -> None:
    # One callback is kept without a list (memory per queued record); two or more in one.
    seen: list[tuple[str, int]] = []
    with KafkaProducer(data_dir=tmp_path) as producer:
        one = producer.send("t", b"a").add_callback(lambda md: seen.append(("one", md.offset)))
        many = producer.send("t", b"b")
        for name in ("x", "y", "z"):
            many.add_callback(lambda md, name=name: seen.append((name, md.offset)))
        many.add_errback(lambda exc: seen.append(("error", -1)))
        producer.flush()
        late = []
        one.add_both(lambda r: late.append(r.offset))  # added when done: runs at once
    assert seen == [("one", 0), ("x", 1), ("y", 1), ("z", 1)]
    assert late == [0]
