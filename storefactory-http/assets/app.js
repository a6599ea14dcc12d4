// Storefactory dashboard: plain DOM, no framework. User data is only ever set through
// textContent, never parsed as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem("storefactory.token");
const following = new Map(); // store id -> AbortController of its event stream

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await response.json().catch(() => ({}));
  if (response.status === 401 && path !== "/api/auth/login") { logout(); }
  if (!response.ok) throw new Error(data.error ? data.error.message : `HTTP ${response.status}`);
  return data;
}

function logout() {
  token = null;
  sessionStorage.removeItem("storefactory.token");
  for (const controller of following.values()) controller.abort();
  following.clear();
  $("app-view").hidden = true;
  $("login-view").hidden = false;
  $("who").textContent = "";
}

function cell(row, text, className) {
  const td = document.createElement("td");
  if (text instanceof Node) td.appendChild(text); else td.textContent = text ?? "";
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function statusBadge(store) {
  const span = document.createElement("span");
  span.className = `status ${store.status}`;
  span.textContent = store.status;
  if (store.reason) span.title = store.reason;
  return span;
}

function renderStore(store) {
  let row = document.querySelector(`tr[data-id="${CSS.escape(store.id)}"]`);
  if (!row) {
    row = document.createElement("tr");
    row.dataset.id = store.id;
    $("stores").appendChild(row);
  }
  row.replaceChildren();
  cell(row, store.name);
  const status = cell(row, statusBadge(store));
  if (store.reason) {
    const reason = document.createElement("div");
    reason.className = "muted";
    reason.textContent = store.reason;
    status.appendChild(reason);
  }
  const link = document.createElement("a");
  link.href = store.url; link.textContent = store.url; link.rel = "noopener"; link.target = "_blank";
  cell(row, link);
  cell(row, new Date(store.created_at).toLocaleString());
  const actions = cell(row, "");
  if (store.status === "ready") {
    const show = document.createElement("button");
    show.className = "plain"; show.textContent = "Credentials";
    show.onclick = async () => {
      try {
        const c = await api("GET", `/api/stores/${store.id}/credentials`);
        alert(`WordPress admin: ${c.admin_url}\nUser: ${c.username}\nPassword: ${c.password}`);
      } catch (e) { $("list-error").textContent = e.message; }
    };
    actions.appendChild(show);
  }
  if (store.status === "failed") {
    const retry = document.createElement("button");
    retry.className = "plain"; retry.textContent = "Retry";
    retry.onclick = async () => {
      try { renderStore(await api("POST", `/api/stores/${store.id}/retry`)); follow(store.id); }
      catch (e) { $("list-error").textContent = e.message; }
    };
    actions.appendChild(retry);
  }
  if (store.status !== "deleting" && store.status !== "deleted") {
    const remove = document.createElement("button");
    remove.className = "danger"; remove.textContent = "Delete";
    remove.onclick = async () => {
      if (!confirm(`Delete store ${store.name}? This removes its namespace and data.`)) return;
      try { renderStore(await api("DELETE", `/api/stores/${store.id}`)); follow(store.id); }
      catch (e) { $("list-error").textContent = e.message; }
    };
    actions.appendChild(remove);
  }
  $("empty").hidden = $("stores").children.length > 0;
}

// Follows a store's Server-Sent Events with fetch (EventSource cannot send the token) and
// re-reads the store on every status change.
async function follow(id) {
  if (following.has(id)) return;
  const controller = new AbortController();
  following.set(id, controller);
  try {
    const response = await fetch(`/api/stores/${id}/events`, {
      headers: { Authorization: `Bearer ${token}` }, signal: controller.signal,
    });
    if (!response.ok) return;
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("");
        if (!data) continue;
        const event = JSON.parse(data);
        if (event.kind === "status") {
          if (event.status === "deleted") {
            const row = document.querySelector(`tr[data-id="${CSS.escape(id)}"]`);
            if (row) row.remove();
            $("empty").hidden = $("stores").children.length > 0;
            refreshUsage();
          } else {
            renderStore(await api("GET", `/api/stores/${id}`));
          }
        }
      }
    }
  } catch (e) {
    if (e.name !== "AbortError") console.warn("event stream ended", e);
  } finally {
    following.delete(id);
  }
}

async function refreshUsage() {
  const me = await api("GET", "/api/users/me");
  $("who").textContent = `${me.username} (${me.role}) `;
  const out = document.createElement("button");
  out.className = "plain"; out.textContent = "Log out"; out.onclick = logout;
  $("who").appendChild(out);
  $("usage").textContent = `${me.usage.stores}/${me.quota.max_stores} stores, ${me.usage.storage_gib}/${me.quota.max_storage_gib} GiB`;
}

async function showApp() {
  $("login-view").hidden = true;
  $("app-view").hidden = false;
  try {
    await refreshUsage();
    const { stores } = await api("GET", "/api/stores");
    $("stores").replaceChildren();
    for (const store of stores) {
      renderStore(store);
      if (!["ready", "failed", "deleted"].includes(store.status)) follow(store.id);
    }
    $("empty").hidden = stores.length > 0;
  } catch (e) { $("list-error").textContent = e.message; }
}

$("login-form").onsubmit = async (event) => {
  event.preventDefault();
  $("login-error").textContent = "";
  try {
    const response = await fetch("/api/auth/login", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username: $("username").value, password: $("password").value }),
    });
    const data = await response.json();
    if (!response.ok) throw new Error(data.error ? data.error.message : `HTTP ${response.status}`);
    token = data.access_token;
    sessionStorage.setItem("storefactory.token", token);
    $("password").value = "";
    showApp();
  } catch (e) { $("login-error").textContent = e.message; }
};

$("create-form").onsubmit = async (event) => {
  event.preventDefault();
  $("create-error").textContent = "";
  const body = { sample_products: $("products").value, storage_size_gi: Number($("storage").value) };
  if ($("store-name").value.trim()) body.name = $("store-name").value.trim();
  try {
    const store = await api("POST", "/api/stores", body);
    renderStore(store);
    follow(store.id);
    refreshUsage();
  } catch (e) { $("create-error").textContent = e.message; }
};

if (token) showApp();
