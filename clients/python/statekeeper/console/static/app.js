// The statekeeper console page: reads state through the console's JSON API and follows watches
// as server-sent events (the browser resumes them by Last-Event-ID). No build step, no library.
"use strict";

// ---- small helpers --------------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "class") node.className = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// Replace a node's children (nested arrays flattened, null and false left out).
function fill(node, ...children) {
  node.replaceChildren(...children.flat(Infinity).filter((c) => c !== undefined && c !== null && c !== false)
    .map((c) => (c instanceof Node ? c : document.createTextNode(String(c)))));
}

const SVG_NS = "http://www.w3.org/2000/svg";
function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
  for (const child of children.flat()) if (child) node.append(child);
  return node;
}

const num = (value) => (value === undefined || value === null || value === "" ? 0 : Number(value));
const doc = (value) => (value && typeof value === "object" && "json" in value ? value.json : null);
const pretty = (value) => JSON.stringify(value, null, 2);
const ENUM_PREFIX = /^(WORKFLOW_STATUS|STEP_STATUS|TASK_STATE|EVENT_TYPE|INDEXING_STATUS|SYNC_STATUS|TOOL_EXECUTION_STATUS|AUDIO_SESSION_STATUS|STREAMING_MODE|TRANSCRIPTION_STATUS|WORKFLOW_EVENT_TYPE|TEAM_CHANGE_TYPE)_/;
const short = (name) => String(name || "UNSPECIFIED").replace(ENUM_PREFIX, "");
const badge = (name) => h("span", { class: `badge badge-${short(name)}`, "data-status": short(name) }, short(name));
const seconds = (duration) => (duration ? parseFloat(duration) : 0);

function fmtTime(ts) {
  if (!ts) return "—";
  const date = new Date(ts);
  return isNaN(date) ? String(ts) : date.toLocaleTimeString([], { hour12: false });
}

function fmtDuration(sec) {
  if (!isFinite(sec)) return "—";
  if (sec < 1) return `${Math.round(sec * 1000)} ms`;
  if (sec < 120) return `${sec.toFixed(sec < 10 ? 2 : 1)} s`;
  return `${Math.floor(sec / 60)} min ${Math.round(sec % 60)} s`;
}

const pct = (ratio) => `${Number((100 * (ratio || 0)).toFixed(1))}%`;

function bar(done, total, failed = 0, label = null) {
  const share = total > 0 ? Math.min(1, done / total) : 0;
  const failShare = total > 0 ? Math.min(1 - share, failed / total) : 0;
  return h("div", { class: "progress", "data-done": done, "data-total": total },
    h("div", { class: "bar", role: "progressbar", "aria-valuenow": done, "aria-valuemax": total },
      h("span", { style: `width:${(100 * share).toFixed(1)}%` }),
      failShare > 0 ? h("span", { class: "fail", style: `left:${(100 * share).toFixed(1)}%;width:${(100 * failShare).toFixed(1)}%` }) : null),
    h("div", { class: "bar-label" }, label ?? `${done} / ${total}` + (failed ? ` · ${failed} failed` : "")));
}

// A live countdown to an instant ("in 12 s", "expired"); the ticker below keeps it current.
function countdown(ts, ended = "expired") {
  return h("span", { class: "countdown", "data-until": new Date(ts).getTime(), "data-ended": ended }, "");
}

function tickCountdowns() {
  const now = Date.now();
  for (const node of document.querySelectorAll(".countdown")) {
    const left = (Number(node.dataset.until) - now) / 1000;
    node.textContent = left > 0 ? `in ${fmtDuration(left)}` : node.dataset.ended;
    node.classList.toggle("over", left <= 0);
  }
}
setInterval(tickCountdowns, 1000);

// ---- the console's API ----------------------------------------------------------------------

class ApiError extends Error {
  constructor(error) {
    super(error.message || "unknown error");
    this.code = error.code || "UNKNOWN";
    this.reason = error.reason || "";
  }
}

async function api(service, method, body = {}) {
  let response;
  try {
    response = await fetch(`/api/call/${service}/${method}`, {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
    });
  } catch (error) {
    throw new ApiError({ code: "CONSOLE_UNREACHABLE", message: "The console itself is unreachable: is 'statekeeper ui' still running?" });
  }
  let data;
  try {
    data = await response.json();
  } catch (error) {
    throw new ApiError({ code: "INTERNAL", message: `The console answered HTTP ${response.status} without a readable body.` });
  }
  if (!response.ok) {
    const error = new ApiError(data.error || { code: "INTERNAL", message: `HTTP ${response.status}` });
    if (error.code === "UNAVAILABLE") showDown(error.message);
    throw error;
  }
  return data;
}

function errorBox(error) {
  return h("div", { class: "error", "data-code": error.code || "ERROR", role: "alert" }, error.message);
}

// ---- page-wide state: the server-down banner and the current view's resources ---------------

const banner = document.getElementById("banner");
const healthPill = document.getElementById("health");

function showDown(message) {
  banner.hidden = false;
  banner.textContent = `${message} Retrying…`;
  healthPill.className = "pill pill-DOWN";
  healthPill.dataset.status = "DOWN";
  healthPill.textContent = "unreachable";
}

function showHealth(status) {
  healthPill.className = `pill pill-${status}`;
  healthPill.dataset.status = status;
  healthPill.textContent = status.toLowerCase().replace("_", " ");
  if (status === "SERVING") {
    banner.hidden = true;
    banner.textContent = "";
  } else {
    banner.hidden = false;
    banner.textContent = `The server reports ${status} (it may be shutting down). Retrying…`;
  }
}

