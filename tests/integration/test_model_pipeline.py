#!/usr/bin/env python3
# Fast checks of the model pipeline (models/train/): the episode generator,
# the tokenizer settings, the chunked scan and the C scan kernel (values and
# gradients) against the exact one, and the GGUF
# exporter against agentd's engine (a tiny random model must give the same
# logits in PyTorch and `agentd logits`). Needs Debian's python3-torch,
# python3-numpy and python3-sentencepiece (under /usr/bin/python3): re-runs
# itself there, and skips with a printed reason when they are missing.
import os
import subprocess
import sys

SRC = os.environ.get("AGENTD_SRC", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
TRAIN = os.path.join(SRC, "models", "train")


import harness  # noqa: E402
import torch_env  # noqa: E402

torch_env.require()

sys.path.insert(0, TRAIN)
import json  # noqa: E402
import re  # noqa: E402
import random  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

import export_gguf  # noqa: E402
import fmt  # noqa: E402
import gen  # noqa: E402
import model as M  # noqa: E402
import tok as T  # noqa: E402

AGENTD = os.environ.get("AGENTD_BIN", os.path.join(SRC, "build", "agentd"))
TMP = harness.tmpdir("agentd-model-")
torch.set_num_threads(1)
torch.set_flush_denormal(True)


def episodes(n, seed, split="train"):
    path = os.path.join(TMP, "%s-%d-%d.jsonl" % (split, n, seed))
    subprocess.run([sys.executable, os.path.join(TRAIN, "gen.py"), "--split", split, "--n", str(n), "--seed",
                    str(seed), "--out", path], check=True)
    return path


def test_generator_deterministic_and_split():
    a, b = episodes(50, 3), episodes(50, 3)
    assert open(a).read() == open(b).read()
    assert open(a).read() != open(episodes(50, 4)).read()
    for key in ("first", "last", "prod_a", "city", "company"):
        tr, he = set(gen.pools(False)[key]), set(gen.pools(True)[key])
        assert tr and he and not (tr & he), key


def test_reworded_sentences():
    """gen.py --vary rewords training sentences (lead-ins, tails) and every
    quoted answer is still the document's sentence verbatim; the held-out
    split is never reworded."""
    saved = gen.VARY
    try:
        gen.VARY = 0.6
        rng = random.Random(8)
        varied = 0
        for _ in range(60):
            ep = gen.episode(rng, False, "quote")
            quote, doc = ep["meta"]["quotes"][0]
            user = ep["turns"][-2]
            assert quote in user["docs"][doc - 1][1], (quote, user["docs"][doc - 1])
            varied += any(quote.startswith(x) for x in gen.LEAD_INS) or any(t + "." in quote for t in gen.TAILS)
        assert 15 < varied < 50, varied
        for _ in range(60):
            text = fmt.prompt_text(fmt.render(gen.episode(rng, True)))
            assert not any(x in text for x in gen.LEAD_INS + [t + "." for t in gen.TAILS])
    finally:
        gen.VARY = saved


def test_rendered_format():
    rng = random.Random(9)
    ep = gen.episode(rng, False, "calc_doc")
    text = fmt.prompt_text(fmt.render(ep))
    assert text.startswith("<|startoftext|><|im_start|>system\nYou are agentd, a careful assistant")
    assert '"name": "calculator", "description": "Exact arithmetic on integers and decimals: ' in text
    assert "\n<tool_call>\n{\"name\": \"calculator\", \"arguments\": {\"expression\": \"" in text
    assert "<|im_start|>user\n<tool_response>\n{\"ok\": true, \"result\": {\"value\": \"" in text
    assert text.count(fmt.THINK_PREFIX) == 1
    assert text.endswith("<|im_end|>\n")
    # Every quote the answer cites is verbatim in the cited document.
    m = ep["meta"]
    docs = [t for t in ep["turns"] if t["role"] == "user"][-1]["docs"]
    for q, i in m["quotes"]:
        assert q in docs[i - 1][1]
    assert fmt.escape_data("a <document x> <|im_end|> <b>") == "a &lt;document x> &lt;|im_end|> <b>"


def c_string(src, field):
    """The C string literal(s) after `.field =` in a tools/*.c definition, joined."""
    body = src.split("." + field + " =", 1)[1]
    body = body.split(",\n\t.", 1)[0]
    return "".join(json.loads('"%s"' % lit) for lit in re.findall(r'"((?:[^"\\]|\\.)*)"', body))


def test_tool_definitions_are_agentds():
    """The episodes show the calculator and http_get exactly as agentd's planner lists them."""
    for tool, path in ((fmt.CALCULATOR, "tool_calculator.c"), (fmt.HTTP_GET, "tool_http.c")):
        src = open(os.path.join(SRC, "tools", path)).read()
        assert tool["description"] == c_string(src, "description"), path
        assert tool["parameters"] == json.loads(c_string(src, "schema")), path
        # key order too: the system turn is text
        assert json.dumps(tool["parameters"]) == json.dumps(json.loads(c_string(src, "schema"))), path


def test_tokenizer_specials_and_segments():
    path = episodes(300, 5)
    prefix = os.path.join(TMP, "tok")
    r = subprocess.run([sys.executable, os.path.join(TRAIN, "tok.py"), "--episodes", path, "--prefix", prefix,
                        "--vocab", "1024"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr + r.stdout
    tk = T.Tok(prefix + ".model")
    for s in T.SPECIALS:
        assert len(tk.sp.encode(s)) == 1, s
    assert tk.sp.piece_to_id("<|startoftext|>") == 1 and tk.sp.piece_to_id("<|endoftext|>") == 2
    assert tk.sp.piece_to_id("<|pad|>") == 0 and tk.sp.piece_to_id("<|unk|>") == 3
    ids = tk.sp.encode("a\n\nb  c")
    assert tk.sp.decode(ids) == "a\n\nb  c"  # no whitespace folding, newlines kept


def test_train_phases():
    """train.py end to end on a tiny budget: the random-copy steps come first,
    then the warm-up episodes, then the main ones; the checkpoint loads and is
    tied (no separate output matrix)."""
    prefix = os.path.join(TMP, "tok")
    if not os.path.exists(prefix + ".model"):
        test_tokenizer_specials_and_segments()
    out = os.path.join(TMP, "phases.pt")
    r = subprocess.run([sys.executable, os.path.join(TRAIN, "train.py"), "--data", episodes(40, 6),
                        "--tokenizer", prefix + ".model", "--out", out, "--minutes", "0.4", "--d-model", "16",
                        "--tokens-per-batch", "1024", "--max-len", "1200", "--threads", "1", "--tie",
                        "--induction-steps", "5", "--warmup-data", episodes(40, 7, "warmup"),
                        "--warmup-minutes", "0.2"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    phases = [ln.split()[1] for ln in r.stdout.splitlines() if ln.startswith("phase ")]
    assert phases == ["copy", "warm-up", "main"], r.stdout
    m, ck = M.load(out)
    assert ck["step"] > 5 and m.lm_head.weight is m.embed_tokens.weight


def test_packing_and_validation():
    """--pack joins episodes that share a system turn into conversations: the
    system turn once, every joined episode's turns and trained tokens intact, no
    document title twice in a conversation, "not found" questions only first;
    --val-data prints each checkpoint's held-out loss and keeps the best."""
    import train
    prefix = os.path.join(TMP, "tok")
    if not os.path.exists(prefix + ".model"):
        test_tokenizer_specials_and_segments()
    tk = T.Tok(prefix + ".model")
    path = episodes(300, 12)
    plain = train.load_episodes(path, tk, 1200)
    packed = train.load_episodes(path, tk, 1200, pack=True)
    assert sum(sum(m) for _, m in packed) == sum(sum(m) for _, m in plain)  # no answer lost
    assert len(packed) < 0.85 * len(plain)
    assert sum(len(i) for i, _ in packed) < 0.9 * sum(len(i) for i, _ in plain)
    groups = {}
    for line in open(path):
        ep = json.loads(line)
        if ep["meta"]["type"] in train.PACKABLE:
            groups.setdefault(ep["segs"][0][0], []).append(ep)
    joined = 0
    for group in groups.values():
        for eps, ids, mask in train.pack_groups(group, tk, 1200, random.Random(1)):
            assert len(ids) == len(mask) <= 1200
            whole = tk.encode_segs(eps[0]["segs"][:1] + [s for e in eps for s in e["segs"][1:]])
            assert (ids, mask) == whole
            assert tk.decode(ids).count("<|im_start|>system") == 1
            assert all(e["meta"]["type"] != "notfound" for e in eps[1:])
            seen = set()
            for e in eps:
                ts = set(train.TITLE_RE.findall("".join(s for s, _ in e["segs"])))
                assert not ts & seen, ts & seen
                seen |= ts
            joined += len(eps) > 1
    assert joined > 20
    out = os.path.join(TMP, "val.pt")
    r = subprocess.run([sys.executable, os.path.join(TRAIN, "train.py"), "--data", path, "--tokenizer",
                        prefix + ".model", "--out", out, "--minutes", "0.3", "--ckpt-minutes", "0.1",
                        "--d-model", "16", "--tokens-per-batch", "1024", "--max-len", "1200", "--threads", "1",
                        "--tie", "--pack", "--val-data", episodes(10, 13, "heldout")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    losses = [float(ln.split()[6]) for ln in r.stdout.splitlines() if ln.startswith("validation at step")]
    assert len(losses) >= 2, r.stdout
    best, _ = M.load(out + ".best")
    final, _ = M.load(out)
    same = all(torch.equal(a, b) for a, b in zip(best.state_dict().values(), final.state_dict().values()))
    assert same == (losses[-1] <= min(losses)), (losses, same)


def test_reasoning_and_phrasing_options():
    """--think-title writes the answering document's title and id in the
    reasoning, --think-subject the question's subject before it (and before
    "The documents do not say."); --phrasings draws more training questions;
    none of them changes what the held-out split asks, and no training memory
    attribute is a held-out one."""
    saved = gen.THINK_TITLE, gen.THINK_SUBJECT, gen.PHRASINGS
    try:
        held = [gen.episode(random.Random(5), True) for _ in range(20)]
        gen.THINK_TITLE = gen.THINK_SUBJECT = gen.PHRASINGS = True
        rng = random.Random(9)
        questions = set()
        for _ in range(80):
            ep = gen.episode(rng, False, rng.choice(["quote", "notfound"]))
            user, answer = ep["turns"][-2], ep["turns"][-1]
            questions.add(user["text"])
            assert answer["reasoning"].startswith("Subject: "), answer
            subject = answer["reasoning"][len("Subject: "):].split(". ")[0]
            assert subject in user["text"], (subject, user["text"])
            if ep["meta"]["type"] == "quote":
                quote, doc = ep["meta"]["quotes"][0]
                title = user["docs"][doc - 1][0]
                assert answer["reasoning"].endswith('It is under "%s", document %d.' % (title, doc)), answer
            else:
                assert answer["reasoning"].endswith("The documents do not say."), answer
        assert any(q.startswith(tuple(gen.QUESTION_LEAD_INS)) for q in questions)
        extra = [t.split("{")[0] for ts in gen.MORE_QUESTIONS.values() for t in ts]
        import grammar  # the held-out questions' key wordings
        assert not [t for ts in gen.MORE_QUESTIONS.values() for t in ts if any(w in t for w in grammar.HELD_OUT_WORDS)]
        assert any(q.startswith(tuple(extra)) for q in questions)
        again = [gen.episode(random.Random(5), True) for _ in range(20)]
        def asked(eps):  # what the evaluation shows the model: all but the answer's reasoning
            return [([t for t in e["turns"] if t["role"] != "assistant"], e["tools"], e["meta"]) for e in eps]
        assert asked(again) == asked(held)
        attrs = {gen.mem_train_attribute(gen.World(random.Random(i), False))[0] for i in range(400)}
        assert len(attrs) > 100 and not attrs & {a for a, _ in gen.MEM_HELD}
        world = gen.World(random.Random(3), False)  # without --mem-wide: the seven of the shipped recipe
        assert {gen.memory_fact(world)[3] for _ in range(60)} == {a for a, _ in gen.MEM}
    finally:
        gen.THINK_TITLE, gen.THINK_SUBJECT, gen.PHRASINGS = saved


def test_think_numbers():
    """--think-numbers opens the reasoning after the last question with the
    numbers it holds, in its order ("none" without); the rest of the line,
    and what the evaluation asks, are unchanged."""
    saved = gen.THINK_NUMBERS
    try:
        plain = [gen.episode(random.Random(11), False, k) for k in ("calc_plain", "quote", "notfound", "calc_doc", "memory")]
        gen.THINK_NUMBERS = True
        numbered = [gen.episode(random.Random(11), False, k) for k in ("calc_plain", "quote", "notfound", "calc_doc", "memory")]
        for a, b in zip(plain, numbered):
            last = max(i for i, t in enumerate(b["turns"]) if t["role"] == "user")
            question, line = b["turns"][last]["text"], b["turns"][last + 1]["reasoning"]
            nums = re.findall(r"\d+(?:\.\d+)?", question)
            want = "Numbers: %s. " % (", ".join(nums) if nums else "none")
            assert line == want + a["turns"][last + 1]["reasoning"], (question, line)
            assert [t for t in a["turns"] if t["role"] != "assistant"] == [t for t in b["turns"] if t["role"] != "assistant"]
        assert numbered[0]["turns"][-3]["reasoning"].startswith("Numbers: ") and "none" not in numbered[0]["turns"][-3]["reasoning"]
        assert numbered[1]["turns"][-1]["reasoning"].startswith("Numbers: none. ")
    finally:
        gen.THINK_NUMBERS = saved


def test_question_grammar():
    """--grammar: training questions from many wordings, the subject in many
    places (the reasoning's subject is still the question's own words), no
    held-out wording among them; the held-out split and the default training
    split are unchanged by it."""
    import grammar
    templates = [t for w in grammar.KIND_WORDS.values() for t in w["own"] + (w["A"] or []) + (w["S"] or [])]
    templates += grammar.FRAMES + [t for ts in grammar.CALC.values() for t in ts]
    held = {t for k in gen.KINDS.values() for t in k["q"][1]}
    for t in templates:
        assert t not in held and not any(w in t for w in grammar.HELD_OUT_WORDS), t
    saved = gen.GRAMMAR, gen.THINK_SUBJECT
    try:
        plain = [gen.train_episode(random.Random(i), 0.3, 0.5) for i in range(30)]
        held_eps = [gen.episode(random.Random(i), True) for i in range(30)]
        gen.GRAMMAR = True
        assert [gen.episode(random.Random(i), True) for i in range(30)] == held_eps
        gen.THINK_SUBJECT = True
        rng = random.Random(4)
        openings, kinds = set(), {}
        for _ in range(300):
            ep = gen.episode(rng, False, rng.choice(["quote", "notfound", "calc_doc", "calc_any", "calc_plain"]))
            q = ep["turns"][-2 if ep["meta"]["type"] != "calc" else -4]["text"]
            assert all(w not in q for w in ("sell for", "stock level", "price difference")), q
            openings.add(" ".join(q.split()[:2]))
            kinds.setdefault(ep["meta"]["type"], []).append(q)
            if ep["meta"]["type"] in ("quote", "notfound"):
                subject = ep["turns"][-1]["reasoning"][len("Subject: "):].split(". ")[0]
                assert subject in q, (subject, q)
        assert len(openings) > 60, len(openings)
        assert all(len(set(v)) > 0.6 * len(v) for v in kinds.values()), {k: len(v) for k, v in kinds.items()}
    finally:
        gen.GRAMMAR, gen.THINK_SUBJECT = saved
    assert [gen.train_episode(random.Random(i), 0.3, 0.5) for i in range(30)] == plain


def test_think_drills():
    """--think-drills: every answer of a lookup drill carries the episodes'
    reasoning line (the subject, then the cited document's title and number,
    or "The documents do not say."); without it the drills have none."""
    assert all(t["reasoning"] is None for t in gen.lookup_drill(random.Random(8))["turns"][1::2])
    saved = gen.THINK_DRILLS, gen.THINK_TITLE, gen.THINK_SUBJECT
    try:
        gen.THINK_DRILLS = gen.THINK_TITLE = gen.THINK_SUBJECT = True
        rng, quotes, nf = random.Random(8), 0, 0
        for _ in range(40):
            turns = gen.lookup_drill(rng)["turns"]
            docs = turns[0]["docs"]
            for user, answer in zip(turns[::2], turns[1::2]):
                assert user["think"] and answer["reasoning"].startswith("Subject: ")
                subject = answer["reasoning"][len("Subject: "):].split(". ")[0]
                assert subject in user["text"], (subject, user["text"])
                m = re.match(r'^"(.*)" \[(\d+)\]$', answer["text"])
                if m:
                    n = int(m.group(2))
                    assert answer["reasoning"].endswith('It is under "%s", document %d.' % (docs[n - 1][0], n))
                    assert m.group(1) in docs[n - 1][1]
                    quotes += 1
                else:
                    assert answer["text"] == fmt.NOT_FOUND
                    assert answer["reasoning"].endswith("The documents do not say.")
                    nf += 1
        assert quotes > 40 and nf > 10
    finally:
        gen.THINK_DRILLS, gen.THINK_TITLE, gen.THINK_SUBJECT = saved


def test_plain_titles():
    """--plain-titles P: about a share P of training documents are titled with
    nothing of their facts (the quoted sentence's subject is not in the title);
    held-out documents keep their titles."""
    held = [gen.episode(random.Random(i), True, "quote") for i in range(20)]
    saved = gen.PLAIN_TITLES
    try:
        gen.PLAIN_TITLES = 0.5
        assert [gen.episode(random.Random(i), True, "quote") for i in range(20)] == held
        rng, plain, n = random.Random(6), 0, 0
        for _ in range(200):
            ep = gen.episode(rng, False, "quote")
            quote, doc = ep["meta"]["quotes"][0]
            title = ep["turns"][-2]["docs"][doc - 1][0]
            n += 1
            if "›" not in title:
                plain += 1
                assert re.search(r"\d", title) and not any(w in title for w in quote.split()[1:3]), (title, quote)
        assert 0.35 < plain / n < 0.65, plain / n
    finally:
        gen.PLAIN_TITLES = saved


def test_sentence_grammar():
    """--sent-grammar P: training documents state facts in many wordings, each
    with the fact's subject and value, and draw filler from a large pool; none
    is a held-out sentence or uses a held-out key wording; the held-out split,
    and the training split without the option, are unchanged."""
    import sentences
    subject = gen.SUBJECT_SLOT
    for kind, wordings in sentences.SENTENCES.items():
        value = gen.KINDS[kind].get("num") or {"head": "person", "office": "city", "event": "date",
                                               "procedure": "form"}[kind]
        for w in wordings:
            assert w not in gen.KINDS[kind]["sent"][1] and not any(h in w for h in sentences.HELD_OUT_WORDS), w
            assert ("{%s}" % subject[kind] in w or "{%s}" % subject[kind].capitalize() in w) and "{%s}" % value in w, w
    assert len(set(sentences.FILLER)) >= 200 and not set(sentences.FILLER) & set(gen.FILLER_HELD)
    assert not [f for f in sentences.FILLER if any(h in f for h in sentences.HELD_OUT_WORDS)]

    trained = [re.compile("^" + re.sub(r"\\\{\w+\\\}", ".+", re.escape(t)) + "$")
               for k in gen.KINDS.values() for t in k["sent"][0]]

    def templated(rng):  # share of quoted sentences in the default recipe's wordings
        n = 0
        for _ in range(200):
            ep = gen.episode(rng, False, "quote")
            quote, doc = ep["meta"]["quotes"][0]
            assert quote in ep["turns"][-2]["docs"][doc - 1][1]
            n += any(t.match(quote) for t in trained)
        return n / 200

    plain = [gen.train_episode(random.Random(i), 0.3, 0.5) for i in range(30)]
    held = [gen.episode(random.Random(i), True) for i in range(30)]
    assert templated(random.Random(9)) == 1.0
    saved = gen.SENT_GRAMMAR, gen.THINK_SUBJECT
    try:
        gen.SENT_GRAMMAR = 0.8
        assert [gen.episode(random.Random(i), True) for i in range(30)] == held
        assert templated(random.Random(9)) < 0.4
        gen.THINK_SUBJECT = True
        rng, fillers = random.Random(10), set()
        for _ in range(100):
            ep = gen.episode(rng, False, "quote")
            said = ep["turns"][-1]["reasoning"][len("Subject: "):].split(". ")[0]
            assert said.lower() in ep["meta"]["quotes"][0][0].lower(), (said, ep["meta"]["quotes"][0][0])
            fillers |= {f for _, text in ep["turns"][-2]["docs"] for f in sentences.FILLER if f in text}
        assert len(fillers) > 50, len(fillers)
    finally:
        gen.SENT_GRAMMAR, gen.THINK_SUBJECT = saved
    assert [gen.train_episode(random.Random(i), 0.3, 0.5) for i in range(30)] == plain


def test_reasoning_weight():
    """train.py --think-weight: exactly the trained tokens between <think> and
    </think> get the weight (not the tags, not the user's instruction that
    names them), and the total loss is the weighted mean while the reported
    answer loss stays the plain mean."""
    import train
    prefix = os.path.join(TMP, "tok")
    if not os.path.exists(prefix + ".model"):
        test_tokenizer_specials_and_segments()
    tk = T.Tok(prefix + ".model")
    ep = json.loads(open(episodes(5, 21)).readline())
    ids, mask = tk.encode_segs(ep["segs"])
    w = train.weigh_reasoning(tk, ids, mask, 3.0)
    think = tk.sp.piece_to_id("<think>"), tk.sp.piece_to_id("</think>")
    assert ids.count(think[0]) >= 2  # the instruction in the user turn names the tags too
    heavy = [i for i, v in enumerate(w) if v == 3.0]
    assert heavy and all(mask[i] == 1 for i in heavy)
    start = max(i for i in range(heavy[0]) if ids[i] == think[0])  # the generation prompt's tag
    assert mask[start] == 0 and ids[heavy[-1] + 1] == think[1] and mask[heavy[-1] + 1] == 1
    assert heavy == [i for i in range(start + 1, heavy[-1] + 1) if mask[i]]
    assert all(v == m for i, (v, m) in enumerate(zip(w, mask)) if i not in heavy)
    torch.manual_seed(3)
    m = M.Jamba(M.Config(vocab=tk.sp.get_piece_size(), d_model=16, n_layers=2, d_ff=32, d_state=4, dt_rank=1,
                         n_heads=2, n_kv_heads=1, n_experts=1, attn_period=2, attn_offset=1))
    x, mw = train.collate([(ids, w)], [0])
    total, ans = train.masked_loss(m, x, mw)
    with torch.no_grad():
        nll = -torch.log_softmax(m(x[:, :-1]), -1).gather(-1, x[:, 1:, None])[0, :, 0]
    trained = torch.tensor(mask[1:], dtype=torch.bool)
    weights = torch.tensor(w[1:], dtype=torch.float32)[trained]
    assert torch.allclose(ans, nll[trained].mean(), atol=1e-5)
    assert torch.allclose(total, (nll[trained] * weights).sum() / weights.sum(), atol=1e-5)
    assert not torch.allclose(total, ans)


def test_chunk_scan_equals_exact():
    torch.manual_seed(0)
    m = M.Jamba(M.Config(vocab=64, d_model=32, d_ff=64, d_state=8, dt_rank=2))
    m.eval()
    x = torch.randint(0, 64, (2, 45))
    m.set_scan("chunk")
    with torch.no_grad():
        a = m(x)
        m.set_scan("exact")
        b = m(x)
    assert (a - b).abs().max().item() < 1e-4


def test_kernel_scan_equals_exact():
    import scan as S

    assert S.available(), "the C scan kernel (models/train/scan.c) did not compile"
    torch.manual_seed(3)
    b, t, d, n = 2, 41, 12, 16
    args = [torch.randn(b, t, d), torch.rand(b, t, d) * 0.6, -torch.rand(d, n) * 4, torch.randn(b, t, n),
            torch.randn(b, t, n)]
    args = [x.double().requires_grad_() for x in args]
    ref = M.scan_exact(*args)
    gy = torch.randn_like(ref)
    gref = torch.autograd.grad(ref, args, gy)
    got = S.scan(*args)
    ggot = torch.autograd.grad(got, args, gy)
    assert (ref - got).abs().max().item() < 1e-4
    for r, g in zip(gref, ggot):
        assert (r - g).abs().max().item() < 1e-4 * max(1.0, r.abs().max().item()), (r - g).abs().max()
    # And the whole model trains with it: same loss gradients as the exact scan.
    m = M.Jamba(M.Config(vocab=64, d_model=32, d_ff=64, d_state=8, dt_rank=2))
    x = torch.randint(0, 64, (2, 30))
    m(x).logsumexp(-1).sum().backward()
    gk = [p.grad.clone() for p in m.parameters()]
    m.zero_grad()
    m.set_scan("exact")
    m(x).logsumexp(-1).sum().backward()
    for a, p in zip(gk, m.parameters()):
        assert (a - p.grad).abs().max().item() < 1e-4 * max(1.0, p.grad.abs().max().item())


def test_copy_drills():
    """Drills: every answer is a verbatim copy of text in the context, the
    repeat drills are short, and neither carries a system turn."""
    rng = random.Random(3)
    for mk, longest in ((gen.repeat_drill, 140), (gen.copy_drill, 400)):
        for _ in range(30):
            ep = mk(rng)
            segs = fmt.render(ep)
            text = fmt.prompt_text(segs)
            assert "<|im_start|>system" not in text
            for s, trained in segs:
                if trained:
                    ans = s[: -len("<|im_end|>")]
                    quoted = ans[1: ans.rindex('"')]
                    assert quoted and text.index(quoted) < text.index(ans), (quoted, text)
            assert len(text) // 4 < longest, len(text)
    path = episodes(200, 5)
    kinds = [json.loads(line)["meta"]["type"] for line in open(path)]
    assert "copy" not in kinds  # only with --copy-share
    warm = episodes(50, 5, "warmup")
    kinds = {json.loads(line)["meta"]["type"] for line in open(warm)}
    assert kinds == {"repeat", "copy"}, kinds


def test_lookup_drills():
    """Lookup drills: each question is answered by the verbatim sentence of the
    document that names its subject, cited by number, or, when no document
    names it, "Not found in the documents."; both kinds occur."""
    rng = random.Random(12)
    answers = {"quote": 0, "notfound": 0}
    for _ in range(40):
        ep = gen.lookup_drill(rng)
        docs = ep["turns"][0]["docs"]
        assert "<|im_start|>system" not in fmt.prompt_text(fmt.render(ep))
        for q, a in zip(ep["turns"][0::2], ep["turns"][1::2]):
            if a["text"] == fmt.NOT_FOUND:
                answers["notfound"] += 1
                continue
            answers["quote"] += 1
            sent, n = a["text"][1:a["text"].rindex('"')], int(a["text"].rsplit("[", 1)[1][:-1])
            assert sent == docs[n - 1][1], (sent, docs)
    assert answers["quote"] > 40 and answers["notfound"] > 10, answers


def test_nonce_names():
    """--nonce: the training split's names are made up (never in the pools),
    the held-out split never is, and the quotes stay verbatim."""
    saved = gen.NONCE
    try:
        gen.NONCE = 1.0
        rng = random.Random(13)
        pools = gen.pools(False)
        for _ in range(30):
            ep = gen.episode(rng, False, "quote")
            text = fmt.prompt_text(fmt.render(ep))
            quote, doc = ep["meta"]["quotes"][0]
            assert quote in ep["turns"][-2]["docs"][doc - 1][1]
            assert not any(" %s " % w in text for w in pools["first"] + pools["city"]), text
        held = gen.pools(True)
        ep = gen.episode(random.Random(14), True, "quote")
        world_names = held["first"] + held["last"] + held["city"] + held["prod_a"]
        assert any(w in fmt.prompt_text(fmt.render(ep)) for w in world_names)
    finally:
        gen.NONCE = saved


def test_copy_batch():
    """train.copy_batch: BOS, random pieces, SEP, the same pieces; the loss
    mask covers exactly the copy, and nothing else (not even as context)."""
    import train
    rng = random.Random(4)
    pieces = list(range(10, 60))
    x, m = train.copy_batch(rng, pieces, 1, 7, 16, n_max=12)
    assert x.shape == (16, 26) and m.shape == x.shape
    lengths = set()
    for r in range(16):
        row, w = x[r].tolist(), m[r].tolist()
        n = row.index(7) - 1
        lengths.add(n)
        assert 6 <= n <= 12 and row[0] == 1
        assert row[1 : n + 1] == row[n + 2 : 2 * n + 2] and all(t in pieces for t in row[1 : n + 1])
        assert w == [0.0] * (n + 2) + [1.0] * n + [0.0] * (26 - 2 * n - 2)
        assert row[2 * n + 2 :] == [0] * (26 - 2 * n - 2)
    assert len(lengths) > 2


def test_lookup_batch():
    """train.lookup_batch: sentences of random pieces each closed by STOP, SEP,
    two pieces of one sentence (never its first, unless key_first), SEP, then
    that sentence and STOP, the loss on exactly that answer."""
    import train
    pieces = list(range(10, 60))
    for key_first in (0.0, 1.0):
        x, m = train.lookup_batch(random.Random(5), pieces, 1, 7, 8, 24, key_first)
        positions = set()
        for r in range(24):
            row, w = x[r].tolist(), m[r].tolist()
            q = row.index(7)
            sents, cur = [], []
            for t in row[1:q]:
                if t == 8:
                    sents.append(cur)
                    cur = []
                else:
                    cur.append(t)
            assert row[0] == 1 and not cur and 2 <= len(sents) <= 6 and row[q + 3] == 7
            key = row[q + 1 : q + 3]
            first = w.index(1.0)
            n = int(sum(w))
            answer = row[first : first + n]
            assert first == q + 4 and w[first : first + n] == [1.0] * n and answer[-1] == 8
            assert answer[:-1] in sents and all(t in pieces for s in sents for t in s)
            at = next(i for i in range(len(answer) - 2) if answer[i : i + 2] == key)
            positions.add(at)
            assert (at == 0) if key_first else (at >= 1)
            assert row[first + n :] == [0] * (len(row) - first - n)
        assert len(positions) == 1 if key_first else len(positions) > 2


def test_context_loss_weight():
    """train.masked_loss: the answer loss is the mean over assistant tokens
    whatever the weight, and the total adds weight x the mean over the rest."""
    import train
    torch.manual_seed(3)
    m = M.Jamba(M.Config(vocab=64, d_model=16, n_layers=2, d_ff=32, d_state=4, dt_rank=1, n_heads=2, n_kv_heads=1,
                         n_experts=1, attn_period=2, attn_offset=1))
    eps = [([1, 5, 6, 7, 8, 9, 10], [0, 0, 0, 1, 1, 0, 0]), ([1, 11, 12, 13], [0, 0, 1, 1])]
    x, w = train.collate(eps, [0, 1])
    total0, ans0 = train.masked_loss(m, x, w, 0.0)
    total1, ans1 = train.masked_loss(m, x, w, 0.5)
    assert torch.allclose(ans0, ans1) and torch.allclose(total0, ans0)
    with torch.no_grad():
        lp = torch.log_softmax(m(x[:, :-1]), -1)
    nll = -lp.gather(-1, x[:, 1:, None])[..., 0]
    want = w[:, 1:]
    ans = nll[want > 0.75].mean()
    ctx = nll[(want > 0.25) & (want < 0.75)].mean()  # padding (0) is neither
    assert torch.allclose(ans1, ans, atol=1e-5)
    assert torch.allclose(total1, ans + 0.5 * ctx, atol=1e-5)


def test_gguf_matches_engine():
    for tie in (False, True):
        gguf_matches_engine(tie)
    gguf_matches_engine(True, layers=16)  # two attention layers, 4 and 12 (train.py --layers 16)


def gguf_matches_engine(tie, layers=8):
    if not os.access(AGENTD, os.X_OK):
        raise RuntimeError("agentd binary missing at %s" % AGENTD)
    prefix = os.path.join(TMP, "tok")
    if not os.path.exists(prefix + ".model"):
        test_tokenizer_specials_and_segments()
    torch.manual_seed(1)
    m = M.Jamba(M.Config(vocab=1024, d_model=32, d_ff=64, d_state=8, dt_rank=2, n_heads=4, n_kv_heads=2,
                         n_layers=layers, tie_embeddings=tie))
    with torch.no_grad():
        for n, p in m.named_parameters():
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.2)
            elif "A_log" in n:
                p.add_(torch.randn_like(p) * 0.3)
            else:
                p.mul_(8)
    ck, gg = os.path.join(TMP, "m.pt"), os.path.join(TMP, "m.gguf")
    M.save(m, ck)
    export_gguf.export(ck, prefix + ".model", gg)
    with open(gg, "rb") as f:
        name = len(b"output.weight").to_bytes(8, "little") + b"output.weight"  # as GGUF stores a name
        assert (name in f.read()) == (not tie)  # tied: the engine uses token_embd
    m.eval()
    m.set_scan("exact")
    ids = [1] + [random.Random(2).randrange(4, 1024) for _ in range(60)]
    with torch.no_grad():
        ref = m(torch.tensor([ids]))[0, -1].double().numpy()
    r = subprocess.run([AGENTD, "logits", "--model", gg, "--tokens", " ".join(map(str, ids))],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    eng = np.array([float(v) for v in r.stdout.split()])
    assert eng.shape == ref.shape
    assert np.abs(ref).max() > 0.1
    assert np.abs(eng - ref).max() < 1e-3, np.abs(eng - ref).max()


def test_shipped_model():
    gg = os.path.join(SRC, "models", "agentd-small.gguf")
    assert os.path.getsize(gg) < 40 * 1024 * 1024
    with open(gg, "rb") as f:
        assert f.read(4) == b"GGUF"
    if os.access(AGENTD, os.X_OK):
        r = subprocess.run([AGENTD, "logits", "--model", gg, "--tokens", "1 5 9"], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert len(r.stdout.split()) > 1000


if __name__ == "__main__":
    harness.run_plain(globals())
