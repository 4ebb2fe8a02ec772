// A device's readings over minutes to days, plotted with the vendored uPlot: temperature
// with the fever threshold, blood pressure over the ACC/AHA category bands, GPS speed
// and fix quality; any other numeric field plotted plainly. Live while open.
const c = await import("./common.js" + new URL(import.meta.url).search);
const { el } = c;

const id = decodeURIComponent(location.pathname.replace(/^\/devices\//, "").replace(/\/$/, ""));
const RANGES = [["5 min", 3e5], ["15 min", 9e5], ["1 h", 36e5], ["6 h", 216e5], ["1 d", 864e5], ["7 d", 6048e5]];
const LIMIT = 5000;
const RELOAD_AFTER_SKIP_MS = 2000;
// ACC/AHA 2017 categories, used when the server sends none (the streams config has no bands).
const ACC_AHA = [
  { name: "normal", systolic_min: 0, diastolic_min: 0 },
  { name: "elevated", systolic_min: 120, diastolic_min: null },
  { name: "stage 1", systolic_min: 130, diastolic_min: 80 },
  { name: "stage 2", systolic_min: 140, diastolic_min: 90 },
  { name: "crisis", systolic_min: 180, diastolic_min: 120 },
];
const BAND_COLOURS = ["#e8f5e9", "#fff8e1", "#ffe0b2", "#ffcdd2", "#ef9a9a"];
const COLOURS = ["#1f5fbf", "#c62828", "#2e7d32", "#6a1b9a", "#ef6c00", "#00838f"];

const state = { device: id, kind: null, thresholds: {}, range_ms: 9e5, readings: [], plots: {} };
c.expose("device", state);
let plots = []; // [{spec, uplot}]

// Which plots a device gets, from its kind and the fields its readings carry.
function plotSpecs(kind, fields, thresholds) {
  const specs = [];
  const used = new Set();
  const take = (...names) => names.filter((n) => fields.has(n) && !used.has(n) && used.add(n));
  const temp = take("temperature_c");
  if (temp.length) {
    specs.push({ title: "Temperature (°C)", fields: temp, fever: thresholds.fever_c ?? null });
  }
  const bp = take("systolic_mmhg", "diastolic_mmhg");
  if (bp.length || kind === "blood_pressure") {
    specs.push({ title: "Blood pressure (mmHg)", fields: bp, bands: (thresholds.bp_bands && thresholds.bp_bands.length) ? thresholds.bp_bands : ACC_AHA });
    const pulse = take("pulse_bpm");
    if (pulse.length) specs.push({ title: "Pulse (beats/min)", fields: pulse });
  }
  const speed = take("speed_mps");
  if (speed.length) specs.push({ title: "Speed (m/s)", fields: speed });
  const fix = take("fix_quality");
  if (fix.length) specs.push({ title: "Fix quality (GGA: 0 none, 1 GPS, 2 DGPS, 4/5 RTK)", fields: fix, step: true });
  for (const f of [...fields].sort()) {
    if (!used.has(f) && !["lat", "lon", "user_id"].includes(f)) specs.push({ title: f, fields: [f] });
  }
  return specs;
}

function numericFields(readings) {
  const fields = new Set();
  for (const r of readings) {
    if (r.value && typeof r.value === "object") {
      for (const [k, v] of Object.entries(r.value)) if (typeof v === "number") fields.add(k);
    }
  }
  return fields;
}

// A silence longer than this (or 10 of the usual intervals, if longer) is drawn as a gap,
// not as a line across it: a device that was away did not read in between.
const GAP_MS = 60000;

function seriesData(spec) {
  const rows = state.readings;
  const ys = spec.fields.map((f) => rows.map((r) => (r.value && typeof r.value[f] === "number") ? r.value[f] : null));
  // What was plotted, for tests and the devtools: the readings as they are, no gap markers.
  state.plots[spec.title] = {
    fields: spec.fields, ts_ms: rows.map((r) => r.ts_ms),
    values: Object.fromEntries(spec.fields.map((f, i) => [f, ys[i]])),
    fever_c: spec.fever ?? undefined, bands: spec.bands ?? undefined,
  };
  const steps = rows.slice(1).map((r, i) => r.ts_ms - rows[i].ts_ms).sort((a, b) => a - b);
  const gap = Math.max(GAP_MS, 10 * (steps[steps.length >> 1] || 0));
  const x = [];
  const out = spec.fields.map(() => []);
  rows.forEach((r, i) => {
    if (i && r.ts_ms - rows[i - 1].ts_ms > gap) {
      x.push((rows[i - 1].ts_ms + 1) / 1000); // a null point breaks the line there
      out.forEach((o) => o.push(null));
    }
    x.push(r.ts_ms / 1000);
    out.forEach((o, k) => o.push(ys[k][i]));
  });
  return [x, ...out];
}

// Horizontal lines and bands drawn under the series, in the y scale's units.
function overlay(spec) {
  return (u) => {
    const { ctx } = u;
    const { left, width, top, height } = u.bbox;
    const y = (v) => u.valToPos(v, "y", true);
    ctx.save();
    ctx.beginPath();
    ctx.rect(left, top, width, height);
    ctx.clip();
    ctx.font = `${11 * devicePixelRatio}px system-ui, sans-serif`;
    ctx.textAlign = "left"; // uPlot leaves its axes' alignment on the context
    ctx.textBaseline = "alphabetic";
    if (spec.bands) {
      spec.bands.forEach((b, i) => {
        const lo = y(b.systolic_min);
        const hi = i + 1 < spec.bands.length ? y(spec.bands[i + 1].systolic_min) : top;
        ctx.fillStyle = BAND_COLOURS[Math.min(i, BAND_COLOURS.length - 1)];
        ctx.fillRect(left, hi, width, lo - hi);
        if (lo - Math.max(hi, top) < 14 * devicePixelRatio) return; // too thin to label
        ctx.fillStyle = "#555";
        const label = b.name.replace(/_/g, " ");
        ctx.fillText(`${label} (sys ≥ ${Math.round(b.systolic_min)}${b.diastolic_min ? `, dia ≥ ${Math.round(b.diastolic_min)}` : ""})`, left + 4, Math.min(lo, top + height) - 4 * devicePixelRatio);
      });
    }
    if (spec.fever != null) {
      ctx.strokeStyle = "#c62828";
      ctx.setLineDash([6, 4]);
      ctx.lineWidth = 1.5 * devicePixelRatio;
      ctx.beginPath();
      ctx.moveTo(left, y(spec.fever));
      ctx.lineTo(left + width, y(spec.fever));
      ctx.stroke();
      ctx.fillStyle = "#c62828";
      ctx.fillText(`fever ≥ ${spec.fever} °C`, left + 4, y(spec.fever) + 14 * devicePixelRatio);
    }
    ctx.restore();
  };
}

function yRange(spec) {
  return (u, min, max) => {
    if (min == null || max == null) { min = 0; max = 1; }
    if (spec.fever != null) { min = Math.min(min, spec.fever - 1); max = Math.max(max, spec.fever + 0.5); }
    if (spec.bands) { min = Math.min(min, 60); max = Math.max(max, 190); }
    if (min === max) { min -= 1; max += 1; }
    const pad = (max - min) * 0.05;
    return [min - pad, max + pad];
  };
}

// The section's inner width: uPlot takes pixels, and a plot wider than its box scrolls.
function plotWidth(holder) {
  const cs = getComputedStyle(holder);
  return Math.max(260, holder.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight));
}

function build() {
  const box = document.getElementById("plots");
  for (const p of plots) p.uplot.destroy();
  plots = [];
  box.replaceChildren();
  const specs = plotSpecs(state.kind, numericFields(state.readings), state.thresholds);
  state.plots = {};
  if (!specs.length) {
    box.append(el("p", { class: "muted" }, state.readings.length ? "No numeric fields to plot." : "No readings in this range."));
  }
  for (const spec of specs) {
    const holder = el("section", { class: "plot", "data-plot": spec.title }, el("h2", {}, spec.title));
    box.append(holder);
    const opts = {
      width: plotWidth(holder), height: 220,
      scales: { x: { time: true }, y: { range: yRange(spec) } },
      series: [{}, ...spec.fields.map((f, i) => ({
        label: f, stroke: COLOURS[i % COLOURS.length], width: 1.5, spanGaps: false,
        points: { show: state.readings.length < 300 },
        ...(spec.step ? { paths: uPlot.paths.stepped({ align: 1 }) } : {}),
      }))],
      hooks: { drawClear: [overlay(spec)] },
    };
    plots.push({ spec, uplot: new uPlot(opts, seriesData(spec), holder) });
  }
}

function redraw() {
  const fields = numericFields(state.readings);
  const have = new Set(plots.flatMap((p) => p.spec.fields));
  if ([...fields].some((f) => !have.has(f) && !["lat", "lon", "user_id"].includes(f))) return build();
  for (const p of plots) p.uplot.setData(seriesData(p.spec));
}

async function load() {
  const since = c.serverNow() - state.range_ms;
  try {
    const r = await c.api(`/api/devices/${encodeURIComponent(id)}/readings`, { since_ms: since, limit: LIMIT });
    c.showError(null);
    state.kind = r.kind;
    state.topic = r.topic;
    state.thresholds = r.thresholds || {};
    // Readings the stream brought while this request was out may be missing from its answer.
    const had = new Set(r.readings.map((x) => `${x.partition}:${x.offset}`));
    const meanwhile = state.readings.filter((x) => x.ts_ms >= since && !had.has(`${x.partition}:${x.offset}`));
    state.readings = [...r.readings, ...meanwhile].sort((a, b) => a.ts_ms - b.ts_ms);
    document.getElementById("title").textContent = `${r.device} (${r.kind})`;
    document.getElementById("count").textContent = `${r.readings.length} readings` +
      (r.readings.length >= LIMIT ? ` (the newest ${LIMIT})` : "");
    build();
  } catch (err) {
    c.showError(err);
  }
}

let pending = false;
function onReading(r) {
  if (r.device !== id) return;
  if (state.readings.some((x) => x.offset === r.offset && x.partition === r.partition)) return;
  state.readings.push({ ts_ms: r.ts_ms, partition: r.partition, offset: r.offset, value: r.value });
  state.readings.sort((a, b) => a.ts_ms - b.ts_ms);
  const cut = c.serverNow() - state.range_ms;
  while (state.readings.length && state.readings[0].ts_ms < cut) state.readings.shift();
  document.getElementById("count").textContent = `${state.readings.length} readings`;
  if (!pending) {
    pending = true;
    requestAnimationFrame(() => { pending = false; redraw(); });
  }
}

c.header(null);
const ranges = document.getElementById("ranges");
for (const [label, ms] of RANGES) {
  const b = el("button", { type: "button", "data-range-ms": ms, class: ms === state.range_ms ? "active" : null }, label);
  b.onclick = () => {
    state.range_ms = ms;
    for (const x of ranges.children) x.classList.toggle("active", x === b);
    load();
  };
  ranges.append(b);
}
try {
  const o = await c.api("/api/overview");
  c.setServerNow(o.now_ms);
  document.getElementById("edge-id").textContent = "edge " + o.edge_id;
} catch (err) {
  c.showError(err);
}
await load();
// Readings the stream left out (a burst past what it sends live) are read from the API,
// at most once every few seconds, so the plot never draws a hole where the log has data.
let reloadTimer = null;
function onSkipped(s) {
  if (state.topic && s.topic !== state.topic) return;
  if (reloadTimer === null) reloadTimer = setTimeout(() => { reloadTimer = null; load(); }, RELOAD_AFTER_SKIP_MS);
}
c.stream({ reading: onReading, skipped: onSkipped }, load);
window.addEventListener("resize", () => {
  for (const p of plots) p.uplot.setSize({ width: plotWidth(p.uplot.root.parentNode), height: 220 });
});
