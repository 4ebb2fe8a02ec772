#!/usr/bin/env bash
# Installs everything the appliance, its demo and its tests need, on a fresh
# Debian machine (Python 3.11, root). Safe to run again: each step is skipped
# when its result is already there.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

need_apt=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
command -v java >/dev/null 2>&1 || need_apt+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need_apt+=(maven)
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
# ps: the Kafka cluster's tests look for stray brokers with it; minimal Debian images lack procps.
command -v ps >/dev/null 2>&1 || need_apt+=(procps)
# Debian's python3 has no venv module's ensurepip until python3-venv is installed,
# and without it `python3 -m venv` stops with "ensurepip is not available".
[ -x .venv/bin/python ] || python3 -c 'import ensurepip' 2>/dev/null || need_apt+=(python3-venv)
# The power-cut tests' filesystem (tests/fixtures/lazyfs.py): fusermount3, and libfuse3's
# headers, pkg-config and a C compiler, since pyfuse3 is built from source (PyPI has no wheel).
command -v fusermount3 >/dev/null 2>&1 || need_apt+=(fuse3)
[ -f /usr/include/fuse3/fuse_lowlevel.h ] || need_apt+=(libfuse3-dev)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
command -v cc >/dev/null 2>&1 || need_apt+=(gcc)
# ...and Python's own headers for that build (Python.h: python3-dev; a fresh Debian has none).
python3 -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
    || need_apt+=(python3-dev)
# The arm64 root of tests/pi (deploy/pi/arm64-root.sh): debootstrap, and qemu-aarch64
# registered with binfmt_misc to run it.
[ -x /usr/sbin/debootstrap ] || need_apt+=(debootstrap)
[ -x /usr/bin/qemu-aarch64-static ] || need_apt+=(qemu-user-static)
[ -x /usr/sbin/update-binfmts ] || need_apt+=(binfmt-support)
# The console's browser tests (tests/console/test_browser*.py): Debian's headless Chromium
# and its driver; a browser downloaded at run time does not run on these machines.
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
[ -x /usr/bin/chromedriver ] || need_apt+=(chromium-driver)
# The Kafka listener's tests (tests/wire) produce and consume with librdkafka's kcat.
command -v kcat >/dev/null 2>&1 || need_apt+=(kcat)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "setup: installing Debian packages: ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv"
    python3 -m venv .venv
fi
stamp=.venv/.installed-$(sha1sum pyproject.toml | cut -c1-12)
if [ ! -f "$stamp" ]; then
    echo "setup: installing Python packages into .venv"
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -e '.[test]'
    rm -f .venv/.installed-*
    touch "$stamp"
fi

# Apache Kafka jars from Maven Central, once (deploy/kafka/lib is git-ignored).
if [ -x deploy/kafka/fetch.sh ]; then
    deploy/kafka/fetch.sh
fi
echo "setup: ready"
