// GPS fixes drawn as tracks, with the configured geofences, on a plain projected plot
// with a scale bar: the box has no internet, so no map tiles. Live while open.
const c = await import("./common.js" + new URL(import.meta.url).search);
const { el, num } = c;

const RANGES = [["15 min", 9e5], ["1 h", 36e5], ["6 h", 216e5], ["1 d", 864e5], ["7 d", 6048e5]];
const COLOURS = ["#1f5fbf", "#c62828", "#2e7d32", "#6a1b9a", "#ef6c00", "#00838f"];
const EARTH_M = 6371008.8; // mean radius

// What was drawn, in metres east/north of the view's centre and in canvas pixels.
const state = { range_ms: 36e5, tracks: [], geofences: [], drawn: { tracks: {}, geofences: {} } };
c.expose("tracks", state);
const canvas = document.getElementById("map");

// An equirectangular projection about the data's centre: over the few kilometres a
// vehicle or a ward covers, its error is far below a GPS fix's.
function projection(points) {
  const lats = points.map((p) => p[0]);
  const lons = points.map((p) => p[1]);
  const lat0 = (Math.min(...lats) + Math.max(...lats)) / 2;
  const lon0 = (Math.min(...lons) + Math.max(...lons)) / 2;
  const k = Math.cos(lat0 * Math.PI / 180);
  return (lat, lon) => [(lon - lon0) * Math.PI / 180 * EARTH_M * k, (lat - lat0) * Math.PI / 180 * EARTH_M];
}

function circle(lat, lon, radiusM, n = 48) {
  const pts = [];
  for (let i = 0; i <= n; i++) {
    const a = 2 * Math.PI * i / n;
    const dLat = radiusM * Math.cos(a) / EARTH_M * 180 / Math.PI;
    const dLon = radiusM * Math.sin(a) / (EARTH_M * Math.cos(lat * Math.PI / 180)) * 180 / Math.PI;
    pts.push([lat + dLat, lon + dLon]);
  }
  return pts;
}

function fenceOutline(f) {
  return f.kind === "circle" ? circle(f.lat, f.lon, f.radius_m) : [...f.polygon, f.polygon[0]];
}

function niceLength(m) {
  const p = 10 ** Math.floor(Math.log10(m));
  for (const s of [5, 2, 1]) if (s * p <= m) return s * p;
  return p;
}

