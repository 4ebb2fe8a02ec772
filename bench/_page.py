"""The results page: docs/results.md, its PNG plots and the chaos soak's table.

Plots need matplotlib (``pip install -e '.[bench]'``; deploy/bench.sh installs it);
without it the page is written all the same and says the plots were not drawn.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _machine import Machine
from _table import Table

DRAIN_PNG = "results-drain.png"
APPLIANCE_PNG = "results-appliance.png"
SOAK_PNG = "results-soak-{profile}.png"


@dataclass
class Chaos:
    """The chaos soak's result as the page shows it."""

    table_md: str
    source: str
    profile: str = "short"
    seed: int | None = None
    duration_s: float | None = None
    faults: list[dict[str, Any]] = field(default_factory=list)
    timeline: dict[str, Any] | None = None   # tests/chaos/_timeline.py: RSS, CPU, arrivals


@dataclass
class Results:
    machine: Machine
    command: str
    started: dt.datetime
    finished: dt.datetime
    quick: bool
    runs: int
    tables: list[Table] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)   # part -> why it was not measured
    skipped: dict[str, str] = field(default_factory=dict)  # part -> why it was not asked for
    plots: dict[str, str] = field(default_factory=dict)    # file name -> caption
    plot_note: str | None = None
    chaos: Chaos | None = None
    chaos_note: str = ""
    chaos_failed: bool = False
    soak: Chaos | None = None    # the long profile's result, run on its own (an hour)
    soak_note: str = ""


# -- plots ---------------------------------------------------------------------------------------

def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only; no display on a server
    import matplotlib.pyplot as plt

    return plt


