// The console's talk with agentd: JSON calls with the signed-in key, the
// server-sent event streams of runs read with fetch() (EventSource cannot send
// an Authorization header, and the key must never go into a URL), and the DOM
// helper every page uses so that data is only ever inserted as text.

const KEY = "agentd.key";

export function getKey() {
  return sessionStorage.getItem(KEY);
}

export function setKey(k) {
  if (k) sessionStorage.setItem(KEY, k);
  else sessionStorage.removeItem(KEY);
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

let onUnauthorized = () => {};
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

function headers(extra) {
  const h = new Headers(extra || {});
  const k = getKey();
  if (k) h.set("Authorization", "Bearer " + k);
  return h;
}

async function failure(res) {
  let msg = res.status + " " + res.statusText;
  try {
    const js = await res.json();
    if (js && js.error && js.error.message) msg = js.error.message;
  } catch (_) {
    /* not JSON: keep the status line */
  }
  if (res.status === 401) onUnauthorized();
  return new ApiError(res.status, msg);
}

// A JSON call: api("GET", "/v1/runs") or api("POST", "/v1/collections", {json: {...}}).
// body may also be FormData (multipart upload) or a string.
export async function api(method, path, opts = {}) {
  const init = { method, headers: headers(opts.headers), signal: opts.signal };
  if (opts.json !== undefined) {
    init.headers.set("Content-Type", "application/json");
    init.body = JSON.stringify(opts.json);
  } else if (opts.body !== undefined) {
    init.body = opts.body;
  }
  const res = await fetch(path, init);
  if (!res.ok) throw await failure(res);
  const ct = res.headers.get("Content-Type") || "";
  return ct.startsWith("application/json") ? res.json() : res.text();
}

// Reads a text/event-stream response, calling onEvent(name, data, id) for
// each event, until the server ends the stream or signal aborts it.
export async function streamEvents(method, path, { json, onEvent, signal, lastEventId } = {}) {
  const h = headers({ Accept: "text/event-stream" });
  if (lastEventId) h.set("Last-Event-ID", String(lastEventId));
  const init = { method, headers: h, signal };
  if (json !== undefined) {
    h.set("Content-Type", "application/json");
    init.body = JSON.stringify(json);
  }
  const res = await fetch(path, init);
  if (!res.ok) throw await failure(res);
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value.replace(/\r\n/g, "\n");
    let cut;
    while ((cut = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      let name = "message", id = null;
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) continue; // a comment: keep-alive
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let v = colon < 0 ? "" : line.slice(colon + 1);
        if (v.startsWith(" ")) v = v.slice(1);
        if (field === "event") name = v;
        else if (field === "data") data.push(v);
        else if (field === "id") id = v;
      }
      if (!data.length) continue;
      let parsed;
      try {
        parsed = JSON.parse(data.join("\n"));
      } catch (_) {
        parsed = { text: data.join("\n") };
      }
      onEvent(name, parsed, id);
    }
  }
  return res;
}

// el("td", {class: "x", onclick: fn}, "text", child): strings become text nodes,
// never markup. Attributes are set one by one; event handlers are functions.
export function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) {
      // Handlers are functions only: a string here would be markup-like code from data.
      if (typeof v !== "function") throw new TypeError("event handler " + k + " must be a function");
      e.addEventListener(k.slice(2), v);
    }
    else if (k === "dataset") Object.assign(e.dataset, v);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  append(e, children);
  return e;
}

export function append(parent, children) {
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    parent.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return parent;
}

export function clear(node) {
  node.replaceChildren();
  return node;
}

export const $ = (id) => document.getElementById(id);

export function fmtTime(ms) {
  if (ms === null || ms === undefined || ms === "") return "";
  const d = typeof ms === "number" ? new Date(ms) : new Date(ms);
  return isNaN(d) ? String(ms) : d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

export function fmtDuration(ms) {
  if (ms === null || ms === undefined) return "";
  if (ms < 1000) return ms + " ms";
  if (ms < 60000) return (ms / 1000).toFixed(1) + " s";
  return Math.floor(ms / 60000) + " min " + Math.round((ms % 60000) / 1000) + " s";
}

let toastTimer = null;
export function toast(msg, isError) {
  const t = $("toast");
  t.textContent = msg;
  t.className = "toast" + (isError ? " error" : "");
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (t.hidden = true), isError ? 8000 : 3000);
}

// Runs an async action, showing its error as a toast instead of losing it.
export function guarded(fn) {
  return async (...args) => {
    try {
      return await fn(...args);
    } catch (e) {
      if (e.name !== "AbortError") toast(e.message || String(e), true);
    }
  };
}
