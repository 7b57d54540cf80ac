// dtrace-tree serve: the page. Everything from the host is put in the page as text
// (textContent), never as markup; the diagram's SVG is parsed in an inert document (DOMParser)
// and stripped to an allow-list of elements and attributes before it is adopted, so that
// nothing in it can run or load anything (and the Content-Security-Policy forbids it anyway).
"use strict";
// TOKEN, api() and el() are common.js's (loaded first).

const SVG_NS = "http://www.w3.org/2000/svg";
const TIMELINE_MAX = 200;
const SVG_ELEMENTS = new Set(["svg", "g", "title", "text", "tspan", "path", "polygon",
  "polyline", "ellipse", "circle", "rect", "line"]);
const SVG_ATTRIBUTES = new Set(["id", "class", "fill", "stroke", "stroke-width",
  "stroke-dasharray", "stroke-opacity", "fill-opacity", "opacity", "d", "points", "cx", "cy",
  "rx", "ry", "r", "x", "y", "x1", "y1", "x2", "y2", "width", "height", "viewBox",
  "transform", "font-family", "font-size", "font-weight", "font-style", "text-anchor",
  "text-decoration"]);

const page = {
  state: null, view: "architecture", requested: 0, selected: null, tab: "ns",
  box: null, natural: null, fitted: true, daemons: new Map(), fresh: new Set(), known: null,
  focus: null,
};

