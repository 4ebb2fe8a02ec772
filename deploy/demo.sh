#!/usr/bin/env bash
# The appliance on simulated devices: GPS units, rooms and patients over real
# pseudo-terminals (and MQTT through a Mosquitto of its own when installed),
# written into a local log under a temporary directory, with a live status.
#
#   bash deploy/demo.sh                 # until Ctrl-C
#   DEMO_SECONDS=20 bash deploy/demo.sh # non-interactive: stop after 20 s
#
# Env: DEMO_SECONDS (run time; default: until Ctrl-C), DEMO_DIR (work dir;
# default: a new /tmp/edge-demo.XXXXXX), DEMO_GPS / DEMO_ROOMS / DEMO_PATIENTS
# (simulated devices per kind over ptys; default 2/2/1), DEMO_RATE (readings/s
# per device; default 2), DEMO_SKIP_SETUP=1 (do not run deploy/setup.sh),
# DEMO_KAFKA=0 (no local Kafka cluster and no uplink).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

[ "${DEMO_SKIP_SETUP:-0}" = 1 ] || bash deploy/setup.sh
bin="$top/.venv/bin"
work=${DEMO_DIR:-$(mktemp -d /tmp/edge-demo.XXXXXX)}
mkdir -p "$work/links"
data="$work/data"
gps=${DEMO_GPS:-2} rooms=${DEMO_ROOMS:-2} patients=${DEMO_PATIENTS:-1} rate=${DEMO_RATE:-2}

