#!/usr/bin/env bash
# Sets everything up (as deploy/setup.sh does, plus matplotlib for the plots), then runs
# every benchmark in one run and rewrites docs/results.md, its PNGs and results.json.
# Without --quick or --chaos it also runs the chaos soak's short profile for the page's
# chaos table. Arguments go to bench/run_all.py (--quick, --parts, --runs, --chaos, --help).
# Takes about 20 minutes on 2 cores; nothing else should run meanwhile if you can help it.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
deploy/setup.sh
if ! .venv/bin/python -c "import matplotlib" 2>/dev/null; then
    echo "bench: installing the 'bench' extra (matplotlib) into .venv"
    .venv/bin/pip install -q -e '.[test,bench]'
fi
args=("$@")
case " $* " in
    *" --quick "*|*" --chaos"*) ;;
    *) args+=(--chaos run) ;;
esac
export BENCH_COMMAND="bash deploy/bench.sh${*:+ $*}"
exec .venv/bin/python bench/run_all.py "${args[@]}"
