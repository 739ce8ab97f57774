#!/usr/bin/python3
# Writes spm_fixture.txt: a small SentencePiece BPE model trained here with the
# settings of models/train/tok.py (byte fallback, no dummy prefix, identity
# normalisation, split digits, the ChatML/tool markers as user symbols), and
# the ids the SentencePiece library itself gives for a set of strings, so
# tests/engine/test_tokenizer_spm.c can check our tokenizer against it.
# A second model with the dummy prefix (as AI21's Jamba 1.5 tokenizer has)
# is written too. Needs python3-sentencepiece (Debian); run by hand:
#   /usr/bin/python3 tests/engine/data/make_spm_fixture.py
import os
import random
import tempfile

import sentencepiece as spm

HERE = os.path.dirname(os.path.abspath(__file__))
SPECIALS = ["<|im_start|>", "<|im_end|>", "<think>", "</think>", "<tool_call>", "</tool_call>",
            "<tool_response>", "</tool_response>"]
WORDS = ("the employee travel policy allows meals of up to forty euros per day and hotels within "
         "the city limits vacation days accrue monthly answer only from the documents quoting the "
         "sentence that answers citing it as calculator expression result not found in documents "
         "caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u4e2d\u6587 \u65e5\u672c\u8a9e \u00fcber stra\u00dfe").split()


def corpus(path, rng):
    with open(path, "w") as f:
        for _ in range(4000):
            n = rng.randint(3, 14)
            words = []
            for _ in range(n):
                r = rng.random()
                if r < 0.08:
                    words.append(str(rng.randint(0, 99999)))
                elif r < 0.12:
                    words.append(rng.choice(SPECIALS))
                else:
                    words.append(rng.choice(WORDS))
            line = " ".join(words)
            if rng.random() < 0.3:
                line = line.capitalize() + "."
            f.write(line + "\n")


def train(prefix, text, dummy):
    spm.SentencePieceTrainer.train(
        input=text, model_prefix=prefix, model_type="bpe", vocab_size=420, byte_fallback=True,
        character_coverage=1.0, add_dummy_prefix=dummy, remove_extra_whitespaces=False,
        normalization_rule_name="identity", split_digits=True, pad_id=0, bos_id=1, eos_id=2, unk_id=3,
        pad_piece="<|pad|>", bos_piece="<|startoftext|>", eos_piece="<|endoftext|>",
        unk_piece="<|unk|>", user_defined_symbols=SPECIALS, num_threads=1, minloglevel=2)
    return spm.SentencePieceProcessor(model_file=prefix + ".model")


CASES = [
    "hello world",
    "The employee travel policy allows meals of up to 40 euros per day.",
    "  two  spaces   and three",
    "line one\nline two\n\ttabbed",
    "caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00fcber",
    "\u4e2d\u6587 \u65e5\u672c\u8a9e \U0001F600 \u0915\u094d\u0937 e\u0301",
    "12345 + 678 = 13023",
    "<|im_start|>user\nWhat is 12 * 7?<|im_end|>\n<|im_start|>assistant\n<think>\n",
    "<tool_call>\n{\"name\": \"calculator\", \"arguments\": {\"expression\": \"12 * 7\"}}\n</tool_call>",
    "Answer only from the documents, quoting the sentence that answers [1].",
    "zzz qqq xylophone",
    "\u2581 literal marker",
    "",
    " ",
    "trailing space ",
    "Not found in the documents.",
]


def hexs(b):
    return b.hex() if b else "-"


def main():
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        text = os.path.join(tmp, "corpus.txt")
        corpus(text, rng)
        out = []
        for name, dummy in (("nodummy", False), ("dummy", True)):
            sp = train(os.path.join(tmp, name), text, dummy)
            out.append("model %s %d %d" % (name, sp.get_piece_size(), 1 if dummy else 0))
            for i in range(sp.get_piece_size()):
                piece = sp.id_to_piece(i)
                if sp.is_unknown(i):
                    t = 2
                elif sp.is_control(i):
                    t = 3
                elif sp.is_byte(i):
                    t = 6
                elif sp.is_unused(i):
                    t = 5
                elif piece in SPECIALS:
                    t = 4
                else:
                    t = 1
                out.append("piece %s %r %d" % (hexs(piece.encode()), sp.get_score(i), t))
            for c in CASES:
                ids = sp.encode(c)
                out.append("case %s %s" % (hexs(c.encode()), " ".join(map(str, ids))))
    with open(os.path.join(HERE, "spm_fixture.txt"), "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
