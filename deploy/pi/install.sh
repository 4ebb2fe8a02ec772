#!/usr/bin/env bash
# Install the edge appliance on Raspberry Pi OS (Debian bookworm, Python 3.11, arm64/armhf).
#
#   sudo deploy/pi/install.sh [--serial gps=1546:01a8[:SERIAL]]... [--start]
#
# What it puts where (paths under --root DIR, default /):
#   /opt/edge/venv                 the appliance in a virtual environment (from this checkout)
#   /usr/local/bin/edge, edge-*    links to its commands
#   /etc/edge/edge.toml            the config, from `edge config example`; written once,
#                                  never overwritten (the current example: edge.toml.example);
#                                  mode 0640 root:edge-config (it may hold passwords), kept so
#   /etc/edge/edge.env             secrets for the unit (mode 0600), written once
#   group edge-config              may read edge.toml: the unit's dynamic user is in it
#   /etc/edge/sim/example.env      a profile for the simulator unit, written once
#   /etc/udev/rules.d/99-edge-serial.rules   stable names /dev/edge-<name> for USB serial devices
#   /etc/systemd/system/edge.service, edge-sim@.service, and edge.service enabled
# The unit runs as a systemd DynamicUser ("edge") in groups dialout and edge-config: no user
# to create. The venv's dependencies are the versions and sha256 hashes in
# deploy/pi/requirements.lock (deploy/pi/lock.sh makes it); nothing else is fetched.
#
# Idempotent: every step compares before it writes, so a second run changes nothing
# and says "nothing to do". Options:
#   --root DIR        install under DIR (a test root or an image being built); also $DESTDIR
#   --no-systemctl    do not talk to the running systemd and udev (reload, start)
#   --python PY       the Python 3.11+ that makes the venv (default: python3)
#   --serial NAME=VID:PID[:SERIAL]   a udev rule: that USB serial adapter becomes
#                     /dev/edge-NAME (repeatable; default: u-blox GNSS receivers -> edge-gps)
#   --start           start edge.service if it is not running
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; }
die() { echo "install: error: $*" >&2; exit 2; }

root="${DESTDIR:-}"
live=1
python=python3
start=0
serials=()
while [ $# -gt 0 ]; do
    case "$1" in
        --root) [ $# -ge 2 ] || die "--root needs a directory"; root=$2; shift 2 ;;
        --root=*) root=${1#--root=}; shift ;;
        --no-systemctl) live=0; shift ;;
        --python) [ $# -ge 2 ] || die "--python needs an interpreter"; python=$2; shift 2 ;;
        --serial) [ $# -ge 2 ] || die "--serial needs NAME=VID:PID[:SERIAL]"; serials+=("$2"); shift 2 ;;
        --start) start=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option '$1' (try --help)" ;;
    esac
done
R=${root%/}
if [ -n "$R" ]; then
    R=$(mkdir -p "$R" && cd "$R" && pwd)
    [ "$R" = / ] && R=""
fi
# A root other than / is not the running system: never touch its systemd or udev.
[ -z "$R" ] || live=0
src=$(cd "$(dirname "$0")/../.." && pwd)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
changes=0

note() { printf 'install: %-44s %s\n' "$1" "$2"; }
changed() { changes=$((changes + 1)); note "$1" "$2"; }

# put_file SRC PATH MODE: install SRC at PATH (under the root) unless it is already there.
put_file() {
    local from=$1 path=$2 mode=$3 dest="$R$2"
    if [ -f "$dest" ] && [ ! -L "$dest" ] && cmp -s "$from" "$dest"; then
        if [ "$(stat -c %a "$dest")" != "${mode#0}" ]; then
            chmod "$mode" "$dest"
            changed "$path" "mode set to $mode"
        else
            note "$path" "unchanged"
        fi
        return
    fi
    local what=installed
    [ -e "$dest" ] && what=updated
    mkdir -p "$(dirname "$dest")"
    install -m "$mode" "$from" "$dest.install-tmp"
    mv -f "$dest.install-tmp" "$dest"
    changed "$path" "$what"
}

# put_once SRC PATH MODE: an operator's file: written when missing, otherwise left alone.
put_once() {
    local from=$1 path=$2 mode=$3 dest="$R$2"
    if [ -e "$dest" ]; then
        if cmp -s "$from" "$dest"; then note "$path" "unchanged"; else note "$path" "kept (edited here)"; fi
        return
    fi
    put_file "$from" "$path" "$mode"
}

