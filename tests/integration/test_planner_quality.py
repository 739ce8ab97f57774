"""What the planner answers with the shipped model, end to end through the REST API:
held-out questions (models/train/gen.py's held-out split: names, phrasings and
documents the model never saw in training) over documents attached to a
collection, each asked as an agent run with the calculator offered. Each kind is
scored as a user would score it: an arithmetic question must go through the
calculator tool and answer with its exact result; a question the documents do
not cover must be answered "Not found in the documents." rather than invented;
a quoted answer must hold the document's sentence and cite a chunk the run
retrieved. Runs opt out of per-user memory: one user's memory would carry every
earlier question into the next, which this small model cannot see past.

The floors sit one question under what the shipped model measured here (printed
by the test), so a change to the planner, the prompt, the engine or the model that
costs more than one answer of a kind fails. Greedy decoding and bit-identical batching make the runs reproducible.
Quoted answers went from 0/10 to 2/10 here (from 2/30 to 11/30 over this seed and
two others, 999 and 1001) when the engine began holding quotes to the retrieved
texts and choosing them by whole sentences (engine/grammar_quote.c,
engine/local_select.c); the rest of them the model answered "not found" (its
reasoning line says "The documents do not say.") or quoted the wrong sentence.
They went to 5/10 (20/30 over the three seeds: 5, 8, 7) when the run's question
began to weigh in the choice of the sentence (engine/local_relevance.c; on the
validation split every quote the model then opened was the right sentence, so
what is left is the model's choice to quote rather than say "not found" or call
the calculator). "Not found" went from 3/10 to 5/10 (11/30 to 17/30: 5, 4, 8)
when sources that do not speak of what the question asks about stopped being
quotable (local_quote_gate in engine/local_relevance.c); nothing else moved.

The same test weighs a candidate model through the planner's own path (the
collection, the search, the chunks it retrieves), which models/train/eval.py
does not render: PLANNER_MODEL=FILE.gguf serves that model instead of the
shipped one, and PLANNER_SEEDS=4242,999,1001 asks each seed's ten questions of
each kind (the floors hold for each; the default is the one seed 4242)."""
import json
import os
import random
import sys
import time
import urllib.parse

import harness

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "models", "train"))
import gen  # noqa: E402

N = {"calc_plain": 10, "notfound": 10, "quote": 10}
FLOOR = {"calc_plain": 0.6, "notfound": 0.4, "quote": 0.4}  # measured: 0.7, 0.5, 0.5
NOT_FOUND = "Not found in the documents."