function clock(ms) {
  if (ms === null || ms === undefined) return "";
  const d = new Date(ms);
  const pad = (n, w) => String(n).padStart(w || 2, "0");
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

// -- the connection ----------------------------------------------------------------------------

function connect() {
  const conn = document.getElementById("conn");
  const events = new EventSource(api("/api/events"));
  events.onopen = () => { conn.className = "badge ok"; conn.textContent = "live"; };
  events.onerror = () => {
    conn.className = "badge down";
    conn.textContent = "disconnected: retrying";
  };
  events.addEventListener("snapshot", (e) => snapshot(JSON.parse(e.data)));
  events.addEventListener("timeline", (e) => timeline(JSON.parse(e.data)));
  events.addEventListener("daemon", (e) => daemonEvent(JSON.parse(e.data)));
  events.addEventListener("dropped", (e) => {
    const n = JSON.parse(e.data).count;
    note(`${n} events were dropped for this page (it was too slow); the diagram is current`);
  });
  events.addEventListener("status", (e) => note(JSON.parse(e.data).problem));
}

function note(text) {
  document.getElementById("timeline-note").textContent = text;
}

// -- a new look at the host ----------------------------------------------------------------------

function snapshot(state) {
  const before = page.known;
  page.state = state;
  page.known = new Set(state.containers.map((c) => c.id));
  page.fresh = new Set(before ? [...page.known].filter((id) => !before.has(id)) : []);
  for (const [key, d] of page.daemons) {  // a daemon the look shows again: no longer pending
    if (d.what === "started" && state.engines.some((e) => e.daemons.some((x) => x.pid === d.pid))) {
      page.daemons.delete(key);
    }
  }
  if (page.focus) {  // the focused engine keeps its name through a daemon's restart
    for (const e of state.engines) if (focused(e)) for (const a of addresses(e)) page.focus.add(a);
  }
  document.getElementById("host").textContent =
    `${state.hostname} · ${state.containers.length} running containers`;
  document.getElementById("version").textContent =
    `look ${state.version} at ${state.taken_at || "?"} (${state.took_ms} ms)`;
  engines();
  containerList();
  diagram();
  if (page.selected && !page.known.has(page.selected)) {
    document.getElementById("details-sub").textContent = "this container is no longer running";
  }
}

function engines() {
  const box = document.getElementById("engines");
  box.replaceChildren();
  const state = page.state;
  if (!state) return;
  if (page.focus) {
    const all = el("button", { type: "button", class: "engine-all" }, "all engines");
    all.addEventListener("click", () => focus(null));
    box.append(all);
  }
  for (const e of state.engines) {
    const on = focused(e);
    const title = el("button", { type: "button", class: "title" + (on ? " on" : ""),
      "aria-pressed": String(on), title: "draw this engine alone (again: every engine)" }, e.title);
    title.addEventListener("click", () => focus(on ? null : e));
    const row = el("div", { class: "engine" }, title);
    for (const d of e.daemons) {
      let cls = "ok", text = `${d.role} ${d.pid}`;
      const ended = page.daemons.get(`${d.role}:${d.pid}`);
      if (ended && ended.what === "ended") { cls = "down"; text += ` ended (${ended.detail})`; }
      else if (d.api && d.api !== "answers") { cls = "wait"; text += `: API ${d.api}`; }
      row.append(el("span", { class: `badge ${cls}`, "data-role": d.role }, text));
    }
    for (const role of e.down) {
      row.append(el("span", { class: "badge down", "data-role": role, "data-down": "1" },
        `${role} down: ${e.counts.running} containers running on`));
    }
    box.append(row);
  }
  for (const d of page.daemons.values()) {  // told by the kernel, not in a look yet
    if (d.what === "started") {
      box.append(el("span", { class: "badge wait" }, `${d.role} ${d.pid} starting`));
    }
  }
}

function addresses(e) {
  return e.daemons.map((d) => d.address).filter((a) => a);
}

function focused(e) {  // is this engine the one drawn alone (known by any of its addresses)?
  return page.focus !== null && addresses(e).some((a) => page.focus.has(a));
}

function focus(e) {
  page.focus = e ? new Set(addresses(e)) : null;
  page.fitted = true;
  engines();
  diagram();
}

function containerList() {
  const nav = document.getElementById("containers");
  nav.replaceChildren();
  for (const c of page.state.containers) {
    const b = el("button", { type: "button", "data-id": c.id, title: c.image || "" }, c.label);
    if (c.id === page.selected) b.classList.add("selected");
    b.addEventListener("click", () => open(c.id));
    nav.append(b);
  }
}

// -- the diagram -------------------------------------------------------------------------------

async function diagram() {
  const asked = performance.now();
  const ticket = ++page.requested;
  const version = page.state.version;
  const view = page.view;
  let text;
  try {
    const only = page.focus ? [...page.focus].slice(-8).map((a) => "&engine=" + encodeURIComponent(a)).join("") : "";
    const answer = await fetch(api(`/api/diagram.svg?view=${view === "namespaces" ? "ns" : "arch"}&v=${version}${only}`));
    if (!answer.ok) throw new Error(`HTTP ${answer.status}`);
    text = await answer.text();
  } catch (err) {
    note(`the diagram could not be loaded: ${err.message}`);
    return;
  }
  if (ticket !== page.requested) return;  // a newer one is on its way
  const parsed = new DOMParser().parseFromString(text, "image/svg+xml");
  const root = parsed.documentElement;
  if (!root || root.localName !== "svg" || root.namespaceURI !== SVG_NS) return;
  const svg = document.adoptNode(clean(root));
  const holder = document.getElementById("diagram");
  const box = (root.getAttribute("viewBox") || "0 0 100 100").split(/[ ,]+/).map(Number);
  const sameView = holder.dataset.view === view;
  page.natural = { x: box[0], y: box[1], w: box[2], h: box[3] };
  if (!sameView || page.fitted || !page.box) page.box = { ...page.natural };
  svg.removeAttribute("width");
  svg.removeAttribute("height");
  svg.setAttribute("preserveAspectRatio", "xMidYMid meet");
  holder.replaceChildren(svg);
  holder.dataset.view = view;
  holder.dataset.version = String(version);
  applyBox();
  mark();
  holder.dataset.appliedAt = String(Date.now());  // when it showed (the tests measure it)
  holder.dataset.tookMs = String(Math.round(performance.now() - asked));
}

function clean(node) {  // in the parsed (inert) document: allowed elements, attributes, text
  for (const attr of Array.from(node.attributes)) {
    if (!SVG_ATTRIBUTES.has(attr.name) || /^\s*(javascript|data):/i.test(attr.value)) {
      node.removeAttributeNode(attr);
    }
  }
  for (const child of Array.from(node.childNodes)) {
    if (child.nodeType === Node.ELEMENT_NODE && child.namespaceURI === SVG_NS &&
        SVG_ELEMENTS.has(child.localName)) clean(child);
    else if (child.nodeType !== Node.TEXT_NODE) child.remove();  // comments, foreign elements
  }
  return node;
}

function containerOf(group) {  // the container a node or cluster of the diagram belongs to
  const title = group.querySelector(":scope > title");
  const name = title ? title.textContent : "";
  // (a container drawn under a second engine too: its id, then _e<i>_<n> there)
  let m = /^(?:cluster_[cu]_|c_)([0-9A-Za-z_]+?)(?:_(?:e\d+|orphans)_\d+)?$/.exec(name);
  if (m) return page.known && page.known.has(m[1]) ? m[1] : null;
  m = /^p(\d+)$/.exec(name);
  if (m && page.state) {
    const pid = Number(m[1]);
    const c = page.state.containers.find((x) => x.pids.includes(pid));
    return c ? c.id : null;
  }
  return null;
}

function mark() {  // the selected container, and the ones that are new since the last look
  for (const g of document.querySelectorAll("#diagram g.node, #diagram g.cluster")) {
    const id = containerOf(g);
    g.classList.toggle("selected", id !== null && id === page.selected);
    g.classList.toggle("fresh", id !== null && page.fresh.has(id) && id !== page.selected);
    if (id !== null) g.dataset.container = id;
  }
  for (const b of document.querySelectorAll("#containers button")) {
    b.classList.toggle("selected", b.dataset.id === page.selected);
  }
}

function applyBox() {
  const svg = document.querySelector("#diagram svg");
  const b = page.box;
  if (svg && b) svg.setAttribute("viewBox", `${b.x} ${b.y} ${b.w} ${b.h}`);
}

function zoom(factor, cx, cy) {
  const b = page.box;
  if (!b) return;
  const x = cx === undefined ? b.x + b.w / 2 : cx;
  const y = cy === undefined ? b.y + b.h / 2 : cy;
  const w = Math.min(Math.max(b.w * factor, 20), page.natural.w * 4);
  const h = b.h * (w / b.w);
  page.box = { x: x - (x - b.x) * (w / b.w), y: y - (y - b.y) * (h / b.h), w, h };
  page.fitted = false;
  applyBox();
}

function toSvg(event) {  // a pointer's position in the diagram's coordinates
  const svg = document.querySelector("#diagram svg");
  const pt = svg.createSVGPoint();
  pt.x = event.clientX;
  pt.y = event.clientY;
  return pt.matrixTransform(svg.getScreenCTM().inverse());
}

function panAndZoom() {
  const holder = document.getElementById("diagram");
  let drag = null;
  holder.addEventListener("wheel", (e) => {
    if (!page.box) return;
    e.preventDefault();
    const p = toSvg(e);
    zoom(e.deltaY > 0 ? 1.15 : 1 / 1.15, p.x, p.y);
  }, { passive: false });
  holder.addEventListener("pointerdown", (e) => {
    if (!page.box) return;
    drag = { x: e.clientX, y: e.clientY, box: { ...page.box }, moved: false, target: e.target };
    holder.setPointerCapture(e.pointerId);
  });
  holder.addEventListener("pointermove", (e) => {
    if (!drag) return;
    const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
    if (!drag.moved && Math.hypot(dx, dy) < 4) return;
    drag.moved = true;
    holder.classList.add("dragging");
    const scale = drag.box.w / holder.clientWidth;
    const k = Math.max(scale, drag.box.h / holder.clientHeight);
    page.box = { ...drag.box, x: drag.box.x - dx * k, y: drag.box.y - dy * k };
    page.fitted = false;
    applyBox();
  });
  const end = (e) => {
    if (!drag) return;
    const { moved, target } = drag;
    drag = null;
    holder.classList.remove("dragging");
    if (!moved && e.type === "pointerup") {
      const group = target.closest && target.closest("g.node, g.cluster");
      const id = group ? containerOf(group) : null;
      if (id) open(id);
    }
  };
  holder.addEventListener("pointerup", end);
  holder.addEventListener("pointercancel", end);
  document.getElementById("zoom-in").addEventListener("click", () => zoom(1 / 1.3));
  document.getElementById("zoom-out").addEventListener("click", () => zoom(1.3));
  document.getElementById("zoom-fit").addEventListener("click", () => {
    page.fitted = true;
    if (page.natural) page.box = { ...page.natural };
    applyBox();
  });
  for (const view of ["architecture", "namespaces"]) {
    document.getElementById(`view-${view}`).addEventListener("click", () => {
      page.view = view;
      page.fitted = true;
      for (const v of ["architecture", "namespaces"]) {
        document.getElementById(`view-${v}`).classList.toggle("on", v === view);
      }
      if (page.state) diagram();
    });
  }
}

// -- a container's details ---------------------------------------------------------------------

async function open(id, tab) {
  page.selected = id;
  page.tab = tab || page.tab;
  const c = page.state && page.state.containers.find((x) => x.id === id);
  const panel = document.getElementById("details");
  panel.hidden = false;
  panel.dataset.container = id;
  document.getElementById("details-title").textContent = c ? c.label : id.slice(0, 12);
  document.getElementById("details-sub").textContent = c
    ? `${c.short_id} · ${c.image || "image unknown"} · init ${c.init_pid ?? "-"} · ` +
      `${c.processes} processes${c.ports.length ? " · " + c.ports.join(", ") : ""}`
    : "";
  for (const b of document.querySelectorAll("#details .tabs button")) {
    b.classList.toggle("on", b.dataset.tab === page.tab);
  }
  mark();
  const body = document.getElementById("details-body");
  body.replaceChildren(el("p", { class: "muted" }, "reading…"));
  const what = page.tab;
  let doc, ok;
  try {
    const answer = await fetch(api(`/api/containers/${encodeURIComponent(id)}/${what}`));
    ok = answer.ok;
    doc = await answer.json();
  } catch (err) {
    ok = false;
    doc = { error: err.message };
  }
  if (page.selected !== id || page.tab !== what) return;
  body.dataset.tab = what;
  if (!ok) body.replaceChildren(el("p", { class: "error" }, doc.error || "failed"));
  else body.replaceChildren(({ ns: nsView, fs: fsView, cgroup: cgroupView })[what](doc));
}

function table(head, rows) {
  const t = el("table", {}, el("thead", {}, el("tr", {}, ...head.map((h) => el("th", {}, h)))));
  const tbody = el("tbody");
  for (const row of rows) {
    tbody.append(el("tr", {}, ...row.map((cell) => cell instanceof Node ? el("td", {}, cell) : el("td", {}, cell === null || cell === undefined ? "" : String(cell)))));
  }
  t.append(tbody);
  return t;
}

function nsView(doc) {
  const out = el("div", { class: "ns" });
  const rows = (doc.namespaces || []).map((n) => {
    const state = n.isolated === null ? "?" : n.shared_with && n.shared_with.length
      ? `shared with ${n.shared_with.join(", ")}` : n.isolated ? "isolated" : "host";
    const cls = state.startsWith("shared") ? "shared" : state;
    const cell = el("div", {}, el("span", { class: cls }, state));
    if (n.why) cell.append(el("div", { class: "muted" }, n.why));
    return [el("span", { class: "nowrap" }, n.type), el("span", { class: "mono nowrap" }, String(n.inode)), cell];
  });
  out.append(table(["type", "inode", "state, and why"], rows));
  if (doc.processes && doc.processes.length) {
    out.append(el("h2", {}, "processes"));
    out.append(table(["pid", "role", "command", "namespaces"], doc.processes.map((p) =>
      [p.pid, p.role, el("span", { class: "mono" }, (p.cmdline || []).join(" ")),
        p.same_as_init ? "same as init" : "differ"])));
  }
  return out;
}

function size(n) {
  if (n === null || n === undefined) return "?";
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

function fsView(doc) {
  const out = el("div", { class: "fs" });
  const root = doc.root || {};
  out.append(el("p", {}, `driver ${doc.driver || "?"} · data root ${doc.data_root || "?"}`));
  out.append(table(["role", "size", "id", "shared with"], (doc.layers || []).map((l) => [
    l.role, size(l.size_bytes), el("span", { class: "mono" }, (l.cache_id || "-").slice(0, 12)),
    l.shared_with === null ? "?" : l.shared_with.length ? l.shared_with.join(", ") : "this container only",
  ])));
  if (root.upperdir) out.append(el("p", { class: "muted" }, `upperdir ${root.upperdir}`));
  if (doc.changes) {
    out.append(el("p", {}, `writable layer: ${doc.changes.added} added, ${doc.changes.changed} changed, ${doc.changes.deleted} deleted`));
  }
  const mounts = (doc.mounts || []).filter((m) => m.kind !== "system");
  if (mounts.length) {
    out.append(el("h2", {}, "mounts"));
    out.append(table(["destination", "kind", "source", "mode"], mounts.map((m) => [
      m.destination, m.volume ? `volume ${m.volume}` : m.kind, m.source || "",
      `${m.read_only ? "ro" : "rw"} ${m.propagation}`])));
  }
  for (const n of doc.notes || []) out.append(el("p", { class: "muted" }, n));
  return out;
}

function cgroupView(doc) {
  const out = el("div", { class: "cgroup" });
  out.append(el("p", {}, `cgroup v${doc.version ?? "?"} (${doc.mode || "?"}) · driver ${doc.driver} · cgroupns ${doc.cgroupns || "?"}`));
  const why = doc.why_null || {};
  const rows = (group, values) => Object.entries(values || {}).map(([k, v]) =>
    [k.replaceAll("_", " "), v === null ? (why[`${group}.${k}`] || "-") : String(v), (doc.sources || {})[`${group}.${k}`] || ""]);
  out.append(el("h2", {}, "limits"));
  out.append(table(["limit", "value", "from"], rows("limits", doc.limits)));
  out.append(el("h2", {}, "usage"));
  out.append(table(["usage", "value", "from"], rows("usage", doc.usage)));
  out.append(el("h2", {}, "processes"));
  out.append(table(["pid", "role", "command"], (doc.processes || []).map((p) =>
    [p.pid, p.role, el("span", { class: "mono" }, (p.cmdline || []).join(" "))])));
  return out;
}

// -- the timeline ------------------------------------------------------------------------------

function push(item) {
  const list = document.getElementById("timeline");
  list.prepend(item);
  while (list.children.length > TIMELINE_MAX) list.lastElementChild.remove();
}

function daemonEvent(d) {
  page.daemons.set(`${d.role}:${d.pid}`, d);
  if (d.what === "started") {  // its predecessor's end is history now
    for (const [key, x] of page.daemons) if (x.role === d.role && x.what === "ended") page.daemons.delete(key);
  }
  const text = d.what === "ended"
    ? `${d.role} ${d.pid} ended (${d.detail}): its containers run on under their shims`
    : `${d.role} ${d.pid} started`;
  push(el("li", { class: `daemon ${d.what}`, "data-role": d.role, "data-what": d.what },
    el("div", { class: "when" }, clock(d.at)), el("div", { class: "line" }, text)));
  engines();
}

function timeline(entry) {
  const lines = [];
  for (const d of entry.daemons) lines.push(`${d.role} ${d.pid} ${d.verdict === "gone" ? "is gone" : "is new"} (${d.engine})`);
  for (const c of entry.changes) {
    const pids = c.init_after ? ` (init ${c.init_after})` : c.init_before ? ` (init was ${c.init_before})` : "";
    lines.push(`${c.label}: ${c.verdict}${pids}`);
  }
  for (const s of entry.stories) {
    const took = s.started_ms !== null ? ` (${s.started_ms.toFixed(0)} ms to init)` : "";
    let line = `${s.label}: ${s.what.join(" → ")}${took}`;
    if (s.init) line += ` · init: ${s.init}`;
    for (const x of s.execs) line += ` · exec: ${x}`;
    lines.push(line);
  }
  if (!lines.length && entry.events.length) {
    const roles = [...new Set(entry.events.map((e) => e.role))];
    lines.push(`${entry.events.length + entry.more} events: ${roles.join(", ")}`);
  }
  const item = el("li", { class: entry.stories.length ? "story" : "" },
    el("div", { class: "when" }, clock(entry.at)), ...lines.map((t) => el("div", { class: "line" }, t)));
  if (entry.stories.length) item.dataset.containers = entry.stories.map((s) => s.id).join(" ");
  if (entry.events.length) {
    const list = el("ol");
    for (const e of entry.events) {
      list.append(el("li", { class: "ev" }, `${clock(e.at)} ${e.event} ${e.pid} ${e.role}` +
        `${e.label ? " [" + e.label + "]" : ""} ${e.what}`));
    }
    if (entry.more) list.append(el("li", { class: "ev" }, `… ${entry.more} more`));
    item.append(el("details", {}, el("summary", {}, `${entry.events.length + entry.more} events`), list));
  }
  if (entry.lost) item.append(el("div", { class: "error" }, `${entry.lost} events lost`));
  push(item);
}

// -- start ---------------------------------------------------------------------------------------

document.getElementById("details-close").addEventListener("click", () => {
  document.getElementById("details").hidden = true;
  page.selected = null;
  mark();
});
for (const b of document.querySelectorAll("#details .tabs button")) {
  b.addEventListener("click", () => { if (page.selected) open(page.selected, b.dataset.tab); });
}
panAndZoom();
connect();
