// Browser test of agentd's web console in headless Chromium (playwright-core
// driving Debian's /usr/bin/chromium). test_web.py starts agentd against a
// scripted model and runs this with AGENTD_URL, AGENTD_KEY and OUT_DIR set.
// It prints "ok NAME" or "FAIL NAME: why" per check, the screenshots it saved,
// and "N passed, N failed" last.
import { chromium } from "playwright-core";
import { readFileSync } from "node:fs";
import { join } from "node:path";

const URL_ = process.env.AGENTD_URL;
const KEY = process.env.AGENTD_KEY;
const OUT = process.env.OUT_DIR;
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const T = 15000;

let passed = 0, failed = 0;
const problems = []; // page errors, CSP violations, unexpected dialogs

async function check(name, fn) {
  try {
    await fn();
    passed++;
    console.log("ok   " + name);
  } catch (e) {
    failed++;
    console.log("FAIL " + name + ": " + (e && e.stack ? e.stack : e));
    try {
      await shot(page, "failed-" + failed);
    } catch (_) {
      /* the page itself may be gone */
    }
  }
}

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

async function shot(page, name) {
  const p = join(OUT, name + ".png");
  await page.screenshot({ path: p, fullPage: true });
  console.log("screenshot " + p);
}

const POLICY = "Employees get 30 days of paid leave each year. Leave requests go to your manager " +
  "at least two weeks ahead.\n\nUnused days carry over until the end of March.\n";
const EVIL_NAME = "evil <img src=x onerror='window.__pwned = 3'>.txt";
const EVIL = "Evil <script>window.__pwned = 1</script> and <img src=x onerror='window.__pwned = 2'> here.\n" +
  "Second line <b>not bold</b>.\n";

let browser;
try {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    // playwright gives the browser a fresh profile directory of its own and removes it afterwards.
  });
} catch (e) {
  console.log("chromium could not start: " + e.message.split("\n")[0]);
  console.log("0 passed, 0 failed, 1 skipped");
  process.exit(0);
}

const ctx = await browser.newContext({ viewport: { width: 1280, height: 860 }, acceptDownloads: true });
const page = await ctx.newPage();
page.setDefaultTimeout(T);
page.on("pageerror", (e) => problems.push("page error: " + e.message));
page.on("console", (m) => {
  if (m.type() === "error" && /Content Security Policy|Refused to/.test(m.text())) problems.push("CSP: " + m.text());
});
page.on("dialog", async (d) => {
  if (d.type() === "confirm") return d.accept();
  problems.push("unexpected " + d.type() + " dialog: " + d.message());
  await d.dismiss();
});
// Nothing may leave 127.0.0.1.
await ctx.route("**/*", (route) => {
  const u = new URL(route.request().url());
  if (u.hostname !== "127.0.0.1" && u.protocol !== "data:" && u.protocol !== "blob:") {
    problems.push("outside request: " + u.href);
    return route.abort();
  }
  return route.continue();
});

let runId = null;

await check("sign in page loads with its security headers", async () => {
  const res = await page.goto(URL_ + "/");
  const h = res.headers();
  assert(res.status() === 200, "status " + res.status());
  assert(h["content-security-policy"] && h["content-security-policy"].includes("script-src 'self'"), "CSP missing");
  assert(h["x-frame-options"] === "DENY", "X-Frame-Options");
  assert(h["x-content-type-options"] === "nosniff", "nosniff");
  await page.locator("#signin-key").waitFor();
  await shot(page, "01-sign-in");
});

await check("a wrong key is refused", async () => {
  await page.fill("#signin-key", "agk_wrong");
  await page.click("#signin-form button[type=submit]");
  await page.locator("#signin-error").waitFor({ state: "visible" });
  assert(await page.locator("#nav").isHidden(), "nav shown after a wrong key");
});

await check("sign in with the key (session storage only)", async () => {
  await page.fill("#signin-key", KEY);
  await page.click("#signin-form button[type=submit]");
  await page.locator("#nav").waitFor({ state: "visible" });
  const who = await page.textContent("#whoami");
  assert(who.includes("admin"), "whoami: " + who);
  const stored = await page.evaluate(() => [sessionStorage.getItem("agentd.key"), localStorage.length, document.cookie]);
  assert(stored[0] === KEY && stored[1] === 0 && stored[2] === "", "key storage: " + JSON.stringify(stored.slice(1)));
});

