"""`agentd logits` and `agentd generate` on random Jamba models made here with jamba_random:
logits agree with the double-precision reference pass, generation is deterministic for a
seed, and bad input exits 1 or 2 with a one-line message."""
import json
import os
import subprocess

import harness

BUILD = os.environ.get("AGENTD_BUILD") or os.path.join(os.environ.get("AGENTD_SRC", "."), "build")
TMP = harness.tmpdir("agentd-engine-cli-")


def model(name, *args):
    path = os.path.join(TMP, name + ".gguf")
    if not os.path.exists(path):
        subprocess.run([os.path.join(BUILD, "jamba_random"), path] + list(args), check=True)
    return path


def logits(d, path, tokens, *extra):
    out = d.cli("logits", "--model", path, "--tokens", tokens, *extra)
    assert out.returncode == 0, out.stderr
    return [float(x) for x in out.stdout.split("\n") if x]


def close(a, b, tol):
    scale = max(abs(x) for x in b)
    return max(abs(x - y) for x, y in zip(a, b)) <= tol * scale


def test_logits_match_reference_f32(d):
    path = model("f32", "--vocab", "400", "--layers", "4", "--seed", "3")
    fast = logits(d, path, "1 300 301 302 17 42 99 5 6 7")
    ref = logits(d, path, "1 300 301 302 17 42 99 5 6 7", "--reference", "1")
    assert len(fast) == 400 and len(ref) == 400
    assert max(abs(x) for x in ref) > 0.1
    assert close(fast, ref, 1e-4), (fast[:5], ref[:5])


def test_logits_match_reference_q8_0_and_threads(d):
    path = model("q8", "--vocab", "320", "--layers", "4", "--type", "q8_0", "--seed", "4")
    one = logits(d, path, "1 2 3 4 5 6 7 8 9 10 11 12", "--threads", "1")
    two = logits(d, path, "1 2 3 4 5 6 7 8 9 10 11 12", "--threads", "2")
    ref = logits(d, path, "1 2 3 4 5 6 7 8 9 10 11 12", "--reference", "1")
    assert close(one, ref, 1e-4)
    assert close(two, one, 1e-5)


def test_engine_kernels_setting(d):
    """engine_kernels in the config picks the kernels; avx512vnni (8-bit activations for
    Q8_0) moves Q8_0 decode logits a little off the reference; a bad name is an error."""
    path = model("q8", "--vocab", "320", "--layers", "4", "--type", "q8_0", "--seed", "4")
    conf = os.path.join(TMP, "vnni.conf")
    with open(conf, "w") as f:
        f.write("engine_kernels = avx512vnni\n")
    toks = "1 2 3"  # under the prefill's sgemm threshold: every product goes through the kernels
    out = d.cli("logits", "--model", path, "--tokens", toks, "--config", conf)
    ref = logits(d, path, toks, "--reference", "1")
    if out.returncode == 1 and "not supported by this CPU" in out.stderr:
        print("avx512vnni: not on this CPU, checked only that it is refused cleanly")
    else:
        assert out.returncode == 0, out.stderr
        vnni = [float(x) for x in out.stdout.split("\n") if x]
        exact = logits(d, path, toks)
        assert close(exact, ref, 1e-4)
        assert close(vnni, ref, 6e-2) and not close(vnni, ref, 1e-5), "the setting took no effect"
    with open(conf, "w") as f:
        f.write("engine_kernels = fastest\n")
    out = d.cli("logits", "--model", path, "--tokens", toks, "--config", conf)
    assert out.returncode == 1 and "fastest" in out.stderr and out.stderr.count("\n") == 1, out


def test_logits_errors(d):
    path = model("f32", "--vocab", "400", "--layers", "4", "--seed", "3")
    out = d.cli("logits", "--model", path, "--tokens", "1 400")
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out
    out = d.cli("logits", "--model", path, "--tokens", "1 x")
    assert out.returncode == 2, out
    out = d.cli("logits", "--model", path)
    assert out.returncode == 2, out
    out = d.cli("logits", "--model", os.path.join(TMP, "none.gguf"), "--tokens", "1")
    assert out.returncode == 1 and "none.gguf" in out.stderr, out
    bad = os.path.join(TMP, "truncated.gguf")
    with open(path, "rb") as f, open(bad, "wb") as g:
        g.write(f.read()[:5000])
    out = d.cli("logits", "--model", bad, "--tokens", "1")
    assert out.returncode == 1 and out.stderr.count("\n") == 1, out


def test_generate_deterministic(d):
    path = model("gen", "--vocab", "2000", "--layers", "4", "--embd", "64", "--seed", "9")
    args = ["generate", "--model", path, "--prompt", "the answer is", "--max-tokens", "24",
            "--temperature", "0.9", "--seed", "7"]
    a = d.cli(*args)
    b = d.cli(*args)
    assert a.returncode == 0, a.stderr
    assert "tokens/s" in a.stderr
    assert a.stdout == b.stdout
    greedy = d.cli("generate", "--model", path, "--prompt", "<|im_start|>user\nhi<|im_end|>\n",
                   "--max-tokens", "8", "--temperature", "0", "--threads", "2")
    assert greedy.returncode == 0, greedy.stderr


