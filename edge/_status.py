"""`edge status`: one look at (or a live view of) a running appliance's /health.

Per device: state, readings, events/s over the last minute (``rate_per_s``, taken
over ``rate_window_s``: the minute, or the uptime when shorter), the last reading
(key, timestamp, value) and how long ago it arrived; then the clock (status and
jumps), the log, the bytes written to disk (per record, and a day at the current
rate) and the uplink. ``--json`` prints the /health document as is. On a terminal
the view fits its size (edge/_status_screen.py); ``--wide`` prints every row whole.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
import urllib.error
import urllib.request
from typing import Any

from edge._errors import EdgeError


class StatusUnavailable(EdgeError):
    """The appliance's health endpoint did not answer (it is not running, or elsewhere)."""

    retriable = True


def fetch_health(address: str, timeout: float = 3.0, token: str | None = None) -> dict[str, Any]:
    """GET http://ADDRESS/health (with ``token``: the readings' values too); a 503 still
    returns its JSON. Raises StatusUnavailable."""
    url = f"http://{address}/health"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        request = urllib.request.Request(url, headers=headers)  # our own URL
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 503:
            return json.loads(exc.read())
        raise StatusUnavailable(f"{url}: HTTP {exc.code}") from exc
    except (OSError, ValueError) as exc:
        raise StatusUnavailable(f"{url}: {getattr(exc, 'reason', exc)} (is `edge run` running?)") from exc


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 120:
        return f"{seconds:.1f}s ago"
    return f"{seconds / 60:.0f}m ago"


def _rate(per_s: float | None) -> str:
    if per_s is None:
        return "-"
    return f"{per_s:.0f}" if per_s >= 100 else f"{per_s:.2f}"


def _size(n: float | None) -> str:
    """Bytes in decimal units, as SD cards state their endurance (TB written)."""
    if n is None:
        return "?"
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def _disk_lines(disk: dict[str, Any]) -> list[str]:
    """Bytes written, per record and projected per day, and the log's files: within 80 columns."""
    files = f"log files {_size(disk.get('log_disk_bytes'))}"
    if disk.get("bytes_written") is None:
        return [f"  disk: written bytes not known yet; {files}"]
    per = disk.get("bytes_per_record")
    window = disk.get("window_s") or 0
    span = f"{window / 60:.0f}m" if window >= 120 else f"{window:.0f}s"
    return [f"  disk: {_size(disk['bytes_written'])} written"
            + (f", {_size(per)}/record" if per is not None else "") + f"; {files}",
            f"  disk writes: {_size(disk.get('projected_bytes_per_day'))}/day at the last {span}'s rate"]


def summarize(last: dict[str, Any] | None, width: int = 60) -> str:
    """One line of a last reading: ``key: field=value ...``, cut at ``width`` characters."""
    if not last:
        return ""
    if "value" not in last:  # withheld: [health] show_values is off
        return f"{last.get('key')}: (values withheld)"
    value = last.get("value")
    if isinstance(value, dict):
        body = " ".join(f"{k}={json.dumps(v, separators=(',', ':')) if not isinstance(v, str) else v}"
                        for k, v in value.items())
    else:
        body = json.dumps(value)
    text = f"{last.get('key')}: {body}"
    return text if len(text) <= width else text[: width - 3] + "..."


def header_line(h: dict[str, Any]) -> str:
    """``edge ID: OK|DEGRADED  (up Ns, clock STATUS[, N jumps])``."""
    clock = h.get("clock")
    t = h.get("time") or {}
    if t.get("jumps"):
        clock = f"{clock}, {t['jumps']} jump{'s' if t['jumps'] != 1 else ''}"
    return (f"edge {h.get('edge_id')}: {'OK' if h.get('ok') else 'DEGRADED'}  "
            f"(up {h.get('uptime_s', 0):.0f}s, clock {clock})")