// Everything a view opened (streams, timers), closed when the page shows another view.
class Scope {
  constructor() { this.alive = true; this.sources = []; this.timers = []; }
  close() {
    this.alive = false;
    this.sources.forEach((source) => source.close());
    this.timers.forEach((timer) => clearInterval(timer));
  }
  every(ms, fn) { this.timers.push(setInterval(() => this.alive && fn(), ms)); }
  // fn, run at most once at a time; a call while it runs makes it run once more after.
  refresher(fn) {
    let running = false, again = false;
    const run = async () => {
      if (!this.alive) return;
      if (running) { again = true; return; }
      running = true;
      try { await fn(); } finally {
        running = false;
        if (again) { again = false; run(); }
      }
    };
    return run;
  }
  // Follow a watch: `after` is the position the page already shows (null: from now on).
  watch(service, method, request, after, handlers) {
    const params = new URLSearchParams({ request: JSON.stringify(request) });
    if (after !== null && after !== undefined) params.set("after", String(after));
    const source = new EventSource(`/api/watch/${service}/${method}?${params}`);
    source.onmessage = (event) => this.alive && handlers.message(JSON.parse(event.data), event.lastEventId);
    source.addEventListener("failure", (event) => {
      const failure = JSON.parse(event.data);
      if (failure.fatal) source.close();
      else if (failure.code === "UNAVAILABLE") showDown(failure.message);
      if (handlers.failure) handlers.failure(failure);
    });
    source.addEventListener("compacted", () => {
      source.close();
      if (this.alive) (handlers.compacted || route)();
    });
    this.sources.push(source);
    return source;
  }
}

let scope = new Scope();

function params(entries) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(entries)) if (value) search.set(key, value);
  return search;
}

function go(view, entries = {}) {
  const query = params(entries).toString();
  location.hash = `#/${view}` + (query ? `?${query}` : "");
}

// A text field with a button that navigates (the view's state lives in the URL).
function searchForm(id, value, placeholder, label, submit) {
  const input = h("input", { type: "text", id, value: value || "", placeholder, spellcheck: "false" });
  return h("form", { class: "toolbar", onsubmit: (event) => { event.preventDefault(); submit(input.value.trim()); } },
    input, h("button", { type: "submit", id: `${id}-go` }, label));
}

const idList = (text) => (text || "").split(",").map((item) => item.trim()).filter(Boolean);

function table(headers, rows, empty = "nothing yet") {
  if (!rows.length) return h("div", { class: "empty" }, empty);
  return h("table", {}, h("thead", {}, h("tr", {}, headers.map((name) => h("th", {}, name)))), h("tbody", {}, rows));
}

// The confirmation dialog; resolves to null (kept) or {reason} (confirmed).
function confirmAction(title, text, askReason = false) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-text").textContent = text;
  const extra = document.getElementById("confirm-extra");
  const reason = h("input", { type: "text", id: "confirm-reason", placeholder: "reason (stored with the workflow)" });
  fill(extra, askReason ? reason : "");
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok" ? { reason: reason.value } : null), { once: true });
  });
}

// ---- Keys -----------------------------------------------------------------------------------

