"""Integration tests of the policy routes, SIGHUP reloads and `agentd policy check`:
a broken policy is refused with its line numbers and the old one stays in force."""
import hashlib
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

WORK = harness.tmpdir("agentd-policy-it-")
POLICY_FILE = os.path.join(WORK, "site.policy")

FILE_POLICY = """# the site policy
[role admin]
tools = *
collections = *

[role viewer]
tools = calculator
collections = public

[redact email]
pattern = [\\w.+-]++@(?:[A-Za-z0-9-]++\\.)++[A-Za-z]{2,}+\\b
"""

API_POLICY = """[role admin]
tools = *
[role viewer]
tools = calculator, search_docs
budget.steps = 2
"""

BROKEN = """[role admin]
tools = *
[redact bad]
pattern = (unclosed
[role viewer]
budget.steps = many
"""

with open(POLICY_FILE, "w") as f:
    f.write(FILE_POLICY)
# Older than anything the daemon records, so the recorded policy wins on restart.
os.utime(POLICY_FILE, (time.time() - 3600, time.time() - 3600))


def get_policy(d):
    st, _, body, js = d.request("GET", "/v1/policies", key=d.admin_key)
    assert st == 200, (st, body)
    return js


def write_policy(text, mtime=None):
    with open(POLICY_FILE, "w") as f:
        f.write(text)
    if mtime is not None:
        os.utime(POLICY_FILE, (mtime, mtime))


def wait_for(pred, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return False


def test_get_shows_policy_file_in_force(d):
    js = get_policy(d)
    assert js["text"] == FILE_POLICY, js
    assert js["name"] == POLICY_FILE
    assert len(js["sha256"]) == 64
    roles = {r["name"]: r for r in js["policy"]["roles"]}
    assert set(roles) == {"admin", "viewer"}
    assert roles["viewer"]["tools"] == ["calculator"]
    assert [r["id"] for r in js["policy"]["rules"]] == ["redact.email"]
    st, hdrs, body, _ = d.request("GET", "/v1/policies?format=text", key=d.admin_key)
    assert st == 200 and hdrs["content-type"].startswith("text/plain")
    assert body.decode() == FILE_POLICY


def test_policies_are_admin_only(d):
    viewer = d.create_key(user="vera", role="viewer")
    analyst = d.create_key(user="ann", role="analyst")
    for key in (viewer, analyst):
        st, _, _, js = d.request("GET", "/v1/policies", key=key)
        assert st == 403, st
        st, _, _, _ = d.request("PUT", "/v1/policies", body=API_POLICY, key=key)
        assert st == 403, st
    st, _, _, _ = d.request("GET", "/v1/policies")
    assert st == 401
    assert get_policy(d)["text"] == FILE_POLICY


def test_put_refuses_broken_policy_with_lines(d):
    before = get_policy(d)["sha256"]
    st, _, body, js = d.request("PUT", "/v1/policies", body=BROKEN, key=d.admin_key,
                                headers={"Content-Type": "text/plain"})
    assert st == 400, (st, body)
    assert js["error"]["code"] == "bad_request"
    assert js["error"]["message"].startswith("policy:4:"), js
    lines = {e["line"]: e["message"] for e in js["error"]["errors"]}
    assert 4 in lines and "does not compile" in lines[4], lines
    assert 6 in lines and "budget.steps" in lines[6], lines
    assert get_policy(d)["sha256"] == before
    # Not a policy at all, an empty body, bad JSON fields.
    for payload in ({"body": ""}, {"body": "\x00\x01\x02"}, {"json": {"text": 5}},
                    {"json": {"policy": "x"}}, {"body": "{not json"}):
        st, _, body, _ = d.request("PUT", "/v1/policies", key=d.admin_key, **payload)
        assert st == 400, (payload, st, body)
    assert get_policy(d)["sha256"] == before


def test_put_replaces_policy(d):
    st, _, body, js = d.request("PUT", "/v1/policies", body=API_POLICY, key=d.admin_key,
                                headers={"Content-Type": "text/plain"})
    assert st == 200, (st, body)
    assert js["text"] == API_POLICY
    got = get_policy(d)
    assert got["sha256"] == js["sha256"]
    roles = {r["name"]: r for r in got["policy"]["roles"]}
    assert roles["viewer"]["budget"]["steps"] == 2
    # The same through a JSON body.
    text2 = API_POLICY + "\n[inject override]\npattern = (?i)ignore previous\n"
    st, _, body, js = d.request("PUT", "/v1/policies", json={"text": text2}, key=d.admin_key)
    assert st == 200, (st, body)
    assert get_policy(d)["text"] == text2


def test_policy_in_force_governs_tool_calls(d):
    # The tools route asks the policy in force; a PUT changes the answer at once.
    narrow = "[role admin]\ntools = calculator\n[role viewer]\ntools = calculator\n"
    st, _, body, _ = d.request("PUT", "/v1/policies", body=narrow, key=d.admin_key)
    assert st == 200, body
    st, _, body, js = d.request("POST", "/v1/tools/calculator", json={"expression": "12 * 7"},
                                key=d.admin_key)
    assert st == 200, body
    st, _, body, js = d.request("POST", "/v1/tools/sql", json={"database": "x", "query": "SELECT 1"},
                                key=d.admin_key)
    assert st == 403, (st, body)
    assert "role.admin.tools" in js["error"]["message"], js
    approve = "[role admin]\ntools = *\napprove = calculator\n[role viewer]\ntools = calculator\n"
    st, _, body, _ = d.request("PUT", "/v1/policies", body=approve, key=d.admin_key)
    assert st == 200, body
    st, _, body, js = d.request("POST", "/v1/tools/calculator", json={"expression": "1 + 1"},
                                key=d.admin_key)
    assert st == 403, (st, body)
    assert "role.admin.approve" in js["error"]["message"], js


def test_put_policy_survives_restart(d):
    st, _, body, js = d.request("PUT", "/v1/policies", body=API_POLICY, key=d.admin_key)
    assert st == 200, body
    sha = js["sha256"]
    assert d.stop() == 0
    d.start()
    assert get_policy(d)["sha256"] == sha


def test_sighup_keeps_old_policy_when_file_is_broken(d):
    before = get_policy(d)
    write_policy(BROKEN, time.time() + 1)
    n_err = len(d.stderr_lines)
    d.proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: any("refused" in l for l in d.stderr_lines[n_err:])), d.stderr_lines[-10:]
    assert any(":4:" in l for l in d.stderr_lines[n_err:]), d.stderr_lines[n_err:]
    assert get_policy(d)["sha256"] == before["sha256"]
    assert d.alive()


