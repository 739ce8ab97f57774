"""Retrieval over REST and the CLI: collections with ACLs, documents in every
format (raw and multipart), citations whose byte ranges hold their snippets,
refusals that leave the store as it was, the size limit (413), deletion,
git and URL sources, and `agentd ingest`. Everything runs on 127.0.0.1."""
import http.server
import os
import subprocess
import threading
import urllib.parse

import harness

LIMIT = 65536


def q(**kw):
    return urllib.parse.urlencode(kw)


def make_pdf(pages):
    out = bytearray(b"%PDF-1.4\n")
    offs = []
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>",
            ("<< /Type /Pages /Kids [%s] /Count %d >>" % (" ".join("%d 0 R" % (4 + 2 * i) for i in range(len(pages))),
                                                         len(pages))).encode(),
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    for i, text in enumerate(pages):
        objs.append(("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
                     "/Resources << /Font << /F1 3 0 R >> >> >>" % (5 + 2 * i)).encode())
        stream = ("BT /F1 12 Tf 72 712 Td (%s) Tj ET\n" % text).encode()
        objs.append(b"<< /Length %d >> stream\n" % len(stream) + stream + b"\nendstream")
    for n, body in enumerate(objs, 1):
        offs.append(len(out))
        out += b"%d 0 obj " % n + body + b" endobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    for o in offs:
        out += b"%010d 00000 n \n" % o
    out += b"trailer << /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


def attach(d, key, coll, body, ctype="text/plain", **extra):
    return d.request("POST", "/v1/documents?" + q(collection=coll, **extra), body=body, key=key,
                     headers={"Content-Type": ctype})


def search(d, key, text, **extra):
    st, _, body, js = d.request("GET", "/v1/search?" + q(q=text, **extra), key=key)
    assert st == 200, body
    return js["hits"]


def check_citation(d, key, hit):
    """The cited byte range of the document's text is the chunk and holds the snippet."""
    st, _, _, doc = d.request("GET", "/v1/documents/" + hit["document_id"], key=key)
    assert st == 200
    raw = doc["text"].encode()
    cited = raw[hit["start_byte"]:hit["end_byte"]].decode()
    assert cited == hit["text"], (cited, hit["text"])
    plain = hit["snippet"].replace("<mark>", "").replace("</mark>", "")
    for frag in plain.split("…"):
        assert frag in cited, (frag, cited)
    assert "<mark>" in hit["snippet"]


def doc_count(d):
    st, _, _, js = d.request("GET", "/v1/documents", key=d.admin_key)
    return len(js["documents"])


def test_collections_and_acl(d):
    st, _, body, js = d.request("POST", "/v1/collections", key=d.admin_key,
                                json={"name": "hr", "description": "people things"})
    assert st == 201 and js["name"] == "hr" and js["readable_by"] == {"roles": [], "users": []}, body
    st, _, body, js = d.request("POST", "/v1/collections", key=d.admin_key,
                                json={"name": "board", "readable_by": {"roles": ["analyst"], "users": ["vic"]}})
    assert st == 201, body
    st, _, _, js = d.request("POST", "/v1/collections", key=d.admin_key, json={"name": "hr"})
    assert st == 409
    st, _, _, js = d.request("POST", "/v1/collections", key=d.admin_key,
                             json={"name": "x", "readable_by": {"roles": ["wizard"]}})
    assert st == 400 and "wizard" in js["error"]["message"]
    viewer = d.create_key(user="val", role="viewer")
    st, _, _, _ = d.request("POST", "/v1/collections", key=viewer, json={"name": "mine"})
    assert st == 403
    st, _, _, js = d.request("GET", "/v1/collections", key=viewer)
    names = [c["name"] for c in js["collections"]]
    assert "hr" in names and "board" not in names, names

    analyst = d.create_key(user="ana", role="analyst")
    st, _, body, js = attach(d, analyst, "board", "The merger with Initech closes in March.\n")
    assert st == 201, body
    board_doc = js["id"]
    st, _, body, js = attach(d, analyst, "hr", "Parental leave is sixteen weeks.\n")
    assert st == 201, body
    # The viewer reads hr but not board: no hit, and the document is "not found".
    assert search(d, viewer, "merger Initech") == []
    assert len(search(d, viewer, "parental leave")) == 1
    st, _, _, _ = d.request("GET", "/v1/documents/" + board_doc, key=viewer)
    assert st == 404
    st, _, _, _ = d.request("GET", "/v1/search?" + q(q="merger", collection="board"), key=viewer)
    assert st == 404
    # vic is named in readable_by, so this viewer reads it.
    vic = d.create_key(user="vic", role="viewer")
    assert len(search(d, vic, "merger Initech")) == 1
    # Another tenant sees none of this, not even its admin.
    other = d.create_key(tenant="globex", user="root", role="admin")
    assert search(d, other, "merger Initech") == []
    assert search(d, other, "parental leave") == []
    st, _, _, js = d.request("GET", "/v1/collections", key=other)
    assert js["collections"] == []
    st, _, _, _ = d.request("GET", "/v1/documents/" + board_doc, key=other)
    assert st == 404
    st, _, _, _ = d.request("DELETE", "/v1/documents/" + board_doc, key=other)
    assert st == 404
    st, _, _, _ = d.request("DELETE", "/v1/documents/" + board_doc, key=viewer)
    assert st == 403