function keysView(root, query) {
  const pattern = query.get("pattern") || "*";
  const selected = query.get("key");
  const listBox = h("div", { id: "key-list" });
  const detailBox = h("div", { id: "key-detail" });
  const actionBox = h("div", { id: "key-action" });
  const tailBody = h("tbody", { id: "key-tail" });
  root.append(
    h("h2", {}, "Keys"),
    searchForm("key-pattern", pattern, "glob, e.g. agent:*", "Browse", (value) => go("keys", { pattern: value || "*" })),
    h("div", { class: "grid" },
      h("section", { class: "panel" }, h("h3", {}, "Keys matching ", h("span", { class: "mono" }, pattern)), listBox),
      h("section", { class: "panel" }, h("h3", {}, selected ? h("span", { class: "mono" }, selected) : "Document"), actionBox, detailBox)),
    h("section", { class: "panel" }, h("h3", {}, "Live changes", h("span", { class: "hint" }, "put · delete · expire, newest first")),
      h("table", {}, h("thead", {}, h("tr", {}, ["revision", "time", "event", "key"].map((name) => h("th", {}, name)))), tailBody)));

  const tokens = [""];
  let page = 0;
  const loadList = scope.refresher(async () => {
    try {
      const result = await api("StateService", "ListKeys", { pattern, page_size: 50, page_token: tokens[page] });
      const keys = result.keys || [];
      tokens[page + 1] = result.next_page_token || "";
      const rows = keys.map((key) => h("tr", {
        class: "clickable" + (key === selected ? " selected" : ""), "data-key": key,
        onclick: () => go("keys", { pattern, key }),
      }, h("td", { class: "mono" }, key)));
      fill(listBox, 
        table(["key"], rows, `no key matches ${pattern}`),
        h("div", { class: "toolbar", style: "margin-top:10px" },
          h("button", { class: "secondary", id: "keys-prev", disabled: page === 0, onclick: () => { page -= 1; loadList(); } }, "‹ Previous"),
          h("span", { class: "hint" }, `page ${page + 1} · store revision ${num(result.revision)}`),
          h("button", { class: "secondary", id: "keys-next", disabled: !result.next_page_token, onclick: () => { page += 1; loadList(); } }, "Next ›")));
      listBox.dataset.revision = num(result.revision);
    } catch (error) {
      fill(listBox, errorBox(error));
    }
  });

  const loadDetail = scope.refresher(async () => {
    if (!selected) {
      fill(detailBox, h("div", { class: "empty" }, "Pick a key to see its document, revisions and time to live."));
      return;
    }
    try {
      const { kv } = await api("StateService", "Get", { key: selected });
      const revision = num(kv.mod_revision);
      fill(detailBox, 
        h("dl", { class: "kv" },
          h("dt", {}, "mod revision"), h("dd", { id: "key-mod-revision" }, revision),
          h("dt", {}, "create revision"), h("dd", {}, num(kv.create_revision)),
          h("dt", {}, "version"), h("dd", {}, num(kv.version)),
          h("dt", {}, "expires"), h("dd", { id: "key-ttl" }, kv.expire_time ? [countdown(kv.expire_time), ` (at ${fmtTime(kv.expire_time)})`] : "never")),
        h("pre", { class: "json", id: "key-value" }, pretty(doc(kv.value))),
        h("div", { class: "toolbar", style: "margin-top:10px" },
          h("button", { class: "danger", id: "key-delete", onclick: () => deleteKey(revision) }, "Delete…")));
      tickCountdowns();
    } catch (error) {
      fill(detailBox, error.code === "NOT_FOUND"
        ? h("div", { class: "notice", "data-code": "NOT_FOUND" }, `The key ${selected} does not exist (never written, deleted or expired).`)
        : errorBox(error));
    }
  });

  async function deleteKey(revision) {
    const answer = await confirmAction(`Delete ${selected}?`, `The key is deleted only if it is still at revision ${revision}, the one shown.`);
    if (!answer) return;
    try {
      await api("StateService", "Delete", { key: selected, expected_revision: revision });
      fill(actionBox, h("div", { class: "notice", id: "action-done" }, `Deleted ${selected} (it was at revision ${revision}).`));
    } catch (error) {
      fill(actionBox, errorBox(error));
    }
    loadDetail();
  }

  function addTail(event) {
    const type = short(event.type);
    const key = event.kv.key;
    tailBody.prepend(h("tr", { "data-key": key, "data-type": type, "data-revision": num(event.kv.mod_revision) },
      h("td", { class: "mono" }, num(event.kv.mod_revision)), h("td", {}, fmtTime(new Date())),
      h("td", {}, badge(type)), h("td", { class: "mono" }, key)));
    while (tailBody.children.length > 200) tailBody.lastChild.remove();
  }

  (async () => {
    await Promise.all([loadList(), loadDetail()]);
    const revision = listBox.dataset.revision ? Number(listBox.dataset.revision) : null;
    scope.watch("StateService", "Watch", { pattern }, revision, {
      message: (response) => {
        const events = response.events || [];
        events.forEach(addTail);
        // A stream that (re)connects after the first reads failed reads them again.
        const failed = listBox.querySelector(".error") || detailBox.querySelector(".error");
        if (events.length || failed) loadList();
        if (events.some((event) => event.kv.key === selected) || failed) loadDetail();
      },
    });
  })();
}

// The top of a view that follows the ids in its URL (so it can be bookmarked): its title, a
// field for the ids and the grid of cards; null while no id is given.
function followedIds(root, query, view, title, noun, field) {
  const ids = idList(query.get("ids"));
  root.append(h("h2", {}, title),
    searchForm(field, ids.join(", "), `${noun} ids, comma-separated`, "Show", (value) => go(view, { ids: value })));
  if (!ids.length) {
    root.append(h("div", { class: "empty" }, `Enter the ids of the ${noun}s to follow (the URL keeps them).`));
    return null;
  }
  const cards = h("div", { class: "cards" });
  root.append(cards);
  return { ids, cards };
}

// One card of such a view, titled with its id.
function idCard(cards, attribute, id, ...children) {
  cards.append(h("section", { class: "panel", [attribute]: id }, h("h3", {}, h("span", { class: "mono" }, id)), children));
}

// ---- Agents ---------------------------------------------------------------------------------

function agentsView(root, query) {
  const followed = followedIds(root, query, "agents", "Agents", "agent", "agent-ids");
  if (!followed) return;
  for (const id of followed.ids) {
    const recoveryBox = h("div", {}), checkpointsBox = h("div", {}), snapshotsBox = h("div", {});
    idCard(followed.cards, "data-agent", id, h("h4", {}, "Recovery"), recoveryBox,
      h("h4", {}, "Checkpoints (newest first)"), checkpointsBox, h("h4", {}, "Snapshots (newest first)"), snapshotsBox);
    const load = scope.refresher(async () => {
      const [recovery, checkpoints, snapshots] = await Promise.allSettled([
        api("AgentService", "GetRecoveryStatus", { agent_id: id }),
        api("AgentService", "ListCheckpoints", { agent_id: id, page_size: 20 }),
        api("AgentService", "ListSnapshots", { agent_id: id, page_size: 20 }),
      ]);
      if (recovery.status === "fulfilled") {
        const status = recovery.value.status || {};
        fill(recoveryBox, h("dl", { class: "kv" },
          h("dt", {}, "attempts since success"), h("dd", { "data-field": "attempts" }, num(status.attempts)),
          h("dt", {}, "recoveries"), h("dd", { "data-field": "recoveries" }, num(status.recoveries)),
          h("dt", {}, "last attempt"), h("dd", {}, fmtTime(status.last_attempt_time)),
          h("dt", {}, "last success"), h("dd", {}, fmtTime(status.last_success_time)),
          h("dt", {}, "from checkpoint"), h("dd", {}, status.last_checkpoint_id || "—")));
      } else fill(recoveryBox, errorBox(recovery.reason));
      if (checkpoints.status === "fulfilled") {
        fill(checkpointsBox, table(["checkpoint", "step", "recoverable", "saved", "state"],
          (checkpoints.value.checkpoints || []).map((c) => h("tr", { "data-checkpoint": c.checkpoint_id },
            h("td", { class: "mono" }, c.checkpoint_id), h("td", {}, num(c.step)),
            h("td", {}, c.recoverable ? "yes" : "no"), h("td", {}, fmtTime(c.timestamp)),
            h("td", { class: "mono" }, JSON.stringify(doc(c.state)).slice(0, 80)))), "no checkpoints"));
      } else fill(checkpointsBox, errorBox(checkpoints.reason));
      if (snapshots.status === "fulfilled") {
        fill(snapshotsBox, table(["snapshot", "saved", "memory"],
          (snapshots.value.snapshots || []).map((s) => h("tr", { "data-snapshot": s.snapshot_id },
            h("td", { class: "mono" }, s.snapshot_id), h("td", {}, fmtTime(s.timestamp)),
            h("td", { class: "mono" }, JSON.stringify(doc(s.memory_state)).slice(0, 80)))), "no snapshots"));
      } else fill(snapshotsBox, errorBox(snapshots.reason));
    });
    load();
    scope.watch("AgentService", "WatchCheckpoints", { agent_id: id }, null, { message: load });
    scope.every(3000, load); // snapshots and recovery attempts have no watch
  }
}

