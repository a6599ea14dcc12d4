// Storefactory dashboard: plain DOM, no framework, no build step. Data from the server only
// ever reaches the page through textContent, attributes and form values, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const options = new URLSearchParams(location.search);
/** Stores per page (`?per_page=`), and seconds between refreshes (`?refresh=`, 0 for none). */
const PER_PAGE = intOption("per_page", 1, 100, 12);
const REFRESH_SECONDS = intOption("refresh", 0, 3600, 5);
/** Event streams followed at once: browsers allow six connections per server. */
const MAX_STREAMS = 3;
/** The provisioning steps as the server reports them, in order. */
const STEPS = [
  ["apply", "Applied"],
  ["mysql", "Database ready"],
  ["wordpress", "WordPress ready"],
  ["seed", "Seeded"],
];
const SAMPLE_PRODUCTS = [
  ["T-Shirt", "5.99", "Cotton t-shirt"],
  ["Jeans", "12.99", "Denim jeans"],
  ["Mug", "4.50", "Ceramic mug"],
];
const SETTLED = new Set(["ready", "failed", "deleted", "suspended"]);
const PRICE = /^\d{1,12}(\.\d{1,2})?$/;

const app = {
  token: sessionStorage.getItem("storefactory.token"),
  me: null,
  cursors: [null], // the cursor of each page visited; the last is the current page's
  nextCursor: null,
  entries: new Map(), // store id -> card entry
  streams: new Map(), // store id -> AbortController
  timers: [],
  detail: null, // { id, controller, opener }
  deliveriesOf: null, // the webhook whose deliveries are shown
};

function intOption(name, min, max, fallback) {
  const value = Number.parseInt(options.get(name) ?? "", 10);
  return Number.isInteger(value) && value >= min && value <= max ? value : fallback;
}

// ------------------------------------------------------------------ small DOM helpers

/** An element with text content and attributes; children are nodes or strings (as text). */
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") node.textContent = value;
    else if (key === "class") node.className = value;
    else if (key === "on") for (const [event, handler] of Object.entries(value)) node.addEventListener(event, handler);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function button(text, handler, className = "plain small", label) {
  return el("button", { type: "button", class: className, text, "aria-label": label, on: { click: handler } });
}

/** A link to a store URL; anything but http(s) is shown as text. */
function link(url, text) {
  if (typeof url === "string" && /^https?:\/\//i.test(url)) {
    return el("a", { href: url, target: "_blank", rel: "noopener noreferrer", text });
  }
  return el("span", { text: url ?? "" });
}

function announce(text) {
  const live = $("live");
  live.textContent = "";
  // A change the screen reader notices even when the text repeats.
  setTimeout(() => { live.textContent = text; }, 30);
}

function showBanner(text) {
  $("banner-text").textContent = text;
  $("banner").hidden = false;
}

function hideBanner() {
  $("banner").hidden = true;
  $("banner-text").textContent = "";
}

function formatTime(ms) {
  return new Date(ms).toLocaleString();
}

function formatDuration(ms) {
  const seconds = Math.max(0, Math.round(ms / 1000));
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  return `${minutes} min ${String(seconds % 60).padStart(2, "0")} s`;
}

async function copyText(text, control) {
  let copied = false;
  try {
    await navigator.clipboard.writeText(text);
    copied = true;
  } catch {
    // Without clipboard access (an insecure origin, a denied permission): select and copy.
    const area = el("textarea", { class: "visually-hidden", "aria-hidden": "true" });
    area.value = text;
    document.body.append(area);
    area.select();
    try { copied = document.execCommand("copy"); } catch { copied = false; }
    area.remove();
  }
  const original = control.dataset.label ?? control.textContent;
  control.dataset.label = original;
  control.textContent = copied ? "Copied" : "Copy failed";
  announce(copied ? "Copied to the clipboard" : "Could not copy; select the text and copy it");
  setTimeout(() => { control.textContent = original; }, 2000);
}

// ------------------------------------------------------------------ the API

class ApiFailure extends Error {
  constructor(status, body) {
    super(typeof body.error === "string" ? body.error : `the server answered ${status}`);
    this.status = status;
    this.code = body.code ?? "";
    this.field = body.field ?? "";
  }
}

