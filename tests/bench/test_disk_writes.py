"""bench/bench_disk_writes.py: its breakdown of the log's writes by file, and a short real run.

The breakdown is checked on strace lines written here (what each call adds, fsyncs
that clean a file's pages, frames counted by their 24-byte headers); the run checks
that the command measures something and says what, never how much.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

sys.path.insert(0, str(REPO / "bench"))
from bench_disk_writes import PAGE, breakdown  # noqa: E402

TRACE = """\
101 pwrite64(7</d/log.db-wal>, "..."..., 24, 32) = 24
101 pwrite64(7</d/log.db-wal>, "..."..., 4096, 56) = 4096
101 pwrite64(7</d/log.db-wal>, "..."..., 24, 4152) = 24
101 pwrite64(7</d/log.db-wal>, "..."..., 4096, 4176) = 4096
101 fsync(7</d/log.db-wal>) = 0
101 pwrite64(8</d/log.notify>, "\\1", 1, 0) = 1
101 pwrite64(7</d/log.db-wal>, "..."..., 24, 8272) = 24
101 pwrite64(7</d/log.db-wal>, "..."..., 4096, 8296) = 4096
101 fsync(7</d/log.db-wal>) = 0
101 pwrite64(8</d/log.notify>, "\\1", 1, 0) = 1
101 write(3</tmp/other.txt>, "x", 1) = 1
"""


def test_the_breakdown_splits_writes_by_file_and_models_dirtied_pages(tmp_path: Path) -> None:
    trace = tmp_path / "trace.txt"
    trace.write_text(TRACE)
    rows = {name: rest for name, *rest in breakdown(trace, commits=2, events=2)}
    assert "other.txt" not in rows  # only the log's files
    assert rows["WAL frames"][0] == 1.5  # 3 frame headers in 2 commits
    calls, nbytes, pages = rows["log.db-wal"]
    assert calls == 3.0 and nbytes == (3 * (24 + 4096)) / 2
    # Commit 1 dirties WAL pages 0-2 (bytes 32..8271); its fsync cleans them, so commit 2
    # dirties page 2 again, and 3: 5 pages for 2 events.
    assert pages == 5 * PAGE / 2
    assert rows["  fsyncs of log.db-wal"][0] == 1.0
    # The notify file is never fsynced: its page counts once.
    assert rows["log.notify"][2] == PAGE / 2


def test_a_short_run_measures_the_log(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, str(REPO / "bench" / "bench_disk_writes.py"), "--no-kafka", "--rates", "20",
         "--seconds", "1"],
        capture_output=True, text=True, timeout=300, cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "BENCH_DISK_DIR": str(tmp_path)})
    assert run.returncode == 0, run.stderr
    assert "| bytes written per event at 20 events/s ↓ |" in run.stdout
    assert "20 events/s:" in run.stdout and "commits per event" in run.stdout
    assert not list(tmp_path.iterdir()), "the run left its log behind"
