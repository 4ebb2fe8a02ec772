#!/usr/bin/env bash
# Sets everything up, then runs the whole default test suite (soak runs are
# excluded; run them with deploy/soak.sh). Extra arguments go to pytest.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
deploy/setup.sh
.venv/bin/ruff check broker devices edge deploy tests bench
# mypy over broker/, devices/ and edge/, as pyproject.toml's [tool.mypy] says.
.venv/bin/mypy
.venv/bin/python -m pytest -p no:cacheprovider "$@"
# The arm64 install and smoke (deploy/pi/README.md) is a run of its own, when no
# arguments chose the tests: minutes under emulation that the default run leaves out.
[ $# -gt 0 ] || .venv/bin/python -m pytest -p no:cacheprovider -m arm64 tests/pi
# So are the MQTT and uplink tests against the newest paho-mqtt and aiokafka (past their
# caps: both are used through private names that probes guard), in .venv-newest.
[ $# -gt 0 ] || exec deploy/test_newest.sh