// ---- Workflows ------------------------------------------------------------------------------

const WORKFLOW_STATUSES = ["PENDING", "RUNNING", "PAUSED", "COMPLETED", "FAILED", "CANCELLED"];

function workflowsView(root, query) {
  if (query.get("id")) return workflowView(root, query.get("id"));
  const status = query.get("status") || "";
  const tabs = h("div", { class: "tabs", id: "workflow-tabs" });
  const listBox = h("div", { id: "workflow-list" });
  root.append(h("h2", {}, "Workflows"),
    searchForm("workflow-id", "", "open a workflow by id", "Open", (value) => value && go("workflows", { id: value })),
    tabs, h("section", { class: "panel" }, listBox));
  const load = scope.refresher(async () => {
    try {
      const result = await api("WorkflowService", "ListWorkflows", { page_size: 1000 });
      const all = result.workflows || [];
      const counts = Object.fromEntries(WORKFLOW_STATUSES.map((name) => [name, 0]));
      all.forEach((wf) => { counts[short(wf.status)] = (counts[short(wf.status)] || 0) + 1; });
      const more = result.next_page_token ? "+" : "";
      fill(tabs, 
        h("a", { href: "#/workflows", class: status ? "" : "active", "data-status": "ALL" }, "All", h("span", { class: "count" }, all.length + more)),
        WORKFLOW_STATUSES.map((name) => h("a", { href: `#/workflows?status=${name}`, class: status === name ? "active" : "", "data-status": name },
          name.toLowerCase(), h("span", { class: "count", "data-count": name }, counts[name]))));
      const shown = all.filter((wf) => !status || short(wf.status) === status)
        .sort((a, b) => String(b.update_time || "").localeCompare(String(a.update_time || "")));
      fill(listBox, table(["workflow", "status", "progress", "updated"],
        shown.map((wf) => h("tr", { class: "clickable", "data-workflow": wf.workflow_id, onclick: () => go("workflows", { id: wf.workflow_id }) },
          h("td", { class: "mono" }, wf.workflow_id), h("td", {}, badge(wf.status)),
          h("td", {}, bar(num(wf.current_step), num(wf.total_steps))), h("td", {}, fmtTime(wf.update_time)))),
        status ? `no ${status.toLowerCase()} workflow` : "no workflow yet"));
    } catch (error) {
      fill(listBox, errorBox(error));
    }
  });
  load();
  scope.every(2000, load); // there is no watch over the list of workflows
}

// How many steps of a workflow's history the page reads at a time (ListWorkflowSteps pages).
const STEP_PAGE = 200;

