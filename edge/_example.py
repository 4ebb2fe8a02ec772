"""The commented example config that ``edge config example`` prints (a test validates it)."""

EXAMPLE_CONFIG = '''\
# edge.toml: the config of one edge appliance. Check it with `edge config check FILE`.
# Times are in seconds. Secrets can come from the environment instead of this file:
#   EDGE_UPSTREAM_SASL_PASSWORD, EDGE_UPSTREAM_SSL_KEY_PASSWORD,
#   EDGE_DEVICE_<NAME>_PASSWORD (device name upper-cased, other characters as _).

edge_id = "edge-1"                 # stamped on every event (header "edge_id")
data_dir = "/var/lib/edge"         # the local log lives here (log.db)

[log]
partitions = 3                     # partitions of topics the appliance creates
retention_seconds = 604800         # 7 days; -1 keeps forever
retention_bytes = -1               # per partition; -1: no size limit
quota_bytes = 0                    # what the log's files may take on disk (docs/quota.md); 0: none
full_policy = "reject"             # at the quota: "reject" new events or "drop-oldest"
durability = "fsync"               # "fsync" (survives power loss) or "no-fsync"
dead_letter_topic = "dead-letters" # frames that did not decode, with raw bytes and reason

[health]
address = "127.0.0.1:9108"         # GET /health (JSON) and /metrics (Prometheus)
show_values = false                # true: /health shows each device's last reading's values
                                   # (any local user can read it: a patient's blood pressure)
# token = "a long random string"   # or: values for `Authorization: Bearer <token>` only;
                                   # `sudo edge status -c /etc/edge/edge.toml` sends it

# Time. Every event's "clock" header says how far its time can be trusted: "synced"
# (NTP set the system clock), "gps" (it has not, but a GPS fix gave UTC: times are then
# the monotonic clock plus the fix's offset), "unknown", or "unsynced" (before 2025).
[clock]
gps_time = true                    # learn UTC from valid NMEA fixes while NTP has not synced
gps_max_age = 3600.0               # use a fix's time for this long after it arrived
jump_threshold = 2.0               # a wall-clock step larger than this is a jump (logged, counted)

# One [[devices]] table per serial device, MQTT subscription or 1-wire bus.
# kind: "gps", "temperature" or "blood_pressure"; transport: "serial", "mqtt" or "w1".
# codec: for serial and w1 one of "nmea0183", "text", "gatt.0x2A35", "gatt.0x2A1C",
# "ds18b20.w1", "ds18b20.w1.temperature"; for mqtt a convention: "owntracks",
# "zigbee2mqtt", "tasmota", "esphome", "bp.json", "gatt.hex", "json".
# topic: the log topic the readings go to (default: the kind).

[[devices]]
name = "car-1"                     # also the device id (event key) unless device_id is set
kind = "gps"
transport = "serial"
port = "/dev/ttyUSB0"              # a path (symlinks followed on every reconnect) or pyserial URL
baudrate = 9600
framing = "line"                   # "line" or "fixed:<bytes>"
codec = "nmea0183"
topic = "gps"

[[devices]]
name = "bed-1"
kind = "blood_pressure"
transport = "serial"
port = "/dev/ttyUSB1"
codec = "gatt.0x2A35"
codec_options = { framing = "hex" } # one hex line per measurement
topic = "blood_pressure"

[[devices]]
name = "ward-sensors"
kind = "temperature"
transport = "mqtt"
host = "127.0.0.1"
port = 1883
codec = "zigbee2mqtt"              # the device id comes from the MQTT topic
filters = ["zigbee2mqtt/#"]        # default: the convention's own filter
qos = 1                            # QoS 1 messages are acked only once in the log
# client_id = "edge-edge-1-ward-sensors"   # default; fixed, for a persistent session
# username = "edge"                # password: EDGE_DEVICE_WARD_SENSORS_PASSWORD
# tls = true                       # TLS to the broker, its hostname checked (port: 8883)
# ca_file = "/etc/edge/mqtt-ca.pem"  # default: the system's CAs
# cert_file = "/etc/edge/mqtt-client.pem"  # and key_file: for a broker that wants a client certificate
device_id_prefix = ""              # prepended to the id the convention gives
max_payload = 1048576              # bytes; a larger message is dead-lettered (its first KiB, its size)
topic = "temperature"
# A QoS 1 message redelivered (DUP) after a crash is never written twice. A publisher that
# resends after a broker restart sends a new message, though: for devices that stamp each
# reading with their own clock, drop a reading whose device, device time and value were
# seen within this many seconds (counted in edge_events_deduplicated_total). 0: off.
dedupe_window = 300

[[devices]]
name = "boiler-room"
kind = "temperature"
transport = "w1"
enabled = false                    # a device can stay in the file, switched off
directory = "/sys/bus/w1/devices"
interval = 10.0
codec = "ds18b20.w1"
names = { "28-0316a2797aff" = "boiler-in" }
topic = "temperature"
# Any device: a reading outside its quantity's physical range (docs/ranges.md) is a dead
# letter naming the field; `ranges` narrows a quantity to the device's own measuring range.
ranges = { temperature_c = [-55, 125] }   # the DS18B20's datasheet range, in the table's unit
# earliest_time = 2000-01-01       # a device-stamped time before this is a dead letter

# Stream processing on the box: each [[streams]] table is one topology, run exactly once
# over the local log (its progress is consumer group "streams.<name>"). Steps run in order:
# normalise_units and gps_track change the records and pass them on; fever, threshold,
# blood_pressure, geofence and downsample write what they derive to their own topic and pass
# their input on unchanged. `edge streams describe --config FILE` prints what will run.

[[streams]]
name = "ward-temperature"
source = "temperature"             # a topic, or an array of topics
# sink = "temperature.normalised"  # optional: write the records at the end of the chain
# late_topic = "ward-temperature.late"   # default: "<name>.late" (records past a window's grace)

[[streams.steps]]
builtin = "normalise_units"        # fields named *_f, *_kpa, *_kmh, *_mph, *_knots, *_ft, *_km, *_mi
# fields = { speed = "km/h" }      # fields whose name does not say their unit

[[streams.steps]]
builtin = "fever"                  # raise/clear events, with hysteresis: no flapping
raise_at = 38.0                    # °C, raise at or above
clear_at = 37.5                    # °C, clear below
field = "temperature_c"
topic = "alerts"

[[streams.steps]]
builtin = "downsample"             # one averaged reading per device per window
fields = ["temperature_c"]
window_s = 60
grace_s = 5                        # wait this long for late readings before a window is final
topic = "temperature.1m"           # replicate this upstream and keep "temperature" local

[[streams]]
name = "ward-blood-pressure"
source = "blood_pressure"

[[streams.steps]]
builtin = "blood_pressure"         # ACC/AHA 2017 category: normal .. hypertensive_crisis
repeat_at = "hypertensive_crisis"  # also alert on every reading at or above this ("never": off)
topic = "alerts.blood_pressure"    # an alert when a patient's category changes

[[streams]]
name = "fleet"
source = "gps"
sink = "gps.track"                 # fixes with distance_m, distance_total_m, speed_derived_mps

[[streams.steps]]
builtin = "gps_track"
max_speed_mps = 100.0              # faster than this between two fixes: a jump, not counted
min_distance_m = 0.0               # moves shorter than this (jitter) are not counted

[[streams.steps]]
builtin = "geofence"               # enter/leave events
topic = "alerts.geofence"
exit_margin_m = 10.0               # leave only this far outside: no flapping on the edge
fences = [
  { name = "depot", lat = 52.5200, lon = 13.4050, radius_m = 250.0 },
  { name = "yard", polygon = [[52.510, 13.400], [52.510, 13.410], [52.520, 13.410], [52.520, 13.400]] },
]

# A custom topology: a function that returns an edge.streams.Topology (it must be importable,
# e.g. installed in the appliance's virtual environment; `edge config check` calls it).
# [[streams]]
# name = "custom"
# module = "my_streams.topology:build"
# params = { threshold = 40.0 }    # keyword arguments of the function

# Replication to a central Kafka cluster (handled by the uplink).
[upstream]
enabled = false
bootstrap_servers = "kafka.example.com:9093"
# security_protocol = "SASL_SSL"
# sasl_mechanism = "SCRAM-SHA-512"
# sasl_username = "edge-1"         # password: EDGE_UPSTREAM_SASL_PASSWORD
# topics = { "temperature.1m" = "temperature.1m", alerts = "alerts" }   # default: device topics
'''
