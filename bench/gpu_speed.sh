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

source bench/gpu_parts.sh

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
