# Data for the hybrid-architecture ablation (issue #14): deterministic,
# seeded generators of three in-context tasks and a language stream, as
# token-id sequences over a byte-level vocabulary, so no tokenizer has to be
# trained and every variant sees exactly the same tokens.
#
# Vocabulary (VOCAB ids): 0 <|pad|>, 1 <|startoftext|>, 2 <|endoftext|>,
# 3 <|unk|>, then the 256 bytes as <0x00>..<0xFF> (ids 4..259, SentencePiece
# byte-fallback pieces, so agentd's tokenizer reads any text), then task
# markers as user-defined tokens, then unused ids up to a multiple of 8.
#
# Every sequence is exactly `seq` tokens (BOS first) with a per-token mask:
# 0 = not scored, 1 = language (every language token is a next-token target),
# 2 = task answer. Task inputs (random keys, spans, examples) are mask 0: they
# are unpredictable by construction. Short tasks sit after a stretch of
# language text that fills the sequence, so tasks never pad and the
# language around them is trained on too.
#
# Tasks:
#   mqar    multi-query associative recall: <|mqar|> "Aq Bx ..." (8-24 distinct
#           upper-case keys, lower-case values), newline, then up to 24 queries
#           (keys drawn with replacement): each key is followed by its value
#           (the answer span, one token).
#   fewshot few-shot format following: <|fmt|> 3-6 lines "x SEP P T(x) S" with a
#           random separator, prefix, suffix and transformation T of the word
#           x, then up to 8 more lines whose "P T(x) S" and newline are scored.
# Many answers a sequence, so the tasks' training signal is not drowned by the
# language around them (a first run with one query a sequence learned nothing
# of the tasks in 1M tokens).
#   copy    copying a span from far back: <|copy|><|span|> 8-16 random
#           characters <|/span|>, ~450 tokens of language text, <|ans|>; the
#           answer is the span and <|/span|>.
# Language: the repository's own Markdown (paragraphs; every tenth is held
# out) and the documents, questions and answers of models/train/gen.py
# episodes (the held-out split of gen.py for validation).
import os
import random
import string
import subprocess

import gen

PAD, BOS, EOS, UNK = 0, 1, 2, 3
BYTE0 = 4
SPECIALS = ["<|mqar|>", "<|fmt|>", "<|copy|>", "<|span|>", "<|/span|>", "<|ans|>"]
SPECIAL_ID = {s: BYTE0 + 256 + i for i, s in enumerate(SPECIALS)}
N_USED = BYTE0 + 256 + len(SPECIALS)
VOCAB = (N_USED + 7) // 8 * 8
TASKS = ("mqar", "fewshot", "copy")
KINDS = ("lang",) + TASKS

SRC = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def vocab_pieces():
    """(tokens, scores, types) for the GGUF tokenizer block (SPM 'llama' model)."""
    toks = ["<|pad|>", "<|startoftext|>", "<|endoftext|>", "<|unk|>"]
    types = [3, 3, 3, 2]
    toks += ["<0x%02X>" % b for b in range(256)]
    types += [6] * 256
    toks += SPECIALS
    types += [4] * len(SPECIALS)
    while len(toks) < VOCAB:
        toks.append("<|unused%d|>" % (len(toks) - N_USED))
        types.append(5)
    return toks, [0.0] * VOCAB, types


def enc(text):
    return [BYTE0 + b for b in text.encode("utf-8")]


def dec(ids):
    out = bytearray()
    for i in ids:
        if BYTE0 <= i < BYTE0 + 256:
            out.append(i - BYTE0)
        elif i >= BYTE0 + 256 and i < N_USED:
            out += SPECIALS[i - BYTE0 - 256].encode()
    return out.decode("utf-8", "replace")


# ---------------------------------------------------------------- language


