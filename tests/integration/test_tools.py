"""Tools over REST against a running agentd: the registry with schemas, direct
calls of each built-in tool on data this test makes (an SQLite file, a git
repository, an HTTP server on 127.0.0.1), the admin settings, refusals that
come back as clear errors, and the daemon still serving after calls that hit
the sandbox's limits."""
import http.server
import os
import shutil
import sqlite3
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

WORK = harness.tmpdir("agentd-tools-it-")
DB_PATH = os.path.join(WORK, "sales.db")
REPO = os.path.join(WORK, "repo")


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/hello":
            body = b"hello over http"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path == "/away":
            self.send_response(302)
            self.send_header("Location", "http://localhost:%d/hello" % self.server.server_port)
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

    def log_message(self, *a):
        pass


SERVER = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
threading.Thread(target=SERVER.serve_forever, daemon=True).start()
PORT = SERVER.server_port


def make_data():
    con = sqlite3.connect(DB_PATH)
    con.executescript("""
        CREATE TABLE sales (region TEXT, amount INTEGER);
        INSERT INTO sales VALUES ('north', 120), ('south', 80), ('north', 30), ('east', 55);
    """)
    con.commit()
    con.close()
    os.makedirs(REPO)
    git = ["git", "-C", REPO, "-c", "user.name=Ivy Test", "-c", "user.email=ivy@example.com"]
    subprocess.run(["git", "init", "-q", REPO], check=True)
    with open(os.path.join(REPO, "notes.txt"), "w") as f:
        f.write("first draft\n")
    subprocess.run(git + ["add", "notes.txt"], check=True)
    subprocess.run(git + ["commit", "-q", "-m", "docs: first draft of the notes"], check=True)
    with open(os.path.join(REPO, "notes.txt"), "w") as f:
        f.write("second draft\n")
    subprocess.run(git + ["commit", "-q", "-a", "-m", "docs: rewrite the notes"], check=True)


make_data()


def call(d, tool, args, key=None):
    return d.request("POST", "/v1/tools/" + tool, json=args, key=key or d.admin_key)


def put_settings(d):
    st, _, body, js = d.request("PUT", "/v1/tools/settings", key=d.admin_key, json={
        "databases": [{"name": "sales", "path": DB_PATH}],
        "repositories": [{"name": "notes", "path": REPO}],
        "allowed_hosts": ["127.0.0.1:%d" % PORT],
    })
    assert st == 200, body
    return js


def test_list_tools(d):
    viewer = d.create_key(user="vic", role="viewer")
    st, _, body, js = d.request("GET", "/v1/tools", key=viewer)
    assert st == 200, body
    names = {t["name"]: t for t in js["tools"]}
    for n in ("calculator", "sql", "http_get", "git"):
        assert n in names, names.keys()
    calc = names["calculator"]
    assert calc["parameters"]["type"] == "object"
    assert calc["parameters"]["required"] == ["expression"]
    assert calc["needs"] == {"network": False, "files": False}
    assert names["http_get"]["needs"]["network"] is True
    assert calc["limits"]["wall_seconds"] > 0


def test_calculator(d):
    st, _, body, js = call(d, "calculator", {"expression": "0.1 + 0.2"})
    assert st == 200, body
    assert js["ok"] is True and js["result"] == {"value": "0.3", "exact": True}, js
    st, _, body, js = call(d, "calculator", {"expression": "2^128 - 1"})
    assert js["result"]["value"] == str(2 ** 128 - 1), js


def test_bad_calls(d):
    st, _, body, js = call(d, "calculator", {"expression": 5})
    assert st == 400 and "expected a string" in js["error"]["message"], body
    st, _, body, js = call(d, "calculator", {"expression": "1", "cmd": "rm -rf /"})
    assert st == 400 and "unknown field 'cmd'" in js["error"]["message"], body
    st, _, body, js = call(d, "calculator", {})
    assert st == 400 and "missing required field" in js["error"]["message"], body
    st, _, body, js = call(d, "calculator", {"expression": "1/0"})
    assert st == 400 and "division by zero" in js["error"]["message"], body
    st, _, body, js = call(d, "no_such_tool", {})
    assert st == 404, body
    st, _, body, js = d.request("POST", "/v1/tools/calculator", body="not json", key=d.admin_key,
                                headers={"Content-Type": "application/json"})
    assert st == 400, body
    analyst = d.create_key(user="ana", role="analyst")
    st, _, body, js = call(d, "calculator", {"expression": "1"}, key=analyst)
    assert st == 403, body
    st, _, body, js = d.request("GET", "/v1/tools/settings", key=analyst)
    assert st == 403, body


def test_settings(d):
    js = put_settings(d)
    assert js["databases"] == [{"name": "sales", "path": DB_PATH}], js
    assert js["allowed_hosts"] == ["127.0.0.1:%d" % PORT], js
    st, _, body, js = d.request("PUT", "/v1/tools/settings", key=d.admin_key,
                                json={"databases": [{"name": "x", "path": "relative.db"}]})
    assert st == 400 and "absolute" in js["error"]["message"], body
    st, _, body, js = d.request("PUT", "/v1/tools/settings", key=d.admin_key, json={"bogus": []})
    assert st == 400, body
    st, _, body, js = d.request("GET", "/v1/tools/settings", key=d.admin_key)
    assert st == 200 and len(js["databases"]) == 1 and len(js["repositories"]) == 1, body


