#!/usr/bin/env bash
# Fetch, on this (networked) machine, the wheels bench/grpo_step.py needs on the device machine
# (Python 3.12, x86-64, no network; it has torch, accelerate, huggingface-hub 1.33, pyarrow,
# pandas, xxhash, fsspec, tokenizers, safetensors). They land in .whl/ (git-ignored), which
# the device call carries:
#
#   bash bench/gpu_wheels.sh
#   device run, carry [".whl"]:  bash bench/gpu_grpo_step.sh
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
rm -f .whl/*.whl
for spec in trl==1.16.0 datasets==5.2.0 transformers==5.23.0 \
            dill==0.4.0 multiprocess==0.70.18; do
  python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl "$spec"
done
du -sh .whl
ls .whl
