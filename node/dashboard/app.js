// The edged dashboard: polls the node API every 2 s and renders it. Every
// value from the API goes into the page as text (textContent), never as HTML.
"use strict";

const POLL_MS = 2000;
let token = sessionStorage.getItem("edged-token") || "";

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k instanceof Node ? k : String(k));
  return e;
}

async function api(path) {
  const headers = token ? { Authorization: "Bearer " + token } : {};
  const r = await fetch(path, { headers, cache: "no-store" });
  if (r.status === 401) throw Object.assign(new Error("unauthorized"), { status: 401 });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(path + ": " + r.status + " " + (body.error || ""));
  return body;
}

function fmtNum(x, digits) {
  if (x === undefined || x === null || Number.isNaN(x)) return "–";
  if (Math.abs(x) >= 1e6) return (x / 1e6).toFixed(1) + "M";
  if (Math.abs(x) >= 1e4) return (x / 1e3).toFixed(1) + "k";
  return x.toFixed(digits === undefined ? (Number.isInteger(x) ? 0 : 1) : digits);
}

function fmtBytes(n) {
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + u[i];
}

function fmtDur(s) {
  if (s < 60) return s.toFixed(s < 10 ? 1 : 0) + "s";
  if (s < 3600) return Math.floor(s / 60) + "m" + Math.floor(s % 60) + "s";
  if (s < 86400) return Math.floor(s / 3600) + "h" + Math.floor((s % 3600) / 60) + "m";
  return Math.floor(s / 86400) + "d" + Math.floor((s % 86400) / 3600) + "h";
}

function ago(iso) {
  if (!iso) return "never";
  return fmtDur(Math.max(0, (Date.now() - Date.parse(iso)) / 1000)) + " ago";
}

// spark draws values as a small SVG line chart.
function spark(values, cls) {
  const W = 120, H = 24, NS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("class", "chart " + (cls || ""));
  svg.setAttribute("width", W); svg.setAttribute("height", H);
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  if (values.length > 1) {
    const max = Math.max(...values, 1e-9);
    const pts = values.map((v, i) => `${(i * (W - 2) / (values.length - 1) + 1).toFixed(1)},${(H - 2 - (v / max) * (H - 4)).toFixed(1)}`);
    const pl = document.createElementNS(NS, "polyline");
    pl.setAttribute("points", pts.join(" "));
    svg.append(pl);
  }
  return svg;
}

function fill(tableId, rows, empty, cols) {
  const tb = document.querySelector(`#${tableId} tbody`);
  tb.replaceChildren();
  if (!rows.length) {
    tb.append(el("tr", {}, el("td", { colspan: cols, class: "muted" }, empty)));
    return;
  }
  for (const r of rows) tb.append(r);
}