function workflowView(root, id) {
  const headBox = h("div", { id: "workflow-head" });
  const actionBox = h("div", { id: "workflow-action" });
  const stepsBox = h("div", { id: "workflow-steps", class: "timeline" });
  const checkpointsBox = h("div", { id: "workflow-checkpoints" });
  root.append(h("h2", {}, h("a", { href: "#/workflows" }, "Workflows"), " / ", h("span", { class: "mono" }, id)),
    h("section", { class: "panel" }, headBox, actionBox),
    h("section", { class: "panel" }, h("h3", {}, "Steps"), stepsBox),
    h("section", { class: "panel" }, h("h3", {}, "Checkpoints and resumes"), checkpointsBox));
  let shown = null;
  // The newest steps are shown a page at a time ("Show older steps" adds a page), so a
  // workflow with a long history costs one bounded read per refresh.
  let stepsWanted = STEP_PAGE;

  async function newestSteps() {
    const steps = [];
    let token = "";
    do {
      const page = await api("WorkflowService", "ListWorkflowSteps",
        { workflow_id: id, page_size: Math.min(STEP_PAGE, stepsWanted - steps.length), page_token: token });
      steps.push(...(page.steps || []));
      token = page.next_page_token || "";
    } while (token && steps.length < stepsWanted);
    return { steps, more: Boolean(token) };
  }

  async function act(method, verb) {
    const revision = shown.revision;
    const answer = await confirmAction(`${verb} workflow ${id}?`,
      `It is ${short(shown.status)} at revision ${revision}. The change is made only if the workflow is still at that revision.`,
      method === "CancelWorkflow");
    if (!answer) return;
    const body = { workflow_id: id, expected_revision: revision };
    if (method === "CancelWorkflow") body.reason = answer.reason;
    try {
      const result = await api("WorkflowService", method, body);
      fill(actionBox, h("div", { class: "notice", id: "action-done" }, `${verb}: the workflow is now ${short(result.status)}.`));
    } catch (error) {
      fill(actionBox, errorBox(error));
    }
    load();
  }

  const load = scope.refresher(async () => {
    let wf, history;
    try {
      wf = (await api("WorkflowService", "GetWorkflow", { workflow_id: id })).workflow;
      history = await newestSteps();
    } catch (error) {
      fill(headBox, errorBox(error));
      return;
    }
    shown = { revision: num(wf.revision), status: wf.status };
    const status = short(wf.status);
    fill(headBox, 
      h("div", { class: "toolbar" }, badge(wf.status),
        h("span", { class: "hint", id: "workflow-revision", "data-revision": num(wf.revision) }, `revision ${num(wf.revision)} · updated ${fmtTime(wf.update_time)}`)),
      bar(num(wf.current_step), num(wf.total_steps), 0, `step ${num(wf.current_step)} of ${num(wf.total_steps)}`),
      wf.cancel_reason ? h("div", { class: "notice", id: "workflow-cancel-reason" }, `Cancelled: ${wf.cancel_reason}`) : null,
      wf.error ? h("div", { class: "error", id: "workflow-error" }, `Failed: ${wf.error}`) : null,
      h("div", { class: "toolbar", style: "margin-top:12px" },
        h("button", { id: "workflow-pause", disabled: status !== "RUNNING", onclick: () => act("PauseWorkflow", "Pause") }, "Pause…"),
        h("button", { id: "workflow-resume", disabled: status !== "PAUSED", onclick: () => act("ResumeWorkflow", "Resume") }, "Resume…"),
        h("button", { id: "workflow-cancel", class: "danger", disabled: !["PENDING", "RUNNING", "PAUSED"].includes(status), onclick: () => act("CancelWorkflow", "Cancel") }, "Cancel…")));
    const steps = history.steps.slice().sort((a, b) => num(a.sequence) - num(b.sequence));
    const longest = Math.max(1, ...steps.map((s) => num(s.duration_ms)));
    fill(stepsBox, table(["#", "step", "status", "duration", "at", "timeline"],
      steps.map((s) => h("tr", { class: s.superseded ? "superseded" : "", "data-step": num(s.step_number), "data-status": short(s.status) },
        h("td", {}, num(s.step_number)), h("td", {}, s.name || "", s.error ? h("div", { class: "hint" }, s.error) : null),
        h("td", {}, badge(s.status)), h("td", {}, fmtDuration(num(s.duration_ms) / 1000)), h("td", {}, fmtTime(s.timestamp)),
        h("td", { style: "width:30%" }, h("div", { class: "track" },
          h("span", { class: `s-${short(s.status)}`, style: `width:${Math.max(2, (100 * num(s.duration_ms)) / longest).toFixed(1)}%` }))))),
      "no step recorded yet"),
      history.more ? h("button", { id: "workflow-older-steps", onclick: () => { stepsWanted += STEP_PAGE; load(); } },
        `Show older steps (the newest ${steps.length} are shown)`) : null);
    let checkpoints = [];
    try {
      checkpoints = (await api("WorkflowService", "ListWorkflowCheckpoints", { workflow_id: id, page_size: 50 })).checkpoints || [];
    } catch (error) {
      fill(checkpointsBox, errorBox(error));
      return;
    }
    fill(checkpointsBox, 
      table(["checkpoint", "step", "kind", "taken"], checkpoints.map((c) => h("tr", { "data-checkpoint": c.checkpoint_id },
        h("td", { class: "mono" }, c.checkpoint_id), h("td", {}, num(c.step)), h("td", {}, c.automatic ? "automatic" : "manual"),
        h("td", {}, fmtTime(c.timestamp)))), "no checkpoints"),
      (wf.resumes || []).length ? h("h4", {}, "Resumes") : null,
      (wf.resumes || []).map((r) => h("div", { class: "hint" }, `${fmtTime(r.timestamp)}: resumed from ${r.checkpoint_id} at step ${num(r.step)}`)));
  });

  (async () => {
    await load();
    scope.watch("WorkflowService", "WatchWorkflow", { workflow_id: id }, shown ? shown.revision : null, {
      message: load,
      failure: (failure) => failure.fatal && fill(actionBox, errorBox(failure)),
    });
  })();
}

// ---- Teams ----------------------------------------------------------------------------------