async function api(method, path, body) {
  const headers = {};
  if (app.token) headers.Authorization = `Bearer ${app.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiFailure(0, { error: "The server cannot be reached; check your connection and try again." });
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const failure = new ApiFailure(response.status, data);
    if (response.status === 401 && path !== "/api/auth/login") {
      logout();
      $("login-error").textContent = `${failure.message}. Please log in again.`;
    }
    throw failure;
  }
  return data;
}

/**
 * Reads a store's Server-Sent Events (with fetch: EventSource cannot send the token) and
 * calls `onEvent` for each; resolves when the stream ends.
 */
async function readEvents(id, signal, onEvent, lastSeq = 0) {
  const headers = { Authorization: `Bearer ${app.token}` };
  if (lastSeq > 0) headers["Last-Event-ID"] = String(lastSeq);
  const response = await fetch(`/api/stores/${encodeURIComponent(id)}/events`, { headers, signal });
  if (!response.ok) throw new ApiFailure(response.status, await response.json().catch(() => ({})));
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("");
      if (data) onEvent(JSON.parse(data));
    }
  }
}

// ------------------------------------------------------------------ logging in and out

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("login-error").textContent = "";
  const username = $("username").value.trim();
  const password = $("password").value;
  if (!username || !password) {
    $("login-error").textContent = "Enter your username and password.";
    (username ? $("password") : $("username")).focus();
    return;
  }
  try {
    const data = await api("POST", "/api/auth/login", { username, password });
    app.token = data.access_token;
    sessionStorage.setItem("storefactory.token", app.token);
    $("password").value = "";
    await showApp();
  } catch (e) {
    $("login-error").textContent = e.message;
    $("password").focus();
  }
});

// Logging out voids the token on the server too (every device of the user), not only here.
function signOut() {
  const token = app.token;
  if (token) {
    fetch("/api/auth/logout", {
      method: "POST",
      headers: { Authorization: `Bearer ${token}` },
    }).catch(() => {});
  }
  logout();
}

function logout() {
  app.token = null;
  app.me = null;
  sessionStorage.removeItem("storefactory.token");
  for (const controller of app.streams.values()) controller.abort();
  app.streams.clear();
  for (const timer of app.timers) clearInterval(timer);
  app.timers = [];
  closeDetail();
  app.entries.clear();
  $("stores").replaceChildren();
  $("users").replaceChildren();
  $("webhooks").replaceChildren();
  hideWebhookSecret();
  closeDeliveries(false);
  $("app-view").hidden = true;
  $("users-view").hidden = true;
  $("webhooks-view").hidden = true;
  $("nav").hidden = true;
  $("login-view").hidden = false;
  $("who").replaceChildren();
  hideBanner();
  $("username").focus();
}

async function showApp() {
  try {
    await refreshMe();
  } catch (e) {
    if (e.status !== 401) showBanner(e.message);
    return;
  }
  $("login-view").hidden = true;
  $("nav").hidden = false;
  showTab("stores", false);
  const admin = app.me.role === "admin";
  $("tab-users").hidden = !admin;
  $("all-stores-label").hidden = !admin;
  $("webhook-all-stores-label").hidden = !admin;
  await loadStores();
  await showClusterStatus();
  $("stores-title").focus();
  if (REFRESH_SECONDS > 0) app.timers.push(setInterval(refreshAll, REFRESH_SECONDS * 1000));
  app.timers.push(setInterval(tick, 1000));
}

/** The tabs: each shows one view and moves the focus to its title. */
const TABS = {
  stores: { view: "app-view", title: "stores-title" },
  webhooks: { view: "webhooks-view", title: "webhooks-title" },
  users: { view: "users-view", title: "users-title" },
};

function showTab(name, focus = true) {
  for (const [tab, { view }] of Object.entries(TABS)) {
    $(view).hidden = tab !== name;
    $(`tab-${tab}`).setAttribute("aria-current", tab === name ? "page" : "false");
  }
  // The secret of a new webhook is shown once: leaving the view forgets it.
  if (name !== "webhooks") hideWebhookSecret();
  if (name === "users") loadUsers();
  if (name === "webhooks") loadWebhooks();
  if (focus) $(TABS[name].title).focus();
}

for (const tab of Object.keys(TABS)) $(`tab-${tab}`).addEventListener("click", () => showTab(tab));
$("banner-close").addEventListener("click", hideBanner);
for (const { title } of Object.values(TABS)) $(title).tabIndex = -1;

// Whether stores can be created and deleted now: the server's /ready tells, and the server
// reconnects by itself when the cluster comes back.
async function showClusterStatus() {
  const line = $("cluster-status");
  let ready;
  try {
    const response = await fetch("/ready", { cache: "no-store" });
    ready = await response.json();
  } catch {
    return;
  }
  const cluster = ready && ready.cluster;
  line.hidden = !cluster || cluster.ok;
  if (cluster && !cluster.ok) {
    line.textContent = `The Kubernetes cluster cannot be used right now (${cluster.detail}). ` +
      "Stores are listed, but cannot be created or deleted until it is back; the server " +
      "reconnects by itself.";
  }
}

async function refreshAll() {
  try {
    await showClusterStatus();
    await refreshMe();
    if (!$("app-view").hidden) await loadStores();
    if (!$("users-view").hidden) await loadUsers();
    if (!$("webhooks-view").hidden) await loadWebhooks();
  } catch (e) {
    if (e.status !== 401) showBanner(e.message);
  }
}

// ------------------------------------------------------------------ the caller and the quota

async function refreshMe() {
  const me = await api("GET", "/api/users/me");
  app.me = me;
  const who = $("who");
  who.replaceChildren(
    el("span", { text: `${me.username} (${me.role})` }),
    button("Log out", signOut, "plain small"),
  );
  setMeter("meter-stores", me.current_stores, me.max_stores, `${me.current_stores} of ${me.max_stores} stores`);
  setMeter("meter-storage", me.current_storage, me.max_storage, `${me.current_storage} of ${me.max_storage} GiB`);
  updateStorageHint();
}

function setMeter(id, value, max, text) {
  const meter = $(id);
  meter.max = Math.max(max, 1);
  meter.value = Math.min(value, meter.max);
  meter.high = meter.max * 0.8;
  meter.optimum = 0;
  meter.setAttribute("aria-valuetext", text);
  $(`${id}-text`).textContent = text;
}

// ------------------------------------------------------------------ the create form

function addProductRow(values = ["", "", ""], focus = false) {
  const row = $("product-row").content.firstElementChild.cloneNode(true);
  const [name, price, description] = values;
  row.querySelector(".p-name").value = name;
  row.querySelector(".p-price").value = price;
  row.querySelector(".p-description").value = description;
  row.querySelector(".p-remove").addEventListener("click", () => {
    const next = row.nextElementSibling ?? row.previousElementSibling;
    row.remove();
    labelProductRows();
    (next ? next.querySelector(".p-name") : $("add-product")).focus();
  });
  $("products").append(row);
  labelProductRows();
  if (focus) row.querySelector(".p-name").focus();
}

/** Numbers the rows' labels, so that a screen reader says which product a field is of. */
function labelProductRows() {
  [...$("products").children].forEach((row, i) => {
    row.querySelector(".p-name").setAttribute("aria-label", `Product ${i + 1} name`);
    row.querySelector(".p-price").setAttribute("aria-label", `Product ${i + 1} price`);
    row.querySelector(".p-description").setAttribute("aria-label", `Product ${i + 1} description`);
    row.querySelector(".p-remove").setAttribute("aria-label", `Remove product ${i + 1}`);
  });
}

$("add-product").addEventListener("click", () => addProductRow(undefined, true));
for (const product of SAMPLE_PRODUCTS) addProductRow(product);

function updateStorageHint() {
  const size = Number($("storage").value);
  $("storage-hint").textContent = Number.isInteger(size) && size > 0
    ? `MySQL needs 1 GiB more: total ${size + 1} GiB`
    : "MySQL needs 1 GiB more.";
}
$("storage").addEventListener("input", updateStorageHint);
updateStorageHint();

function generatePassword() {
  const alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
  const bytes = crypto.getRandomValues(new Uint32Array(20));
  return [...bytes].map((b) => alphabet[b % alphabet.length]).join("");
}

$("generate-password").addEventListener("click", () => {
  $("admin-password").value = generatePassword();
  clearFieldError("admin-password");
  announce("A new password was generated");
});

$("copy-password").addEventListener("click", (event) => {
  const value = $("admin-password").value;
  if (!value) {
    setFieldError("admin-password", "Nothing to copy: the password is blank, so one will be generated.", false);
    return;
  }
  copyText(value, event.currentTarget);
});

const FIELD_IDS = ["store-name", "storage", "admin-password", "products"];

function setFieldError(id, message, focus = true) {
  $(`${id}-error`).textContent = message;
  const input = id === "products" ? null : $(id);
  if (input) input.setAttribute("aria-invalid", "true");
  if (focus && input) input.focus();
}

function clearFieldError(id) {
  $(`${id}-error`).textContent = "";
  if (id !== "products") $(id).removeAttribute("aria-invalid");
}

function clearCreateErrors() {
  for (const id of FIELD_IDS) clearFieldError(id);
  for (const input of $("products").querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
  $("create-error").textContent = "";
}

/** Marks product row `index` (from 0) as wrong, and says so next to the products. */
function productError(index, message, which = ".p-name") {
  const row = $("products").children[index];
  $("products-error").textContent = message;
  if (row) {
    const input = row.querySelector(which);
    input.setAttribute("aria-invalid", "true");
    input.setAttribute("aria-describedby", "products-error");
    input.focus();
  }
}

/** The request body of the form, or null after showing why it cannot be sent. */
function readCreateForm() {
  const name = $("store-name").value.trim();
  if (name.length > 100) { setFieldError("store-name", "The name is at most 100 characters."); return null; }
  const storageText = $("storage").value.trim();
  const storage = Number(storageText);
  if (!/^\d+$/.test(storageText) || storage < 1 || storage > 1024) {
    setFieldError("storage", "Storage is a whole number of GiB from 1 to 1024.");
    return null;
  }
  const password = $("admin-password").value;
  if (password && (password.length < 12 || password.length > 128)) {
    setFieldError("admin-password", "The password needs 12 to 128 characters (or leave it blank to generate one).");
    return null;
  }
  const products = [];
  const rows = [...$("products").children];
  for (const [i, row] of rows.entries()) {
    const product = {
      name: row.querySelector(".p-name").value.trim(),
      price: row.querySelector(".p-price").value.trim(),
      description: row.querySelector(".p-description").value.trim(),
    };
    if (!product.name && !product.price && !product.description) continue;
    if (!product.name) { productError(i, `Product ${i + 1} needs a name.`); return null; }
    if (!PRICE.test(product.price)) {
      productError(i, `Product ${i + 1}: the price is a number with at most two decimals, like 5.99.`, ".p-price");
      return null;
    }
    products.push(product);
  }
  const me = app.me;
  if (me && me.current_stores >= me.max_stores) {
    $("create-error").textContent = `Store limit reached: ${me.current_stores} of ${me.max_stores} stores in use. Delete a store or ask an admin for a higher quota.`;
    $("create-button").focus();
    return null;
  }
  if (me && me.current_storage + storage + 1 > me.max_storage) {
    const free = Math.max(0, me.max_storage - me.current_storage);
    setFieldError("storage", `This store needs ${storage + 1} GiB (with MySQL), but only ${free} GiB of your ${me.max_storage} GiB quota are free.`);
    return null;
  }
  const body = { storage_size_gi: storage, admin_password: password, sample_products: products };
  if (name) body.name = name;
  return body;
}

/** Shows a refusal of the server next to the field it names, or above the button. */
function showCreateFailure(failure) {
  const field = failure.field;
  const product = /^sample_products(?:\[(\d+)\]| line (\d+))?/.exec(field);
  if (field === "storage_size_gi") setFieldError("storage", failure.message);
  else if (field === "admin_password") setFieldError("admin-password", failure.message);
  else if (field === "name" || field === "site_title") setFieldError("store-name", failure.message);
  else if (product) {
    const index = product[1] !== undefined ? Number(product[1]) : product[2] !== undefined ? Number(product[2]) - 1 : -1;
    productError(index, failure.message);
  } else {
    $("create-error").textContent = failure.message;
    showBanner(failure.message);
    $("create-button").focus();
  }
}

$("create-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  clearCreateErrors();
  const body = readCreateForm();
  if (!body) return;
  const submit = $("create-button");
  submit.disabled = true;
  try {
    const store = await api("POST", "/api/stores", body);
    $("admin-password").value = "";
    hideBanner();
    announce(`Store ${store.name} created; provisioning has started`);
    const entry = upsertCard(store, true);
    entry.startedAt = store.created_at;
    follow(store.id);
    await refreshMe();
  } catch (e) {
    showCreateFailure(e);
    // The page's view of the quota was stale (stores made elsewhere): bring it up to date.
    if (e.code === "quota_exceeded") refreshAll();
  } finally {
    submit.disabled = false;
  }
});

// ------------------------------------------------------------------ store cards

function badge(status) {
  return el("span", { class: `badge ${status}`, text: status });
}

/** The card of a store, created or brought up to date. New stores go first. */
function upsertCard(store, first = false) {
  let entry = app.entries.get(store.id);
  if (!entry) {
    entry = createCard(store);
    app.entries.set(store.id, entry);
    if (first) $("stores").prepend(entry.card); else $("stores").append(entry.card);
  }
  updateCard(entry, store);
  $("empty").hidden = app.entries.size > 0;
  return entry;
}

function createCard(store) {
  const titleId = `store-${store.id}-title`;
  const entry = {
    id: store.id,
    store,
    status: null,
    steps: new Set(),
    startedAt: store.status === "initialized" || store.status === "provisioning" ? store.created_at : null,
    finishedAt: null,
    lastSeq: 0,
  };
  entry.title = el("h3", { id: titleId });
  entry.badge = el("span");
  entry.fields = el("dl", { class: "fields" });
  entry.bar = el("progress", { max: STEPS.length, value: 0, "aria-label": "Provisioning progress" });
  entry.stepItems = new Map(STEPS.map(([key, label]) => [key, el("li", { text: label })]));
  entry.elapsed = el("p", { class: "muted elapsed" });
  entry.progress = el("div", { class: "progress", role: "group", "aria-label": "Provisioning" },
    entry.bar, el("ol", { class: "steps" }, ...entry.stepItems.values()), entry.elapsed);
  entry.reason = el("p", { class: "reason", role: "status" });
  entry.warning = el("p", { class: "muted warning" });
  entry.took = el("p", { class: "muted took" });
  entry.secret = el("div", { class: "secret", hidden: true, role: "region", "aria-label": `Credentials of ${store.name}` });
  entry.actions = el("div", { class: "actions" });
  entry.domains = el("div", { class: "domains", hidden: true, role: "region", "aria-label": `Custom domains of ${store.name}` });
  entry.card = el("li", { class: "card", "data-id": store.id },
    el("article", { "aria-labelledby": titleId, class: "card-body" },
      el("div", { class: "card-head" }, entry.title, entry.badge),
      entry.fields, entry.progress, entry.reason, entry.warning, entry.took, entry.secret, entry.domains, entry.actions));
  return entry;
}

function field(list, term, value) {
  list.append(el("dt", { text: term }), el("dd", {}, value));
}

function updateCard(entry, store) {
  const changed = entry.status !== store.status;
  entry.store = store;
  entry.title.textContent = store.name;
  entry.badge.replaceChildren(el("span", { class: "visually-hidden", text: "Status: " }), badge(store.status));
  // Rebuilt only when they change, so that a refresh does not take the focus off a link.
  const shown = JSON.stringify([store.id, store.url, store.admin_url, store.namespace, store.owner,
    store.storage_gi, store.storage_gib, store.created_at, store.admin_user, store.domains ?? []]);
  if (entry.shown !== shown) {
    entry.shown = shown;
    entry.fields.replaceChildren();
    field(entry.fields, "ID", store.id);
    field(entry.fields, "URL", link(store.url, store.url));
    field(entry.fields, "Admin", link(store.admin_url, "Admin panel"));
    field(entry.fields, "Namespace", store.namespace);
    field(entry.fields, "Owner", store.owner);
    field(entry.fields, "Storage", `${store.storage_gi} GiB + 1 GiB MySQL = ${store.storage_gib} GiB`);
    field(entry.fields, "Created", formatTime(store.created_at));
    field(entry.fields, "Admin user", store.admin_user);
    const domains = store.domains ?? [];
    if (domains.length > 0) {
      const scheme = store.url.startsWith("https:") ? "https" : "http";
      field(entry.fields, "Domains", el("ul", { class: "domain-list" },
        ...domains.map((d) => el("li", {}, link(`${scheme}://${d}/`, d)))));
    }
    if (!entry.domains.hidden) renderDomains(entry);
  }
  const provisioning = store.status === "initialized" || store.status === "provisioning";
  entry.progress.hidden = !provisioning;
  entry.bar.setAttribute("aria-label", `Provisioning progress of ${store.name}`);
  entry.reason.hidden = store.status !== "failed";
  entry.reason.textContent = store.status === "failed" ? `Failed: ${store.reason ?? "no reason given"}` : "";
  if (store.status === "ready") STEPS.forEach(([key]) => entry.steps.add(key));
  renderSteps(entry);
  entry.took.hidden = !(entry.startedAt && entry.finishedAt && store.status === "ready");
  if (!entry.took.hidden) entry.took.textContent = `Ready after ${formatDuration(entry.finishedAt - entry.startedAt)}`;
  if (changed) {
    entry.status = store.status;
    renderActions(entry);
    if (store.status !== "ready") hideCredentials(entry);
  }
  tickEntry(entry);
}

