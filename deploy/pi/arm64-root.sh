#!/usr/bin/env bash
# An arm64 Debian bookworm root (what Raspberry Pi OS is built on), run under qemu-user on
# this x86 machine, so install.sh and the appliance are proven on the Pi's architecture
# (tests/pi/test_arm64.py does both; deploy/pi/README.md).
#
#   deploy/pi/arm64-root.sh make DEST        a fresh root at DEST (empty or missing)
#   deploy/pi/arm64-root.sh run ROOT CMD...  CMD inside ROOT, as root, in a clean environment
#
# Needs root, debootstrap, qemu-user-static and binfmt-support (deploy/setup.sh installs
# them). `make` mounts binfmt_misc if it is not mounted and registers qemu-aarch64 with
# the F flag (the kernel keeps the emulator open, so it need not exist inside the root).
# The debootstrapped root is cached as a tarball in $EDGE_ARM64_CACHE
# (default /var/cache/edge-arm64), keyed by what debootstrap was asked for; beside it the
# lock's aarch64 wheels, keyed by the lock's hash, and pip's cache (wheels it built).
#
# `run` mounts /proc, a new /dev/pts instance (the smoke's ptys), /dev/shm and the pip
# cache in a mount namespace of its own: they are gone when CMD exits, however it exits,
# and the host never sees them.
set -euo pipefail

die() { echo "arm64-root: error: $*" >&2; exit 2; }

