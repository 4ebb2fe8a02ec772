"""Java processes: finding java and the jars, launching a JVM in its own
process group, and making sure it is gone.

Every JVM runs as the leader of a new session, so killing its process group
takes any child with it, and signals meant for the test runner (Ctrl-C)
do not reach it: the owner decides when a broker dies.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from .errors import JarsMissingError, JavaNotFoundError, KafkaDeployError

HERE = Path(__file__).resolve().parent
LIB_DIR = HERE / "lib"
FETCH_SCRIPT = HERE / "fetch.sh"


def find_java() -> str:
    """The java executable: $JAVA_HOME/bin/java, else the one on PATH."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and os.access(Path(java_home, "bin", "java"), os.X_OK):
        return str(Path(java_home, "bin", "java"))
    found = shutil.which("java")
    if found is None:
        raise JavaNotFoundError(
            "no java found on PATH or in $JAVA_HOME; install a Java 17 runtime "
            "(Debian: apt-get install openjdk-17-jre-headless) or run deploy/setup.sh"
        )
    return found


def ensure_jars() -> str:
    """The JVM class path of Kafka's jars, running fetch.sh first if lib/ is not complete.

    Blocking: a first fetch downloads about 60 MB from Maven Central.
    """
    if not list(LIB_DIR.glob(".fetched-*")):
        result = subprocess.run([str(FETCH_SCRIPT)], capture_output=True, text=True, check=False)
        if result.returncode != 0 or not list(LIB_DIR.glob(".fetched-*")):
            raise JarsMissingError(
                f"Kafka's jars are not in {LIB_DIR} and {FETCH_SCRIPT} failed "
                f"(exit {result.returncode}); run it by hand to see why:\n"
                f"{result.stderr.strip()[-2000:]}"
            )
    return str(LIB_DIR / "*")


def launch(argv: Sequence[str], log_path: Path, cwd: Path) -> subprocess.Popen[bytes]:
    """Start argv in a new session with stdout and stderr appended to log_path."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
        )


def pid_alive(pid: int) -> bool:
    """Whether pid names a process that has not exited (a zombie counts as exited)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            # The state letter follows the parenthesised command name.
            state = stat.read().rsplit(b")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in (b"Z", b"X")


def pid_cmdline(pid: int) -> str:
    """The command line of pid, arguments joined by spaces, or '' if it is gone."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except (FileNotFoundError, ProcessLookupError):
        return ""


def kill_group(pid: int, sig: int = signal.SIGKILL) -> None:
    """Send sig to the process group that pid leads; no error if it is gone."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def wait_gone(pid: int, popen: subprocess.Popen[bytes] | None, timeout_s: float) -> bool:
    """Wait until pid has exited (reaping it when it is our child). True if it did."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if popen is not None:
            if popen.poll() is not None:
                return True
        elif not pid_alive(pid):
            return True
        time.sleep(0.05)
    return False


def stop_group(pid: int, popen: subprocess.Popen[bytes] | None, graceful_s: float = 0.0) -> None:
    """End the process group led by pid: SIGTERM and up to graceful_s seconds, then SIGKILL.

    Returns only when the leader has exited; raises nothing if it already had.
    """
    if graceful_s > 0:
        kill_group(pid, signal.SIGTERM)
        if wait_gone(pid, popen, graceful_s):
            kill_group(pid, signal.SIGKILL)  # stragglers in the group, if any
            return
    kill_group(pid, signal.SIGKILL)
    if not wait_gone(pid, popen, 30.0):
        raise KafkaDeployError(
            f"process {pid} survived SIGKILL for 30 s; is it stuck in the kernel (D state)?"
        )
