// copytrader dashboard: plain JS, no framework, no network but this server.
// The control token lives in sessionStorage (this tab only) and goes in an
// Authorization header, never in a URL.
"use strict";
const API = "/api/v1";
const TOKEN_KEY = "copytrader.token";
let followers = [];      // names
let selected = null;     // the follower shown below the overview
let nextCursor = null;   // the decisions page after the shown one
let lastOverview = null;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v; else if (k === "style") node.style.cssText = v; else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) node.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return node;
}
const $ = (id) => document.getElementById(id);
const when = (iso) => iso ? new Date(iso).toLocaleString() : "—";
function num(text, places) {
  if (text === null || text === undefined || text === "") return "—";
  const n = Number(text);
  return Number.isFinite(n) ? n.toLocaleString(undefined, {minimumFractionDigits: places, maximumFractionDigits: places}) : text;
}
const usdc = (text) => text === null || text === undefined ? "—" : `${num(text, 2)} USDC`;
const signed = (text) => el("span", {class: Number(text) > 0 ? "pos" : Number(text) < 0 ? "neg" : ""}, num(text, 2));
const short = (addr) => addr && addr.length > 14 ? `${addr.slice(0, 8)}…${addr.slice(-4)}` : (addr || "");

function say(text, error) { const m = $("message"); m.textContent = text; m.className = error ? "error" : ""; }

async function get(path) {
  const res = await fetch(API + path, {headers: {Accept: "application/json"}});
  const data = await res.json();
  if (!res.ok) throw new Error(data.error || res.statusText);
  return data;
}

async function control(path, body) {
  const token = sessionStorage.getItem(TOKEN_KEY) || "";
  const headers = {"Content-Type": "application/json", "X-Copytrader-Client": "dashboard"};
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(API + path, {method: "POST", headers, body: JSON.stringify(body || {})});
  const data = await res.json().catch(() => ({error: res.statusText}));
  if (!res.ok) { say(`refused (${res.status}): ${data.error}`, true); return; }
  say(data.actions.map((a) => `${a.follower}: ${a.action.replace("_", " ")}${a.target ? " " + a.target : ""} done`).join("; "));
  refresh();
}

function bar(value, limit) {
  if (limit === null || limit === undefined) return el("span", {}, `${usdc(value)} (no limit)`);
  const share = Math.min(1, Math.abs(Number(value)) / Number(limit));
  return el("span", {}, el("span", {class: "bar"}, el("i", {class: share >= 1 ? "over" : "", style: `width:${(share * 100).toFixed(1)}%`})),
            `${usdc(value)} of ${usdc(limit)}`);
}

const cards = new Map();  // follower -> {node, info}: controls are made once, so a reason being typed survives updates

function controlsOf(name) {
  const reason = el("input", {placeholder: "reason", size: 14, "data-testid": `reason-${name}`});
  const act = (what) => () => control(`/followers/${encodeURIComponent(name)}/${what}`, {reason: reason.value});
  return el("div", {class: "controls"},
    reason,
    el("button", {type: "button", "data-testid": `halt-${name}`, onclick: act("halt")}, "halt"),
    el("button", {type: "button", "data-testid": `reduce-${name}`, onclick: act("reduce_only")}, "reduce-only"),
    el("button", {type: "button", "data-testid": `resume-${name}`, onclick: act("resume")}, "resume"),
    el("button", {type: "button", onclick: () => { selected = name; refresh(); }}, "show below"));
}

function card(f) {
  let c = cards.get(f.name);
  if (!c) {
    const info = el("div", {});
    c = {info, node: el("div", {class: "card", "data-follower": f.name}, info, controlsOf(f.name))};
    cards.set(f.name, c);
  }
  const s = f.state, p = f.pnl, l = f.limits, t = f.last_leader_trade;
  c.info.replaceChildren(
    el("h3", {}, f.name, " ", el("span", {class: `state ${s.state}`, "data-testid": `state-${f.name}`}, s.state)),
    el("div", {class: "muted"}, s.reason ? `${s.reason}${s.since ? " · since " + when(s.since) : ""}` : ""),
    el("dl", {},
      el("dt", {}, "worker"), el("dd", {}, f.worker && f.worker.state ? `${f.worker.state}${f.worker.last_poll_age_s !== null ? ` · polled ${num(f.worker.last_poll_age_s, 0)} s ago` : ""}` : "—"),
      el("dt", {}, "PnL today"), el("dd", {}, signed(p.today.realised), " USDC realised"),
      el("dt", {}, "PnL total"), el("dd", {"data-testid": `pnl-${f.name}`}, signed(p.total), " USDC (realised ", num(p.realised_total, 2), ", unrealised ", num(p.unrealised, 2), ")"),
      el("dt", {}, "exposure"), el("dd", {}, bar(l.exposure_usdc, l.max_total_exposure_usdc)),
      el("dt", {}, "open positions"), el("dd", {}, `${l.open_positions}${l.max_open_positions ? " of " + l.max_open_positions : ""}`),
      el("dt", {}, "daily loss"), el("dd", {}, bar(Math.min(0, Number(l.realised_today_usdc)), l.daily_loss_limit_usdc)),
      el("dt", {}, "last leader trade"), el("dd", {"data-testid": `last-${f.name}`}, t ? `${when(t.leader_time || t.at)} · ${short(t.leader)} ${t.side} ${t.title || short(t.token_id)} · delay ${t.delay_s === null ? "—" : num(t.delay_s, 1) + " s"}` : "none yet")));
  return c.node;
}