def test_sql(d):
    put_settings(d)
    st, _, body, js = call(d, "sql", {"database": "sales", "query":
                                      "SELECT region, sum(amount) AS total FROM sales GROUP BY region ORDER BY total DESC"})
    assert st == 200, body
    assert js["result"]["columns"] == ["region", "total"], js
    assert js["result"]["rows"] == [["north", 150], ["south", 80], ["east", 55]], js
    st, _, body, js = call(d, "sql", {"database": "sales", "query": "DELETE FROM sales"})
    assert st in (400, 403), body
    con = sqlite3.connect(DB_PATH)
    assert con.execute("SELECT count(*) FROM sales").fetchone()[0] == 4
    con.close()
    st, _, body, js = call(d, "sql", {"database": "unknown", "query": "SELECT 1"})
    assert st == 404, body


def test_git(d):
    put_settings(d)
    st, _, body, js = call(d, "git", {"repository": "notes", "action": "log"})
    assert st == 200, body
    assert [c["summary"] for c in js["result"]["commits"]] == ["docs: rewrite the notes",
                                                                "docs: first draft of the notes"], js
    st, _, body, js = call(d, "git", {"repository": "notes", "action": "show", "ref": "HEAD~1",
                                      "path": "notes.txt"})
    assert st == 200 and js["result"]["content"] == "first draft\n", body
    st, _, body, js = call(d, "git", {"repository": "notes", "action": "diff", "from": "HEAD~1", "to": "HEAD"})
    assert st == 200 and "+second draft" in js["result"]["patch"], body


def test_http_get(d):
    put_settings(d)
    st, _, body, js = call(d, "http_get", {"url": "http://127.0.0.1:%d/hello" % PORT})
    assert st == 200, body
    assert js["result"]["status"] == 200 and js["result"]["body"] == "hello over http", js
    st, _, body, js = call(d, "http_get", {"url": "http://localhost:%d/hello" % PORT})
    assert st == 403 and "not on the allowed hosts list" in js["error"]["message"], body
    st, _, body, js = call(d, "http_get", {"url": "http://127.0.0.1:%d/away" % PORT})
    assert st == 403 and "redirect" in js["error"]["message"], body


def test_limits_and_still_serving(d):
    put_settings(d)
    st, _, body, js = call(d, "calculator", {"expression": "7^5000"})
    assert st == 413, body
    st, _, body, js = call(d, "sql", {"database": "sales", "query":
                                      "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
                                      "SELECT count(*) FROM c"})
    assert st == 504 and "longer than" in js["error"]["message"], body
    st, _, _, _ = d.request("GET", "/healthz")
    assert st == 200
    # Several calls at once each get their own sandbox.
    results = []

    def one(i):
        results.append(call(d, "calculator", {"expression": "%d * %d" % (i, i)}))
    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8, results
    ok = [r for r in results if r[0] == 200]
    # Under ASan (make asan) a child forked while another thread holds one of the sanitizer
    # allocator's locks can block on it: Debian 12's libasan (GCC 12, like clang 14's) does not
    # lock its allocator around fork, as glibc's malloc does. The sandbox's wall-clock limit then
    # stops that call cleanly (tools/sandbox.c); seen in 2 of 8 runs before any change here. One
    # such call is tolerated there, and only there.
    timed_out = [r for r in results if r[0] == 504 and "wall-clock" in r[3]["error"]["message"]]
    allowed = 1 if "asan" in os.environ.get("AGENTD_BUILD", "") else 0
    assert len(ok) + len(timed_out) == 8 and len(timed_out) <= allowed, [r[2] for r in results]
    squares = {i * i for i in range(8)}
    assert all(int(r[3]["result"]["value"]) in squares for r in ok), [r[2] for r in ok]
    assert len({r[3]["result"]["value"] for r in ok}) == len(ok)
    assert d.alive()


def test_calls_are_audited(d):
    call(d, "calculator", {"expression": "40 + 2"})
    st, _, body, js = d.request("GET", "/v1/audit?kind=tool_call", key=d.admin_key)
    assert st == 200, body
    recs = js.get("records", [])
    assert any((r.get("data") or {}).get("tool") == "calculator" for r in recs), body[:500]


def test_grep_and_search_docs(d):
    st, _, body, _ = d.request("POST", "/v1/collections", key=d.admin_key, json={"name": "kb"})
    assert st in (200, 201), body
    text = "Travel policy\nBook trains for trips under 500 km.\nFlights need approval by a director.\n"
    st, _, body, _ = d.request("POST", "/v1/documents?collection=kb&title=travel", body=text, key=d.admin_key,
                               headers={"Content-Type": "text/plain"})
    assert st in (200, 201), body
    st, _, body, js = call(d, "grep", {"collection": "kb", "pattern": r"\b\d+ km\b"})
    assert st == 200, body
    m = js["result"]["matches"]
    assert len(m) == 1 and m[0]["line"] == 2 and m[0]["match"] == "500 km", js
    st, _, body, js = call(d, "grep", {"collection": "kb", "pattern": "^(x+x+)+y$"})
    assert st == 200 and js["result"]["count"] == 0, body
    st, _, body, js = call(d, "grep", {"collection": "nope", "pattern": "x"})
    assert st == 404, body
    st, _, body, js = call(d, "search_docs", {"query": "flights approval", "collection": "kb"})
    assert st == 200, body
    hits = js["result"]["hits"]
    assert hits and hits[0]["collection"] == "kb" and "director" in hits[0]["text"], js


if __name__ == "__main__":
    try:
        harness.main(globals())
    finally:
        SERVER.shutdown()
        shutil.rmtree(WORK, ignore_errors=True)
