#!/usr/bin/env bash
# Issue 21's GPU measurements in one bounded device call, in priority order (one H200, under 9 minutes):
#   bash bench/gpu_pack.sh                                  # here, once: .gpu/site.tar.gz, under 60 MB
#   run(command="bash bench/gpu_all.sh", carry=[".gpu"], timeout_s=600)
# 1. ablation    speed_ab.py, 1B LoRA: packing alone, with each switch, all (which switch pays)
# 2. plan        plan_accuracy.py: the seven configurations, 60 s each at most (goal: within 15%)
# 3. qlora-7b    speed_ab.py, 7B QLoRA: the A/B and the batch-1 x 2048 peak with checkpointing (< 6 GiB)
# 4. compare     gpu_compare.py llama-1b --mode lora: the runner against a plain loop (>= 0.97x)
# 5. fsdp        FSDP on one GPU (one rank: NCCL, the bf16 gather, sharded checkpoint, gathered save), loaded back
# Each part runs under its own `timeout` within what is left of GPU_BUDGET_S (default 520 s, counted from
# the start, the install included); a part that no longer fits says "skipped", and a second call runs the
# rest: run(command="GPU_PARTS='compare fsdp' bash bench/gpu_all.sh", carry=[".gpu"], timeout_s=600).
# Results go to $OUT/gpu_all.txt as they come (and the output tail); record them in bench/README.md.
# TINY=1 bash bench/gpu_all.sh checks the whole script on a CPU (tiny shapes; about 6 minutes on 2 cores).
set -u
source bench/gpu_site.sh gpu_all.txt
budget=${GPU_BUDGET_S:-520}
[ -n "${TINY:-}" ] && budget=${GPU_BUDGET_S:-1800}
source bench/gpu_parts.sh
python3 -c "import torch, transformers, peft, accelerate; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__, 'accelerate', accelerate.__version__)" | tee -a "$log"

if [ -n "${TINY:-}" ]; then
  shape="--tiny" qlora="--tiny --mode qlora --longest on --lengths 128" plan="--tiny --steps 1 --limit 300" compare="llama-1b --tiny"
else
  shape="--shape 1b" qlora="--shape 7b --mode qlora --longest off" plan="--steps 3 --limit 60" compare="llama-1b --mode lora"
fi
for name in ${GPU_PARTS:-ablation plan qlora-7b compare fsdp}; do
  case $name in  # the least each needs, its limit (seconds on an H200)
    ablation) speed 150 200 $shape --mode lora --ablation --longest off --workdir /tmp/speed-ab-1b ;;
    plan)     part 60 240 "plan_accuracy.py $plan" python3 bench/plan_accuracy.py $plan ;;
    qlora-7b) speed 150 220 $qlora --workdir /tmp/speed-ab-7b ;;
    compare)  part 60 120 "gpu_compare.py $compare" python3 bench/gpu_compare.py $compare ;;
    fsdp)     strategy fsdp ;;
    *) echo "unknown part $name" | tee -a "$log" ;;
  esac
done
echo "== done in ${SECONDS} s" | tee -a "$log"
