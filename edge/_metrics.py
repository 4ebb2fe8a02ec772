"""The appliance's Prometheus metrics, in a registry of its own (one per service)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    """Every metric the service exports on /metrics."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.events_in = Counter("edge_events_in", "Readings written to the local log",
                                 ["device", "topic"], registry=r)
        self.decode_errors = Counter("edge_decode_errors", "Frames that did not decode",
                                     ["device", "reason"], registry=r)
        self.dead_letters = Counter("edge_dead_letters", "Frames written to the dead-letter topic",
                                    ["device"], registry=r)
        self.deduplicated = Counter(
            "edge_events_deduplicated", "Readings acknowledged without a second write because the "
            "log already held them (reason: redelivery = an MQTT DUP copy, content = the same "
            "key, device time and value within the device's dedupe_window)",
            ["device", "reason"], registry=r)
        self.write_failures = Counter("edge_log_write_failures", "Events the log refused",
                                      ["device", "error"], registry=r)
        self.device_restarts = Counter("edge_device_restarts", "Device adapters restarted after a failure",
                                       ["device"], registry=r)
        self.device_connected = Gauge("edge_device_connected", "1 when the device's transport is connected",
                                      ["device"], registry=r)
        self.last_reading = Gauge("edge_device_last_reading_timestamp_seconds",
                                  "Arrival time of the device's last reading", ["device"], registry=r)
        self.log_bytes = Gauge("edge_log_bytes", "Bytes of records in the local log", registry=r)
        self.log_records = Gauge("edge_log_records", "Records in the local log", registry=r)
        self.log_file_bytes = Gauge("edge_log_file_bytes", "Size of the log's database file", registry=r)
        self.log_disk_bytes = Gauge("edge_log_disk_bytes", "What the log's files take on disk (database, WAL,"
                                    " its index): what the disk quota bounds", registry=r)
        self.log_dropped = Gauge("edge_log_dropped_records", "Records dropped under the disk quota",
                                 registry=r)
        # A Counter named without _total: prometheus_client adds it on exposition.
        self.disk_written = Counter(
            "edge_disk_bytes_written", "Bytes the service wrote to disk (write_bytes of "
            "/proc/self/io): what wears the SD card", registry=r)
        self.disk_per_day = Gauge(
            "edge_disk_bytes_written_per_day", "Bytes a day of the last window's load would write "
            "(bytes written over the window x 86,400 / the window's seconds)", registry=r)
        self.log_expired = Gauge("edge_log_expired_records", "Records removed by retention", registry=r)
        self.commit_latency = Histogram(
            "edge_commit_latency_seconds", "From a reading's arrival to its durable append",
            registry=r, buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.clock_jumps = Counter("edge_clock_jumps", "Steps of the wall clock seen against the "
                                   "monotonic clock", ["direction"], registry=r)
        self.clock_status = Gauge("edge_clock_status", "1 for the clock status events are stamped "
                                  "with now (synced, gps, unknown, unsynced)", ["status"], registry=r)
        self.uplink_up = Gauge("edge_uplink_up", "1 when the uplink is connected upstream", registry=r)
        self.uplink_partition_mismatch = Gauge(
            "edge_uplink_partition_mismatch", "1 when the upstream topic's partition count is not the "
            "local topic's (a key's partition differs upstream)", ["topic"], registry=r)
