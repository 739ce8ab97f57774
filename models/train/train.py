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
import re
import shutil
import time

import torch
import torch.nn.functional as F

import model as M
import tok as T


TITLE_RE = re.compile(r'title="([^"]*)"')
SYSTEM_START = "<|startoftext|><|im_start|>system"


def load_episodes(path, tk, max_len, pack=False, seed=1, think_weight=1.0):
    """(ids, mask) per episode of at most max_len tokens. pack: episodes with
    the same system turn are joined into conversations of several turns under
    one system turn (see pack_groups). think_weight: see weigh_reasoning."""
    out = _load_episodes(path, tk, max_len, pack, seed)
    if think_weight != 1.0:
        out = [(ids, weigh_reasoning(tk, ids, mask, think_weight)) for ids, mask in out]
    return out


def weigh_reasoning(tk, ids, mask, weight):
    """The mask with the trained tokens inside <think> ... </think> set to
    weight. The reasoning line is where the answer is decided (which
    document, quote or "not found" or the calculator) in a dozen tokens of an
    answer's hundred; the copying after it is easy once it is right."""
    open_id, close_id = tk.sp.piece_to_id("<think>"), tk.sp.piece_to_id("</think>")
    out, inside = list(mask), False
    for i, (t, m) in enumerate(zip(ids, mask)):  # <think> ends the (untrained) prompt
        if t == open_id:
            inside = True
        elif t == close_id:
            inside = False
        elif inside and m:
            out[i] = weight
    return out


def _load_episodes(path, tk, max_len, pack, seed):
    out, packable = [], {}
    with open(path) as f:
        for line in f:
            ep = json.loads(line)
            segs, kind = ep["segs"], ep.get("meta", {}).get("type")
            if pack and kind in PACKABLE and segs[0][0].startswith(SYSTEM_START):
                packable.setdefault(segs[0][0], []).append(ep)
                continue
            ids, mask = tk.encode_segs(segs)
            if len(ids) <= max_len:
                out.append((ids, mask))
    for group in packable.values():
        out.extend((ids, mask) for _, ids, mask in pack_groups(group, tk, max_len, random.Random(seed)))
    return out


# Kinds joined by --pack; a "not found" question only ever opens a conversation,
# so no earlier turn's documents can hold its answer.
PACKABLE = {"quote", "inject", "calc", "notfound"}


def pack_groups(group, tk, max_len, rng):
    """Episodes sharing one system turn (about half of an episode's tokens),
    grouped into conversations of several turns, each group as (episodes, ids,
    mask): the system turn once, then each episode's user and assistant turns,
    so a step trains on more answers for the same tokens. agentd's per-user
    memory continues conversations exactly so (earlier turns, documents
    included, stay in the state). An episode joins only if none of its
    documents' titles appeared earlier in the conversation, so no earlier
    passage states another value for the fact it asks about."""
    rng.shuffle(group)
    out, cur, titles = [], None, set()
    for ep in group:
        segs = ep["segs"]
        ts = set(TITLE_RE.findall("".join(s[0] for s in segs[1:])))
        ids, mask = tk.encode_segs(segs[1:])
        if (cur is not None and ep["meta"]["type"] != "notfound" and not (ts & titles)
                and len(cur[1]) + len(ids) <= max_len):
            cur[0].append(ep)
            cur[1].extend(ids)
            cur[2].extend(mask)
            titles |= ts
            continue
        if cur is not None:
            out.append(cur)
        sys_ids, sys_mask = tk.encode_segs(segs[:1])
        cur, titles = ([ep], sys_ids + ids, sys_mask + mask), ts
        if len(cur[1]) > max_len:
            cur = None
    if cur is not None:
        out.append(cur)
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
    """Token ids, and per position 1 (assistant token: trained; more for
    weighted reasoning tokens), 0.5 (any other real token) or 0 (padding)."""
    L = max(len(eps[i][0]) for i in idx)
    x = torch.zeros(len(idx), L, dtype=torch.long)
    m = torch.zeros(len(idx), L, dtype=torch.float32)
    for r, i in enumerate(idx):
        ids, mask = eps[i]
        x[r, : len(ids)] = torch.tensor(ids)
        m[r, : len(mask)] = 0.5 + 0.5 * torch.tensor(mask, dtype=torch.float32)
    return x, m


