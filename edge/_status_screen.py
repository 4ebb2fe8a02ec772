"""`edge status` in a terminal: the compact screen that fits its columns and rows.

The full view (``edge status --wide``, or any output that is not a terminal) has
~150-character device rows; in an 80x24 terminal each wrapped onto two lines and
the header scrolled away. This view cuts every line to the width, puts the
appliance-wide lines (log, disk, uplink, streams) above the devices, and, when
rows do not fit, keeps the devices that need a look (not connected, an error,
dead letters) and ends with one line that says what is hidden and how to see it.
"""

from __future__ import annotations

from typing import Any

from edge._status import _age, _disk_lines, _rate, _size, header_line, summarize

HINT = "`edge status --wide` shows all"
_MIN_WIDTH, _MIN_HEIGHT = 40, 6


def _cut(line: str, width: int) -> str:
    return line if len(line) <= width else line[: width - 3] + "..."


def _needs_a_look(d: dict[str, Any]) -> bool:
    return bool(d.get("state") != "connected" or d.get("last_error") or d.get("dead_letters"))


def _log_line(lg: dict[str, Any]) -> str:
    text = (f"  log: {'ok' if lg.get('ok') else 'FAILING'}  {lg.get('records', '?')} records, "
            f"{_size(lg.get('bytes'))}")
    if lg.get("quota_bytes"):
        text += f", {_size(lg.get('disk_bytes'))} of {_size(lg['quota_bytes'])} quota"
    if lg.get("dropped_records"):
        text += f", {lg['dropped_records']} dropped"
    if lg.get("last_write_error"):
        text += f"  ({lg['last_write_error']})"
    return text


def _uplink_line(up: dict[str, Any]) -> str:
    state = up.get("state", "ok" if up.get("ok") else "?")
    parts = [f"{k}={up[k]}" for k in ("lag_records", "lag_s", "eta_s") if up.get(k) is not None]
    if state != "online" and up.get("last_error"):
        parts.append(str(up["last_error"]))
    return f"  uplink: {state}" + (f"  {' '.join(parts)}" if parts else "")


def _device_row(name: str, d: dict[str, Any], width: int) -> str:
    row = (f"  {_cut(name, 12):<12} {_cut(str(d.get('state')), 12):<12} "
           f"{_rate(d.get('rate_per_s')):>7} {d.get('dead_letters', 0):>4} "
           f"{d.get('restarts', 0):>3}  {_age(d.get('last_reading_age_s')):<8}")
    tail = f"({d['last_error']})" if d.get("last_error") else summarize(d.get("last_reading"))
    if tail.startswith(f"{name}: "):  # the usual key is the device's name: columns are scarce
        tail = tail[len(name) + 2:]
    return _cut(row + ("  " + tail if tail else ""), width)


def render_screen(h: dict[str, Any], width: int, height: int) -> str:
    """The /health document as at most ``height - 1`` lines of at most ``width`` columns
    (the last row stays free, so a redraw never scrolls); the last line names what was
    left out, if anything."""
    width, height = max(width, _MIN_WIDTH), max(height, _MIN_HEIGHT)
    top = [header_line(h)]
    lg = h.get("log") or {}
    top.append(_log_line(lg))
    if h.get("disk"):
        top.append(_disk_lines(h["disk"])[0])
    if h.get("uplink") is not None:
        top.append(_uplink_line(h["uplink"]))
    for name, st in (h.get("streams") or {}).items():
        top.append(f"  stream {name}: {st.get('state')}  lag={st.get('lag_records', '-')} "
                   f"late={st.get('late', '-')} dead={st.get('dead_lettered', '-')}")
    top = [_cut(line, width) for line in top]

    devices = list((h.get("devices") or {}).items())
    topics = list((lg.get("topics") or {}).items())
    room = height - 1 - len(top) - 1  # less the device table's header
    shown = devices
    if len(devices) > room - 1:  # one row for the hint
        room -= 1
        keep = {name for name, d in devices if _needs_a_look(d)}
        for name, _ in devices:  # then the rest in the config's order, while rows are left
            if len(keep) >= room:
                break
            keep.add(name)
        shown = [(n, d) for n, d in devices if n in keep][: max(room, 0)]
    lines = top + [_cut(f"  {'DEVICE':<12} {'STATE':<12} {'RATE/s':>7} {'DEAD':>4} {'RST':>3}  "
                        f"LAST READING", width)]
    lines += [_device_row(n, d, width) for n, d in shown]
    # Topics only where rows are left over: /health's log line already counts their records.
    left = height - 1 - len(lines) - 1
    hidden_devices = len(devices) - len(shown)
    topic_rows = []
    if not hidden_devices and topics and left >= 2:
        fit = topics if len(topics) <= left - 1 else topics[: left - 2]
        topic_rows = [_cut(f"  {'TOPIC':<28} {'PARTS':>5} {'RECORDS':>10} {'BYTES':>10}", width)]
        topic_rows += [_cut(f"  {_cut(n, 28):<28} {t['partitions']:>5} {t['records']:>10} "
                            f"{_size(t['bytes']):>10}", width) for n, t in fit]
        topics = topics[len(fit):]
    lines += topic_rows
    hidden = []
    if hidden_devices:
        hidden.append(f"{hidden_devices} device{'s' if hidden_devices != 1 else ''}")
    if topics:
        hidden.append(f"{len(topics)} topic{'s' if len(topics) != 1 else ''}")
    if hidden:
        lines.append(_cut(f"-- not shown: {', '.join(hidden)}; {HINT} --", width))
    return "\n".join(lines)
