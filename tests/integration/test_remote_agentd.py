"""One agentd using another as its model (--remote): agentd B runs a local
(random) model; agentd A points its remote backend at B with B's key. A's chat
completions equal B's own for the same greedy request, streaming works through
both, and A's agent runs get their model calls from B."""
import json
import os
import subprocess
import time

import harness
from harness import Agentd

BUILD = os.environ.get("AGENTD_BUILD") or os.path.join(os.path.dirname(__file__), "..", "..", "build")


def main():
    tmp = harness.tmpdir("agentd-chain-")
    model = os.path.join(tmp, "chain.gguf")
    subprocess.run([os.path.join(BUILD, "jamba_random"), model, "--layers", "4", "--embd", "64", "--vocab", "600",
                    "--attn-period", "4", "--attn-offset", "2", "--seed", "5"], check=True, capture_output=True)
    passed = failed = 0

    def check(name, ok, detail=""):
        nonlocal passed, failed
        print(("ok   " if ok else "FAIL ") + name + ("" if ok else "  " + str(detail)), flush=True)
        passed += bool(ok)
        failed += not ok

    req = {"messages": [{"role": "user", "content": "tell me something"}], "max_tokens": 12, "temperature": 0}
    with Agentd(config={"model": model}) as b:
        with Agentd(config={"remote": b.url + "/v1", "remote_model": "chain"},
                    env={"AGENTD_REMOTE_API_KEY": b.admin_key}) as a:
            st, _, _, models = a.request("GET", "/v1/models", key=a.admin_key)
            check("A serves B's model name", st == 200 and models["data"][0]["id"] == "chain", models)
            st_b, _, _, direct = b.request("POST", "/v1/chat/completions", key=b.admin_key, json=req)
            st_a, _, _, via = a.request("POST", "/v1/chat/completions", key=a.admin_key, json=req)
            check("a completion through A equals B's own", st_a == 200 and st_b == 200 and
                  via["choices"][0]["message"]["content"] == direct["choices"][0]["message"]["content"] and
                  via["usage"]["completion_tokens"] == direct["usage"]["completion_tokens"], (via, direct))
            st, _, raw, _ = a.request("POST", "/v1/chat/completions", key=a.admin_key,
                                      json=dict(req, stream=True))
            chunks = [json.loads(l[6:]) for l in raw.decode().splitlines()
                      if l.startswith("data: ") and l != "data: [DONE]"]
            text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c.get("choices"))
            check("streaming through both", st == 200 and raw.decode().rstrip().endswith("data: [DONE]") and
                  text == direct["choices"][0]["message"]["content"], raw[:300])
            st, _, _, js = a.request("POST", "/v1/runs", key=a.admin_key,
                                     json={"input": "what is new?", "budget": {"max_steps": 2}})
            run = None
            for _ in range(400):
                _, _, _, run = a.request("GET", "/v1/runs/" + js["id"], key=a.admin_key)
                if run["status"] not in ("queued", "running"):
                    break
                time.sleep(0.05)
            calls = [s for s in run["steps"] if s.get("kind") == "model_call"]
            check("A's agent run takes its model calls from B", run["status"] in ("succeeded", "failed") and calls
                  and all(c["completion_tokens"] > 0 for c in calls), run)
            # B recorded A's calls as requests of its admin key.
            st, _, _, audit = b.request("GET", "/v1/audit?kind=request", key=b.admin_key)
            routes = [r["data"]["route"] for r in audit["records"]]
            check("B's audit log shows A's calls", routes.count("/v1/chat/completions") >= 3, routes)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