def test_generate_errors(d):
    path = model("gen", "--vocab", "2000", "--layers", "4", "--embd", "64", "--seed", "9")
    out = d.cli("generate", "--model", path)
    assert out.returncode == 2, out
    out = d.cli("generate", "--model", path, "--prompt", "x", "--temperature", "hot")
    assert out.returncode == 2, out
    out = d.cli("generate", "--model", os.path.join(TMP, "none.gguf"), "--prompt", "x")
    assert out.returncode == 1, out


def test_generate_with_quote_sources(d):
    # The shipped model, decoded as agent runs decode answers: its quote is the document's
    # sentence, whole, with the marker of the document that holds it. (The reasoning line is
    # given, so the answer starts at once: the test is of the decoding, not of the reasoning.)
    shipped = os.path.join(harness.AGENTD_SRC, "models", "agentd-small.gguf")
    doc = "The Falcon desk lamp is sold for $49. It ships within two weeks."
    sources = os.path.join(TMP, "sources.json")
    with open(sources, "w") as f:
        json.dump(["Orders ship on Mondays.", doc], f)
    prompt = ("<|im_start|>system\nYou are agentd, a careful assistant for the company's documents.<|im_end|>\n"
              "<|im_start|>user\n<documents>\n<document id=\"1\" title=\"a\">\nOrders ship on Mondays.\n"
              "</document>\n<document id=\"2\" title=\"b\">\n%s\n</document>\n</documents>\n\n"
              "How much is the Falcon desk lamp?<|im_end|>\n<|im_start|>assistant\n<think>\n"
              "The answer is in document 2.\n</think>\n\n" % doc)
    out = d.cli("generate", "--model", shipped, "--prompt", prompt, "--max-tokens", "80", "--temperature", "0",
                "--quote-sources", sources)
    assert out.returncode == 0, out.stderr
    answer = out.stdout.split("</think>")[-1].strip()
    assert answer == '"The Falcon desk lamp is sold for $49." [2]', out.stdout
    # The question named (as agent runs name it) weighs in: its words are the other sentence's.
    out = d.cli("generate", "--model", shipped, "--prompt", prompt, "--max-tokens", "80", "--temperature", "0",
                "--quote-sources", sources, "--quote-question", "Within how many weeks does it ship?")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("</think>")[-1].strip() == '"It ships within two weeks." [2]', out.stdout
    out = d.cli("generate", "--model", shipped, "--prompt", prompt, "--quote-question", "Why?")
    assert out.returncode == 2 and "--quote-question" in out.stderr, out
    bad = os.path.join(TMP, "bad-sources.json")
    with open(bad, "w") as f:
        f.write("{")
    out = d.cli("generate", "--model", shipped, "--prompt", prompt, "--quote-sources", bad)
    assert out.returncode == 2 and "quote-sources" in out.stderr, out


def test_generate_with_tools(d):
    # Tool calls held to the offered tools' schemas, as in agent runs: after the reasoning
    # that always precedes its calculator calls, the shipped model calls a tool it was never
    # trained on, by that tool's name and with an argument of that tool's schema.
    shipped = os.path.join(harness.AGENTD_SRC, "models", "agentd-small.gguf")
    tools = os.path.join(TMP, "tools.json")
    with open(tools, "w") as f:
        json.dump([{"type": "function", "function": {
            "name": "zebra_count", "description": "Counts zebras.",
            "parameters": {"type": "object", "properties": {"herd": {"type": "integer"}},
                           "required": ["herd"], "additionalProperties": False}}}], f)
    prompt = ("<|im_start|>system\nYou are agentd, a careful assistant for the company's documents.<|im_end|>\n"
              "<|im_start|>user\nWhat is 17 * 23?<|im_end|>\n<|im_start|>assistant\n<think>\n"
              "This needs the calculator.\n</think>\n\n")
    out = d.cli("generate", "--model", shipped, "--prompt", prompt, "--max-tokens", "60", "--temperature", "0",
                "--tools", tools)
    assert out.returncode == 0, out.stderr
    body = out.stdout.split("<tool_call>")[1].split("</tool_call>")[0]
    call = json.loads(body)
    assert call["name"] == "zebra_count" and isinstance(call["arguments"]["herd"], int), out.stdout
    with open(tools, "w") as f:
        f.write("[")
    out = d.cli("generate", "--model", shipped, "--prompt", prompt, "--tools", tools)
    assert out.returncode == 2 and "tools" in out.stderr, out


if __name__ == "__main__":
    harness.main(globals())
