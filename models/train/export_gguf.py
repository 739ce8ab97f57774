# Writes a trained checkpoint as GGUF v3 in llama.cpp's `jamba` layout.
#
# Our own small writer (struct + numpy): metadata keys and tensor names as in
# /work/shared/jamba-spec.md, ggml dims innermost first (a torch (out, in)
# matrix is ne = [in, out] with the same bytes), 32-byte alignment. Weights
# are F32 (the model is small) so the engine computes what PyTorch computes;
# --f16 stores the 2-D matrices as F16 instead.
import argparse
import struct

import numpy as np
import sentencepiece as spm

import model as M

GGUF_U32, GGUF_I32, GGUF_F32, GGUF_BOOL, GGUF_STR, GGUF_ARR = 4, 5, 6, 7, 8, 9
T_F32, T_F16 = 0, 1
ALIGN = 32

# The Reasoning-3B ChatML template (tools, thinking prefix, tool responses);
# agentd's engine detects the format from it, other runtimes may render it.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if tools %}<|im_start|>system\n"
    "{%- if messages[0].role == 'system' %}{{ messages[0].content + '\n\n' }}{%- endif %}"
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
    "{%- for tool in tools %}{{ '\n' + (tool | tojson) }}{%- endfor %}"
    "\n</tools>\n\nFor each function call, return a json object with function name and arguments "
    "within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, "
    "\"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n"
    "{%- elif messages[0].role == 'system' %}<|im_start|>system\n{{ messages[0].content }}<|im_end|>\n"
    "{%- endif %}"
    "{%- for m in messages %}"
    "{%- if m.role == 'user' %}<|im_start|>user\n{% if loop.last %}Begin by thinking about the "
    "reasoning process in the mind within <think> </think> tags and then proceed to give your "
    "response.\n{% endif %}{{ m.content }}<|im_end|>\n"
    "{%- elif m.role == 'assistant' %}<|im_start|>assistant\n{{ m.content }}<|im_end|>\n"
    "{%- elif m.role == 'tool' %}<|im_start|>user\n<tool_response>\n{{ m.content }}"
    "\n</tool_response><|im_end|>\n{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}<|im_start|>assistant\n<think>\n{%- endif %}"
)


