#!/usr/bin/env bash
# The GPU check, prepared for a lent GPU machine: one command, under 8 minutes, results in OUT_DIR.
#
#     bash benchmarks/gpu_check.sh OUT_DIR [gpu_check.py options]
#
# From the repository's working tree (the project is not installed: PYTHONPATH is the tree). The
# machine lacks pydantic (trainer/config.py) and a new enough filelock, and reaches no package
# index: benchmarks/gpu_wheels.sh fills .whl/ (ignored by git) where an index is reachable, and
# the folder travels with the tree (the device tool's carry: [".whl"]). Here those wheels go to a
# folder of their own, first on PYTHONPATH; nothing is installed into the machine's Python.
# Then benchmarks/gpu_check.py --out OUT_DIR runs (its parts and budgets: its docstring), its
# output in OUT_DIR/gpu_check.log and its summary in OUT_DIR/summary.json.
#
# Exit status: gpu_check.py's (0 every part passed or was skipped with a reason, 1 a part failed,
# 2 GPUs torch cannot use, 3 no GPU), 4 when the wheels cannot be installed, 124 when the hard
# limit below ended it (summary.json then holds the parts finished by then, "complete": false).
set -uo pipefail
if [[ $# -lt 1 ]]; then
    echo "usage: bash benchmarks/gpu_check.sh OUT_DIR [gpu_check.py options]" >&2
    exit 2
fi
out=$1
shift
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
mkdir -p "$out" && out=$(cd "$out" && pwd) || exit 2
python=${PYTHON:-python3}
wheels_dir=${GPU_CHECK_WHEELS:-.whl}
site=${GPU_CHECK_SITE:-/tmp/site}
hard_limit_s=${GPU_CHECK_LIMIT_S:-470}  # 7 min 50 s: the whole run stays under 8 minutes

export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 RAY_USAGE_STATS_ENABLED=0 WANDB_MODE=offline TQDM_DISABLE=1
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
started=$(date +%s)

shopt -s nullglob
wheels=("$wheels_dir"/*.whl)
shopt -u nullglob
if (( ${#wheels[@]} )); then
    mkdir -p "$site"
    if ! "$python" -m pip install -q --disable-pip-version-check --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target "$site" "${wheels[@]}" >"$out/wheels.log" 2>&1; then
        # No pip (or a pip that refuses): a wheel is a zip of importable files; unpack them.
        echo "gpu_check.sh: pip could not install the wheels ($(tail -1 "$out/wheels.log")); unpacking them" >&2
        if ! "$python" - "$site" "${wheels[@]}" >>"$out/wheels.log" 2>&1 <<'PY'
import sys, zipfile
for wheel in sys.argv[2:]:
    zipfile.ZipFile(wheel).extractall(sys.argv[1])
PY
        then
            echo "gpu_check.sh: cannot install the wheels in $wheels_dir (see $out/wheels.log)" >&2
            exit 4
        fi
    fi
    rm -f "$out/wheels.log"
    export PYTHONPATH="$site:$PYTHONPATH"
    echo "gpu_check.sh: ${#wheels[@]} wheels from $wheels_dir in $site ($(( $(date +%s) - started )) s)" >&2
fi

timeout -k 10 "$hard_limit_s" "$python" benchmarks/gpu_check.py --out "$out" "$@" 2>&1 | tee "$out/gpu_check.log"
rc=${PIPESTATUS[0]}
echo "gpu_check.sh: exit $rc after $(( $(date +%s) - started )) s" | tee -a "$out/gpu_check.log" >&2
exit "$rc"