function renderOverview(data) {
  lastOverview = data;
  followers = data.followers.map((f) => f.name);
  if (!followers.includes(selected)) selected = followers[0] || null;
  const nodes = data.followers.map(card), box = $("overview");
  if (nodes.length !== box.children.length || nodes.some((n, i) => box.children[i] !== n)) box.replaceChildren(...nodes);
  $("updated").textContent = `updated ${when(data.at)}`;
}

function equityChart(e) {
  const pts = e.points.map(([t, v]) => [Date.parse(t), v]), dd = e.drawdown.map(([t, v]) => [Date.parse(t), v]);
  const ns = "http://www.w3.org/2000/svg", W = 780, H = 220, L = 84, R = 12, T = 12, B = 26;
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("width", W); svg.setAttribute("height", H); svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("role", "img"); svg.setAttribute("aria-label", `equity and drawdown of ${e.follower}, USDC`);
  const add = (tag, attrs, text) => { const n = document.createElementNS(ns, tag); for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v); if (text) n.textContent = text; svg.append(n); return n; };
  if (pts.length < 2) { add("text", {x: W / 2, y: H / 2, "text-anchor": "middle", fill: "#6b7385"}, "no data yet"); return svg; }
  const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]).concat(dd.map((p) => p[1]), [0]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs) || x0 + 1, y0 = Math.min(...ys), y1 = Math.max(...ys);
  const sx = (x) => L + (W - L - R) * (x1 === x0 ? 0.5 : (x - x0) / (x1 - x0));
  const sy = (y) => T + (H - T - B) * (y1 === y0 ? 0.5 : (y1 - y) / (y1 - y0));
  const line = (series) => series.map(([x, y], i) => `${i ? "L" : "M"}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join("");
  add("line", {x1: L, x2: W - R, y1: sy(0), y2: sy(0), stroke: "#c9ced8"});
  add("path", {d: line(dd), fill: "none", stroke: "#c53030", "stroke-width": 1, "stroke-dasharray": "3 2"});
  add("path", {d: line(pts), fill: "none", stroke: "#3b6fd8", "stroke-width": 2});
  for (const y of [y0, 0, y1]) add("text", {x: L - 6, y: sy(y) + 4, "text-anchor": "end", "font-size": 11, fill: "#6b7385"}, `${num(y, 2)} USDC`);
  for (const x of [x0, x1]) add("text", {x: sx(x), y: H - 8, "text-anchor": x === x0 ? "start" : "end", "font-size": 11, fill: "#6b7385"}, when(new Date(x).toISOString()));
  add("text", {x: W - R, y: T + 10, "text-anchor": "end", "font-size": 11, fill: "#3b6fd8"}, `equity ${usdc(e.final)} · max drawdown ${usdc(e.max_drawdown)}`);
  return svg;
}

function decisionRow(d) {
  if (d.kind === "control") {
    return el("tr", {class: "control"}, el("td", {}, when(d.at)), el("td", {}, `control (${d.source})`),
      el("td", {}, `${d.action.replace("_", " ")}${d.target ? " " + short(d.target) : ""}`), el("td", {}), el("td", {}), el("td", {}),
      el("td", {}, `${d.follower} · ${d.reason}`));
  }
  const result = d.decision === "rejected" ? "not copied" : d.status + (d.decision === "reduced" ? " (reduced)" : "");
  const why = d.reason ? `${d.reason}${d.detail ? ": " + d.detail : ""}` : d.error;
  return el("tr", {"data-decision": d.intent_id},
    el("td", {}, when(d.at)), el("td", {title: d.leader}, short(d.leader)),
    el("td", {}, d.size ? `${d.side} ${num(d.size, 2)} @ limit ${num(d.limit_price, 4)}` : `${d.side} —`),
    el("td", {}, result),
    el("td", {class: "n"}, Number(d.filled_size) ? `${num(d.filled_size, 2)} @ ${num(d.avg_price, 4)}` : ""),
    el("td", {class: "n"}, d.slippage_bps === null ? "" : num(d.slippage_bps, 1)),
    el("td", {}, d.title || short(d.token_id), why ? el("span", {class: "reason"}, ` · ${why}`) : ""));
}

function filters() {
  const q = new URLSearchParams({limit: "50"});
  for (const [key, id] of [["leader", "f-leader"], ["market", "f-market"], ["outcome", "f-outcome"]]) {
    const v = $(id).value.trim(); if (v) q.set(key, v);
  }
  return q;
}

async function loadDecisions(more) {
  const q = filters();
  if (more && nextCursor) q.set("before", nextCursor);
  const page = await get(`/followers/${encodeURIComponent(selected)}/decisions?${q}`);
  const body = $("decisions").tBodies[0], rows = page.decisions.map(decisionRow);
  if (more) body.append(...rows); else body.replaceChildren(...rows);
  nextCursor = page.next; $("older").hidden = !page.next;
}

function leaderRow(l) {
  const path = `/followers/${encodeURIComponent(selected)}/leaders/${encodeURIComponent(l.address)}`;
  return el("tr", {"data-leader": l.address}, el("td", {title: l.address}, short(l.address)), el("td", {}, l.name || ""),
    el("td", {class: "n"}, num(l.multiplier, 2)), el("td", {class: "n"}, l.budget_usdc === null ? "none" : num(l.budget_usdc, 2)),
    el("td", {}, l.source), el("td", {}, when(l.last_decision)),
    el("td", {}, l.paused ? `paused since ${when(l.paused_since)}` : "copied"),
    el("td", {}, l.paused ? el("button", {type: "button", onclick: () => control(`${path}/resume`)}, "resume leader")
                          : el("button", {type: "button", onclick: () => control(`${path}/pause`)}, "pause leader")));
}

async function refresh() {
  if (!selected) return;
  const name = encodeURIComponent(selected);
  try {
    const [positions, leaders, equity] = await Promise.all([get(`/followers/${name}/positions`), get(`/followers/${name}/leaders`), get(`/followers/${name}/equity`)]);
    $("positions").tBodies[0].replaceChildren(...positions.map((p) => el("tr", {"data-position": p.token_id},
      el("td", {title: p.leader}, p.leader_name || short(p.leader)), el("td", {}, `${p.title || short(p.token_id)}${p.outcome ? " · " + p.outcome : ""}`),
      el("td", {}, p.status), el("td", {class: "n"}, num(p.size, 2)), el("td", {class: "n"}, num(p.avg_cost, 4)),
      el("td", {class: "n"}, num(p.mark, 4)), el("td", {class: "n"}, signed(p.unrealised)), el("td", {class: "n"}, signed(p.realised)))));
    if (!positions.length) $("positions").tBodies[0].replaceChildren(el("tr", {}, el("td", {colspan: 8, class: "muted"}, "no open positions")));
    $("leaders").tBodies[0].replaceChildren(...leaders.map(leaderRow));
    $("equity-of").textContent = `of ${selected}, USDC`;
    $("equity").replaceChildren(equityChart(equity));
    await loadDecisions(false);
  } catch (err) { say(String(err.message || err), true); }
}

function overviewChanged(data) { renderOverview(data); refresh(); }

function connect() {
  if (!window.EventSource) return poll();
  const source = new EventSource(`${API}/stream`);
  source.addEventListener("overview", (ev) => { $("live").textContent = "live"; overviewChanged(JSON.parse(ev.data)); });
  source.onerror = () => { $("live").textContent = "reconnecting…"; };
}

async function poll() {
  $("live").textContent = "polling every 5 s";
  for (;;) {
    try { overviewChanged(await get("/overview")); } catch (err) { say(String(err.message || err), true); }
    await new Promise((r) => setTimeout(r, 5000));
  }
}

function tokenState() { $("token-state").textContent = sessionStorage.getItem(TOKEN_KEY) ? "token set for this tab" : "no token: read-only"; }

document.addEventListener("DOMContentLoaded", () => {
  $("tz").textContent = Intl.DateTimeFormat().resolvedOptions().timeZone || "your time zone";
  $("token-form").addEventListener("submit", (ev) => { ev.preventDefault(); const t = $("token").value.trim(); if (t) sessionStorage.setItem(TOKEN_KEY, t); $("token").value = ""; tokenState(); });
  $("token-forget").addEventListener("click", () => { sessionStorage.removeItem(TOKEN_KEY); tokenState(); });
  $("filters").addEventListener("submit", (ev) => { ev.preventDefault(); loadDecisions(false).catch((e) => say(e.message, true)); });
  $("older").addEventListener("click", () => loadDecisions(true).catch((e) => say(e.message, true)));
  tokenState();
  connect();
});
