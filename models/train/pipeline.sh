#!/bin/bash
# `make model`: the whole pipeline, reproducible by seed. Generates episodes,
# trains the tokenizer, trains the model (time-bounded, resumable), exports
# GGUF, checks PyTorch against agentd's engine and evaluates held-out
# episodes through the engine. Work files go to $MODEL_WORK (not committed);
# the results are models/agentd-small.gguf, models/tokenizer.model and
# models/EVAL.md.
#   MODEL_MINUTES   training budget in minutes (default 45)
#   MODEL_EPISODES  training episodes (default 30000, 30% of them drills: half copy, half lookup;
#                   half of all with made-up names)
#   MODEL_RESUME=1  continue the checkpoint in $MODEL_WORK
#   MODEL_THREADS   training threads (default 1: measured faster than 2 here, idle or busy)
#   MODEL_BATCH     padded tokens per optimizer step (default 3072)
#   MODEL_GEN_FLAGS extra gen.py flags for the training, warm-up and validation episodes (the
#                   evaluation asks the same held-out questions whatever they are)
#                   (--think-title, --think-subject, --think-drills, --grammar, --sent-grammar P,
#                   --plain-titles P, --phrasings, --mem-wide, --calc-phrasings, --think-numbers,
#                   --mix KIND=W,...: models/README.md)
#   MODEL_PACK=1    join episodes that share a system turn into conversations (train.py --pack)
#   MODEL_VALIDATE=1 export the checkpoint with the best answer loss on held-out episodes
#   MODEL_LAYERS    layers (default 8: attention on layer 4; 16: on layers 4 and 12)
#   MODEL_THINK_WEIGHT loss weight of the reasoning tokens (default 1)
#   MODEL_OUT       where the GGUF, tokenizer and evaluations go (default models)
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=/usr/bin/python3
W=${MODEL_WORK:-build/model-work}
AGENTD=${AGENTD_BIN:-build/agentd}
T=models/train
OUT=${MODEL_OUT:-models}
GEN_FLAGS=(${MODEL_GEN_FLAGS:-})
mkdir -p "$W" "$OUT"
if ! $PY -c 'import torch, numpy, sentencepiece' 2>/dev/null; then
	echo "model: python3-torch, python3-numpy and python3-sentencepiece are needed" >&2
	exit 1
fi
$PY $T/gen.py --split train --n "${MODEL_EPISODES:-30000}" --seed 1 --copy-share 0.3 --lookup-share 0.5 \
	--nonce 0.5 "${GEN_FLAGS[@]}" --out "$W/train.jsonl"
$PY $T/gen.py --split warmup --n 20000 --seed 2 "${GEN_FLAGS[@]}" --out "$W/warm.jsonl"
$PY $T/tok.py --episodes "$W/train.jsonl" --prefix "$W/tokenizer"
opts=()
[ "${MODEL_RESUME:-0}" = 1 ] && opts+=(--resume)
[ "${MODEL_PACK:-0}" = 1 ] && opts+=(--pack)
CKPT="$W/model.pt"
if [ "${MODEL_VALIDATE:-0}" = 1 ]; then
	# Held-out episodes of another seed than the evaluation's; the checkpoint
	# with the lowest answer loss on them is the one exported.
	$PY $T/gen.py --split heldout --n 120 --seed 778 "${GEN_FLAGS[@]}" --out "$W/val.jsonl"
	opts+=(--val-data "$W/val.jsonl")
	CKPT="$W/model.pt.best"
fi
$PY $T/train.py --data "$W/train.jsonl" --tokenizer "$W/tokenizer.model" --out "$W/model.pt" \
	--minutes "${MODEL_MINUTES:-45}" --tokens-per-batch "${MODEL_BATCH:-3072}" --max-len 1200 \
	--threads "${MODEL_THREADS:-1}" --tie --induction-steps 400 --induction-share 0.1 \
	--warmup-data "$W/warm.jsonl" --warmup-minutes 5 --ctx-weight "${MODEL_CTX_WEIGHT:-0}" \
	--layers "${MODEL_LAYERS:-8}" --think-weight "${MODEL_THINK_WEIGHT:-1}" "${opts[@]}" |
	tee "$W/train.log"
$PY $T/export_gguf.py --ckpt "$CKPT" --tokenizer "$W/tokenizer.model" --out "$OUT/agentd-small.gguf"
cp "$W/tokenizer.model" "$OUT/tokenizer.model"
$PY $T/check_logits.py --agentd "$AGENTD" --ckpt "$CKPT" --gguf "$OUT/agentd-small.gguf" \
	--tokenizer "$W/tokenizer.model"
$PY $T/eval.py --agentd "$AGENTD" --model "$OUT/agentd-small.gguf" --tokenizer "$W/tokenizer.model" \
	--out "$OUT/EVAL.md"
# The same episodes with the engine's verbatim-quote decoding, as agent runs answer.
$PY $T/eval.py --agentd "$AGENTD" --model "$OUT/agentd-small.gguf" --tokenizer "$W/tokenizer.model" \
	--quote-decoding --out "$OUT/EVAL-quotes.md"