await check("create collections and upload a document by drag and drop", async () => {
  await page.click("nav [data-page=documents]");
  for (const name of ["handbook", "xss"]) {
    await page.fill("#coll-name", name);
    await page.click("#coll-form button[type=submit]");
    await page.locator(`#coll-list [data-coll="${name}"]`).waitFor();
  }
  await page.click('#coll-list [data-coll="handbook"]');
  await page.locator("#doc-coll-name", { hasText: "handbook" }).waitFor();
  const dt = await page.evaluateHandle((text) => {
    const d = new DataTransfer();
    d.items.add(new File([text], "leave-policy.txt", { type: "text/plain" }));
    return d;
  }, POLICY);
  await page.dispatchEvent("#dropzone", "drop", { dataTransfer: dt });
  await page.locator("#doc-table tbody tr", { hasText: "leave-policy.txt" }).waitFor();
  await page.locator("#upload-log .ok", { hasText: "leave-policy.txt" }).waitFor();
  // A git repository on the server's disk (test_web.py made it; admins may ingest by path).
  await page.fill("#git-url", process.env.GIT_REPO);
  await page.click("#git-form button[type=submit]");
  await page.locator("#git-result", { hasText: "1 files, 1 added" }).waitFor();
  const travel = page.locator("#doc-table tbody tr", { hasText: "markdown" }).filter({ hasText: "Travel" });
  await travel.waitFor();
  await shot(page, "02-documents");
  await travel.locator("button.danger").click(); // confirm() is accepted by the dialog handler
  await travel.waitFor({ state: "detached" });
  await page.locator("#doc-table tbody tr", { hasText: "leave-policy.txt" }).waitFor();
});

await check("a document with <script> and <img onerror> shows as text and runs nothing", async () => {
  await page.click('#coll-list [data-coll="xss"]');
  await page.locator("#doc-coll-name", { hasText: "xss" }).waitFor();
  // Its name (the document's title) is markup too.
  await page.setInputFiles("#doc-file", { name: EVIL_NAME, mimeType: "text/plain", buffer: Buffer.from(EVIL) });
  const row = page.locator("#doc-table tbody tr", { hasText: EVIL_NAME });
  await row.waitFor();
  await row.locator("button.linkish").click();
  await page.locator("#doc-viewer[open]").waitFor();
  const text = await page.textContent("#viewer-text");
  assert(text.includes("<script>window.__pwned = 1</script>"), "script tag not shown as text: " + text);
  assert(text.includes("onerror="), "img tag not shown as text");
  assert((await page.textContent("#viewer-title")) === EVIL_NAME, "title not shown as text");
  const els = await page.evaluate(() => document.querySelectorAll("main img, dialog img, script:not([src]), #viewer-text b").length);
  assert(els === 0, els + " elements made from document text");
  await page.waitForTimeout(300);
  assert(await page.evaluate(() => window.__pwned === undefined), "document script ran");
  await shot(page, "03-document-as-text");
  await page.click("#viewer-close");
});

await check("ask: the answer streams in and its citation opens the passage", async () => {
  await page.click("nav [data-page=ask]");
  await page.locator("#ask-collections input[value=handbook]").waitFor();
  await page.uncheck("#ask-collections input[value=xss]");
  await page.check("#ask-collections input[value=handbook]");
  await page.fill("#ask-input", "How many days of paid leave do employees get?");
  // Watch the answer box: text must appear in it while the run is still streaming.
  await page.evaluate(() => {
    window.__sawStreaming = false;
    const box = document.getElementById("ask-answer");
    new MutationObserver(() => {
      if (box.classList.contains("streaming") && box.textContent.length > 0) window.__sawStreaming = true;
    }).observe(box, { childList: true, characterData: true, subtree: true });
  });
  await page.click("#ask-submit");
  await page.locator("#ask-status", { hasText: "succeeded" }).waitFor();
  assert(await page.evaluate(() => window.__sawStreaming), "no answer text arrived before the run completed");
  const answer = await page.textContent("#ask-answer");
  assert(answer.includes("Employees get 30 days of paid leave each year."), "answer: " + answer);
  const cite = page.locator("#ask-answer button.cite[data-n='1']");
  assert((await cite.count()) === 1, "no citation button in the answer");
  const link = await page.getAttribute("#ask-run-link", "href");
  runId = link.split("/").pop();
  assert(runId.startsWith("run_"), "run link " + link);
  await shot(page, "04-ask-answer");
  await cite.click();
  await page.locator("#doc-viewer[open]").waitFor();
  const quote = await page.textContent("#viewer-text mark.passage strong.quote");
  assert(quote.includes("Employees get 30 days of paid leave each year."), "highlighted quote: " + quote);
  assert((await page.textContent("#viewer-title")).includes("leave-policy.txt"), "viewer title");
  await shot(page, "05-citation-passage");
  await page.click("#viewer-close");
});

