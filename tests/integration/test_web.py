"""The web console: static files served by agentd at / with security headers,
no way out of web_root, the install-directory fallback, and the browser test
(tests/integration/js/web_test.mjs in headless Chromium) against agentd with
--remote pointed at the scripted model of fake_openai.py. Screenshots go to
$BUILD/test-output/web/."""
import hashlib
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib

import fake_openai
import harness
from harness import Agentd

HERE = os.path.dirname(os.path.abspath(__file__))
JS = os.path.join(HERE, "js")
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


def test_static_files_and_headers(d):
    for path, ctype in [("/", "text/html"), ("/index.html", "text/html"), ("/app.js", "text/javascript"),
                        ("/api.js", "text/javascript"), ("/style.css", "text/css")]:
        st, h, body, _ = d.request("GET", path)
        assert st == 200, (path, st)
        assert h["content-type"].startswith(ctype), (path, h["content-type"])
        assert h["content-security-policy"] == CSP, h.get("content-security-policy")
        assert h["x-frame-options"] == "DENY" and h["x-content-type-options"] == "nosniff"
        assert h["referrer-policy"] == "no-referrer"
        with open(os.path.join(harness.AGENTD_SRC, "web", path.strip("/") or "index.html"), "rb") as f:
            assert body == f.read(), path
    st, h, body, _ = d.request("HEAD", "/app.js")
    assert st == 200 and body == b"" and int(h["content-length"]) > 100


def test_page_has_no_inline_script(d):
    st, _, body, _ = d.request("GET", "/")
    text = body.decode()
    assert "<script type=\"module\" src=\"app.js\"></script>" in text
    assert text.count("<script") == 1, "inline script"
    assert not re.search(r"<[^>]*\son[a-z]+\s*=", text), "inline event handler"
    assert "style=" not in text, "inline style (style-src 'self' forbids it)"


def test_no_way_out_of_web_root(d):
    for path in ["/..", "/%2e%2e", "/..%2fMakefile", "/%2e%2e%2fMakefile", "/.hidden.js", "/a%00.js",
                 "/%2fetc%2fpasswd", "/app.js%2f..%2f..%2fMakefile", "/missing.js", "/Makefile",
                 "/web/app.js", "/app.c"]:
        st, h, body, js = d.request("GET", path)
        assert st == 404, (path, st, body[:80])
        assert js and js["error"]["code"], (path, body)
    st, _, _, _ = d.request("POST", "/")
    assert st == 405
    # Literal routes still win over /{file}.
    st, _, _, js = d.request("GET", "/healthz")
    assert st == 200 and js == {"status": "ok"}
    # Data routes still need the key.
    st, _, _, _ = d.request("GET", "/v1/runs")
    assert st == 401


