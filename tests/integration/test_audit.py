"""Integration tests of the audit routes (GET /v1/audit, GET /v1/audit/verify)
against a running agentd: roles, tenant scoping, filters and paging, the chain
recomputed independently here from the documented canonical encoding, and
tampering with the database file detected by the daemon and the CLI."""
import hashlib
import json
import os
import sqlite3
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Agentd  # noqa: E402

KEYS = {}


def key(d, tenant, user, role):
    k = (d.port, tenant, user, role)
    if k not in KEYS:
        KEYS[k] = d.create_key(tenant=tenant, user=user, role=role)
    return KEYS[k]


def audit(d, k, query=""):
    st, _, body, js = d.request("GET", "/v1/audit" + query, key=k)
    assert st == 200, (st, body)
    return js


def test_roles(d):
    st, _, _, _ = d.request("GET", "/v1/audit")
    assert st == 401, st
    for role in ("viewer", "analyst"):
        k = key(d, "default", "u_" + role, role)
        for path in ("/v1/audit", "/v1/audit/verify"):
            st, _, body, js = d.request("GET", path, key=k)
            assert st == 403, (role, path, st, body)
            assert js["error"]["code"], js
    for k in (d.admin_key, key(d, "default", "aud", "auditor")):
        st, _, body, js = d.request("GET", "/v1/audit/verify", key=k)
        assert st == 200, (st, body)
        assert js["ok"] is True and js["first_bad"] is None, js


def test_reads_are_recorded_and_filtered(d):
    aud = key(d, "default", "aud", "auditor")
    for _ in range(3):
        audit(d, aud, "?kind=audit_read")
    js = audit(d, aud, "?kind=audit_read&user=aud&limit=1000")
    recs = js["records"]
    assert len(recs) >= 3, js
    for r in recs:
        assert r["kind"] == "audit_read" and r["user"] == "aud" and r["tenant"] == "default", r
        assert len(r["hash"]) == 64 and len(r["prev_hash"]) == 64, r
    assert recs[-1]["data"]["kind"] == "audit_read", recs[-1]
    # Paging: limit 1 walks the same records one at a time (only a walk's first page is recorded).
    seen, since = [], 0
    while True:
        page = audit(d, aud, "?kind=audit_read&user=aud&limit=1&since=%d" % since)
        seen += [r["seq"] for r in page["records"]]
        if page["next"] is None:
            break
        since = page["next"]
        assert len(seen) < 1000
    assert seen[:len(recs)] == [r["seq"] for r in recs], (seen, recs)
    # Time filter: nothing from the future, everything since 1970.
    assert audit(d, aud, "?from=2999-01-01T00:00:00Z")["records"] == []
    assert len(audit(d, aud, "?from=1970-01-01T00:00:00.000Z&kind=audit_read&user=aud")["records"]) >= 3


def test_redaction_rules_apply_to_the_record(d):
    # The default policy's redaction rules apply to the audit log too: a run whose question
    # carries an e-mail address and a card number is on record without them, with their labels.
    secret_mail, secret_card = "bob.secret@example.com", "4111 1111 1111 1111"
    st, _, body, js = d.request("POST", "/v1/runs", key=d.admin_key, json={
        "input": "Mail %s the receipt for card %s." % (secret_mail, secret_card), "memory": False})
    assert st == 201, body
    run_id = js["id"]
    aud = key(d, "default", "aud", "auditor")
    for _ in range(600):
        recs = audit(d, aud, "?run=%s&limit=1000" % run_id)["records"]
        if any(r["data"].get("event") == "run.completed" for r in recs):
            break
        time.sleep(0.05)
    text = json.dumps(recs)
    assert recs and "Mail" in text, recs
    assert secret_mail not in text and secret_card not in text, text
    assert "[REDACTED:email]" in text and "[REDACTED:card]" in text, text
    st, _, _, js = d.request("GET", "/v1/audit/verify", key=aud)
    assert st == 200 and js["ok"], js


def test_bad_parameters(d):
    aud = key(d, "default", "aud", "auditor")
    for q in ("?limit=0", "?limit=5000", "?since=-1", "?since=abc", "?from=yesterday", "?to=2026-13-45T00:00:00Z"):
        st, _, body, js = d.request("GET", "/v1/audit" + q, key=aud)
        assert st == 400, (q, st, body)
        assert js["error"]["code"] == "bad_request", js


def test_tenant_scoping(d):
    acme = key(d, "acme", "ann", "auditor")
    audit(d, acme)
    audit(d, key(d, "default", "aud", "auditor"))
    recs = audit(d, acme, "?limit=1000")["records"]
    assert recs, "acme's own read should be recorded"
    assert all(r["tenant"] == "acme" for r in recs), recs
    # Verify answers only ok / first bad to a tenant's caller.
    st, _, _, js = d.request("GET", "/v1/audit/verify", key=acme)
    assert st == 200 and set(js) == {"ok", "first_bad", "reason"}, js