function renderSteps(entry) {
  let done = 0;
  for (const [key, item] of entry.stepItems) {
    const isDone = entry.steps.has(key);
    item.classList.toggle("done", isDone);
    item.setAttribute("aria-label", `${item.textContent}: ${isDone ? "done" : "not yet"}`);
    if (isDone) done += 1;
  }
  entry.bar.value = done;
  entry.bar.setAttribute("aria-valuetext", `${done} of ${STEPS.length} steps done`);
}

function renderActions(entry) {
  const store = entry.store;
  const actions = [button("Details", (e) => openDetail(store.id, e.currentTarget), "plain small", `Details of ${store.name}`)];
  if (store.status === "ready" && app.me && store.owner === app.me.username) {
    actions.push(button("Show credentials", () => showCredentials(entry), "plain small", `Show credentials of ${store.name}`));
  }
  if (store.status === "failed") {
    actions.push(button("Retry", () => retry(entry), "small", `Retry ${store.name}`));
  }
  if (store.status === "ready") {
    actions.push(button("Change", () => openChange(entry), "plain small", `Change ${store.name}`));
    actions.push(button("Suspend", () => changeState(entry, "suspend"), "plain small", `Suspend ${store.name}`));
    actions.push(button("Back up", () => takeBackup(entry), "plain small", `Back up ${store.name}`));
    actions.push(button("Clone", () => cloneStore(entry), "plain small", `Clone ${store.name}`));
  }
  if (store.status === "ready" || store.status === "suspended") {
    actions.push(button("Domains", () => toggleDomains(entry), "plain small", `Custom domains of ${store.name}`));
  } else {
    entry.domains.hidden = true;
  }
  if (store.status === "suspended" || store.status === "suspending") {
    actions.push(button("Resume", () => changeState(entry, "resume"), "small", `Resume ${store.name}`));
  }
  if (store.status !== "deleting" && store.status !== "deleted") {
    actions.push(button("Delete", () => confirmDelete(entry), "danger small", `Delete ${store.name}`));
  }
  entry.actions.replaceChildren(...actions);
}

