"""A run's word checkpoints as revisions of one Hugging Face model repository: offline, or pushed.

The BabyLM pipeline selects a checkpoint with `--revision_name chck_1M`, which transformers reads as
a revision (a branch) of a Hub repository; a local folder ignores it. `write_hub_cache` lays the
run's export folders out as the Hugging Face Hub cache entry of a repository name, so that with
`HF_HUB_OFFLINE=1` `from_pretrained("<org>/<name>", revision="chck_4M")` resolves every checkpoint
on this machine, and nothing is uploaded:

    <cache>/models--<org>--<name>/
        blobs/<sha256 or git sha1>        every distinct file once (shared code and tokenizer too)
        snapshots/<commit>/<file>         relative symlinks to the blobs (copies where links fail)
        refs/<revision>                   the 40-hex commit of that revision's snapshot, no newline

as huggingface_hub's own downloads leave it: a blob is named by its Hub etag (the sha256 of an LFS
file, the git blob sha1 of a regular one), and `scan_cache_dir` reads the entry without warnings.
The commit is a sha1 over the snapshot's (path, blob) list: the same files give the same commit, and
a changed file (code included) a new one, so transformers' module cache, keyed by commit, never
serves stale code. The entry is rebuilt whole beside the target and renamed into place; an existing
entry is replaced only when it holds models of this trainer.

Revisions: `chck_<N>M` from the run folder's `chck_*` exports, and `main` = the final model.
`push_to_hub` uploads the same revisions as branches of a Hub repository with huggingface_hub,
refusing (one line, before any work) when no login token is stored.

    python -m trainer.hub runs/final/<sweep> --hub-cache <org>/<name>     # a finished final.py run
    python -m trainer.hub runs/final/<sweep> --push-to-hub <org>/<name>

Pure file work (no torch); huggingface_hub is imported only to push.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import sys
from pathlib import Path

from trainer.errors import UserError

__all__ = [
    "HubError", "checkpoint_revisions", "default_hub_cache", "evaluation_commands", "find_revisions",
    "main", "parse_repo_id", "push_to_hub", "repo_folder", "require_login", "write_hub_cache",
]

MODEL_TYPE = "mdlm_diffusion"  # trainer.export.MODEL_TYPE (kept import-free of torch)
MAIN = "main"
CHECKPOINT_PREFIX = "chck_"
# Files the Hub stores with LFS (its default .gitattributes patterns that an export can hold) and
# any file over 10 MB: their etag (the blob's name in the cache) is the sha256 of the content.
LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".onnx", ".pkl", ".npy", ".npz",
                ".zip", ".gz", ".tar", ".zst", ".arrow", ".parquet", ".model")
LFS_MIN_BYTES = 10 * 1024 * 1024
_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?"
_REPO_ID = re.compile(rf"({_NAME})/({_NAME})")
_REVISION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
_COMMIT = re.compile(r"[0-9a-f]{40}")
_CHECKPOINT = re.compile(r"chck_(\d+)([MKW])")
_UNIT = {"W": 1, "K": 1_000, "M": 1_000_000}


class HubError(UserError):
    """The cache entry or upload cannot be made from these inputs; one line."""


# --------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------


def parse_repo_id(repo_id: str) -> tuple[str, str]:
    """'<org>/<name>' -> (org, name), with the Hub's rules (letters, digits, '-', '_', '.'; no
    '--' or '..'; at most 96 characters each) and no dot in the name: the BabyLM pipeline names its
    results folder after it."""
    match = _REPO_ID.fullmatch(str(repo_id))
    if not match or "--" in repo_id or ".." in repo_id or repo_id.endswith(".git"):
        raise HubError(
            f"{repo_id!r} is not a Hub repository name: use <org>/<name> with letters, digits, '-', '_' "
            f"(no '--', at most 96 characters each)"
        )
    org, name = match.groups()
    if "." in name:
        raise HubError(f"repository name '{name}' contains a dot; the BabyLM pipeline needs names without dots")
    return org, name


def repo_folder(repo_id: str) -> str:
    """The cache entry's folder name: models--<org>--<name>."""
    org, name = parse_repo_id(repo_id)
    return f"models--{org}--{name}"


