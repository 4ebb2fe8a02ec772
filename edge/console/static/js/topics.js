// Every topic in the log, dead-letter topics marked; each opens the record browser.
const c = await import("./common.js" + new URL(import.meta.url).search);
const { el, link } = c;

const state = { topics: [] };
c.expose("topics", state);

c.header("Topics");
try {
  const [o, r] = await Promise.all([c.api("/api/overview"), c.api("/api/topics")]);
  c.setServerNow(o.now_ms);
  document.getElementById("edge-id").textContent = "edge " + o.edge_id;
  state.topics = r.topics;
  document.querySelector("#topics tbody").replaceChildren(...r.topics.map((t) => el("tr", { "data-topic": t.name },
    el("td", {}, link("/topics/" + encodeURIComponent(t.name), t.name),
      t.dead_letter ? el("span", { class: "tag dead" }, " dead letters") : ""),
    el("td", { class: "n" }, t.partitions),
    el("td", { class: "n" }, t.records),
    el("td", { class: "n" }, c.bytes(t.bytes)),
    el("td", { "data-ts": t.oldest_ms }, t.oldest_ms ? `${c.time(t.oldest_ms)} (${c.ago(t.oldest_ms)})` : "empty"),
  )));
} catch (err) {
  c.showError(err);
}
