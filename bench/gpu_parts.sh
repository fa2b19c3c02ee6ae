# Sourced by bench/gpu_speed.sh and bench/gpu_all.sh after bench/gpu_site.sh: the bounded parts of a GPU
# call. Each runs under `timeout`, within what is left of $budget seconds (counted from the start,
# installs included); a part that no longer fits says "skipped". Everything goes to "$log" as it comes.

part() {  # seconds it needs at least, its limit, a label, then the command
  local need=$1 limit=$2 label=$3 left=$((budget - SECONDS))
  shift 3
  echo "== $label" | tee -a "$log"
  if [ "$left" -lt "$need" ]; then
    echo "skipped: ${left} s left of the ${budget} s budget" | tee -a "$log"
    return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  timeout "$limit" "$@" 2>&1 | tee -a "$log"
  [ "${PIPESTATUS[0]}" = 124 ] && echo "timed out after ${limit} s" | tee -a "$log"
}

speed() {  # seconds it needs at least, its limit, then speed_ab.py arguments (it skips its own probes past 4/5 of the limit)
  local need=$1 limit=$2 left=$((budget - SECONDS))
  shift 2
  [ "$limit" -gt "$left" ] && limit=$left
  part "$need" "$limit" "speed_ab.py $*" python3 bench/speed_ab.py "$@" --time-limit $((limit * 4 / 5))
}

strategy() {  # fsdp | deepspeed, ZeRO stage: a few steps of a small model, then its saved model loaded back
  # (one GPU, one process: FSDP still shards, over one rank, so NCCL, the bf16 gather policy, the sharded
  # checkpoint and the gathered save run on CUDA; two-process FSDP is tested on CPU processes in the suite)
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