def plot_drain(drains: list[Any], path: Path) -> None:
    """Records upstream vs seconds since the broker restart began, one line per run."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    for i, d in enumerate(drains):
        # Time from the link's return; the restart before it is shown as negative time.
        ts = [t - d.broker_back_s for t, _ in d.samples if t >= d.broker_back_s - 1.0]
        ns = [n / 1000 for t, n in d.samples if t >= d.broker_back_s - 1.0]
        back = d.drained_s - d.broker_back_s
        ax.plot(ts, ns, label=f"run {i + 1}: drained {back:.1f} s after the link was back", lw=1.8)
    if drains:
        ax.axhline(drains[0].records / 1000, color="grey", ls="--", lw=0.8)
        ax.text(-1.0, drains[0].records / 1000, " backlog", va="bottom", color="grey", fontsize=8)
    ax.axvline(0, color="black", ls=":", lw=1)
    ax.set_xlabel("seconds since the link came back (the restarted broker served again)")
    ax.set_ylabel("backlog records committed upstream (thousands)")
    ax.set_title("Backlog drain after an outage (uplink, exactly once, 1 broker)")
    ax.set_ylim(bottom=0)
    ax.set_xlim(left=-1.0)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


#: Rates are taken over this many seconds: commits land in bursts, and per-sample (0.5 s)
#: rates swing between 0 and twice the load, hiding the level.
WINDOW_S = 2.0


def _windowed(points: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
    """(t, d value / dt over the last WINDOW_S seconds) for a cumulative series."""
    ts, rates, j = [], [], 0
    for i, (t1, v1) in enumerate(points):
        while j < i and t1 - points[j + 1][0] >= WINDOW_S:
            j += 1
        t0, v0 = points[j]
        if t1 - t0 >= WINDOW_S / 2:
            ts.append(t1)
            rates.append((v1 - v0) / (t1 - t0))
    return ts, rates


def _cpu_cores(samples: list[tuple[float, int, float]]) -> tuple[list[float], list[float]]:
    return _windowed([(t, cpu) for t, _rss, cpu in samples])


def _rate(counts: list[tuple[float, int]]) -> tuple[list[float], list[float]]:
    return _windowed([(t, float(n)) for t, n in counts])


def plot_appliance(rows: list[dict[str, Any]], path: Path) -> None:
    """Events/s into the log (when the rows carry record counts), CPU and RSS over each run."""
    plt = _pyplot()
    has_counts = any(r.get("counts") for r in rows)
    n = 3 if has_counts else 2
    fig, axes = plt.subplots(n, 1, figsize=(8, 2.6 * n + 0.8), dpi=110, sharex=True)
    rate_ax = axes[0] if has_counts else None
    cpu_ax, rss_ax = axes[-2], axes[-1]
    colours = {"service": "tab:blue", "peer": "tab:grey"}
    labelled: set[str] = set()
    for r in rows:
        side = r["side"]
        samples = r.get("samples") or []
        if not samples:
            continue
        label = None if side in labelled else ("edge run" if side == "service"
                                               else "hand-written peer")
        labelled.add(side)
        style = dict(color=colours.get(side, "black"), lw=1.3, alpha=0.85,
                     ls="-" if side == "service" else "--")
        if rate_ax is not None:
            ts, ys = _rate(r.get("counts") or [])
            rate_ax.plot(ts, [y / 1000 for y in ys], label=label, **style)
        ts, ys = _cpu_cores(samples)
        cpu_ax.plot(ts, ys, label=label, **style)
        rss_ax.plot([s[0] for s in samples], [s[1] / 2**20 for s in samples], label=label, **style)
    rate = rows[0].get("rate") if rows else None
    if rate_ax is not None:
        rate_ax.set_ylabel(f"thousand events/s into\nthe log ({WINDOW_S:g} s windows)")
        if rate:
            rate_ax.axhline(rate / 1000, color="grey", ls=":", lw=0.8)
    cpu_ax.set_ylabel(f"CPU (cores) of the\nprocess ({WINDOW_S:g} s windows)")
    rss_ax.set_ylabel("RSS (MB)")
    rss_ax.set_xlabel("seconds since the load started (one line per run)")
    title = "The whole appliance at a fixed rate"
    if rate:
        title += f": {rate:,.0f} events/s offered"
    axes[0].set_title(title)
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.set_ylim(bottom=0)
        ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# -- chaos ------------------------------------------------------------------------------------

def load_chaos(path: Path, origin: Path | None = None) -> Chaos:
    """The chaos soak's JSON result as markdown; raises ValueError if it is not one.

    ``origin``: where the file was copied from, named on the page (default: path itself).
    """
    try:
        result = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable chaos result ({exc})") from exc
    if not isinstance(result, dict) or "systems" not in result:
        raise ValueError(f"{path}: no 'systems' key; not a chaos soak result")
    try:  # the checker's own rendering, where it is importable (tests/chaos/checker.py)
        from tests.chaos.checker import format_table

        table_md = format_table(result)
    except Exception:  # any failure: fall back to a plain rendering
        table_md = _plain_chaos_table(result)
    when = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return Chaos(table_md=table_md, source=f"`{origin or path}`, written {when}",
                 profile=str(result.get("profile", "short")), seed=result.get("seed"),
                 duration_s=result.get("duration_s"), faults=result.get("faults") or [],
                 timeline=result.get("timeline"))


def plot_soak(chaos: Chaos, path: Path) -> None:
    """Records arriving upstream per window (appliance and bridge), the service's RSS and CPU,
    over the whole soak, with every fault's span shaded and named."""
    tl = chaos.timeline or {}
    samples = [s for s in tl.get("service", []) if s.get("t_ms")]
    upstream = tl.get("upstream") or {}
    t0 = min([s["t_ms"] for s in samples] + [w for rows in upstream.values() for w, _ in rows[:1]]
             or [0])
    window_s = (tl.get("window_ms") or 5000) / 1000
    minutes = (max([s["t_ms"] for s in samples] or [t0]) - t0) / 60_000
    unit, scale = ("minutes", 60.0) if minutes > 5 else ("seconds", 1.0)

    def x(ms: float) -> float:
        return (ms - t0) / 1000 / scale

    plt = _pyplot()
    fig, (up_ax, rss_ax, cpu_ax) = plt.subplots(3, 1, figsize=(10, 8.5), dpi=110, sharex=True)
    styles = {"appliance": dict(color="tab:blue", lw=1.2),
              "bridge": dict(color="tab:grey", lw=1.0, ls="--")}
    for name, rows in upstream.items():
        label = "appliance (edge topics)" if name == "appliance" else "MQTT→Kafka bridge"
        up_ax.plot([x(w) for w, _ in rows], [n / window_s for _, n in rows], label=label,
                   **styles.get(name, {}))
    # NaN where no service was running: a restart shows as a gap, not a line across it
    rss = [(x(s["t_ms"]), s["rss_bytes"] / 2**20 if s.get("rss_bytes") else float("nan"))
           for s in samples]
    rss_ax.plot([a for a, _ in rss], [b for _, b in rss], color="tab:blue", lw=1.2,
                label="edge run (one process; restarts show as gaps)")
    cpu_x, cpu_y = [], []
    for a, b in zip(samples, samples[1:], strict=False):
        if a.get("cpu_s") is None or b.get("cpu_s") is None or a.get("pid") != b.get("pid"):
            continue
        dt_s = (b["t_ms"] - a["t_ms"]) / 1000
        if dt_s > 0:
            cpu_x.append(x(b["t_ms"]))
            cpu_y.append((b["cpu_s"] - a["cpu_s"]) / dt_s)
    cpu_ax.plot(cpu_x, cpu_y, color="tab:blue", lw=0.8, label="edge run")
    colours = {}
    palette = ["tab:red", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink",
               "tab:olive", "tab:cyan"]
    for f in chaos.faults:
        c = colours.setdefault(f["kind"], palette[len(colours) % len(palette)])
        for ax in (up_ax, rss_ax, cpu_ax):
            ax.axvspan(x(f["start_ms"]), max(x(f["end_ms"]), x(f["start_ms"]) + 0.5 / scale),
                       color=c, alpha=0.18, lw=0,
                       label=f["kind"] if ax is up_ax and f is next(
                           g for g in chaos.faults if g["kind"] == f["kind"]) else None)
    up_ax.set_ylabel(f"records/s arriving\nupstream ({window_s:g} s windows)")
    rss_ax.set_ylabel("RSS of the service (MB)")
    cpu_ax.set_ylabel("CPU of the service\n(cores)")
    cpu_ax.set_xlabel(f"{unit} since the load started")
    up_ax.set_title(f"Chaos soak, {chaos.profile} profile (seed {chaos.seed}): "
                    "throughput and memory through the faults (shaded)")
    for ax in (up_ax, rss_ax, cpu_ax):
        ax.grid(alpha=0.3)
        ax.set_ylim(bottom=0)
    up_ax.legend(loc="upper left", fontsize=7, ncol=3)
    rss_ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def soak_plot_name(chaos: Chaos) -> str:
    return SOAK_PNG.format(profile="".join(c for c in chaos.profile if c.isalnum()) or "run")