function draw() {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth;
  const h = canvas.clientHeight;
  canvas.width = w * dpr;
  canvas.height = h * dpr;
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  state.drawn = { tracks: {}, geofences: {}, metres_per_px: null };
  const fences = state.geofences.map((f) => [f, fenceOutline(f)]);
  const all = [...state.tracks.flatMap((t) => t.points.map((p) => [p.lat, p.lon])), ...fences.flatMap(([, o]) => o)];
  if (!all.length) {
    ctx.fillStyle = "#66707a";
    ctx.font = "14px system-ui, sans-serif";
    ctx.fillText("No GPS fixes in this range.", 16, 28);
    return;
  }
  const proj = projection(all);
  const xy = all.map(([la, lo]) => proj(la, lo));
  const xs = xy.map((p) => p[0]);
  const ys = xy.map((p) => p[1]);
  const spanX = Math.max(Math.max(...xs) - Math.min(...xs), 50);
  const spanY = Math.max(Math.max(...ys) - Math.min(...ys), 50);
  const pad = 30;
  const scale = Math.min((w - 2 * pad) / spanX, (h - 2 * pad) / spanY); // px per metre
  const cx = (Math.max(...xs) + Math.min(...xs)) / 2;
  const cy = (Math.max(...ys) + Math.min(...ys)) / 2;
  const px = (la, lo) => { const [x, y] = proj(la, lo); return [w / 2 + (x - cx) * scale, h / 2 - (y - cy) * scale]; };
  state.drawn.metres_per_px = 1 / scale;

  for (const [f, outline] of fences) {
    const pts = outline.map(([la, lo]) => px(la, lo));
    ctx.beginPath();
    pts.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
    ctx.fillStyle = "rgba(255, 152, 0, 0.12)";
    ctx.fill();
    ctx.strokeStyle = "#ef6c00";
    ctx.setLineDash([5, 4]);
    ctx.lineWidth = 1.5;
    ctx.stroke();
    ctx.setLineDash([]);
    const [lx, ly] = px(...(f.kind === "circle" ? [f.lat, f.lon] : outline[0]));
    ctx.fillStyle = "#b35900";
    ctx.font = "12px system-ui, sans-serif";
    ctx.fillText(f.name, lx + 4, ly - 4);
    state.drawn.geofences[f.name] = pts;
  }
  state.tracks.forEach((t, i) => {
    const colour = COLOURS[i % COLOURS.length];
    const pts = t.points.map((p) => px(p.lat, p.lon));
    ctx.strokeStyle = colour;
    ctx.lineWidth = 2.5;
    ctx.lineJoin = "round";
    ctx.beginPath();
    pts.forEach(([x, y], j) => (j ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
    ctx.stroke();
    ctx.fillStyle = colour;
    if (pts.length) {
      const [sx, sy] = pts[0];
      ctx.strokeRect(sx - 4, sy - 4, 8, 8); // start: a square; now: a dot
      const [ex, ey] = pts[pts.length - 1];
      ctx.beginPath();
      ctx.arc(ex, ey, 5, 0, 2 * Math.PI);
      ctx.fill();
      ctx.font = "bold 12px system-ui, sans-serif";
      ctx.fillText(t.device, ex + 7, ey + 4);
    }
    state.drawn.tracks[t.device] = pts;
  });

  // The scale bar, bottom left: a round length about a fifth of the width.
  const len = niceLength((w / 5) / scale);
  const barPx = len * scale;
  ctx.strokeStyle = "#1d2329";
  ctx.lineWidth = 2;
  ctx.beginPath();
  ctx.moveTo(16, h - 16); ctx.lineTo(16 + barPx, h - 16);
  ctx.moveTo(16, h - 21); ctx.lineTo(16, h - 11);
  ctx.moveTo(16 + barPx, h - 21); ctx.lineTo(16 + barPx, h - 11);
  ctx.stroke();
  ctx.fillStyle = "#1d2329";
  ctx.font = "12px system-ui, sans-serif";
  ctx.fillText(len >= 1000 ? `${len / 1000} km` : `${len} m`, 16, h - 24);
  ctx.fillText("N ↑", w - 36, 20);
  state.drawn.scale_bar = { metres: len, px: barPx };
}

function table() {
  const rows = state.tracks.map((t, i) => {
    const last = t.points[t.points.length - 1];
    return el("tr", { "data-device": t.device },
      el("td", {}, el("span", { style: `color:${COLOURS[i % COLOURS.length]}` }, "■ "), c.link("/devices/" + encodeURIComponent(t.device), t.device)),
      el("td", { class: "n" }, t.points.length),
      el("td", { class: "n", "data-field": "distance" }, t.distance_m >= 1000 ? `${num(t.distance_m / 1000, 2)} km` : `${num(t.distance_m, 0)} m`),
      el("td", { class: "n" }, t.max_speed != null ? `${num(t.max_speed, 1)} m/s` : "–"),
      el("td", {}, last ? `${c.time(last.ts_ms)} (${c.ago(last.ts_ms)})` : "–"),
    );
  });
  document.querySelector("#tracks tbody").replaceChildren(...rows);
  document.getElementById("count").textContent = `${state.tracks.reduce((n, t) => n + t.points.length, 0)} fixes`;
  document.getElementById("fences").textContent = state.geofences.length
    ? "Geofences: " + state.geofences.map((f) => f.kind === "circle" ? `${f.name} (circle, ${num(f.radius_m, 0)} m)` : `${f.name} (polygon)`).join(", ")
    : "No geofences configured.";
}

function haversine(a, b) {
  const r = Math.PI / 180;
  const h = Math.sin((b.lat - a.lat) * r / 2) ** 2 + Math.cos(a.lat * r) * Math.cos(b.lat * r) * Math.sin((b.lon - a.lon) * r / 2) ** 2;
  return 2 * EARTH_M * Math.asin(Math.sqrt(h));
}

async function load() {
  try {
    const r = await c.api("/api/tracks", { since_ms: c.serverNow() - state.range_ms });
    c.showError(null);
    // Fixes the stream brought while this request was out are later than its answer: kept.
    for (const t of r.tracks) {
      const old = state.tracks.find((x) => x.device === t.device);
      const last = t.points.length ? t.points[t.points.length - 1].ts_ms : 0;
      if (old) t.points.push(...old.points.filter((p) => p.ts_ms > last));
    }
    state.tracks = r.tracks;
    state.geofences = r.geofences || [];
    table();
    draw();
  } catch (err) {
    c.showError(err);
  }
}

let pending = false;
function onReading(r) {
  const v = r.value || {};
  if (typeof v.lat !== "number" || typeof v.lon !== "number") return;
  let t = state.tracks.find((x) => x.device === r.device);
  if (!t) {
    t = { device: r.device, points: [], distance_m: 0, max_speed: null };
    state.tracks.push(t);
  }
  const p = { ts_ms: r.ts_ms, lat: v.lat, lon: v.lon, speed: v.speed_mps ?? null, fix: v.fix_quality ?? null };
  const prev = t.points[t.points.length - 1];
  if (prev && p.ts_ms <= prev.ts_ms) return; // had (the reload on open) or late: load() places it
  if (prev) t.distance_m += haversine(prev, p);
  if (p.speed != null) t.max_speed = Math.max(t.max_speed ?? 0, p.speed);
  t.points.push(p);
  if (!pending) {
    pending = true;
    requestAnimationFrame(() => { pending = false; table(); draw(); });
  }
}

c.header("Tracks");
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
c.stream({ reading: onReading }, load);
window.addEventListener("resize", draw);
