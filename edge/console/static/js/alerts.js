// Fever, blood-pressure and geofence alerts, newest first, as they happen.
const c = await import("./common.js" + new URL(import.meta.url).search);
const { el } = c;

const state = { alerts: [] }; // oldest first, as the API and the stream give them
c.expose("alerts", state);
const KINDS = { fever: "fever", bp: "blood pressure", geofence: "geofence" };

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
    ? `${state.alerts.length} alerts; the newest ${c.ago(state.alerts[state.alerts.length - 1].ts_ms)}`
    : "No alerts.";
}

c.header("Alerts");
try {
  const [o, r] = await Promise.all([c.api("/api/overview"), c.api("/api/alerts", { limit: 500 })]);
  c.setServerNow(o.now_ms);
  document.getElementById("edge-id").textContent = "edge " + o.edge_id;
  state.alerts = r.alerts;
  document.querySelector("#alerts tbody").replaceChildren(...r.alerts.slice().reverse().map((a) => row(a, false)));
} catch (err) {
  c.showError(err);
}
count();
c.stream({
  alert: (a) => {
    state.alerts.push(a);
    document.querySelector("#alerts tbody").prepend(row(a, true));
    count();
  },
});
setInterval(count, 5000);