def _plain_chaos_table(result: dict[str, Any]) -> str:
    systems = result["systems"]
    keys = [k for k, v in systems[0].items() if isinstance(v, int | float) and not isinstance(v, bool)]
    lines = ["| measure | " + " | ".join(str(s.get("name", "?")) for s in systems) + " |",
             "|---|" + "---:|" * len(systems)]
    for k in keys:
        lines.append(f"| {k} | " + " | ".join(str(s.get(k, "n/a")) for s in systems) + " |")
    return "\n".join(lines)


# -- the page ---------------------------------------------------------------------------------

def render(res: Results) -> str:
    took = (res.finished - res.started).total_seconds()
    out = [
        "# Results",
        "",
        "<!-- Generated by bench/run_all.py; edit that, not this file. -->",
        "",
        f"Measured {res.started:%Y-%m-%d %H:%M} UTC to {res.finished:%H:%M} UTC ({took / 60:.0f} min)"
        f" with `{res.command}`"
        + (" — **quick mode: small counts, a smoke run, not figures to quote**" if res.quick else "")
        + ".",
        "",
        "Every figure below comes from that one run on the machine described here; each cell is the "
        f"median of {res.runs} run(s) with [min–max], each peer was run in the same run, "
        "interleaved, and each ratio is computed from the medians of its own row (↑: higher is "
        "better, ↓: lower is better). **The machine is a small VM that other work may share** "
        "(its load average at the start is in the table below): absolute figures are noisy "
        "(see the spreads); the ratios are the figures to compare. Memory is the peak resident set read from the OS "
        "(VmHWM), not estimated.",
        "",
        "To reproduce: `bash deploy/bench.sh` (sets up like deploy/setup.sh, installs matplotlib, "
        "runs `.venv/bin/python bench/run_all.py` and rewrites this page); `--quick` for a smoke "
        "run, `--help` for the parts.",
        "",
        "## Machine",
        "",
        res.machine.markdown(),
        "",
    ]
    for t in res.tables:
        out += [f"## {t.title}", "", t.markdown(), ""]
        out += [f"- {n}" for n in t.notes]
        out.append("")
    for part, why in res.errors.items():
        out += [f"## {part}: not measured in this run", "", "```", why.strip()[-1500:], "```", ""]
    if res.skipped:
        out += ["Not part of this run: " + "; ".join(f"{k} ({v})" for k, v in res.skipped.items())
                + ".", ""]
    out += ["## Plots", ""]
    if res.plot_note:
        out += [res.plot_note, ""]
    for name, caption in res.plots.items():
        if name.startswith(SOAK_PNG.split("{")[0]):
            continue   # shown beside its soak's table below
        out += [f"![{caption}]({name})", "", f"*{caption}*", ""]
    out += ["## Chaos soak", ""]
    if res.chaos is not None:
        out += [f"From the chaos soak's JSON result {res.chaos.source} (tests/chaos; "
                "`CHAOS_RESULT=<file> pytest tests/chaos -k short` writes one), not re-measured by "
                "this run unless it says so here. The soak, its fault schedule and the checker "
                "are described in tests/chaos/test_chaos_soak.py and tests/chaos/checker.py."
                + (f" {res.chaos_note}" if res.chaos_note else ""),
                "", res.chaos.table_md, ""]
        out += _soak_plot_lines(res, res.chaos)
    else:
        out += [res.chaos_note or "No chaos soak result was found; run the soak "
                "(`CHAOS_RESULT=docs/chaos-result.json .venv/bin/pytest tests/chaos -k short`) "
                "and this command again, or pass `--chaos run`.", ""]
    out += ["## Chaos soak, long profile", ""]
    if res.soak is not None:
        took = f", {res.soak.duration_s / 60:.0f} minutes of load" if res.soak.duration_s else ""
        out += [f"The long profile{took}, {len(res.soak.faults)} faults, run on its own "
                "(`CHAOS_RESULT=docs/chaos-long-result.json .venv/bin/pytest -s -m soak "
                f"tests/chaos`), from {res.soak.source}."
                + (f" {res.soak_note}" if res.soak_note else ""), "", res.soak.table_md, ""]
        out += _soak_plot_lines(res, res.soak)
    else:
        out += [res.soak_note or "No long-profile result beside this page "
                "(`docs/chaos-long-result.json`); `CHAOS_RESULT=docs/chaos-long-result.json "
                ".venv/bin/pytest -s -m soak tests/chaos` (an hour) writes one.", ""]
    return "\n".join(out)


def _soak_plot_lines(res: Results, chaos: Chaos) -> list[str]:
    name = soak_plot_name(chaos)
    caption = res.plots.get(name)
    return [f"![{caption}]({name})", "", f"*{caption}*", ""] if caption else []