def copy_batch(rng, pieces, bos, sep, n_seqs, n_max=16):
    """Random-token copying, BOS x1..xn SEP x1..xn with the loss on the copy:
    only copying predicts it. Measured (models/README.md): the shipped shape
    learns this in ~200 steps, and once it has, copying whole sentences out of
    chat-format episodes follows within a few hundred more; trained on the
    episodes alone it stays a language model of the answer templates
    (names and digits guessed, not copied) for thousands of steps."""
    x = torch.zeros(n_seqs, 2 * n_max + 2, dtype=torch.long)
    m = torch.zeros(n_seqs, 2 * n_max + 2, dtype=torch.float32)
    for r in range(n_seqs):
        xs = [rng.choice(pieces) for _ in range(rng.randint(6, n_max))]
        n = len(xs)
        x[r, : 2 * n + 2] = torch.tensor([bos] + xs + [sep] + xs)
        m[r, n + 2 : 2 * n + 2] = 1.0  # the random half is no context to learn
    return x, m


def lookup_batch(rng, pieces, bos, sep, stop, n_seqs, key_first=0.0):
    """Random-token sentence lookup: BOS s1 STOP ... sK STOP SEP k1 k2 SEP sj
    STOP, where k1 k2 are two tokens from the middle or end of sentence j (never
    its first), loss on the answer sentence. The quoting step the episodes
    need, alone: find the sentence that holds the question's subject and
    write it from its start, when nothing before the subject says which
    sentence it is in. A share key_first of the rows put the key at the
    sentence's start instead (all of them: the control, finding what follows
    a key, as induction does)."""
    rows = []
    for _ in range(n_seqs):
        sents = [[rng.choice(pieces) for _ in range(rng.randint(4, 9))] for _ in range(rng.randint(2, 6))]
        j = rng.randrange(len(sents))
        at = 0 if key_first and rng.random() < key_first else rng.randint(1, len(sents[j]) - 2)
        ids = [bos] + [t for s in sents for t in s + [stop]] + [sep] + sents[j][at : at + 2] + [sep]
        rows.append((ids, sents[j] + [stop]))
    width = max(len(ids) + len(ans) for ids, ans in rows)
    x = torch.zeros(n_seqs, width, dtype=torch.long)
    m = torch.zeros(n_seqs, width, dtype=torch.float32)
    for r, (ids, ans) in enumerate(rows):
        x[r, : len(ids) + len(ans)] = torch.tensor(ids + ans)
        m[r, len(ids) : len(ids) + len(ans)] = 1.0
    return x, m


def masked_loss(model, x, m, ctx_weight=0.0):
    """Mean cross-entropy over the assistant's tokens, plus ctx_weight times
    the mean over every other token (documents, questions, tool results).
    The assistant's tokens are under a tenth of an episode; the rest, as
    ordinary language modelling, teaches the model to copy names and numbers
    from the documents into the question far sooner than the answers alone
    do. Returns (total, assistant-only) losses; lm_head runs only on the
    positions that count."""
    want = m[:, 1:]
    ans = want > 0.75
    h = model.hidden(x[:, :-1])
    y = x[:, 1:]
    ce = F.cross_entropy(model.lm_head(h[ans]), y[ans], reduction="none")
    la = ce.mean()
    w = (want[ans] - 0.5) * 2  # 1, or the reasoning weight
    total = (ce * w).sum() / w.sum()
    ctx = (want > 0.25) & ~ans
    if ctx_weight <= 0 or not ctx.any():
        return total, la
    lc = F.cross_entropy(model.lm_head(h[ctx]), y[ctx])
    return total + ctx_weight * lc, la