free_port() { "$bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
health_port=$(free_port)

edge_pid="" mosq_pid="" sim_pids=() status_pid=""
stopped=0
cleanup() {
    [ "$stopped" = 1 ] && return
    stopped=1
    trap - INT TERM
    echo
    echo "demo: stopping: simulators, then the appliance (SIGTERM: stop intake, flush, close)"
    [ -n "$status_pid" ] && kill "$status_pid" 2>/dev/null || true
    for p in "${sim_pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${sim_pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rc=0
    if [ -n "$edge_pid" ]; then
        kill -TERM "$edge_pid" 2>/dev/null || true
        wait "$edge_pid" || rc=$?
        echo "demo: edge run exited with status $rc"
    fi
    if [ -n "$mosq_pid" ]; then kill "$mosq_pid" 2>/dev/null || true; wait "$mosq_pid" 2>/dev/null || true; fi
    if [ -n "$kafka_dir" ]; then
        echo "demo: upstream, the first GPS events in Kafka ($servers, topic gps):"
        timeout 60 "$bin/python" -m deploy.kafka tool console-consumer --bootstrap-server "$servers" \
            --topic gps --from-beginning --max-messages 3 --timeout-ms 15000 \
            --property print.key=true 2>/dev/null | sed 's/^/    /' || true
        "$bin/python" -m deploy.kafka stop --dir "$kafka_dir" >/dev/null 2>&1 || true
        echo "demo: Kafka stopped (its data was deleted with it)"
    fi
    echo
    echo "demo: the appliance's log (stderr) is $work/edge.log; its last lines:"
    tail -n 5 "$work/edge.log" | sed 's/^/    /'
    echo
    echo "demo: the data is in $data (one SQLite file, log.db). Topics:"
    "$bin/edge-topics" --data-dir "$data" --list | sed 's/^/    /'
    echo
    echo "demo: the first GPS events:"
    "$bin/edge-console-consumer" --data-dir "$data" --topic gps --from-beginning --max-messages 3 \
        --timeout-ms 2000 --property print.key=true --property print.timestamp=true 2>/dev/null | sed 's/^/    /' || true
    echo
    echo "Read it all with the console consumer:"
    echo "    $bin/edge-console-consumer --data-dir $data --topic gps --from-beginning"
    echo "    $bin/edge-console-consumer --data-dir $data --topic dead-letters --from-beginning --property print.headers=true"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

# Children run in their own sessions (setsid): Ctrl-C reaches this script only,
# which then stops them in order: intake first, the appliance last.
devices=""
add_serial() { # name kind codec [codec_options]
    devices+=$'\n'"[[devices]]
name = \"$1\"
kind = \"$2\"
transport = \"serial\"
port = \"$work/links/$1\"
codec = \"$3\"
${4:+codec_options = $4}
"
}
for i in $(seq 1 "$gps"); do add_serial "car-$i" gps nmea0183; done
for i in $(seq 1 "$rooms"); do add_serial "room-$i" temperature text; done
for i in $(seq 1 "$patients"); do add_serial "bed-$i" blood_pressure gatt.0x2A35 '{ framing = "hex" }'; done

mqtt_port=""
if [ -x /usr/sbin/mosquitto ] || command -v mosquitto >/dev/null 2>&1; then
    mosquitto=$(command -v mosquitto || echo /usr/sbin/mosquitto)
    mqtt_port=$(free_port)
    mkdir -p "$work/mosquitto"
    cat > "$work/mosquitto/mosquitto.conf" <<CONF
listener $mqtt_port 127.0.0.1
allow_anonymous true
persistence true
persistence_location $work/mosquitto/
log_dest file $work/mosquitto/mosquitto.log
user $(id -un)
CONF
    setsid "$mosquitto" -c "$work/mosquitto/mosquitto.conf" 2>>"$work/mosquitto/stderr.log" & mosq_pid=$!
    for _ in $(seq 50); do
        "$bin/python" -c "import socket; socket.create_connection(('127.0.0.1', $mqtt_port), 0.2)" 2>/dev/null && break
        sleep 0.1
    done
    echo "demo: Mosquitto on 127.0.0.1:$mqtt_port (config and log in $work/mosquitto)"
    for spec in "gps-mqtt gps owntracks" "rooms-mqtt temperature zigbee2mqtt" "beds-mqtt blood_pressure bp.json"; do
        set -- $spec
        devices+=$'\n'"[[devices]]
name = \"$1\"
kind = \"$2\"
transport = \"mqtt\"
host = \"127.0.0.1\"
port = $mqtt_port
codec = \"$3\"
device_id_prefix = \"mqtt:\"
"
    done
else
    echo "demo: no Mosquitto installed: serial devices only"
fi

upstream="" kafka_dir="" servers=""
if [ "${DEMO_KAFKA:-1}" = 1 ] && "$bin/python" -c 'from edge.uplink import Uplink' 2>/dev/null; then
    kafka_dir="$work/kafka"
    echo "demo: starting a 1-broker Apache Kafka cluster (KRaft) in $kafka_dir for the uplink"
    if servers=$("$bin/python" -m deploy.kafka start --brokers 1 --dir "$kafka_dir" 2>"$work/kafka-start.log"); then
        servers=$(printf '%s\n' "$servers" | tail -n 1)
        echo "demo: Kafka on $servers; the uplink replicates every topic to it"
        upstream="[upstream]
bootstrap_servers = \"$servers\"
delivery = \"exactly-once\""
    else
        echo "demo: Kafka did not start (see $work/kafka-start.log): events stay in the local log"
        kafka_dir=""
    fi
else
    echo "demo: no uplink (or DEMO_KAFKA=0): events stay in the local log"
fi

cat > "$work/edge.toml" <<TOML
# Written by deploy/demo.sh
edge_id = "demo-edge"
data_dir = "$data"

[log]
partitions = 3
durability = "fsync"

[health]
address = "127.0.0.1:$health_port"
$upstream
$devices
TOML
"$bin/edge" config check "$work/edge.toml"

setsid "$bin/edge" run --config "$work/edge.toml" 2>"$work/edge.log" & edge_pid=$!
echo "demo: edge run (pid $edge_pid), config $work/edge.toml, health http://127.0.0.1:$health_port/health"

setsid "$bin/edge-sim" --output pty --link-dir "$work/links" --gps "$gps" --rooms "$rooms" \
    --patients "$patients" --rate "$rate" --corrupt 0.02 --no-progress \
    --truth "$work/truth-serial.jsonl" >"$work/sim-serial.out" 2>"$work/sim-serial.log" & sim_pids+=($!)
if [ -n "$mqtt_port" ]; then
    EDGE_SIM_MQTT_PORT=$mqtt_port setsid "$bin/edge-sim" --output mqtt --gps 1 --rooms 2 --patients 1 \
        --rate "$rate" --seed 2 --no-progress --truth "$work/truth-mqtt.jsonl" \
        >"$work/sim-mqtt.out" 2>"$work/sim-mqtt.log" & sim_pids+=($!)
fi

for _ in $(seq 100); do
    "$bin/edge" status --address "127.0.0.1:$health_port" >/dev/null 2>&1 && break
    [ -f "$work/sim-serial.out" ] && [ "$(wc -l < "$work/sim-serial.out")" -ge 1 ] && sleep 0.2 || sleep 0.1
done

if [ -n "${DEMO_SECONDS:-}" ]; then
    end=$((SECONDS + DEMO_SECONDS))
    while [ "$SECONDS" -lt "$end" ]; do
        sleep 5
        echo "---- $(date -u +%H:%M:%SZ)"
        "$bin/edge" status --address "127.0.0.1:$health_port" || true
    done
else
    echo "demo: live status below; Ctrl-C stops everything"
    "$bin/edge" status --watch --address "127.0.0.1:$health_port" & status_pid=$!
    wait "$status_pid" || true
fi