def test_install_dir_fallback_and_disabled_console(d):
    """From another directory web_root "web" resolves next to bin/: <exe>/../../web."""
    tmp = harness.tmpdir("agentd-web-")
    try:
        os.makedirs(os.path.join(tmp, "bin"))
        os.makedirs(os.path.join(tmp, "web"))
        shutil.copy(harness.AGENTD_BIN, os.path.join(tmp, "bin", "agentd"))
        with open(os.path.join(tmp, "web", "index.html"), "w") as f:
            f.write("<!doctype html><title>installed</title>")
        data = os.path.join(tmp, "data")
        proc = subprocess.Popen([os.path.join(tmp, "bin", "agentd"), "serve", "--listen", "127.0.0.1:0",
                                 "--data", data], cwd="/", stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
        try:
            port = None
            for line in proc.stdout:
                if "listening on http://" in line:
                    port = int(line.rsplit(":", 1)[1].split("/")[0].split()[0])
                    break
            assert port, "installed agentd did not start"
            probe = Agentd()
            probe.port = port
            st, h, body, _ = probe.request("GET", "/")
            assert st == 200 and b"installed" in body, (st, body[:100])
            st, _, _, _ = probe.request("GET", "/app.js")
            assert st == 404
            shutil.rmtree(probe.data_dir, ignore_errors=True)
        finally:
            proc.terminate()
            proc.wait(30)
        # An empty web_root turns the console off.
        with Agentd(config={"web_root": ""}) as off:
            st, _, _, js = off.request("GET", "/")
            assert st == 404 and "disabled" in js["error"]["message"], js
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def memory_export(payload, tokens, model="model-web"):
    """A memory export in memory_export's documented layout, so the browser has memory to reset."""
    crc = zlib.crc32(payload) & 0xffffffff
    blob = b"AGMS" + struct.pack("<IQI", 1, len(payload), crc) + zlib.compress(payload, 1)
    mid = model.encode()
    body = (b"AGMX" + struct.pack("<II", 1, len(mid)) + mid +
            struct.pack("<qQQ", tokens, len(payload), len(blob)) + blob)
    return body + hashlib.sha256(body).digest()


def test_browser(d):
    build = os.environ.get("AGENTD_BUILD") or os.path.join(harness.AGENTD_SRC, os.environ.get("BUILD", "build"))
    out_dir = os.path.join(build, "test-output", "web")
    os.makedirs(out_dir, exist_ok=True)
    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not os.path.exists(chromium) or not os.path.isdir(os.path.join(JS, "node_modules", "playwright-core")) \
            or not shutil.which("node"):
        d.skipped = "chromium, node or playwright-core is not installed (run scripts/deps.sh and npm ci)"
        return
    st, _, body, js = d.request("PUT", "/v1/memory/import", body=memory_export(bytes(range(256)) * 40, 321),
                                key=d.admin_key, headers={"Content-Type": "application/octet-stream"})
    assert st == 200 and js["tokens"] == 321, body
    repo = harness.tmpdir("agentd-web-git-")
    try:
        git = ["git", "-C", repo, "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
        subprocess.run(["git", "init", "-q", repo], check=True)
        with open(os.path.join(repo, "TRAVEL.md"), "w") as f:
            f.write("# Travel\n\nTrains are preferred over flights for trips under 500 km.\n")
        subprocess.run(git + ["add", "."], check=True)
        subprocess.run(git + ["commit", "-q", "-m", "travel policy"], check=True)
        env = dict(os.environ, AGENTD_URL=d.url, AGENTD_KEY=d.admin_key, OUT_DIR=out_dir, CHROMIUM=chromium,
                   GIT_REPO=repo)
        p = subprocess.run(["node", os.path.join(JS, "web_test.mjs")], cwd=JS, env=env, capture_output=True,
                           text=True, timeout=300)
    finally:
        shutil.rmtree(repo, ignore_errors=True)
    sys.stdout.write(p.stdout)
    sys.stdout.write(p.stderr[-3000:])
    lines = p.stdout.strip().splitlines()
    if lines and lines[-1].endswith("1 skipped"):
        d.skipped = lines[-2] if len(lines) > 1 else "chromium could not start"
        return
    assert p.returncode == 0 and lines and lines[-1].endswith(" 0 failed"), "browser test failed"


if __name__ == "__main__":
    srv = fake_openai.start()
    url = "http://127.0.0.1:%d/v1" % srv.server_address[1]
    tests = [(k, v) for k, v in list(globals().items()) if k.startswith("test_") and callable(v)]
    passed = failed = 0
    skipped = []
    import traceback
    with Agentd(config={"remote": url, "remote_model": "big-remote"}) as d:
        for name, fn in tests:
            d.skipped = None
            try:
                fn(d)
                if d.skipped:
                    skipped.append(name)
                    print("skip %s: %s" % (name, d.skipped), flush=True)
                else:
                    passed += 1
                    print("ok   " + name, flush=True)
            except Exception:
                failed += 1
                print("FAIL " + name)
                traceback.print_exc(file=sys.stdout)
                print("".join(d.stderr_lines[-20:]))
    # The daemon (an ASan build under `make BUILD=build-asan`) must have stopped cleanly.
    bad = [l for l in d.stderr_lines if "Sanitizer" in l or "runtime error" in l]
    if bad:
        failed += 1
        print("FAIL daemon reported sanitizer errors:\n" + "".join(bad[:20]))
    print("%d passed, %d failed%s" % (passed, failed, ", %d skipped" % len(skipped) if skipped else ""))
    raise SystemExit(1 if failed else 0)
