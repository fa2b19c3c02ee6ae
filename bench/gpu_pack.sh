#!/usr/bin/env bash
# Run HERE (not on the GPU machine), once, before bench/gpu_all.sh: the packages the GPU image lacks,
# for its Python 3.12, unpacked into one site and packed as .gpu/site.tar.gz (under 60 MB: a call
# carries 64 MiB with the checkout). Versions are the lock's (requirements/ci.txt); the image's own
# torch, transformers, peft and accelerate stay (a newer transformers needs a newer huggingface-hub),
# as do the packages it already has (numpy, pandas, pyarrow, rich, pluggy, xxhash, ...).
# What the image lacks was read from /work/.library/device/KINDS.md's package list: pydantic with the
# exact pydantic-core it pins, soundfile and cffi, jiwer, bitsandbytes (only the CUDA 13 libraries),
# liger-kernel, Diffusers, Ultralytics (polars left out: it imports without it), evaluate, datasets,
# dill and multiprocess.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qxF "/.gpu/" .git/info/exclude 2>/dev/null || echo "/.gpu/" >> .git/info/exclude
rm -rf .gpu && mkdir -p .gpu/wheels .gpu/ftrecipe-site
pin() { sed -n "s/^$1==\([^ ]*\).*/\1/p" requirements/ci.txt; }
specs=()
for name in pydantic pydantic-core annotated-types typing-inspection ruamel-yaml soundfile cffi pycparser jiwer \
            rapidfuzz bitsandbytes liger-kernel diffusers importlib-metadata ultralytics ultralytics-thop evaluate \
            datasets dill multiprocess; do
  version=$(pin "$name")
  specs+=("$name${version:+==$version}")
done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .gpu/wheels "${specs[@]}"
for wheel in .gpu/wheels/*.whl; do python3 -m zipfile -e "$wheel" .gpu/ftrecipe-site; done
# bitsandbytes carries a library for every CUDA version; the H200 image runs CUDA 13
find .gpu/ftrecipe-site/bitsandbytes -name 'libbitsandbytes_cuda*' ! -name '*cuda13*' -delete
tar -C .gpu -czf .gpu/site.tar.gz ftrecipe-site
rm -rf .gpu/wheels .gpu/ftrecipe-site
size=$(stat -c %s .gpu/site.tar.gz)
echo ".gpu/site.tar.gz: $((size / 1000000)) MB, ${#specs[@]} packages"
[ "$size" -lt 60000000 ] || { echo "over 60 MB: a call carries 64 MiB with the checkout" >&2; exit 1; }
