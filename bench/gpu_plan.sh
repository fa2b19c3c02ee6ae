#!/usr/bin/env bash
# The GPU measurement of the plan issue, in one device call (about 5 minutes on one H200):
#   bench/gpu_wheels.sh                       # here, once
#   run(command="bash bench/gpu_plan.sh", carry=[".whl"], timeout_s=600)
# `ftrecipe plan`'s estimated peak against torch.cuda.max_memory_allocated() of real steps, for full
# fine-tuning (fp32 master weights and pure bf16), LoRA, QLoRA, Whisper with a frozen encoder,
# DreamBooth LoRA (SD 1.5 shapes, 512 px) and YOLO11n (640 px); goal: within 15% each.
# Results go to $OUT/gpu_plan.txt (and the output tail). TINY=1 checks the script on a CPU.
set -u
source bench/gpu_site.sh gpu_plan.txt
python3 -c "import torch, transformers, peft; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__)" | tee -a "$log"
if [ -n "${TINY:-}" ]; then args="--tiny --steps 1"; else args="--steps 3"; fi
echo "== plan_accuracy.py $args" | tee -a "$log"
timeout 540 python3 bench/plan_accuracy.py $args 2>&1 | grep -E '^\{|^peak error|^static part|Error|error' | tail -12 | tee -a "$log"
