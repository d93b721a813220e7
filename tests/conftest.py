"""Test-wide environment: Ray on loopback only, no usage stats, W&B offline, a private data cache."""

import os

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")  # subprocesses too; see below

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    """One data cache for the whole session (the built-in corpus is generated once)."""
    path = tmp_path_factory.mktemp("cache")
    os.environ["MDLM_CACHE_DIR"] = str(path)
    return path

import torch  # noqa: E402

# One intra-op thread: the test models are small, and with two threads on a 2-core
# machine that is also running Ray workers, every matmul waits a scheduler slice for
# the second thread (measured: 15 ms per 32x32 matmul under load, 0.01 ms with one).
torch.set_num_threads(1)


TOY_WORDS = "the a cat dog sees likes runs big small red blue house tree old new".split()
# A model small enough for tests to train in seconds.
SMALL_MODEL = {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64, "cond_dim": 16, "time_embedding_dim": 16}


# The prologue of a script that must run as the BabyLM pipeline runs exported code: in a fresh
# interpreter with our packages blocked (the editable install would find them from anywhere).
BLOCK_PROJECT = r'''
import importlib.abc, sys

class BlockProject(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("trainer", "sweeps", "search_spaces"):
            raise ImportError(f"{name} is blocked: exported code must run without the training package")
        return None

sys.meta_path.insert(0, BlockProject())
try:
    import trainer  # noqa: F401
except ImportError:
    pass
else:
    raise SystemExit("the training package is importable in the loader process")
'''


def run_without_project(script: str, spec: dict, root, **env) -> tuple[float, str]:
    """Run BLOCK_PROJECT + `script` with `spec` (written to root/spec.json) as argv[1], from an empty
    folder, offline, on one thread, without PYTHONPATH or a Hub token; assert it succeeded and
    return (its seconds, its stderr). `env` adds variables (HF_HOME defaults to root/hf_home)."""
    import json
    import subprocess
    import sys
    import time

    (root / "spec.json").write_text(json.dumps(spec))
    workdir = root / "loader_cwd"
    workdir.mkdir(exist_ok=True)
    child_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HF_TOKEN")}
    child_env.update(HF_HOME=str(root / "hf_home"), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
                     OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", **env)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", BLOCK_PROJECT + script, str(root / "spec.json")], cwd=workdir,
                          env=child_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return time.perf_counter() - start, proc.stderr


def write_toy_corpus(folder, seed=0, train_lines=1500, dev_lines=200):
    """A BabyLM-layout folder of random sentences over a 15-word vocabulary."""
    import random

    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", train_lines), ("dev", dev_lines)):
        lines = [" ".join(rng.choice(TOY_WORDS) for _ in range(rng.randint(4, 12))) + " ." for _ in range(n)]
        (folder / f"toy.{split}").write_text("\n".join(lines) + "\n")
    return folder
