#!/usr/bin/env bash
# Teacher throughput on a GPU: the packaged SmolLM2-135M through our generation (vLLM offline backend, and our
# OpenAI backend against `vllm serve`) vs `vllm bench throughput` on the same prompts. Needs a CUDA GPU and the
# [gpu] extra (vLLM) installed beforehand: the GPU machine may have no network. Prints one line per system and
# writes them to $OUT (or ./teacher_gpu_results) as results.jsonl; record the figures in docs/benchmarks.md.
#
#   bash benchmarks/teacher_gpu.sh                 # 2,000 prompts, 256 in flight
#   N=10000 IN_FLIGHT=512 bash benchmarks/teacher_gpu.sh
#
# Not run by this branch's author: no GPU was lent to issue 15. Expect minutes, mostly vLLM start-up (3 starts).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
N=${N:-2000}
IN_FLIGHT=${IN_FLIGHT:-256}
OUTPUT_LEN=${OUTPUT_LEN:-128}
PORT=${PORT:-8765}
GPU_MEM=${GPU_MEM:-0.85}
RESULTS=${OUT:-./teacher_gpu_results}
mkdir -p "$RESULTS"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 DO_NOT_TRACK=1 VLLM_NO_USAGE_STATS=1
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
VLLM=${VLLM:-$(dirname "$PY")/vllm}
[ -x "$VLLM" ] || VLLM=$(command -v vllm || echo vllm)

"$PY" -c "import vllm" 2>/dev/null || { echo "vLLM missing: pip install -e '.[gpu]' first" >&2; exit 2; }
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$RESULTS/gpu.txt"
"$PY" -c "import vllm; print('vllm', vllm.__version__)" | tee "$RESULTS/versions.txt"

# 1. the packaged GGUF, de-quantised once into an HF model dir (nothing downloads)
MODELS=${CHRONOPRISM_TEST_MODELS:-${CHRONOPRISM_HOME:-.chronoprism}/models}
MODEL_DIR=$("$PY" -c "from pathlib import Path; from teacher.models import smollm2_hf_dir; print(smollm2_hf_dir(Path('$MODELS')))")
echo "model dir: $MODEL_DIR"

# 2. the same prompts for everyone: our per-kind VRD prompt, chat template applied, for vllm bench
"$PY" benchmarks/teacher_gpu.py prompts --model-dir "$MODEL_DIR" --n "$N" --out "$RESULTS/prompts.jsonl"

run() { echo "== $1"; shift; "$@" | tail -n 1 | tee -a "$RESULTS/results.jsonl"; }
: > "$RESULTS/results.jsonl"

# 3. our generation through the vLLM offline backend (one engine, all requests in one generate call)
run "chronoprism offline" "$PY" benchmarks/teacher_gpu.py offline --model-dir "$MODEL_DIR" --n "$N" \
    --gpu-memory-utilization "$GPU_MEM"

# 4. our generation through the OpenAI backend against `vllm serve` (sliding window of IN_FLIGHT)
"$VLLM" serve "$MODEL_DIR" --host 127.0.0.1 --port "$PORT" \
    --gpu-memory-utilization "$GPU_MEM" --max-num-seqs "$IN_FLIGHT" --disable-log-requests \
    > "$RESULTS/vllm_serve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 180); do
    curl -sf "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
    kill -0 $SERVER 2>/dev/null || { echo "vllm serve died; see $RESULTS/vllm_serve.log" >&2; exit 1; }
    sleep 1
done
for window in 64 "$IN_FLIGHT"; do
    run "chronoprism http, $window in flight" "$PY" benchmarks/teacher_gpu.py http \
        --base-url "http://127.0.0.1:$PORT/v1" --model "$MODEL_DIR" --n "$N" --in-flight "$window"
done
kill $SERVER; wait $SERVER 2>/dev/null || true
trap - EXIT

# 5. the peer: vLLM's own offline throughput benchmark on the same prompts (ignores EOS: OUTPUT_LEN tokens each)
echo "== vllm bench throughput"
if ! "$VLLM" bench throughput --model "$MODEL_DIR" --dataset-name custom \
        --dataset-path "$RESULTS/prompts.jsonl" --num-prompts "$N" --custom-output-len "$OUTPUT_LEN" \
        --gpu-memory-utilization "$GPU_MEM" --skip-chat-template > "$RESULTS/vllm_bench.log" 2>&1; then
    echo "custom dataset refused by this vLLM; falling back to random prompts of the same lengths" | tee -a "$RESULTS/vllm_bench.log"
    INPUT_LEN=$("$PY" -c "
import json; from transformers import AutoTokenizer
t = AutoTokenizer.from_pretrained('$MODEL_DIR')
rows = [json.loads(l)['prompt'] for l in open('$RESULTS/prompts.jsonl')]
print(round(sum(len(t(r).input_ids) for r in rows) / len(rows)))")
    "$VLLM" bench throughput --model "$MODEL_DIR" --dataset-name random \
        --input-len "$INPUT_LEN" --output-len "$OUTPUT_LEN" --num-prompts "$N" \
        --gpu-memory-utilization "$GPU_MEM" >> "$RESULTS/vllm_bench.log" 2>&1
fi
grep -E "^Throughput" "$RESULTS/vllm_bench.log" | tail -n 1 | tee "$RESULTS/vllm_bench.txt"
echo "compare output_tokens_per_s above with vllm bench's output tokens/s; results in $RESULTS"