function render(info, hist, dls) {
  const st = info.status;
  document.getElementById("node").textContent =
    `${info.hostname} · ${info.version} · up ${fmtDur(info.uptimeSeconds)} · ${fmtNum(info.recordsPerSec)} records/s`;
  document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();

  const conds = document.getElementById("conditions");
  conds.replaceChildren(...(st.conditions || []).map(c => el("li", {}, c)));

  const points = hist.points || [];
  const series = (name, key) => points.map(p => (p.pipelines[name] || {})[key] || 0);
  const dlBy = (dls.counts) || {};
  fill("pipelines", st.pipelines.map(p => {
    const r = info.rates[p.name] || {};
    const state = p.lastError ? el("span", { class: "bad", title: p.lastError }, "failing") : el("span", { class: "ok" }, "running");
    return el("tr", {},
      el("td", {}, p.name),
      el("td", { class: "muted" }, p.version || "–"),
      el("td", { class: "num" }, fmtNum(r.inPerSec), spark(series(p.name, "inPerSec"))),
      el("td", { class: "num" }, fmtDur(p.epochLagSeconds || 0), spark(series(p.name, "lagSeconds"), "amber")),
      el("td", { class: "num" }, fmtNum(r.latePerSec), spark(series(p.name, "latePerSec"), "amber")),
      el("td", { class: "num" }, fmtNum(r.invalidPerSec), spark(series(p.name, "invalidPerSec"), "red")),
      el("td", { class: "num" }, fmtNum(Object.values(p.inputBacklog || {}).reduce((a, b) => a + b, 0))),
      el("td", { class: "num" }, fmtNum(dlBy[p.name] || 0)),
      el("td", {}, state));
  }), "no pipelines", 9);

  const s = st.storage, disk = document.getElementById("disk");
  const pct = s.quotaBytes > 0 ? Math.min(100, 100 * s.usedBytes / s.quotaBytes) : 0;
  const bar = el("div", { class: "bar" + (s.quotaExceeded ? " full" : "") }, el("div", {}));
  bar.firstChild.style.width = pct.toFixed(1) + "%";
  bar.hidden = !(s.quotaBytes > 0);
  disk.replaceChildren(
    el("div", {}, s.quotaBytes > 0
      ? `${fmtBytes(s.usedBytes)} of ${fmtBytes(s.quotaBytes)} used (${pct.toFixed(0)}%)` + (s.quotaExceeded ? " — quota reached, input back-pressured" : "")
      : `${fmtBytes(s.usedBytes)} used (no quota) · file ${fmtBytes(s.fileBytes)}`),
    bar,
    el("div", { class: "muted" }, "spool depth ", spark(points.map(p => p.spoolDepth)), " used bytes ", spark(points.map(p => p.storageUsedBytes))));

  fill("sinks", (st.sinks || []).map(k => el("tr", {},
    el("td", {}, k.name), el("td", { class: "num" }, fmtNum(k.spoolDepth)),
    el("td", { class: "num" }, fmtNum(k.delivered)), el("td", { class: "num" }, fmtNum(k.errors)),
    el("td", { class: "wrap " + (k.lastError ? "bad" : "muted") }, k.lastError || "–"))), "no sinks", 5);

  const up = st.uplink || {};
  fill("uplink", Object.keys(up).sort().map(name => {
    const u = up[name];
    const failing = u.last_error && (!u.last_success || Date.parse(u.last_error_at) > Date.parse(u.last_success));
    return el("tr", {},
      el("td", {}, name), el("td", {}, u.target),
      el("td", { class: "num" + (u.over_quota ? " bad" : "") }, fmtNum(u.spool_depth) + " (" + fmtBytes(u.spool_bytes || 0) + ")"),
      el("td", { class: "num" }, fmtNum(u.objects)), el("td", { class: "num" }, fmtNum(u.rows)),
      el("td", {}, ago(u.last_success)),
      el("td", { class: "wrap " + (failing ? "bad" : "muted") }, failing ? `${u.last_error_kind}: ${u.last_error}` : "–"));
  }), "no uplink sinks", 7);

  document.getElementById("partitions").textContent = info.mesh
    ? `${info.partitions} partitions held`
    : "no mesh on this node: it holds every partition of its pipelines";

  const list = (dls.deadLetters || []).slice(-10).reverse();
  document.getElementById("dl-total").textContent = `(${fmtNum(s.deadLetters)} stored; latest ${list.length})`;
  fill("deadletters", list.map(d => el("tr", {},
    el("td", { class: "num" }, d.id), el("td", { title: d.time }, (d.time || "").replace(/^.*T/, "").replace(/Z$/, "")), el("td", {}, d.pipeline),
    el("td", {}, d.source || d.step || "–"), el("td", { class: "wrap" }, d.reason),
    el("td", { class: "wrap muted" }, el("code", {}, (d.payload || ("base64:" + (d.payloadBase64 || ""))).slice(0, 160))))),
    "no dead letters", 6);
}

// The API lists dead letters oldest first after an id: the page follows the
// newest ones incrementally and keeps the last 10. When the stored count
// drops (replayed, or dropped by the store's bound) it starts over.
let dlAfter = 0, dlLatest = [], dlCounts = {}, dlTotal = 0;
async function deadLetters(total) {
  if (total < dlTotal) { dlAfter = 0; dlLatest = []; }
  dlTotal = total;
  for (let page = 0; page < 50; page++) {
    const r = await api(`/api/v1/deadletters?limit=1000&after=${dlAfter}`);
    const list = r.deadLetters || [];
    dlCounts = r.counts || {};
    if (list.length) {
      dlAfter = list[list.length - 1].id;
      dlLatest = dlLatest.concat(list).slice(-10);
    }
    if (list.length < 1000) break;
  }
  return { deadLetters: dlLatest, counts: dlCounts };
}

async function tick() {
  try {
    const [info, hist] = await Promise.all([api("/api/v1/info"), api("/api/v1/history")]);
    const dls = await deadLetters(info.status.storage.deadLetters || 0);
    document.getElementById("login").hidden = true;
    document.getElementById("main").hidden = false;
    render(info, hist, dls);
  } catch (e) {
    if (e.status === 401) {
      document.getElementById("main").hidden = true;
      document.getElementById("login").hidden = false;
      document.getElementById("login-error").textContent = token ? "wrong token" : "";
    } else {
      document.getElementById("updated").textContent = "error: " + e.message;
    }
  }
}

document.getElementById("login").addEventListener("submit", ev => {
  ev.preventDefault();
  token = document.getElementById("token").value;
  sessionStorage.setItem("edged-token", token);
  tick();
});

tick();
setInterval(tick, POLL_MS);
