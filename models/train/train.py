# Trains the small Jamba on generated episodes, loss on assistant tokens only.
#
# Time-bounded (--minutes): the learning rate follows a cosine over the time
# budget rather than a step count, so a run on a busy machine still ends
# annealed. Checkpoints every --ckpt-minutes; --resume continues from one
# (the schedule resumes from the elapsed time stored in it).
import argparse
import json
import math
import os
import random
import time

import torch
import torch.nn.functional as F

import model as M
import tok as T


def load_episodes(path, tk, max_len):
    out = []
    with open(path) as f:
        for line in f:
            ep = json.loads(line)
            ids, mask = tk.encode_segs(ep["segs"])
            if len(ids) <= max_len:
                out.append((ids, mask))
    return out


def batches(eps, tokens_per_batch, rng):
    """Length-bucketed batches of about tokens_per_batch (padded) tokens."""
    order = sorted(range(len(eps)), key=lambda i: len(eps[i][0]) + rng.random())
    out, cur, longest = [], [], 0
    for i in order:
        n = len(eps[i][0])
        if cur and max(longest, n) * (len(cur) + 1) > tokens_per_batch:
            out.append(cur)
            cur, longest = [], 0
        cur.append(i)
        longest = max(longest, n)
    if cur:
        out.append(cur)
    rng.shuffle(out)
    return out


def collate(eps, idx):
    L = max(len(eps[i][0]) for i in idx)
    x = torch.zeros(len(idx), L, dtype=torch.long)
    m = torch.zeros(len(idx), L, dtype=torch.float32)
    for r, i in enumerate(idx):
        ids, mask = eps[i]
        x[r, : len(ids)] = torch.tensor(ids)
        m[r, : len(mask)] = torch.tensor(mask, dtype=torch.float32)
    return x, m


def masked_loss(model, x, m):
    """Mean cross-entropy over the positions whose next token is trained.
    lm_head runs only there (under a tenth of all positions), not over the
    whole padded batch."""
    sel = m[:, 1:] > 0
    h = model.hidden(x[:, :-1])[sel]
    return F.cross_entropy(model.lm_head(h), x[:, 1:][sel])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--out", required=True, help="checkpoint path")
    ap.add_argument("--minutes", type=float, default=45)
    ap.add_argument("--ckpt-minutes", type=float, default=5)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--tokens-per-batch", type=int, default=3072)
    ap.add_argument("--max-len", type=int, default=1600)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--d-model", type=int, default=96)
    ap.add_argument("--d-state", type=int, default=8)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--resume", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.set_flush_denormal(True)  # denormal decays make the scan crawl otherwise
    torch.manual_seed(a.seed)
    rng = random.Random(a.seed)
    tk = T.Tok(a.tokenizer)
    eps = load_episodes(a.data, tk, a.max_len)
    print("episodes %d, tokens %d, trained tokens %d" % (
        len(eps), sum(len(e[0]) for e in eps), sum(sum(e[1]) for e in eps)), flush=True)
    cfg = M.Config(vocab=tk.sp.get_piece_size(), d_model=a.d_model, d_ff=2 * a.d_model,
                   d_state=a.d_state, dt_rank=max(1, math.ceil(a.d_model / 16)))
    model = M.Jamba(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, 0.98), weight_decay=0.01)
    elapsed, step, seen = 0.0, 0, 0
    if a.resume and os.path.exists(a.out):
        model, ck = M.load(a.out)
        opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, 0.98), weight_decay=0.01)
        opt.load_state_dict(ck["opt"])
        elapsed, step, seen = ck["elapsed"], ck["step"], ck["seen"]
        rng = random.Random(a.seed * 1000003 + step)  # new batches, not the ones already seen
        print("resumed at step %d, %.1f min" % (step, elapsed / 60), flush=True)
    print("params %d" % sum(p.numel() for p in model.parameters()), flush=True)
    budget = a.minutes * 60
    start = time.time() - elapsed
    last_ckpt = time.time()
    ema = None
    model.train()
    while True:
        for idx in batches(eps, a.tokens_per_batch, rng):
            elapsed = time.time() - start
            if elapsed >= budget:
                break
            frac = elapsed / budget
            warm = min(1.0, (step + 1) / 30)
            lr = a.lr * warm * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))
            for g in opt.param_groups:
                g["lr"] = lr
            x, m = collate(eps, idx)
            loss = masked_loss(model, x, m)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step += 1
            seen += x.numel()
            ema = loss.item() if ema is None else 0.95 * ema + 0.05 * loss.item()
            if step % 10 == 0:
                print("step %d  %.1f min  lr %.2e  loss %.4f  ema %.4f  tok/s %.0f" % (
                    step, elapsed / 60, lr, loss.item(), ema, seen / max(elapsed, 1)), flush=True)
            if time.time() - last_ckpt > a.ckpt_minutes * 60:
                M.save(model, a.out + ".tmp", dict(opt=opt.state_dict(), elapsed=time.time() - start,
                                                   step=step, seen=seen, loss=ema))
                os.replace(a.out + ".tmp", a.out)
                last_ckpt = time.time()
        else:
            continue
        break
    M.save(model, a.out + ".tmp", dict(opt=opt.state_dict(), elapsed=time.time() - start, step=step,
                                       seen=seen, loss=ema))
    os.replace(a.out + ".tmp", a.out)
    print("done: step %d, %.1f min, loss ema %.4f" % (step, (time.time() - start) / 60, ema), flush=True)


if __name__ == "__main__":
    main()
