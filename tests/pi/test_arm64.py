"""The appliance on arm64, for real: install.sh and an end-to-end smoke in an arm64 Debian root.

deploy/pi/arm64-root.sh makes a bookworm arm64 root (debootstrap, cached as a tarball)
and runs commands in it under qemu-aarch64 (binfmt_misc). In it, deploy/pi/install.sh
builds /opt/edge/venv from requirements.lock exactly as on a Pi, and smoke_inside.py
runs `edge-sim` on ptys into `edge run`, asks `edge status`, stops it with SIGTERM and
reads the log back. Marked `arm64`: deploy/test.sh runs it as its own pytest run (the
default selection leaves it out: it needs root and minutes of emulation).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ROOT_SH = REPO / "deploy" / "pi" / "arm64-root.sh"
EM_AARCH64 = 183  # ELF e_machine

# Cold (debootstrap under emulation, every wheel downloaded) is the budget: 20 minutes.
pytestmark = [pytest.mark.arm64, pytest.mark.timeout(1200)]


def mounts_under(root: Path) -> list[str]:
    """Mount points at or below root in this mount namespace, deepest last."""
    prefix = str(root.resolve())
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            found.append(point)
    return found


@pytest.fixture
def arm64_root(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.fail("the arm64 test needs root (debootstrap, chroot, mounts); CI runs as root")
    root = tmp_path / "root"
    try:
        took(None)
        run(ROOT_SH, "make", root, timeout=900)
        took("root")
        yield root
    finally:
        # arm64-root.sh mounts only in a namespace of its own, which dies with its
        # command; should anything have leaked here all the same, it is unmounted before
        # the root is deleted (rmtree through a mounted /proc or /dev/pts would be bad).
        for point in reversed(mounts_under(root)):
            subprocess.run(["umount", "--lazy", point], check=False)
        leaked = mounts_under(root)
        assert not leaked, f"mounts left under the arm64 root: {leaked}"
        subprocess.run(["rm", "-rf", "--one-file-system", str(root)], check=False)


_since = [time.monotonic()]


def took(what: str | None) -> None:
    """The time since the last call on stdout (`pytest -s` shows it), for the figures in
    deploy/pi/README.md: printed, never asserted."""
    now = time.monotonic()
    if what:
        print(f"arm64 {what}: {now - _since[0]:.0f} s")
    _since[0] = now


def run(*cmd: object, timeout: float) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, (f"{' '.join(map(str, cmd))} exited {proc.returncode}\n"
                                  f"--- stdout\n{proc.stdout[-6000:]}\n--- stderr\n{proc.stderr[-6000:]}")
    return proc


def copy_checkout(root: Path) -> None:
    """What install.sh reads from its checkout, as a Pi's `git clone` would have it."""
    dest = root / "usr/local/src/edge"
    dest.mkdir(parents=True)
    skip = ("__pycache__", ".egg-info", "deploy/kafka/lib", "deploy/kafka/.m2")

    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        return None if any(s in info.name for s in skip) else info

    archive = root / "usr/local/src/edge.tar"
    with tarfile.open(archive, "w") as tar:
        for name in ("pyproject.toml", "README.md", "broker", "devices", "edge", "deploy",
                     "systemd"):
            tar.add(REPO / name, arcname=name, filter=keep)
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="tar")
    archive.unlink()
    (root / "usr/local/src/smoke_inside.py").write_bytes(
        (REPO / "tests/pi/smoke_inside.py").read_bytes())


def elf_machine(path: Path) -> int | None:
    head = path.read_bytes()[:20]
    if head[:4] != b"\x7fELF":
        return None
    return int.from_bytes(head[18:20], "little")


def in_root(root: Path, path: str) -> Path:
    """A path inside the root, its absolute symlinks followed inside the root."""
    p = root / path.lstrip("/")
    for _ in range(10):
        if not p.is_symlink():
            return p
        target = os.readlink(p)
        p = root / target.lstrip("/") if target.startswith("/") else p.parent / target
    raise AssertionError(f"too many links at {path}")