def s_bytes(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


class Writer:
    def __init__(self):
        self.kv = []
        self.tensors = []

    def add(self, key, typ, val):
        out = s_bytes(key) + struct.pack("<I", typ)
        if typ == GGUF_U32:
            out += struct.pack("<I", val)
        elif typ == GGUF_I32:
            out += struct.pack("<i", val)
        elif typ == GGUF_F32:
            out += struct.pack("<f", val)
        elif typ == GGUF_BOOL:
            out += struct.pack("<B", 1 if val else 0)
        elif typ == GGUF_STR:
            out += s_bytes(val)
        else:
            raise ValueError(typ)
        self.kv.append(out)

    def add_array(self, key, etype, vals):
        out = s_bytes(key) + struct.pack("<IIQ", GGUF_ARR, etype, len(vals))
        if etype == GGUF_STR:
            out += b"".join(s_bytes(v) for v in vals)
        elif etype == GGUF_I32:
            out += np.asarray(vals, dtype="<i4").tobytes()
        elif etype == GGUF_F32:
            out += np.asarray(vals, dtype="<f4").tobytes()
        else:
            raise ValueError(etype)
        self.kv.append(out)

    def tensor(self, name, arr, f16=False):
        """arr: numpy array in torch order (outermost first)."""
        a = np.ascontiguousarray(arr, dtype="<f2" if f16 else "<f4")
        self.tensors.append((name, list(reversed(a.shape)), T_F16 if f16 else T_F32, a.tobytes()))

    def write(self, path):
        head = b"GGUF" + struct.pack("<IQQ", 3, len(self.tensors), len(self.kv)) + b"".join(self.kv)
        infos, off = b"", 0
        offsets = []
        for name, ne, typ, data in self.tensors:
            infos += s_bytes(name) + struct.pack("<I", len(ne)) + struct.pack("<%dQ" % len(ne), *ne)
            infos += struct.pack("<IQ", typ, off)
            offsets.append(off)
            off += (len(data) + ALIGN - 1) // ALIGN * ALIGN
        with open(path, "wb") as f:
            f.write(head + infos)
            pad = (-f.tell()) % ALIGN
            f.write(b"\0" * pad)
            for (_, _, _, data) in self.tensors:
                f.write(data)
                f.write(b"\0" * ((-len(data)) % ALIGN))


def vocab(sp):
    toks, scores, types = [], [], []
    for i in range(sp.get_piece_size()):
        toks.append(sp.id_to_piece(i))
        scores.append(sp.get_score(i))
        if sp.is_unknown(i):
            types.append(2)
        elif sp.is_control(i):
            types.append(3)
        elif sp.is_byte(i):
            types.append(6)
        elif sp.IdToPiece(i) in ("<|im_start|>", "<|im_end|>", "<think>", "</think>", "<tool_call>",
                                 "</tool_call>", "<tool_response>", "</tool_response>"):
            types.append(4)
        else:
            types.append(1)
    return toks, scores, types


def export(ckpt, tokenizer, out, f16=False, name="agentd-small", pieces=None):
    """pieces: None to take the vocabulary from the SentencePiece model `tokenizer`, or a
    dict with tokens, scores, types and bos/eos/unk/pad ids (a vocabulary built without
    SentencePiece, as the ablation's byte-level one; `tokenizer` is then unused)."""
    model, _ = M.load(ckpt)
    c = model.c
    if pieces is None:
        sp = spm.SentencePieceProcessor(model_file=tokenizer)
        assert sp.get_piece_size() == c.vocab
        toks, scores, types = vocab(sp)
        pieces = dict(tokens=toks, scores=scores, types=types, bos=sp.bos_id(), eos=sp.eos_id(), unk=sp.unk_id(),
                      pad=sp.pad_id())
    assert len(pieces["tokens"]) == c.vocab
    w = Writer()
    w.add("general.architecture", GGUF_STR, "jamba")
    w.add("general.name", GGUF_STR, name)
    w.add("general.alignment", GGUF_U32, ALIGN)
    w.add("general.file_type", GGUF_U32, 1 if f16 else 0)
    w.add("jamba.context_length", GGUF_U32, c.context)
    w.add("jamba.embedding_length", GGUF_U32, c.d_model)
    w.add("jamba.block_count", GGUF_U32, c.n_layers)
    w.add("jamba.feed_forward_length", GGUF_U32, c.d_ff)
    w.add("jamba.attention.head_count", GGUF_U32, c.n_heads)
    w.add_array("jamba.attention.head_count_kv", GGUF_I32,
                [c.n_kv_heads if c.is_attn(i) else 0 for i in range(c.n_layers)])
    w.add("jamba.attention.layer_norm_rms_epsilon", GGUF_F32, c.eps)
    w.add("jamba.ssm.conv_kernel", GGUF_U32, c.d_conv)
    w.add("jamba.ssm.inner_size", GGUF_U32, c.expand * c.d_model)
    w.add("jamba.ssm.state_size", GGUF_U32, c.d_state)
    w.add("jamba.ssm.time_step_rank", GGUF_U32, c.dt_rank)
    w.add("jamba.expert_count", GGUF_U32, c.n_experts)
    w.add("jamba.expert_used_count", GGUF_U32, c.top_k)
    w.add("tokenizer.ggml.model", GGUF_STR, "llama")
    w.add("tokenizer.ggml.pre", GGUF_STR, "default")
    w.add_array("tokenizer.ggml.tokens", GGUF_STR, pieces["tokens"])
    w.add_array("tokenizer.ggml.scores", GGUF_F32, pieces["scores"])
    w.add_array("tokenizer.ggml.token_type", GGUF_I32, pieces["types"])
    w.add("tokenizer.ggml.bos_token_id", GGUF_U32, pieces["bos"])
    w.add("tokenizer.ggml.eos_token_id", GGUF_U32, pieces["eos"])
    w.add("tokenizer.ggml.unknown_token_id", GGUF_U32, pieces["unk"])
    w.add("tokenizer.ggml.padding_token_id", GGUF_U32, pieces["pad"])
    w.add("tokenizer.ggml.add_bos_token", GGUF_BOOL, True)
    w.add("tokenizer.ggml.add_eos_token", GGUF_BOOL, False)
    w.add("tokenizer.ggml.add_space_prefix", GGUF_BOOL, False)
    w.add("tokenizer.chat_template", GGUF_STR, CHAT_TEMPLATE)

    sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}

    def mat(n, arr):
        w.tensor(n, arr, f16)

    mat("token_embd.weight", sd["embed_tokens.weight"])
    w.tensor("output_norm.weight", sd["final_layernorm.weight"])
    if not c.tie_embeddings:  # tied: the engine reads token_embd as the output matrix
        mat("output.weight", sd["lm_head.weight"])
    for i in range(c.n_layers):
        p, b = "layers.%d." % i, "blk.%d." % i
        w.tensor(b + "attn_norm.weight", sd[p + "input_layernorm.weight"])
        if c.is_attn(i):
            for hf, gg in (("q_proj", "attn_q"), ("k_proj", "attn_k"), ("v_proj", "attn_v"), ("o_proj", "attn_output")):
                mat(b + gg + ".weight", sd[p + "mixer." + hf + ".weight"])
        else:
            m = p + "mixer."
            mat(b + "ssm_in.weight", sd[m + "in_proj.weight"])
            w.tensor(b + "ssm_conv1d.weight", sd[m + "conv1d.weight"][:, 0, :])
            w.tensor(b + "ssm_conv1d.bias", sd[m + "conv1d.bias"])
            w.tensor(b + "ssm_x.weight", sd[m + "x_proj.weight"])
            w.tensor(b + "ssm_dt_norm.weight", sd[m + "dt_layernorm.weight"])
            w.tensor(b + "ssm_b_norm.weight", sd[m + "b_layernorm.weight"])
            w.tensor(b + "ssm_c_norm.weight", sd[m + "c_layernorm.weight"])
            w.tensor(b + "ssm_dt.weight", sd[m + "dt_proj.weight"])
            w.tensor(b + "ssm_dt.bias", sd[m + "dt_proj.bias"])
            w.tensor(b + "ssm_a", -np.exp(sd[m + "A_log"]))
            w.tensor(b + "ssm_d", sd[m + "D_skip"])
            mat(b + "ssm_out.weight", sd[m + "out_proj.weight"])
        w.tensor(b + "ffn_norm.weight", sd[p + "pre_ff_layernorm.weight"])
        if c.is_moe(i):
            w.tensor(b + "ffn_gate_inp.weight", sd[p + "ff.router.weight"])
            for hf, gg in (("gate_proj", "ffn_gate_exps"), ("up_proj", "ffn_up_exps"), ("down_proj", "ffn_down_exps")):
                stack = np.stack([sd[p + "ff.experts.%d.%s.weight" % (e, hf)] for e in range(c.n_experts)])
                mat(b + gg + ".weight", stack)
        else:
            for hf, gg in (("gate_proj", "ffn_gate"), ("up_proj", "ffn_up"), ("down_proj", "ffn_down")):
                mat(b + gg + ".weight", sd[p + "ff." + hf + ".weight"])
    w.write(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--f16", action="store_true")
    a = ap.parse_args()
    export(a.ckpt, a.tokenizer, a.out, a.f16)


if __name__ == "__main__":
    main()
