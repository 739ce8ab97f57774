"""Streaming clients and the engine's slots: a client that goes away mid-stream
stops its generation at once (the decode steps stop and the stream's slot is
freed, long before max_tokens would end it), and concurrent streams are decoded
together in batched passes (the engine's counters in /metrics show it).
A random model keeps the streams long whatever the shipped model learns: greedy,
it goes on for thousands of tokens, and it is wide enough (512) that 2,000 of
them take seconds (a 64-wide one now decodes its 2,872 in a quarter of a
second, shorter than the server's keep-alive writes take to notice a client
that left)."""
import http.client
import json
import os
import re
import subprocess
import threading
import time

import harness

BUILD = os.environ.get("AGENTD_BUILD") or os.path.join(os.path.dirname(__file__), "..", "..", "build")


def metric(d, name):
    st, _, body, _ = d.request("GET", "/metrics", key=d.admin_key)
    assert st == 200, body
    m = re.search(r"^%s (\d+)$" % name, body.decode() if isinstance(body, bytes) else body, re.M)
    assert m, name
    return int(m.group(1))


def open_stream(d, content, max_tokens):
    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=60)
    conn.request("POST", "/v1/chat/completions", body=json.dumps({
        "messages": [{"role": "user", "content": content}], "max_tokens": max_tokens, "temperature": 0,
        "stream": True}), headers={"Authorization": "Bearer " + d.admin_key, "Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200
    return conn, resp


def test_disconnect_stops_generation(d):
    # control: left alone, this request runs to its 2,000 tokens
    t0 = time.monotonic()
    st, _, body, js = d.request("POST", "/v1/chat/completions", key=d.admin_key, json={
        "messages": [{"role": "user", "content": "Tell me everything about the handbook."}],
        "max_tokens": 2000, "temperature": 0})
    assert st == 200, body
    control = js["usage"]["completion_tokens"]
    print("   control: %d tokens in %.2f s" % (control, time.monotonic() - t0))
    assert control == 2000, js["usage"]
    conn, resp = open_stream(d, "Tell me everything about the handbook.", 2000)
    # the model is still in its think block (nothing streamed yet): the stop must not wait for text
    deadline = time.monotonic() + 5
    while metric(d, "agentd_streams_generating") != 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert metric(d, "agentd_streams_generating") == 1
    steps_before = metric(d, "agentd_decode_steps_total")
    conn.sock.close()
    conn.close()
    deadline = time.monotonic() + 3
    while metric(d, "agentd_streams_generating") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert metric(d, "agentd_streams_generating") == 0, "the generation went on after the client left"
    steps = metric(d, "agentd_decode_steps_total")
    time.sleep(0.3)
    assert metric(d, "agentd_decode_steps_total") == steps  # nothing decodes any more
    assert steps - steps_before < control / 4, (steps_before, steps, control)  # far short of the control


def test_concurrent_streams_share_passes(d):
    p0, s0 = metric(d, "agentd_decode_passes_total"), metric(d, "agentd_decode_steps_total")
    done = []

    def client(i):
        conn, resp = open_stream(d, "Question %d about leave." % i, 64)
        while True:
            line = resp.readline().decode()
            if not line or "[DONE]" in line:
                break
        conn.close()
        done.append(i)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(done) == 8
    passes = metric(d, "agentd_decode_passes_total") - p0
    steps = metric(d, "agentd_decode_steps_total") - s0
    print("   8 streams: %d steps in %d passes" % (steps, passes))
    assert steps > 0 and passes < steps, (passes, steps)


if __name__ == "__main__":
    model = os.path.join(harness.tmpdir("agentd-disconnect-"), "long.gguf")
    subprocess.run([os.path.join(BUILD, "jamba_random"), model, "--layers", "4", "--embd", "512", "--vocab",
                    "4000", "--seed", "9"], check=True, capture_output=True)
    raise SystemExit(harness.main(globals(), config={"threads": "16", "model": model}))
