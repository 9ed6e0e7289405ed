#!/usr/bin/env bash
# Download, into .whl/, the wheels benchmarks/gpu_check.sh installs on a fresh GPU machine.
#
# That machine (docs: the device's KINDS.md) has Python 3.12, PyTorch, torchvision,
# transformers, numpy, pandas, pillow, fsspec, aiohttp, cloudpickle, msgpack, psutil, toolz,
# sortedcontainers, click, jinja2, pyyaml, urllib3, python-dateutil, numba, nvidia-ml-py ...
# and no network. What plumenet's work unit and a LocalCUDACluster need beyond that is
# listed here, pinned to the versions this repository is tested with, except dask and
# distributed: 2026.7.1, the pair dask-cuda 26.10 is released against (through
# rapids-dask-dependency, which is not carried: its patches load from a .pth file, which a
# --target install does not run, and the work unit uses plain Client.map). Prefect does not
# travel (its server and its ~40 dependencies are far over the size budget): the GPU
# check runs the work unit directly and through plain Dask (client.map), not the flow.
#
# Usage (repository root, with network):  bash benchmarks/fetch_gpu_wheels.sh
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
mkdir -p .whl
PY=${PYTHON:-python3}
WHEELS=(
  zarr==3.1.6 numcodecs==0.16.6 donfig==0.8.1.post1 google-crc32c==1.9.0
  pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
  botocore==1.43.117 jmespath==1.1.0
  dask==2026.7.1 distributed==2026.7.1 partd==1.4.2 locket==1.0.0 tblib==3.2.2
  tornado==6.6.1 zict==3.0.0
  dask-cuda==26.10.0
)
"$PY" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux1_x86_64 --platform any -d .whl "${WHEELS[@]}"
# One version of each: a stale second copy stops the whole install on the GPU machine.
ls .whl/*.whl | sed -E 's#.*/([^-]+)-.*#\1#' | sort | uniq -d | while read -r dup; do
  echo "error: two versions of $dup in .whl/; delete the stale one" >&2; exit 1
done
du -ch .whl/*.whl | tail -1
