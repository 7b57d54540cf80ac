// dtrace-tree serve: every namespace of the host (`ns --all`), leaks highlighted. Everything
// from the host is put in the page as text (textContent), never as markup.
"use strict";
// TOKEN, api() and el() are common.js's (loaded first).

const state = { doc: null, version: -1, busy: false };

function usedBy(n) {
  const parts = [];
  if (n.host) parts.push("host");
  if (n.containers.length) parts.push(n.containers.map((c) => c.name || c.id.slice(0, 12)).join(", "));
  for (const e of n.engines) parts.push((e.rootless ? "rootless " : "") + e.name);
  if (n.pods.length) parts.push("pod " + n.pods.join(", "));
  if (!parts.length) parts.push(n.processes.length ? `${n.processes[0]} ${n.command || "?"}` : "nobody");
  return parts.join("; ");
}

function heldBy(n) {
  const out = el("div");
  for (const m of n.mounts) out.append(el("div", {}, `mount ${m.path} (mnt ${m.mount_ns})`));
  for (const f of n.fds) out.append(el("div", {}, `fd ${f.fd} of pid ${f.pid}`));
  if (!n.processes.length && !n.mounts.length && !n.fds.length) {
    out.append(el("div", { class: "muted" }, "the namespaces below it"));
  }
  return out;
}

function render() {
  const doc = state.doc;
  if (!doc) return;
  const kind = document.getElementById("type").value;
  const leakedOnly = document.getElementById("leaked-only").checked;
  const body = document.querySelector("#inventory tbody");
  const rows = doc.namespaces.filter((n) => (!kind || n.type === kind) && (!leakedOnly || n.leaked));
  body.replaceChildren(...rows.map((n) => {
    const leak = n.leaked
      ? el("div", {}, el("strong", {}, "LEAKED"), el("div", {}, n.why || ""),
          el("code", {}, n.release || ""))
      : el("span", { class: "muted" }, n.why || "no");
    // the host's initial namespaces set apart in grey; only a leak is red
    return el("tr", { class: n.leaked ? "leaked" : n.host ? "initial" : "", id: `ns-${n.inode}` },
      el("td", {}, n.type), el("td", {}, String(n.inode)), el("td", {}, usedBy(n)),
      el("td", {}, String(n.processes.length)), el("td", {}, heldBy(n)),
      el("td", {}, n.owner === null ? "?" : String(n.owner)),
      el("td", {}, n.parent === null ? "" : String(n.parent)), el("td", {}, leak));
  }));
  const leaked = doc.namespaces.filter((n) => n.leaked).length;
  const hidden = doc.namespaces.filter((n) => !n.processes.length).length;
  document.getElementById("summary").textContent =
    `${doc.namespaces.length} namespaces, ${hidden} with no process, ${leaked} leaked` +
    (doc.unreadable.length ? `; ${doc.unreadable.length} ` +
      `${doc.unreadable.length === 1 ? "process" : "processes"} could not be read` : "");
  document.getElementById("notes").textContent = doc.notes.join(" ");
}

async function load(version) {
  if (state.busy || version <= state.version) return;
  state.busy = true;
  const conn = document.getElementById("conn");
  try {
    const answer = await fetch(api(`/api/namespaces?v=${version}`));
    const doc = await answer.json();
    if (!answer.ok) throw new Error(doc.error || answer.statusText);
    state.doc = doc;
    state.version = version;
    conn.className = "badge ok";
    conn.textContent = "live";
    render();
  } catch (err) {
    conn.className = "badge down";
    conn.textContent = `cannot read: ${err.message}`;
  } finally {
    state.busy = false;
  }
}

function connect() {
  const events = new EventSource(api("/api/events"));
  events.addEventListener("snapshot", (e) => {
    const snap = JSON.parse(e.data);
    document.getElementById("host").textContent = snap.hostname ? `on ${snap.hostname}` : "";
    load(snap.version === undefined ? state.version + 1 : snap.version);
  });
  events.onerror = () => {
    const conn = document.getElementById("conn");
    conn.className = "badge wait";
    conn.textContent = "disconnected: retrying";
  };
}

document.getElementById("back").href = api("/");
document.getElementById("type").addEventListener("change", render);
document.getElementById("leaked-only").addEventListener("change", render);
connect();
