# The hybrid-architecture ablation (issue #14, `make ablation`): trains
# same-budget variants of the small Jamba (model.py) that differ only in which
# of their 8 layers are attention, on the in-context tasks and language data
# of ablation_data.py, exports each to GGUF and measures it through agentd's
# engine (build/bench/ablation), then writes the table.
#
# Same budget means the same training tokens (steps x batch x seq, identical
# sequences in the same order for every variant: the data stream depends on
# the seed only) and the same parameter count within 3%: an attention layer
# has fewer parameters than a Mamba layer of the same width, so each variant's
# feed-forward width d_ff is chosen to bring its total to the reference's (the
# counts are printed and checked). One torch thread: fastest on this machine
# (models/README.md). Work files go to build/ablation/ (not committed).
#
#   ablation.py speed [--steps N]          per-step speed of every variant
#   ablation.py run [--tokens N] [--seeds 1,2] [--variants a,b]   train, export, measure, table
#   ablation.py measure                    re-measure the exported GGUFs, rewrite the table
import argparse
import ctypes
import json
import math
import os
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

import ablation_data as D
import export_gguf
import model as M
import scan as S

# name -> (attn_period, attn_offset): layer i is attention iff i % period == offset.
VARIANTS = {
    "mamba": (8, 8),  # never: no attention layer
    "attention": (1, 0),  # every layer
    "hybrid-1:3": (4, 2),  # layers 2 and 6
    "hybrid-1:7-start": (8, 0),
    "hybrid-1:7-middle": (8, 4),
    "hybrid-1:7-end": (8, 7),
}
REFERENCE = "hybrid-1:7-middle"


def base_config(a, name, d_ff):
    period, offset = VARIANTS[name]
    return M.Config(vocab=D.VOCAB, d_model=a.d_model, n_layers=8, n_heads=4, n_kv_heads=2, d_ff=d_ff, n_experts=1,
                    top_k=1, attn_period=period, attn_offset=offset, d_state=a.d_state, d_conv=4, expand=2,
                    dt_rank=max(1, math.ceil(a.d_model / 16)), context=32768, tie_embeddings=a.tie)


def n_params(c):
    return sum(p.numel() for p in M.Jamba(c).parameters())


def equalised(a):
    """Each variant's config with d_ff (a multiple of 4) putting its parameter count
    closest to the reference variant's at d_ff = 3 * d_model."""
    target = n_params(base_config(a, REFERENCE, 3 * a.d_model))
    out = {}
    for name in VARIANTS:
        lo = n_params(base_config(a, name, 4))
        per = (n_params(base_config(a, name, 8)) - lo) / 4.0
        ff = max(4, int(round((4 + (target - lo) / per) / 4.0)) * 4)
        c = base_config(a, name, ff)
        n = n_params(c)
        if abs(n - target) > 0.03 * target:
            raise SystemExit("ablation: %s has %d parameters against %d (more than 3%% apart)" % (name, n, target))
        out[name] = (c, n)
    return out, target


def batch(stream, size):
    """size rows cycling through the kinds, so every batch mixes tasks and language."""
    xs, ms = [], []
    for r in range(size):
        ids, mask = stream.next(D.KINDS[r % len(D.KINDS)])
        xs.append(ids)
        ms.append(mask)
    return torch.tensor(xs), torch.tensor(ms)


def loss_parts(model, x, m):
    """Mean cross-entropy over language targets and over task-answer targets
    (mask of the predicted token); lm_head only where a loss is taken."""
    h = model.hidden(x[:, :-1])
    tgt, mk = x[:, 1:], m[:, 1:]
    out = {}
    for key, val in (("lang", 1), ("task", 2)):
        sel = mk == val
        if sel.any():
            out[key] = F.cross_entropy(model.lm_head(h[sel]), tgt[sel])
    return out


