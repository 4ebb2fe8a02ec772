"""deploy/pi/install.sh into a temporary root: the tree it makes, and that a second run changes nothing.

The script runs from a copy of this checkout (others edit the shared tree while
tests run; a changed source is rightly reinstalled). It builds a real venv with
pip, once per module; the other runs reuse that root.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(300)


def snapshot(root: Path) -> dict[str, tuple]:
    """Every file, directory and link under root: content hash (or link target), mode, mtime."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            if stat.S_ISLNK(st.st_mode):
                what = "-> " + os.readlink(p)
            elif stat.S_ISREG(st.st_mode):
                what = hashlib.sha256(p.read_bytes()).hexdigest()
            else:
                what = "dir"
            out[str(p.relative_to(root))] = (what, stat.S_IMODE(st.st_mode), st.st_mtime_ns)
    return out


def check_udev_rules(text: str) -> list[tuple[str, dict[str, str]]]:
    """A syntax check of udev rules (udevadm verify is systemd >= 254; this box may be older).

    Each rule is comma-separated KEY OP "VALUE" items; match keys take == or !=,
    assignment keys =, += or :=. Returns (symlink, matches) per rule; raises AssertionError.
    """
    match_keys = {"SUBSYSTEM", "SUBSYSTEMS", "KERNEL", "KERNELS", "ACTION", "DRIVERS"}
    assign_keys = {"SYMLINK", "GROUP", "MODE", "OWNER", "TAG", "ENV"}
    item = re.compile(r'^\s*([A-Z]+)(\{[A-Za-z0-9_]+\})?\s*(==|!=|\+=|:=|=)\s*"([^"\\]*)"\s*$')
    rules = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        matches, symlink = {}, None
        for part in line.split(","):
            m = item.match(part)
            assert m, f"line {n}: cannot parse {part!r}"
            key, attr, op, value = m.groups()
            if key == "ATTRS" or key in match_keys:
                assert attr is None or key == "ATTRS", f"line {n}: {key} takes no {{attr}}"
                assert op in ("==", "!="), f"line {n}: {key} is a match key, got {op}"
                matches[key + (attr or "")] = value
            else:
                assert key in assign_keys, f"line {n}: unknown key {key}"
                assert op in ("=", "+=", ":="), f"line {n}: {key} is an assignment, got {op}"
                if key == "SYMLINK":
                    symlink = value
                if key == "MODE":
                    assert re.fullmatch(r"0[0-7]{3}", value), f"line {n}: MODE {value!r}"
        assert matches and symlink, f"line {n}: a rule needs matches and a SYMLINK"
        rules.append((symlink, matches))
    return rules


def udev_verify(path: Path) -> None:
    """udevadm verify where this systemd has it, else our own syntax check."""
    udevadm = shutil.which("udevadm")
    if udevadm and subprocess.run([udevadm, "verify", "--help"], capture_output=True).returncode == 0:
        proc = subprocess.run([udevadm, "verify", "--resolve-names=never", str(path)],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    check_udev_rules(path.read_text())


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "lib", ".m2")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    for name in ("broker", "devices", "edge", "deploy", "systemd"):
        shutil.copytree(REPO / name, src / name, ignore=ignore)
    return src


def install(source: Path, root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(source / "deploy/pi/install.sh"), "--root", str(root),
                           "--no-systemctl", "--python", sys.executable, *args],
                          capture_output=True, text=True, timeout=240)


