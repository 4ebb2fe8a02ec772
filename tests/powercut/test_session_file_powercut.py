"""An MQTT session's epoch file survives a power cut right after it was saved.

The service keeps it in a directory of the data dir that it makes at the
first session.  SQLite fsyncs the data dir only when one of its connections
first syncs the WAL, so whether that directory's name was durable at a cut
depended on what the log happened to do afterwards; when it was not, the
resumed sessions got new epochs and their redeliveries were written twice.
"""

from __future__ import annotations

import os

from devices.transports._session import SessionFile
from tests.fixtures.lazyfs_mount import LazyFs


def test_a_saved_epoch_survives_a_power_cut(lazyfs: LazyFs) -> None:
    data_dir = lazyfs.mountpoint / "data"
    data_dir.mkdir()
    fd = os.open(lazyfs.mountpoint, os.O_RDONLY)  # the data dir is durable, as the log makes it
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    sessions = SessionFile(data_dir / "mqtt-sessions", "127.0.0.1:1883", "edge-box-rooms")
    sessions.save("0123456789ab")
    lazyfs.cut()
    lazyfs.mount()
    assert sessions.load() == "0123456789ab"
