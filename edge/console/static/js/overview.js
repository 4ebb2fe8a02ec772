// The overview: every device, the log, the uplink and the topologies; live.
// common.js is imported with this module's own query, so a ?token= reaches it too.
const c = await import("./common.js" + new URL(import.meta.url).search);
const { el, link, num, bytes, ago, summary } = c;

const state = { overview: null, last: {} }; // last: device -> {ts_ms, value}, newest seen
c.expose("overview", state);

function sparkline(counts) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", "0 0 120 24");
  svg.setAttribute("preserveAspectRatio", "none");
  const max = Math.max(1, ...counts);
  const step = counts.length > 1 ? 120 / (counts.length - 1) : 0;
  const line = document.createElementNS(svg.namespaceURI, "polyline");
  line.setAttribute("points", counts.map((n, i) => `${(i * step).toFixed(1)},${(23 - 22 * n / max).toFixed(1)}`).join(" "));
  svg.append(line);
  svg.dataset.values = counts.join(",");
  return svg;
}

function newer(a, b) {
  if (!a) return b;
  if (!b) return a;
  return b.ts_ms >= a.ts_ms ? b : a;
}

function deviceRow(d) {
  const last = newer(d.last, state.last[d.id]);
  state.last[d.id] = last;
  return el("tr", { "data-device": d.id },
    el("td", {}, link("/devices/" + encodeURIComponent(d.id), d.id)),
    el("td", { class: "hide-narrow" }, d.kind),
    el("td", { class: "state-" + d.state, "data-field": "state" }, d.state),
    el("td", { class: "n", "data-field": "rate" }, num(d.rate_per_s)),
    el("td", { class: "hide-narrow" }, sparkline(d.sparkline || [])),
    el("td", { class: "wrap", "data-field": "last", "data-ts": last ? last.ts_ms : null },
      last ? summary(last.value) : "–"),
    el("td", { "data-field": "age", "data-ts": last ? last.ts_ms : null }, ago(last ? last.ts_ms : null)),
    el("td", { class: "n" + (d.dead_letters ? " bad" : ""), "data-field": "dead_letters" }, d.dead_letters),
    el("td", { class: "n", "data-field": "restarts" }, d.restarts),
    el("td", { class: "hide-narrow", "data-field": "clock",
               title: "whose clock stamped the last reading, and the box's clock then" },
      clockText(d)),
  );
}

// "device" alone says nothing of how far to trust it: the box's status beside it says
// whether the box could check the device's time against its own.
function clockText(d) {
  if (!d.clock) return "–";
  return d.clock === "device" ? `device (box ${d.clock_box ?? "?"})` : d.clock;
}

function kv(dl, pairs) {
  dl.replaceChildren(...pairs.flatMap(([k, v, cls]) => [el("dt", {}, k), el("dd", { class: cls || null }, v)]));
}

function render(o) {
  state.overview = o;
  c.setServerNow(o.now_ms);
  document.getElementById("edge-id").textContent = "edge " + o.edge_id;
  document.querySelector("#devices tbody").replaceChildren(...o.devices.map(deviceRow));

  const log = o.log || { topics: [] };
  const q = log.quota || {};
  const dropped = log.dropped || {};
  kv(document.getElementById("quota"), [
    ["on disk", bytes(q.bytes) + (q.limit ? ` of ${bytes(q.limit)} (${Math.round(100 * q.bytes / q.limit)} %)` : ", no quota")],
    ["when full", q.policy ?? "–"],
    ["dropped", Object.entries(dropped).map(([k, v]) => `${num(v)} ${k.replace(/_/g, " ")}`).join(", ") || "none",
      Object.values(dropped).some((v) => v) ? "warn" : null],
  ]);
  document.querySelector("#log-topics tbody").replaceChildren(...log.topics.map((t) => el("tr", { "data-topic": t.name },
    el("td", {}, link("/topics/" + encodeURIComponent(t.name), t.name)),
    el("td", { class: "n" }, t.partitions),
    el("td", { class: "n", "data-field": "records" }, t.records),
    el("td", { class: "n" }, bytes(t.bytes)),
    el("td", { "data-ts": t.oldest_ms }, t.oldest_ms ? ago(t.oldest_ms) : (t.records ? "–" : "empty")),
  )));

  const up = o.uplink;
  const dl = document.querySelector("#uplink dl");
  if (!up) kv(dl, [["uplink", "not configured"]]);
  else {
    kv(dl, [
      ["state", up.state, "state-" + up.state],
      ["lag", `${num(up.lag_records)} records` + (up.lag_s != null ? `, ${num(up.lag_s, 1)} s` : "")],
      ["draining", up.drain_per_s != null ? `${num(up.drain_per_s, 1)} records/s` : "–"],
      ["caught up in", up.eta_s != null ? `${num(up.eta_s, 0)} s` : "–"],
      ["last error", up.last_error || "none", up.last_error ? "bad" : null],
    ]);
  }
  const streams = o.streams || [];
  document.querySelector("#streams tbody").replaceChildren(...(streams.length ? streams.map((s) => el("tr", { "data-stream": s.name },
    el("td", {}, s.name), el("td", { class: "state-" + s.state }, s.state),
    el("td", { class: "n" }, num(s.lag)), el("td", { class: "n" }, num(s.late)),
  )) : [el("tr", {}, el("td", { colspan: 4, class: "muted" }, "none configured"))]));
}

// A reading reaches its row at once; the next overview event (at most 1/s) brings the rest.
function onReading(r) {
  const last = newer(state.last[r.device], { ts_ms: r.ts_ms, value: r.value });
  state.last[r.device] = last;
  const row = document.querySelector(`#devices tr[data-device="${CSS.escape(r.device)}"]`);
  if (!row || last.ts_ms !== r.ts_ms) return;
  const cell = row.querySelector("[data-field=last]");
  cell.textContent = summary(r.value);
  cell.dataset.ts = r.ts_ms;
  const age = row.querySelector("[data-field=age]");
  age.dataset.ts = r.ts_ms;
  age.textContent = ago(r.ts_ms);
}

function tick() {
  for (const cell of document.querySelectorAll("#devices [data-field=age][data-ts]")) {
    cell.textContent = ago(Number(cell.dataset.ts));
  }
}

c.header("Overview");
try {
  render(await c.api("/api/overview"));
} catch (err) {
  c.showError(err);
}
const reload = async () => {
  try { render(await c.api("/api/overview")); } catch (err) { c.showError(err); }
};
c.stream({ overview: (o) => { c.showError(null); render(o); }, reading: onReading }, reload);
setInterval(tick, 1000);
