// The Runs page: the list of runs with filters, and a run's trace: summary,
// approval and cancel controls, the live timeline read from the run's event
// stream (it ends when the run does), and the audit records of the run.
import { api, streamEvents, $, clear, el, fmtTime, fmtDuration, guarded, toast } from "./api.js";
import { Timeline, auditItem } from "./timeline.js";

const STEP_KINDS = new Set(["request", "run", "retrieval", "model_call", "tool_call", "validation", "answer"]);
const TERMINAL = new Set(["succeeded", "failed", "cancelled", "rejected"]);
const STATE_EVENTS = new Set(["run.waiting_approval", "run.approved", "run.rejected", "run.completed"]);
let traceAbort = null;
let currentRun = null;
let generation = 0; // a newer list load makes the replies of older ones stale

export function initRuns() {
  $("runs-filter").addEventListener("submit", (e) => {
    e.preventDefault();
    guarded(loadRuns)();
  });
  $("trace-approve").addEventListener("click", guarded(() => decide(true)));
  $("trace-reject").addEventListener("click", guarded(() => decide(false)));
  $("trace-cancel").addEventListener("click", guarded(cancelRun));
}

export async function showRuns() {
  await loadRuns();
}

export function leaveRuns() {
  if (traceAbort) traceAbort.abort();
  traceAbort = null;
}

async function loadRuns() {
  const q = new URLSearchParams();
  if ($("runs-user").value.trim()) q.set("user", $("runs-user").value.trim());
  if ($("runs-status").value) q.set("status", $("runs-status").value);
  q.set("limit", $("runs-limit").value);
  const mine = ++generation;
  const js = await api("GET", "/v1/runs?" + q);
  if (mine !== generation) return;
  const tbody = clear($("runs-table").tBodies[0]);
  for (const r of js.runs) {
    const u = r.usage || {};
    tbody.append(el("tr", { class: "clickable", dataset: { run: r.id }, onclick: () => guarded(openRun)(r.id) },
      el("td", {}, el("code", { class: "link" }, r.id)),
      el("td", {}, el("span", { class: "badge " + r.status }, r.status)),
      el("td", {}, r.user), el("td", {}, r.kind), el("td", {}, fmtTime(r.created_at)),
      el("td", {}, fmtDuration(r.duration_ms)), el("td", {}, u.tokens ?? ""),
      el("td", {}, u.tool_calls ?? ""), el("td", {}, u.steps ?? "")));
  }
  if (!js.runs.length) tbody.append(el("tr", {}, el("td", { colspan: 9, class: "hint" }, "No runs match.")));
}

function summary(run) {
  const dl = clear($("trace-summary"));
  const add = (k, v) => {
    if (v === undefined || v === null || v === "") return;
    dl.append(el("dt", {}, k), el("dd", {}, typeof v === "string" ? v : JSON.stringify(v)));
  };
  add("user", run.user);
  add("kind", run.kind);
  add("created", fmtTime(run.created_at));
  if (run.finished_at) add("duration", fmtDuration(run.finished_at - run.created_at));
  add("input", run.input);
  add("answer", run.answer);
  add("error", run.error);
  if (run.usage) add("usage", `${run.usage.tokens} tokens, ${run.usage.tool_calls} tool calls, ${run.usage.steps} steps`);
  $("trace-status").textContent = run.status;
  $("trace-status").className = "badge " + run.status;
  const waiting = run.status === "waiting_approval";
  $("trace-approval").hidden = !waiting;
  if (waiting) {
    const what = run.pending_approval || run.approval;
    const msg = what && typeof what === "object" ? what.message || JSON.stringify(what) : what;
    $("trace-approval-text").textContent = "This run waits for approval" + (msg ? ": " + msg : ".");
  }
  $("trace-cancel").hidden = !["queued", "running", "waiting_approval"].includes(run.status);
}

async function refreshRun(id) {
  const run = await api("GET", "/v1/runs/" + encodeURIComponent(id));
  if (currentRun === id) summary(run);
  return run;
}

async function loadAudit(id) {
  let js;
  try {
    js = await api("GET", "/v1/audit?limit=1000&run=" + encodeURIComponent(id));
  } catch (e) {
    js = { error: e };
  }
  if (currentRun !== id) return; // another run was opened meanwhile
  const list = clear($("trace-audit"));
  if (js.error) {
    const e = js.error;
    list.append(el("li", { class: "hint" }, e.status === 403 ? "Audit records need the admin or auditor role." : e.message));
    return;
  }
  // Steps are already in the timeline; here go the decisions made about the run.
  const mine = js.records.filter((r) => !STEP_KINDS.has(r.kind));
  for (const r of mine) list.append(auditItem(r));
  if (!mine.length) list.append(el("li", { class: "hint" }, "No policy decisions or approvals recorded for this run."));
  list.append(el("li", { class: "hint" }, `${js.records.length} audit records name this run; the Audit page lists them all.`));
}

export async function openRun(id) {
  leaveRuns();
  currentRun = id;
  history.replaceState(null, "", "#runs/" + encodeURIComponent(id)); // no hashchange: we are here already
  $("trace").hidden = false;
  $("trace-id").textContent = id;
  const timeline = new Timeline(clear($("trace-timeline")));
  clear($("trace-audit"));
  await refreshRun(id);
  loadAudit(id);
  $("trace").scrollIntoView({ block: "start" });
  const ctl = new AbortController();
  traceAbort = ctl;
  $("trace-live").hidden = false;
  // The stream ends when the run does. If it breaks first (network, daemon
  // restart), resume after the last event seen, as Last-Event-ID allows.
  let lastId = 0;
  for (let attempt = 0; attempt < 30 && !ctl.signal.aborted; attempt++) {
    try {
      await streamEvents("GET", "/v1/runs/" + encodeURIComponent(id) + "/events", {
        signal: ctl.signal,
        lastEventId: lastId,
        onEvent: (name, data, evId) => {
          if (evId) lastId = Number(evId);
          timeline.add(name, data);
          // Re-read the run (each read is an audited request) only when its state changes.
          if (STATE_EVENTS.has(name)) {
            guarded(refreshRun)(id);
            loadAudit(id);
          }
        },
      });
    } catch (e) {
      if (e.name === "AbortError") break;
      if (e.status) {
        toast(e.message, true); // the server said no: retrying will not help
        break;
      }
    }
    if (ctl.signal.aborted) break;
    const run = await refreshRun(id).catch(() => null);
    if (run && TERMINAL.has(run.status)) break;
    await new Promise((ok) => setTimeout(ok, 1000));
  }
  if (traceAbort === ctl) {
    $("trace-live").hidden = true;
    traceAbort = null;
  }
  if (currentRun === id) {
    await refreshRun(id);
    await loadAudit(id);
  }
}

async function decide(approved) {
  await api("POST", "/v1/runs/" + encodeURIComponent(currentRun) + "/approve", { json: { approved } });
  toast(approved ? "Approved" : "Rejected");
  await refreshRun(currentRun);
}

async function cancelRun() {
  await api("POST", "/v1/runs/" + encodeURIComponent(currentRun) + "/cancel");
  toast("Cancel requested");
  await refreshRun(currentRun);
}
