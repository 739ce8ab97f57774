"""The HTTP skeleton against a real daemon: auth, errors, limits, metrics,
request ids, graceful shutdown and allocation-failure handling."""
import json
import os
import re
import signal
import socket
import sqlite3
import stat
import time

import harness
from harness import Agentd


def raw_request(port, data, read=True, timeout=10):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(data)
    if not read:
        return s
    out = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        out += chunk
    s.close()
    return out


def test_healthz_and_request_id(d):
    st, h, body, js = d.request("GET", "/healthz")
    assert st == 200 and js == {"status": "ok"}, body
    assert len(h["x-request-id"]) == 16
    st, h, _, _ = d.request("GET", "/healthz", headers={"X-Request-Id": "trace-abc.1"})
    assert h["x-request-id"] == "trace-abc.1"
    # An id that could smuggle text into logs is replaced.
    st, h, _, _ = d.request("GET", "/healthz", headers={"X-Request-Id": "a b"})
    assert h["x-request-id"] != "a b"


def test_admin_key_file_and_hashing(d):
    path = os.path.join(d.data_dir, "admin.key")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    key = d.admin_key
    assert key.startswith("ag_") and len(key) >= 35
    db = sqlite3.connect(os.path.join(d.data_dir, "agentd.db"))
    rows = db.execute("SELECT key_id, hash FROM api_keys").fetchall()
    db.close()
    assert rows
    for key_id, h in rows:
        assert key not in str(h) and key[3:] != key_id


def test_missing_and_wrong_key_401(d):
    st, h, _, js = d.request("GET", "/v1/keys")
    assert st == 401 and js["error"]["code"] == "unauthorized"
    assert h.get("www-authenticate") == "Bearer"
    st, _, _, js = d.request("GET", "/v1/keys", key="ag_" + "x" * 44)
    assert st == 401 and js["error"]["code"] == "unauthorized"
    st, _, _, js = d.request("GET", "/v1/keys", key=d.admin_key[:-1] + ("A" if d.admin_key[-1] != "A" else "B"))
    assert st == 401
    st, _, _, _ = d.request("GET", "/v1/keys", headers={"Authorization": "Basic " + d.admin_key})
    assert st == 401


def test_viewer_forbidden_on_admin_route(d):
    viewer = d.create_key(user="vera", role="viewer")
    st, _, _, js = d.request("POST", "/v1/keys", json={"user": "x", "role": "admin"}, key=viewer)
    assert st == 403 and js["error"]["code"] == "forbidden", js
    st, _, _, js = d.request("GET", "/v1/keys", key=viewer)
    assert st == 403


def test_malformed_json_400(d):
    st, _, _, js = d.request("POST", "/v1/keys", body=b'{"user": "a", ', key=d.admin_key)
    assert st == 400 and js["error"]["code"] == "bad_request"
    assert "invalid JSON" in js["error"]["message"]
    st, _, _, js = d.request("POST", "/v1/keys", json=["not", "an", "object"], key=d.admin_key)
    assert st == 400 and "JSON object" in js["error"]["message"]
    st, _, _, js = d.request("POST", "/v1/keys", json={"user": "a", "role": "emperor"}, key=d.admin_key)
    assert st == 400 and "unknown role" in js["error"]["message"]
    st, _, _, js = d.request("POST", "/v1/keys", json={"user": 5, "role": "viewer"}, key=d.admin_key)
    assert st == 400 and "'user' must be a string" in js["error"]["message"]
    st, _, _, js = d.request("POST", "/v1/keys", json={"user": "a", "role": "viewer", "x": 1}, key=d.admin_key)
    assert st == 400 and "unknown field 'x'" in js["error"]["message"]


def test_oversized_body_413(d):
    limit = 1 << 20  # the daemon of this script runs with max_body_bytes = 1 MiB
    st, _, _, js = d.request("POST", "/v1/keys", body=b"x" * (limit + 1), key=d.admin_key)
    assert st == 413 and js["error"]["code"] == "too_large"
    # Chunked upload without a Content-Length: refused once it passes the limit.
    head = ("POST /v1/keys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
            "Transfer-Encoding: chunked\r\n\r\n" % d.admin_key).encode()
    chunk = b"x" * 65536
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(20)) + b"0\r\n\r\n"
    out = raw_request(d.port, head + body)
    assert out.startswith(b"HTTP/1.1 413"), out[:200]
    assert d.alive()


def test_unknown_route_404_and_wrong_method_405(d):
    st, _, _, js = d.request("GET", "/v1/nothing-here", key=d.admin_key)
    assert st == 404 and js["error"]["code"] == "not_found"
    st, h, _, js = d.request("DELETE", "/v1/keys", key=d.admin_key)
    assert st == 405 and js["error"]["code"] == "method_not_allowed"
    assert "GET" in h["allow"] and "POST" in h["allow"]


def test_key_lifecycle_and_tenant_isolation(d):
    st, _, _, js = d.request("POST", "/v1/keys", json={"user": "ana", "role": "analyst"}, key=d.admin_key)
    assert st == 201 and js["key"].startswith("ag_") and js["tenant"] == "default"
    ana = js["key"]
    st, _, _, js = d.request("GET", "/healthz", key=ana)
    assert st == 200
    # Another tenant's admin sees only its own keys and cannot mint keys for us.
    other = d.create_key(tenant="globex", user="root", role="admin")
    st, _, _, js = d.request("GET", "/v1/keys", key=other)
    assert st == 200 and [k["user"] for k in js["keys"]] == ["root"]
    assert all("hash" not in k and "key" not in k for k in js["keys"])
    st, _, _, js = d.request("POST", "/v1/keys", json={"tenant": "default", "user": "x", "role": "admin"},
                             key=other)
    assert st == 403
    # Revocation: the key stops working at once; another tenant cannot revoke it.
    st, _, _, js = d.request("GET", "/v1/keys", key=d.admin_key)
    ana_id = [k["key_id"] for k in js["keys"] if k["user"] == "ana"][0]
    st, _, _, _ = d.request("DELETE", "/v1/keys/" + ana_id, key=other)
    assert st == 404
    st, _, _, _ = d.request("DELETE", "/v1/keys/" + ana_id, key=d.admin_key)
    assert st == 200
    st, _, _, _ = d.request("GET", "/v1/keys", key=ana)
    assert st == 401


