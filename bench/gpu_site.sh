# Sourced by the GPU session scripts: the environment, ftrecipe (and the wheels from bench/gpu_wheels.sh)
# installed into a private site, and the machine's GPU noted at the top of the log file "$1".
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
out=${OUT:-/tmp/gpu-results}; mkdir -p "$out"; log="$out/$1"
site=/tmp/ftrecipe-site
if [ -f .gpu/site.tar.gz ] && [ -z "${TINY:-}" ]; then  # bench/gpu_pack.sh (for the GPU image: Python 3.12, CUDA 13)
  rm -rf "$site" && tar -xzf .gpu/site.tar.gz -C /tmp || exit 1
elif [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .whl/*.whl || exit 1
fi
# Installed (not just on the path): the built-in plugins are found through their entry points.
python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --upgrade --target "$site" . || exit 1
export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
{ nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "no GPU"; } | tee "$log"
