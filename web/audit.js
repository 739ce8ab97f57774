// The Audit page (records with filters, chain verification, export as JSON
// lines) and the Memory page (the user's saved model state: size, reset).
import { api, $, clear, el, fmtTime, guarded, toast } from "./api.js";

let next = null;
let generation = 0; // a newer load makes the replies of older ones stale

export function initAudit() {
  $("audit-filter").addEventListener("submit", (e) => {
    e.preventDefault();
    guarded(() => loadAudit(false))();
  });
  $("audit-more").addEventListener("click", guarded(() => loadAudit(true)));
  $("audit-verify-btn").addEventListener("click", guarded(verify));
  $("audit-export").addEventListener("click", guarded(exportAll));
  $("memory-reset").addEventListener("click", guarded(resetMemory));
}

function filters() {
  const q = new URLSearchParams();
  const set = (k, id) => $(id).value.trim() && q.set(k, $(id).value.trim());
  set("user", "audit-user");
  set("run", "audit-run");
  set("kind", "audit-kind");
  set("from", "audit-from");
  set("to", "audit-to");
  return q;
}

export async function showAudit() {
  await loadAudit(false);
}

async function loadAudit(more) {
  const q = filters();
  q.set("limit", "100");
  if (more && next) q.set("since", String(next));
  const mine = ++generation;
  const js = await api("GET", "/v1/audit?" + q);
  if (mine !== generation) return;
  const tbody = $("audit-table").tBodies[0];
  if (!more) clear(tbody);
  for (const r of js.records) {
    if (r.type && r.type !== "record") continue;
    tbody.append(el("tr", { dataset: { seq: String(r.seq) } },
      el("td", {}, r.seq), el("td", {}, fmtTime(r.time || r.time_ms)), el("td", {}, r.user || ""),
      el("td", {}, r.kind), el("td", {}, r.run_id || ""),
      el("td", {}, el("code", { class: "clip", title: JSON.stringify(r.data, null, 1) }, describe(r))),
      el("td", {}, el("code", { title: r.hash }, (r.hash || "").slice(0, 12)))));
  }
  next = js.next;
  $("audit-more").hidden = !next || js.records.length < 100;
}

// One line saying what a record is about; the full data is in the tooltip and the export.
export function describe(r) {
  const d = r.data || {};
  if (d.method && d.route) return `${d.method} ${d.route} → ${d.decision}${d.reason ? ": " + d.reason : ""}`;
  if (d.rule) return `rule ${d.rule}: ${d.action || ""}${d.check ? " (" + d.check + ")" : ""}${d.reason ? " — " + d.reason : ""}`;
  if (d.event) return d.event + (d.data && d.data.kind ? " " + d.data.kind : "") + (d.data && d.data.status ? " " + d.data.status : "");
  return JSON.stringify(d);
}

async function verify() {
  const b = $("audit-verify");
  b.textContent = "checking…";
  b.className = "badge";
  const js = await api("GET", "/v1/audit/verify");
  b.textContent = js.ok ? "verified: the chain is intact" : "BROKEN at record " + js.first_bad + ": " + js.reason;
  b.className = "badge " + (js.ok ? "succeeded" : "failed");
}

async function exportAll() {
  const q = filters();
  q.set("limit", "1000");
  const lines = [];
  let since = 0;
  for (;;) {
    if (since) q.set("since", String(since));
    const js = await api("GET", "/v1/audit?" + q);
    for (const r of js.records) lines.push(JSON.stringify(r));
    if (!js.next || js.records.length < 1000 || js.next === since) break;
    since = js.next;
  }
  const blob = new Blob([lines.join("\n") + "\n"], { type: "application/x-ndjson" });
  const a = el("a", { href: URL.createObjectURL(blob), download: "agentd-audit.jsonl" });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  toast("Exported " + lines.length + " records");
}

export async function showMemory() {
  const m = await api("GET", "/v1/memory");
  const dl = clear($("memory-info"));
  const add = (k, v) => dl.append(el("dt", {}, k), el("dd", {}, v === null || v === undefined ? "—" : String(v)));
  add("user", m.user);
  add("tokens remembered", m.tokens);
  add("state size", m.bytes + " bytes");
  add("stored", m.stored_bytes + " bytes");
  add("updated", m.updated ? fmtTime(m.updated) : "never");
  add("model", m.model);
}

async function resetMemory() {
  if (!confirm("Forget everything the model remembers about you?")) return;
  const r = await api("DELETE", "/v1/memory");
  $("memory-result").textContent = r.deleted ? "Memory reset." : "There was no memory to reset.";
  await showMemory();
}