/**
 * An inline form changing a ready store: a bigger volume, title, currency, products. Only
 * the fields filled in are sent; the server checks them (`PATCH /api/stores/{id}`).
 */
function openChange(entry) {
  const store = entry.store;
  const id = (name) => `change-${name}-${store.id}`;
  const labelled = (name, text, input) => el("div", { class: "change-field" },
    el("label", { for: id(name), text }), input);
  const storage = el("input", { id: id("storage"), type: "number", min: store.storage_gi, max: 1024, step: 1,
    value: store.storage_gi });
  const title = el("input", { id: id("title"), type: "text", maxlength: 200, placeholder: "unchanged" });
  const currency = el("input", { id: id("currency"), type: "text", maxlength: 3, placeholder: "unchanged",
    autocapitalize: "characters" });
  const products = el("textarea", { id: id("products"), rows: 3, placeholder: "unchanged (Name|Price|Description lines)" });
  const error = el("p", { class: "reason", role: "alert", hidden: true });
  const cancel = button("Cancel", () => { renderActions(entry); entry.actions.querySelector("button").focus(); });
  const form = el("form", { class: "change", "aria-label": `Change ${store.name}`, novalidate: true },
    labelled("storage", "WordPress storage (GiB, can only grow)", storage),
    labelled("title", "Site title", title),
    labelled("currency", "Currency", currency),
    labelled("products", "Products", products),
    error,
    el("div", { class: "confirm" },
      el("button", { type: "submit", class: "small", text: "Apply change", "aria-label": `Apply the change to ${store.name}` }),
      cancel));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = {};
    if (storage.value !== "" && Number(storage.value) !== store.storage_gi) body.storage_size_gi = Number(storage.value);
    if (title.value.trim() !== "") body.site_title = title.value.trim();
    if (currency.value.trim() !== "") body.currency = currency.value.trim().toUpperCase();
    if (products.value.trim() !== "") body.sample_products = products.value;
    try {
      const changed = await api("PATCH", `/api/stores/${encodeURIComponent(entry.id)}`, body);
      announce(changed.status === "updating" ? `Changing ${changed.name}` : `${changed.name} is unchanged`);
      entry.startedAt = Date.now();
      entry.finishedAt = null;
      updateCard(entry, changed);
      renderActions(entry);
      follow(entry.id);
    } catch (e) {
      error.textContent = e.message;
      error.hidden = false;
      const field = { storage_size_gi: storage, site_title: title, currency, sample_products: products }[e.field];
      if (field) {
        field.setAttribute("aria-invalid", "true");
        field.focus();
      }
    }
  });
  entry.actions.replaceChildren(form);
  storage.focus();
}

