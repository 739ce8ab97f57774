// The document viewer: opens a document in a dialog with a cited passage
// highlighted. Citations give byte offsets into the document's UTF-8 text, so
// the text is cut as bytes and each piece decoded; every piece is a text node.
import { api, $, clear, el, append } from "./api.js";

const enc = new TextEncoder();
const dec = new TextDecoder();

function byteSlice(bytes, a, b) {
  return dec.decode(bytes.subarray(Math.max(0, a), Math.max(0, b)));
}

// Opens document id; highlight = {start_byte, end_byte, quote} or undefined.
export async function openDocument(id, highlight) {
  const doc = await api("GET", "/v1/documents/" + encodeURIComponent(id));
  $("viewer-title").textContent = doc.title || doc.id;
  $("viewer-meta").textContent = [doc.collection && "collection " + doc.collection, doc.format,
    doc.source, doc.chunks + " chunks", doc.text_bytes + " bytes"].filter(Boolean).join(" · ");
  const pre = clear($("viewer-text"));
  const text = doc.text || "";
  let mark = null;
  if (highlight && Number.isInteger(highlight.start_byte) && highlight.end_byte > highlight.start_byte) {
    const bytes = enc.encode(text);
    const before = byteSlice(bytes, 0, highlight.start_byte);
    const passage = byteSlice(bytes, highlight.start_byte, highlight.end_byte);
    const after = byteSlice(bytes, highlight.end_byte, bytes.length);
    mark = el("mark", { class: "passage", id: "viewer-passage" });
    const q = (highlight.quote || "").trim();
    const at = q ? passage.indexOf(q) : -1;
    if (at >= 0)
      append(mark, [passage.slice(0, at), el("strong", { class: "quote" }, q), passage.slice(at + q.length)]);
    else mark.textContent = passage;
    append(pre, [before, mark, after]);
  } else {
    pre.textContent = text;
  }
  const dlg = $("doc-viewer");
  if (!dlg.open) dlg.showModal();
  if (mark) mark.scrollIntoView({ block: "center" });
}

export function initViewer() {
  $("viewer-close").addEventListener("click", () => $("doc-viewer").close());
}