function teamsView(root, query) {
  const id = query.get("id");
  root.append(h("h2", {}, "Teams"), searchForm("team-id", id, "team id", "Show", (value) => go("teams", { id: value })));
  if (!id) {
    root.append(h("div", { class: "empty" }, "Enter a team id to see its agents and task queue."));
    return;
  }
  const agentsBox = h("div", { id: "team-agents" });
  const queueBox = h("div", { id: "team-queue" });
  root.append(h("section", { class: "panel" }, h("h3", {}, "Agents of ", h("span", { class: "mono" }, id)), agentsBox),
    h("section", { class: "panel" }, h("h3", {}, "Task queue"), queueBox));

  const taskCard = (task, extra) => h("div", { class: "task", "data-task": task.task_id },
    h("div", {}, h("span", { class: "id" }, task.task_id), " ", h("span", { class: "chip" }, task.priority_name || `p${num(task.priority)}`)),
    h("div", { class: "hint" }, task.type || ""), extra);

  const actionBox = h("div", { id: "team-action" });
  queueBox.before(actionBox);

  async function requeue(task) {
    const answer = await confirmAction(`Requeue task ${task.task_id}?`,
      `It goes back to the head of the pending queue with its ${num(task.failure_count)} failures cleared, if it is still dead-lettered.`);
    if (!answer) return;
    try {
      await api("OrchestrationService", "RequeueTask", { team_id: id, task_id: task.task_id });
      fill(actionBox, h("div", { class: "notice", id: "action-done" }, `Requeued ${task.task_id}.`));
    } catch (error) {
      fill(actionBox, errorBox(error));
    }
    load();
  }

  const load = scope.refresher(async () => {
    let team, queue;
    try {
      [team, queue] = await Promise.all([
        api("OrchestrationService", "GetTeam", { team_id: id }).then((result) => result.team),
        api("OrchestrationService", "GetQueueStatus", { team_id: id }).then((result) => result.queue || {}),
      ]);
    } catch (error) {
      fill(agentsBox, errorBox(error));
      fill(queueBox, );
      return;
    }
    const agents = Object.values(team.agents || {}).sort((a, b) => a.agent_id.localeCompare(b.agent_id));
    fill(agentsBox, table(["agent", "status", "capabilities", "current task", "updated"],
      agents.map((a) => h("tr", { "data-agent": a.agent_id },
        h("td", { class: "mono" }, a.agent_id), h("td", {}, badge(a.status)),
        h("td", {}, (a.capabilities || []).map((c) => h("span", { class: "chip" }, c))),
        h("td", { class: "mono" }, a.current_task || "—"), h("td", {}, fmtTime(a.update_time)))), "no agents"));
    const counts = team.queue_counts || {};
    const column = (title, name, tasks, extra) => h("div", { "data-queue": name },
      h("h4", {}, `${title} (${num(counts[name])})`),
      tasks.length ? tasks.map((task) => taskCard(task, extra(task))) : h("div", { class: "empty" }, "none"));
    fill(queueBox, h("div", { class: "columns" },
      column("Pending", "pending", queue.pending || [], (t) => h("div", { class: "hint" }, `queued ${fmtTime(t.enqueue_time)}`)),
      column("In progress", "in_progress", queue.in_progress || [], (t) => h("div", { class: "hint" },
        `${t.agent_id} · lease `, t.lease_expire_time ? countdown(t.lease_expire_time, "expired (requeue due)") : "—")),
      column("Completed", "completed", queue.completed || [], (t) => h("div", { class: "hint" }, `${t.agent_id || ""} · ${fmtTime(t.finish_time)}`)),
      column("Dead letters", "dead_lettered", queue.dead_lettered || [], (t) => [
        h("div", { class: "hint" }, `${num(t.failure_count)} failures · ${t.last_error || ""}`),
        h("button", { class: "secondary requeue", "data-requeue": t.task_id, onclick: () => requeue(t) }, "Requeue…")])));
    tickCountdowns();
  });
  load();
  scope.watch("OrchestrationService", "WatchTeam", { team_id: id }, null, {
    message: load,
    failure: (failure) => failure.fatal && fill(agentsBox, errorBox(failure)),
  });
}

// ---- Knowledge ------------------------------------------------------------------------------

function knowledgeView(root, query) {
  const followed = followedIds(root, query, "knowledge", "Knowledge", "knowledge base", "kb-ids");
  if (!followed) return;
  for (const id of followed.ids) {
    const box = h("div", {});
    idCard(followed.cards, "data-kb", id, box);
    const load = scope.refresher(async () => {
      const [state, progress, sources] = await Promise.allSettled([
        api("KnowledgeService", "GetKnowledgeBaseState", { knowledge_base_id: id }),
        api("KnowledgeService", "GetIndexingProgress", { knowledge_base_id: id }),
        api("KnowledgeService", "ListSources", { knowledge_base_id: id, page_size: 200 }),
      ]);
      const parts = [];
      if (progress.status === "fulfilled" && progress.value.progress) {
        const p = progress.value.progress;
        parts.push(h("div", { class: "toolbar" }, badge(p.status), h("span", { class: "hint" }, `updated ${fmtTime(p.update_time)}`)),
          h("div", { "data-field": "indexing" }, bar(num(p.processed_documents), num(p.total_documents), num(p.failed_documents))),
          p.error_message ? h("div", { class: "error" }, p.error_message) : null);
      } else if (progress.status === "rejected" && progress.reason.code !== "NOT_FOUND") parts.push(errorBox(progress.reason));
      else parts.push(h("div", { class: "empty" }, "no indexing progress reported"));
      if (state.status === "fulfilled" && state.value.state) {
        const s = state.value.state;
        parts.push(h("div", { class: "stats" },
          [["documents", num(s.total_documents)], ["embeddings", num(s.total_embeddings)], ["sources", num(s.source_count)],
            ["storage", `${num(s.storage_size_mb).toFixed(1)} MB`]].map(([name, value]) => h("div", { class: "stat" }, h("b", {}, value), h("small", {}, name)))));
      }
      if (sources.status === "fulfilled") {
        parts.push(table(["source", "status", "synced", "last sync"], (sources.value.sources || []).map((s) => h("tr", { "data-source": s.source_id },
          h("td", { class: "mono" }, s.source_id), h("td", {}, badge(s.sync_status)),
          h("td", {}, bar(num(s.documents_synced), num(s.documents_synced) + num(s.documents_pending))),
          h("td", {}, fmtTime(s.last_sync_time)))), "no sources"));
      } else parts.push(errorBox(sources.reason));
      fill(box, ...parts);
    });
    load();
    scope.every(2000, load); // knowledge bases have no watch
  }
}

