#!/usr/bin/env python3
# The ablation pipeline (models/train/ablation*.py, bench/ablation.c, `make
# ablation`) end to end at a tiny size: the data generators are deterministic
# and their validation split differs from training; two variants (pure Mamba
# and a 1:7 hybrid) train a few steps, export to GGUF, load in agentd's engine
# with the same logits as PyTorch, and build/bench/ablation measures them:
# its JSON line parses, the accuracies and losses are sane, pure Mamba's state
# stays the same size at every context while the hybrid's grows by exactly its
# one attention layer's K/V bytes a token. Needs Debian's python3-torch: re-runs
# itself under /usr/bin/python3, skips with a printed reason when it is missing.
import json
import math
import os
import subprocess
import sys

SRC = os.environ.get("AGENTD_SRC", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
TRAIN = os.path.join(SRC, "models", "train")
BUILD = os.environ.get("AGENTD_BUILD", os.path.join(SRC, "build"))


import harness  # noqa: E402
import torch_env  # noqa: E402

torch_env.require()

sys.path.insert(0, TRAIN)
import ablation_data as D  # noqa: E402

TMP = harness.tmpdir("agentd-ablation-")
SEQ = 128
BENCH = os.path.join(BUILD, "bench", "ablation")


def bench_binary():
    """build/bench/ablation, linked here when `make` (which does not build benches) left it out."""
    src = os.path.join(SRC, "bench", "ablation.c")
    if not os.access(BENCH, os.X_OK) or os.path.getmtime(BENCH) < os.path.getmtime(src):
        rel = os.path.relpath(BUILD, SRC)
        r = subprocess.run(["make", "-s", "BUILD=" + rel, os.path.join(rel, "bench", "ablation")], cwd=SRC,
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
    return BENCH


def test_data_deterministic_and_split():
    a, b, c = D.Stream(5, seq=SEQ), D.Stream(5, seq=SEQ), D.Stream(5, held=True, seq=SEQ)
    for kind in D.KINDS * 3:
        x, y, z = a.next(kind), b.next(kind), c.next(kind)
        assert x == y
        assert x[0] != z[0]
        ids, mask = x
        assert len(ids) == len(mask) == SEQ and ids[0] == D.BOS
        assert all(0 <= t < D.N_USED for t in ids)
        answers = D.spans(mask, 2)
        if kind == "lang":
            assert not answers and mask[1:] == [1] * (SEQ - 1)
        else:
            assert answers, kind
    # MQAR: every answer is the value written after its key earlier in the sequence.
    ids, mask = D.Stream(9, seq=512).next("mqar")
    start = ids.index(D.SPECIAL_ID["<|mqar|>"]) + 1
    pairs = dict(D.dec(ids[start : ids.index(D.BYTE0 + ord("\n"), start)]).split(" "))
    for s, e in D.spans(mask, 2):
        assert pairs[D.dec(ids[s - 1 : s])] == D.dec(ids[s:e])
    # Copy: the answer is the marked span, followed by the closing marker.
    ids, mask = D.Stream(9, seq=512).next("copy")
    s, e = D.spans(mask, 2)[0]
    span = ids[3 : ids.index(D.SPECIAL_ID["<|/span|>"])]
    assert ids[s:e] == span + [D.SPECIAL_ID["<|/span|>"]]
    assert len(D.vocab_pieces()[0]) == D.VOCAB


def test_train_export_measure():
    bench_binary()  # linked here if missing; ablation.py runs it
    out = os.path.join(TMP, "run")
    r = subprocess.run([sys.executable, os.path.join(TRAIN, "ablation.py"), "run", "--out", out, "--build", BUILD,
                        "--tokens", str(6 * 4 * SEQ), "--seq", str(SEQ), "--batch", "4", "--d-model", "16",
                        "--variants", "mamba,hybrid-1:7-middle", "--eval-n", "3", "--decode-steps", "4",
                        "--rounds", "3", "--seeds", "3"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "check: worst" in r.stdout
    rows = {}
    with open(os.path.join(out, "results.jsonl")) as f:
        for line in f:
            row = json.loads(line)
            rows[row["variant"]] = row
    assert set(rows) == {"mamba", "hybrid-1:7-middle"}
    for name, row in rows.items():
        for k in ("mqar", "fewshot", "copy"):
            assert 0 <= row["acc_" + k] <= 1 and row["n_" + k] == 3, (name, k)
            assert row["spans_" + k] >= 3
        for k in ("loss_lang", "loss_task"):
            # barely trained: near the uniform distribution's log(VOCAB)
            assert 0.5 * math.log(D.VOCAB) < row[k] < 2 * math.log(D.VOCAB), (name, k, row[k])
        assert row["tps_1k"] > 0 and row["tps_8k"] > 0 and row["tps_32k"] > 0
        assert row["tokens"] == 6 * 4 * SEQ
    m, h = rows["mamba"], rows["hybrid-1:7-middle"]
    assert m["attn_layers"] == [] and h["attn_layers"] == [4]
    assert m["state_0"] == m["state_1k"] == m["state_8k"] == m["state_32k"] > 0
    # One attention layer, 2 KV heads of 16 / 4 = 4 values, K and V, 4 bytes each.
    per_token = 2 * 2 * 4 * 4
    assert h["state_8k"] - h["state_1k"] == per_token * (8192 - 1024)
    assert h["state_32k"] - h["state_8k"] == per_token * (32768 - 8192)
    assert abs(m["params"] - h["params"]) <= 0.03 * h["params"]
    table = open(os.path.join(out, "table.md")).read()
    assert "| mamba | none |" in table and "| hybrid-1:7-middle | 4 |" in table


def test_bench_rejects_bad_data():
    bench = bench_binary()
    gg = os.path.join(TMP, "run", "seed3", "mamba.gguf")
    if not os.path.exists(gg):
        test_train_export_measure()
    cases = ["lang 3 1 2 3 1 0 3\n",  # span starting at 0 has no logits before it
             "lang 3 1 2 3 1 1 4\n",  # span past the end
             "lang 3 1 2 99999 1 1 3\n",  # token outside the vocabulary
             "copy 3 1 2 3 2 1 3 2 3\n",  # overlapping spans
             "words 3 1 2 3 1 1 3\n",  # unknown kind
             "lang 3 1 2\n"]  # truncated
    for i, text in enumerate(cases):
        p = os.path.join(TMP, "bad%d.txt" % i)
        with open(p, "w") as f:
            f.write(text)
        r = subprocess.run([bench, "--model", gg, "--data", p], capture_output=True, text=True, timeout=60)
        assert r.returncode == 1 and "ablation:" in r.stderr and "bad%d.txt:1" % i in r.stderr, (text, r.stderr)


if __name__ == "__main__":
    harness.run_plain(globals())
