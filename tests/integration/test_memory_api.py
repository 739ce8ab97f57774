"""Memory routes: info, reset, admin export/import, and who may act for whom.
States are written straight into the store here; the engine-backed runs that
produce them are tested with the planner."""
import os

import harness


def put_state(d, tenant, user, payload, model="model-test", tokens=42):
    """Stores a memory state through the C library's own format, via an export/import round trip."""
    # Build an export with the documented layout using zlib, as memory_export writes it.
    import hashlib
    import struct
    import zlib
    crc = zlib.crc32(payload) & 0xffffffff
    blob = b"AGMS" + struct.pack("<IQI", 1, len(payload), crc) + zlib.compress(payload, 1)
    mid = model.encode()
    body = b"AGMX" + struct.pack("<II", 1, len(mid)) + mid + struct.pack("<qQQ", tokens, len(payload), len(blob)) + blob
    body += hashlib.sha256(body).digest()
    return body


def test_empty_memory(d):
    st, _, _, js = d.request("GET", "/v1/memory", key=d.admin_key)
    assert st == 200 and js["tokens"] == 0 and js["bytes"] == 0 and js["model"] is None, js


def test_import_info_export_delete(d):
    payload = os.urandom(5000) + bytes(20000)
    exp = put_state(d, "default", "ana", payload, tokens=321)
    st, _, body, js = d.request("PUT", "/v1/memory/import?user=ana", body=exp, key=d.admin_key,
                                headers={"Content-Type": "application/octet-stream"})
    assert st == 200 and js["tokens"] == 321 and js["bytes"] == len(payload), body
    ana = d.create_key(user="ana", role="analyst")
    st, _, _, js = d.request("GET", "/v1/memory", key=ana)
    assert st == 200 and js["user"] == "ana" and js["tokens"] == 321 and js["model"] == "model-test"
    assert js["stored_bytes"] < js["bytes"]
    # Export returns exactly what was imported.
    st, h, body, _ = d.request("GET", "/v1/memory/export?user=ana", key=d.admin_key)
    assert st == 200 and h["content-type"] == "application/octet-stream" and body == exp
    # A damaged export is refused and the stored memory is untouched.
    bad = bytearray(exp)
    bad[len(bad) // 2] ^= 1
    st, _, _, js = d.request("PUT", "/v1/memory/import?user=ana", body=bytes(bad), key=d.admin_key)
    assert st == 400 and "damaged" in js["error"]["message"]
    # Another user cannot read or reset ana's memory; only an admin acts for others.
    bob = d.create_key(user="bob", role="analyst")
    st, _, _, js = d.request("GET", "/v1/memory?user=ana", key=bob)
    assert st == 403
    st, _, _, js = d.request("GET", "/v1/memory", key=bob)
    assert js["tokens"] == 0
    st, _, _, _ = d.request("GET", "/v1/memory/export?user=ana", key=ana)
    assert st == 403
    # Reset.
    st, _, _, js = d.request("DELETE", "/v1/memory", key=ana)
    assert st == 200 and js["deleted"] is True
    st, _, _, js = d.request("GET", "/v1/memory", key=ana)
    assert js["tokens"] == 0
    st, _, _, js = d.request("DELETE", "/v1/memory", key=ana)
    assert st == 200 and js["deleted"] is False


def test_tenants_do_not_share_memory(d):
    exp = put_state(d, "default", "carl", b"x" * 1000, tokens=7)
    st, _, _, _ = d.request("PUT", "/v1/memory/import?user=carl", body=exp, key=d.admin_key)
    assert st == 200
    other = d.create_key(tenant="initech", user="root", role="admin")
    st, _, _, js = d.request("GET", "/v1/memory?user=carl", key=other)
    assert st == 200 and js["tokens"] == 0
    st, _, _, _ = d.request("GET", "/v1/memory/export?user=carl", key=other)
    assert st == 404


if __name__ == "__main__":
    harness.main(globals())