cache=${EDGE_ARM64_CACHE:-/var/cache/edge-arm64}
suite=bookworm
mirror=${EDGE_ARM64_MIRROR:-http://deb.debian.org/debian}
# python3-venv brings ensurepip, which install.sh needs; ca-certificates lets pip reach PyPI.
include=python3,python3-venv,ca-certificates
# Changing any of these makes a new root; the lock is not among them, since the venv is
# installed by the test on every run (from the pip cache).
key=$(printf '%s\n' "$suite" arm64 minbase "$include" "$mirror" | sha256sum | cut -c1-16)
tarball=$cache/root-$suite-arm64-$key.tar

[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot and mounts)"

# qemu-aarch64 runs every aarch64 binary: binfmt_misc mounted, the F flag set.
binfmt() {
    local bm=/proc/sys/fs/binfmt_misc
    [ -x /usr/bin/qemu-aarch64-static ] || die "no /usr/bin/qemu-aarch64-static: run deploy/setup.sh (apt qemu-user-static)"
    if [ ! -e "$bm/register" ]; then
        mount -t binfmt_misc binfmt_misc "$bm" \
            || die "cannot mount binfmt_misc on $bm (a container without CAP_SYS_ADMIN?)"
    fi
    if [ ! -e "$bm/qemu-aarch64" ]; then
        if command -v update-binfmts >/dev/null; then
            update-binfmts --enable qemu-aarch64 || true
        fi
        # Without binfmt-support: qemu-user-static's own systemd-binfmt line.
        if [ ! -e "$bm/qemu-aarch64" ] && [ -f /usr/lib/binfmt.d/qemu-aarch64.conf ]; then
            cat /usr/lib/binfmt.d/qemu-aarch64.conf > "$bm/register"
        fi
    fi
    [ -e "$bm/qemu-aarch64" ] || die "qemu-aarch64 is not registered in $bm"
    [ "$(head -n1 "$bm/qemu-aarch64")" = enabled ] || echo 1 > "$bm/qemu-aarch64"
    grep -q '^flags:.*F' "$bm/qemu-aarch64" \
        || die "qemu-aarch64 is registered without the F flag, so it cannot run inside a root: \
echo -1 > $bm/qemu-aarch64 and run this again"
}

# The lock's aarch64 wheels, downloaded once per lock by the host's pip (natively, not
# under emulation) and offered to pip in the root with --find-links; the index is still
# asked, and pip checks every file against the lock's hashes as on a Pi. pip's own HTTP
# cache would do this where PyPI's Cache-Control headers arrive, but a proxy that strips
# them (this workplace's does) leaves it empty. A lock with a release that has no aarch64
# wheel gets no wheelhouse: pip in the root fetches and builds it, as a Pi would.
top=$(cd "$(dirname "$0")/../.." && pwd)
lock=$top/deploy/pi/requirements.lock
wheels=$cache/wheels-$(sha256sum "$lock" | cut -c1-16)
wheelhouse() {
    [ ! -f "$wheels/.complete" ] || return 0
    local host_python=${EDGE_ARM64_HOST_PYTHON:-}
    if [ -z "$host_python" ]; then
        host_python=python3
        [ ! -x "$top/.venv/bin/python" ] || host_python=$top/.venv/bin/python
    fi
    rm -rf "$wheels.tmp"
    if PIP_FIND_LINKS= "$host_python" -m pip download -q --disable-pip-version-check --no-deps \
            --only-binary=:all: --implementation cp --python-version 3.11 --abi cp311 \
            --platform manylinux_2_36_aarch64 --platform manylinux_2_28_aarch64 \
            --platform manylinux2014_aarch64 --platform linux_aarch64 \
            --require-hashes -r "$lock" -d "$wheels.tmp" > "$cache/wheels.log" 2>&1; then
        touch "$wheels.tmp/.complete"
        mv "$wheels.tmp" "$wheels"
        # Wheelhouses of an older lock are never used again.
        find "$cache" -maxdepth 1 -name 'wheels-*' ! -path "$wheels" -exec rm -rf {} +
        echo "arm64-root: cached the lock's aarch64 wheels in $wheels"
    else
        rm -rf "$wheels.tmp"
        echo "arm64-root: no aarch64 wheelhouse (pip in the root fetches and builds): $(tail -n 1 "$cache/wheels.log")"
    fi
}

make_root() {
    local dest=$1
    command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ] \
        || die "no debootstrap: run deploy/setup.sh (apt debootstrap)"
    binfmt
    mkdir -p "$cache/pip"
    if [ -n "$(ls -A "$dest" 2>/dev/null)" ]; then
        die "$dest is not empty"
    fi
    mkdir -p "$dest"
    # One builder at a time; the others wait for its tarball.
    exec 9>"$cache/lock"
    flock 9
    if [ ! -f "$tarball" ]; then
        local build=$cache/build.$$
        rm -rf "$build"
        echo "arm64-root: debootstrap $suite arm64 into $build (once per cache; minutes under qemu)"
        if ! debootstrap --arch=arm64 --variant=minbase --include="$include" \
                "$suite" "$build" "$mirror" > "$cache/debootstrap.log" 2>&1; then
            tail -n 30 "$cache/debootstrap.log" >&2
            [ -f "$build/debootstrap/debootstrap.log" ] && tail -n 30 "$build/debootstrap/debootstrap.log" >&2
            rm -rf "$build"
            die "debootstrap failed (log above, whole in $cache/debootstrap.log)"
        fi
        # apt's downloads are not needed again; the tarball is what every run extracts.
        rm -rf "$build"/var/cache/apt/archives/*.deb "$build"/var/lib/apt/lists/*_Packages
        tar -C "$build" --numeric-owner -cf "$tarball.tmp" .
        mv "$tarball.tmp" "$tarball"
        rm -rf "$build"
        # Roots of an older key are never extracted again.
        find "$cache" -maxdepth 1 -name 'root-*.tar' ! -path "$tarball" -delete
        echo "arm64-root: cached $tarball"
    fi
    wheelhouse
    flock -u 9
    tar -C "$dest" --numeric-owner -xpf "$tarball"
    if [ -f "$wheels/.complete" ]; then
        mkdir -p "$dest/var/cache/edge-wheels"
        cp "$wheels"/*.whl "$dest/var/cache/edge-wheels/"
    fi
    # pip inside reaches PyPI through the host's network: its resolver, and the CAs it
    # trusts (a machine whose traffic passes a TLS-inspecting proxy trusts that proxy's).
    cp -L /etc/resolv.conf "$dest/etc/resolv.conf"
    cp -L "${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}" "$dest/etc/ssl/certs/ca-certificates.crt"
    echo "arm64-root: $dest ready (from $tarball)"
}

run_in() {
    local root=$1
    shift
    [ $# -gt 0 ] || die "run: no command"
    [ -x "$root/usr/bin/python3" ] || die "$root is not a root made by 'make'"
    binfmt
    mkdir -p "$cache/pip" "$root/var/cache/edge-pip"
    # A private mount namespace: the kernel drops these mounts with its last process.
    exec unshare --mount --propagation private -- "$0" _mounted "$root" "$@"
}

mounted() {
    local root=$1
    shift
    mount -t proc proc "$root/proc"
    # A devpts instance of the root's own: os.openpty() inside finds its ptys there.
    mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$root/dev/pts"
    if [ ! -c "$root/dev/ptmx" ]; then
        ln -sfn pts/ptmx "$root/dev/ptmx"
    fi
    mkdir -p "$root/dev/shm"
    mount -t tmpfs -o mode=1777 tmpfs "$root/dev/shm"
    mount --bind "$cache/pip" "$root/var/cache/edge-pip"
    # A clean environment (the host's PIP_FIND_LINKS and the like name host paths), but
    # the host's proxy, if it has one; bookworm's pip reads certifi's CAs unless told.
    local pass=() links=() var
    [ ! -d "$root/var/cache/edge-wheels" ] || links=(PIP_FIND_LINKS=/var/cache/edge-wheels)
    for var in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
        [ -z "${!var:-}" ] || pass+=("$var=${!var}")
    done
    exec chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        PIP_CACHE_DIR=/var/cache/edge-pip PIP_DISABLE_PIP_VERSION_CHECK=1 "${links[@]}" \
        PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
        SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt "${pass[@]}" "$@"
}

case "${1:-}" in
    make) [ $# -eq 2 ] || die "usage: $0 make DEST"; make_root "$2" ;;
    run) [ $# -ge 3 ] || die "usage: $0 run ROOT CMD..."; shift; run_in "$@" ;;
    _mounted) shift; mounted "$@" ;;
    -h|--help|"") sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' ;;
    *) die "unknown command '$1' (make or run; --help)" ;;
esac