// ---- Tools ----------------------------------------------------------------------------------

function durationChart(executions) {
  const recent = executions.slice(0, 30).reverse();
  const width = 360, height = 70, gap = 2;
  const longest = Math.max(0.001, ...recent.map((e) => seconds(e.duration)));
  const step = Math.min(24, width / Math.max(recent.length, 1));
  const color = { COMPLETED: "#1f9d55", FAILED: "#d23a3a", TIMEOUT: "#c98a04", CANCELLED: "#8a93a6" };
  return svg("svg", { class: "chart", width, height: height + 14, viewBox: `0 0 ${width} ${height + 14}`, role: "img" },
    svg("title", {}, document.createTextNode("duration of the recent executions, oldest left")),
    svg("line", { x1: 0, y1: height, x2: width, y2: height, stroke: "#c9ced8" }),
    recent.map((e, i) => {
      const barHeight = Math.max(2, (height - 4) * (seconds(e.duration) / longest));
      return svg("rect", { x: i * step + gap / 2, y: height - barHeight, width: Math.max(1, step - gap), height: barHeight,
        rx: 2, fill: color[short(e.status)] || "#3056d3", "data-status": short(e.status) },
      svg("title", {}, document.createTextNode(`${e.execution_id}: ${short(e.status)}, ${fmtDuration(seconds(e.duration))}`)));
    }),
    svg("text", { x: 0, y: height + 12, "font-size": 10, fill: "#6b7385" }, document.createTextNode(`longest ${fmtDuration(longest)}`)));
}

function toolsView(root, query) {
  const names = idList(query.get("names"));
  const retriesBox = h("div", { id: "tool-retries" });
  const cards = h("div", { class: "cards" });
  root.append(h("h2", {}, "Tools"),
    searchForm("tool-names", names.join(", "), "tool names, comma-separated", "Show", (value) => go("tools", { names: value })),
    cards, h("section", { class: "panel" }, h("h3", {}, "Pending retries"), retriesBox));
  const shownTools = new Map();

  function toolCard(name) {
    if (shownTools.has(name)) return shownTools.get(name);
    const box = h("div", {});
    cards.append(h("section", { class: "panel", "data-tool": name }, h("h3", {}, h("span", { class: "mono" }, name)), box));
    const load = scope.refresher(async () => {
      const [stats, history] = await Promise.allSettled([
        api("ToolService", "GetToolStats", { tool_name: name }),
        api("ToolService", "GetExecutionHistory", { tool_name: name, page_size: 30 }),
      ]);
      const parts = [];
      if (stats.status === "fulfilled") {
        const s = stats.value.stats || {};
        parts.push(h("div", { class: "stats" },
          [["success rate", pct(s.success_rate || 0), "success_rate"], ["avg duration", fmtDuration(seconds(s.average_duration)), "average_duration"],
            ["cache hit rate", pct(s.cache_hit_rate || 0), "cache_hit_rate"], ["executions", num(s.total_executions), "total"]]
            .map(([label, value, field]) => h("div", { class: "stat", "data-field": field }, h("b", {}, value), h("small", {}, label)))));
      } else parts.push(errorBox(stats.reason));
      if (history.status === "fulfilled") {
        const executions = history.value.executions || [];
        if (executions.length) parts.push(durationChart(executions));
        parts.push(table(["execution", "status", "duration", "started"], executions.slice(0, 10).map((e) => h("tr", { "data-execution": e.execution_id },
          h("td", { class: "mono" }, e.execution_id), h("td", {}, badge(e.status), e.error ? h("div", { class: "hint" }, e.error) : null),
          h("td", {}, e.duration ? fmtDuration(seconds(e.duration)) : "—"), h("td", {}, fmtTime(e.started_at)))), "no executions"));
      } else parts.push(errorBox(history.reason));
      fill(box, ...parts);
    });
    shownTools.set(name, load);
    load();
    return load;
  }

  const loadRetries = scope.refresher(async () => {
    try {
      const retries = (await api("ToolService", "GetPendingRetries", { page_size: 100 })).retries || [];
      fill(retriesBox, table(["execution", "tool", "attempts", "next retry", "last error"], retries.map((r) => h("tr", { "data-retry": r.execution_id },
        h("td", { class: "mono" }, r.execution_id), h("td", { class: "mono" }, r.tool_name),
        h("td", {}, `${num(r.attempts)} / ${num(r.max_attempts)}`), h("td", {}, r.next_retry_at ? countdown(r.next_retry_at, "due") : "—"),
        h("td", {}, r.last_error || ""))), "no retry pending"));
      retries.forEach((r) => toolCard(r.tool_name));
      tickCountdowns();
    } catch (error) {
      fill(retriesBox, errorBox(error));
    }
  });
  names.forEach(toolCard);
  loadRetries();
  scope.every(2000, () => { loadRetries(); shownTools.forEach((load) => load()); }); // tools have no watch
}

// ---- Speech ---------------------------------------------------------------------------------

