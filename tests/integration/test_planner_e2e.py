"""Agent runs end to end through the REST API with the shipped default model
(models/agentd-small.gguf, the real engine, no scripted backend):
- 20 runs posted at once all finish (succeeded, or failed with a stated reason),
  each with its retrieval and model steps recorded, while the engine decodes
  them together in batched passes;
- budgets hold with the real model: a token budget stops a run and says so; a
  requirement the model does not meet (a two-word limit), with one step allowed, ends in an
  honest "could not satisfy" after exactly one model call (the step budget
  stopping a tool loop is in the planner's unit tests, tests/agentd/test_agent.c);
- every citation of a succeeded run names a chunk that run retrieved.
What the shipped model answers (sums through the calculator, "not found",
quotes) is scored in test_planner_quality.py."""
import json
import threading
import time

import harness

DOCS = {
    "Leave": "Employees get 30 days of paid leave each year. Leave requests go to the manager.",
    "Shipping": "Orders ship within three business days. Express shipping costs 12 euros.",
    "Security": "Passwords rotate every 90 days. The policy number is SEC-42.",
}
QUESTIONS = ["How many days of paid leave do employees get?", "How long does shipping take?",
             "How often do passwords rotate?", "What does express shipping cost?",
             "Who approves leave requests?"]
TERMINAL = ("succeeded", "failed", "cancelled")


def setup(d):
    st, _, body, _ = d.request("POST", "/v1/collections", key=d.admin_key, json={"name": "handbook"})
    assert st in (200, 201), body
    for title, text in DOCS.items():
        st, _, body, _ = d.request("POST", "/v1/documents?collection=handbook&title=" + title, key=d.admin_key,
                                   body=text.encode(), headers={"Content-Type": "text/plain"})
        assert st in (200, 201), body


def wait_terminal(d, run_id, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st, _, body, js = d.request("GET", "/v1/runs/" + run_id, key=d.admin_key)
        assert st == 200, body
        if js["status"] in TERMINAL:
            return js
        time.sleep(0.2)
    raise AssertionError("run %s did not finish in %ds: %s" % (run_id, timeout, js["status"]))


def test_twenty_concurrent_runs_finish(d):
    setup(d)
    ids, errors = [None] * 20, []

    def post(i):
        try:
            st, _, body, js = d.request("POST", "/v1/runs", key=d.admin_key, json={
                "input": QUESTIONS[i % len(QUESTIONS)], "collections": ["handbook"],
                "budget": {"max_steps": 3, "max_tokens": 4000}})
            assert st == 201, body
            ids[i] = js["id"]
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    runs = [wait_terminal(d, rid, 600) for rid in ids]
    for run in runs:
        kinds = [s.get("kind") for s in run["steps"]]
        assert "retrieval" in kinds, run
        assert run["status"] in ("succeeded", "failed"), run
        if run["status"] == "failed":
            assert run.get("error"), run  # a failure says why
        assert run["usage"]["steps"] >= 1, run
        retrieved = set()
        for s in run["steps"]:
            if s.get("kind") == "retrieval":
                retrieved.update(str(c) for c in s["chunk_ids"])
        for c in run.get("citations") or []:
            assert str(c.get("chunk_id", c.get("chunk"))) in retrieved, (c, retrieved)
    print("   20 runs: %s; errors: %s" % (json.dumps({s: sum(r["status"] == s for r in runs) for s in TERMINAL}),
                                      sorted(set(r.get("error") or "" for r in runs))))


def ensure_collection(d):
    st, _, body, js = d.request("GET", "/v1/collections", key=d.admin_key)
    assert st == 200, body
    items = js.get("collections", js) if isinstance(js, dict) else js
    if not any(c.get("name") == "handbook" for c in items):
        setup(d)


def test_token_budget_stops_a_run(d):
    ensure_collection(d)
    st, _, body, js = d.request("POST", "/v1/runs", key=d.admin_key, json={
        "input": QUESTIONS[1], "collections": ["handbook"], "budget": {"max_tokens": 60}})
    assert st == 201, body
    run = wait_terminal(d, js["id"], 300)
    assert run["status"] == "failed", run
    assert run.get("stopped_by") == "budget", run
    assert "token budget of 60 tokens" in (run.get("error") or ""), run


def test_unmet_requirement_with_one_step_is_honest(d):
    ensure_collection(d)
    st, _, body, js = d.request("POST", "/v1/runs", key=d.admin_key, json={
        "input": QUESTIONS[2], "collections": ["handbook"], "budget": {"max_steps": 1},
        # a word limit no answer of this model meets ("Not found in the documents." is
        # exempt from mentions and citations, not from length)
        "requirements": [{"type": "must_mention", "value": "XYZZY-7731"}, {"type": "max_words", "value": 2}]})
    assert st == 201, body
    run = wait_terminal(d, js["id"], 300)
    assert run["status"] == "succeeded", run
    assert run["answer"] == "I could not produce an answer that satisfies the checks.", run
    assert run["validation"]["ok"] is False, run
    assert any("at most 2 are allowed" in json.dumps(p) for p in run["validation"]["problems"]), run
    assert run["usage"]["steps"] == 1, run
    assert sum(s.get("kind") == "model_call" for s in run["steps"]) == 1, run


if __name__ == "__main__":
    raise SystemExit(harness.main(globals(), config={"run_workers": "4"}))
