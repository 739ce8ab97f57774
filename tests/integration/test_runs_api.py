"""Runs and workflows through the REST API: a workflow with a branch and an
approval that pauses, survives a daemon restart while waiting and resumes on
approval; event streams (SSE) with Last-Event-ID; cancel; budgets; roles.
Agent runs that need the model are tested with the model in test_planner_e2e.py."""
import http.client
import json
import time

import harness

WORKFLOW = {
    "name": "publish-check",
    "steps": [
        {"id": "gate", "type": "condition", "if": {"var": "input", "op": "contains", "value": "urgent"},
         "then": "ask", "else": "skip"},
        {"id": "ask", "type": "approval", "message": "Publish '{{input}}'?", "next": "done"},
        {"id": "done", "type": "answer", "text": "published: {{input}}"},
        {"id": "skip", "type": "answer", "text": "not urgent"},
    ],
}


def wait_status(d, key, run_id, want, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st, _, body, js = d.request("GET", "/v1/runs/" + run_id, key=key)
        assert st == 200, body
        if js["status"] == want:
            return js
        time.sleep(0.05)
    raise AssertionError("run %s stayed %s, wanted %s" % (run_id, js["status"], want))


def read_sse(d, path, key, until=None, last_id=None, timeout=10):
    """Reads server-sent events until one named `until` (or the stream's end)."""
    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=timeout)
    headers = {"Authorization": "Bearer " + key}
    if last_id is not None:
        headers["Last-Event-ID"] = str(last_id)
    conn.request("GET", path, headers=headers)
    resp = conn.getresponse()
    assert resp.status == 200, resp.read()
    assert resp.getheader("Content-Type") == "text/event-stream"
    events, cur = [], {}
    while True:
        line = resp.readline()
        if not line:
            break
        line = line.decode().rstrip("\n")
        if line == "":
            if cur:
                events.append(cur)
                if until and cur.get("event") == until:
                    break
            cur = {}
            continue
        if line.startswith(":"):
            continue
        k, _, v = line.partition(": ")
        cur[k] = v
    conn.close()
    return [{"id": int(e["id"]), "event": e["event"], "data": json.loads(e["data"])} for e in events]


def test_workflow_validation_and_roles(d):
    analyst = d.create_key(user="wf-author", role="analyst")
    viewer = d.create_key(user="wf-viewer", role="viewer")
    st, _, _, js = d.request("POST", "/v1/workflows", json=WORKFLOW, key=viewer)
    assert st == 403
    bad = json.loads(json.dumps(WORKFLOW))
    bad["steps"][1]["next"] = "nowhere"
    st, _, _, js = d.request("POST", "/v1/workflows", json=bad, key=analyst)
    assert st == 400 and "steps[1].next: no step 'nowhere'" in js["error"]["message"], js
    st, _, _, js = d.request("POST", "/v1/workflows", json=WORKFLOW, key=analyst)
    assert st == 201 and js["id"].startswith("wf_") and js["name"] == "publish-check"
    st, _, _, js = d.request("POST", "/v1/workflows", json=WORKFLOW, key=analyst)
    assert st == 409
    st, _, _, js = d.request("GET", "/v1/workflows", key=viewer)
    assert st == 200 and [w["name"] for w in js["workflows"]] == ["publish-check"]


def test_branch_without_approval(d):
    st, _, _, js = d.request("POST", "/v1/workflows/publish-check/runs", json={"input": "routine"},
                             key=d.admin_key)
    assert st == 201, js
    run = wait_status(d, d.admin_key, js["id"], "succeeded")
    assert run["answer"] == "not urgent"
    assert [s["id"] for s in run["steps"]] == ["gate", "skip"]