def render(h: dict[str, Any]) -> str:
    """The full plain-text view of a /health document: every row, whole (``--wide``, and
    any output that is not a terminal)."""
    lines = [header_line(h)]
    lines.append(f"  {'DEVICE':<14} {'STATE':<13} {'KIND':<15} {'TOPIC':<15} {'READINGS':>8} "
                 f"{'RATE/s':>7} {'DEAD':>5} {'RESTARTS':>8}  LAST READING")
    for name, d in h.get("devices", {}).items():
        last = summarize(d.get("last_reading"))
        lines.append(f"  {name:<14} {d['state']:<13} {d['kind']:<15} {d['topic']:<15} "
                     f"{d['readings']:>8} {_rate(d.get('rate_per_s')):>7} {d['dead_letters']:>5} "
                     f"{d['restarts']:>8}  {_age(d.get('last_reading_age_s'))}"
                     + (f"  {last}" if last else "")
                     + (f"  ({d['last_error']})" if d.get("last_error") else ""))
    lg = h.get("log", {})
    lines.append(f"  log: {'ok' if lg.get('ok') else 'FAILING'}  {lg.get('records', '?')} records, "
                 f"{lg.get('bytes', '?')} bytes in {lg.get('data_dir', '?')}"
                 # What the quota bounds is the files on disk, not the records' bytes.
                 + (f", {lg.get('disk_bytes', '?')} bytes on disk of a {lg['quota_bytes']}-byte quota"
                    if lg.get("quota_bytes") else "")
                 + (f", {lg['dropped_records']} dropped" if lg.get("dropped_records") else "")
                 + (f"  (last error: {lg['last_write_error']})" if lg.get("last_write_error") else ""))
    if h.get("disk"):
        lines.extend(_disk_lines(h["disk"]))
    topics = lg.get("topics") or {}
    if topics:
        lines.append(f"  {'TOPIC':<28} {'PARTITIONS':>10} {'RECORDS':>10} {'BYTES':>12}")
        for name, t in topics.items():
            lines.append(f"  {name:<28} {t['partitions']:>10} {t['records']:>10} {t['bytes']:>12}")
    for name, st in (h.get("streams") or {}).items():
        lines.append(f"  stream {name}: {st.get('state')}  in={st.get('records_in', '-')} "
                     f"out={st.get('records_out', '-')} lag={st.get('lag_records', '-')} "
                     f"late={st.get('late', '-')} dead={st.get('dead_lettered', '-')}"
                     + (f"  ({st['last_error']})" if st.get("last_error") else ""))
    k = h.get("kafka")
    if k is not None:
        # Rates first (what clients do now), the busiest APIs by rate; totals since the start.
        rates = k.get("requests_per_s") or {}
        busiest = sorted(rates.items(), key=lambda kv: -kv[1])[:3]
        lines.append(f"  kafka: {k.get('connections', 0)} connections, "
                     f"{k.get('requests_per_s_total', 0):g} requests/s"
                     + (f" ({', '.join(f'{a} {n:g}/s' for a, n in busiest)})" if busiest else "")
                     + f", {k.get('requests_total', 0)} requests since start"
                     + (f", {sum(k.get('errors', {}).values())} errors" if k.get("errors") else "")
                     + (f", {k['group_members']} group members" if k.get("group_members") else ""))
    up = h.get("uplink")
    if up is not None:
        state = up.get("state", "ok" if up.get("ok") else "?")
        # A past error is noise once the link is back; it stays in --json.
        skip = {"ok", "state"} | ({"last_error"} if state == "online" else set())
        extra = ", ".join(f"{k}={v}" for k, v in up.items() if k not in skip and v is not None)
        lines.append(f"  uplink: {state}" + (f"  {extra}" if extra else ""))
    return "\n".join(lines)


def _view(h: dict[str, Any], wide: bool) -> str:
    """On a terminal, the screen that fits it (read each time: it may have been resized)."""
    if wide or not sys.stdout.isatty():
        return render(h)
    from edge._status_screen import render_screen

    size = shutil.get_terminal_size()
    return render_screen(h, size.columns, size.lines)


def status_main(address: str, *, as_json: bool = False, watch: bool = False,
                interval: float = 1.0, token: str | None = None, wide: bool = False) -> int:
    """Print the status once (exit 0 healthy, 1 degraded) or every `interval` s until Ctrl-C.
    On a terminal it fits the terminal unless ``wide``."""
    if not watch:
        h = fetch_health(address, token=token)
        print(json.dumps(h, indent=2) if as_json else _view(h, wide))
        return 0 if h.get("ok") else 1
    clear = "\x1b[H\x1b[2J" if sys.stdout.isatty() else ""
    try:
        while True:
            try:
                h = fetch_health(address, token=token)
                text = json.dumps(h) if as_json else _view(h, wide)
            except StatusUnavailable as exc:
                text = f"edge status: {exc}"
            print(clear + text, flush=True)
            time.sleep(interval)
    except KeyboardInterrupt:
        return 0
