// One topic's records, browsed like kafka-console-consumer: from an offset, a time or
// the end, one partition or all, filtered by key; dead letters with raw bytes and reason.
// The query lives in the page's URL, so a view can be bookmarked or sent on.
const c = await import("./common.js" + new URL(import.meta.url).search);
const { el } = c;

const name = decodeURIComponent(location.pathname.replace(/^\/topics\//, "").replace(/\/$/, ""));
const form = document.getElementById("query");
const state = { topic: name, query: {}, records: [], next: {}, dead_letter: false };
c.expose("topic", state);

function pretty(value) {
  return typeof value === "string" ? value : JSON.stringify(value, null, 1);
}

function row(r) {
  const cells = [
    el("td", { class: "n" }, r.partition),
    el("td", { class: "n" }, r.offset),
    el("td", { "data-ts": r.ts_ms }, c.time(r.ts_ms)),
    el("td", {}, r.key ?? el("span", { class: "muted" }, "null")),
    el("td", { class: "wrap" }, el("pre", { class: "value" }, pretty(r.value))),
    el("td", { class: "wrap" }, Object.keys(r.headers || {}).length
      ? el("pre", { class: "value" }, Object.entries(r.headers).map(([k, v]) => `${k}: ${v}`).join("\n"))
      : el("span", { class: "muted" }, "–")),
  ];
  if (state.dead_letter) {
    cells.push(el("td", { class: "wrap bad" }, r.reason ?? "–"),
      el("td", { class: "wrap" }, el("code", { class: "hex" }, r.raw_hex ?? "–")));
  }
  return el("tr", { "data-partition": r.partition, "data-offset": r.offset }, ...cells);
}

// The form as API parameters: the start is an offset (with a partition), a time, or an end.
function params() {
  const f = new FormData(form);
  const q = { partition: f.get("partition"), key: f.get("key"), limit: f.get("limit") };
  const from = f.get("from");
  if (from === "offset") {
    if (f.get("partition") === "") throw new Error("An offset is in one partition: choose the partition.");
    if (f.get("offset") === "") throw new Error("Give the offset to start from.");
    q.offset = f.get("offset");
  } else if (from === "time") {
    if (!f.get("time")) throw new Error("Give the time to start from.");
    q.time_ms = String(new Date(f.get("time")).getTime());
  } else {
    q.from = from;
  }
  return q;
}

function syncUrl(q) {
  const u = new URLSearchParams(location.search);
  for (const k of ["partition", "offset", "time_ms", "from", "key", "limit"]) {
    if (q[k]) u.set(k, q[k]); else u.delete(k);
  }
  history.replaceState(null, "", location.pathname + "?" + u);
}

function fillForm(u) {
  for (const k of ["partition", "offset", "key", "limit"]) if (u.get(k)) form.elements[k].value = u.get(k);
  if (u.get("offset")) form.elements.from.value = "offset";
  else if (u.get("time_ms")) {
    form.elements.from.value = "time";
    const d = new Date(Number(u.get("time_ms")) - new Date().getTimezoneOffset() * 6e4);
    form.elements.time.value = d.toISOString().slice(0, 19);
  } else if (u.get("from")) form.elements.from.value = u.get("from");
}

async function show(q) {
  try {
    const r = await c.api(`/api/topics/${encodeURIComponent(name)}/records`, q);
    c.showError(null);
    state.query = q;
    state.records = r.records;
    state.next = r.next || {};
    syncUrl(q);
    document.querySelector("#records tbody").replaceChildren(...r.records.map(row));
    document.getElementById("count").textContent = `${r.records.length} records` +
      (Object.keys(state.next).length ? "; next offsets " + Object.entries(state.next).map(([p, o]) => `${p}:${o}`).join(", ") : "");
    // "Next" continues one partition from where this page ended (the API takes one offset).
    const p = q.partition;
    document.getElementById("more").hidden = !(p !== undefined && p !== "" && state.next[p] !== undefined);
  } catch (err) {
    c.showError(err);
  }
}

c.header("Topics");
document.getElementById("title").textContent = name;
try {
  const [o, t] = await Promise.all([c.api("/api/overview"), c.api("/api/topics")]);
  c.setServerNow(o.now_ms);
  document.getElementById("edge-id").textContent = "edge " + o.edge_id;
  const info = t.topics.find((x) => x.name === name);
  if (info) {
    state.dead_letter = info.dead_letter;
    const sel = form.elements.partition;
    for (let p = 0; p < info.partitions; p++) sel.append(el("option", { value: p }, String(p)));
    document.getElementById("title").append(" ", el("span", { class: "tag" + (info.dead_letter ? " dead" : "") },
      `${info.partitions} partition${info.partitions === 1 ? "" : "s"}, ${info.records} records${info.dead_letter ? ", dead letters" : ""}`));
  }
  if (state.dead_letter) {
    document.querySelector("#records thead tr").append(el("th", {}, "Reason"), el("th", {}, "Raw bytes (hex)"));
  }
} catch (err) {
  c.showError(err);
}
form.onsubmit = (e) => {
  e.preventDefault();
  try { show(params()); } catch (err) { c.showError(err); }
};
document.getElementById("more").onclick = () => {
  const p = state.query.partition;
  form.elements.from.value = "offset";
  form.elements.offset.value = state.next[p];
  show({ ...params() });
};
fillForm(new URLSearchParams(location.search));
try { await show(params()); } catch (err) { c.showError(err); }
