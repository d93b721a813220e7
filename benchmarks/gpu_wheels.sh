#!/usr/bin/env bash
# Fill .whl/ (ignored by git) with the wheels the GPU check needs beyond the GPU machine's image.
#
#     bash benchmarks/gpu_wheels.sh            # from the repository root, where pip reaches an index
#
# The machine a GPU can be lent on has Python 3.12, CUDA torch, Triton, transformers, numpy,
# pyarrow, tokenizers, safetensors, tqdm and pyyaml, but no pydantic (trainer/config.py needs it),
# no Ray and no Optuna, and it reaches no package index: what it lacks travels with the working
# tree (`run`'s carry: [".whl"]), 64 MiB in all, and benchmarks/gpu_check.sh installs it there.
#   pydantic, pydantic-core, annotated-types, typing-inspection, typing-extensions:
#       trainer/config.py, at the versions this project's .venv runs (pydantic-core is the one
#       binary wheel: CPython 3.12, manylinux x86_64);
#   filelock: trainer/data/prepare.py passes preserve_lock_file (filelock >= 4.3), newer than the
#       filelock a torch install brings.
# Ray (a wheel of tens of MB, and its own dependencies) and Optuna are left out: the check's sweep part is skipped there with
# the reason "ray is not installed".
set -euo pipefail
cd "$(dirname "$0")/.."
venv_pip=${VENV_PIP:-.venv/bin/pip}
version() {  # the version .venv has of a distribution
    "$venv_pip" show "$1" 2>/dev/null | sed -n 's/^Version: //p'
}
packages=()
for name in pydantic pydantic-core annotated-types typing-inspection typing-extensions filelock; do
    v=$(version "$name")
    if [[ -z "$v" ]]; then
        echo "gpu_wheels: $name is not installed in .venv; cannot pin it" >&2
        exit 1
    fi
    packages+=("$name==$v")
done
rm -rf .whl
mkdir -p .whl
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl "${packages[@]}"
total=$(du -cb .whl/*.whl | tail -1 | cut -f1)
ls -l .whl/*.whl | awk '{print $5, $9}'
echo "gpu_wheels: ${#packages[@]} wheels, $total bytes in .whl/ (the carry limit is 64 MiB = 67108864)"
if (( total > 32 * 1024 * 1024 )); then
    echo "gpu_wheels: over 32 MiB: leave room in the 64 MiB carry for the working tree" >&2
    exit 1
fi