function confirmDelete(entry) {
  const store = entry.store;
  const cancel = button("Cancel", () => { renderActions(entry); entry.actions.querySelector("button").focus(); });
  const confirm = button("Delete store", () => deleteStore(entry), "danger small", `Really delete ${store.name}`);
  entry.actions.replaceChildren(el("div", { class: "confirm", role: "group", "aria-label": "Confirm deletion" },
    el("span", { text: `Delete ${store.name}? This removes its namespace and data.` }), confirm, cancel));
  cancel.focus();
}

async function deleteStore(entry) {
  try {
    const store = await api("DELETE", `/api/stores/${encodeURIComponent(entry.id)}`);
    announce(`Deleting ${store.name}`);
    updateCard(entry, store);
    follow(entry.id);
  } catch (e) {
    showBanner(e.message);
    renderActions(entry);
  }
}

async function retry(entry) {
  try {
    const store = await api("POST", `/api/stores/${encodeURIComponent(entry.id)}/retry`);
    announce(`Provisioning ${store.name} again`);
    // The objects stay applied; the workloads are observed anew.
    entry.steps = new Set(entry.steps.has("apply") ? ["apply"] : []);
    entry.startedAt = Date.now();
    entry.finishedAt = null;
    entry.warning.textContent = "";
    updateCard(entry, store);
    follow(entry.id);
  } catch (e) {
    showBanner(e.message);
  }
}

/** Shows or hides the panel where a store's custom domains are added and removed. */
function toggleDomains(entry) {
  entry.domains.hidden = !entry.domains.hidden;
  if (entry.domains.hidden) return;
  renderDomains(entry);
  entry.domains.querySelector("input").focus();
}

/** The custom domains panel: each domain with its Remove button, and a form to add one. */
function renderDomains(entry, error = "") {
  const store = entry.store;
  const input = el("input", { type: "text", name: "domain", required: true, maxlength: 253,
    placeholder: "shop.example.com", autocomplete: "off", spellcheck: "false",
    "aria-label": `New domain for ${store.name}` });
  const form = el("form", { class: "domain-form", on: { submit: (e) => { e.preventDefault(); addDomain(entry, input.value); } } },
    input, el("button", { type: "submit", class: "small", text: "Add domain", "aria-label": `Add domain to ${store.name}` }));
  const domains = store.domains ?? [];
  const list = domains.length === 0
    ? el("p", { class: "muted", text: `No custom domains: ${store.name} answers on its own host only.` })
    : el("ul", { class: "domain-list" }, ...domains.map((d) => el("li", {}, el("code", { text: d }),
      button("Remove", () => removeDomain(entry, d), "danger small", `Remove domain ${d}`))));
  const problem = el("p", { class: "reason domain-error", role: "alert", text: error, hidden: !error });
  entry.domains.replaceChildren(el("h4", { text: "Custom domains" }), list, form, problem,
    el("p", { class: "muted", text: "Point each domain's DNS at the cluster's ingress; the store keeps its own host." }));
}

async function addDomain(entry, value) {
  try {
    const store = await api("POST", `/api/stores/${encodeURIComponent(entry.id)}/domains`, { domain: value.trim() });
    announce(`Domain added to ${store.name}`);
    updateCard(entry, store);
    renderDomains(entry);
    entry.domains.querySelector("input").focus();
  } catch (e) {
    renderDomains(entry, e.message);
    const input = entry.domains.querySelector("input");
    input.value = value;
    input.focus();
  }
}

async function removeDomain(entry, domain) {
  try {
    const store = await api("DELETE", `/api/stores/${encodeURIComponent(entry.id)}/domains/${encodeURIComponent(domain)}`);
    announce(`Domain ${domain} removed from ${store.name}`);
    updateCard(entry, store);
    renderDomains(entry);
    entry.domains.querySelector("input").focus();
  } catch (e) {
    renderDomains(entry, e.message);
  }
}

/** Starts a backup of a ready store; the details list it with its size once it is taken. */
async function takeBackup(entry) {
  try {
    const backup = await api("POST", `/api/stores/${encodeURIComponent(entry.id)}/backups`);
    announce(`Backup ${backup.id} of ${entry.store.name} started`);
  } catch (e) {
    showBanner(e.message);
  }
}

/** A new store (a staging copy) from the store's latest completed backup. */
async function cloneStore(entry) {
  try {
    const cloned = await api("POST", `/api/stores/${encodeURIComponent(entry.id)}/clone`, {});
    announce(`Cloning ${entry.store.name} as ${cloned.store.name}`);
    upsertCard(cloned.store, true);
    follow(cloned.store.id);
    refreshMe().catch(() => {});
  } catch (e) {
    showBanner(e.message);
  }
}

function formatBytes(bytes) {
  if (bytes == null) return "—";
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  if (bytes < 1024 * 1024 * 1024) return `${(bytes / 1048576).toFixed(1)} MiB`;
  return `${(bytes / 1073741824).toFixed(1)} GiB`;
}

/** The store's backups in the details, newest first, each completed one restorable. */
async function loadBackups(id) {
  const list = $("detail-backups");
  let backups;
  try {
    backups = (await api("GET", `/api/stores/${encodeURIComponent(id)}/backups`)).backups;
  } catch (e) {
    list.replaceChildren(el("li", { class: "error", text: e.message }));
    return;
  }
  if (app.detail?.id !== id) return;
  if (backups.length === 0) {
    list.replaceChildren(el("li", { class: "muted", text: "No backups" }));
    return;
  }
  list.replaceChildren(...backups.map((b) => {
    const item = el("li", {}, el("strong", { text: b.id }),
      ` — ${b.kind}, ${b.status}, ${formatBytes(b.size_bytes)}, ${formatTime(b.created_at)}`,
      b.error ? ` — ${b.error}` : "");
    if (b.status === "completed") {
      item.append(" ", button("Restore", async () => {
        try {
          await api("POST", `/api/stores/${encodeURIComponent(id)}/restore`, { backup: b.id });
          announce(`Restoring backup ${b.id}`);
          follow(id);
        } catch (e) {
          showBanner(e.message);
        }
      }, "plain small", `Restore backup ${b.id}`));
    }
    return item;
  }));
}

