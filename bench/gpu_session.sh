#!/usr/bin/env bash
# Every GPU measurement issues 4 and 5 ask for, in one device call (about 8 minutes on an H100):
#   bench/gpu_wheels.sh                       # here, once
#   run(command="bash bench/gpu_session.sh", carry=[".whl"], timeout_s=600)
# Results go to $OUT/gpu_results.txt (and the output tail). TINY=1 checks the script on a CPU.
set -u
source bench/gpu_site.sh gpu_results.txt
tiny=${TINY:+--tiny}
measure() {  # seconds, then gpu_compare arguments
  local limit=$1; shift
  echo "== gpu_compare.py $*" | tee -a "$log"
  timeout "$limit" python3 bench/gpu_compare.py "$@" $tiny 2>&1 | grep -v -i "warn" | tail -5 | tee -a "$log"
}
measure 120 llama-1b --mode lora
measure 150 whisper-small --mode full
measure 120 whisper-small --mode encoder-frozen
measure 150 llama-1b --mode full
measure 240 llama-7b --mode qlora --steps 20
