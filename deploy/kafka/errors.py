"""Errors raised by deploy.kafka.

::

    KafkaDeployError                 root: catch this to handle anything below
    ├── JavaNotFoundError            no java on PATH or in JAVA_HOME
    ├── JarsMissingError             deploy/kafka/lib/ is empty and fetch.sh failed
    ├── ClusterStartError            a broker exited or never served; names its log
    └── ClusterStateError            no such cluster / broker, or a stale state file

None of them is retriable by waiting: each message says what to do instead.
"""

from __future__ import annotations

from pathlib import Path


class KafkaDeployError(Exception):
    """Root of every error raised by deploy.kafka."""

    retriable = False


class JavaNotFoundError(KafkaDeployError):
    """No Java runtime to start Kafka with."""


class JarsMissingError(KafkaDeployError):
    """Kafka's jars are not in deploy/kafka/lib/ and could not be fetched."""


class ClusterStartError(KafkaDeployError):
    """A broker exited during start-up or did not serve in time.

    ``log_path`` is the broker's console log; ``log_tail`` its last lines,
    already included in the message so a test failure shows them.
    """

    def __init__(self, message: str, log_path: Path | None = None, log_tail: str = "") -> None:
        self.log_path = log_path
        self.log_tail = log_tail
        if log_path is not None:
            message = f"{message}\n  read {log_path}; its last lines:\n{_indent(log_tail)}"
        super().__init__(message)


class ClusterStateError(KafkaDeployError):
    """The cluster or broker asked for does not exist or is not in the needed state."""


def _indent(text: str) -> str:
    return "\n".join("    | " + line for line in text.splitlines()) or "    | (empty)"
