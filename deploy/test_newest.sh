#!/usr/bin/env bash
# Runs the MQTT and uplink tests again against the NEWEST paho-mqtt and aiokafka releases,
# past the caps in pyproject.toml: both are used through private names (guarded by probes,
# devices/transports/_paho_private.py and edge/uplink/_aiokafka_private.py), so a release
# that moves them must break a test here, not a box in the field.
#
# The venv is .venv-newest (git-ignored): made once, the project reinstalled when
# pyproject.toml changes, and the two packages upgraded on every run (a no-op when
# current). Extra arguments go to pytest. deploy/test.sh calls this after the main run.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

venv=.venv-newest
if [ ! -x "$venv/bin/python" ]; then
    echo "test_newest: creating $venv"
    python3 -m venv "$venv"
fi
stamp=$venv/.installed-$(sha1sum pyproject.toml | cut -c1-12)
if [ ! -f "$stamp" ]; then
    echo "test_newest: installing the project into $venv"
    "$venv/bin/pip" install -q --upgrade pip
    "$venv/bin/pip" install -q -e '.[test]'
    rm -f "$venv"/.installed-*
    touch "$stamp"
fi
# Past the project's caps: pip then warns that they are not met, which is the point.
"$venv/bin/pip" install -q --upgrade paho-mqtt aiokafka

versions() {
    "$1/bin/python" -c 'import importlib.metadata as m; print(", ".join(f"{p} {m.version(p)}" for p in ("paho-mqtt", "aiokafka")))'
}
echo "test_newest: newest $(versions "$venv") (pinned: $(versions .venv))"

# The tests that drive paho and aiokafka: the MQTT transport and service; the uplink's
# replication, refusals, states and diagnoses, security, stop and fencing, and the probes
# with their fallbacks. Left to the pinned run, for time: the uplink's slow outage tests
# (checkpoint, crash, failover, offline, proxy), which add no other aiokafka call.
exec "$venv/bin/python" -m pytest -p no:cacheprovider \
    tests/devices/test_mqtt*.py tests/edge/test_service_mqtt*.py \
    tests/edge/test_uplink.py tests/edge/test_uplink_private_api.py \
    tests/edge/test_uplink_memory.py tests/edge/test_uplink_refusal.py \
    tests/edge/test_uplink_state.py tests/edge/test_uplink_security.py "$@"
