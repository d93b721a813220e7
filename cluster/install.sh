#!/usr/bin/env bash
# Set up the project in ./.venv: `bash cluster/install.sh` (add --test for the test extras).
# On a machine without an NVIDIA GPU it pins the CPU build of torch first, so the
# project's torch range does not pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
extras=""
[ "${1:-}" = "--test" ] && extras="[test,hf]"
python3 -m venv .venv
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
if ! command -v nvidia-smi >/dev/null 2>&1; then
  python -m pip install --quiet torch==2.13.0
fi
python -m pip install --quiet -e ".${extras}"
python -c "import torch, ray, optuna, tokenizers, pyarrow; print(f'installed: torch {torch.__version__}, ray {ray.__version__}, optuna {optuna.__version__}')"
