#!/usr/bin/env bash
# Sets everything up (as deploy/setup.sh does, plus matplotlib for the plots), then runs
# every benchmark in one run and rewrites docs/results.md, its PNGs and results.json.
# Arguments go to bench/run_all.py: --quick for a smoke run, --parts, --runs, --chaos run.
# Takes about 25 minutes on 2 cores; nothing else should run meanwhile if you can help it.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
deploy/setup.sh
if ! .venv/bin/python -c "import matplotlib" 2>/dev/null; then
    echo "bench: installing the 'bench' extra (matplotlib) into .venv"
    .venv/bin/pip install -q -e '.[test,bench]'
fi
export BENCH_COMMAND="bash deploy/bench.sh"
exec .venv/bin/python bench/run_all.py "$@"