# secure PATH MODE UID GID: PATH (under the root) has that mode and owner, whatever it had.
secure() {
    local path=$1 mode=$2 uid=$3 gid=$4 dest="$R$1"
    if [ "$(stat -c '%a %u %g' "$dest")" != "${mode#0} $uid $gid" ]; then
        chown "$uid:$gid" "$dest"
        chmod "$mode" "$dest"
        changed "$path" "mode $mode, owner $uid:$gid"
    fi
}

# put_link TARGET PATH: a symlink PATH -> TARGET.
put_link() {
    local target=$1 path=$2 dest="$R$2"
    if [ -L "$dest" ] && [ "$(readlink "$dest")" = "$target" ]; then
        note "$path" "unchanged"
        return
    fi
    mkdir -p "$(dirname "$dest")"
    ln -sfn "$target" "$dest"
    changed "$path" "-> $target"
}

# -- checks ----------------------------------------------------------------------------------
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
    || die "$python is not Python 3.11 or newer (Raspberry Pi OS bookworm has 3.11: apt install python3)"
"$python" -c 'import ensurepip, venv' 2>/dev/null \
    || die "$python cannot make a virtual environment: apt install python3-venv"

rules=$stage/99-edge-serial.rules
{
    echo "# Stable names for the edge appliance's USB serial devices: /dev/edge-<name>."
    echo "# Written by deploy/pi/install.sh (--serial NAME=VID:PID[:SERIAL]); run it again to change."
    echo "# Find VID, PID and serial of an adapter with: udevadm info -a -n /dev/ttyUSB0"
    if [ ${#serials[@]} -eq 0 ]; then
        echo "# u-blox GNSS receivers (u-blox 7, 8/M8):"
        serials=(gps=1546:01a7 gps=1546:01a8)
    fi
    for spec in "${serials[@]}"; do
        [[ $spec =~ ^([a-z0-9][a-z0-9-]{0,30})=([0-9a-fA-F]{4}):([0-9a-fA-F]{4})(:([A-Za-z0-9._-]{1,64}))?$ ]] \
            || die "--serial '$spec': expected NAME=VID:PID[:SERIAL], e.g. gps=1546:01a8 or gps=0403:6001:A12345"
        name=${BASH_REMATCH[1]} vid=${BASH_REMATCH[2],,} pid=${BASH_REMATCH[3],,} serial=${BASH_REMATCH[5]}
        line="SUBSYSTEM==\"tty\", ATTRS{idVendor}==\"$vid\", ATTRS{idProduct}==\"$pid\""
        [ -z "$serial" ] || line+=", ATTRS{serial}==\"$serial\""
        echo "$line, SYMLINK+=\"edge-$name\", GROUP=\"dialout\", MODE=\"0660\""
    done
} > "$rules"

# -- the virtual environment -----------------------------------------------------------------
mkdir -p "$stage/src"
tar -C "$src" --exclude=__pycache__ --exclude='*.pyc' --exclude='*.egg-info' \
    --exclude=deploy/kafka/lib --exclude=deploy/kafka/.m2 \
    -cf - pyproject.toml README.md broker devices edge deploy | tar -C "$stage/src" -xf -
source_id=$(cd "$stage/src" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum \
            | sha256sum | cut -c1-64)
venv=$R/opt/edge/venv
if [ -x "$venv/bin/edge" ] && [ "$(cat "$venv/.edge-source" 2>/dev/null)" = "$source_id" ]; then
    note /opt/edge/venv "unchanged"
else
    [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
    pip=("$venv/bin/pip" install -q --disable-pip-version-check --root-user-action=ignore)
    # Every dependency (and pip and setuptools themselves) at its locked version, checked
    # against its hashes: a compromised or changed release on the index is refused.
    "${pip[@]}" --require-hashes -r "$stage/src/deploy/pi/requirements.lock"
    # The appliance itself, built with the locked setuptools, fetching nothing more; same
    # version number, new code: replaced every time.
    "${pip[@]}" --no-deps --no-build-isolation --force-reinstall "$stage/src"
    echo "$source_id" > "$venv/.edge-source"
    changed /opt/edge/venv "installed ($("$venv/bin/edge" --version))"
fi
put_file "$src/README.md" /opt/edge/README.md 0644
# The operator's commands on PATH: `edge status`, `edge-console-consumer`, ...
for tool in edge edge-sim edge-topics edge-console-producer edge-console-consumer \
            edge-consumer-groups; do
    put_link "/opt/edge/venv/bin/$tool" "/usr/local/bin/$tool"
done

# -- config ----------------------------------------------------------------------------------
# The example, with the GPS on the stable name the udev rule gives it.
PYTHONDONTWRITEBYTECODE=1 "$venv/bin/edge" config example \
    | sed -e 's|port = "/dev/ttyUSB0" |port = "/dev/edge-gps"|' > "$stage/edge.toml"
mkdir -p "$R/etc/edge"
put_file "$stage/edge.toml" /etc/edge/edge.toml.example 0644
# The config may hold passwords (sasl_password, a device's): root writes it, the unit reads
# it through group edge-config, nobody else. Set whatever the umask, and on every run, so
# a config an earlier install left 0644 is closed too.
config_group=edge-config
if [ -z "$R" ]; then
    getent group "$config_group" >/dev/null \
        || { groupadd --system "$config_group"; changed "group $config_group" "created"; }
    config_gid=$(getent group "$config_group" | cut -d: -f3)
elif [ -f "$R/etc/group" ]; then
    grep -q "^$config_group:" "$R/etc/group" \
        || { groupadd --prefix "$R" --system "$config_group"; changed "group $config_group" "created"; }
    config_gid=$(awk -F: -v g="$config_group" '$1 == g { print $3 }' "$R/etc/group")
else
    config_gid=""  # a bare --root without /etc/group: root alone may read it
fi
put_once "$stage/edge.toml" /etc/edge/edge.toml 0600
if [ -n "$config_gid" ]; then
    secure /etc/edge/edge.toml 0640 0 "$config_gid"
else
    secure /etc/edge/edge.toml 0600 0 0
fi
cat > "$stage/edge.env" <<'ENV'
# Secrets for edge.service, read by systemd (this file stays root's, mode 0600):
# EDGE_UPSTREAM_SASL_PASSWORD=
# EDGE_DEVICE_<NAME>_PASSWORD=
ENV
put_once "$stage/edge.env" /etc/edge/edge.env 0600
put_once "$src/deploy/pi/sim-example.env" /etc/edge/sim/example.env 0644
if ! check=$(PYTHONDONTWRITEBYTECODE=1 "$venv/bin/edge" config check "$R/etc/edge/edge.toml" 2>&1); then
    echo "install: warning: /etc/edge/edge.toml does not validate; edge.service will not start:" >&2
    echo "$check" >&2
fi

# -- udev and systemd ------------------------------------------------------------------------
rules_before=$changes
put_file "$rules" /etc/udev/rules.d/99-edge-serial.rules 0644
rules_changed=$((changes - rules_before))
if command -v udevadm >/dev/null && udevadm verify --help >/dev/null 2>&1; then
    udevadm verify --resolve-names=never "$R/etc/udev/rules.d/99-edge-serial.rules" >/dev/null \
        || die "udevadm verify rejects /etc/udev/rules.d/99-edge-serial.rules"
fi
units_before=$changes
put_file "$src/systemd/edge.service" /etc/systemd/system/edge.service 0644
put_file "$src/systemd/edge-sim@.service" /etc/systemd/system/edge-sim@.service 0644
# What `systemctl enable edge` does for WantedBy=multi-user.target.
put_link /etc/systemd/system/edge.service /etc/systemd/system/multi-user.target.wants/edge.service
units_changed=$((changes - units_before))

if [ "$live" = 1 ]; then
    getent group dialout >/dev/null || { groupadd --system dialout; changed "group dialout" "created"; }
    if [ "$rules_changed" -gt 0 ]; then
        udevadm control --reload-rules
        udevadm trigger --subsystem-match=tty --action=add
    fi
    [ "$units_changed" -eq 0 ] || systemctl daemon-reload
    if [ "$start" = 1 ] && ! systemctl is-active -q edge.service; then
        systemctl start edge.service
        changed edge.service "started"
    elif [ "$changes" -gt 0 ] && systemctl is-active -q edge.service; then
        systemctl restart edge.service
        note edge.service "restarted (something it uses changed)"
    fi
fi

if [ "$changes" -eq 0 ]; then
    echo "install: nothing to do: everything was already in place"
else
    echo "install: done: $changes change(s)"
    [ -n "$R" ] || echo "install: next: edit /etc/edge/edge.toml, then: edge config check" \
        "/etc/edge/edge.toml && systemctl restart edge && edge status"
fi
