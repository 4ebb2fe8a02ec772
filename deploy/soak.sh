#!/usr/bin/env bash
# Sets everything up, then runs the long chaos and soak runs that the default
# suite (deploy/test.sh) leaves out: every test marked `soak` (pyproject's
# pytest markers), today the chaos soak's long profile (tests/chaos, 18 rounds
# of each of its 10 fault kinds against a 3-broker Kafka cluster: 180 faults,
# about an hour and a half at the last run's ~29 s per fault) and the field
# fuzz's long run (tests/edge/test_field_fuzz.py, 2,000 readings per device).
# Plan on about two hours, with nothing else running on a 2-core box.
#
#   bash deploy/soak.sh                        # all soak runs
#   bash deploy/soak.sh -k chaos_long          # the chaos soak alone
#   CHAOS_RESULT=docs/chaos-long-result.json bash deploy/soak.sh -k chaos_long
#                                              # ...and keep its result for docs/results.md
#
# Env (read by the tests): CHAOS_SEED and FUZZ_SEED replay a run (each run prints
# its seed first), CHAOS_ROUNDS changes the long profile's rounds, CHAOS_RESULT
# names the chaos soak's JSON result (default: the test's temporary directory).
# Extra arguments go to pytest. Output is not captured (-s), so the seeds, the
# progress and the checker's table appear as the runs go.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
deploy/setup.sh
# pyproject's addopts say -m 'not soak'; a later -m replaces it.
exec .venv/bin/python -m pytest -p no:cacheprovider -s -m soak "$@"
