# Checks that PyTorch and agentd's engine compute the same function on a GGUF.
#
# Loads the checkpoint, rounds its weights the way the GGUF stores them
# (F32, or F16 for matrices with --f16), runs the exact (step-by-step) scan,
# and compares the last position's logits with `agentd logits` on the same
# token ids: a short prompt and full held-out prompts. Fails above --tol.
import argparse
import random
import subprocess
import sys

import numpy as np
import torch

import fmt
import gen
import model as M
import tok as T


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--agentd", default="build/agentd")
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--tol", type=float, default=1e-3)
    ap.add_argument("--f16", action="store_true")
    a = ap.parse_args()
    torch.set_flush_denormal(True)
    model, _ = M.load(a.ckpt)
    if a.f16:
        with torch.no_grad():
            for n, p in model.named_parameters():
                if p.dim() >= 2 and "conv1d" not in n and "A_log" not in n and "router" not in n and "x_proj" not in n and "dt_proj" not in n:
                    p.copy_(p.half().float())
    model.eval()
    model.set_scan("exact")
    tk = T.Tok(a.tokenizer)
    rng = random.Random(5)
    prompts = [[1, 5, 42, 300, 7]]
    for kind in ("quote", "calc_doc", "notfound"):
        ep = gen.episode(rng, True, kind)
        prompts.append(tk.encode_text(fmt.question_prompt(ep)[1]))
    worst = 0.0
    for ids in prompts:
        with torch.no_grad():
            ref = model(torch.tensor([ids]))[0, -1].double().numpy()
        r = subprocess.run([a.agentd, "logits", "--model", a.gguf, "--tokens", " ".join(map(str, ids))],
                           capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            sys.exit("agentd logits failed: " + r.stderr)
        eng = np.array([float(x) for x in r.stdout.split()])
        d = float(np.abs(eng - ref).max())
        worst = max(worst, d)
        print("tokens %5d  max |torch - engine| %.3g  argmax %d / %d" % (len(ids), d, ref.argmax(), eng.argmax()))
    print("worst %.3g (tolerance %g)" % (worst, a.tol))
    if worst > a.tol:
        sys.exit(1)


if __name__ == "__main__":
    main()
