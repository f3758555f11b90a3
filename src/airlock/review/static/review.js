// The review page: keyboard first, no build step. Every decision goes to the server at once;
// the list updates in place (no reload).
"use strict";

const state = { items: [], cursor: 0, selected: new Set(), undo: [], filter: {}, csrf: null, user: null,
                role: null, facets: {}, mode: "list", confirmAction: null };
const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value; else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function show(text, isError) {
  const toast = $("toast");
  toast.textContent = text;
  toast.className = "show" + (isError ? " error" : "");
  clearTimeout(show.timer);
  show.timer = setTimeout(() => { toast.className = ""; }, isError ? 6000 : 2500);
}

async function api(method, path, body) {
  const headers = { "content-type": "application/json" };
  if (method !== "GET" && state.csrf) headers["x-csrf-token"] = state.csrf;
  const response = await fetch(path, { method, headers, credentials: "same-origin",
                                       body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await response.json().catch(() => ({ error: response.statusText }));
  if (response.status === 401) { showLogin(); }
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

// -- login -----------------------------------------------------------------------------------
function showLogin() {
  $("login").hidden = false; $("queue").hidden = true; $("filter").hidden = true;
  $("token").focus();
}

async function login(event) {
  event.preventDefault();
  try {
    const me = await api("POST", "/api/login", { token: $("token").value });
    $("token").value = "";
    await start(me);
  } catch (error) { $("login-error").textContent = error.message; }
}

async function start(me) {
  Object.assign(state, { user: me.user, role: me.role, csrf: me.csrf });
  // A notice links to ?run=ID: open the page filtered to that run.
  const linked = new URLSearchParams(location.search);
  for (const key of ["run", "reason", "field"]) if (linked.get(key)) state.filter[key] = linked.get(key);
  $("whoami").textContent = `${me.user} (${me.role})`;
  $("login").hidden = true; $("queue").hidden = false;
  $("letters-tab").hidden = !(me.role === "operator" || me.role === "admin");
  await load();
  // An operator's notice (crash, growing dead-letter queue) links to ?view=letters.
  if (linked.get("view") === "letters" && !$("letters-tab").hidden) await showLetters();
}

// -- queue -----------------------------------------------------------------------------------
async function load() {
  const query = new URLSearchParams(Object.entries(state.filter).filter(([, v]) => v));
  const data = await api("GET", "/api/items?" + query);
  state.items = data.items; state.facets = data.facets; state.selected.clear();
  state.cursor = Math.min(state.cursor, Math.max(0, state.items.length - 1));
  render();
}

function pending() { return state.items.filter((item) => item.status === "pending"); }

function render() {
  const list = $("list");
  list.replaceChildren(...state.items.map((item, index) => el("li", {
      class: [item.status, index === state.cursor ? "current" : "", state.selected.has(item.id) ? "selected" : ""].join(" "),
      "data-id": item.id, onclick: () => { state.cursor = index; render(); } },
    el("span", { class: "mark" }, { approved: "✓", rejected: "✗" }[item.status] || "•"),
    el("span", {}, item.record_id, " ", el("small", {}, item.record.name || "")),
    el("small", {}, item.run_id.slice(0, 8)),
    el("span", { class: "reasons" }, item.reasons.join(", ")))));
  const current = list.children[state.cursor];
  if (current) current.scrollIntoView({ block: "nearest" });
  const open = pending().length;
  $("counts").textContent = `${open} pending of ${state.items.length} shown` +
    (state.selected.size ? ` · ${state.selected.size} selected` : "");
  const parts = Object.entries(state.filter).filter(([, v]) => v).map(([k, v]) => `${k}:${v}`);
  $("filter-summary").textContent = parts.length ? "filter " + parts.join(" ") : "";
  renderDetail();
}

function fmt(value) { return value === null || value === undefined || value === "" ? "∅" : String(value); }

function renderDetail() {
  const item = state.items[state.cursor];
  const detail = $("detail");
  if (!item) { detail.replaceChildren(el("p", {}, "Nothing to review here. Press / to change the filter.")); return; }
  const editing = state.mode === "edit";
  const rows = Object.entries(item.changes).map(([field, change]) => {
    const same = JSON.stringify(change.before) === JSON.stringify(change.after);
    const confidence = change.confidence === null || change.confidence === undefined ? null : Number(change.confidence);
    const after = editing
      ? el("input", { class: "edit", "data-field": field, value: change.after === null ? "" : String(change.after) })
      : fmt(change.after);
    return el("tr", { class: same ? "same" : "" },
      el("th", {}, field), el("td", { class: "before" }, fmt(change.before)), el("td", { class: "after" }, after),
      el("td", { class: "source" }, [change.tool || "", change.model ? ` · ${change.model}` : "",
        confidence === null ? "" : el("span", { class: confidence < 0.8 ? "low" : "" }, ` · ${confidence.toFixed(2)}`),
        change.edited_by ? ` · edited by ${change.edited_by}` : ""]));
  });
  const record = Object.entries(item.record).map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, fmt(v))));
  detail.replaceChildren(
    el("h2", {}, `Record ${item.record_id} `, el("span", { class: "status" }, item.status)),
    el("div", { class: "meta" }, `item ${item.id} · run ${item.run_id.slice(0, 8)} (${item.playbook}) started by `,
       `${item.started_by} · risk ${Number(item.risk).toFixed(2)}`, item.decided_by ? ` · decided by ${item.decided_by}` : ""),
    el("div", {}, item.reasons.map((code) => el("span", { class: "chip" }, code))),
    el("table", { class: "diff" }, el("thead", {}, el("tr", {}, el("th", {}, "field"), el("th", {}, "before"),
       el("th", {}, "proposed"), el("th", {}, "source"))), el("tbody", {}, rows)),
    el("p", { class: "hint" }, editing ? "Enter approves the edited values · Esc cancels"
      : "a approve · r reject · e edit · x select · A approve all · u undo · / filter · ? help"),
    el("h3", {}, "Record"), el("table", {}, el("tbody", {}, record)));
  if (editing) {
    // Start on the field that was flagged, if a reason names one.
    const flagged = item.reasons.map((code) => code.split(":").pop()).find((name) => name in item.changes);
    const input = detail.querySelector(`input.edit[data-field="${flagged}"]`) || detail.querySelector("input.edit");
    if (input) { input.focus(); input.select(); }
  }
}

