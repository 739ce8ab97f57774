#!/usr/bin/env python3
"""bench/chat_concurrency.py: time to first token and tokens/s for N concurrent
streaming clients of /v1/chat/completions on a running agentd.

    bench/chat_concurrency.py --url http://127.0.0.1:8080 --key KEY [--clients 1,4,16] [--max-tokens 64]

With no --url it starts build/agentd itself on a free port with the default
model (or --model FILE.gguf) and a temporary data directory."""
import argparse
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def one_client(url, key, prompt, max_tokens, out):
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    body = json.dumps({"messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
                       "temperature": 0, "stream": True, "stream_options": {"include_usage": True}})
    t0 = time.monotonic()
    conn.request("POST", "/v1/chat/completions", body=body,
                 headers={"Authorization": "Bearer " + key, "Content-Type": "application/json"})
    r = conn.getresponse()
    first = None
    tokens = 0
    while True:
        line = r.readline()
        if not line:
            break
        line = line.decode().strip()
        if not line.startswith("data: ") or line == "data: [DONE]":
            if line == "data: [DONE]":
                break
            continue
        chunk = json.loads(line[6:])
        if chunk.get("usage"):
            tokens = chunk["usage"]["completion_tokens"]
        if chunk.get("choices") and chunk["choices"][0]["delta"].get("content") and first is None:
            first = time.monotonic() - t0
    total = time.monotonic() - t0
    conn.close()
    out.append({"ttft": first if first is not None else total, "total": total, "tokens": tokens})


def start_daemon(model):
    data = tempfile.mkdtemp(prefix="agentd-bench-")
    cmd = [os.path.join(ROOT, "build", "agentd"), "serve", "--listen", "127.0.0.1:0", "--data", data,
           "--threads", "20", "--log_level", "warn"]
    if model:
        cmd += ["--model", model]
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in p.stdout:
        m = re.search(r"listening on (http://[^ ]+)", line)
        if m:
            with open(os.path.join(data, "admin.key")) as f:
                return p, data, m.group(1), f.read().strip()
    raise SystemExit("agentd did not start")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url")
    ap.add_argument("--key")
    ap.add_argument("--model")
    ap.add_argument("--clients", default="1,4,16")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--prompt", default="Summarise the travel policy for new employees in two sentences.")
    a = ap.parse_args()
    proc = data = None
    url, key = a.url, a.key
    if not url:
        proc, data, url, key = start_daemon(a.model)
    try:
        print("%8s %10s %10s %12s %14s" % ("clients", "ttft_p50", "ttft_max", "tok/s/client", "tok/s_total"))
        for n in [int(x) for x in a.clients.split(",")]:
            out = []
            threads = [threading.Thread(target=one_client, args=(url, key, a.prompt, a.max_tokens, out))
                       for _ in range(n)]
            t0 = time.monotonic()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.monotonic() - t0
            ttft = [o["ttft"] for o in out]
            per = [o["tokens"] / max(o["total"] - o["ttft"], 1e-9) for o in out if o["tokens"] > 1]
            total_tokens = sum(o["tokens"] for o in out)
            print("%8d %9.2fs %9.2fs %12.2f %14.2f" % (n, statistics.median(ttft), max(ttft),
                                                      statistics.median(per) if per else 0, total_tokens / wall))
            sys.stdout.flush()
    finally:
        if proc:
            proc.terminate()
            proc.wait()
            shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
