"""`edge run` in this process, with a thread that records what its memory is made of.

    .venv/bin/python bench/_memprobe.py OUT.jsonl [--every S] [--tracemalloc N] -- run --config edge.toml

A diagnosis tool, not a measurement: the probe itself costs CPU and memory (tracemalloc
a lot), so RSS figures come from bench_appliance's plain runs. Every ``--every`` seconds
one JSON line goes to OUT.jsonl: the process's RSS and /proc/self/smaps_rollup, its
threads (name and innermost frame), the live objects counted by type (``gc``), and with
``--tracemalloc N`` the allocation sites (N frames deep) that grew most since the first
snapshot taken after the warm-up. ``bench_appliance.py --probe DIR`` runs the service
side through this.
"""

from __future__ import annotations

import argparse
import collections
import ctypes
import gc
import json
import sys
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _smaps() -> dict[str, int]:
    out = {}
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                out[parts[0].rstrip(":")] = int(parts[1])
    return out


def _threads() -> list[str]:
    frames = sys._current_frames()
    out = []
    for t in threading.enumerate():
        f = frames.get(t.ident or -1)
        where = f"{Path(f.f_code.co_filename).name}:{f.f_lineno} {f.f_code.co_name}" if f else "?"
        out.append(f"{t.name}: {where}")
    return out


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


_libc = ctypes.CDLL(None)
_libc.mallinfo2.restype = _Mallinfo2
try:  # the libsqlite3 that _sqlite3 is linked with (one copy per process)
    _sqlite = ctypes.CDLL("libsqlite3.so.0")
    _sqlite.sqlite3_memory_used.restype = ctypes.c_int64
    _sqlite.sqlite3_memory_highwater.restype = ctypes.c_int64
except OSError:
    _sqlite = None


def _native() -> dict[str, int]:
    """glibc's heap (in use, free but kept, mmapped) and SQLite's own count, in KiB."""
    m = _libc.mallinfo2()
    out = {"pymalloc_blocks": sys.getallocatedblocks(), "heap_kb": m.arena // 1024, "in_use_kb": m.uordblks // 1024, "free_kb": m.fordblks // 1024,
           "mmap_kb": m.hblkhd // 1024}
    if _sqlite is not None:
        out["sqlite_kb"] = _sqlite.sqlite3_memory_used() // 1024
        out["sqlite_high_kb"] = _sqlite.sqlite3_memory_highwater(0) // 1024
    return out


def _pymalloc() -> dict[str, int]:
    """pymalloc's arenas and the bytes in them, from sys._debugmallocstats (it prints to fd 2)."""
    import os
    import tempfile

    with tempfile.TemporaryFile() as tmp:
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)  # other threads' stderr lands here for this moment
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        text = tmp.read().decode(errors="replace")
    out = {}
    for line in text.splitlines():
        key, _, value = line.rpartition("=")
        key = key.strip().lstrip("# ").strip()
        value = value.strip().replace(",", "")
        if key in ("arenas allocated current", "arenas highwater mark") or key.startswith(
                ("bytes in allocated blocks", "bytes in available blocks", "Total")):
            out[key] = int(value) if value.isdigit() else value
    return out


def _types() -> collections.Counter[str]:
    return collections.Counter(type(o).__qualname__ for o in gc.get_objects())


def probe(out: Path, every: float, frames: int, warmup: float, trim: bool) -> None:
    t0 = time.monotonic()
    base_types: collections.Counter[str] | None = None
    base_snap: tracemalloc.Snapshot | None = None
    with out.open("w") as f:
        while True:
            time.sleep(every)
            t = time.monotonic() - t0
            row: dict[str, Any] = {"t": round(t, 1), "smaps_kb": _smaps(), "threads": _threads(),
                                   "native": _native()}
            if trim:  # what malloc_trim gives back is what the heap held free (fragmentation)
                _libc.malloc_trim(0)
                row["rss_after_trim_kb"] = _smaps()["Rss"]
            row["pymalloc"] = _pymalloc()
            types = _types()
            row["objects"] = sum(types.values())
            if base_types is None and t >= warmup:
                base_types = types
            if base_types is not None:
                grown = types.copy()
                grown.subtract(base_types)
                row["types_grown"] = [(k, v) for k, v in grown.most_common(15) if v > 0]
            row["types_top"] = types.most_common(15)
            if frames:
                snap = tracemalloc.take_snapshot().filter_traces(
                    [tracemalloc.Filter(False, tracemalloc.__file__)])
                row["traced_kb"] = tracemalloc.get_traced_memory()[0] // 1024
                if base_snap is None and t >= warmup:
                    base_snap = snap
                if base_snap is not None:
                    row["grown"] = [(str(s.traceback.format()[-1:]), s.size_diff // 1024, s.count_diff)
                                    for s in snap.compare_to(base_snap, "traceback")[:15]]
                row["top"] = [(str(s.traceback.format()[-1:]), s.size // 1024, s.count)
                              for s in snap.statistics("traceback")[:15]]
            f.write(json.dumps(row) + "\n")
            f.flush()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--every", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=20.0, help="seconds before the baseline snapshot")
    ap.add_argument("--tracemalloc", type=int, default=0, metavar="FRAMES")
    ap.add_argument("--trim", action="store_true", help="call malloc_trim(0) after each sample")
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    args = ap.parse_args(argv[:cut])
    edge_args = argv[cut + 1:]
    if args.tracemalloc:
        tracemalloc.start(args.tracemalloc)
    threading.Thread(target=probe, args=(args.out, args.every, args.tracemalloc, args.warmup, args.trim),
                     name="memprobe", daemon=True).start()
    from edge.cli import main as edge_main

    sys.exit(edge_main(edge_args))


if __name__ == "__main__":
    main()
