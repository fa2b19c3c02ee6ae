#!/usr/bin/env bash
# Run HERE (not on the GPU machine), once, before bench/gpu_session.sh: downloads into .whl/ the
# wheels the GPU machine's image lacks (it has torch, transformers, accelerate, peft, scipy, rich,
# pluggy, tokenizers; see /work/.library/device/KINDS.md), for its Python 3.12. About 100 MB.
# (bench/gpu_vision.sh needs the Diffusers and Ultralytics wheels too.)
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qxF "/.whl/" .git/info/exclude || echo "/.whl/" >> .git/info/exclude
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
  "pydantic==2.13.*" pydantic-core annotated-types typing-inspection ruamel.yaml soundfile jiwer rapidfuzz \
  "bitsandbytes==0.50.2" \
  "liger-kernel==0.8.5" \
  "diffusers==0.42.1" importlib_metadata "ultralytics==8.4.190" ultralytics-thop ultralytics-platform polars polars-runtime-32
du -sh .whl