await check("model text quoting <script> is shown as text", async () => {
  await page.uncheck("#ask-collections input[value=handbook]");
  await page.check("#ask-collections input[value=xss]");
  await page.fill("#ask-input", "What is evil here?");
  await page.click("#ask-submit");
  await page.locator("#ask-status", { hasText: "succeeded" }).waitFor();
  const answer = await page.textContent("#ask-answer");
  assert(answer.includes("<script>window.__pwned = 1</script>") && answer.includes("onerror="), "answer: " + answer);
  await page.locator("#ask-answer button.cite[data-n='1']").waitFor();
  const quote = await page.textContent("#ask-citations blockquote");
  assert(quote.includes("<img src=x onerror="), "citation quote: " + quote);
  const els = await page.evaluate(() => document.querySelectorAll("#ask-answer script, #ask-answer img, #ask-citations script, #ask-citations img, #ask-steps script, #ask-steps img").length);
  assert(els === 0, els + " elements made from model text");
  await page.waitForTimeout(300);
  assert(await page.evaluate(() => window.__pwned === undefined), "model text ran as script");
});

await check("runs: the list and the run's trace with its steps", async () => {
  await page.click("nav [data-page=runs]");
  const row = page.locator(`#runs-table tbody tr[data-run="${runId}"]`);
  await row.waitFor();
  const cells = await row.locator("td").allTextContents();
  assert(cells[1] === "succeeded" && cells[2] === "admin", "row: " + cells.join(" | "));
  assert(Number(cells[6]) > 0, "tokens column: " + cells[6]);
  await page.selectOption("#runs-status", "failed");
  await page.click("#runs-filter button[type=submit]");
  await page.locator(`#runs-table tbody tr[data-run="${runId}"]`).waitFor({ state: "detached" });
  await page.selectOption("#runs-status", "");
  await page.click("#runs-filter button[type=submit]");
  await row.waitFor();
  await row.click();
  await page.locator("#trace-id", { hasText: runId }).waitFor();
  await page.locator("#trace-timeline li.step.done.retrieval").waitFor();
  await page.locator("#trace-timeline li.step.done.model_call").waitFor();
  await page.locator("#trace-timeline li.step.done.validation").waitFor();
  await page.locator("#trace-timeline li.step.completed.succeeded").waitFor();
  const mc = await page.textContent("#trace-timeline li.step.done.model_call");
  assert(/prompt tokens \d+/.test(mc) && /completion tokens \d+/.test(mc), "model call step: " + mc);
  await page.locator("#trace-audit li").first().waitFor();
  await page.locator("#trace-live").waitFor({ state: "hidden" });
  await shot(page, "06-run-trace");
});

const WORKFLOW = {
  name: "publish-check",
  steps: [
    { id: "ask", type: "approval", message: "Publish '{{input}}'?", next: "done" },
    { id: "done", type: "answer", text: "published: {{input}}" },
  ],
};

async function rest(method, path, body) {
  const res = await fetch(URL_ + path, { method, headers: { Authorization: "Bearer " + KEY, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body) });
  const js = await res.json();
  assert(res.ok, method + " " + path + " -> " + res.status + " " + JSON.stringify(js));
  return js;
}

async function waitingRun(input) {
  const run = await rest("POST", "/v1/workflows/publish-check/runs", { input });
  for (let i = 0; i < 200; i++) {
    const r = await rest("GET", "/v1/runs/" + run.id);
    if (r.status === "waiting_approval") return run.id;
    await new Promise((ok) => setTimeout(ok, 50));
  }
  throw new Error("run " + run.id + " never waited for approval");
}

await check("runs: approve a waiting run and watch it finish live; cancel another", async () => {
  await rest("POST", "/v1/workflows", WORKFLOW);
  const id = await waitingRun("urgent memo");
  await page.selectOption("#runs-status", "waiting_approval");
  await page.click("#runs-filter button[type=submit]");
  const row = page.locator(`#runs-table tbody tr[data-run="${id}"]`);
  await row.waitFor();
  await row.click();
  await page.locator("#trace-id", { hasText: id }).waitFor();
  await page.locator("#trace-approval-text", { hasText: "Publish 'urgent memo'?" }).waitFor();
  await page.locator("#trace-timeline li.step.approval-request", { hasText: "Waiting for approval" }).waitFor();
  assert(await page.locator("#trace-live").isVisible(), "the trace is not live while the run waits");
  await shot(page, "06b-run-waiting-approval");
  await page.click("#trace-approve");
  await page.locator("#trace-timeline li.step.approval-decision.approved", { hasText: "Approved" }).waitFor();
  await page.locator("#trace-timeline li.step.completed.succeeded").waitFor();
  await page.locator("#trace-status", { hasText: "succeeded" }).waitFor();
  await page.locator("#trace-summary dd", { hasText: "published: urgent memo" }).waitFor();
  await page.locator("#trace-audit li.audit.approval").first().waitFor();
  assert(await page.locator("#trace-approval").isHidden(), "approval panel still shown");

  const other = await waitingRun("urgent second memo");
  await page.click("#runs-filter button[type=submit]");
  await page.locator(`#runs-table tbody tr[data-run="${other}"]`).click();
  await page.locator("#trace-id", { hasText: other }).waitFor();
  await page.locator("#trace-cancel").waitFor({ state: "visible" });
  await page.click("#trace-cancel");
  await page.locator("#trace-status", { hasText: "cancelled" }).waitFor();
  await page.locator("#trace-live").waitFor({ state: "hidden" });
  await page.selectOption("#runs-status", "");
  await page.click("#runs-filter button[type=submit]");
});