function move(step) {
  state.cursor = Math.max(0, Math.min(state.items.length - 1, state.cursor + step));
  render();
}

function nextPending() {
  const after = state.items.findIndex((item, index) => index > state.cursor && item.status === "pending");
  const any = state.items.findIndex((item) => item.status === "pending");
  state.cursor = after >= 0 ? after : any >= 0 ? any : state.cursor;
}

function applyDecided(ids, status, by) {
  const wanted = new Set(ids);
  for (const item of state.items) if (wanted.has(item.id)) { item.status = status; item.decided_by = by; }
}

async function decide(decision, items) {
  const open = items.filter((item) => item.status === "pending");
  if (!open.length) { show("nothing pending here"); return; }
  try {
    const result = await api("POST", "/api/decide",
      { decision, items: open.map((item) => ({ id: item.id, hash: item.proposal_hash })) });
    applyDecided(result.decided, decision, result.actor);
    if (result.decided.length) state.undo.push(result.decided);
    state.selected.clear();
    nextPending(); render();
    show(`${decision} ${result.decided.length} item(s)` + (result.skipped ? `; ${result.skipped} already decided` : ""));
  } catch (error) { show(error.message, true); }
}

async function saveEdit() {
  const item = state.items[state.cursor];
  const edits = {};
  for (const input of $("detail").querySelectorAll("input.edit")) {
    const field = input.dataset.field, before = item.changes[field].after;
    const value = input.value === "" ? null : input.value;
    if (value !== (before === null ? null : String(before))) edits[field] = value;
  }
  state.mode = "list";
  if (!Object.keys(edits).length) { await decide("approved", [item]); return; }
  try {
    const result = await api("POST", "/api/edit", { id: item.id, hash: item.proposal_hash, edits });
    for (const [field, value] of Object.entries(edits)) Object.assign(item.changes[field], { after: value, edited_by: result.actor });
    item.proposal_hash = result.hash;
    applyDecided(result.decided, "approved", result.actor);
    state.undo.push(result.decided);
    nextPending(); render();
    show(`edited and approved item ${item.id}`);
  } catch (error) { render(); show(error.message, true); }
}

async function undo() {
  const last = state.undo.pop();
  if (!last) { show("nothing to undo"); return; }
  try {
    const result = await api("POST", "/api/undo", { ids: last });
    applyDecided(result.undone, "pending", null);
    const index = state.items.findIndex((item) => item.id === last[0]);
    if (index >= 0) state.cursor = index;
    render();
    show(`undid ${result.undone.length} decision(s)`);
  } catch (error) { show(error.message, true); }
}

function askConfirm(text, action) {
  $("confirm-text").textContent = text;
  state.confirmAction = action;
  $("confirm").hidden = false;
}

function batchApprove() {
  const chosen = state.selected.size ? state.items.filter((item) => state.selected.has(item.id)) : state.items;
  const open = chosen.filter((item) => item.status === "pending");
  if (!open.length) { show("nothing pending to approve"); return; }
  const what = state.selected.size ? "selected" : "filtered";
  askConfirm(`Approve ${open.length} ${what} item(s)?`, () => decide("approved", open));
}

