// Fever, blood-pressure and geofence alerts, newest first, as they happen.
const c = await import("./common.js" + new URL(import.meta.url).search);
const { el } = c;

// Oldest first, as the API and the stream give them; the newest SHOWN only, so a page
// left open for days (a cuff alerting on every reading) stays light.
const SHOWN = 200;
const state = { alerts: [] };
c.expose("alerts", state);
const KINDS = { fever: "fever", bp: "blood pressure", geofence: "geofence" };

function same(a, b) {
  return a.ts_ms === b.ts_ms && a.device === b.device && a.kind === b.kind && a.topic === b.topic &&
    JSON.stringify(a.value) === JSON.stringify(b.value);
}

function row(a, fresh) {
  return el("tr", { "data-kind": a.kind, "data-device": a.device, class: fresh ? "fresh" : null },
    el("td", { "data-ts": a.ts_ms }, c.time(a.ts_ms)),
    el("td", { class: "bad" }, KINDS[a.kind] || a.kind),
    el("td", {}, c.link("/devices/" + encodeURIComponent(a.device), a.device)),
    el("td", { class: "hide-narrow" }, a.topic ? c.link("/topics/" + encodeURIComponent(a.topic), a.topic) : "–"),
    el("td", { class: "wrap" }, c.summary(a.value, 120)),
  );
}

function count() {
  document.getElementById("count").textContent = state.alerts.length
    ? `The newest ${state.alerts.length} alerts; the last ${c.ago(state.alerts[state.alerts.length - 1].ts_ms)}`
    : "No alerts.";
}

async function load() {
  try {
    const [o, r] = await Promise.all([c.api("/api/overview"), c.api("/api/alerts", { limit: SHOWN })]);
    c.showError(null);
    c.setServerNow(o.now_ms);
    document.getElementById("edge-id").textContent = "edge " + o.edge_id;
    // Alerts the stream brought while this request was out are newer than its answer: kept.
    const newest = r.alerts.length ? r.alerts[r.alerts.length - 1].ts_ms : 0;
    const meanwhile = state.alerts.filter((a) => a.ts_ms >= newest && !r.alerts.some((b) => same(a, b)));
    state.alerts = [...r.alerts, ...meanwhile].slice(-SHOWN);
    document.querySelector("#alerts tbody").replaceChildren(...state.alerts.slice().reverse().map((a) => row(a, false)));
  } catch (err) {
    c.showError(err);
  }
  count();
}

c.header("Alerts");
await load();
c.stream({
  alert: (a) => {
    if (state.alerts.some((b) => same(a, b))) return; // also in the reload on open
    state.alerts.push(a);
    if (state.alerts.length > SHOWN) state.alerts.splice(0, state.alerts.length - SHOWN);
    const body = document.querySelector("#alerts tbody");
    body.prepend(row(a, true));
    while (body.rows.length > SHOWN) body.lastElementChild.remove();
    count();
  },
}, load);
setInterval(count, 5000);
