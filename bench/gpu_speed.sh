#!/usr/bin/env bash
# Issue 13 in one bounded device call (under 9 minutes on an H200): the A/B speed benchmark
# bench/speed_ab.py (a hand-written script against `ftrecipe run` with its speed switches) on the
# TinyLlama-1.1B and LLaMA-2-7B shapes, then a world-size-1 start of FSDP and DeepSpeed ZeRO-2/3.
#   bash bench/gpu_wheels.sh                                       # here, once (liger-kernel, bitsandbytes, ...)
#   mkdir -p /tmp/vision-wheels && mv .whl/diffusers-* .whl/ultralytics* .whl/polars* /tmp/vision-wheels/
#       # a call carries at most 64 MiB and all the wheels make about 105 MB; these ~62 MB only bench/gpu_vision.sh needs
#   run(command="bash bench/gpu_speed.sh", carry=[".whl"], timeout_s=600)
# Results go to $OUT/speed_results.txt (and the output tail): per call one JSON line and a table.
# Every call runs under `timeout` and within what is left of SPEED_BUDGET_S (default 510 s, counted
# from the start, installs included); a call that no longer fits says "skipped", and speed_ab.py
# itself skips the probes that would overrun (--time-limit). Order: the headline measurements first
# (1B LoRA with the longest-sequence probes, 7B QLoRA with its batch-1 check); one call of 9 minutes
# may not reach the rest: a second session runs them with, e.g.,
#   run(command="SPEED_CALLS='1b-full 7b-lora fsdp deepspeed' bash bench/gpu_speed.sh", carry=[".whl"], timeout_s=600)
# TINY=1 bash bench/gpu_speed.sh checks the whole script on a CPU (tiny shape; about 4 minutes on 2 cores).
set -u
source bench/gpu_site.sh speed_results.txt
budget=${SPEED_BUDGET_S:-510}
[ -n "${TINY:-}" ] && budget=${SPEED_BUDGET_S:-1800}

speed() {  # seconds it needs at least, its limit, then speed_ab.py arguments
  local need=$1 limit=$2 left=$((budget - SECONDS))
  shift 2
  echo "== speed_ab.py $*" | tee -a "$log"
  if [ "$left" -lt "$need" ]; then
    echo "skipped: ${left} s left of the ${budget} s budget" | tee -a "$log"
    return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  timeout "$limit" python3 bench/speed_ab.py "$@" --time-limit $((limit * 4 / 5)) 2>&1 | tee -a "$log"
  [ "${PIPESTATUS[0]}" = 124 ] && echo "timed out after ${limit} s" | tee -a "$log"
}

strategy() {  # fsdp | deepspeed, ZeRO stage: a few steps of a small model, then its saved model loaded back
  local name=$1 stage=${2:-2} dir=/tmp/speed-strategy-$1${2:+-$2} left=$((budget - SECONDS))
  local label="$name${2:+ ZeRO-$2}"
  echo "== ftrecipe run with hardware.strategy $label at world size 1" | tee -a "$log"
  rm -rf "$dir" && mkdir -p "$dir"
  cat > "$dir/recipe.yaml" <<EOF
name: strategy-$name
model: {modality: causal-lm, base: llama, init: scratch,
        config: {hidden_size: 512, intermediate_size: 1376, num_hidden_layers: 4, num_attention_heads: 8, num_key_value_heads: 8}}
freeze: {strategy: full}
data: {format: synthetic, train_size: 256, eval_size: 8, max_length: 256}
training: {max_steps: 6, batch_size: 4, log_every: 2}
hardware: {accelerator: cuda, precision: bf16-mixed, strategy: $name, zero_stage: $stage}
evaluation: {before_training: false, metrics: []}
EOF
  cat > "$dir/load.py" <<'EOF'
import sys, torch
from transformers import AutoModelForCausalLM
model, info = AutoModelForCausalLM.from_pretrained(sys.argv[1], output_loading_info=True)
bad = {k: v for k, v in info.items() if v}
empty = [n for n, p in model.named_parameters() if p.numel() == 0 or not torch.isfinite(p).all() or not p.abs().sum()]
assert not bad and not empty, (bad, empty[:5])
print(f"loaded back: {sum(p.numel() for p in model.parameters()):,} parameters, none missing, empty or non-finite")
EOF
  if [ -n "${TINY:-}" ]; then  # no GPU: the recipe is checked, not run
    python3 -m ftrecipe validate "$dir/recipe.yaml" >/dev/null 2>&1 && echo "$label: recipe valid (no GPU: not run)" | tee -a "$log" \
      || { echo "$label: FAILED validation" | tee -a "$log"; python3 -m ftrecipe validate "$dir/recipe.yaml" 2>&1 | tail -3 | tee -a "$log"; }
    return
  fi
  if [ "$name" = deepspeed ] && ! python3 -c "import deepspeed" >/dev/null 2>&1; then
    echo "$label: MISSING (deepspeed is not installed on this machine)" | tee -a "$log"
    return
  fi
  if [ "$left" -lt 60 ]; then echo "$label: skipped (${left} s left)" | tee -a "$log"; return; fi
  local limit=$((left < 150 ? left : 150))
  # ftrecipe starts FSDP and DeepSpeed runs under torchrun itself, a single process too
  if timeout "$limit" python3 -m ftrecipe run "$dir/recipe.yaml" --output "$dir/run" --quiet >"$dir/log" 2>&1 \
     && timeout 60 python3 "$dir/load.py" "$dir/run/model" >>"$dir/log" 2>&1; then
    echo "$label: OK, $(grep "^loaded back" "$dir/log")" | tee -a "$log"
  else
    echo "$label: FAILED" | tee -a "$log"
    sed '/elastic\/multiprocessing\/api.py/,$d' "$dir/log" | grep -v -i "warn" | tail -8 | tee -a "$log"  # not torchrun's own trace
  fi
}

if [ -n "${TINY:-}" ]; then
  calls=${SPEED_CALLS:-"tiny-lora tiny-qlora tiny-full fsdp deepspeed"}
else
  calls=${SPEED_CALLS:-"1b-lora 7b-qlora fsdp 1b-full 7b-lora deepspeed"}
fi
for call in $calls; do
  case $call in  # minimum and limit in seconds, on an H200 (the 7B ones include writing a 13 GB checkpoint once)
    1b-lora)  speed 150 270 --shape 1b --mode lora --lengths 4096,8192,16384 --workdir /tmp/speed-ab-1b ;;
    7b-qlora) speed 150 250 --shape 7b --mode qlora --longest off --workdir /tmp/speed-ab-7b ;;
    1b-full)  speed 90 150 --shape 1b --mode full --longest off --workdir /tmp/speed-ab-1b ;;
    7b-lora)  speed 120 200 --shape 7b --mode lora --longest off --workdir /tmp/speed-ab-7b ;;
    tiny-lora)  speed 0 600 --tiny --mode lora --longest on --lengths 64,128 --workdir /tmp/speed-ab-tiny ;;
    tiny-qlora) speed 0 600 --tiny --mode qlora --longest on --lengths 128 --workdir /tmp/speed-ab-tiny ;;
    tiny-full)  speed 0 600 --tiny --mode full --workdir /tmp/speed-ab-tiny ;;
    fsdp) strategy fsdp ;;
    deepspeed) strategy deepspeed 2; strategy deepspeed 3 ;;
    *) echo "unknown call $call" | tee -a "$log" ;;
  esac
done
echo "== done in ${SECONDS} s" | tee -a "$log"