def test_sighup_installs_a_valid_file(d):
    write_policy(FILE_POLICY + "\n[deny no_xyzzy]\npattern = xyzzy\n", time.time() + 2)
    d.proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: get_policy(d)["text"].endswith("pattern = xyzzy\n"))
    js = get_policy(d)
    assert js["name"] == POLICY_FILE
    assert "deny.no_xyzzy" in [r["id"] for r in js["policy"]["rules"]]


def test_sighup_without_policy_file_changes_nothing(_unused):
    with harness.Agentd() as f:
        default = get_policy(f)
        assert default["name"] == "default"
        st, _, body, js = f.request("PUT", "/v1/policies", body=API_POLICY, key=f.admin_key)
        assert st == 200, body
        f.proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: any("no policy_file" in l for l in f.stderr_lines)), f.stderr_lines[-5:]
        assert get_policy(f)["sha256"] == js["sha256"]


def test_policy_check_command(d):
    good = os.path.join(WORK, "good.policy")
    bad = os.path.join(WORK, "bad.policy")
    with open(good, "w") as f:
        f.write(FILE_POLICY)
    with open(bad, "w") as f:
        f.write(BROKEN)
    out = d.cli("policy", "check", good)
    assert out.returncode == 0, out
    assert "ok" in out.stdout
    out = d.cli("policy", "check", bad)
    assert out.returncode == 1, out
    assert bad + ":4: pattern does not compile" in out.stderr, out.stderr
    assert bad + ":6: budget.steps" in out.stderr, out.stderr
    out = d.cli("policy", "check", os.path.join(WORK, "missing.policy"))
    assert out.returncode == 1 and "missing.policy" in out.stderr, out
    out = d.cli("policy")
    assert out.returncode == 2, out
    out = d.cli("policy", "check")
    assert out.returncode == 2, out
    out = d.cli("policy", "default")
    assert out.returncode == 0
    with open(os.path.join(harness.AGENTD_SRC, "policies", "default.policy")) as f:
        assert out.stdout == f.read()


def test_allocation_failures_keep_the_policy(_unused):
    # Every allocation of a PUT and a GET fails in turn: an error answer, never a crash,
    # and the policy in force is either the old one or the new one, whole.
    with harness.Agentd(config={"fault_injection": 1}) as f:
        old = get_policy(f)["sha256"]
        st, h, body, js = f.request("PUT", "/v1/policies", body=API_POLICY, key=f.admin_key)
        assert st == 200, body
        new = js["sha256"]
        total = int(h["x-agentd-allocs"])
        assert total > 20
        seen = set()
        for n in range(1, total + 1):
            text = API_POLICY if n % 2 else FILE_POLICY
            st, _, body, _ = f.request("PUT", "/v1/policies", body=text, key=f.admin_key,
                                       headers={"X-Agentd-Fail-Alloc": str(n)})
            assert st in (200, 500, 503), (n, st, body)
            if st != 200:
                assert body, n
            seen.add(get_policy(f)["sha256"])
        file_sha = hashlib.sha256(FILE_POLICY.encode()).hexdigest()
        assert new == hashlib.sha256(API_POLICY.encode()).hexdigest()
        assert seen <= {old, new, file_sha}, seen
        st, h, _, _ = f.request("GET", "/v1/policies", key=f.admin_key)
        for n in range(1, int(h["x-agentd-allocs"]) + 1):
            st, _, _, _ = f.request("GET", "/v1/policies", key=f.admin_key,
                                    headers={"X-Agentd-Fail-Alloc": str(n)})
            assert st in (200, 500, 503), (n, st)
        assert f.alive()
        assert f.stop() == 0  # under ASan a leak makes this non-zero


def test_zz_clean_shutdown(d):
    assert d.stop() == 0  # under ASan a leak or error makes this non-zero
    bad = [l for l in d.stderr_lines if "AddressSanitizer" in l or "runtime error" in l]
    assert not bad, bad
    d.start()


if __name__ == "__main__":
    harness.main(globals(), config={"policy_file": POLICY_FILE})
