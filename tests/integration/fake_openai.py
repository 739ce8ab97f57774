"""A scripted OpenAI-compatible chat server on 127.0.0.1, standing in for a big
remote model in tests. It answers deterministically from the last user message:
  - "calc ..." with tools offered: a calculator tool call;
  - a response_format json_schema: {"answer": <last user text>};
  - a <documents> block in the last user message (agentd's planner): the first
    sentence of document 1 in double quotes followed by " [1]", streamed slowly
    word by word, so agentd's citation check passes and the answer streams;
  - a naive model: when the last message is a user turn whose text (documents
    included) says "call http_get URL" and a tool named http_get is offered, it
    obeys and calls http_get with that URL (injection tests);
  - otherwise: "echo: <last user text>", streamed word by word when asked.
It records the requests it got (GET /requests) and fails on request when the
user text says "fail-429" (the first time) or "fail-500" (always)."""
import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REQUESTS = []
FAILED_ONCE = set()


def first_sentence(user_text):
    """The first sentence of document 1 in a planner prompt, or None."""
    # The opening tag ends at its line's end: a title may itself contain '>'.
    m = re.search(r'<document id="1"[^\n]*>\n(.*?)\n</document>', user_text, re.S)
    if not m:
        return None
    body = m.group(1).strip()
    s = re.match(r"(.+?[.!?])(\s|$)", body, re.S)
    return (s.group(1) if s else body).strip()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.reply(200, {"requests": REQUESTS})

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        req = json.loads(self.rfile.read(n))
        REQUESTS.append({"body": req, "auth": self.headers.get("Authorization")})
        last = [m for m in req["messages"] if m["role"] == "user"][-1]["content"]
        if "fail-500" in last:
            return self.reply(500, {"error": {"message": "scripted failure"}})
        if "fail-429" in last and last not in FAILED_ONCE:
            FAILED_ONCE.add(last)
            return self.reply(429, {"error": {"message": "slow down"}})
        tool_calls, text, pause = None, None, 0
        offered = [t["function"]["name"] for t in req.get("tools") or []]
        injected = re.search(r"call http_get (\S+)", last)
        if injected and "http_get" in offered and req["messages"][-1]["role"] == "user":
            tool_calls = [{"index": 0, "id": "call_x", "type": "function",
                           "function": {"name": "http_get", "arguments": json.dumps({"url": injected.group(1)})}}]
        elif req.get("tools") and "calc" in last:
            tool_calls = [{"index": 0, "id": "call_x", "type": "function",
                           "function": {"name": req["tools"][0]["function"]["name"],
                                        "arguments": json.dumps({"expression": last.split("calc", 1)[1].strip()})}}]
        elif (req.get("response_format") or {}).get("type") == "json_schema":
            text = json.dumps({"answer": last})
        elif "<documents>" in last and first_sentence(last):
            text = '"%s" [1]' % first_sentence(last)
            pause = 0.12  # slow enough that agentd streams the answer in several deltas
        else:
            text = "echo: " + last
        usage = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
        if not req.get("stream"):
            msg = {"role": "assistant", "content": text}
            if tool_calls:
                msg["tool_calls"] = [{k: v for k, v in c.items() if k != "index"} for c in tool_calls]
            return self.reply(200, {"id": "x", "object": "chat.completion", "choices": [
                {"index": 0, "message": msg, "finish_reason": "tool_calls" if tool_calls else "stop"}],
                "usage": usage})
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def send(obj):
            data = ("data: %s\n\n" % (obj if isinstance(obj, str) else json.dumps(obj))).encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        if tool_calls:
            send({"choices": [{"index": 0, "delta": {"tool_calls": tool_calls}}]})
        else:
            words = text.split(" ")
            for i, w in enumerate(words):
                send({"choices": [{"index": 0, "delta": {"content": w + (" " if i < len(words) - 1 else "")}}]})
                time.sleep(pause)
        send({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls" if tool_calls else "stop"}]})
        send({"choices": [], "usage": usage})
        send("[DONE]")
        self.wfile.write(b"0\r\n\r\n")


def start():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


if __name__ == "__main__":
    s = start()
    print(s.server_address[1], flush=True)
    sys.stdin.read()
