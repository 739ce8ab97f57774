// A run's trace as a timeline: one item per step from the run's event stream
// (retrieval hits, model calls with tokens and timings, tool calls with their
// arguments and results, validation, approvals) and per audit record (policy
// decisions with their rule ids). Started steps show as pending until their
// completion arrives. All values are shown as text.
import { el, fmtDuration, fmtTime } from "./api.js";

function pretty(v) {
  if (v === undefined || v === null) return "";
  return typeof v === "string" ? v : JSON.stringify(v, null, 2);
}

function chips(pairs) {
  return el("span", { class: "chips" },
    pairs.filter(([, v]) => v !== undefined && v !== null && v !== "")
      .map(([k, v]) => el("span", { class: "chip" }, k + " " + v)));
}

function block(label, value) {
  if (value === undefined || value === null || value === "") return null;
  return el("div", { class: "block" }, el("div", { class: "label" }, label), el("pre", {}, pretty(value)));
}

const SKIP = new Set(["kind", "type", "id", "index", "sequence_number", "run_id"]);

function stepBody(d) {
  switch (d.kind) {
    case "retrieval":
      return [
        chips([["passages", (d.chunk_ids || []).length], ["took", fmtDuration(d.duration_ms)]]),
        block("query", d.query),
        block("chunk ids", (d.chunk_ids || []).join(", ")),
      ];
    case "model_call":
      return [
        chips([["step", d.step], ["prompt tokens", d.prompt_tokens], ["completion tokens", d.completion_tokens],
          ["took", fmtDuration(d.duration_ms)]]),
        block("reasoning", d.reasoning),
        block("output", d.output),
        block("tool calls", d.tool_calls),
      ];
    case "tool_call":
      return [
        chips([["tool", d.tool], ["took", fmtDuration(d.duration_ms)]]),
        block("arguments", d.arguments),
        block("result", d.result),
      ];
    case "validation":
      return [chips([["ok", d.ok ? "yes" : "no"]]), d.problems && d.problems.length ? block("problems", d.problems) : null];
    default: {
      const rest = Object.fromEntries(Object.entries(d).filter(([k]) => !SKIP.has(k)));
      return [block("details", rest)];
    }
  }
}

function item(cls, title, body, seq) {
  return el("li", { class: "step " + cls, dataset: seq ? { seq: String(seq) } : undefined },
    el("div", { class: "step-head" }, el("span", { class: "step-title" }, title),
      seq ? el("span", { class: "seq" }, "#" + seq) : null),
    el("div", { class: "step-body" }, body));
}

// Keeps the pending (started) item of each step kind so its completion replaces it.
export class Timeline {
  constructor(list) {
    this.list = list;
    this.pending = new Map();
    this.answer = "";
  }

  add(name, d) {
    const seq = d.sequence_number;
    // Agent runs name a step by kind; workflow runs by type and the step's id.
    const kind = d.kind || d.type || "step";
    const label = kind.replace(/_/g, " ") + (d.tool ? ": " + d.tool : "") + (d.type && d.id ? " " + d.id : "");
    const key = kind + "/" + (d.id || "");
    switch (name) {
      case "run.created":
        return this.list.append(item("created", "Run created (" + (d.kind || "agent") + ")", [], seq));
      case "run.step.started": {
        const li = item("pending " + kind, label + " started", d.arguments ? [block("arguments", d.arguments)] : [], seq);
        this.pending.set(key, li);
        return this.list.append(li);
      }
      case "run.step.completed": {
        const li = item("done " + kind, label, stepBody(d), seq);
        const p = this.pending.get(key);
        this.pending.delete(key);
        return p ? p.replaceWith(li) : this.list.append(li);
      }
      case "run.answer.delta":
        this.answer += d.text || "";
        return null;
      case "run.waiting_approval":
        return this.list.append(item("approval-request", "Waiting for approval", [block("request", strip(d))], seq));
      case "run.approved":
      case "run.rejected":
        return this.list.append(item("approval-decision " + name.slice(4), name === "run.approved" ? "Approved" : "Rejected",
          [block("decision", strip(d))], seq));
      case "run.completed":
        return this.list.append(item("completed " + (d.status || ""), "Run " + (d.status || "ended"),
          [chips([["tokens", d.usage && d.usage.tokens], ["tool calls", d.usage && d.usage.tool_calls],
            ["steps", d.usage && d.usage.steps]]), d.error ? block("error", d.error) : null], seq));
      default:
        return this.list.append(item("other", name, [block("data", strip(d))], seq));
    }
  }
}

function strip(d) {
  return Object.fromEntries(Object.entries(d).filter(([k]) => !SKIP.has(k)));
}

// An audit record (policy decision, approval, request) as a timeline item.
export function auditItem(r) {
  const d = r.data || {};
  const title = r.kind + (d.rule ? " · rule " + d.rule : "") + (d.action ? " · " + d.action : "") +
    (d.decision ? " · " + d.decision : "");
  return item("audit " + r.kind, title,
    [chips([["at", fmtTime(r.time || r.time_ms)], ["user", r.user], ["check", d.check]]),
      d.reason ? block("reason", d.reason) : null, block("record", d)], r.seq);
}
