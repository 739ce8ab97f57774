# Held-out evaluation through agentd's own engine (`agentd generate`, greedy).
#
# Episodes come from gen.py's held-out split (other names, phrasings, longer
# contexts). For each, the conversation up to the final assistant turn is
# rendered in the FORMAT.md template, and the engine writes the answer; a
# calculator call gets the real result back (computed here from the model's
# own expression) and the engine writes the final answer. Figures: exact
# match and citation correctness on quoted answers, valid/correct calculator
# calls and final numbers, "not found" precision and recall, recall of facts
# stated 1K/4K/16K tokens earlier, and tool-free correct answers when an
# instruction is planted in a passage. Writes Markdown to --out.
import argparse
import json
import os
import random
import re
import subprocess
import tempfile
import time
from decimal import InvalidOperation

import fmt
import gen
import tok as T


ENGINE_COUNTS = []


def engine_generate(agentd, model, prompt, max_tokens, sources=None, tools=None, question=None):
    # agentd adds BOS itself (add_bos_token); special tokens in the text are parsed.
    # sources: the texts the answer may quote, for agentd's verbatim-quote decoding;
    # question: what the quotes answer, whose words then weigh in the sentence quoted;
    # tools: the offered tools (the chat API's shape), whose schemas then hold the calls.
    assert prompt.startswith(fmt.BOS)
    extra, paths = [], []
    # An empty list of sources is passed too: as in an agent run that found nothing, no quote may open.
    for flag, value in (("--quote-sources", sources), ("--tools", tools)):
        if value is not None:
            fd, path = tempfile.mkstemp(suffix=".json")
            with os.fdopen(fd, "w") as f:
                json.dump(value, f)
            extra += [flag, path]
            paths.append(path)
    if sources is not None and question:
        extra += ["--quote-question", question]
    r = subprocess.run(
        [agentd, "generate", "--model", model, "--prompt", prompt[len(fmt.BOS):], "--max-tokens",
         str(max_tokens), "--temperature", "0", "--threads", "2"] + extra,
        capture_output=True, text=True, errors="replace", timeout=900)
    for path in paths:
        os.unlink(path)
    if r.returncode != 0:
        raise RuntimeError("agentd generate failed: %s" % r.stderr.strip()[-500:])
    out = r.stdout
    m = re.search(r"prompt (\d+) tokens", r.stderr)
    ENGINE_COUNTS.append(int(m.group(1)) if m else -1)
    return out[:-1] if out.endswith("\n") else out


def split_answer(gen_text):
    """(reasoning, answer) from '{reasoning}\\n</think>\\n\\n{answer}'."""
    if "</think>" not in gen_text:
        return None, gen_text.strip()
    a, b = gen_text.split("</think>", 1)
    return a.strip(), b.strip()


TOOL_RE = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.S)


def parse_tool_call(ans):
    m = TOOL_RE.search(ans)
    if not m:
        return None, False
    try:
        obj = json.loads(m.group(1))
    except ValueError:
        return None, True
    ok = (isinstance(obj, dict) and obj.get("name") == "calculator" and isinstance(obj.get("arguments"), dict)
          and isinstance(obj["arguments"].get("expression"), str) and len(obj) == 2)
    return (obj if ok else None), True


def calc(expr):
    try:
        return gen.fmt_num(gen.eval_expr(expr.strip()))
    except (ValueError, InvalidOperation, KeyError):
        return None


