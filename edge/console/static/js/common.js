// What every page shares: the token, the API and the live stream, the header,
// formatting. Plain ES module, no build step (the box serves these files as they are).

const params = new URLSearchParams(location.search);
// Bound to a non-loopback address the console wants a token; the page was opened
// with ?token=..., and every API call, stream and link carries it on.
export const token = params.get("token");

// What the pages drew, for tests and for anyone poking in the devtools console.
export function expose(name, data) {
  window.__consoleData = window.__consoleData || {};
  window.__consoleData[name] = data;
}

export function withToken(url) {
  if (!token) return url;
  return url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token);
}

export class ApiError extends Error {}

export async function api(path, query = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v !== null && v !== undefined && v !== "") q.set(k, v);
  }
  const url = path + (q.toString() ? "?" + q : "");
  const resp = await fetch(url, { headers: token ? { Authorization: "Bearer " + token } : {} });
  if (!resp.ok) {
    let why = resp.status + " " + resp.statusText;
    try { why = (await resp.json()).error || why; } catch (_) { /* a text body: keep the status */ }
    throw new ApiError(`${path}: ${why}`);
  }
  return resp.json();
}

// The live stream: handlers by event name (reading, alert, overview). What is committed
// before the stream opens, or while it is away (EventSource reconnects by itself, and
// the server drops a stream that falls behind), is not sent: ``resync`` reloads the
// page's data each time it opens, the first time too, since the page's first load ran
// before it (handlers must take an event twice). The header's dot says whether it is live.
export function stream(handlers, resync = null) {
  const es = new EventSource(withToken("/api/stream"));
  const dot = document.getElementById("live");
  const mark = (live) => {
    if (!dot) return;
    dot.hidden = false;
    dot.textContent = live ? "live" : "reconnecting";
    dot.className = live ? "live on" : "live off";
  };
  es.onopen = () => {
    mark(true);
    if (resync) resync();
  };
  es.onerror = () => mark(false);
  for (const [name, handle] of Object.entries(handlers)) {
    es.addEventListener(name, (e) => handle(JSON.parse(e.data)));
  }
  // Closed when the page goes: a browser holds ~6 connections to one host, and a stream
  // left to the garbage collector kept the next pages' requests waiting in that queue.
  window.addEventListener("pagehide", () => es.close());
  return es;
}

// The box's clock, not the browser's: "3 s ago" compares the box's now_ms with the
// readings' times, so a laptop whose clock is off does not shift every age.
let skewMs = 0;
export function setServerNow(nowMs) { skewMs = nowMs - Date.now(); }
export function serverNow() { return Date.now() + skewMs; }

export function ago(tsMs) {
  if (tsMs === null || tsMs === undefined) return "never";
  const s = Math.max(0, (serverNow() - tsMs) / 1000);
  if (s < 60) return s.toFixed(s < 10 ? 1 : 0) + " s ago";
  if (s < 7200) return Math.round(s / 60) + " min ago";
  if (s < 172800) return Math.round(s / 3600) + " h ago";
  return Math.round(s / 86400) + " d ago";
}

export function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  while (Math.abs(n) >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return (i ? n.toFixed(1) : String(n)) + " " + units[i];
}

export function num(v, digits = 2) {
  if (v === null || v === undefined) return "–";
  if (typeof v !== "number") return String(v);
  return Number.isInteger(v) ? String(v) : v.toFixed(digits);
}

export function time(tsMs) {
  if (tsMs === null || tsMs === undefined) return "–";
  const d = new Date(tsMs);
  const p = (x, n = 2) => String(x).padStart(n, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ` +
    `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

function short(v, digits) {
  return typeof v === "number" ? String(+v.toFixed(digits)) : String(v);
}

// A reading's value in one short line: "temperature_c=21.5 humidity_pct=40".
export function summary(value, max = 60) {
  let text;
  if (value && typeof value === "object" && !Array.isArray(value)) {
    text = Object.entries(value)
      .filter(([, v]) => v !== null)
      // Degrees to 5 decimals (a metre), anything else to 2: a glance, not the record.
      .map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : short(v, /^(lat|lon)/.test(k) ? 5 : 2)}`)
      .join(" ");
  } else {
    text = JSON.stringify(value);
  }
  return text.length <= max ? text : text.slice(0, max - 1) + "…";
}

// el("td", {class: "n", "data-field": "rate"}, "2.5"): attributes, then children.
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "text") node.textContent = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) node.append(c instanceof Node ? c : String(c));
  return node;
}

export function link(href, text, attrs = {}) {
  return el("a", { href: withToken(href), ...attrs }, text);
}

const PAGES = [["/", "Overview"], ["/tracks", "Tracks"], ["/alerts", "Alerts"], ["/topics", "Topics"]];

// The header: the pages, which one is open, the edge id and whether the page is live.
export function header(active, edgeId) {
  const nav = el("nav", {});
  for (const [href, name] of PAGES) {
    nav.append(link(href, name, { class: name === active ? "active" : null }));
  }
  const h = document.querySelector("header");
  h.replaceChildren(
    el("span", { class: "brand", id: "edge-id" }, edgeId ? "edge " + edgeId : "edge"),
    nav,
    el("span", { id: "live", class: "live off", hidden: true }, "connecting"),
  );
}

export function showError(err) {
  const box = document.getElementById("error");
  if (!box) return;
  box.textContent = err ? String(err.message || err) : "";
  box.hidden = !err;
}

export function addTokenToLinks(root = document) {
  if (!token) return;
  for (const a of root.querySelectorAll("a[href^='/']")) {
    if (!a.href.includes("token=")) a.setAttribute("href", withToken(a.getAttribute("href")));
  }
}
