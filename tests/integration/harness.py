"""Integration-test harness: starts a real agentd on a free loopback port with
a fresh data directory and talks HTTP to it (Python 3 standard library only).

    def test_x(d): st, headers, body, js = d.request("GET", "/healthz")
    if __name__ == "__main__": harness.main(globals())
"""
import atexit
import http.client
import json as jsonlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

AGENTD_BIN = os.environ.get("AGENTD_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "agentd")
AGENTD_SRC = os.environ.get("AGENTD_SRC") or os.path.join(os.path.dirname(__file__), "..", "..")


def tmpdir(prefix):
    """A fresh directory, removed when the test process exits."""
    path = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, path, True)
    return path


class Agentd:
    """A running agentd. Use as a context manager or call start()/stop()."""

    def __init__(self, config=None, args=None, data_dir=None, env=None):
        self.config = dict(config or {})
        self.args = list(args or [])
        self.own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="agentd-it-")
        self.env = env
        self.proc = None
        self.port = None
        self.url = None
        self.admin_key = None
        self.stdout_lines = []
        self.stderr_lines = []

    # -------------------------------------------------------------- process
    def start(self, timeout=30):
        cmd = [AGENTD_BIN, "serve", "--listen", "127.0.0.1:0", "--data", self.data_dir]
        for k, v in self.config.items():
            cmd += ["--" + k, str(v)]
        cmd += self.args
        env = dict(os.environ)
        if self.env:
            env.update(self.env)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     cwd=AGENTD_SRC, env=env, text=True)
        self.stdout_lines, self.stderr_lines = [], []
        ready = threading.Event()

        def pump(stream, sink, watch):
            for line in stream:
                sink.append(line)
                if watch:
                    m = re.search(r"listening on http://[^:]+:(\d+)", line)
                    if m:
                        self.port = int(m.group(1))
                        ready.set()
            ready.set()

        threading.Thread(target=pump, args=(self.proc.stdout, self.stdout_lines, True), daemon=True).start()
        threading.Thread(target=pump, args=(self.proc.stderr, self.stderr_lines, False), daemon=True).start()
        if not ready.wait(timeout) or self.port is None:
            self.proc.kill()
            raise RuntimeError("agentd did not start:\n" + "".join(self.stdout_lines + self.stderr_lines))
        self.url = "http://127.0.0.1:%d" % self.port
        with open(os.path.join(self.data_dir, "admin.key")) as f:
            self.admin_key = f.read().strip()
        return self

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Stops the daemon with sig and returns its exit status."""
        if not self.proc:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.proc = None
        return rc

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def cleanup(self):
        self.stop()
        if self.own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()

    # ----------------------------------------------------------------- HTTP
    def request(self, method, path, json=None, body=None, headers=None, key=None, timeout=60):
        """Returns (status, headers dict with lower-case names, body bytes, parsed JSON or None)."""
        h = {}
        if json is not None:
            body = jsonlib.dumps(json).encode()
            h["Content-Type"] = "application/json"
        if isinstance(body, str):
            body = body.encode()
        if key:
            h["Authorization"] = "Bearer " + key
        if headers:
            h.update(headers)
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=h)
            resp = conn.getresponse()
            data = resp.read()
            hdrs = {k.lower(): v for k, v in resp.getheaders()}
        finally:
            conn.close()
        parsed = None
        if hdrs.get("content-type", "").startswith("application/json"):
            try:
                parsed = jsonlib.loads(data)
            except ValueError:
                parsed = None
        return resp.status, hdrs, data, parsed

    def create_key(self, tenant=None, user="user", role="viewer", key=None):
        payload = {"user": user, "role": role}
        if tenant and tenant != "default":
            # Keys of another tenant are made with the CLI: REST keeps admins inside their tenant.
            out = self.cli("keys", "create", "--tenant", tenant, "--user", user, "--role", role)
            if out.returncode != 0:
                raise RuntimeError("keys create failed: " + out.stderr)
            return out.stdout.strip().splitlines()[-1]
        st, _, body, js = self.request("POST", "/v1/keys", json=payload, key=key or self.admin_key)
        if st != 201:
            raise RuntimeError("POST /v1/keys -> %d %r" % (st, body))
        return js["key"]

    # ------------------------------------------------------------------ CLI
    def cli(self, *args, input=None, timeout=300):
        cmd = [AGENTD_BIN] + list(args) + ["--data", self.data_dir]
        return subprocess.run(cmd, capture_output=True, text=True, input=input, timeout=timeout,
                              cwd=AGENTD_SRC)


def run_plain(namespace):
    """Runs every test_* function in namespace, each called without arguments (tests
    that need no daemon); prints 'N passed, N failed' and exits 1 if any failed."""
    passed = failed = 0
    for name, fn in list(namespace.items()):
        if name.startswith("test_") and callable(fn):
            try:
                fn()
                passed += 1
                print("ok   " + name, flush=True)
            except Exception:
                failed += 1
                print("FAIL " + name, flush=True)
                traceback.print_exc()
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


def main(namespace, config=None, args=None, env=None):
    """Runs every test_* function in namespace against one daemon; prints 'N passed, N failed'."""
    tests = [(n, f) for n, f in namespace.items() if n.startswith("test_") and callable(f)]
    passed = failed = 0
    d = Agentd(config=config, args=args, env=env)
    try:
        d.start()
        for name, fn in tests:
            t0 = time.monotonic()
            try:
                if not d.alive():
                    d.start()
                fn(d)
                passed += 1
                print("ok   %s (%.2fs)" % (name, time.monotonic() - t0), flush=True)
            except Exception:
                failed += 1
                print("FAIL %s" % name, flush=True)
                traceback.print_exc(file=sys.stdout)
                print("---- daemon stderr (last 30 lines) ----")
                print("".join(d.stderr_lines[-30:]))
    finally:
        d.cleanup()
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed or not passed else 0)