def setup_torch():
    # glibc's defaults hand big freed blocks back to the kernel and fault them in
    # again on the next step: measured 0.84 -> 0.49 s a step (hybrid) and
    # 2.28 -> 0.80 (attention) with these, most of the rest was system time.
    try:
        libc = ctypes.CDLL("libc.so.6")
        M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
        libc.mallopt(M_MMAP_THRESHOLD, 1 << 30)
        libc.mallopt(M_TRIM_THRESHOLD, 1 << 30)
        libc.mallopt(M_TOP_PAD, 256 << 20)
    except OSError:
        pass
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    S.set_threads(1)


def train_one(a, name, c, seed, outdir):
    """Trains one variant on a.steps batches; writes <name>.pt, <name>.gguf, <name>.log."""
    torch.manual_seed(seed)
    model = M.Jamba(c)
    stream = D.Stream(seed, held=False, seq=a.seq)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, 0.98), weight_decay=0.01)
    warm = max(1, a.steps // 20)
    log = open(os.path.join(outdir, name + ".log"), "w")
    t0 = time.time()
    ema = None
    for step in range(a.steps):
        lr = a.lr * (step + 1) / warm if step < warm else \
            a.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, a.steps - warm))))
        for g in opt.param_groups:
            g["lr"] = lr
        x, m = batch(stream, a.batch)
        parts = loss_parts(model, x, m)
        loss = sum(parts.values())
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        vals = {k: v.item() for k, v in parts.items()}
        ema = vals if ema is None else {k: 0.95 * ema.get(k, v) + 0.05 * v for k, v in vals.items()}
        if step % 10 == 0 or step == a.steps - 1:
            el = time.time() - t0
            line = "step %d/%d lr %.2e lang %.3f task %.3f (ema %.3f %.3f) %.0f tokens/s %.0f s" % (
                step + 1, a.steps, lr, vals.get("lang", 0), vals.get("task", 0), ema.get("lang", 0),
                ema.get("task", 0), (step + 1) * a.batch * a.seq / el, el)
            log.write(line + "\n")
            log.flush()
            if a.verbose:
                print("  %s: %s" % (name, line), flush=True)
    wall = time.time() - t0
    ck = os.path.join(outdir, name + ".pt")
    M.save(model, ck, dict(variant=name, seed=seed, steps=a.steps, tokens=a.steps * a.batch * a.seq, wall_s=wall))
    toks, scores, types = D.vocab_pieces()
    pieces = dict(tokens=toks, scores=scores, types=types, bos=D.BOS, eos=D.EOS, unk=D.UNK, pad=D.PAD)
    export_gguf.export(ck, None, os.path.join(outdir, name + ".gguf"), name="ablation-" + name, pieces=pieces)
    log.write("done: %d steps, %d tokens, %.1f s\n" % (a.steps, a.steps * a.batch * a.seq, wall))
    log.close()
    return wall


def speed(a):
    setup_torch()
    cfgs, target = equalised(a)
    stream = D.Stream(1, seq=a.seq)
    xs = [batch(stream, a.batch) for _ in range(a.steps + 1)]
    total = 0.0
    for name, (c, n) in cfgs.items():
        if a.variants and name not in a.variants.split(","):
            continue
        torch.manual_seed(0)
        model = M.Jamba(c)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        for i, (x, m) in enumerate(xs):
            if i == 1:
                t0 = time.time()
            loss = sum(loss_parts(model, x, m).values())
            opt.zero_grad()
            loss.backward()
            opt.step()
        dt = (time.time() - t0) / a.steps
        total += dt
        print("%-18s d_ff %3d  %7d parameters  %.3f s/step  %.0f tokens/s" % (name, c.d_ff, n, dt,
                                                                               a.batch * a.seq / dt), flush=True)
    print("all variants: %.3f s per step together (reference %d parameters)" % (total, target))