function speechView(root, query) {
  const followed = followedIds(root, query, "speech", "Speech", "session", "session-ids");
  if (!followed) return;
  for (const id of followed.ids) {
    const box = h("div", {});
    idCard(followed.cards, "data-session", id, box);
    let lastSequence = null;
    const load = scope.refresher(async () => {
      let session;
      try {
        session = (await api("SpeechService", "GetSession", { session_id: id })).session;
      } catch (error) {
        fill(box, errorBox(error));
        return;
      }
      lastSequence = num(session.last_sequence);
      const stt = session.stt_state || {};
      const tts = session.tts_state || {};
      const conversation = session.conversation_state || {};
      fill(box, 
        h("div", { class: "toolbar" }, badge(session.status), h("span", { class: "chip" }, session.session_type || "session"),
          h("span", { class: "chip" }, short(session.streaming_mode)),
          h("span", { class: "hint" }, `${num(conversation.turn_count)} turns · event ${lastSequence}`)),
        session.end_reason ? h("div", { class: "notice" }, `Ended: ${session.end_reason}`) : null,
        h("h4", {}, "Speech to text ", badge(stt.status)),
        h("div", { class: "transcript", "data-field": "transcript" },
          h("span", { class: "final" }, stt.final_transcript || ""), stt.final_transcript && stt.interim_transcript ? " " : "",
          h("span", { class: "interim", "data-field": "interim" }, stt.interim_transcript || "")),
        bar(Math.round(100 * (stt.transcription_progress || 0)), 100, 0, `transcribed ${pct(stt.transcription_progress || 0)} · confidence ${pct(stt.confidence || 0)}`),
        h("h4", {}, "Text to speech ", tts.is_speaking ? h("span", { class: "badge badge-ACTIVE" }, "SPEAKING") : h("span", { class: "badge" }, "QUIET")),
        tts.current_text ? h("div", { class: "transcript", "data-field": "speaking" }, tts.current_text) : null,
        (tts.text_queue || []).length
          ? h("ol", { class: "queue", "data-field": "tts-queue" }, tts.text_queue.map((text) => h("li", {}, text)))
          : h("div", { class: "empty" }, "TTS queue empty"));
    });
    (async () => {
      await load();
      scope.watch("SpeechService", "WatchSession", { session_id: id }, lastSequence, { message: load });
    })();
  }
}

// ---- Server ---------------------------------------------------------------------------------

function serverView(root) {
  const statsBox = h("div", { id: "server-stats" });
  const infoBox = h("div", { id: "server-info" });
  root.append(h("h2", {}, "Server"), h("div", { class: "cards" },
    h("section", { class: "panel" }, h("h3", {}, "Store"), statsBox),
    h("section", { class: "panel" }, h("h3", {}, "Connection"), infoBox)));
  const load = scope.refresher(async () => {
    try {
      const stats = await api("StateService", "GetStats", {});
      fill(statsBox, h("div", { class: "stats" },
        [["backend", stats.backend, "backend"], ["store revision", num(stats.revision), "revision"], ["keys", num(stats.keys), "keys"],
          ["stored", `${(num(stats.bytes) / 1024).toFixed(1)} KiB`, "bytes"], ["oldest watchable", num(stats.oldest_revision), "oldest_revision"]]
          .map(([label, value, field]) => h("div", { class: "stat", "data-field": field }, h("b", {}, value), h("small", {}, label)))));
    } catch (error) {
      fill(statsBox, errorBox(error));
    }
  });
  (async () => {
    const info = await (await fetch("/api/info")).json();
    fill(infoBox, h("dl", { class: "kv" },
      h("dt", {}, "health"), h("dd", {}, healthPill.dataset.status),
      h("dt", {}, "address"), h("dd", {}, info.address),
      h("dt", {}, "TLS"), h("dd", {}, info.tls ? "yes" : "no"),
      h("dt", {}, "namespace"), h("dd", {}, info.namespace || "(the token's first)"),
      h("dt", {}, "token"), h("dd", {}, info.token ? "sent" : "none"),
      h("dt", {}, "metrics"), h("dd", {}, info.metrics_url ? h("a", { href: info.metrics_url, id: "metrics-link" }, info.metrics_url) : "not configured (--metrics-url)")));
  })().catch((error) => fill(infoBox, errorBox(new ApiError({ message: String(error) }))));
  load();
  scope.watch("StateService", "Watch", { pattern: "*" }, null, { message: load });
  scope.every(5000, load); // manager records change the figures without a user-key event
}

// ---- routing --------------------------------------------------------------------------------

const VIEWS = { keys: keysView, agents: agentsView, workflows: workflowsView, teams: teamsView,
  knowledge: knowledgeView, tools: toolsView, speech: speechView, server: serverView };

function route() {
  scope.close();
  scope = new Scope();
  const [path, search] = location.hash.replace(/^#\/?/, "").split("?");
  const name = VIEWS[path] ? path : "keys";
  for (const link of document.querySelectorAll("#nav a")) link.classList.toggle("active", link.dataset.view === name);
  const root = document.getElementById("view");
  fill(root, );
  root.dataset.view = name;
  try {
    VIEWS[name](root, new URLSearchParams(search || ""));
  } catch (error) {
    root.append(errorBox(new ApiError({ message: `This view failed to render: ${error}` })));
  }
}

window.addEventListener("hashchange", route);

// The server's health, followed for as long as the page is open: it drives the banner.
function followHealth() {
  const healthScope = new Scope();
  healthScope.watch("Health", "Watch", {}, null, { message: (response) => showHealth(short(response.status)) });
}

(async () => {
  try {
    const info = await (await fetch("/api/info")).json();
    document.getElementById("connection").textContent =
      `${info.address}${info.tls ? " · TLS" : ""}${info.namespace ? ` · namespace ${info.namespace}` : ""}`;
  } catch (error) {
    showDown("The console itself is unreachable.");
  }
  followHealth();
  route();
})();
