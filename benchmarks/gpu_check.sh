#!/usr/bin/env bash
# The whole GPU check in one command, on a fresh GPU machine that has PyTorch, torchvision
# and transformers but nothing else of ours and no network (at most TOTAL_S=380 s, so that
# a session's 15 minutes of device time hold the machine's start, this run and a rerun):
#
#   1. install the wheels carried in .whl/ (made beforehand by benchmarks/fetch_gpu_wheels.sh)
#      into /tmp/site;
#   2. the tests marked `gpu` (nvJPEG vs Pillow, broken files through a CUDA unit, one sync
#      per batch, CUDA vs CPU outputs);
#   3. python -m benchmarks.gpu: model alone fp32/bf16/bf16+compile at batch 32-256, the
#      predictor, nvJPEG vs Pillow decode, the work unit with GPU and CPU decode, 3 units
#      per GPU, plain Dask on a LocalCUDACluster, agreement with the CPU; the ratios
#      (bf16 + compile last: its compile takes minutes and no ratio needs it).
#
# Everything lands in $OUT (default ./gpu_out): gpu.txt, gpu_tests.log, gpu_bench.json,
# gpu_bench.md, gpu_bench.log. From the session's device tool:
#   run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=420)
# then, if it has to be rerun, at once (the machine stays warm 30 s), e.g. with
# `--skip agreement,model_compile` to spend the time on what failed.
# Arguments go to benchmarks/gpu.py. A dry run on a CPU machine (no wheels installed):
#   SKIP_WHEELS=1 OUT=/tmp/gpu_out bash benchmarks/gpu_check.sh --device cpu --quick --model tiny
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu_out}
mkdir -p "$OUT"
export OUT PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONDONTWRITEBYTECODE=1
PY=${PYTHON:-python3}
TOTAL_S=${TOTAL_S:-380}
started=$(date +%s)

if [ -z "${SKIP_WHEELS:-}" ] && ls .whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || { echo "error: wheel install failed" >&2; exit 1; }
  export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  echo "warning: no .whl/ carried; relying on what is installed" >&2
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi

{
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv 2>&1
  "$PY" - <<'PYEOF'
import torch, torchvision, transformers, zarr, dask, distributed
print("python", __import__("sys").version.split()[0], "torch", torch.__version__,
      "torchvision", torchvision.__version__, "transformers", transformers.__version__,
      "zarr", zarr.__version__, "dask", dask.__version__, "distributed", distributed.__version__)
print("cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
from importlib import metadata
for dist in ("cuda-core", "cuda-bindings", "nvidia-ml-py"):  # dask-cuda 26.10: cuda-core>=0.5.1
    try:
        print(dist, metadata.version(dist))
    except metadata.PackageNotFoundError:
        print(dist, "not installed")
try:
    import dask_cuda
    print("dask_cuda", dask_cuda.__version__)
except Exception as err:  # the benchmark falls back to a one-worker LocalCluster
    print("dask_cuda unavailable:", type(err).__name__, err)
PYEOF
} 2>&1 | tee "$OUT/gpu.txt"

# the broken-JPEG tests last: if nvJPEG faults on one, the CUDA context of this pytest
# process is gone for every test after it
timeout 120 "$PY" -m pytest -q -p no:cacheprovider -m gpu -rA \
  tests/inference/test_transfers.py tests/jobs/test_gpu_cluster.py \
  tests/inference/test_gpu_decode.py 2>&1 \
  | tee "$OUT/gpu_tests.log"
tests_rc=${PIPESTATUS[0]}

# Sections start while the budget lasts; the timeout ends one that overruns (the results
# are saved after every section, so it loses only that one).
left=$(( TOTAL_S - ($(date +%s) - started) ))
timeout $(( left > 100 ? left : 100 )) "$PY" -m benchmarks.gpu --out "$OUT" \
  --budget-s $(( left > 160 ? left - 60 : 60 )) "$@" 2>&1 | tee "$OUT/gpu_bench.log"
bench_rc=${PIPESTATUS[0]}

echo "gpu tests exit $tests_rc, benchmark exit $bench_rc, $(( $(date +%s) - started )) s in all"
exit $(( tests_rc || bench_rc ))