def test_every_format_with_citations(d):
    d.request("POST", "/v1/collections", key=d.admin_key, json={"name": "kb"})
    md = "# Onboarding\n\n## Laptops\n\nEvery new hire receives a laptop on day one.\n"
    st, _, body, js = attach(d, d.admin_key, "kb", md, "text/markdown", title="Onboarding guide")
    assert st == 201 and js["format"] == "markdown", body
    html = ("<html><head><title>Kitchen</title></head><body><h1>Kitchen rules</h1>"
            "<p>Clean the espresso machine after use.</p><script>x()</script></body></html>")
    boundary = "----agentdtest"
    mp = ("--%s\r\nContent-Disposition: form-data; name=\"collection\"\r\n\r\nkb\r\n"
          "--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"kitchen.html\"\r\n"
          "Content-Type: text/html\r\n\r\n%s\r\n--%s--\r\n" % (boundary, boundary, html, boundary))
    st, _, body, js = d.request("POST", "/v1/documents", body=mp, key=d.admin_key,
                                headers={"Content-Type": "multipart/form-data; boundary=" + boundary})
    assert st == 201 and js["format"] == "html", body
    pdf = make_pdf(["Fire drills happen every quarter.", "Assembly point is the north car park."])
    st, _, body, js = attach(d, d.admin_key, "kb", pdf, "application/pdf", filename="safety.pdf")
    assert st == 201 and js["format"] == "pdf", body
    src = "def reimburse(amount):\n    return amount * 0.9\n"
    st, _, body, js = attach(d, d.admin_key, "kb", src, "text/x-python", filename="reimburse.py")
    assert st == 201 and js["format"] == "source", body
    st, _, body, js = attach(d, d.admin_key, "kb", "Plain words about the bicycle shed.\n")
    assert st == 201 and js["format"] == "text", body
    for query, title_path in (("laptop new hire", "Onboarding > Laptops"), ("espresso machine", "Kitchen rules"),
                              ("assembly point car park", "p. 2"), ("reimburse", ""), ("bicycle shed", "")):
        hits = search(d, d.admin_key, query, collection="kb")
        assert hits, query
        assert hits[0]["title_path"] == title_path, (query, hits[0])
        for h in hits:
            check_citation(d, d.admin_key, h)
    hits = search(d, d.admin_key, "laptop")
    assert hits[0]["title"] == "Onboarding guide"


def test_refusals_leave_store_unchanged(d):
    d.request("POST", "/v1/collections", key=d.admin_key, json={"name": "junk"})
    before = doc_count(d)
    st, _, _, js = attach(d, d.admin_key, "junk", b"%PDF-1.4\nthis is not really a pdf", "application/pdf")
    assert st == 422 and "PDF" in js["error"]["message"], js
    st, _, _, js = attach(d, d.admin_key, "junk", os.urandom(3000), "application/octet-stream")
    assert st == 415 and "binary" in js["error"]["message"], js
    st, _, _, js = attach(d, d.admin_key, "junk", b"", "text/plain")
    assert st == 400 and "empty" in js["error"]["message"], js
    st, _, _, js = attach(d, d.admin_key, "junk", b"\x89PNG", "image/png")
    assert st == 415
    st, _, _, js = attach(d, d.admin_key, "junk", b"x" * (LIMIT + 1), "text/plain")
    assert st == 413, js
    st, _, _, js = attach(d, d.admin_key, "nope", b"hello", "text/plain")
    assert st == 404
    assert doc_count(d) == before


def test_dedup_replace_delete(d):
    d.request("POST", "/v1/collections", key=d.admin_key, json={"name": "wiki"})
    st, _, _, a = attach(d, d.admin_key, "wiki", "Badger feeding times are at noon.\n", source="wiki/badger")
    assert st == 201
    st, _, _, b = attach(d, d.admin_key, "wiki", "Badger feeding times are at noon.\n")
    assert st == 200 and b["unchanged"] and b["id"] == a["id"]
    st, _, _, c = attach(d, d.admin_key, "wiki", "Badger feeding times moved to dusk.\n", source="wiki/badger")
    assert st == 201 and c["replaced"] and c["id"] == a["id"]
    assert search(d, d.admin_key, "noon") == []
    hits = search(d, d.admin_key, "badger dusk")
    assert len(hits) == 1
    st, _, _, js = d.request("DELETE", "/v1/documents/" + a["id"], key=d.admin_key)
    assert st == 200 and js["deleted"]
    assert search(d, d.admin_key, "badger") == []
    st, _, _, _ = d.request("GET", "/v1/documents/" + a["id"], key=d.admin_key)
    assert st == 404
    st, _, _, js = d.request("GET", "/v1/documents?" + q(collection="wiki"), key=d.admin_key)
    assert js["documents"] == []


def git(repo, *args):
    subprocess.run(["git", "-C", repo, "-c", "user.name=t", "-c", "user.email=t@example.com"] + list(args),
                   check=True, capture_output=True)