@pytest.fixture(scope="module")
def installed(source: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("root")
    first = install(source, root)
    assert first.returncode == 0, first.stdout + first.stderr
    return root, first.stdout


def test_first_run_makes_the_tree(installed: tuple[Path, str], source: Path) -> None:
    root, out = installed
    assert "install: done: 16 change(s)" in out, out
    edge = root / "opt/edge/venv/bin/edge"
    version = subprocess.run([str(edge), "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("edge "), version.stderr
    # The config: the example with the GPS on its udev name; it validates.
    example = subprocess.run([str(edge), "config", "example"], capture_output=True, text=True,
                             timeout=60).stdout
    config = (root / "etc/edge/edge.toml").read_text()
    assert config == example.replace('port = "/dev/ttyUSB0" ', 'port = "/dev/edge-gps"')
    assert 'port = "/dev/edge-gps"' in config
    check = subprocess.run([str(edge), "config", "check", str(root / "etc/edge/edge.toml")],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr
    assert stat.S_IMODE((root / "etc/edge/edge.env").stat().st_mode) == 0o600
    assert (root / "etc/edge/sim/example.env").read_text() == (
        source / "deploy/pi/sim-example.env").read_text()
    # The units as in systemd/, edge.service enabled the way systemctl enable does it.
    for unit in ("edge.service", "edge-sim@.service"):
        assert (root / "etc/systemd/system" / unit).read_text() == (
            source / "systemd" / unit).read_text()
    wants = root / "etc/systemd/system/multi-user.target.wants/edge.service"
    assert os.readlink(wants) == "/etc/systemd/system/edge.service"
    assert "WantedBy=multi-user.target" in (source / "systemd/edge.service").read_text()
    # udev: the default rule names u-blox receivers /dev/edge-gps, in group dialout.
    rules = root / "etc/udev/rules.d/99-edge-serial.rules"
    udev_verify(rules)
    assert [(s, m["ATTRS{idVendor}"]) for s, m in check_udev_rules(rules.read_text())] == [
        ("edge-gps", "1546"), ("edge-gps", "1546")]
    assert 'GROUP="dialout"' in rules.read_text()
    assert (root / "opt/edge/README.md").read_text() == (source / "README.md").read_text()
    for tool in ("edge", "edge-sim", "edge-topics", "edge-console-consumer"):
        assert os.readlink(root / "usr/local/bin" / tool) == f"/opt/edge/venv/bin/{tool}"
        assert (root / "opt/edge/venv/bin" / tool).exists()


def test_second_run_changes_nothing(installed: tuple[Path, str], source: Path) -> None:
    root, _ = installed
    before = snapshot(root)
    again = install(source, root)
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.rstrip().endswith("install: nothing to do: everything was already in place")
    assert "installed" not in again.stdout and "updated" not in again.stdout
    assert snapshot(root) == before


def test_an_operators_config_is_never_overwritten(installed: tuple[Path, str], source: Path) -> None:
    root, _ = installed
    config = root / "etc/edge/edge.toml"
    edited = config.read_text().replace('edge_id = "edge-1"', 'edge_id = "ward-3"')
    config.write_text(edited)
    before = snapshot(root)
    again = install(source, root)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "/etc/edge/edge.toml " in again.stdout and "kept (edited here)" in again.stdout
    assert "nothing to do" in again.stdout
    assert config.read_text() == edited and snapshot(root) == before


def test_serial_names_change_only_the_rules(installed: tuple[Path, str], source: Path) -> None:
    root, _ = installed
    before = snapshot(root)
    out = install(source, root, "--serial", "gps=0403:6001:A12345", "--serial", "bp=10C4:EA60")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "install: done: 1 change(s)" in out.stdout, out.stdout
    rules = root / "etc/udev/rules.d/99-edge-serial.rules"
    udev_verify(rules)
    assert check_udev_rules(rules.read_text()) == [
        ("edge-gps", {"SUBSYSTEM": "tty", "ATTRS{idVendor}": "0403", "ATTRS{idProduct}": "6001",
                      "ATTRS{serial}": "A12345"}),
        ("edge-bp", {"SUBSYSTEM": "tty", "ATTRS{idVendor}": "10c4", "ATTRS{idProduct}": "ea60"}),
    ]
    after = snapshot(root)
    # The file, and its directory (replaced by a rename, so a reader never sees half a file).
    assert {k for k in after if after[k] != before.get(k)} == {
        "etc/udev/rules.d/99-edge-serial.rules", "etc/udev/rules.d"}
    # Back to the default: the next run restores it, and one more changes nothing.
    assert install(source, root).returncode == 0
    assert "nothing to do" in install(source, root).stdout


def test_bad_arguments_get_a_clear_error(tmp_path: Path, source: Path) -> None:
    out = install(source, tmp_path / "root", "--serial", "gps=ublox")
    assert out.returncode == 2
    assert "--serial 'gps=ublox': expected NAME=VID:PID[:SERIAL]" in out.stderr
    out = install(source, tmp_path / "root", "--frobnicate")
    assert out.returncode == 2 and "unknown option '--frobnicate'" in out.stderr
    assert not (tmp_path / "root" / "opt").exists()  # refused before touching anything


def test_the_udev_check_can_fail() -> None:
    with pytest.raises(AssertionError, match="is a match key"):
        check_udev_rules('SUBSYSTEM="tty", SYMLINK+="edge-gps"')
    with pytest.raises(AssertionError, match="cannot parse"):
        check_udev_rules('SUBSYSTEM=="tty" SYMLINK+="edge-gps"')
    with pytest.raises(AssertionError, match="needs matches and a SYMLINK"):
        check_udev_rules('SUBSYSTEM=="tty", GROUP="dialout"')


def test_the_config_is_closed_to_other_users(installed: tuple[Path, str], source: Path) -> None:
    # edge.toml may hold passwords: 0600 root without a group to give it to (this bare
    # root); with one, 0640 root:edge-config, the group the unit runs in. Whatever the
    # umask, and a config left 0644 by an earlier install is closed too.
    root, _ = installed
    config = root / "etc/edge/edge.toml"
    assert (stat.S_IMODE(config.stat().st_mode), config.stat().st_uid) == (0o600, 0)
    (root / "etc/group").write_text("root:x:0:\n")
    config.chmod(0o644)
    run = subprocess.run(["bash", "-c", 'umask 000 && exec "$@"', "install",
                          "bash", str(source / "deploy/pi/install.sh"), "--root", str(root),
                          "--no-systemctl", "--python", sys.executable],
                         capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout + run.stderr
    groups = dict(line.split(":")[:3:2] for line in (root / "etc/group").read_text().splitlines())
    st = config.stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o640, 0, int(groups["edge-config"]))
    assert "group edge-config" in run.stdout and "mode 0640" in run.stdout
    assert "SupplementaryGroups=dialout edge-config" in (source / "systemd/edge.service").read_text()
    assert "nothing to do" in install(source, root).stdout


def test_the_lock_pins_every_runtime_dependency_with_hashes(source: Path) -> None:
    import tomllib
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    lock = (source / "deploy/pi/requirements.lock").read_text()
    pins: dict[str, str] = {}
    for block in re.split(r"\n(?=\S)", lock):
        m = re.match(r"([A-Za-z0-9_.-]+)==(\S+)", block)
        if m:
            assert re.search(r"--hash=sha256:[0-9a-f]{64}", block), f"{m.group(1)} has no hash"
            pins[canonicalize_name(m.group(1))] = m.group(2)
    # What pyproject asks for, at versions it allows, and what those need in turn (read
    # from the installed distributions: this venv runs the locked versions), all pinned.
    wanted = [Requirement(r) for r in
              tomllib.loads((source / "pyproject.toml").read_text())["project"]["dependencies"]]
    wanted.append(Requirement("setuptools>=68"))  # the build backend: install.sh builds with it
    seen: set[str] = set()
    while wanted:
        req = wanted.pop()
        name = canonicalize_name(req.name)
        assert name in pins, f"{req} is not in deploy/pi/requirements.lock: run deploy/pi/lock.sh"
        assert req.specifier.contains(pins[name], prereleases=True), (req, pins[name])
        if name in seen:
            continue
        seen.add(name)
        if name == "setuptools":
            continue  # builds the appliance; not what the tests run on
        assert metadata.version(name) == pins[name], f"{name}: tested {metadata.version(name)}"
        for dep in metadata.requires(name) or []:
            d = Requirement(dep)
            if d.marker is None or d.marker.evaluate({"extra": ""}):
                wanted.append(d)
