"""The machine a benchmark ran on, and process memory and CPU as the OS reports them.

Pure reads of /proc, platform and the installed tools; no benchmark logic.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import sqlite3
import subprocess
import tempfile
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

_CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Machine:
    """What a reader needs to compare our numbers with theirs."""

    cpu_model: str
    cores: int
    ram_gib: float
    kernel: str
    os: str
    python: str
    sqlite: str
    java: str
    kafka: str
    load_average: str

    def as_dict(self) -> dict[str, str | int | float]:
        return asdict(self)

    def markdown(self) -> str:
        """A two-column markdown table."""
        rows = [
            ("CPU", f"{self.cpu_model}, {self.cores} cores"),
            ("RAM", f"{self.ram_gib:.1f} GiB"),
            ("kernel", self.kernel),
            ("OS", self.os),
            ("Python", self.python),
            ("SQLite", self.sqlite),
            ("Java", self.java),
            ("Apache Kafka", self.kafka),
            ("load average (1, 5, 15 min) at start", self.load_average),
        ]
        return "\n".join(["| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)])


def describe() -> Machine:
    """Describe this machine (reads /proc; runs ``java -version`` once)."""
    return Machine(
        cpu_model=_cpu_model(),
        cores=os.cpu_count() or 0,
        ram_gib=_ram_gib(),
        kernel=f"{platform.system()} {platform.release()}",
        os=_os_name(),
        python=f"{platform.python_implementation()} {platform.python_version()}",
        sqlite=sqlite3.sqlite_version,
        java=_java_version(),
        kafka=_kafka_version(),
        load_average=", ".join(f"{x:.2f}" for x in os.getloadavg()),
    )


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return float("nan")


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.platform()


def _java_version() -> str:
    java = shutil.which("java")
    if java is None:
        return "not installed"
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    # The second line names the runtime build, e.g. "OpenJDK Runtime Environment (build 17.0.15+6-...)".
    lines = out.stderr.strip().splitlines()
    m = re.search(r'version "([^"]+)"', lines[0]) if lines else None
    runtime = lines[1].strip() if len(lines) > 1 else ""
    return f"{m.group(1) if m else lines[0] if lines else '?'} ({runtime})" if runtime else (
        m.group(1) if m else "unknown")


def _kafka_version() -> str:
    try:
        from deploy.kafka._config import KAFKA_VERSION
    except ImportError:
        return "unknown"
    return f"{KAFKA_VERSION} (KRaft, jars from Maven Central)"


# -- process memory and CPU, from the OS ---------------------------------------------------------

def proc_status_kb(pid: int, field: str) -> int | None:
    """A ``kB`` field of /proc/<pid>/status (``VmHWM`` = peak RSS, ``VmRSS``), or None if gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def proc_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds that pid has used so far (/proc/<pid>/stat), or None if gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    # Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    rest = raw.rsplit(b")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / _CLK_TCK


@dataclass(frozen=True)
class ChildUsage:
    """A child process that has exited: its output, peak RSS and CPU time, from the kernel."""

    returncode: int
    stdout: str
    stderr: str
    peak_rss_mb: float
    cpu_seconds: float


def run_measured(argv: list[str], *, timeout: float = 900, env: dict[str, str] | None = None,
                 cwd: str | os.PathLike[str] | None = None) -> ChildUsage:
    """Run argv to completion, measuring its peak RSS and CPU time from the OS. Blocking.

    Peak RSS is the child's VmHWM (/proc/<pid>/status), read every 20 ms while it runs.
    Not getrusage's ru_maxrss: Linux carries the parent's high-water mark into a forked and
    exec'd child, so a child of a big parent would report at least the parent's size.
    CPU time (user + system) comes from wait4. Raises subprocess.TimeoutExpired (after
    killing the child) if it runs longer than timeout seconds. Output goes through
    temporary files, so a chatty child cannot block on a full pipe while we wait.
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err, text=True, env=env, cwd=cwd)
        peak_kb = [0]
        exited = threading.Event()

        def poll_hwm() -> None:
            while not exited.is_set():
                kb = proc_status_kb(proc.pid, "VmHWM")
                if kb is not None and kb > peak_kb[0]:
                    peak_kb[0] = kb
                exited.wait(0.02)

        poller = threading.Thread(target=poll_hwm, name="vmhwm-poller", daemon=True)
        poller.start()
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            proc.kill()

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            # wait4, not Popen.wait: only wait4 returns this one child's rusage.
            _pid, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
            exited.set()
            poller.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if timed_out.is_set():
        raise subprocess.TimeoutExpired(argv, timeout, output=stdout, stderr=stderr)
    return ChildUsage(returncode=proc.returncode, stdout=stdout, stderr=stderr,
                      peak_rss_mb=peak_kb[0] / 1024,
                      cpu_seconds=usage.ru_utime + usage.ru_stime)


def run_child_cell(argv: list[str], what: str, *, timeout: float = 900) -> dict[str, Any]:
    """Run a benchmark child that prints its figures as JSON on its last line; those figures
    plus ``rss_mb``, its peak RSS from the OS (run_measured). Raises RuntimeError naming
    `what` with the child's stderr if it fails."""
    usage = run_measured(argv, timeout=timeout)
    if usage.returncode != 0:
        raise RuntimeError(f"{what} exited {usage.returncode}:\n{usage.stderr[-2000:]}")
    out = json.loads(usage.stdout.strip().splitlines()[-1])
    out["rss_mb"] = usage.peak_rss_mb
    return out


def self_peak_rss_mb() -> float:
    """This process's own peak RSS so far (VmHWM of /proc/self/status), in MB."""
    kb = proc_status_kb(os.getpid(), "VmHWM")
    return kb / 1024 if kb is not None else float("nan")
