"""What the soak looked like over time: the service's memory and CPU, and arrivals upstream.

The checker says whether anything was lost; this says whether the appliance stayed small
and kept up through the faults (RSS must not creep from round to round). The results page
plots it (bench/_page.py). Read from the OS (/proc) and from the checker's arrival log.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _rss_and_cpu(pid: int) -> tuple[int, float] | None:
    """(resident bytes, user+system CPU seconds) of a live process; None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rss_kb = next((int(line.split()[1]) for line in status.splitlines()
                   if line.startswith("VmRSS:")), None)
    if rss_kb is None:
        return None   # a zombie (killed, not yet reaped) has no memory to report
    fields = stat.rsplit(")", 1)[1].split()   # after "(comm)", which may hold spaces
    cpu_ticks = int(fields[11]) + int(fields[12])   # utime, stime
    return rss_kb * 1024, cpu_ticks / _CLK_TCK


class ProcessSampler:
    """Samples the process `pid()` names (it changes across restarts) every `every_s`."""

    def __init__(self, pid: Callable[[], int | None], every_s: float = 2.0,
                 extra: Callable[[], dict[str, Any]] | None = None) -> None:
        self._pid, self._every, self._extra = pid, every_s, extra
        self.samples: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Safe to call whether or not it started."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            pid = self._pid()
            seen = _rss_and_cpu(pid) if pid else None
            sample: dict[str, Any] = {"t_ms": int(time.time() * 1000),
                                      "pid": pid if seen else None,   # None: no live service
                                      "rss_bytes": seen[0] if seen else None,
                                      "cpu_s": seen[1] if seen else None}
            if self._extra is not None:
                try:
                    sample.update(self._extra())
                except Exception as exc:  # a sample is never worth the soak
                    sample["extra_error"] = repr(exc)
            self.samples.append(sample)


def arrivals_per_window(arrivals: Path, systems: dict[str, list[str]],
                        window_ms: int = 5000) -> dict[str, list[tuple[int, int]]]:
    """Records arriving upstream per `window_ms`, per system (name → its upstream topics),
    from the checker's arrival log: [(window start ms, records)], empty windows included."""
    topic_of = {t: name for name, topics in systems.items() for t in topics}
    counts: dict[str, Counter[int]] = {name: Counter() for name in systems}
    first = last = None
    with arrivals.open("rb") as f:
        for line in f:
            rec = json.loads(line)
            name = topic_of.get(rec["t"])
            if name is None:
                continue
            w = rec["a"] // window_ms * window_ms
            counts[name][w] += 1
            first = w if first is None else min(first, w)
            last = w if last is None else max(last, w)
    if first is None or last is None:
        return {name: [] for name in systems}
    windows = range(first, last + window_ms, window_ms)
    return {name: [(w, c[w]) for w in windows] for name, c in counts.items()}
