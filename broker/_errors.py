"""Errors raised by the local log.

The tree, with leaves chosen by how a caller reacts::

    BrokerError                      root: catch this to catch everything from broker/
    ├── ConfigError                  a bad argument or topic config; fix the call
    │   ├── InvalidTopicError        a topic name Kafka would refuse too
    │   ├── InvalidPartitionsError   a partition count outside 1..MAX_PARTITIONS, or shrinking a topic
    │   └── SerializationError       a key/value that is not bytes and no serializer
    ├── UnknownTopicOrPartitionError the topic or partition does not exist
    ├── TopicAlreadyExistsError      create_topics on a name that is taken
    ├── OffsetOutOfRangeError        no committed offset and auto_offset_reset="none"
    ├── GroupIdNotFoundError         a consumer group that never committed and is not protected
    ├── LogFullError                 the disk quota is reached and the policy is "reject"
    │                                (retriable: retention or the uplink may free room)
    ├── StorageError                 the database file or directory is unusable
    │   ├── LogLockedError           another process holds the write lock too long (retriable)
    │   ├── CorruptLogError          the file is not a log database (damaged, or another
    │   │                            program's SQLite file); it was left untouched
    │   ├── LogVersionError          the log was written by a newer version of this software
    │   └── ReadOnlyLogError         the database or its directory cannot be written (mode,
    │                                owner, a read-only mount)
    ├── CommitFailedError            a transaction's expected group offsets were moved by
    │                                another member: nothing was written (not retriable)
    ├── KafkaTimeoutError            a wait (flush, future.get, send() on a full buffer_memory)
    │                                ran out of time (retriable)
    └── ClosedError                  the producer/consumer/admin was closed by its owner

Retry loops read ``retriable`` instead of matching types.  Foreign errors
(``sqlite3``, ``OSError``) are translated in ``_storage.translate`` only.
"""

from __future__ import annotations


class BrokerError(Exception):
    """Root of every error raised by ``broker``."""

    retriable: bool = False


class ConfigError(BrokerError):
    """An argument or topic config is not acceptable."""


class InvalidTopicError(ConfigError):
    """A topic name that Kafka would refuse too."""


class InvalidPartitionsError(ConfigError):
    """A partition count below 1, or a request to shrink a topic."""


class SerializationError(ConfigError):
    """A key or value that is not bytes, and no serializer to make it so."""


class UnknownTopicOrPartitionError(BrokerError):
    """The topic or the partition does not exist in this log."""


class TopicAlreadyExistsError(BrokerError):
    """A topic of that name already exists."""


class OffsetOutOfRangeError(BrokerError):
    """A position outside the log, and no reset policy to fix it (``auto_offset_reset="none"``)."""


class GroupIdNotFoundError(BrokerError):
    """No consumer group of that id: it never committed an offset and is not protected."""


class LogFullError(BrokerError):
    """The log reached its disk quota and the full-disk policy is ``reject``."""

    retriable = True


class StorageError(BrokerError):
    """The data directory or database file cannot be used."""


class LogLockedError(StorageError):
    """Another process held the write lock for longer than the busy timeout."""

    retriable = True


class CorruptLogError(StorageError):
    """The database file is not a valid log; it was left untouched."""


class LogVersionError(StorageError):
    """The log's schema is newer than this software knows; it was left untouched."""


class ReadOnlyLogError(StorageError):
    """The log's database or directory cannot be written by this process."""


class CommitFailedError(BrokerError):
    """A transaction expected other group offsets than the log holds; it was rolled back."""


class KafkaTimeoutError(BrokerError):
    """A wait ran out of time before the operation completed."""

    retriable = True


class ClosedError(BrokerError):
    """The client was closed by its owner; open a new one."""
