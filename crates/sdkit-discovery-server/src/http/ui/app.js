// The registry dashboard. Read-only; every value shown comes from clients of the registry, so
// it is rendered as text only (textContent and text nodes, never markup).
"use strict";

const hostname = "sdkit-ui-" + Math.random().toString(36).slice(2, 10);
let apps = {};      // appid -> [instance]
let cursors = {};   // env -> {appid -> latest_timestamp}
let nodes = [];
let lastError = "";

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function row(cells) {
  const tr = el("tr");
  for (const c of cells) {
    const td = el("td");
    if (c instanceof Node) td.appendChild(c); else td.textContent = String(c);
    tr.appendChild(td);
  }
  return tr;
}

async function getJson(path, signal) {
  const resp = await fetch(path, { signal, cache: "no-store" });
  if (!resp.ok) throw new Error(path.split("?")[0] + ": HTTP " + resp.status);
  return resp.json();
}

function status(s) {
  return s === 1 ? el("span", "UP", "up") : el("span", s === 2 ? "WAITING" : String(s), "down");
}

function metadata(m) {
  if (!m || typeof m !== "object") return "";
  return Object.keys(m).sort().map((k) => k + "=" + m[k]).join(", ");
}

function sinceRenew(ns) {
  if (!ns) return "";
  const s = Math.max(0, Math.round((Date.now() - ns / 1e6) / 1000));
  return s + " s";
}

function render() {
  const nodesBody = document.querySelector("#nodes tbody");
  nodesBody.replaceChildren(...nodes.map((n) =>
    row([n.addr, n.zone, n.status === 0 ? el("span", "UP", "up") : el("span", "DOWN", "down")])));

  // env -> appid -> instances
  const envs = {};
  for (const appid of Object.keys(apps)) {
    for (const i of apps[appid] || []) {
      const env = String(i.env || "");
      ((envs[env] = envs[env] || {})[appid] = envs[env][appid] || []).push(i);
    }
  }
  const out = [];
  for (const env of Object.keys(envs).sort()) {
    const section = el("section");
    section.dataset.env = env;
    section.appendChild(el("h2", "env " + env));
    for (const appid of Object.keys(envs[env]).sort()) {
      section.appendChild(el("h3", appid));
      const table = el("table");
      table.className = "instances";
      const head = el("tr");
      for (const h of ["hostname", "zone", "addresses", "status", "version", "metadata", "since renew"]) {
        head.appendChild(el("th", h));
      }
      table.appendChild(el("thead")).appendChild(head);
      const body = el("tbody");
      const list = envs[env][appid].slice().sort((a, b) =>
        String(a.zone + "/" + a.hostname).localeCompare(String(b.zone + "/" + b.hostname)));
      for (const i of list) {
        const tr = row([i.hostname, i.zone, (i.addrs || []).join(" "), status(i.status),
          i.version, metadata(i.metadata), sinceRenew(i.renew_timestamp)]);
        tr.className = "instance";
        tr.dataset.hostname = String(i.hostname);
        tr.dataset.renew = String(i.renew_timestamp || 0);
        body.appendChild(tr);
      }
      table.appendChild(body);
      section.appendChild(table);
    }
    out.push(section);
  }
  if (out.length === 0) out.push(el("p", "no instances registered"));
  document.getElementById("envs").replaceChildren(...out);
  const count = Object.values(apps).reduce((n, l) => n + (l || []).length, 0);
  const state = document.getElementById("state");
  state.textContent = lastError
    ? "error: " + lastError
    : count + " instance(s), updated " + new Date().toLocaleTimeString();
  state.className = lastError ? "error" : "";
}

// Seconds since the last renew tick once a second, without refetching.
setInterval(() => {
  for (const tr of document.querySelectorAll("tr.instance")) {
    const cell = tr.lastElementChild;
    if (cell) cell.textContent = sinceRenew(Number(tr.dataset.renew));
  }
}, 1000);

async function refresh() {
  const all = await getJson("/discovery/fetch/all");
  apps = (all && all.data && typeof all.data === "object") ? all.data : {};
  const n = await getJson("/discovery/nodes");
  nodes = Array.isArray(n && n.data) ? n.data : [];
}

// One long poll per env over the apps it holds; resolves when any app changes (or the
// server's hold time passes). Apps new to a poll start at cursor 0, which answers at once with
// their cursor, so the next round parks.
function pollEnv(env, appids, signal) {
  const known = cursors[env] = cursors[env] || {};
  const q = new URLSearchParams();
  q.set("env", env);
  q.set("hostname", hostname);
  for (const a of appids) { q.append("appid", a); q.append("latest_timestamp", String(known[a] || 0)); }
  return getJson("/discovery/polls?" + q.toString(), signal).then((reply) => {
    if (reply && reply.data && typeof reply.data === "object") {
      for (const a of Object.keys(reply.data)) {
        const info = reply.data[a];
        if (info && typeof info.latest_timestamp === "number") known[a] = info.latest_timestamp;
      }
    }
  });
}

async function loop() {
  for (;;) {
    try {
      await refresh();
      lastError = "";
      render();
      const byEnv = {};
      for (const appid of Object.keys(apps)) {
        for (const i of apps[appid] || []) {
          const env = String(i.env || "");
          (byEnv[env] = byEnv[env] || new Set()).add(appid);
        }
      }
      const envs = Object.keys(byEnv);
      if (envs.length === 0) {
        await new Promise((r) => setTimeout(r, 1000));
        continue;
      }
      const stop = new AbortController();
      await Promise.race(envs.map((env) =>
        pollEnv(env, [...byEnv[env]].sort(), stop.signal)));
      stop.abort();
    } catch (e) {
      if (e && e.name === "AbortError") continue;
      lastError = String(e && e.message ? e.message : e);
      render();
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

loop();
