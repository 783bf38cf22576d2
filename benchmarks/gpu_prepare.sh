#!/usr/bin/env bash
# Run HERE (a machine with PyPI), before a GPU check: fills .gpu/ (git-ignored) with what the lent
# GPU machine lacks: wheels of diffusers and importlib_metadata at this machine's versions (its
# image has torch, numpy, safetensors, huggingface_hub and the rest) and a copy of the public IPG
# fixture and checkpoint manifests. Then run benchmarks/gpu_run.sh (and gpu_official_path.sh) there with
# .gpu carried (see benchmarks/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."

version() { python3 -c "import importlib.metadata as m; print(m.version('$1'))"; }

rm -rf .gpu
mkdir -p .gpu/wheels
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform any \
    -d .gpu/wheels "diffusers==$(version diffusers)" "importlib_metadata==$(version importlib_metadata)"
cp -r ../shared/fixtures .gpu/fixtures
cp -r ../shared/data/checkpoint_manifests .gpu/manifests
du -sh .gpu