def check(a, seeds, names):
    """PyTorch (exact scan) against `agentd logits` on held-out sequences: the
    last position's logits of a prefix of each kind. Returns the worst difference."""
    agentd = os.path.join(a.build, "agentd")
    st = D.Stream(a.eval_seed, held=True, seq=a.seq)
    seqs = [st.next(k)[0] for k in D.KINDS]
    worst = 0.0
    for seed in seeds:
        for name in names:
            d = os.path.join(a.out, "seed%d" % seed)
            if not os.path.exists(os.path.join(d, name + ".gguf")):
                continue
            model, _ = M.load(os.path.join(d, name + ".pt"))
            model.eval()
            model.set_scan("exact")
            for ids in seqs:
                with torch.no_grad():
                    ref = model(torch.tensor([ids]))[0, -1].double()
                r = subprocess.run([agentd, "logits", "--model", os.path.join(d, name + ".gguf"), "--tokens",
                                    " ".join(map(str, ids))], capture_output=True, text=True, timeout=600)
                if r.returncode != 0:
                    raise SystemExit("ablation: agentd logits failed: " + r.stderr)
                eng = torch.tensor([float(v) for v in r.stdout.split()], dtype=torch.float64)
                diff = (eng - ref).abs().max().item()
                worst = max(worst, diff)
                print("check seed %d %-18s %4d tokens: max |torch - engine| %.3g, argmax %d / %d" % (
                    seed, name, len(ids), diff, ref.argmax().item(), eng.argmax().item()), flush=True)
    print("check: worst %.3g (tolerance %g)" % (worst, a.tol))
    if worst > a.tol:
        raise SystemExit("ablation: engine and PyTorch disagree")
    return worst


def bench_path(a):
    return os.path.join(a.build, "bench", "ablation")


def measure(a, seeds, names):
    evalf = os.path.join(a.out, "heldout.txt")
    if not os.path.exists(evalf) or a.fresh_eval:
        D.write_eval(evalf, a.eval_seed, a.eval_n, a.seq)
    res = []
    for seed in seeds:
        d = os.path.join(a.out, "seed%d" % seed)
        for name in names:
            gg = os.path.join(d, name + ".gguf")
            if not os.path.exists(gg):
                continue
            cmd = [bench_path(a), "--model", gg, "--data", evalf, "--steps", str(a.decode_steps), "--rounds",
                   str(a.rounds)]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                raise SystemExit("ablation: %s failed: %s" % (" ".join(cmd), r.stderr.strip()))
            row = json.loads(r.stdout.strip().splitlines()[-1])
            ck = torch.load(os.path.join(d, name + ".pt"), map_location="cpu")
            row.update(variant=name, seed=seed, tokens=ck.get("tokens"), wall_s=ck.get("wall_s"),
                       d_ff=ck["config"]["d_ff"])
            print(json.dumps(row), flush=True)
            res.append(row)
    # Rows of seeds and variants not measured this time are kept, so seeds can be
    # measured as they finish.
    path = os.path.join(a.out, "results.jsonl")
    done = {(r["seed"], r["variant"]) for r in res}
    if os.path.exists(path):
        with open(path) as f:
            old = [json.loads(line) for line in f if line.strip()]
        res = [r for r in old if (r["seed"], r["variant"]) not in done] + res
    res.sort(key=lambda r: (r["seed"], list(VARIANTS).index(r["variant"])))
    with open(path, "w") as f:
        for row in res:
            f.write(json.dumps(row) + "\n")
    table(a, res)
    return res


COLS = [("acc_mqar", "MQAR acc", 100, "%.1f"), ("acc_fewshot", "few-shot acc", 100, "%.1f"),
        ("acc_copy", "copy acc", 100, "%.1f"), ("tokacc_fewshot", "few-shot token acc", 100, "%.1f"),
        ("tokacc_copy", "copy token acc", 100, "%.1f"), ("loss_lang", "val loss lang", 1, "%.3f"),
        ("loss_task", "val loss tasks", 1, "%.3f"), ("tps_1k", "tok/s 1K", 1, "%.0f"),
        ("tps_8k", "tok/s 8K", 1, "%.0f"), ("tps_32k", "tok/s 32K", 1, "%.0f"),
        ("state_1k", "state 1K", 1 / 1024, "%.0f KiB"), ("state_8k", "state 8K", 1 / 1024, "%.0f KiB"),
        ("state_32k", "state 32K", 1 / 1024, "%.0f KiB"), ("wall_s", "train wall s", 1, "%.0f")]