def validate(model, val, out, best, step):
    """Answer loss on held-out episodes; the best checkpoint so far is copied
    to OUT.best. Returns the best loss."""
    if not val:
        return best
    model.eval()
    tot, n = 0.0, 0
    with torch.no_grad():
        for ids, mask in val:
            x = torch.tensor([ids])
            m = 0.5 + 0.5 * torch.tensor([mask], dtype=torch.float32)
            k = sum(mask[1:])
            tot += masked_loss(model, x, m)[1].item() * k
            n += k
    model.train()
    loss = tot / max(n, 1)
    print("validation at step %d: answer loss %.4f%s" % (
        step, loss, "" if best is not None and loss >= best else " (best so far)"), flush=True)
    if best is None or loss < best:
        shutil.copyfile(out, out + ".best")
        return loss
    return best


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
    ap.add_argument("--layers", type=int, default=8,
                    help="attention on layers 4, 12, ... (one in eight), as in Jamba")
    ap.add_argument("--think-weight", type=float, default=1.0,
                    help="loss weight of the reasoning tokens (see weigh_reasoning)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--tie", action="store_true", help="lm_head shares the embedding matrix")
    ap.add_argument("--warmup-data", help="episodes trained on alone for the first --warmup-minutes")
    ap.add_argument("--warmup-minutes", type=float, default=0.0,
                    help="the first minutes of training (--induction-steps included) use --warmup-data")
    ap.add_argument("--ctx-weight", type=float, default=0.0,
                    help="weight of the loss on non-assistant tokens (0: assistant tokens only)")
    ap.add_argument("--induction-steps", type=int, default=0,
                    help="first train this many steps of random-token copying (copy_batch)")
    ap.add_argument("--induction-share", type=float, default=0.0,
                    help="afterwards, share of steps that are copy_batch steps")
    ap.add_argument("--pack", action="store_true",
                    help="join episodes that share a system turn into conversations (pack_groups)")
    ap.add_argument("--val-data", help="held-out episodes: each checkpoint's answer loss on them is "
                    "printed, and the best checkpoint is kept as OUT.best")
    ap.add_argument("--resume", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.set_flush_denormal(True)  # denormal decays make the scan crawl otherwise
    torch.manual_seed(a.seed)
    rng = random.Random(a.seed)
    tk = T.Tok(a.tokenizer)
    eps = load_episodes(a.data, tk, a.max_len, a.pack, a.seed, a.think_weight)
    warm = load_episodes(a.warmup_data, tk, a.max_len) if a.warmup_data and a.warmup_minutes > 0 else []
    if warm:
        print("warm-up episodes %d for %.1f min" % (len(warm), a.warmup_minutes), flush=True)
    print("episodes %d, tokens %d, trained tokens %d" % (
        len(eps), sum(len(e[0]) for e in eps), sum(sum(e[1]) for e in eps)), flush=True)
    cfg = M.Config(vocab=tk.sp.get_piece_size(), d_model=a.d_model, d_ff=2 * a.d_model, n_layers=a.layers,
                   d_state=a.d_state, dt_rank=max(1, math.ceil(a.d_model / 16)), tie_embeddings=a.tie)
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
    pieces = [i for i in range(tk.sp.get_piece_size())
              if not (tk.sp.is_unused(i) or tk.sp.is_control(i) or tk.sp.is_unknown(i) or tk.sp.is_byte(i))
              and not tk.sp.id_to_piece(i).startswith("<")]
    quote = tk.sp.piece_to_id('"')

    def stream():
        """(label, batch): random-token copy batches for --induction-steps,
        then warm-up episodes while in their minutes, then the main episodes
        pass after pass, with --induction-share copy batches mixed in."""
        while step < a.induction_steps:
            yield "copy", copy_batch(rng, pieces, 1, quote, 32)

        def mixed(pool, label):
            for idx in batches(pool, a.tokens_per_batch, rng):
                if a.induction_share and rng.random() < a.induction_share:
                    yield "copy", copy_batch(rng, pieces, 1, quote, 32)
                yield label, collate(pool, idx)

        while warm and time.time() - start < a.warmup_minutes * 60:
            for item in mixed(warm, "warm-up"):
                if time.time() - start >= a.warmup_minutes * 60:
                    break
                yield item
        while True:
            yield from mixed(eps, "")

    val = load_episodes(a.val_data, tk, 2000) if a.val_data else []
    best = None
    phase = None
    for label, (x, m) in stream():
        if label != phase and (label != "copy" or phase is None):
            phase = label
            print("phase %s from step %d" % (label or "main", step + 1), flush=True)
        elapsed = time.time() - start
        if elapsed >= budget:
            break
        frac = elapsed / budget
        ramp = min(1.0, (step + 1) / 30)
        lr = a.lr * ramp * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = lr
        loss, ans_loss = masked_loss(model, x, m, a.ctx_weight)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        seen += x.numel()
        # the EMA follows the assistant-token loss, comparable across --ctx-weight
        if label != "copy" or ema is None:  # copy batches would skew it
            ema = ans_loss.item() if ema is None else 0.95 * ema + 0.05 * ans_loss.item()
        if step % 10 == 0:
            print("step %d  %.1f min  lr %.2e  loss %.4f  answer %.4f  ema %.4f  tok/s %.0f%s" % (
                step, elapsed / 60, lr, loss.item(), ans_loss.item(), ema, seen / max(elapsed, 1),
                "  (%s)" % label if label else ""), flush=True)
        if time.time() - last_ckpt > a.ckpt_minutes * 60:
            M.save(model, a.out + ".tmp", dict(opt=opt.state_dict(), elapsed=time.time() - start,
                                               step=step, seen=seen, loss=ema))
            os.replace(a.out + ".tmp", a.out)
            before_val = time.time()
            best = validate(model, val, a.out, best, step)
            last_ckpt = time.time()
            start += last_ckpt - before_val  # validation time is not training time
    M.save(model, a.out + ".tmp", dict(opt=opt.state_dict(), elapsed=time.time() - start, step=step,
                                       seen=seen, loss=ema))
    os.replace(a.out + ".tmp", a.out)
    validate(model, val, a.out, best, step)
    print("done: step %d, %.1f min, loss ema %.4f" % (step, (time.time() - start) / 60, ema), flush=True)


if __name__ == "__main__":
    main()