/** Suspends (no pod runs; data and passwords are kept) or resumes a store. */
async function changeState(entry, action) {
  try {
    const store = await api("POST", `/api/stores/${encodeURIComponent(entry.id)}/${action}`);
    announce(action === "suspend" ? `Suspending ${store.name}` : `Resuming ${store.name}`);
    updateCard(entry, store);
    follow(entry.id);
  } catch (e) {
    showBanner(e.message);
  }
}

async function showCredentials(entry) {
  try {
    const c = await api("GET", `/api/stores/${encodeURIComponent(entry.id)}/credentials`);
    const row = (label, value) => el("div", { class: "secret-row" },
      el("span", { class: "muted", text: label }), el("code", { text: value }),
      button("Copy", (e) => copyText(value, e.currentTarget), "plain small", `Copy ${label.toLowerCase()}`));
    entry.secret.replaceChildren(
      row("User", c.username),
      row("Password", c.password),
      row("Admin URL", c.admin_url),
      button("Hide credentials", () => hideCredentials(entry, true), "plain small"),
    );
    entry.secret.hidden = false;
    entry.secret.querySelector("button").focus();
    announce("Credentials shown");
  } catch (e) {
    showBanner(e.message);
  }
}

function hideCredentials(entry, focus = false) {
  entry.secret.replaceChildren();
  entry.secret.hidden = true;
  if (focus) {
    const show = [...entry.actions.querySelectorAll("button")].find((b) => b.textContent === "Show credentials");
    if (show) show.focus();
  }
}

function removeCard(id) {
  const entry = app.entries.get(id);
  if (!entry) return;
  const hadFocus = entry.card.contains(document.activeElement);
  entry.card.remove();
  app.entries.delete(id);
  $("empty").hidden = app.entries.size > 0;
  if (hadFocus) $("stores-title").focus();
}

// ------------------------------------------------------------------ live progress

/** Applies one event of a store to its card (and to the detail view when it shows it). */
function applyEvent(entry, event) {
  if (event.seq <= entry.lastSeq) return;
  entry.lastSeq = event.seq;
  if (event.kind === "step") {
    const index = STEPS.findIndex(([key]) => key === event.step);
    if (index > 0) entry.steps.add("apply"); // a later step means everything was applied
    if (index > 0 || (index === 0 && /applied/.test(event.message))) entry.steps.add(event.step);
    renderSteps(entry);
  } else if (event.kind === "warning") {
    entry.warning.textContent = `Warning: ${event.message}`;
  } else if (event.kind === "status") {
    if (event.status === "initialized") {
      entry.startedAt = event.at;
      entry.steps.clear();
    } else if (event.status === "provisioning" && entry.status === "failed") {
      entry.startedAt = event.at;
      entry.steps = new Set(entry.steps.has("apply") ? ["apply"] : []);
    } else if (event.status === "resuming" || event.status === "updating") {
      entry.startedAt = event.at; // "Ready after" then tells how long resuming or the change took
    }
    if (event.status === "ready" || event.status === "failed") entry.finishedAt = event.at;
    if (event.status === "deleted") {
      removeCard(entry.id);
      announce(`${entry.store.name} was deleted`);
      refreshMe().catch(() => {});
      return;
    }
    if (event.status !== entry.status && ["ready", "failed", "suspended"].includes(event.status)) {
      announce(`${entry.store.name} is ${event.status}`);
    }
    updateCard(entry, { ...entry.store, status: event.status, reason: event.reason ?? null });
  }
}

/** Follows a store's events while it is not settled, within the stream budget. */
function follow(id) {
  if (app.streams.has(id) || app.streams.size >= MAX_STREAMS || !app.token) return;
  const entry = app.entries.get(id);
  if (!entry) return;
  const controller = new AbortController();
  app.streams.set(id, controller);
  readEvents(id, controller.signal, (event) => {
    const current = app.entries.get(id);
    if (current) applyEvent(current, event);
  }, entry.lastSeq)
    .catch((e) => { if (e.name !== "AbortError") console.warn("event stream ended", e); })
    .finally(() => {
      if (app.streams.get(id) === controller) app.streams.delete(id);
      // The next refresh follows it again if it is still not settled.
    });
}

/** Once a second: the elapsed time of provisioning stores. */
function tick() {
  for (const entry of app.entries.values()) tickEntry(entry);
}

function tickEntry(entry) {
  if (entry.progress.hidden) return;
  const since = entry.startedAt ?? entry.store.created_at;
  entry.elapsed.textContent = `Elapsed: ${formatDuration(Date.now() - since)}`;
}

// ------------------------------------------------------------------ the list and its pages

async function loadStores() {
  const query = new URLSearchParams({ limit: String(PER_PAGE), order: "newest" });
  const cursor = app.cursors[app.cursors.length - 1];
  if (cursor) query.set("cursor", cursor);
  if ($("all-stores").checked) query.set("all", "true");
  let page;
  try {
    page = await api("GET", `/api/stores?${query}`);
  } catch (e) {
    if (e.status !== 401) showBanner(e.message);
    return;
  }
  if (page.stores.length === 0 && app.cursors.length > 1) {
    // The page emptied (stores deleted meanwhile): go back one.
    app.cursors.pop();
    return loadStores();
  }
  const shown = new Set(page.stores.map((s) => s.id));
  for (const id of [...app.entries.keys()]) {
    if (!shown.has(id)) {
      removeCard(id);
      const stream = app.streams.get(id);
      if (stream) { stream.abort(); app.streams.delete(id); }
    }
  }
  const list = $("stores");
  page.stores.forEach((store, i) => {
    const entry = upsertCard(store);
    if (list.children[i] !== entry.card) list.insertBefore(entry.card, list.children[i] ?? null);
    if (!SETTLED.has(store.status)) follow(store.id);
  });
  $("empty").hidden = page.stores.length > 0;
  app.nextCursor = page.next_cursor;
  $("prev-page").disabled = app.cursors.length <= 1;
  $("next-page").disabled = !page.next_cursor;
  $("page-label").textContent = `Page ${app.cursors.length}`;
  $("refreshed").textContent = `Updated ${new Date().toLocaleTimeString()}`;
}