// -- filter ----------------------------------------------------------------------------------
function openFilter() {
  $("filter").hidden = false;
  const input = $("filter-input");
  input.value = Object.entries(state.filter).filter(([, v]) => v).map(([k, v]) => `${k}:${v}`).join(" ");
  const facets = [];
  for (const [kind, counts] of [["run", state.facets.runs], ["reason", state.facets.reasons], ["field", state.facets.fields]]) {
    for (const [value, count] of Object.entries(counts || {}).slice(0, 12)) {
      const shown = kind === "run" ? value.slice(0, 8) : value;
      facets.push(el("span", { onclick: () => { input.value = `${kind}:${shown}`; applyFilter(); } }, `${kind}:${shown} (${count})`));
    }
  }
  $("facets").replaceChildren(...facets);
  input.focus();
}

async function applyFilter(event) {
  if (event) event.preventDefault();
  const filter = {};
  for (const part of $("filter-input").value.trim().split(/\s+/).filter(Boolean)) {
    const at = part.indexOf(":");
    const key = at > 0 ? part.slice(0, at) : "reason";
    if (["run", "reason", "field"].includes(key)) filter[key] = at > 0 ? part.slice(at + 1) : part;
  }
  state.filter = filter; state.cursor = 0;
  $("filter").hidden = true;
  try { await load(); } catch (error) { show(error.message, true); }
}

// -- dead letters (operators) ------------------------------------------------------------------
async function showLetters() {
  const shown = $("letters").hidden;
  $("letters").hidden = !shown; $("queue").hidden = shown;
  if (!shown) return;
  try {
    const data = await api("GET", "/api/deadletters");
    $("letters-body").replaceChildren(...data.letters.map((letter) => el("tr", {},
      el("td", {}, letter.id), el("td", {}, letter.run_id.slice(0, 8)), el("td", {}, `${letter.stage}/${letter.step_id || "-"}`),
      el("td", {}, letter.record_ids.slice(0, 5).join(", ") + (letter.record_ids.length > 5 ? " …" : "")),
      el("td", {}, `${letter.error_type}: ${letter.error}`), el("td", {}, letter.attempts),
      el("td", {}, el("button", { onclick: () => letterAction("replay", letter.id) }, "Replay"), " ",
         el("button", { onclick: () => letterAction("discard", letter.id) }, "Discard")))));
  } catch (error) { show(error.message, true); }
}

async function letterAction(action, id) {
  const reason = window.prompt(`Why ${action} dead letter ${id}? (kept in the audit trail)`);
  if (!reason) return;
  try {
    await api("POST", `/api/deadletters/${action}`, { ids: [id], reason });
    show(`${action}: dead letter ${id} done`);
    $("letters").hidden = true; await showLetters();
  } catch (error) { show(error.message, true); }
}

// -- keyboard --------------------------------------------------------------------------------
function onKey(event) {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (!$("confirm").hidden) {
    if (event.key === "Enter" || event.key === "y") { $("confirm").hidden = true; const action = state.confirmAction; state.confirmAction = null; action(); }
    else if (event.key === "Escape" || event.key === "n") { $("confirm").hidden = true; state.confirmAction = null; }
    event.preventDefault(); return;
  }
  if (!$("help").hidden) { if (event.key === "Escape" || event.key === "?") $("help").hidden = true; event.preventDefault(); return; }
  const target = event.target;
  if (target instanceof HTMLInputElement) {
    if (state.mode === "edit" && target.classList.contains("edit")) {
      if (event.key === "Enter") { event.preventDefault(); saveEdit(); }
      else if (event.key === "Escape") { state.mode = "list"; render(); }
    } else if (target.id === "filter-input" && event.key === "Escape") { $("filter").hidden = true; target.blur(); }
    return;
  }
  if ($("queue").hidden) return;
  const item = state.items[state.cursor];
  const actions = {
    j: () => move(1), k: () => move(-1),
    a: () => item && decide("approved", [item]), r: () => item && decide("rejected", [item]),
    e: () => { if (item && item.status === "pending") { state.mode = "edit"; renderDetail(); } },
    x: () => { if (!item) return; if (state.selected.has(item.id)) state.selected.delete(item.id); else state.selected.add(item.id); render(); },
    A: batchApprove, u: undo, "/": openFilter, "?": () => { $("help").hidden = false; },
  };
  const action = actions[event.key];
  if (action) { event.preventDefault(); action(); }
}

document.addEventListener("keydown", onKey);
$("login").addEventListener("submit", login);
$("filter").addEventListener("submit", applyFilter);
$("help-button").addEventListener("click", () => { $("help").hidden = false; });
$("letters-tab").addEventListener("click", showLetters);
api("GET", "/api/me").then(start).catch(() => showLogin());