def wait(d, run_id, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st, _, body, js = d.request("GET", "/v1/runs/" + run_id, key=d.admin_key)
        assert st == 200, body
        if js["status"] in ("succeeded", "failed", "cancelled"):
            return js
        time.sleep(0.1)
    raise AssertionError("run %s did not finish" % run_id)


def ask(d, n, ep):
    user = [t for t in ep["turns"] if t["role"] == "user"][-1]
    coll = "q%d" % n
    st, _, body, _ = d.request("POST", "/v1/collections", key=d.admin_key, json={"name": coll})
    assert st in (200, 201), body
    for title, text in user["docs"]:
        st, _, body, _ = d.request("POST", "/v1/documents?collection=%s&title=%s" % (coll, urllib.parse.quote(title)),
                                   key=d.admin_key, body=text.encode(), headers={"Content-Type": "text/plain"})
        assert st in (200, 201), body
    st, _, body, js = d.request("POST", "/v1/runs", key=d.admin_key, json={
        "input": user["text"], "collections": [coll], "tools": ["calculator"], "memory": False})
    assert st == 201, body
    return wait(d, js["id"])


def good(kind, ep, run):
    answer = run.get("answer") or ""
    if run["status"] != "succeeded":
        return False
    if kind == "notfound":
        return answer.strip() == NOT_FOUND
    if kind == "quote":
        quote = ep["meta"]["quotes"][0][0]
        retrieved = set()
        for s in run["steps"]:
            if s.get("kind") == "retrieval":
                retrieved.update(str(c) for c in s["chunk_ids"])
        cites = run.get("citations") or []
        return quote in answer and bool(cites) and all(
            str(c.get("chunk_id", c.get("chunk"))) in retrieved for c in cites)
    calls = [s for s in run["steps"] if s.get("kind") == "tool_call" and s.get("tool") == "calculator"
             and s.get("result", {}).get("ok")]
    return bool(calls) and ep["meta"]["result"] in answer


def seed_rates(d, seed):
    """Each kind's share of good answers to the seed's held-out questions."""
    rng = random.Random(seed)
    rates = {}
    n = 0
    for kind, count in N.items():
        ok = 0
        for _ in range(count):
            ep = gen.episode(rng, True, kind)
            run = ask(d, n, ep)
            n += 1
            ok += good(kind, ep, run)
        rates[kind] = ok / count
    return rates


def test_held_out_questions(d):
    seeds = [int(s) for s in os.environ.get("PLANNER_SEEDS", "4242").split(",")]
    below = []
    for seed in seeds:
        # A daemon of its own each: the search ranks by word rarity over every indexed document,
        # so another seed's collections would change which chunks come first.
        with harness.Agentd(args=d.args) as own:
            rates = seed_rates(own, seed)
        print("   held-out through the planner (seed %d): %s" % (seed, json.dumps(rates)))
        below += [(seed, kind, rates[kind], floor) for kind, floor in FLOOR.items() if rates[kind] < floor]
    assert not below, below


# Documents a user might attach and ask about at once, as with `make run` (per-user memory on,
# the default; a new user each, so no earlier answer shows the model the way): an answer that
# counts quotes the document's sentence and cites the chunk that holds it. Measured: 3 of 4 (the
# hotel question is answered "not found"; asked after the other three by the same user, 4 of 4).
ATTACHED = [
    ("The Quantum router costs $310. It ships with a two-year warranty.",
     "How much does the Quantum router cost?", "The Quantum router costs $310."),
    ("The Falcon desk lamp is sold for $49. It ships within two weeks.",
     "How much is the Falcon desk lamp?", "The Falcon desk lamp is sold for $49."),
    ("Employees receive 25 days of paid leave per year. Requests go to the HR team.",
     "How many days of paid leave do employees get?", "Employees receive 25 days of paid leave per year."),
    ("Travel policy. Hotel stays in Oslo are capped at $210 per night. Flights must be booked in economy.",
     "What is the hotel cap in Oslo?", "Hotel stays in Oslo are capped at $210 per night."),
]


def test_just_attached_documents_are_quoted_with_citations(d):
    good_answers = 0
    for i, (doc, question, sentence) in enumerate(ATTACHED):
        coll = "attached%d" % i
        st, _, body, _ = d.request("POST", "/v1/collections", key=d.admin_key, json={"name": coll})
        assert st in (200, 201), body
        st, _, body, js = d.request("POST", "/v1/documents?collection=%s&title=doc" % coll, key=d.admin_key,
                                    body=doc.encode(), headers={"Content-Type": "text/plain"})
        assert st in (200, 201), body
        chunk_ids = set()
        st, _, body, js = d.request("POST", "/v1/runs", key=d.admin_key,
                                    json={"input": question, "collections": [coll], "user": "u%d" % i})
        assert st == 201, body
        run = wait(d, js["id"])
        for s in run["steps"]:
            if s.get("kind") == "retrieval":
                chunk_ids.update(str(c) for c in s["chunk_ids"])
        answer = run.get("answer") or ""
        cites = run.get("citations") or []
        ok = (run["status"] == "succeeded" and '"%s"' % sentence in answer and bool(cites)
              and all(str(c.get("chunk_id")) in chunk_ids for c in cites)
              and any(sentence in (c.get("quote") or "") for c in cites))
        print("   %s -> %r (%s)" % (question, answer, "quoted and cited" if ok else "no"))
        good_answers += ok
    assert good_answers >= 3, good_answers


if __name__ == "__main__":
    model = os.environ.get("PLANNER_MODEL")
    harness.main(globals(), args=["--model", os.path.abspath(model)] if model else None)