$("refresh").addEventListener("click", async () => {
  await refreshAll();
  announce("Stores refreshed");
});
$("next-page").addEventListener("click", async () => {
  if (!app.nextCursor) return;
  app.cursors.push(app.nextCursor);
  await loadStores();
  announce(`Page ${app.cursors.length}`);
});
$("prev-page").addEventListener("click", async () => {
  if (app.cursors.length <= 1) return;
  app.cursors.pop();
  await loadStores();
  announce(`Page ${app.cursors.length}`);
});
$("all-stores").addEventListener("change", () => {
  app.cursors = [null];
  loadStores();
});

// ------------------------------------------------------------------ the detail view

async function openDetail(id, opener) {
  closeDetail();
  const dialog = $("detail");
  const controller = new AbortController();
  app.detail = { id, controller, opener };
  $("detail-events").replaceChildren();
  $("detail-products").replaceChildren();
  $("detail-backups").replaceChildren();
  $("detail-fields").replaceChildren();
  $("detail-title").textContent = "Loading…";
  dialog.showModal();
  $("detail-close").focus();
  let store;
  try {
    store = await api("GET", `/api/stores/${encodeURIComponent(id)}`);
  } catch (e) {
    $("detail-title").textContent = e.message;
    return;
  }
  if (app.detail?.id !== id) return;
  $("detail-title").textContent = store.name;
  const fields = $("detail-fields");
  for (const [term, value] of [
    ["Status", badge(store.status)],
    ["Reason", store.reason ?? "—"],
    ["ID", store.id],
    ["URL", link(store.url, store.url)],
    ["Admin panel", link(store.admin_url, store.admin_url)],
    ["Admin user", store.admin_user],
    ["Namespace", store.namespace],
    ["Owner", store.owner],
    ["Storage", `${store.storage_gi} GiB WordPress + 1 GiB MySQL`],
    ["Blueprint", store.blueprint],
    ["Created", formatTime(store.created_at)],
    ["Last change", formatTime(store.updated_at)],
  ]) field(fields, term, value);
  const products = $("detail-products");
  if (store.products.length === 0) products.append(el("li", { class: "muted", text: "No sample products" }));
  for (const p of store.products) {
    products.append(el("li", {}, el("strong", { text: p.name }), ` — ${p.price}`, p.description ? ` — ${p.description}` : ""));
  }
  loadBackups(id);
  readEvents(id, controller.signal, (event) => {
    if (app.detail?.id !== id) return;
    $("detail-events").append(eventItem(event));
  }).catch((e) => {
    if (e.name !== "AbortError" && app.detail?.id === id) $("detail-events").append(el("li", { class: "error", text: e.message }));
  });
}

function eventItem(event) {
  let text;
  if (event.kind === "status") text = `Status ${event.status}${event.reason ? `: ${event.reason}` : ""}`;
  else if (event.kind === "step") text = `${event.step}: ${event.message}`;
  else text = `Warning: ${event.message}`;
  return el("li", { class: `event ${event.kind}` },
    el("time", { datetime: new Date(event.at).toISOString(), text: new Date(event.at).toLocaleTimeString() }), text);
}

function closeDetail() {
  const detail = app.detail;
  app.detail = null;
  if (detail) detail.controller.abort();
  const dialog = $("detail");
  if (dialog.open) dialog.close();
  if (detail?.opener && detail.opener.isConnected) detail.opener.focus();
}

$("detail-close").addEventListener("click", closeDetail);
$("detail").addEventListener("close", () => { if (app.detail) closeDetail(); });

// ------------------------------------------------------------------ the admin view

async function loadUsers() {
  // Every page of users, following the server's cursor.
  const data = { users: [] };
  try {
    let cursor = null;
    do {
      const page = await api("GET", cursor ? `/api/users?cursor=${encodeURIComponent(cursor)}` : "/api/users");
      data.users.push(...page.users);
      cursor = page.next_cursor;
    } while (cursor);
  } catch (e) {
    if (e.status !== 401) showBanner(e.message);
    return;
  }
  const rows = data.users.map((user) => {
    const stores = el("input", { type: "number", min: 0, value: user.max_stores, "aria-label": `Max stores of ${user.username}` });
    const storage = el("input", { type: "number", min: 0, value: user.max_storage, "aria-label": `Max storage of ${user.username} in GiB` });
    const save = button("Save", async () => {
      try {
        const updated = await api("PUT", `/api/users/${encodeURIComponent(user.username)}/quota`, {
          max_stores: Number(stores.value), max_storage_gib: Number(storage.value),
        });
        announce(`Quota of ${updated.username} saved`);
        await loadUsers();
        const again = $("users").querySelector(`tr[data-user="${CSS.escape(updated.username)}"] button`);
        if (again) again.focus();
        if (updated.username === app.me?.username) await refreshMe();
      } catch (e) { showBanner(e.message); }
    }, "small", `Save quota of ${user.username}`);
    return el("tr", { "data-user": user.username },
      el("th", { scope: "row", text: user.username }),
      el("td", { text: user.role }),
      el("td", { class: "usage-stores", text: `${user.current_stores} / ${user.max_stores}` }),
      el("td", { class: "usage-storage", text: `${user.current_storage} / ${user.max_storage}` }),
      el("td", {}, el("div", { class: "inline" }, stores, storage, save)));
  });
  // Keep what an admin is typing: rebuild only when no quota field has the focus.
  if (!$("users").contains(document.activeElement) || document.activeElement.tagName !== "INPUT") {
    $("users").replaceChildren(...rows);
  }
}

$("user-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  for (const id of ["new-username", "new-password"]) { $(`${id}-error`).textContent = ""; $(id).removeAttribute("aria-invalid"); }
  $("user-error").textContent = "";
  const username = $("new-username").value.trim();
  const password = $("new-password").value;
  const fail = (id, message) => { $(`${id}-error`).textContent = message; $(id).setAttribute("aria-invalid", "true"); $(id).focus(); };
  if (!username) return fail("new-username", "Enter a username.");
  if (password.length < 8) return fail("new-password", "The password needs at least 8 characters.");
  try {
    const user = await api("POST", "/api/users", {
      username, password, role: $("new-role").value,
      quota: { max_stores: Number($("new-max-stores").value), max_storage_gib: Number($("new-max-storage").value) },
    });
    $("new-username").value = "";
    $("new-password").value = "";
    announce(`User ${user.username} created`);
    await loadUsers();
  } catch (e) {
    if (e.field === "username" || e.code === "user_exists") fail("new-username", e.message);
    else if (e.field === "password") fail("new-password", e.message);
    else $("user-error").textContent = e.message;
  }
});