def test_metrics(d):
    d.request("GET", "/healthz")
    d.request("GET", "/v1/keys")
    st, h, body, _ = d.request("GET", "/metrics")
    assert st == 200 and h["content-type"].startswith("text/plain")
    text = body.decode()
    assert 'agentd_http_requests_total{method="GET",route="/healthz",status="200"}' in text
    assert 'agentd_http_requests_total{method="GET",route="/v1/keys",status="401"}' in text
    assert "agentd_http_request_duration_seconds_bucket{le=\"+Inf\"}" in text
    m = re.search(r"^agentd_http_open_connections (\d+)$", text, re.M)
    assert m and int(m.group(1)) >= 1  # at least this very connection


def test_per_ip_connection_cap(_unused):
    # A daemon of its own with a long idle timeout, so no connection ends on its own mid-test.
    with Agentd(config={"per_ip_connections": 4, "connection_timeout": 60}) as d:
        socks = []
        try:
            for _ in range(4):
                socks.append(socket.create_connection(("127.0.0.1", d.port), timeout=5))
            time.sleep(0.2)
            extra = socket.create_connection(("127.0.0.1", d.port), timeout=5)
            extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                got = extra.recv(100)
            except ConnectionResetError:
                got = b""
            assert got == b"", got
            extra.close()
        finally:
            for s in socks:
                s.close()
        time.sleep(0.2)
        st, _, _, _ = d.request("GET", "/healthz")
        assert st == 200


def test_idle_connection_timeout(d):
    # connection_timeout is 2 seconds here: an idle connection is closed by the server.
    s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    t0 = time.monotonic()
    assert s.recv(10) == b""
    assert 1.0 < time.monotonic() - t0 < 8
    s.close()


def test_cli_usage_errors(d):
    out = d.cli("keys", "create", "--tenant", "t")
    assert out.returncode == 2 and "needs" in out.stderr
    out = d.cli("keys", "create", "--tenant", "t", "--user", "u", "--role", "king")
    assert out.returncode == 2 and "unknown role" in out.stderr
    out = d.cli("frobnicate")
    assert out.returncode == 2


def test_sigterm_lets_inflight_request_finish(d):
    body = json.dumps({"user": "late", "role": "viewer"}).encode()
    head = ("POST /v1/keys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\n"
            "Content-Length: %d\r\nConnection: close\r\n\r\n" % (d.admin_key, len(body))).encode()
    s = raw_request(d.port, head + body[:5], read=False)
    time.sleep(0.3)
    d.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    assert d.proc.poll() is None, "daemon exited with a request in flight"
    # New connections are refused while it drains.
    try:
        socket.create_connection(("127.0.0.1", d.port), timeout=2).close()
        refused = False
    except OSError:
        refused = True
    assert refused
    s.sendall(body[5:])
    out = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        out += chunk
    s.close()
    assert out.startswith(b"HTTP/1.1 201"), out[:200]
    assert b'"user":"late"' in out
    assert d.proc.wait(20) == 0
    # The database was closed cleanly: it opens and holds the key made during shutdown.
    db = sqlite3.connect(os.path.join(d.data_dir, "agentd.db"))
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert db.execute("SELECT COUNT(*) FROM api_keys WHERE user = 'late'").fetchone()[0] == 1
    db.close()
    d.proc = None
    d.start()  # later tests get a fresh daemon on the same data


def test_allocation_failures_answer_503_and_daemon_survives(_unused):
    with Agentd(config={"fault_injection": 1}) as f:
        payload = {"user": "faulty", "role": "viewer"}
        st, h, _, _ = f.request("POST", "/v1/keys", json=payload, key=f.admin_key)
        assert st == 201
        total = int(h["x-agentd-allocs"])
        assert total > 5
        for n in range(1, total + 1):
            st, h, body, js = f.request("POST", "/v1/keys", json=payload, key=f.admin_key,
                                        headers={"X-Agentd-Fail-Alloc": str(n)})
            assert st in (500, 503, 201), (n, st, body)
            if st != 201:
                assert body, n
            st2, _, _, _ = f.request("GET", "/healthz")
            assert st2 == 200, n
        # Also a failing GET with a path parameter and an error path.
        st, h, _, _ = f.request("DELETE", "/v1/keys/nope", key=f.admin_key)
        total = int(h["x-agentd-allocs"])
        for n in range(1, total + 1):
            st, _, _, _ = f.request("DELETE", "/v1/keys/nope", key=f.admin_key,
                                    headers={"X-Agentd-Fail-Alloc": str(n)})
            assert st in (404, 500, 503), (n, st)
        assert f.alive()
        assert f.stop() == 0  # under ASan a leak makes this non-zero


if __name__ == "__main__":
    harness.main(globals(), config={"max_body_bytes": 1 << 20, "per_ip_connections": 8,
                                    "connection_timeout": 2})