def markdown_paragraphs(held):
    """The repository's Markdown files, as paragraphs; every tenth one is held out."""
    try:
        names = subprocess.run(["git", "ls-files", "*.md"], cwd=SRC, capture_output=True, text=True,
                               check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        names = []
    paras = []
    for n in sorted(names):
        try:
            with open(os.path.join(SRC, n), encoding="utf-8") as f:
                paras += [p.strip() for p in f.read().split("\n\n") if p.strip()]
        except OSError:
            continue
    return [p for i, p in enumerate(paras) if (i % 10 == 9) == held]


def episode_text(rng, held):
    """One gen.py episode's documents, question and answer as plain text."""
    ep = gen.episode(rng, held)
    parts = []
    for t in ep["turns"]:
        if t["role"] == "user":
            for title, body in t.get("docs", []):
                parts.append("%s\n%s" % (title, body))
            if t.get("text"):
                parts.append("Q: " + t["text"])
        elif t.get("text"):
            parts.append("A: " + t["text"])
    return "\n".join(parts)


class Language:
    """An endless, seeded stream of language tokens for one split."""

    def __init__(self, seed, held):
        self.rng = random.Random(seed)
        self.held = held
        self.md = markdown_paragraphs(held)
        self.buf = []

    def take(self, n):
        while len(self.buf) < n:
            if self.md and self.rng.random() < 0.25:
                k = self.rng.randrange(len(self.md))
                text = "\n\n".join(self.md[k : k + self.rng.randint(1, 4)])
            else:
                text = episode_text(self.rng, self.held)
            self.buf += enc(text + "\n\n")
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


# ---------------------------------------------------------------- tasks


def task_mqar(rng, room):
    """8-24 pairs, then up to 24 queries (keys drawn with replacement) within room tokens."""
    n = rng.randint(8, 24)
    keys = rng.sample(string.ascii_uppercase, n)
    vals = [rng.choice(string.ascii_lowercase) for _ in keys]
    ids, mask = [SPECIAL_ID["<|mqar|>"]], [0]
    body = enc(" ".join(k + v for k, v in zip(keys, vals)) + "\n")
    ids += body
    mask += [0] * len(body)
    for _ in range(24):
        if len(ids) + 3 > room:
            break
        q = rng.randrange(n)
        ids += enc(keys[q]) + enc(vals[q]) + enc(" ")
        mask += [0, 2, 0]
    return ids, mask


TRANSFORMS = {
    "same": lambda x: x,
    "upper": lambda x: x.upper(),
    "reverse": lambda x: x[::-1],
    "double": lambda x: "".join(c + c for c in x),
    "ends": lambda x: x[0] + x[-1],
    "sorted": lambda x: "".join(sorted(x)),
}
PUNCT = "[]()<>{}#*@%+=~!$&"
SEPS = [" -> ", ": ", " => ", " | ", " = ", " ~ "]


def task_fewshot(rng, room):
    """3-6 shown examples of one random format, then up to 8 scored lines (each one
    another example for the next) within room tokens."""
    t = TRANSFORMS[rng.choice(sorted(TRANSFORMS))]
    sep = rng.choice(SEPS)
    pre = "".join(rng.choice(PUNCT) for _ in range(rng.randint(0, 2)))
    suf = "".join(rng.choice(PUNCT) for _ in range(rng.randint(0, 2)))
    k = rng.randint(3, 6)
    ids, mask = [SPECIAL_ID["<|fmt|>"]], [0]
    for i in range(k + 8):
        x = "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(3, 6)))
        head, ans = enc(x + sep), enc(pre + t(x) + suf + "\n")
        if i > k and len(ids) + len(head) + len(ans) > room:
            break
        ids += head + ans
        mask += [0] * len(head) + ([0] * len(ans) if i < k else [2] * len(ans))
    return ids, mask


def task_copy(rng, seq, lang):
    n = rng.randint(8, 16)
    span = enc("".join(rng.choice(string.ascii_lowercase + string.digits) for _ in range(n)))
    s, e = SPECIAL_ID["<|span|>"], SPECIAL_ID["<|/span|>"]
    head = [BOS, SPECIAL_ID["<|copy|>"], s] + span + [e]
    tail = [SPECIAL_ID["<|ans|>"]] + span + [e]
    if seq - len(head) - len(tail) < 16:
        raise ValueError("ablation_data: sequences of %d tokens are too short for copy" % seq)
    fill = lang.take(seq - len(head) - len(tail))
    ids = head + fill + tail
    mask = [0] * len(head) + [1] * len(fill) + [0] + [2] * (len(span) + 1)
    return ids, mask


def sequence(kind, rng, lang, seq):
    """One sequence of exactly seq tokens and its mask."""
    if kind == "lang":
        return [BOS] + lang.take(seq - 1), [0] + [1] * (seq - 1)
    if kind == "copy":
        return task_copy(rng, seq, lang)
    room = seq - 1 - 16  # at least 16 tokens of language before the task
    for _ in range(100):  # only short sequences (tests) ever need a second draw
        ids, mask = task_mqar(rng, room) if kind == "mqar" else task_fewshot(rng, room)
        if len(ids) <= room and 2 in mask:
            break
    else:
        raise ValueError("ablation_data: sequences of %d tokens are too short for %s" % (seq, kind))
    fill = lang.take(seq - 1 - len(ids))
    return [BOS] + fill + ids, [0] + [1] * len(fill) + mask


class Stream:
    """Seeded sequences for one split: train (seed) or validation (another seed,
    gen.py's held-out split and the held-out Markdown paragraphs)."""

    def __init__(self, seed, held=False, seq=512):
        self.rng = random.Random(seed * 7919 + (1 if held else 0))
        self.lang = Language(seed * 104729 + 17, held)
        self.seq = seq

    def next(self, kind):
        return sequence(kind, self.rng, self.lang, self.seq)


def spans(mask, value):
    """[start, end) runs of positions whose mask equals value."""
    out, i = [], 0
    while i < len(mask):
        if mask[i] == value:
            j = i
            while j < len(mask) and mask[j] == value:
                j += 1
            out.append((i, j))
            i = j
        else:
            i += 1
    return out


def write_eval(path, seed, n_per_kind, seq):
    """The held-out file bench/ablation reads: one sequence a line,
    `kind n t1..tn m s1 e1 .. sm em` where [s, e) are the scored spans
    (answer spans for tasks, everything after BOS for language)."""
    st = Stream(seed, held=True, seq=seq)
    with open(path, "w") as f:
        for kind in KINDS:
            for _ in range(n_per_kind):
                ids, mask = st.next(kind)
                sp = spans(mask, 1 if kind == "lang" else 2)
                f.write("%s %d %s %d %s\n" % (kind, len(ids), " ".join(map(str, ids)), len(sp),
                                              " ".join("%d %d" % s for s in sp)))
