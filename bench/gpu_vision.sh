#!/usr/bin/env bash
# The GPU measurements of the Stable Diffusion and YOLO issues, in one device call (about 6 minutes):
#   bench/gpu_wheels.sh                       # here, once
#   run(command="bash bench/gpu_vision.sh", carry=[".whl"], timeout_s=600)
# DreamBooth (SD 1.5 shape, 512 px, batch 2: full and LoRA, with and without gradient checkpointing)
# against a plain Diffusers loop, and YOLO11n images/s against Ultralytics' own model.train.
# Results go to $OUT/gpu_vision.txt (and the output tail). TINY=1 checks the script on a CPU.
set -u
source bench/gpu_site.sh gpu_vision.txt
python3 -c "import torch, diffusers, ultralytics; print('torch', torch.__version__, 'diffusers', diffusers.__version__, 'ultralytics', ultralytics.__version__)" | tee -a "$log"
if [ -n "${TINY:-}" ]; then sd="--tiny --steps 2"; yolo="--tiny"; else sd=""; yolo="--cuda"; fi
echo "== sd_dreambooth.py $sd" | tee -a "$log"
timeout 330 python3 bench/sd_dreambooth.py $sd 2>&1 | grep -E '^\{|^ratio|Error|error' | tail -8 | tee -a "$log"
echo "== yolo_throughput.py $yolo" | tee -a "$log"
timeout 200 python3 bench/yolo_throughput.py $yolo 2>&1 | grep -E 'images/s|^ratio|Error|error' | tail -4 | tee -a "$log"
