"""Does bf16 training on this CPU track fp32? The same `tiny` run (same seed, data, masks) in both
precisions, compared at every evaluation.

    python benchmarks/precision_check.py [--steps 200] [--evals 4]

Prints, per evaluation, train_loss and val_nelbo (with its standard error) in fp32 and bf16,
and the difference of val_nelbo in units of its standard error; then the precision
`precision=auto` chooses here and each run's training tokens/s. (The speed ratio measured with
the steps interleaved, which is robust to a shared machine's drift, is
`benchmarks/throughput.py --variants fp32` or `bf16`.)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

common.quiet_local_environment()

import torch  # noqa: E402

from trainer.config import TrainConfig  # noqa: E402
from trainer.loop import train_loop  # noqa: E402
from trainer.precision import cpu_has_native_bf16, resolve_precision  # noqa: E402


def run(precision: str, steps: int, evals: int, data, out: Path) -> list[dict]:
    every = max(1, steps // evals)
    config = TrainConfig(max_steps=steps, eval_every=every, checkpoint_every=steps, precision=precision)
    reports: list[dict] = []
    train_loop(config, data.data_root, out / precision, pairs_dir=data.pairs_dir, show_progress=False,
               report=lambda metrics, _: reports.append(metrics))
    return reports


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--evals", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cache-dir", help="data cache (default: the shared one)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = common.builtin_data(args.cache_dir)
    with tempfile.TemporaryDirectory() as tmp:
        runs = {p: run(p, args.steps, args.evals, data, Path(tmp)) for p in ("fp32", "bf16")}
    rows = []
    for a, b in zip(runs["fp32"], runs["bf16"]):
        se = max(a["val_nelbo_se"], b["val_nelbo_se"])
        rows.append({"step": a["step"], "loss_fp32": a["train_loss"], "loss_bf16": b["train_loss"],
                     "nelbo_fp32": a["val_nelbo"], "nelbo_bf16": b["val_nelbo"], "se": se,
                     "diff_in_se": (b["val_nelbo"] - a["val_nelbo"]) / se,
                     "acc_fp32": a.get("pairs_acc"), "acc_bf16": b.get("pairs_acc")})
    common.print_table(rows, [("step", "step", ""), ("loss_fp32", "train_loss fp32", ".4f"),
                              ("loss_bf16", "train_loss bf16", ".4f"), ("nelbo_fp32", "val_nelbo fp32", ".4f"),
                              ("nelbo_bf16", "val_nelbo bf16", ".4f"), ("se", "se", ".4f"),
                              ("diff_in_se", "bf16-fp32 (se)", "+.2f"), ("acc_fp32", "pairs_acc fp32", ".4f"),
                              ("acc_bf16", "pairs_acc bf16", ".4f")],
                       title=f"tiny, {args.steps} steps, {args.threads} thread(s): fp32 against bf16 autocast")
    speed = {p: runs[p][-1]["train_s"] for p in runs}
    print(f"precision=auto here: {resolve_precision('auto', torch.device('cpu'))} "
          f"(native bf16: {cpu_has_native_bf16()}); training seconds fp32 {speed['fp32']:.1f}, bf16 {speed['bf16']:.1f}")
    common.emit(common.rounded({"benchmark": "precision_check", "machine": common.machine_info(), "rows": rows,
                                "train_s": speed, "auto": resolve_precision("auto", torch.device("cpu"))}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