await check("a policy refusal shows in the run's trace with its rule id", async () => {
  const before = await rest("GET", "/v1/policies");
  const res = await fetch(URL_ + "/v1/policies", { method: "PUT", headers: { Authorization: "Bearer " + KEY },
    body: before.text + "\n[deny no_xyzzy]\npattern = xyzzy\n" });
  assert(res.ok, "PUT /v1/policies -> " + res.status + " " + (await res.text()));
  try {
    await page.click("nav [data-page=ask]");
    await page.locator("#ask-collections input[value=handbook]").waitFor();
    await page.fill("#ask-input", "Tell me about xyzzy");
    await page.click("#ask-submit");
    await page.locator("#ask-status", { hasText: "failed" }).waitFor();
    assert((await page.textContent("#ask-answer")).includes("deny.no_xyzzy"), "refusal not shown");
    await page.click("#ask-run-link");
    await page.locator("#trace-audit li.audit.policy", { hasText: "deny.no_xyzzy" }).waitFor();
    await page.locator("#trace-timeline li.step.completed.failed").waitFor();
    await shot(page, "06c-run-policy-refusal");
  } finally {
    await fetch(URL_ + "/v1/policies", { method: "PUT", headers: { Authorization: "Bearer " + KEY }, body: before.text });
  }
});

await check("audit: records, chain verification and export", async () => {
  await page.click("nav [data-page=audit]");
  await page.locator("#audit-table tbody tr").first().waitFor();
  await page.click("#audit-verify-btn");
  await page.locator("#audit-verify", { hasText: "verified" }).waitFor();
  await page.fill("#audit-kind", "request");
  await page.click("#audit-filter button[type=submit]");
  await page.waitForFunction(() => {
    const cells = [...document.querySelectorAll("#audit-table tbody tr td:nth-child(4)")];
    return cells.length > 0 && cells.every((c) => c.textContent === "request");
  });
  const kinds = await page.locator("#audit-table tbody tr td:nth-child(4)").allTextContents();
  assert(kinds.length > 0 && kinds.every((k) => k === "request"), "kind filter: " + kinds.join(","));
  await shot(page, "07-audit");
  const [dl] = await Promise.all([page.waitForEvent("download"), page.click("#audit-export")]);
  const p = await dl.path();
  const lines = readFileSync(p, "utf8").trim().split("\n").map((l) => JSON.parse(l));
  assert(lines.length >= kinds.length, "export has " + lines.length + " records, the page " + kinds.length);
  assert(lines.every((r) => r.kind === "request" && r.hash), "export records");
});

await check("memory: size shown and reset", async () => {
  await page.click("nav [data-page=memory]");
  // test_web.py gave the admin 321 tokens of memory (model-web) to reset.
  const tokens = page.locator("#memory-info dt:text-is('tokens remembered') + dd");
  await page.locator("#memory-info dd", { hasText: "model-web" }).waitFor();
  assert((await tokens.textContent()) === "321", "tokens before reset: " + (await tokens.textContent()));
  await shot(page, "08-memory");
  await page.click("#memory-reset");
  await page.locator("#memory-result", { hasText: "Memory reset." }).waitFor();
  await page.locator("#memory-info dd", { hasText: "never" }).waitFor();
  assert((await tokens.textContent()) === "0", "tokens after reset: " + (await tokens.textContent()));
  await shot(page, "09-memory-reset");
});

await check("sign out forgets the key", async () => {
  await page.click("#signout");
  await page.locator("#signin-key").waitFor({ state: "visible" });
  assert(await page.evaluate(() => sessionStorage.getItem("agentd.key") === null), "key still stored");
});

await check("no script errors, CSP violations, alerts or outside requests", async () => {
  assert(problems.length === 0, problems.join("\n"));
});

await browser.close();
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