def test_git_source(d):
    d.request("POST", "/v1/collections", key=d.admin_key, json={"name": "src"})
    repo = harness.tmpdir("agentd-git-")
    git(repo, "init", "-q", "-b", "main")
    for name, text in (("a.md", "# A\n\nAardvark notes.\n"), ("b.py", "print('bongo drums')\n")):
        with open(os.path.join(repo, name), "w") as f:
            f.write(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "one")
    st, _, body, js = d.request("POST", "/v1/sources/git", key=d.admin_key,
                                json={"collection": "src", "path": repo, "ref": "main"})
    assert st == 200 and js["added"] == 2 and len(js["commit"]) == 40, body
    first = js["commit"]
    with open(os.path.join(repo, "b.py"), "w") as f:
        f.write("print('bongo and conga drums')\n")
    git(repo, "commit", "-q", "-am", "two")
    st, _, body, js = d.request("POST", "/v1/sources/git", key=d.admin_key,
                                json={"collection": "src", "path": repo})
    assert st == 200 and js["updated"] == 1 and js["unchanged"] == 1 and js["added"] == 0, body
    hits = search(d, d.admin_key, "conga")
    assert len(hits) == 1 and hits[0]["commit"] == js["commit"] and hits[0]["source"].endswith(":b.py")
    hits = search(d, d.admin_key, "aardvark")
    assert hits[0]["commit"] == first
    # Only admins read the server's disk.
    analyst = d.create_key(user="gina", role="analyst")
    st, _, _, _ = d.request("POST", "/v1/sources/git", key=analyst, json={"collection": "src", "path": repo})
    assert st == 403


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/memo.txt":
            body, ctype = b"Remote memo: the quokka enclosure opens Monday.\n", "text/plain"
        elif self.path == "/big.txt":
            body, ctype = b"y" * (LIMIT + 10), "text/plain"
        else:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_url_source(d):
    d.request("POST", "/v1/collections", key=d.admin_key, json={"name": "web"})
    srv = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        base = "http://127.0.0.1:%d" % srv.server_address[1]
        st, _, body, js = d.request("POST", "/v1/sources/url", key=d.admin_key,
                                    json={"collection": "web", "url": base + "/memo.txt"})
        assert st == 201, body
        hits = search(d, d.admin_key, "quokka enclosure")
        assert len(hits) == 1 and hits[0]["source"] == base + "/memo.txt"
        st, _, _, _ = d.request("POST", "/v1/sources/url", key=d.admin_key,
                                json={"collection": "web", "url": base + "/big.txt"})
        assert st == 413
        st, _, _, _ = d.request("POST", "/v1/sources/url", key=d.admin_key,
                                json={"collection": "web", "url": base + "/missing"})
        assert st == 404
    finally:
        srv.shutdown()


def test_cli_ingest(d):
    folder = harness.tmpdir("agentd-ingest-")
    os.makedirs(os.path.join(folder, "sub"))
    os.makedirs(os.path.join(folder, ".hidden"))
    with open(os.path.join(folder, "one.md"), "w") as f:
        f.write("# Platypus\n\nThe platypus lays eggs.\n")
    with open(os.path.join(folder, "sub", "two.txt"), "w") as f:
        f.write("Wombats dig burrows.\n")
    with open(os.path.join(folder, ".hidden", "secret.txt"), "w") as f:
        f.write("hidden narwhal\n")
    out = d.cli("ingest", "--collection", "cli", folder)
    assert out.returncode == 0, out.stderr
    assert "2 added" in out.stdout, out.stdout
    assert len(search(d, d.admin_key, "platypus eggs", collection="cli")) == 1
    assert len(search(d, d.admin_key, "wombats")) == 1
    assert search(d, d.admin_key, "narwhal") == []
    out = d.cli("ingest", "--collection", "cli", folder)
    assert out.returncode == 0 and "2 unchanged" in out.stdout, out.stdout
    out = d.cli("ingest", "--collection", "cli", "/nonexistent/file")
    assert out.returncode == 1 and "no such file" in out.stderr
    out = d.cli("ingest")
    assert out.returncode == 2


def test_search_parameters(d):
    st, _, _, js = d.request("GET", "/v1/search", key=d.admin_key)
    assert st == 400
    st, _, _, js = d.request("GET", "/v1/search?" + q(q="x", k="1000"), key=d.admin_key)
    assert st == 400
    st, _, _, js = d.request("GET", "/v1/search?" + q(q="x", since="yesterday"), key=d.admin_key)
    assert st == 400
    st, _, _, js = d.request("GET", "/v1/search?" + q(q="laptop", since="2000-01-01", until="2999-01-01", k=3),
                             key=d.admin_key)
    assert st == 200
    st, _, _, js = d.request("GET", "/v1/search?" + q(q="laptop", until="2000-01-01"), key=d.admin_key)
    assert st == 200 and js["hits"] == []
    st, _, _, _ = d.request("GET", "/v1/search?q=x")
    assert st == 401


if __name__ == "__main__":
    harness.main(globals(), config={"max_document_bytes": str(LIMIT)})