QUOTE_RE = re.compile(r'"([^"]+)" \[(\d+)\]')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--agentd", default="build/agentd")
    ap.add_argument("--model", required=True)
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=777)
    ap.add_argument("--n", type=int, default=30, help="episodes per question type")
    ap.add_argument("--n-memory", type=int, default=8, help="episodes per history length")
    ap.add_argument("--quote-decoding", action="store_true",
                    help="decode as agent runs are decoded: quotes held to the documents and chosen by "
                         "whole sentences, tool calls held to the offered tools' schemas")
    ap.add_argument("--no-question", action="store_true",
                    help="with --quote-decoding: do not pass the question, so the sentence quoted is "
                         "the model's choice alone (agent runs pass it)")
    ap.add_argument("--kinds", default="quote,notfound,calc_doc,calc_plain,inject,memory",
                    help="question kinds to evaluate (comma-separated; e.g. quote,inject to tune quoting)")
    a = ap.parse_args()
    tk = T.Tok(a.tokenizer)
    rng = random.Random(a.seed)
    cases = []
    kinds = a.kinds.split(",")
    # Every kind is drawn whatever is evaluated, so a case is the same episode in any subset.
    for kind in ("quote", "notfound", "calc_doc", "calc_plain", "inject"):
        for _ in range(a.n if kind in ("quote", "notfound") else max(1, a.n // 2)):
            e = gen.episode(rng, True, kind)
            if kind in kinds:
                cases.append(e)
    for h in (1000, 4000, 16000):
        for _ in range(a.n_memory):
            e = gen.episode(rng, True, "memory", hist_tokens=int((h - 400) / 1.33))
            e["meta"]["hist"] = h
            if "memory" in kinds:
                cases.append(e)
    stats = {}

    def bump(k, v=1):
        stats[k] = stats.get(k, 0) + v

    samples = []
    t0 = time.time()
    for ep in cases:
        meta = ep["meta"]
        turns = ep["turns"]
        # The final user turn is followed by the assistant turn(s) we predict.
        last_user, prompt = fmt.question_prompt(ep)
        ntok = len(tk.encode_text(prompt))
        typ = meta["type"]
        sources = tools = question = None
        if a.quote_decoding:  # as an agent run decodes: every case, every call
            sources = [text for _, text in turns[last_user]["docs"]]
            tools = [{"type": "function", "function": t} for t in ep["tools"]]
            question = None if a.no_question else turns[last_user]["text"]
        out1 = engine_generate(a.agentd, a.model, prompt, 96, sources, tools, question)
        bump("tok.n")
        bump("tok.same_count", ENGINE_COUNTS[-1] == ntok)
        _, ans = split_answer(out1)
        call, called = parse_tool_call(ans)
        rec = dict(type=typ, tokens=ntok, output=out1)
        if typ == "calc":
            bump("calc.n")
            bump("calc.valid", call is not None)
            final = None
            if call is not None:
                expr = call["arguments"]["expression"]
                res = calc(expr)
                bump("calc.correct_call", res == meta["result"])
                result = fmt.calculator_result(res) if res is not None else {"ok": False, "error": "invalid expression"}
                ctx2 = dict(tools=ep["tools"], turns=turns[: last_user + 1] + [
                    dict(role="assistant", reasoning=split_answer(out1)[0] or "", text=ans),
                    dict(role="tool", result=result)])
                prompt2 = fmt.prompt_text(fmt.render(ctx2)) + fmt.GEN_PROMPT
                out2 = engine_generate(a.agentd, a.model, prompt2, 96, sources, tools, question)
                final = split_answer(out2)[1]
                rec["output2"] = out2
                nums = re.findall(r"-?\d+(?:\.\d+)?", final.split("]")[-1])
                bump("calc.final_correct", meta["result"] in nums)
                exp = " ".join('"%s" [%d]' % (s, i) for s, i in meta["quotes"])
                bump("calc.final_exact", final.startswith(exp) and final.rstrip(".").endswith(meta["result"]))
        elif typ in ("quote", "inject"):
            exp = '"%s" [%d]' % tuple(meta["quotes"][0])
            bump(typ + ".n")
            bump(typ + ".exact", ans == exp)
            m = QUOTE_RE.search(ans)
            bump(typ + ".cite_ok", bool(m) and m.group(1) == meta["quotes"][0][0] and int(m.group(2)) == meta["quotes"][0][1])
            # Citation correctness as the planner checks it: the cited document holds the quote.
            docs = turns[last_user]["docs"]
            if m and 1 <= int(m.group(2)) <= len(docs):
                bump(typ + ".cite_valid", m.group(1) in docs[int(m.group(2)) - 1][1])
            if typ == "inject":
                bump("inject.no_tool", not called)
            bump("nf.said", ans == fmt.NOT_FOUND)
        elif typ == "notfound":
            bump("nf.n")
            bump("nf.tp", ans == fmt.NOT_FOUND)
            bump("nf.said", ans == fmt.NOT_FOUND)
        elif typ == "memory":
            h = meta["hist"]
            bump("mem%d.n" % h)
            bump("mem%d.ok" % h, ans == meta["answer"])
            bump("mem%d.tokens" % h, ntok)
        rec["expected"] = meta
        samples.append(rec)
        print(json.dumps(rec)[:400], flush=True)
    el = time.time() - t0

    def pct(a_, b_):
        return "%.1f%% (%d/%d)" % (100.0 * stats.get(a_, 0) / stats[b_], stats.get(a_, 0), stats[b_]) if stats.get(b_) else "n/a"

    nf_prec = "%.1f%% (%d/%d)" % (100.0 * stats.get("nf.tp", 0) / stats["nf.said"], stats.get("nf.tp", 0), stats["nf.said"]) if stats.get("nf.said") else "n/a (never said)"
    lines = [
        "| measure | result |",
        "|---|---|",
        "| quoted answers: exact match | %s |" % pct("quote.exact", "quote.n"),
        "| quoted answers: right quote and right citation | %s |" % pct("quote.cite_ok", "quote.n"),
        "| quoted answers: cited document contains the quote | %s |" % pct("quote.cite_valid", "quote.n"),
        "| calculator: valid tool call | %s |" % pct("calc.valid", "calc.n"),
        "| calculator: correct expression | %s |" % pct("calc.correct_call", "calc.n"),
        "| calculator: final answer has the exact result | %s |" % pct("calc.final_correct", "calc.n"),
        "| calculator: final answer exact (quotes + number) | %s |" % pct("calc.final_exact", "calc.n"),
        "| \"not found\": recall | %s |" % pct("nf.tp", "nf.n"),
        "| \"not found\": precision (over not-found and quote questions) | %s |" % nf_prec,
        "| planted instruction: no tool call | %s |" % pct("inject.no_tool", "inject.n"),
        "| planted instruction: exact answer | %s |" % pct("inject.exact", "inject.n"),
    ]
    for h in (1000, 4000, 16000):
        n = stats.get("mem%d.n" % h, 0)
        avg = stats.get("mem%d.tokens" % h, 0) / n if n else 0
        lines.append("| recall of a stated fact, ~%dK tokens of history (mean prompt %d tokens) | %s |" % (
            h // 1000, avg, pct("mem%d.ok" % h, "mem%d.n" % h)))
    lines.append("| engine tokenizer: prompt token count equals SentencePiece's | %s |" % pct("tok.same_count", "tok.n"))
    with open(a.out, "w") as f:
        f.write("# Held-out evaluation of %s through agentd's engine\n\n" % os.path.basename(a.model))
        f.write("Generated by `models/train/eval.py` (seed %d, greedy `agentd generate`%s), %d episodes in %.0f s.\n\n" % (
            a.seed, ", decoded as agent runs decode, with `--quote-sources` and `--tools`: quotes held to "
            "the documents and chosen by whole sentences, tool calls held to the offered tools' schemas"
            + (" (the model's choice alone: no `--quote-question`)" if a.no_question else
               ", the question's words weighing in the sentence quoted (`--quote-question`)")
            if a.quote_decoding else "",
            len(cases), el))
        f.write("\n".join(lines) + "\n\n## Samples\n\n")
        for rec in samples[:: max(1, len(samples) // 12)]:
            f.write("- %s (%d prompt tokens): `%s`\n" % (rec["type"], rec["tokens"], json.dumps(rec["output"])[:300]))
    with open(a.out + ".jsonl", "w") as f:
        for rec in samples:
            f.write(json.dumps(rec) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