// ------------------------------------------------------------------ webhooks

const EVENT_FILTERS = { all: "Every event", status: "Status changes" };

async function loadWebhooks() {
  let data;
  try {
    data = await api("GET", "/api/webhooks");
  } catch (e) {
    if (e.status !== 401) showBanner(e.message);
    return;
  }
  const rows = data.webhooks.map((hook) => {
    const actions = el("div", { class: "inline" });
    const renderActions = () => actions.replaceChildren(
      button("Deliveries", (e) => showDeliveries(hook, e.currentTarget), "plain small", `Deliveries of ${hook.url}`),
      button("Remove", () => confirmRemoveWebhook(hook, actions, renderActions), "danger small", `Remove ${hook.url}`),
    );
    renderActions();
    return el("tr", { "data-webhook": hook.id },
      el("td", {}, el("code", { class: "hook-url", text: hook.url })),
      el("td", { text: EVENT_FILTERS[hook.events] ?? hook.events },
        hook.all_stores ? el("span", { class: "muted", text: " (every user's stores)" }) : null),
      el("td", {}, el("time", { datetime: new Date(hook.created_at).toISOString(), text: formatTime(hook.created_at) })),
      el("td", {}, actions));
  });
  $("webhooks-empty").hidden = rows.length > 0;
  // Keep a removal being confirmed (and the focus in it): rebuild only when nothing in the
  // table has the focus.
  if (!$("webhooks").contains(document.activeElement)) $("webhooks").replaceChildren(...rows);
  if (app.deliveriesOf) {
    if (data.webhooks.some((hook) => hook.id === app.deliveriesOf.id)) await loadDeliveries();
    else closeDeliveries(false);
  }
}

function confirmRemoveWebhook(hook, actions, cancelled) {
  const cancel = button("Keep", () => { cancelled(); actions.querySelector("button").focus(); });
  const confirm = button("Remove webhook", () => removeWebhook(hook), "danger small", `Really remove ${hook.url}`);
  actions.replaceChildren(el("div", { class: "confirm", role: "group", "aria-label": "Confirm removal" },
    el("span", { text: "Remove it? Pending deliveries are not sent." }), confirm, cancel));
  cancel.focus();
}

async function removeWebhook(hook) {
  try {
    await api("DELETE", `/api/webhooks/${encodeURIComponent(hook.id)}`);
    announce("Webhook removed");
    if (app.deliveriesOf?.id === hook.id) closeDeliveries(false);
    $("webhooks-title").focus();
    await loadWebhooks();
  } catch (e) {
    showBanner(e.message);
    await loadWebhooks();
  }
}

$("webhooks-refresh").addEventListener("click", () => loadWebhooks());

$("webhook-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = $("webhook-url");
  const fail = (message) => {
    $("webhook-url-error").textContent = message;
    input.setAttribute("aria-invalid", "true");
    input.focus();
  };
  $("webhook-url-error").textContent = "";
  $("webhook-error").textContent = "";
  input.removeAttribute("aria-invalid");
  const url = input.value.trim();
  // Only what a person gets wrong at once; the server checks everything (and the same way
  // for the command line and scripts).
  if (!url) return fail("Enter the URL that should receive the events.");
  if (!/^https?:\/\//i.test(url)) return fail("The URL must start with https://");
  hideWebhookSecret();
  try {
    const created = await api("POST", "/api/webhooks", {
      url,
      events: $("webhook-events").value,
      all_stores: $("webhook-all-stores").checked,
    });
    input.value = "";
    $("webhook-all-stores").checked = false;
    showWebhookSecret(created.secret);
    announce("Webhook added. Its signing secret is shown once: copy it now.");
    await loadWebhooks();
  } catch (e) {
    if (e.field === "url") fail(e.message);
    else $("webhook-error").textContent = e.message;
  }
});

function showWebhookSecret(secret) {
  $("webhook-secret-value").textContent = secret;
  $("webhook-secret").hidden = false;
  $("webhook-secret-title").focus();
}

function hideWebhookSecret() {
  $("webhook-secret-value").textContent = "";
  $("webhook-secret").hidden = true;
}

$("webhook-secret-copy").addEventListener("click", (event) =>
  copyText($("webhook-secret-value").textContent, event.currentTarget));
$("webhook-secret-done").addEventListener("click", () => {
  hideWebhookSecret();
  $("webhook-url").focus();
});

async function showDeliveries(hook, opener) {
  app.deliveriesOf = { id: hook.id, url: hook.url, opener };
  $("deliveries-of").textContent = `Of ${hook.url}, newest first.`;
  $("deliveries").hidden = false;
  await loadDeliveries();
  $("deliveries-title").focus();
}

function closeDeliveries(focus = true) {
  const shown = app.deliveriesOf;
  app.deliveriesOf = null;
  $("deliveries").hidden = true;
  $("deliveries-rows").replaceChildren();
  if (focus && shown?.opener?.isConnected) shown.opener.focus();
}

$("deliveries-close").addEventListener("click", () => closeDeliveries());

async function loadDeliveries() {
  const shown = app.deliveriesOf;
  if (!shown) return;
  let data;
  try {
    data = await api("GET", `/api/webhooks/${encodeURIComponent(shown.id)}/deliveries?limit=20`);
  } catch (e) {
    if (e.status !== 401) showBanner(e.message);
    return;
  }
  if (app.deliveriesOf !== shown) return;
  const rows = data.deliveries.map((d) => el("tr", { "data-delivery": d.id },
    el("td", {}, el("time", { datetime: new Date(d.created_at).toISOString(), text: formatTime(d.created_at) })),
    el("td", { text: d.event }),
    el("td", { text: d.store_id }),
    el("td", { class: `state ${d.state}`, text: d.state }),
    el("td", { class: "attempts", text: String(d.attempts) }),
    el("td", { class: "http-status", text: d.last_status === null || d.last_status === undefined ? "–" : String(d.last_status) }),
    el("td", { class: "hook-url", text: d.last_error ?? "" })));
  $("deliveries-rows").replaceChildren(...rows);
  $("deliveries-empty").hidden = rows.length > 0;
}

if (app.token) showApp();