def default_hub_cache() -> Path:
    """huggingface_hub's cache folder, by its rules, read now: $HF_HUB_CACHE, else
    $HUGGINGFACE_HUB_CACHE, else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub
    (~/.cache/huggingface/hub)."""
    home = os.getenv("HF_HOME") or os.path.join(os.getenv("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface")
    path = os.getenv("HF_HUB_CACHE") or os.getenv("HUGGINGFACE_HUB_CACHE") or os.path.join(os.path.expanduser(home), "hub")
    return Path(os.path.expandvars(os.path.expanduser(path)))


def _words(name: str) -> int:
    match = _CHECKPOINT.fullmatch(name)
    return int(match.group(1)) * _UNIT[match.group(2)] if match else sys.maxsize


def checkpoint_revisions(run_dir: Path) -> dict[str, Path]:
    """The run folder's word-checkpoint exports (`chck_*` holding a config.json), by words seen."""
    found = [p for p in Path(run_dir).glob(f"{CHECKPOINT_PREFIX}*") if p.is_dir() and (p / "config.json").is_file()]
    return {p.name: p for p in sorted(found, key=lambda p: (_words(p.name), p.name))}


def find_revisions(run_dir: Path, final_model: Path) -> dict[str, Path]:
    """{chck_<N>M: its export, ..., main: the final model}."""
    revisions = checkpoint_revisions(run_dir)
    revisions[MAIN] = Path(final_model)
    return revisions


def _check_revisions(revisions: dict[str, Path]) -> dict[str, Path]:
    if not revisions:
        raise HubError("no revisions to write: the run has no chck_* exports and no final model")
    checked = {}
    for name, folder in revisions.items():
        if not _REVISION.fullmatch(name) or _COMMIT.fullmatch(name) or name.endswith(".lock"):
            raise HubError(f"{name!r} cannot be a revision name (letters, digits, '-', '_', '.'; not a commit hash)")
        folder = Path(folder)
        if not (folder / "config.json").is_file():
            raise HubError(f"revision {name}: {folder} is not a model folder (no config.json)")
        checked[name] = folder
    return checked


# --------------------------------------------------------------------------------------
# The cache entry
# --------------------------------------------------------------------------------------


def _is_lfs(path: Path) -> bool:
    return path.name.endswith(LFS_SUFFIXES) or path.stat().st_size > LFS_MIN_BYTES


def blob_id(path: Path) -> str:
    """The file's Hub etag: sha256 of an LFS file, else the git blob sha1 ('blob <size>\\0' + content)."""
    if _is_lfs(path):
        digest = hashlib.sha256()
    else:
        digest = hashlib.sha1()
        digest.update(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _snapshot_files(folder: Path) -> dict[str, Path]:
    """Relative POSIX path -> file, every regular file under the folder (no dot-folders)."""
    files = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        files[relative.as_posix()] = path
    if not files:
        raise HubError(f"{folder} holds no files")
    return files


def commit_id(tree: dict[str, str]) -> str:
    """A 40-hex commit for a snapshot, from its sorted (path, blob) list alone."""
    digest = hashlib.sha1(b"mdlm-sweeps hub cache snapshot v1\n")
    for relative in sorted(tree):
        digest.update(f"{relative}\0{tree[relative]}\n".encode())
    return digest.hexdigest()


def _link(blob: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.symlink(os.path.relpath(blob, target.parent), target)
    except OSError:  # no symlinks here (e.g. Windows without the privilege): huggingface_hub copies too
        shutil.copyfile(blob, target)


def _is_ours(entry: Path) -> bool:
    """Every snapshot in the entry is a model of this trainer (so replacing it loses nothing else)."""
    snapshots = [p for p in (entry / "snapshots").glob("*") if p.is_dir()] if (entry / "snapshots").is_dir() else []
    if not snapshots:
        return not any(entry.iterdir())
    for snapshot in snapshots:
        try:
            if json.loads((snapshot / "config.json").read_text()).get("model_type") != MODEL_TYPE:
                return False
        except (OSError, ValueError, AttributeError):
            return False
    return True


def write_hub_cache(repo_id: str, revisions: dict[str, Path], cache_dir: str | Path | None = None) -> Path:
    """Lay `revisions` ({name: model folder}) out as the Hub cache entry of `repo_id`; its path.

    cache_dir: the Hub cache (default: `default_hub_cache()`). Raises HubError (one line, nothing
    written) for a bad name or folder, or an existing entry that holds another kind of model.
    """
    org, name = parse_repo_id(repo_id)
    revisions = _check_revisions(revisions)
    cache_dir = Path(cache_dir).expanduser().absolute() if cache_dir else default_hub_cache().absolute()
    entry = cache_dir / f"models--{org}--{name}"
    if entry.exists() and not entry.is_dir():
        raise HubError(f"{entry} exists and is not a folder")
    if entry.is_dir() and not _is_ours(entry):
        raise HubError(f"{entry} holds another model's cache entry; pick another repository name or --hub-cache-dir")
    trees = {rev: {rel: (path, blob_id(path)) for rel, path in _snapshot_files(folder).items()} for rev, folder in revisions.items()}

    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache_dir / f".mdlm-hub-tmp-{os.getpid()}-{org}-{name}"  # no '--': not a cache entry to scanners
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for folder in ("blobs", "snapshots", "refs"):
            (tmp / folder).mkdir(parents=True)
        for rev, tree in trees.items():
            commit = commit_id({rel: blob for rel, (_, blob) in tree.items()})
            for rel, (source, blob) in tree.items():
                blob_path = tmp / "blobs" / blob
                if not blob_path.exists():
                    shutil.copyfile(source, blob_path)
                pointer = tmp / "snapshots" / commit / rel
                if not pointer.exists():
                    _link(blob_path, pointer)
            (tmp / "refs" / rev).write_text(commit)  # as huggingface_hub writes a ref: the hash alone
        if entry.exists():
            old = cache_dir / f".mdlm-hub-old-{os.getpid()}-{org}-{name}"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(entry, old)
            os.replace(tmp, entry)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, entry)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return entry


# --------------------------------------------------------------------------------------
# Upload
# --------------------------------------------------------------------------------------


def require_login() -> str:
    """The stored Hugging Face token, read locally (no network); HubError when there is none."""
    try:
        from huggingface_hub import get_token
    except ImportError:
        raise HubError("--push-to-hub needs huggingface_hub (pip install -e '.[hf]')") from None
    token = get_token()
    if not token:
        raise HubError("--push-to-hub needs a Hugging Face login and none is stored: run `huggingface-cli login` (or set HF_TOKEN), then retry")
    return token


def push_to_hub(repo_id: str, revisions: dict[str, Path], *, private: bool = False, token: str | None = None) -> str:
    """Upload `revisions` as branches of the Hub repository `repo_id` (created if missing): `main`
    first, then one branch per checkpoint, each holding exactly its folder's files. The URL."""
    parse_repo_id(repo_id)
    revisions = _check_revisions(revisions)
    token = token or require_login()
    from huggingface_hub import HfApi, constants

    if constants.HF_HUB_OFFLINE:
        raise HubError("--push-to-hub with HF_HUB_OFFLINE set: unset it to upload")
    api = HfApi(token=token)
    url = api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    order = sorted(revisions, key=lambda rev: (rev != MAIN, _words(rev), rev))  # main first: branches start from it
    for rev in order:
        if rev != MAIN:
            api.create_branch(repo_id, branch=rev, repo_type="model", exist_ok=True)
        # delete_patterns="*": files the folder lacks go (the upload's own files and .gitattributes stay).
        api.upload_folder(repo_id=repo_id, folder_path=str(revisions[rev]), revision=rev, repo_type="model",
                          commit_message=f"{rev}: upload with mdlm-sweeps", delete_patterns="*")
        print(f"pushed {rev} -> {repo_id}@{rev}", flush=True)
    return str(url)


# --------------------------------------------------------------------------------------
# What to tell the user
# --------------------------------------------------------------------------------------


def evaluation_commands(repo_id: str, revisions, cache_dir: Path | None = None) -> list[str]:
    """The official pipeline's commands (run from its root) for each revision: fast evaluation for the
    checkpoints, full for `main`, with the cache entry resolved offline."""
    custom = cache_dir is not None and Path(cache_dir).absolute() != default_hub_cache().absolute()
    env = (f"HF_HUB_CACHE={Path(cache_dir).absolute()} " if custom else "") + "HF_HUB_OFFLINE=1"
    lines = []
    for rev in revisions:
        data = "evaluation_data/full_eval/blimp_filtered" if rev == MAIN else "evaluation_data/fast_eval/blimp_fast"
        lines.append(f"{env} python -m evaluation_pipeline.sentence_zero_shot.run --model_path_or_name {repo_id} "
                     f"--revision_name {rev} --backend mlm --task blimp --data_path {data} --save_predictions")
    return lines


def publish(repo_id_cache: str | None, repo_id_push: str | None, revisions: dict[str, Path],
            cache_dir: str | Path | None = None) -> None:
    """What the CLIs run after exporting: the cache entry and/or the upload, and how to evaluate."""
    if repo_id_cache:
        entry = write_hub_cache(repo_id_cache, revisions, cache_dir)
        print(f"hub cache entry: {entry}  (revisions: {', '.join(revisions)})")
        print("evaluate a revision with the BabyLM pipeline, offline, from its root:")
        for line in evaluation_commands(repo_id_cache, revisions, entry.parent):
            print(f"  {line}")
    if repo_id_push:
        url = push_to_hub(repo_id_push, revisions)
        print(f"pushed to {url} (branches: {', '.join(revisions)}); evaluate with "
              f"--model_path_or_name {repo_id_push} --revision_name <branch>")


def check_publish_flags(repo_id_cache: str | None, repo_id_push: str | None) -> None:
    """Everything about --hub-cache / --push-to-hub that can fail before training or exporting."""
    for repo_id in (repo_id_cache, repo_id_push):
        if repo_id:
            parse_repo_id(repo_id)
    if repo_id_push:
        require_login()


def add_publish_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hub-cache", metavar="ORG/NAME",
                        help="also lay the chck_* exports and the final model out as revisions of ORG/NAME in the "
                             "Hugging Face cache (HF_HUB_OFFLINE=1 from_pretrained(ORG/NAME, revision='chck_1M'))")
    parser.add_argument("--hub-cache-dir", metavar="DIR",
                        help="the Hugging Face cache for --hub-cache (default: $HF_HUB_CACHE, else $HF_HOME/hub, "
                             "else ~/.cache/huggingface/hub)")
    parser.add_argument("--push-to-hub", metavar="ORG/NAME",
                        help="upload the same revisions as branches of ORG/NAME (needs `huggingface-cli login`)")


def build_parser() -> argparse.ArgumentParser:
    from trainer.cli import ArgumentParser

    parser = ArgumentParser(prog="python -m trainer.hub", description=__doc__.split("\n")[0])
    parser.add_argument("run", help="a sweeps/final.py output folder (train/chck_* and model/), or a run folder with chck_*")
    parser.add_argument("--main", help="the final model folder (default: <run>/model)")
    add_publish_flags(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not (args.hub_cache or args.push_to_hub):
        parser.error("pass --hub-cache ORG/NAME and/or --push-to-hub ORG/NAME")
    try:
        check_publish_flags(args.hub_cache, args.push_to_hub)
        run = Path(args.run)
        if not run.is_dir():
            raise HubError(f"{run} is not a folder")
        checkpoints = run / "train" if not checkpoint_revisions(run) and (run / "train").is_dir() else run
        final = Path(args.main) if args.main else run / "model"
        if not (final / "config.json").is_file():
            raise HubError(f"no final model at {final} (pass --main <model folder>)")
        publish(args.hub_cache, args.push_to_hub, find_revisions(checkpoints, final), args.hub_cache_dir)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc.strerror or exc}: {exc.filename or args.run}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
