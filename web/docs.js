// The Documents page: collections (list, create), the documents of the chosen
// collection (upload by drag and drop or file picker, view, delete) and git
// repository ingestion.
import { api, $, clear, el, fmtTime, guarded, toast } from "./api.js";
import { openDocument } from "./viewer.js";

let current = null; // the selected collection's name

export function initDocs() {
  $("coll-form").addEventListener("submit", (e) => {
    e.preventDefault();
    guarded(async () => {
      const name = $("coll-name").value.trim();
      await api("POST", "/v1/collections", { json: { name, description: $("coll-desc").value } });
      $("coll-name").value = $("coll-desc").value = "";
      current = name;
      toast("Collection " + name + " created");
      await showDocs();
    })();
  });
  const dz = $("dropzone");
  for (const ev of ["dragenter", "dragover"])
    dz.addEventListener(ev, (e) => {
      e.preventDefault();
      dz.classList.add("over");
    });
  dz.addEventListener("dragleave", () => dz.classList.remove("over"));
  dz.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      $("doc-file").click();
    }
  });
  dz.addEventListener("drop", (e) => {
    e.preventDefault();
    dz.classList.remove("over");
    guarded(upload)([...e.dataTransfer.files]);
  });
  $("doc-file").addEventListener("change", (e) => {
    guarded(upload)([...e.target.files]);
    e.target.value = "";
  });
  $("git-form").addEventListener("submit", (e) => {
    e.preventDefault();
    guarded(ingestGit)();
  });
}

export async function showDocs() {
  const js = await api("GET", "/v1/collections");
  const ul = clear($("coll-list"));
  if (!current && js.collections.length) current = js.collections[0].name;
  for (const c of js.collections) {
    ul.append(el("li", { class: c.name === current ? "selected" : "" },
      el("button", { type: "button", class: "linkish", dataset: { coll: c.name },
        onclick: () => { current = c.name; guarded(showDocs)(); } }, c.name),
      el("span", { class: "hint" }, " " + c.documents + " documents" + (c.description ? " · " + c.description : ""))));
  }
  if (!js.collections.length) ul.append(el("li", { class: "hint" }, "No collections yet: create one."));
  await loadDocs();
}

async function loadDocs() {
  $("doc-coll-name").textContent = current || "—";
  const tbody = clear($("doc-table").tBodies[0]);
  if (!current) return;
  const js = await api("GET", "/v1/documents?collection=" + encodeURIComponent(current));
  for (const d of js.documents) {
    tbody.append(el("tr", { dataset: { doc: d.id } },
      el("td", {}, el("button", { type: "button", class: "linkish", title: d.source, onclick: () => guarded(openDocument)(d.id) }, d.title || d.id)),
      el("td", {}, d.format), el("td", {}, d.chunks), el("td", {}, d.text_bytes), el("td", {}, fmtTime(d.created)),
      el("td", {}, el("button", { type: "button", class: "danger small", onclick: () => guarded(remove)(d) }, "Delete"))));
  }
  if (!js.documents.length) tbody.append(el("tr", {}, el("td", { colspan: 6, class: "hint" }, "No documents in this collection.")));
}

async function upload(files) {
  if (!current) throw new Error("create or choose a collection first");
  const log = $("upload-log");
  for (const f of files) {
    const line = el("div", {}, "Uploading " + f.name + "…");
    log.prepend(line);
    const fd = new FormData();
    fd.append("collection", current);
    fd.append("title", f.name);
    fd.append("file", f, f.name);
    try {
      const r = await api("POST", "/v1/documents", { body: fd });
      line.textContent = f.name + ": " + (r.unchanged ? "unchanged" : "added") + ", " + r.chunks + " chunks (" + r.format + ")";
      line.className = "ok";
    } catch (e) {
      line.textContent = f.name + ": " + e.message;
      line.className = "error";
    }
  }
  await showDocs();
}

async function remove(d) {
  if (!confirm("Delete " + (d.title || d.id) + "?")) return;
  await api("DELETE", "/v1/documents/" + encodeURIComponent(d.id));
  toast("Deleted " + (d.title || d.id));
  await showDocs();
}

async function ingestGit() {
  if (!current) throw new Error("create or choose a collection first");
  const src = $("git-url").value.trim();
  const body = { collection: current };
  if (src.startsWith("/")) body.path = src;
  else body.url = src;
  if ($("git-ref").value.trim()) body.ref = $("git-ref").value.trim();
  $("git-result").textContent = "Ingesting…";
  try {
    const r = await api("POST", "/v1/sources/git", { json: body });
    $("git-result").textContent = `commit ${r.commit}: ${r.files} files, ${r.added} added, ${r.updated} updated, ` +
      `${r.unchanged} unchanged, ${r.removed} removed, ${r.skipped} skipped`;
  } catch (e) {
    $("git-result").textContent = "";
    throw e;
  }
  await showDocs();
}