def test_approval_survives_restart_and_streams_resume(d):
    analyst = d.create_key(user="approver", role="analyst")
    viewer = d.create_key(user="looker", role="viewer")
    st, _, _, js = d.request("POST", "/v1/workflows/publish-check/runs", json={"input": "urgent memo"},
                             key=d.admin_key)
    run_id = js["id"]
    run = wait_status(d, d.admin_key, run_id, "waiting_approval")
    assert run["pending_approval"]["message"] == "Publish 'urgent memo'?"
    events = read_sse(d, "/v1/runs/%s/events" % run_id, d.admin_key, until="run.waiting_approval")
    assert events[0]["event"] == "run.created" and events[0]["id"] == 1
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    assert all(e["data"]["sequence_number"] == e["id"] for e in events)
    last = events[-1]["id"]

    # The daemon restarts while the run waits.
    assert d.stop() == 0
    d.start()
    run = wait_status(d, d.admin_key, run_id, "waiting_approval")
    st, _, _, _ = d.request("POST", "/v1/runs/%s/approve" % run_id, json={"approved": True}, key=viewer)
    assert st == 403
    other = d.create_key(tenant="rival", user="boss", role="admin")
    st, _, _, _ = d.request("POST", "/v1/runs/%s/approve" % run_id, json={}, key=other)
    assert st == 404
    st, _, _, _ = d.request("GET", "/v1/runs/%s" % run_id, key=other)
    assert st == 404
    st, _, _, js = d.request("POST", "/v1/runs/%s/approve" % run_id, json={"approved": True, "comment": "ok"},
                             key=analyst)
    assert st == 200, js
    run = wait_status(d, d.admin_key, run_id, "succeeded")
    assert run["answer"] == "published: urgent memo"
    assert run["approval"]["user"] == "approver"
    # Resuming the stream after the last event seen gives exactly the rest, then ends.
    rest = read_sse(d, "/v1/runs/%s/events" % run_id, d.admin_key, last_id=last)
    assert rest[0]["id"] == last + 1
    names = [e["event"] for e in rest]
    assert "run.approved" in names and names[-1] == "run.completed"
    assert rest[-1]["data"]["status"] == "succeeded"
    st, _, _, _ = d.request("POST", "/v1/runs/%s/approve" % run_id, json={}, key=analyst)
    assert st == 409


def test_cancel_waiting_run(d):
    st, _, _, js = d.request("POST", "/v1/workflows/publish-check/runs", json={"input": "urgent"},
                             key=d.admin_key)
    run_id = js["id"]
    wait_status(d, d.admin_key, run_id, "waiting_approval")
    st, _, _, js = d.request("POST", "/v1/runs/%s/cancel" % run_id, key=d.admin_key)
    assert st == 202 and js["status"] == "cancelled"
    st, _, _, js = d.request("POST", "/v1/runs/%s/cancel" % run_id, key=d.admin_key)
    assert st == 409


def test_step_budget(d):
    loop = {"name": "spin", "steps": [{"id": "s", "type": "condition",
                                        "if": {"var": "input", "op": "empty"}, "then": "s", "else": "s"}]}
    st, _, _, js = d.request("POST", "/v1/workflows", json=loop, key=d.admin_key)
    assert st == 201
    st, _, _, js = d.request("POST", "/v1/workflows/spin/runs", json={"budget": {"max_steps": 4}},
                             key=d.admin_key)
    run = wait_status(d, d.admin_key, js["id"], "failed")
    assert run["error"] == "step budget of 4 steps exhausted" and len(run["steps"]) == 4


def test_runs_list_scoping(d):
    viewer = d.create_key(user="solo", role="viewer")
    st, _, _, js = d.request("GET", "/v1/runs", key=viewer)
    assert st == 200 and js["runs"] == []
    st, _, _, js = d.request("GET", "/v1/runs", key=d.admin_key)
    assert st == 200 and len(js["runs"]) >= 3
    st, _, _, js = d.request("GET", "/v1/runs?status=succeeded", key=d.admin_key)
    assert all(r["status"] == "succeeded" for r in js["runs"])


def test_agent_run_input_errors(d):
    st, _, _, js = d.request("POST", "/v1/runs", json={"input": ""}, key=d.admin_key)
    assert st == 400
    st, _, _, js = d.request("POST", "/v1/runs", json={"input": "q", "requirements": ["be nice"]}, key=d.admin_key)
    assert st == 400 and "cannot read" in js["error"]["message"]
    st, _, _, js = d.request("POST", "/v1/runs", json={"input": "q", "budget": 5}, key=d.admin_key)
    assert st == 400 and "'budget' must be an object" in js["error"]["message"]
    auditor = d.create_key(user="aud", role="auditor")
    st, _, _, _ = d.request("POST", "/v1/runs", json={"input": "q"}, key=auditor)
    assert st == 403


if __name__ == "__main__":
    harness.main(globals(), config={"model": "/nonexistent.gguf"})
