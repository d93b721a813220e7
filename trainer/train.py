"""`python -m trainer.train`: train one config, in this process or across Ray Train workers.

    python -m trainer.train                                   # built-in corpus, tiny preset
    python -m trainer.train --config best_config.json --out runs/final
    python -m trainer.train --workers 2                       # Ray Train, DDP over gloo on CPU
    python -m trainer.train --workers 4 --gpus-per-worker 1   # DDP over NCCL

Both routes run the same `trainer.loop.train_loop`; this file is the distributed entry,
the only place in `trainer/` that imports Ray.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from contextlib import nullcontext
from pathlib import Path

from trainer.cli import ArgumentParser
from trainer.budget import parse_checkpoint_words, parse_word_count
from trainer.config import ConfigError, TrainConfig, apply_overrides, parse_overrides
from trainer.data.sources import default_cache_dir
from trainer.errors import UserError
from trainer.checkpoint import check_resume_compatible
from trainer.plan import plan_run

class ClusterError(UserError):
    """The Ray cluster cannot run what was asked (unreachable, missing resources); one line."""




def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast when a Ray address does not answer (ray.init would retry for a minute)."""
    import socket

    if address in ("auto", "local"):
        return
    target = address.split("://", 1)[-1].rstrip("/")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise ClusterError(f"Ray address {address!r} is not host:port (e.g. 127.0.0.1:6379)")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        raise ClusterError(f"cannot reach the Ray cluster at {address} ({exc.strerror or exc}); "
                           f"start it with `ray start --head` or fix RAY_ADDRESS/--address") from None


def loopback_ray_environment() -> None:
    """Make every Ray process this one starts bind to 127.0.0.1 and stay quiet.

    Without RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, Ray on Linux binds to the interface
    address even when asked for localhost (see ray-verified.md).
    """
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def connect_ray(num_cpus: int | None = None, include_dashboard: bool = False, log_to_driver: bool = True) -> bool:
    """Join the cluster in RAY_ADDRESS (set inside `ray job submit`), else start a local
    Ray on loopback. Returns True when this call started Ray (so the caller stops it).
    `log_to_driver=False` leaves the workers' output in Ray's log files (the dashboard shows
    them) instead of the terminal."""
    loopback_ray_environment()
    import ray

    if ray.is_initialized():
        return False
    if os.environ.get("RAY_ADDRESS"):
        ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=log_to_driver)
        return False
    ray.init(
        num_cpus=num_cpus,
        include_dashboard=include_dashboard,
        dashboard_host="127.0.0.1",
        log_to_driver=log_to_driver,
    )
    return True


def run_worker(loop_config: dict, report, checkpoint=None, device=None) -> None:
    """The one body of every worker: a Ray Train worker (`ray_train_worker`) and a sweep's
    inline trial (sweeps/trial.py) both call it, each with its own `report(metrics,
    checkpoint_dir)` and the checkpoint Ray handed it (None on a fresh start).

    `loop_config` is plain data so it crosses process boundaries: the config's dict, data
    and output folders, an optional `resume_from`, the CPUs reserved, and the sweep's
    objectives (reported as NaN when the run diverges)."""
    import torch

    from trainer.loop import TrainingDiverged, train_loop

    config = TrainConfig.parse(loop_config["config"])
    limit_gpu_memory(float(loop_config.get("gpus_per_worker") or 0.0))
    # One intra-op thread per reserved CPU: more threads than cores makes every matmul
    # wait for a descheduled thread when several workers share a machine.
    torch.set_num_threads(max(1, int(loop_config.get("cpus_per_worker", 1))))
    resume_context = checkpoint.as_directory() if checkpoint else nullcontext(loop_config.get("resume_from"))
    keep = loop_config.get("keep_reported_checkpoints", True)
    # A sweep's trial writes its checkpoints outside its working folder (which Ray may copy to
    # storage as well) and deletes each once reported: Ray's persisted copy is the only one.
    scratch = nullcontext(None) if keep else tempfile.TemporaryDirectory(prefix="mdlm-checkpoints-")
    progress = progress_poster(loop_config.get("progress"))
    with resume_context as resume_from, scratch as checkpoint_root:
        try:
            train_loop(
                config,
                loop_config["data_root"],
                loop_config["out_dir"],
                pairs_dir=loop_config.get("pairs_dir"),
                resume_from=resume_from,
                report=report,
                device=device,
                show_progress=False,
                keep_reported_checkpoints=keep,
                checkpoint_root=checkpoint_root,
                progress=progress,
                progress_every_s=(loop_config.get("progress") or {}).get("every_s", 20.0),
            )
        except TrainingDiverged as exc:
            # Every rank sees the same (all-reduced) loss, so all of them stop here; a
            # restart would only diverge again, so this ends the run with its reason (the
            # searcher records it as failed, the scheduler skips its NaN objectives).
            report(exc.as_metrics(tuple(loop_config.get("objectives", ()))), None)


