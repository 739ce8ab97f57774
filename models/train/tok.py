# The tokenizer: SentencePiece BPE with byte fallback, trained on episodes.
#
# Ids 0-3 are <|pad|>, <|startoftext|> (BOS), <|endoftext|> (EOS), <|unk|>
# as in AI21's Jamba tokenizers; the ChatML and tool markers are
# user-defined symbols, so they are single tokens wherever they occur in
# text. No dummy space prefix and no whitespace folding: the text is
# tokenized exactly as it stands, and newlines (never inside a training
# line) always fall back to their byte token, so segments split after a
# newline or next to a special token tokenize the same as the whole.
import argparse
import json
import os

import sentencepiece as spm

SPECIALS = [
    "<|im_start|>",
    "<|im_end|>",
    "<think>",
    "</think>",
    "<tool_call>",
    "</tool_call>",
    "<tool_response>",
    "</tool_response>",
]
BOS_ID, EOS_ID, PAD_ID, UNK_ID = 1, 2, 0, 3


def train(episodes_path, prefix, vocab):
    lines_path = prefix + ".lines.txt"
    with open(episodes_path) as f, open(lines_path, "w") as out:
        for line in f:
            ep = json.loads(line)
            text = "".join(s for s, _ in ep["segs"])
            for ln in text.split("\n"):
                if ln:
                    out.write(ln + "\n")
    spm.SentencePieceTrainer.train(
        input=lines_path,
        model_prefix=prefix,
        model_type="bpe",
        vocab_size=vocab,
        byte_fallback=True,
        character_coverage=1.0,
        add_dummy_prefix=False,
        remove_extra_whitespaces=False,
        normalization_rule_name="identity",
        split_digits=True,
        pad_id=PAD_ID,
        bos_id=BOS_ID,
        eos_id=EOS_ID,
        unk_id=UNK_ID,
        pad_piece="<|pad|>",
        bos_piece="<|startoftext|>",
        eos_piece="<|endoftext|>",
        unk_piece="<|unk|>",
        user_defined_symbols=SPECIALS,
        input_sentence_size=2000000,
        shuffle_input_sentence=True,
        num_threads=2,
        minloglevel=2,
    )
    os.unlink(lines_path)


class Tok:
    def __init__(self, path):
        self.sp = spm.SentencePieceProcessor(model_file=path)

    def encode_segs(self, segs):
        """Ids and per-token loss mask for rendered segments; BOS written as id 1."""
        ids, mask = [], []
        for text, trained in segs:
            if text.startswith("<|startoftext|>"):
                ids.append(BOS_ID)
                mask.append(0)
                text = text[len("<|startoftext|>"):]
            t = self.sp.encode(text) if text else []
            ids += t
            mask += [1 if trained else 0] * len(t)
        return ids, mask

    def encode_text(self, text):
        ids = []
        if text.startswith("<|startoftext|>"):
            ids.append(BOS_ID)
            text = text[len("<|startoftext|>"):]
        return ids + self.sp.encode(text)

    def decode(self, ids):
        return self.sp.decode([i for i in ids if i != BOS_ID])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--episodes", required=True)
    ap.add_argument("--prefix", required=True)
    ap.add_argument("--vocab", type=int, default=3072)
    a = ap.parse_args()
    train(a.episodes, a.prefix, a.vocab)
    # Segment-wise tokenization must equal whole-text tokenization.
    tok = Tok(a.prefix + ".model")
    bad = 0
    with open(a.episodes) as f:
        for i, line in enumerate(f):
            if i >= 300:
                break
            ep = json.loads(line)
            ids, _ = tok.encode_segs(ep["segs"])
            whole = tok.encode_text("".join(s for s, _ in ep["segs"]))
            bad += ids != whole
    print("tokenizer: vocab %d, segment/whole mismatches %d of 300" % (tok.sp.get_piece_size(), bad))
    if bad:
        raise SystemExit("tokenizer: segmentation is not stable across segment boundaries")


if __name__ == "__main__":
    main()
