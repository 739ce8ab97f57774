// The console's entry point: sign-in with an API key (kept in this tab's
// session storage only), page switching by the URL's #fragment, and the Ask
// page: a question over chosen collections, the answer streamed from the run's
// events, and citations that open the cited passage in its document.
import { api, streamEvents, getKey, setKey, setUnauthorizedHandler, $, clear, el, guarded, toast } from "./api.js";
import { initDocs, showDocs } from "./docs.js";
import { initRuns, showRuns, openRun, leaveRuns } from "./runs.js";
import { initAudit, showAudit, showMemory } from "./audit.js";
import { initViewer, openDocument } from "./viewer.js";
import { Timeline } from "./timeline.js";

const PAGES = {
  ask: showAsk,
  documents: showDocs,
  runs: showRuns,
  audit: showAudit,
  memory: showMemory,
};

function signedIn(yes) {
  $("nav").hidden = !yes;
  $("signout").hidden = !yes;
  if (!yes) {
    $("whoami").textContent = "";
    for (const p of document.querySelectorAll(".page")) p.hidden = p.id !== "page-signin";
  }
}

async function signIn(key) {
  setKey(key);
  try {
    const me = await api("GET", "/v1/memory");
    $("whoami").textContent = "signed in as " + me.user;
  } catch (e) {
    setKey(null);
    throw e;
  }
  signedIn(true);
}

function signOut() {
  setKey(null);
  leaveRuns();
  signedIn(false);
  history.replaceState(null, "", location.pathname);
}

async function route() {
  if (!getKey()) return signedIn(false);
  const [page, arg] = (location.hash.slice(1) || "ask").split("/");
  const show = PAGES[page] ? page : "ask";
  if (show !== "runs") leaveRuns();
  for (const p of document.querySelectorAll(".page")) p.hidden = p.id !== "page-" + show;
  for (const t of document.querySelectorAll("nav .tab")) t.classList.toggle("active", t.dataset.page === show);
  await PAGES[show]();
  if (show === "runs" && arg) openRun(decodeURIComponent(arg));
}

// ------------------------------------------------------------------- Ask

async function showAsk() {
  const js = await api("GET", "/v1/collections");
  const box = $("ask-collections");
  const checked = new Set([...box.querySelectorAll("input:checked")].map((i) => i.value));
  clear(box);
  for (const c of js.collections) {
    const id = "ask-coll-" + c.id;
    box.append(el("label", { for: id, class: "check" },
      el("input", { type: "checkbox", id, value: c.name, checked: checked.size ? checked.has(c.name) : true }),
      " " + c.name));
  }
  if (!js.collections.length) box.append(el("span", { class: "hint" }, "No collections: add documents first."));
}

// The answer with each [n] marker as a button opening citation n.
function renderAnswer(text, citations) {
  const box = clear($("ask-answer"));
  const byN = new Map((citations || []).map((c) => [c.n, c]));
  let last = 0;
  for (const m of text.matchAll(/\[(\d+)\]/g)) {
    const c = byN.get(Number(m[1]));
    if (!c) continue;
    box.append(text.slice(last, m.index));
    box.append(el("button", { type: "button", class: "cite", dataset: { n: m[1] },
      title: c.title, onclick: () => guarded(openDocument)(c.document_id, c) }, "[" + m[1] + "]"));
    last = m.index + m[0].length;
  }
  box.append(text.slice(last));
  const ol = clear($("ask-citations"));
  for (const c of citations || []) {
    ol.append(el("li", { value: c.n },
      el("button", { type: "button", class: "linkish cite-title", dataset: { n: String(c.n) },
        onclick: () => guarded(openDocument)(c.document_id, c) }, c.title || c.document_id),
      el("blockquote", {}, c.quote || "")));
  }
  if (!(citations || []).length) ol.append(el("li", { class: "hint" }, "No citations."));
}

async function ask(e) {
  e.preventDefault();
  const input = $("ask-input").value.trim();
  if (!input) return;
  const collections = [...$("ask-collections").querySelectorAll("input:checked")].map((i) => i.value);
  $("ask-result").hidden = false;
  $("ask-submit").disabled = true;
  const status = $("ask-status");
  status.textContent = "starting";
  status.className = "badge running";
  $("ask-run-link").textContent = "";
  clear($("ask-answer")).classList.add("streaming");
  clear($("ask-citations"));
  const timeline = new Timeline(clear($("ask-steps")));
  let runId = null;
  try {
    await streamEvents("POST", "/v1/runs", {
      json: { input, collections, stream: true },
      onEvent: (name, d) => {
        if (d.run_id && !runId) {
          runId = d.run_id;
          $("ask-run-link").textContent = "trace of " + runId;
          $("ask-run-link").href = "#runs/" + runId;
        }
        timeline.add(name, d);
        if (name === "run.answer.delta") {
          $("ask-answer").append(d.text || "");
          status.textContent = "answering";
        } else if (name === "run.step.started") {
          status.textContent = (d.kind || "").replace("_", " ") + "…";
        } else if (name === "run.waiting_approval") {
          status.textContent = "waiting for approval";
          status.className = "badge waiting_approval";
        } else if (name === "run.completed") {
          status.textContent = d.status;
          status.className = "badge " + d.status;
          $("ask-answer").classList.remove("streaming");
          if (d.status === "succeeded") renderAnswer(d.answer || timeline.answer, d.citations);
          else $("ask-answer").textContent = d.error || "The run " + d.status + ".";
        }
      },
    });
  } finally {
    $("ask-submit").disabled = false;
  }
}

// ------------------------------------------------------------------ start

function init() {
  setUnauthorizedHandler(() => {
    toast("The key was refused: sign in again", true);
    signOut();
  });
  initViewer();
  initDocs();
  initRuns();
  initAudit();
  $("signin-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    $("signin-error").hidden = true;
    try {
      await signIn($("signin-key").value.trim());
      $("signin-key").value = "";
      await route();
    } catch (err) {
      $("signin-error").textContent = err.message;
      $("signin-error").hidden = false;
    }
  });
  $("signout").addEventListener("click", signOut);
  for (const t of document.querySelectorAll("nav .tab"))
    t.addEventListener("click", () => {
      location.hash = t.dataset.page;
    });
  $("ask-form").addEventListener("submit", guarded(ask));
  window.addEventListener("hashchange", guarded(route));
  if (getKey()) guarded(async () => {
    await signIn(getKey());
    await route();
  })();
  else signedIn(false);
}

init();