def limit_gpu_memory(fraction: float) -> bool:
    """A worker given a fraction of a GPU (`--gpus-per-worker 0.25`: four trials share one) keeps
    to that share of its memory, so one trial's peak cannot take the others' (Ray schedules the
    fraction; it does not enforce it). Expandable segments let the allocator grow in place
    instead of fragmenting the share; they apply to allocations from the first one, so this runs
    before the worker touches CUDA. Returns whether a cap was set."""
    if not 0.0 < fraction < 1.0:
        return False
    os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
    import torch

    if not torch.cuda.is_available():
        return False
    torch.cuda.set_per_process_memory_fraction(fraction)
    return True


def progress_poster(target: dict | None):
    """The `progress` callback of a run whose driver listens: `target` names a Ray actor (its
    `post(trial_id, record)` returns the CPU threads this run may use now, or None) and the
    trial. Progress is a courtesy: an absent or slow listener never stops training."""
    if not target:
        return None
    import ray
    import torch

    node_id = ray.get_runtime_context().get_node_id()  # which node's CPUs this run could use
    board = []  # the actor's handle, looked up once it answers

    def post(record: dict) -> None:
        try:
            if not board:
                board.append(ray.get_actor(target["actor"]))
            threads = ray.get(board[0].post.remote(target["trial_id"], {**record, "node_id": node_id}), timeout=5)
        except Exception:  # noqa: BLE001 - the driver went away or is busy: train on (look it up again next time)
            board.clear()
            return
        # Freed CPUs at the end of a sweep: the driver lets the trials still running use them.
        if isinstance(threads, int) and threads >= 1 and threads != torch.get_num_threads():
            torch.set_num_threads(threads)

    return post


def ray_train_worker(loop_config: dict) -> None:
    """Body of each Ray Train worker: `run_worker` reporting through Ray Train."""
    import ray.train
    import ray.train.torch

    def report(metrics: dict, checkpoint_dir) -> None:
        ray_checkpoint = ray.train.Checkpoint.from_directory(str(checkpoint_dir)) if checkpoint_dir else None
        ray.train.report(metrics, checkpoint=ray_checkpoint)

    run_worker(loop_config, report, ray.train.get_checkpoint(), ray.train.torch.get_device())


def build_torch_trainer(
    loop_config: dict,
    *,
    workers: int,
    cpus_per_worker: float,
    gpus_per_worker: float,
    storage_path: str,
    name: str,
    callbacks: list | None = None,
    max_failures: int = 0,
):
    """A TorchTrainer running `ray_train_worker` on `workers` workers (DDP)."""
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    resources = {"CPU": cpus_per_worker}
    if gpus_per_worker:
        resources["GPU"] = gpus_per_worker
    return TorchTrainer(
        ray_train_worker,
        train_loop_config=loop_config,
        scaling_config=ScalingConfig(
            num_workers=workers, use_gpu=gpus_per_worker > 0, resources_per_worker=resources
        ),
        torch_config=TorchConfig(backend="nccl" if gpus_per_worker > 0 else "gloo"),
        run_config=RunConfig(
            name=name,
            storage_path=storage_path,
            callbacks=callbacks or [],
            failure_config=FailureConfig(max_failures=max_failures),
        ),
    )


