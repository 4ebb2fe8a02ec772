"""Exactly once across power cuts: the streams runner of tests/streams/test_eos_kill.py, on the
power-cut filesystem, cut at random moments (some cuts torn), then let finish; its output,
state and group offsets are byte for byte those of an uninterrupted run on a plain disk.

Each step commits its outputs, input offsets and state in one transaction, so a cut must
leave all of a step or none of it; and a commit another process saw must still be there.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from broker import KafkaAdminClient
from tests.fixtures.lazyfs_mount import LazyFs
from tests.streams import test_eos_kill as eos

CUTS = 5


def _child(data_dir: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "tests.streams.test_eos_kill", str(data_dir)],
                            cwd=eos.ROOT, env={**os.environ, "PYTHONPATH": str(eos.ROOT)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _committed(data_dir: Path) -> int:
    # A new client each time: one held open across a cut would only see ENOTCONN.
    with KafkaAdminClient(data_dir) as admin:
        return sum(om.offset for om in admin.list_consumer_group_offsets("streams.kill").values())


def test_power_cuts_at_random_moments_change_nothing(tmp_path: Path, lazyfs: LazyFs) -> None:
    calm, cut = tmp_path / "calm", lazyfs.mountpoint / "data"
    eos.write_input(calm)
    eos.write_input(cut)
    proc = _child(calm)
    _out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err.decode()[-3000:]
    want = eos.dump(calm)
    assert sum(want["offsets"].values()) == eos.RECORDS

    rng = random.Random(12)
    progress = [0]
    mid_run = 0
    for _ in range(CUTS):
        proc = _child(cut)
        try:
            # Cut after this life committed a step, at a random moment of the next few.
            while _committed(cut) == progress[-1] and proc.poll() is None:
                time.sleep(0.01)
            seen = _committed(cut)  # what another process saw committed: it must survive
            time.sleep(rng.uniform(0, 0.3))
            if proc.poll() is not None:
                break
            proc.send_signal(signal.SIGSTOP)
            lazyfs.cut(keep=rng.choice([0.0, 0.5]), seed=rng.randint(0, 1 << 30))
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=30)
        lazyfs.mount()
        done = _committed(cut)
        assert done >= seen, f"a commit seen at {seen} was lost in the cut: {done} after it ({progress})"
        if 0 < done < eos.RECORDS:
            mid_run += 1
        progress.append(done)
    proc = _child(cut)
    _out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err.decode()[-3000:]
    assert mid_run >= 3, f"cuts did not land during processing: committed after each {progress}"
    got = eos.dump(cut)
    for key in want:
        assert got[key] == want[key], f"{key} differs after {mid_run} cuts mid-run ({progress})"