def test_install_and_run_on_arm64(arm64_root: Path) -> None:
    root = arm64_root
    copy_checkout(root)

    install = run(ROOT_SH, "run", root, "/usr/local/src/edge/deploy/pi/install.sh",
                  "--no-systemctl", timeout=900)
    took("install.sh")
    assert "/opt/edge/venv" in install.stdout and "installed (" in install.stdout, install.stdout
    venv = root / "opt/edge/venv"
    assert elf_machine(in_root(root, "/opt/edge/venv/bin/python")) == EM_AARCH64
    # Every compiled module the lock brought is an aarch64 build (a wheel or built there).
    compiled = sorted(venv.glob("lib/python3*/site-packages/**/*.so"))
    assert compiled, "no compiled modules in the venv: aiokafka and cramjam have some"
    wrong = [str(p.relative_to(venv)) for p in compiled if elf_machine(p) != EM_AARCH64]
    assert not wrong, f"not aarch64: {wrong}"

    smoke = run(ROOT_SH, "run", root, "/opt/edge/venv/bin/python",
                "/usr/local/src/smoke_inside.py", "/var/tmp/smoke", timeout=900)
    took("smoke")
    report = json.loads(smoke.stdout.strip().splitlines()[-1])
    context = json.dumps(report, indent=1)[-8000:]
    assert report["machine"] == "aarch64", context
    assert report["config_check"]["rc"] == 0, context
    assert report["sim"]["rc"] == 0, context
    assert report["edge_rc"] == 0, context  # SIGTERM: a clean stop, exit status 0
    assert "stopped cleanly" in report["edge_log"], context
    assert report["status"]["rc"] == 0, context
    assert "arm64-smoke: OK" in report["status"]["stdout"], context
    expected = report["expected"]
    assert set(expected) == {"car-1", "room-1", "bed-1"}, context
    got = {key: n for per in report["log"].values() for key, n in per.items()}
    # Every reading is in the log (the GPS's last epoch too: handed on at shutdown).
    assert got == expected, context

    # The arm64 box's log file, read here on x86_64 with the host's own broker: the
    # SQLite file moves between machines (a card read on a laptop, say).
    from broker import KafkaConsumer

    host: dict[str, int] = {}
    for topic in ("gps", "temperature", "blood_pressure"):
        consumer = KafkaConsumer(topic, data_dir=str(root / "var/tmp/smoke/data"),
                                 auto_offset_reset="earliest", consumer_timeout_ms=500)
        try:
            for rec in consumer:
                host[rec.key.decode()] = host.get(rec.key.decode(), 0) + 1
        finally:
            consumer.close()
    assert host == expected, (host, sys.platform)


def test_mounts_inside_the_root_go_with_the_command(arm64_root: Path) -> None:
    root = arm64_root
    # A command that fails: its status comes back, and /proc, /dev/pts, /dev/shm and the
    # pip cache were mounted for it and for it alone.
    proc = subprocess.run([str(ROOT_SH), "run", str(root), "/bin/sh", "-c",
                           "grep -cE ' (/proc|/dev/pts|/dev/shm|/var/cache/edge-pip) ' "
                           "/proc/self/mountinfo; exit 3"],
                          capture_output=True, text=True, timeout=300)
    assert (proc.returncode, proc.stdout.strip()) == (3, "4"), proc
    assert mounts_under(root) == []
    # A command killed outright (SIGKILL: no trap, no finally runs): its mounts were never
    # the host's, and they are gone with it.
    sleeper = subprocess.Popen([str(ROOT_SH), "run", str(root), "/bin/sleep", "600"])
    try:
        mine = Path(f"/proc/{sleeper.pid}/mountinfo")
        deadline = time.monotonic() + 120
        while " /dev/pts " not in mine.read_text():
            assert time.monotonic() < deadline, "the root's mounts never appeared"
            time.sleep(0.2)
        assert mounts_under(root) == []  # not visible here while it runs
    finally:
        sleeper.kill()
        sleeper.wait(60)
    assert mounts_under(root) == []