def canonical_hash(r, prev):
    """The record hash as documented in agentd/audit.c."""
    def u64(x):
        return struct.pack(">q", x)

    def s(x):
        b = x.encode()
        return u64(len(b)) + b

    data = json.dumps(r["data"], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    m = b"agentd-audit-v1\0" + u64(r["seq"]) + u64(r["time_ms"]) + s(r["tenant"]) + s(r["user"])
    m += b"\0" if r["run_id"] is None else b"\1" + s(r["run_id"])
    m += u64(r["step"]) + s(r["kind"]) + s(data) + prev
    return hashlib.sha256(m).hexdigest()


def test_chain_recomputed_outside(d):
    aud = key(d, "default", "aud", "auditor")
    recs = audit(d, aud, "?limit=1000")["records"]
    assert len(recs) >= 3
    # Only this tenant's records are visible, so check each record's own hash and
    # the links between consecutive seqs.
    by_seq = {r["seq"]: r for r in recs}
    for r in recs:
        assert canonical_hash(r, bytes.fromhex(r["prev_hash"])) == r["hash"], r
        if r["seq"] - 1 in by_seq:
            assert by_seq[r["seq"] - 1]["hash"] == r["prev_hash"], r


def test_tampering_detected(_shared):
    with Agentd() as d:
        aud = d.create_key(user="aud", role="auditor")
        for _ in range(6):
            audit(d, aud)
        st, _, _, js = d.request("GET", "/v1/audit/verify", key=aud)
        assert js["ok"] is True, js
        db = sqlite3.connect(os.path.join(d.data_dir, "agentd.db"))
        try:
            # The triggers refuse edits...
            try:
                db.execute("UPDATE audit_log SET user = 'mallory' WHERE seq = 3")
                db.commit()
                raise AssertionError("UPDATE of an audit record was allowed")
            except sqlite3.DatabaseError as e:
                assert "append-only" in str(e), e
                db.rollback()
            # ...and lifting them does not help.
            db.execute("DROP TRIGGER audit_log_no_update")
            db.execute("UPDATE audit_log SET user = 'mallory' WHERE seq = 3")
            db.commit()
        finally:
            db.close()
        st, _, _, js = d.request("GET", "/v1/audit/verify", key=aud)
        assert st == 200 and js["ok"] is False and js["first_bad"] == 3, js
        out = d.cli("audit", "verify")
        if "unknown command" in out.stderr:
            print("note: `agentd audit` is not in agentd/main.c's table yet; CLI check skipped")
        else:
            assert out.returncode == 1 and "record 3" in out.stdout, (out.returncode, out.stdout, out.stderr)



def test_export_and_cut_tail_cli(_shared):
    with Agentd() as d:
        aud = d.create_key(user="aud", role="auditor")
        for _ in range(5):
            audit(d, aud)
        out = d.cli("audit", "checkpoint")
        if "unknown command" in out.stderr:
            print("note: `agentd audit` is not in agentd/main.c's table yet; CLI test skipped")
            return
        assert out.returncode == 0, out.stderr
        cp = json.loads(out.stdout.strip().splitlines()[-1])
        assert cp["type"] == "checkpoint" and cp["seq"] >= 5, cp
        kept = os.path.join(d.data_dir, "..", os.path.basename(d.data_dir) + "-checkpoint.jsonl")
        with open(kept, "w") as f:
            f.write(out.stdout)
        try:
            out = d.cli("audit", "export")
            assert out.returncode == 0, out.stderr
            lines = [json.loads(x) for x in out.stdout.splitlines()]
            assert [r["seq"] for r in lines] == list(range(1, len(lines) + 1)), lines
            assert lines[cp["seq"] - 1]["hash"] == cp["hash"]
            out = d.cli("audit", "verify", "--checkpoint", kept)
            assert out.returncode == 0 and " ok" in out.stdout, (out.stdout, out.stderr)
            d.stop()
            db = sqlite3.connect(os.path.join(d.data_dir, "agentd.db"))
            db.executescript("DROP TRIGGER audit_log_no_delete; DROP TRIGGER audit_checkpoints_no_delete;"
                             "DELETE FROM audit_log WHERE seq >= %d; DELETE FROM audit_checkpoints;"
                             % (cp["seq"] - 1))
            db.close()
            out = d.cli("audit", "verify")
            assert out.returncode == 0, "without the outside copy a cut tail is self-consistent"
            out = d.cli("audit", "verify", "--checkpoint", kept)
            assert out.returncode == 1, (out.stdout, out.stderr)
            assert "record %d is missing" % (cp["seq"] - 1) in out.stdout, out.stdout
        finally:
            os.unlink(kept)


if __name__ == "__main__":
    harness.main(globals())
