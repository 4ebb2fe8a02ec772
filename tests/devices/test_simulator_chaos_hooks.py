"""edge-sim's hooks for chaos runs: PUBACKs recorded per reading across a Mosquitto restart,
and SIGUSR1 unplugging and replugging a pty at the same link path."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def sim_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "devices", "--no-progress", *args]


@pytest.mark.mqtt
def test_acks_file_names_every_reading_after_a_broker_restart(mosquitto, tmp_path: Path) -> None:
    truth, acks = tmp_path / "truth.jsonl", tmp_path / "acks.txt"
    proc = subprocess.Popen(
        sim_cmd("--output", "mqtt", "--mqtt-port", str(mosquitto.port), "--rate", "50",
                "--count", "150", "--seed", "3", "--truth", str(truth), "--acks", str(acks)),
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)  # mid-run (3 s of readings): the publisher is connected and sending
    mosquitto.restart()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    seqs = [json.loads(line)["seq"] for line in truth.read_text().splitlines()
            if json.loads(line)["type"] == "reading"]
    acked = [int(line) for line in acks.read_text().split()]
    assert len(seqs) == 450
    assert sorted(acked) == seqs, "every reading acknowledged exactly once"
    assert "not acknowledged" not in err


def test_sigusr1_replugs_the_pty_at_the_same_link(tmp_path: Path) -> None:
    links, truth = tmp_path / "dev", tmp_path / "truth.jsonl"
    proc = subprocess.Popen(
        sim_cmd("--output", "pty", "--link-dir", str(links), "--gps", "0", "--rooms", "1",
                "--patients", "0", "--rate", "20", "--count", "60", "--unplug-seconds", "0.05",
                "--wait-reader", "20", "--truth", str(truth)),
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    link = links / "room-1"
    paths, lines = [], b""
    try:
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline:
            if not link.exists():
                time.sleep(0.01)
                continue
            paths.append(os.path.realpath(link))
            fd = os.open(link, os.O_RDONLY | os.O_NOCTTY)
            try:
                if len(paths) == 1:
                    proc.send_signal(signal.SIGUSR1)
                while True:
                    try:
                        chunk = os.read(fd, 4096)
                    except OSError:  # EIO: the master side was closed (unplugged)
                        break
                    if not chunk:
                        break
                    lines += chunk
            finally:
                os.close(fd)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    log = [json.loads(line) for line in truth.read_text().splitlines()]
    assert [t["type"] for t in log if t["type"] != "reading"] == ["unplug", "replug"]
    assert len(paths) >= 2, "the reader opened the link again after the replug"
    # Unplugging drains first: every reading reached the reader.
    assert len(lines.splitlines()) == 60


@pytest.mark.mqtt
def test_sigterm_ends_the_run_cleanly_with_every_reading_recorded_and_acked(
        mosquitto, tmp_path: Path) -> None:
    truth, acks = tmp_path / "truth.jsonl", tmp_path / "acks.txt"
    proc = subprocess.Popen(
        sim_cmd("--output", "mqtt", "--mqtt-port", str(mosquitto.port), "--rate", "50",
                "--count", "1000", "--seed", "4", "--truth", str(truth), "--acks", str(acks)),
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    rows = [json.loads(line) for line in truth.read_text().splitlines()]
    seqs = [r["seq"] for r in rows if r["type"] == "reading"]
    assert 0 < len(seqs) < 3000 and seqs == list(range(1, len(seqs) + 1))
    assert sorted(int(x) for x in acks.read_text().split()) == seqs


def _sigterm_and_wait(proc: subprocess.Popen, after_s: float) -> tuple[int, str]:
    time.sleep(after_s)
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError("edge-sim did not end within 15 s of SIGTERM") from None
    return proc.returncode, err


def test_sigterm_ends_a_pty_run_that_still_waits_for_its_reader(tmp_path: Path) -> None:
    # Nobody opens the ports: it waits up to --wait-reader (30 s), which SIGTERM cuts short.
    proc = subprocess.Popen(sim_cmd("--output", "pty", "--link-dir", str(tmp_path), "--rate", "5",
                                    "--duration", "60"),
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    rc, err = _sigterm_and_wait(proc, 2.0)
    assert rc == 0, err
    assert not list(tmp_path.iterdir()), "the links are removed at the end"


def test_sigterm_ends_a_pty_run_whose_reader_stopped_reading(tmp_path: Path) -> None:
    # One device, as fast as the pty takes it, and a reader that opens it and never reads:
    # the kernel's buffer fills and every write waits, until SIGTERM.
    proc = subprocess.Popen(sim_cmd("--output", "pty", "--link-dir", str(tmp_path), "--fast",
                                    "--gps", "0", "--rooms", "1", "--patients", "0", "--count", "1000000",
                                    "--duration", "100000"),
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    link = Path(proc.stdout.readline().split("\t")[2].strip())
    fd = os.open(link, os.O_RDONLY | os.O_NOCTTY)
    try:
        rc, err = _sigterm_and_wait(proc, 2.0)
    finally:
        os.close(fd)
    assert rc == 0, err
