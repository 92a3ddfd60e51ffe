#!/usr/bin/env bash
# The whole device check for issue 7, as one command on the GPU machine (needs .whl carried;
# see bench/gpu_wheels.sh). Writes the log, the JSON and the CUDA test output under $OUT.
#
#   1. the engine's fast-path tests on CUDA (CUDA-graph decoder against the plain one);
#   2. bench/grpo_step.py: fast-path check on the real shape, then Steer, TRL and Steer's
#      plain path on the same work, and the table with the ratio.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, transformers, trl, datasets, pyarrow, fsspec
print('torch', torch.__version__, 'transformers', transformers.__version__, 'trl', trl.__version__,
      'datasets', datasets.__version__, 'pyarrow', pyarrow.__version__, 'fsspec', fsspec.__version__)" \
  | tee "$OUT/versions.txt"
# --noconftest: the suite's root conftest sets up Django, which the device machine lacks.
timeout 240 python3 -m pytest -c tests/pytest.ini --rootdir=. -q -p no:cacheprovider --noconftest \
  tests/engine/test_static_decoder.py tests/engine/test_chunked_logprobs.py 2>&1 \
  | tail -n 15 | tee "$OUT/cuda_tests.txt"
timeout 420 python3 bench/grpo_step.py --device cuda --shape smollm2-135m --check \
  --sides "${SIDES:-steer,trl,steer-plain,steer-compile}" --steps "${STEPS:-5}" --warmup 2 \
  --profile-dir "$OUT" ${BENCH_ARGS:-} --json "$OUT/grpo_step.json" 2>&1 | grep -v -i warn | tee "$OUT/grpo_step.log"
