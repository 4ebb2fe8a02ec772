"""The epoch of an MQTT session: which session a packet id belongs to, kept across restarts.

A QoS 1 packet id names a message only within one session of one client at one broker.
Packet ids start over when the broker loses the session (a Mosquitto without persistence
restarts, the session expires, a clean start) and wrap after 65,535. A redelivery (DUP)
is always a packet of the session that is resumed, never of an earlier one, so the
transport tags every message with its session's epoch: a fresh random token each time a
CONNACK says "session present: 0", the same token while it says 1.

The epoch must outlive the process: a service SIGKILLed with messages in flight resumes
the same session on restart, and its redeliveries must carry the epoch the first copies
were written with. So a new epoch is written to a small file (atomically, fsynced)
before the subscription that lets the session's first message in. One write per new
session, not per message.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)


def new_epoch() -> str:
    """A token that no earlier session of this client has had (48 random bits)."""
    return os.urandom(6).hex()


class SessionFile:
    """Where one client's session epoch is kept: ``<directory>/<hash of broker and client>.json``.

    ``directory`` None keeps it in memory only (a new transport then starts a new epoch,
    so a redelivery to it is written again: a duplicate, never a loss).
    """

    def __init__(self, directory: str | os.PathLike[str] | None, broker: str, client_id: str) -> None:
        self.broker, self.client_id = broker, client_id
        if directory is None:
            self.path: Path | None = None
        else:
            name = hashlib.sha256(f"{broker}\0{client_id}".encode()).hexdigest()[:24]
            self.path = Path(directory) / f"{name}.json"

    def load(self) -> str | None:
        """The epoch written last for this broker and client, or None (none, or unreadable)."""
        if self.path is None:
            return None
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            # Unknown epoch: the resumed session gets a new one, so copies are written twice.
            log.warning("MQTT session file %s unreadable (%s); starting a new epoch", self.path, exc)
            return None
        if (not isinstance(data, dict) or data.get("broker") != self.broker
                or data.get("client_id") != self.client_id or not isinstance(data.get("epoch"), str)):
            return None
        return data["epoch"]

    def save(self, epoch: str) -> None:
        """Make ``epoch`` durable (write, fsync, rename, fsync the directory); raises OSError."""
        if self.path is None:
            return
        directory = self.path.parent
        if not directory.is_dir():
            directory.mkdir(parents=True, exist_ok=True)
            # The new directory's own name is durable only once its parent is fsynced: without
            # this a power cut took every session file, and the resumed sessions' redeliveries
            # were written again under new epochs.
            _fsync_dir(directory.parent)
        tmp = self.path.with_suffix(".tmp")
        body = json.dumps({"broker": self.broker, "client_id": self.client_id, "epoch": epoch})
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(body + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        _fsync_dir(directory)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
