"""The official openai npm package talks to agentd unchanged: plain, streamed,
tool call and JSON-schema completions, and an OpenAI-shaped error. agentd runs
with --remote pointed at a scripted OpenAI-compatible server, so this checks
agentd's protocol, not a model's quality; then once more on the local engine
with the shipped model, where the JSON-schema answer and the tool call (forced
with tool_choice "required") come from constrained decoding and must be valid
whatever the small model would have written. Skips (with the reason) when npm
has not installed the package (tests/integration/js: npm ci)."""
import json
import os
import shutil
import subprocess
import sys

import fake_openai
from harness import Agentd

HERE = os.path.dirname(os.path.abspath(__file__))
JS = os.path.join(HERE, "js")


def main():
    if not shutil.which("node") or not os.path.isdir(os.path.join(JS, "node_modules", "openai")):
        print("skipped: node or the openai package is missing (run npm ci in tests/integration/js)")
        print("0 passed, 0 failed, 1 skipped")
        return 0
    srv = fake_openai.start()
    url = "http://127.0.0.1:%d/v1" % srv.server_address[1]
    with Agentd(config={"remote": url, "remote_model": "big-remote"}) as d:
        env = dict(os.environ, AGENTD_URL=d.url, AGENTD_KEY=d.admin_key, AGENTD_MODEL="big-remote")
        p = subprocess.run(["node", "openai_client.mjs"], cwd=JS, env=env, capture_output=True, text=True,
                           timeout=300)
        if p.returncode != 0:
            print(p.stdout, p.stderr)
            print("".join(d.stderr_lines[-30:]))
            print("0 passed, 1 failed")
            return 1
        out = json.loads(p.stdout.strip().splitlines()[-1])
    checks = {
        "plain": out["plain"]["content"] == "echo: hello from the sdk" and out["plain"]["finish"] == "stop"
        and out["plain"]["usage"]["total_tokens"] == 10,
        "stream": out["stream"]["content"] == "echo: stream this please" and out["stream"]["chunks"] >= 4
        and out["stream"]["usage"]["total_tokens"] == 10,
        "tool": out["tool"]["finish"] == "tool_calls" and out["tool"]["name"] == "calculator"
        and json.loads(out["tool"]["arguments"]) == {"expression": "12*7"},
        "json": json.loads(out["json"]["content"]) == {"answer": "give json"},
        "error": out["error"]["status"] == 400 and out["error"]["type"] == "invalid_request_error",
    }
    shipped = os.path.join(os.environ.get("AGENTD_SRC") or os.path.join(HERE, "..", ".."), "models",
                           "agentd-small.gguf")
    if os.path.exists(shipped):
        with Agentd(config={"model": shipped}) as d:
            env = dict(os.environ, AGENTD_URL=d.url, AGENTD_KEY=d.admin_key, AGENTD_MODEL="agentd-small",
                       TOOL_CHOICE="required", TOOL_MAX_TOKENS="200", JSON_MAX_TOKENS="400")
            p = subprocess.run(["node", "openai_client.mjs"], cwd=JS, env=env, capture_output=True, text=True,
                               timeout=600)
            local = json.loads(p.stdout.strip().splitlines()[-1]) if p.returncode == 0 else None
        if local is None:
            print(p.stdout, p.stderr)
            checks["local model: the client ran"] = False
        else:
            try:
                args = json.loads(local["tool"]["arguments"] or "null")
                answer = json.loads(local["json"]["content"])
            except ValueError:
                args = answer = None
            checks["local model: plain and streamed"] = isinstance(local["plain"]["content"], str) \
                and local["stream"]["chunks"] >= 2
            checks["local model: tool_choice required gives a valid call"] = \
                local["tool"]["finish"] == "tool_calls" and local["tool"]["name"] == "calculator" \
                and isinstance(args, dict) and set(args) == {"expression"} and isinstance(args["expression"], str)
            checks["local model: json_schema answer validates"] = isinstance(answer, dict) \
                and set(answer) == {"answer"} and isinstance(answer["answer"], str)
            out["local"] = local
    else:
        print("note: %s is missing; the local-model leg is skipped" % shipped)
    for name, ok in checks.items():
        print(("ok   " if ok else "FAIL ") + name)
    if not all(checks.values()):
        print(json.dumps(out, indent=1))
    failed = sum(1 for ok in checks.values() if not ok)
    print("%d passed, %d failed" % (len(checks) - failed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
