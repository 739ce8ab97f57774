"""Per-user memory through /v1/chat/completions with a local (random) model:
`user` selects the memory, turns accumulate in it, it survives a restart, users
never share it, and only an admin key may name another user."""
import os
import subprocess

import harness
from harness import Agentd

BUILD = os.environ.get("AGENTD_BUILD") or os.path.join(os.path.dirname(__file__), "..", "..", "build")


def chat(d, key, user, text):
    st, _, body, js = d.request("POST", "/v1/chat/completions", key=key, json={
        "messages": [{"role": "user", "content": text}], "user": user, "max_tokens": 6, "temperature": 0})
    assert st == 200, body
    return js


def memory(d, user):
    st, _, body, js = d.request("GET", "/v1/memory?user=" + user, key=d.admin_key)
    assert st == 200, body
    return js


def main():
    tmp = harness.tmpdir("agentd-mem-")
    model = os.path.join(tmp, "m.gguf")
    subprocess.run([os.path.join(BUILD, "jamba_random"), model, "--layers", "4", "--embd", "64", "--vocab", "600",
                    "--attn-period", "4", "--attn-offset", "2"], check=True, capture_output=True)
    passed = failed = 0

    def check(name, ok):
        nonlocal passed, failed
        print(("ok   " if ok else "FAIL ") + name, flush=True)
        passed += ok
        failed += not ok

    with Agentd(config={"model": model}) as d:
        chat(d, d.admin_key, "ana", "my badge number is 4471")
        m1 = memory(d, "ana")
        check("first turn creates the memory", m1["tokens"] > 0 and m1["version"] == 1 and m1["bytes"] > 0)
        chat(d, d.admin_key, "ana", "what is my badge number?")
        m2 = memory(d, "ana")
        check("a second turn grows it", m2["version"] == 2 and m2["tokens"] > m1["tokens"])
        check("another user has none", memory(d, "bob")["tokens"] == 0)
        chat(d, d.admin_key, "bob", "hello")
        check("bob's memory is his own", memory(d, "bob")["version"] == 1 and memory(d, "ana")["version"] == 2)
        d.stop()
        d.start()
        m3 = memory(d, "ana")
        check("memory survives a restart", m3["tokens"] == m2["tokens"] and m3["version"] == 2)
        chat(d, d.admin_key, "ana", "thanks")
        check("and resumes after it", memory(d, "ana")["version"] == 3)
        viewer = d.create_key(user="vic", role="viewer")
        st, _, _, js = d.request("POST", "/v1/chat/completions", key=viewer, json={
            "messages": [{"role": "user", "content": "x"}], "user": "ana"})
        check("only an admin names another user", st == 403 and js["error"]["type"] == "permission_error")
        st, _, _, js = d.request("POST", "/v1/chat/completions", key=viewer, json={
            "messages": [{"role": "user", "content": "x"}], "user": "vic", "max_tokens": 4})
        st2, _, _, js2 = d.request("GET", "/v1/memory", key=viewer)
        check("a user's own memory", st == 200 and js2["user"] == "vic" and js2["version"] == 1)
        st, _, _, _ = d.request("DELETE", "/v1/memory?user=ana", key=d.admin_key)
        check("reset", st == 200 and memory(d, "ana")["tokens"] == 0)
        # Without `user` nothing is remembered.
        before = memory(d, "admin")["tokens"]
        st, _, _, _ = d.request("POST", "/v1/chat/completions", key=d.admin_key, json={
            "messages": [{"role": "user", "content": "x"}], "max_tokens": 4})
        check("no user, no memory", st == 200 and memory(d, "admin")["tokens"] == before)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