def table(a, res):
    """Markdown table: one row a variant, mean (± half the range over seeds)."""
    lines = ["| variant | attention layers | parameters | d_ff | seeds | " + " | ".join(c[1] for c in COLS) + " |",
             "|---" * (5 + len(COLS)) + "|"]
    for name in VARIANTS:
        rows = [r for r in res if r["variant"] == name]
        if not rows:
            continue
        cells = [name, ",".join(map(str, rows[0]["attn_layers"])) or "none", str(rows[0]["params"]),
                 str(rows[0]["d_ff"]), str(len(rows))]
        for key, _, scale, fmt in COLS:
            v = [r[key] * scale for r in rows]
            mean = sum(v) / len(v)
            cell = fmt % mean
            if len(v) > 1:
                cell += " ± " + (fmt.split(" ")[0] % ((max(v) - min(v)) / 2))
            cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(a.out, "table.md"), "w") as f:
        f.write(text)
    print(text)


def run(a):
    setup_torch()
    seeds = [int(s) for s in a.seeds.split(",") if s]
    names = [n for n in (a.variants.split(",") if a.variants else VARIANTS)]
    for n in names:
        if n not in VARIANTS:
            raise SystemExit("ablation: unknown variant %s (%s)" % (n, ", ".join(VARIANTS)))
    cfgs, target = equalised(a)
    a.steps = max(1, a.tokens // (a.batch * a.seq))
    print("ablation: %d steps of %d x %d tokens = %d tokens per variant; reference %d parameters" % (
        a.steps, a.batch, a.seq, a.steps * a.batch * a.seq, target), flush=True)
    for name in names:
        c, n = cfgs[name]
        print("  %-18s d_ff %3d  %d parameters (%+.2f%%)" % (name, c.d_ff, n, 100.0 * (n - target) / target))
    for seed in seeds:
        d = os.path.join(a.out, "seed%d" % seed)
        os.makedirs(d, exist_ok=True)
        for name in names:
            if a.skip_done and os.path.exists(os.path.join(d, name + ".gguf")):
                print("seed %d %s: already trained" % (seed, name), flush=True)
                continue
            wall = train_one(a, name, cfgs[name][0], seed, d)
            print("seed %d %s: trained in %.1f s" % (seed, name, wall), flush=True)
    if not a.no_measure:
        measure(a, seeds, names)
        check(a, seeds[:1], names)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["speed", "run", "measure", "check"])
    ap.add_argument("--out", default=os.path.join(D.SRC, "build", "ablation"))
    ap.add_argument("--build", default=os.path.join(D.SRC, "build"))
    ap.add_argument("--tokens", type=int, default=int(os.environ.get("ABLATION_TOKENS", "1000000")))
    ap.add_argument("--seeds", default=os.environ.get("ABLATION_SEEDS", "1"))
    ap.add_argument("--variants", default="")
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--d-state", type=int, default=8)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--tie", action="store_true", help="lm_head shares the embedding matrix (model.py says why)")
    ap.add_argument("--steps", type=int, default=3, help="speed: timed steps per variant")
    ap.add_argument("--eval-n", type=int, default=100, help="held-out sequences per kind")
    ap.add_argument("--eval-seed", type=int, default=1000003)
    ap.add_argument("--fresh-eval", action="store_true")
    ap.add_argument("--decode-steps", type=int, default=64, help="decode tokens per timed round")
    ap.add_argument("--rounds", type=int, default=7, help="timed rounds per context (the median is reported)")
    ap.add_argument("--skip-done", action="store_true")
    ap.add_argument("--no-measure", action="store_true")
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--tol", type=float, default=1e-3)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    if a.what == "speed":
        speed(a)
    elif a.what == "run":
        run(a)
    else:
        setup_torch()
        seeds = [int(s) for s in a.seeds.split(",") if s]
        names = a.variants.split(",") if a.variants else list(VARIANTS)
        (measure if a.what == "measure" else check)(a, seeds, names)


if __name__ == "__main__":
    sys.exit(main())