def build_config(args: argparse.Namespace) -> TrainConfig:
    config = TrainConfig.from_json_file(args.config) if args.config else TrainConfig()
    data = config.as_dict()
    if args.preset and args.preset != config.preset:
        data["preset"], data["model"] = args.preset, None
    for field, value in (("corpus", args.corpus), ("pairs", args.pairs), ("eval_data", args.eval_data),
                         ("max_steps", args.max_steps), ("seed", args.seed)):
        if value is not None:
            data[field] = str(Path(value).resolve()) if field in ("corpus", "pairs", "eval_data") else value
    if args.max_words is not None:
        data["max_words"] = parse_word_count(args.max_words)
    if args.checkpoint_words is not None:
        data["checkpoint_words"] = parse_checkpoint_words(args.checkpoint_words)
    apply_overrides(data, parse_overrides(args.set or []))
    return TrainConfig.parse(data)


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m trainer.train", description=__doc__.split("\n")[0])
    parser.add_argument("--config", help="a TrainConfig JSON (or an exported best_config.json)")
    parser.add_argument("--preset", choices=["tiny", "small", "base"], help="model size (resets the architecture)")
    parser.add_argument("--corpus", help="folder of *.train/*.dev or *.txt files (default: built-in corpus)")
    parser.add_argument("--pairs", help="folder of BLiMP-style *.jsonl minimal pairs")
    parser.add_argument("--eval-data", help="BabyLM task files laid out like the pipeline's evaluation_data/full_eval "
                        "(or fast_eval): each task found is scored at every evaluation (<task>_acc, wug_adj_rho, wug_past_rho, "
                        "babylm_score)")
    parser.add_argument("--max-steps", type=int, help="optimizer steps")
    parser.add_argument("--max-words", help="budget in words of training text seen, e.g. 10M (replaces --max-steps)")
    parser.add_argument("--checkpoint-words", help="'babylm' (every 1M to 10M, 10M to 100M, 100M to 1B) or a list "
                        "like 1M,2M,5M: export a model folder chck_<N>M at each")
    parser.add_argument("--seed", type=int, help="training seed (default: the config's)")
    parser.add_argument("--set", action="append", metavar="FIELD=VALUE", help="override any config field")
    parser.add_argument("--out", default="runs/train", help="output folder (metrics.jsonl, checkpoints)")
    parser.add_argument("--resume", help="checkpoint folder to continue from")
    parser.add_argument("--workers", type=int, default=1, help="Ray Train workers (1 = this process)")
    parser.add_argument("--cpus-per-worker", type=float, default=1.0, help="CPUs each worker reserves")
    parser.add_argument("--gpus-per-worker", type=float, default=0.0, help="GPUs each worker reserves")
    parser.add_argument("--cache-dir", help=f"data cache (default: {default_cache_dir()})")
    parser.add_argument("--threads", type=int, help="torch intra-op threads for a single-process run (default: all cores; "
                        "use 1 when other work shares the CPU: a descheduled second thread stalls every matmul)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    try:
        if args.workers < 1:
            raise ConfigError("--workers must be at least 1")
        if args.gpus_per_worker < 0 or args.cpus_per_worker <= 0:
            raise ConfigError("--gpus-per-worker must be >= 0 and --cpus-per-worker > 0")
        config = build_config(args)
        if args.resume:
            check_resume_compatible(args.resume, config)
        distributed = args.workers > 1 or args.gpus_per_worker > 0
        if distributed and os.environ.get("RAY_ADDRESS"):
            check_reachable(os.environ["RAY_ADDRESS"])
        plan = plan_run(config, args.cache_dir, show_progress=not args.no_progress)  # refuses over-long budgets
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    out_dir = Path(args.out).resolve()
    print(
        f"model: preset {plan.config.preset}, {plan.parameters:,} parameters, vocab {plan.vocab_size}; "
        f"data: {plan.data_root}; budget: {plan.total_steps} steps",
        file=sys.stderr,
    )
    loop_config = {
        **plan.loop_config(),
        "out_dir": str(out_dir),
        "resume_from": str(Path(args.resume).resolve()) if args.resume else None,
        "cpus_per_worker": args.cpus_per_worker,
        "gpus_per_worker": args.gpus_per_worker,
    }

    if args.workers == 1 and args.gpus_per_worker == 0:
        import torch

        from trainer.loop import train_loop

        if args.threads:
            torch.set_num_threads(args.threads)

        from trainer.loop import TrainingDiverged

        try:
            metrics = train_loop(
                **plan.loop_arguments(),
                out_dir=out_dir,
                resume_from=args.resume,
                show_progress=not args.no_progress,
            )
        except TrainingDiverged as exc:
            print(f"error: training diverged: {exc}; lower lr or enable grad_clip", file=sys.stderr)
            return 1
    else:
        started = connect_ray()
        try:
            import ray

            total = ray.cluster_resources()
            for kind, need in (("CPU", args.cpus_per_worker * args.workers), ("GPU", args.gpus_per_worker * args.workers)):
                if need and total.get(kind, 0) < need:
                    print(f"error: {args.workers} worker(s) need {need:g} {kind}(s) but the Ray cluster has "
                          f"{total.get(kind, 0):g}", file=sys.stderr)
                    return 2
            trainer = build_torch_trainer(
                loop_config,
                workers=args.workers,
                cpus_per_worker=args.cpus_per_worker,
                gpus_per_worker=args.gpus_per_worker,
                storage_path=str(out_dir / "ray"),
                name="train",
            )
            result = trainer.fit()
            metrics = dict(result.metrics or {})
        finally:
            if started:
                import ray

                ray.shutdown()
    from trainer.metrics import summary_names

    summary = {k: metrics.get(k) for k in ("step", "tokens", "words_seen", *summary_names(), "tokens_per_s")}
    print(json.dumps({"out": str(out_dir), **summary}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
