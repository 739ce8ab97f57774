"""/v1/chat/completions and /v1/models served by agentd with --remote pointed
at a scripted OpenAI-compatible server: plain, streamed, tool calls, JSON
schema, retries, OpenAI-style errors for malformed requests, and the API key
passed on but never logged."""
import http.client
import json

import fake_openai
from harness import Agentd

SECRET = "sk-remote-secret-4242"


def chat(d, body, key=None):
    return d.request("POST", "/v1/chat/completions", json=body, key=key or d.admin_key)


def stream(d, body):
    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=30)
    conn.request("POST", "/v1/chat/completions", body=json.dumps(body),
                 headers={"Authorization": "Bearer " + d.admin_key, "Content-Type": "application/json"})
    r = conn.getresponse()
    assert r.status == 200, r.read()
    assert r.getheader("Content-Type") == "text/event-stream"
    chunks = []
    while True:
        line = r.readline()
        if not line:
            break
        line = line.decode().strip()
        if not line.startswith("data: "):
            continue
        data = line[6:]
        chunks.append(data)
        if data == "[DONE]":
            break
    conn.close()
    return chunks


def test_models(d):
    st, _, _, js = d.request("GET", "/v1/models", key=d.admin_key)
    assert st == 200 and js["object"] == "list" and js["data"][0]["id"] == "big-remote"


def test_plain_completion(d):
    st, _, body, js = chat(d, {"model": "big-remote", "messages": [{"role": "user", "content": "hello world"}],
                               "temperature": 0, "max_tokens": 20, "seed": 3})
    assert st == 200, body
    assert js["object"] == "chat.completion" and js["id"].startswith("chatcmpl-")
    assert js["choices"][0]["message"] == {"role": "assistant", "content": "echo: hello world"}
    assert js["choices"][0]["finish_reason"] == "stop"
    assert js["usage"] == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    sent = d.fake.requests[-1]
    assert sent["auth"] == "Bearer " + SECRET
    assert sent["body"]["model"] == "big-remote" and sent["body"]["max_tokens"] == 20 and sent["body"]["seed"] == 3


def test_streamed_completion(d):
    chunks = stream(d, {"messages": [{"role": "user", "content": "one two three"}], "stream": True,
                        "stream_options": {"include_usage": True}})
    assert chunks[-1] == "[DONE]"
    objs = [json.loads(c) for c in chunks[:-1]]
    assert all(o["object"] == "chat.completion.chunk" for o in objs)
    text = "".join(o["choices"][0]["delta"].get("content", "") for o in objs if o.get("choices"))
    assert text == "echo: one two three"
    assert [o for o in objs if o.get("choices") and o["choices"][0]["finish_reason"] == "stop"]
    assert objs[-1]["usage"]["total_tokens"] == 10


def test_tool_call(d):
    tools = [{"type": "function", "function": {"name": "calculator", "description": "math", "parameters": {
        "type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]}}}]
    st, _, body, js = chat(d, {"messages": [{"role": "user", "content": "calc 6*7"}], "tools": tools})
    assert st == 200, body
    msg = js["choices"][0]["message"]
    assert js["choices"][0]["finish_reason"] == "tool_calls"
    call = msg["tool_calls"][0]
    assert call["type"] == "function" and call["function"]["name"] == "calculator"
    assert json.loads(call["function"]["arguments"]) == {"expression": "6*7"}
    # The tool's answer goes back as a tool message.
    st, _, body, js = chat(d, {"messages": [
        {"role": "user", "content": "calc 6*7"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "42"},
        {"role": "user", "content": "thanks"}], "tools": tools})
    assert st == 200, body
    sent = d.fake.requests[-1]["body"]["messages"]
    assert sent[2]["role"] == "tool" and sent[2]["content"] == "42"


def test_json_schema(d):
    rf = {"type": "json_schema", "json_schema": {"name": "a", "schema": {
        "type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}}}
    st, _, body, js = chat(d, {"messages": [{"role": "user", "content": "q"}], "response_format": rf})
    assert st == 200, body
    assert json.loads(js["choices"][0]["message"]["content"]) == {"answer": "q"}
    assert d.fake.requests[-1]["body"]["response_format"] == rf


def test_retry_then_success_and_server_errors(d):
    st, _, body, js = chat(d, {"messages": [{"role": "user", "content": "fail-429 please"}]})
    assert st == 200, body
    st, _, body, js = chat(d, {"messages": [{"role": "user", "content": "fail-500"}]})
    assert st == 500 and js["error"]["type"] == "server_error" and "scripted failure" in js["error"]["message"]


def test_malformed_requests(d):
    cases = [
        ({"messages": "hi"}, "messages"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "king", "content": "x"}]}, "messages[0]"),
        ({"messages": [{"role": "user"}]}, "messages[0]"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0]"),
        ({"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}, "temperature"),
        ({"messages": [{"role": "user", "content": "x"}], "n": 2}, "n"),
        ({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}, "max_tokens"),
        ({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {
            "name": "f", "parameters": {"type": "banana"}}}]}, "tools[0]"),
        ({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {
            "name": "bad name!"}}]}, "tools[0]"),
        ({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema",
                                                                              "json_schema": {"schema": 3}}},
         "response_format"),
        ({"messages": [{"role": "user", "content": "x"}], "frobnicate": 1}, "frobnicate"),
        ({"messages": [{"role": "user", "content": "x"}], "model": "gpt-9"}, "model"),
    ]
    for body, param in cases:
        st, _, raw, js = chat(d, body)
        assert st in (400, 404), (body, st, raw)
        err = js["error"]
        assert err["type"] == "invalid_request_error" and err["param"] == param and err["message"], (body, js)
    st, _, _, js = d.request("POST", "/v1/chat/completions", body=b"{not json", key=d.admin_key)
    assert st == 400 and js["error"]["type"] == "invalid_request_error"
    # 10 MB of messages: refused as too long for the context, and the daemon keeps serving.
    big = {"messages": [{"role": "user", "content": "x" * (10 << 20)}]}
    st, _, _, js = chat(d, big)
    assert st == 400 and js["error"]["code"] == "context_length_exceeded"
    st, _, _, js = chat(d, {"messages": [{"role": "user", "content": "still here"}]})
    assert st == 200 and js["choices"][0]["message"]["content"] == "echo: still here"


def test_secret_never_logged(d):
    assert SECRET not in "".join(d.stderr_lines + d.stdout_lines)


class FakeRef:
    def __init__(self, srv):
        self.srv = srv

    @property
    def requests(self):
        return fake_openai.REQUESTS


if __name__ == "__main__":
    srv = fake_openai.start()
    url = "http://127.0.0.1:%d/v1" % srv.server_address[1]
    tests = {k: v for k, v in globals().items() if k.startswith("test_")}
    passed = failed = 0
    import traceback
    with Agentd(config={"remote": url, "remote_model": "big-remote", "max_body_bytes": 16 << 20},
                env={"AGENTD_REMOTE_API_KEY": SECRET}) as d:
        d.fake = FakeRef(srv)
        for name, fn in tests.items():
            try:
                fn(d)
                passed += 1
                print("ok   " + name, flush=True)
            except Exception:
                failed += 1
                print("FAIL " + name)
                traceback.print_exc()
                print("".join(d.stderr_lines[-20:]))
    print("%d passed, %d failed" % (passed, failed))
    raise SystemExit(1 if failed else 0)
