#!/usr/bin/env bash
# Regenerate deploy/pi/requirements.lock: the appliance's runtime dependencies from
# pyproject.toml, each pinned with the sha256 of every file of that release on PyPI (so
# the arm64 wheels of a Pi are covered too), plus the build backend (setuptools) that
# install.sh builds the appliance with. Run it after changing pyproject's dependencies,
# with the Python the Pi has (3.11 on bookworm):
#
#   deploy/pi/lock.sh [PYTHON]        (default: python3)
#
# Pins already in the lock are kept while pyproject allows them; delete the lock for the
# newest versions. It uses pip-tools' pip-compile in a throwaway venv; tests/deploy/test_pi_install.py
# checks that the lock covers every dependency pyproject.toml names.
set -euo pipefail
python=${1:-python3}
here=$(cd "$(dirname "$0")" && pwd)
tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
"$python" -m venv "$tools"
"$tools/bin/pip" install -q pip-tools
cd "$here/../.."
# --all-build-deps: setuptools, so install.sh can build without fetching an unpinned one.
PIP_FIND_LINKS= CUSTOM_COMPILE_COMMAND="deploy/pi/lock.sh" "$tools/bin/pip-compile" --quiet \
    --generate-hashes --allow-unsafe --all-build-deps --strip-extras --no-emit-index-url \
    --no-emit-find-links --output-file deploy/pi/requirements.lock pyproject.toml
