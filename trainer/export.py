"""Export a trained model as a Hugging Face model folder that the BabyLM evaluation pipeline loads.

    python -m trainer.export runs/final runs/final_hf                     # a run folder: its latest checkpoint
    python -m trainer.export runs/final/checkpoints/step_00000300 out     # one checkpoint (folder or state.pt)
    python -m trainer.export runs/final out --weights raw --tokenizer <prepared data folder or tokenizer.json>
    python -m trainer.export runs/final out --hub-cache <org>/<name>    # + revisions in the HF cache
    python -m trainer.export runs/final out --push-to-hub <org>/<name>  # + revisions as Hub branches

With `--hub-cache` / `--push-to-hub` (trainer/hub.py) the run folder's `chck_<N>M` exports become
revisions of one repository and the new export its `main`: laid out offline in the Hugging Face
cache (`--hub-cache-dir`, default $HF_HUB_CACHE), or uploaded as branches when logged in.

The tokenizer is the run's: `--tokenizer`, else the data folder the run recorded (the checkpoint's
`data_root`, the run folder's data.json or a sweep's sweep.json above the checkpoint), else the
only prepared folder in the data cache (`--cache-dir`) built from the run's corpus and settings.

The folder loads with transformers 4.51.3 (the pipeline's pin) and `trust_remote_code=True`:
    config.json               model_type "mdlm_diffusion", auto_map (AutoConfig / AutoModel /
                              AutoModelForMaskedLM), sizes, and the evaluation time-conditioning policy
    configuration_mdlm.py     copied from trainer/hf_model/ (imports only transformers)
    modeling_mdlm.py          copied from trainer/hf_model/: a thin transformers wrapper (time policy,
                              padding mask, SUBS logits, output classes, weight tying) around the network,
                              which it imports relatively (`from .mdlm_model import ...`), so that
                              transformers' remote-code loader copies mdlm_model.py along with it
    mdlm_model.py             trainer/model.py byte for byte (it imports only torch and the standard
                              library): the exported model runs the trainer's own network code
    model.safetensors         EMA weights by default, written with the safetensors library, named
                              `model.network.<the trainer's parameter name>`; the tied output matrix is
                              stored once (transformers re-ties it)
    tokenizer.json            the run's BPE tokenizer plus a post-processor adding <s> first, as the
                              trainer encodes a sentence for pair scoring ([BOS] + ids, no EOS)
    tokenizer_config.json     PreTrainedTokenizerFast, special tokens, model_max_length = seq_length
    special_tokens_map.json
    README.md                 model card: training config and provenance

Written into a temporary folder beside the target and renamed into place, so a reader never sees a
half-written export. transformers is not needed here (safetensors writes the weights file).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from tokenizers import processors

from trainer.checkpoint import checkpoint_file as find_checkpoint_file
from trainer.checkpoint import load_checkpoint
from trainer.config import TrainConfig
from trainer.data.prepare import MANIFEST_FILE, TOKENIZER_FILE, open_prepared
from trainer.errors import UserError
from trainer.data.tokenizer import (
    BOS_ID,
    BOS_TOKEN,
    EOS_ID,
    EOS_TOKEN,
    MASK_ID,
    MASK_TOKEN,
    NUM_SPECIAL_TOKENS,
    PAD_ID,
    PAD_TOKEN,
    SPECIAL_TOKENS,
    UNK_TOKEN,
    load_tokenizer,
)
from trainer.model import LAYER_NORM_EPS, build_model

__all__ = ["ExportError", "export_model", "main"]

MODEL_TYPE = "mdlm_diffusion"
TEMPLATE_DIR = Path(__file__).with_name("hf_model")
TEMPLATE_FILES = ("configuration_mdlm.py", "modeling_mdlm.py")
# The network itself: trainer/model.py, shipped verbatim under the name modeling_mdlm.py imports.
NETWORK_SOURCE = Path(__file__).with_name("model.py")
NETWORK_FILE = "mdlm_model.py"
NETWORK_PREFIX = "model.network."  # where MdlmModel / MdlmForMaskedLM hold the DiffusionLM
WEIGHTS_FILE = "model.safetensors"
TIED_KEY = "classifier.decoder.weight"  # same tensor as embedding.word_embedding.weight


class ExportError(UserError):
    """The export cannot be made from these inputs; the message is one line."""


# --------------------------------------------------------------------------------------
# The folder's files
# --------------------------------------------------------------------------------------


def hf_config(config: TrainConfig, vocab_size: int, dtype: torch.dtype) -> dict:
    """config.json: the trainer's ModelConfig under transformers' field names."""
    m = config.model
    return {
        "architectures": ["MdlmForMaskedLM"],
        "auto_map": {
            "AutoConfig": "configuration_mdlm.MdlmConfig",
            "AutoModel": "modeling_mdlm.MdlmModel",
            "AutoModelForMaskedLM": "modeling_mdlm.MdlmForMaskedLM",
        },
        "model_type": MODEL_TYPE,
        "vocab_size": vocab_size,
        "hidden_size": m.hidden_size,
        "num_hidden_layers": m.num_layers,
        "num_attention_heads": m.num_heads,
        "intermediate_size": m.intermediate_size,
        "position_bucket_size": m.position_bucket_size,
        "max_position_embeddings": m.max_position,
        "hidden_dropout_prob": m.dropout,
        "attention_probs_dropout_prob": m.attention_dropout,
        "layer_norm_eps": LAYER_NORM_EPS,
        "time_conditioning": m.time_conditioning,
        "cond_dim": m.cond_dim,
        "time_embedding_dim": m.time_embedding_dim,
        "time_input_scale": m.time_input_scale,
        # The pipeline passes no time: record what the model conditions on (an unconditioned
        # model has nothing to condition, so it says "off" whatever the training config said).
        "eval_time_conditioning": config.eval_time_conditioning if m.time_conditioning else "off",
        "eval_fixed_rate": config.eval_fixed_rate,
        "num_special_tokens": NUM_SPECIAL_TOKENS,
        "mask_token_id": MASK_ID,
        "suppress_special_logits": True,  # the trainer scores pairs with SUBS logits
        "pad_token_id": PAD_ID,
        "bos_token_id": BOS_ID,
        "eos_token_id": EOS_ID,
        "tie_word_embeddings": True,
        "torch_dtype": str(dtype).removeprefix("torch."),
    }


def hf_state_dict(model_state: dict, config: TrainConfig) -> tuple[dict, int]:
    """DiffusionLM state dict -> MdlmForMaskedLM names (`model.network.` + the trainer's), and the vocab size.

    Checked against a DiffusionLM built on the meta device (no memory), so a state dict of
    another architecture fails here with its first differing key instead of in transformers.
    """
    if "embedding.word_embedding.weight" not in model_state:
        raise ExportError("the weights are not a DiffusionLM state dict (no embedding.word_embedding.weight)")
    vocab_size = model_state["embedding.word_embedding.weight"].shape[0]
    with torch.device("meta"):
        expected = build_model(config.model, vocab_size).state_dict()
    for name, tensor in expected.items():
        if name not in model_state:
            raise ExportError(f"the weights lack '{name}' that the config's architecture has")
        if tuple(model_state[name].shape) != tuple(tensor.shape):
            raise ExportError(f"'{name}' has shape {tuple(model_state[name].shape)}, the config says {tuple(tensor.shape)}")
    extra = sorted(set(model_state) - set(expected))
    if extra:
        raise ExportError(f"the weights have '{extra[0]}' that the config's architecture lacks")
    if not torch.equal(model_state[TIED_KEY], model_state["embedding.word_embedding.weight"]):
        raise ExportError("the output projection is not tied to the word embedding")
    # The tied matrix is stored once (safetensors refuses shared tensors); transformers re-ties it.
    renamed = {f"{NETWORK_PREFIX}{name}": tensor for name, tensor in model_state.items() if name != TIED_KEY}
    return renamed, vocab_size


def write_safetensors(tensors: dict, path: Path) -> None:
    """model.safetensors via the safetensors library, with the format=pt metadata transformers requires."""
    save_file({name: tensor.detach().to("cpu").contiguous() for name, tensor in tensors.items()}, str(path), metadata={"format": "pt"})


def tokenizer_files(tokenizer_path: Path, vocab_size: int, seq_length: int) -> dict[str, str]:
    """tokenizer.json, tokenizer_config.json and special_tokens_map.json, as text."""
    path = Path(tokenizer_path)
    if path.is_dir():
        path = path / TOKENIZER_FILE
    if not path.is_file():
        raise ExportError(f"no tokenizer at {tokenizer_path} (expected a tokenizer.json or a prepared data folder)")
    try:
        tokenizer = load_tokenizer(path)
    except Exception as exc:  # a foreign or damaged file: report it on one line
        raise ExportError(f"{path} is not this project's tokenizer ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    if tokenizer.get_vocab_size(with_added_tokens=True) != vocab_size:
        raise ExportError(
            f"tokenizer {path} has {tokenizer.get_vocab_size(with_added_tokens=True)} tokens but the model has "
            f"{vocab_size} embeddings: not this run's tokenizer"
        )
    # The trainer scores a sentence as [BOS] + ids (no EOS); a fast tokenizer adds specials
    # through its post-processor, and <s> first is also the CLS-like token GLUE reads at [:, 0].
    # A pair gets </s> between the parts: the separator the packed training stream uses.
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS_TOKEN} $A",
        pair=f"{BOS_TOKEN} $A {EOS_TOKEN} $B:1",
        special_tokens=[(BOS_TOKEN, BOS_ID), (EOS_TOKEN, EOS_ID)],
    )
    data = json.loads(tokenizer.to_str())
    for token in data["added_tokens"]:
        if token["content"] == MASK_TOKEN:
            # "word <mask>" -> [Ġword, <mask>], not [Ġword, Ġ, <mask>]: the mask absorbs the space
            # before it, as a masked word-initial token ("Ġnext") would in training.
            token["lstrip"] = True
    added = {
        str(token["id"]): {key: token[key] for key in ("content", "lstrip", "normalized", "rstrip", "single_word", "special")}
        for token in data["added_tokens"]
    }
    special_map = {
        "bos_token": BOS_TOKEN,
        "eos_token": EOS_TOKEN,
        "unk_token": UNK_TOKEN,
        "pad_token": PAD_TOKEN,
        "mask_token": MASK_TOKEN,
        "cls_token": BOS_TOKEN,
        "sep_token": EOS_TOKEN,
        "additional_special_tokens": SPECIAL_TOKENS[5:],
    }
    tokenizer_config = {
        # A tokenizer saved by transformers >= 5 records a class the pipeline's 4.51.3 cannot load.
        "tokenizer_class": "PreTrainedTokenizerFast",
        **special_map,
        "added_tokens_decoder": added,
        "model_max_length": seq_length,
        # PreTrainedTokenizerFast rewrites the ByteLevel pre-tokenizer's add_prefix_space to this
        # value (default False), which would split a sentence's first word differently ("T" "he").
        "add_prefix_space": bool((data.get("pre_tokenizer") or {}).get("add_prefix_space", False)),
        # No token_type_ids: the model has no segment embedding (it would ignore them anyway).
        "model_input_names": ["input_ids", "attention_mask"],
        "padding_side": "right",
        "truncation_side": "right",
        "clean_up_tokenization_spaces": False,
    }
    return {
        "tokenizer.json": json.dumps(data, ensure_ascii=False, indent=2),
        "tokenizer_config.json": json.dumps(tokenizer_config, indent=2),
        "special_tokens_map.json": json.dumps(special_map, indent=2),
    }


def model_card(config: TrainConfig, model_config: dict, provenance: dict, num_parameters: int) -> str:
    policy = model_config["eval_time_conditioning"]
    policy_text = {
        "mask_fraction": "the fraction of `<mask>` tokens among the row's real (non-special) tokens, "
        "masks included, as in training (0 when the input has no mask)",
        "fixed": f"a fixed mask rate of {model_config['eval_fixed_rate']} for every row",
        "off": "nothing: the AdaLN modulation is bypassed (gates 1, no shift or scale)",
    }[policy]
    return f"""---
library_name: transformers
pipeline_tag: fill-mask
tags: [masked-diffusion, mdlm, ltg-bert, babylm]
---

# Masked diffusion language model (MDLM, LTG-BERT encoder)

A bidirectional LTG-BERT encoder trained as a masked diffusion denoiser, with AdaLN-Zero time
conditioning{"" if model_config["time_conditioning"] else " (off in this model)"}; {num_parameters:,} parameters, vocabulary {model_config["vocab_size"]},
trained on sequences of {config.seq_length} tokens.

```python
from transformers import AutoModelForMaskedLM, AutoTokenizer
tokenizer = AutoTokenizer.from_pretrained(path)
model = AutoModelForMaskedLM.from_pretrained(path, trust_remote_code=True)
logits = model(**tokenizer(["The cat <mask> ."], return_tensors="pt")).logits  # (B, T, V), not shifted
```

- No time is passed to `forward`; the model conditions on {policy_text}
  (`eval_time_conditioning = "{policy}"` in config.json).
- The tokenizer puts `<s>` first (the trainer scores `[<s>] + tokens`, without `</s>`);
  `<mask>` is one token. Special-token logits are set to the float32 minimum (they are never targets).
- BabyLM pipeline (zero-shot): `--backend mlm`, not `mntp` (the logits are aligned with the input).

## Training configuration

```json
{config.to_json()}
```

## Provenance

```json
{json.dumps(provenance, indent=2, default=str)}
```
"""


# --------------------------------------------------------------------------------------
# The export
# --------------------------------------------------------------------------------------


def _is_export(folder: Path) -> bool:
    try:
        return json.loads((folder / "config.json").read_text()).get("model_type") == MODEL_TYPE
    except (OSError, ValueError, AttributeError):
        return False


def check_target(out_dir: Path, overwrite: bool) -> None:
    """Refuse a target that would be lost or that the pipeline handles badly; one-line errors."""
    if "." in out_dir.name:
        # The pipeline names its results folder after the model folder; keep dots out of it.
        raise ExportError(f"export folder name '{out_dir.name}' contains a dot; the BabyLM pipeline needs names without dots")
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportError(f"{out_dir} exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not overwrite:
            raise ExportError(f"{out_dir} exists and is not empty; pass overwrite (--overwrite) to replace it")
        if not _is_export(out_dir):
            raise ExportError(f"{out_dir} is not empty and is not a model export; refusing to replace it")


def export_model(
    model_state: dict,
    config: TrainConfig,
    tokenizer_path: str | Path,
    out_dir: str | Path,
    provenance: dict | None = None,
    *,
    overwrite: bool = False,
) -> Path:
    """Write the Hugging Face folder for a DiffusionLM state dict (normally the EMA weights).

    tokenizer_path: the run's tokenizer.json, or its prepared data folder. provenance: any
    JSON-able dict (sweep, trial, data hash, code version, seed, ...), shown in README.md.
    Raises ExportError (one line) before writing anything when an input is wrong; refuses a
    non-empty `out_dir` unless `overwrite`, and then only replaces a previous export.
    """
    out_dir = Path(out_dir).absolute()
    check_target(out_dir, overwrite)
    if Path(tokenizer_path).absolute().is_relative_to(out_dir):
        raise ExportError(f"the tokenizer {tokenizer_path} lies inside the folder {out_dir} being replaced")
    tensors, vocab_size = hf_state_dict(model_state, config)
    files = tokenizer_files(Path(tokenizer_path), vocab_size, config.seq_length)
    dtype = model_state["embedding.word_embedding.weight"].dtype
    model_config = hf_config(config, vocab_size, dtype)
    num_parameters = sum(t.numel() for t in tensors.values())
    files["config.json"] = json.dumps(model_config, indent=2)
    files["README.md"] = model_card(config, model_config, provenance or {}, num_parameters)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        for name in TEMPLATE_FILES:
            shutil.copyfile(TEMPLATE_DIR / name, tmp / name)
        shutil.copyfile(NETWORK_SOURCE, tmp / NETWORK_FILE)
        for name, text in files.items():
            (tmp / name).write_text(text + ("" if text.endswith("\n") else "\n"), encoding="utf-8")
        write_safetensors(tensors, tmp / WEIGHTS_FILE)
        if out_dir.is_dir() and any(out_dir.iterdir()):
            # Swap: the old export is moved aside before the new one takes its name.
            old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out_dir, old)
            os.replace(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            if out_dir.is_dir():
                out_dir.rmdir()  # empty: rename cannot replace it on every platform
            os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def load_network(folder: str | Path, model_config) -> torch.nn.Module:
    """The trainer's own DiffusionLM with an export's weights (the inverse of `hf_state_dict`), in
    eval mode: what a check compares the exported folder's transformers model against."""
    from safetensors.torch import load_file

    state = {name.removeprefix(NETWORK_PREFIX): tensor for name, tensor in load_file(Path(folder) / WEIGHTS_FILE).items()}
    state[TIED_KEY] = state["embedding.word_embedding.weight"]
    model = build_model(model_config, state["embedding.word_embedding.weight"].shape[0])
    model.load_state_dict(state)
    return model.eval()


# --------------------------------------------------------------------------------------
# CLI: find the checkpoint and its tokenizer
# --------------------------------------------------------------------------------------


def _recorded_data(checkpoint_file: Path, checkpoint: dict) -> tuple[str | None, str | None]:
    """(data_root, data_hash) as the run recorded them: in the checkpoint itself, else in the
    nearest data.json (the loop writes it into its output folder) or sweep.json (a sweep's
    folder) above the checkpoint; a Ray checkpoint copied under the run's folder finds it too."""
    if checkpoint.get("data_root"):
        return str(checkpoint["data_root"]), checkpoint.get("data_hash")
    for folder in list(checkpoint_file.absolute().parents)[:8]:
        for name in ("data.json", "sweep.json"):
            try:
                record = json.loads((folder / name).read_text())
            except (OSError, ValueError):
                continue
            if isinstance(record, dict) and record.get("data_root"):
                return str(record["data_root"]), record.get("data_hash")
    return None, None


def _cached_data(config: TrainConfig, vocab_size: int, cache_dir: Path) -> list[Path]:
    """Prepared data folders in the cache that this run's config (and vocabulary) can have used."""
    builtin = (cache_dir / "builtin").resolve()
    corpus = Path(config.corpus).expanduser().resolve() if config.corpus else None
    found = []
    for manifest_file in sorted((cache_dir / "prepared").glob(f"*/{MANIFEST_FILE}")):
        try:
            manifest = json.loads(manifest_file.read_text())
            settings = manifest["settings"]
            corpus_path = Path(manifest["corpus_path"]).resolve()
        except (OSError, ValueError, KeyError, TypeError):
            continue
        same_corpus = corpus_path == corpus if corpus else corpus_path.is_relative_to(builtin)
        if (
            same_corpus
            and settings.get("vocab_size") == config.vocab_size
            and settings.get("seq_length") == config.seq_length
            and settings.get("vocab_size_actual") == vocab_size
        ):
            found.append(manifest_file.parent)
    return found


def find_data_root(checkpoint_file: Path, checkpoint: dict, config: TrainConfig, cache_dir: Path) -> Path:
    """The prepared data folder (tokenizer + manifest) the checkpoint was trained on: the one the
    run recorded, else the only folder in the data cache made from the run's corpus with its
    vocabulary and sequence length."""
    root, data_hash = _recorded_data(checkpoint_file, checkpoint)
    if root and Path(root).is_dir():
        data = open_prepared(root)
        if data_hash and data.content_hash != data_hash:
            raise ExportError(f"prepared data at {root} has content hash {data.content_hash[:16]}, the run recorded {data_hash[:16]}")
        return data.root
    embedding = checkpoint["ema"].get("embedding.word_embedding.weight")
    if embedding is None:
        raise ExportError("the checkpoint's weights are not a DiffusionLM state dict (no embedding.word_embedding.weight)")
    found = _cached_data(config, embedding.shape[0], cache_dir)
    if len(found) == 1:
        return found[0]
    where = f"recorded data folder {root} is gone and " if root else ""
    what = "several" if found else "no"
    raise ExportError(
        f"{where}{what} prepared data folders in {cache_dir} match this run's corpus and vocabulary; "
        f"pass --tokenizer (its prepared data folder or tokenizer.json) or --cache-dir"
    )


def code_version() -> str | None:
    """git describe of the checkout this module runs from (None outside a git checkout)."""
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=12"],
            cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0 or not out.stdout.strip():
        return None
    return out.stdout.strip()


def checkpoint_metrics(checkpoint_file: Path, step: int | None) -> dict | None:
    """The run's metrics.jsonl line for the checkpoint's step (run/checkpoints/step_N/state.pt)."""
    checkpoints = checkpoint_file.absolute().parent.parent
    metrics_file = checkpoints.parent / "metrics.jsonl"
    if step is None or checkpoints.name != "checkpoints" or not metrics_file.is_file():
        return None
    for line in reversed(metrics_file.read_text().splitlines()):
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if row.get("step") == step:
            return row
    return None


def run_folder(source: Path, checkpoint_file: Path) -> Path | None:
    """The run folder (where the loop writes chck_* exports) of a source given to the CLI: the
    source itself when it is a folder above its checkpoint, else run/ of run/checkpoints/step_N."""
    checkpoint_dir = checkpoint_file.absolute().parent
    if source.is_dir() and source.absolute() != checkpoint_dir:
        return source
    if checkpoint_dir.parent.name == "checkpoints":
        return checkpoint_dir.parent.parent
    return None


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, like every other input error
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m trainer.export", description=__doc__.split("\n")[0])
    parser.add_argument("source", help="a run folder (its latest checkpoint), a checkpoint folder or a state.pt")
    parser.add_argument("out", help="the model folder to write (no dots in its name)")
    parser.add_argument("--weights", choices=["ema", "raw"], default="ema", help="EMA weights (default) or the raw ones")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing export")
    parser.add_argument("--tokenizer", help="the run's prepared data folder or tokenizer.json (default: found from the run)")
    parser.add_argument("--cache-dir", help="data cache to search for the run's tokenizer (default: $MDLM_CACHE_DIR or ~/.cache/mdlm-sweeps)")
    from trainer import hub

    hub.add_publish_flags(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    from trainer import hub

    args = build_parser().parse_args(argv)

    try:
        out_dir = Path(args.out).absolute()
        check_target(out_dir, args.overwrite)  # before the (slow) checkpoint read
        hub.check_publish_flags(args.hub_cache, args.push_to_hub)  # names and login, before writing
        checkpoint_file = find_checkpoint_file(Path(args.source))
        if checkpoint_file.absolute().is_relative_to(out_dir):
            raise ExportError(f"the checkpoint {checkpoint_file} lies inside the output folder {out_dir}")
        checkpoint = load_checkpoint(checkpoint_file)
        config = TrainConfig.parse(checkpoint["config"])
        if args.tokenizer:
            tokenizer_path = Path(args.tokenizer)
            data_hash = None
            if (tokenizer_path / MANIFEST_FILE).is_file():
                data_hash = open_prepared(tokenizer_path).content_hash
        else:
            from trainer.data.sources import default_cache_dir

            cache_dir = Path(args.cache_dir).expanduser() if args.cache_dir else default_cache_dir()
            data = open_prepared(find_data_root(checkpoint_file, checkpoint, config, cache_dir))
            tokenizer_path, data_hash = data.tokenizer_path, data.content_hash
        step = checkpoint.get("step")
        provenance = {
            "checkpoint": str(checkpoint_file.resolve()),
            "step": step,
            "weights": args.weights,
            "tokenizer": str(Path(tokenizer_path).resolve()),
            "data_hash": data_hash,
            "seed": config.seed,
            "export_code_version": code_version(),
            "metrics": checkpoint_metrics(checkpoint_file, step),
        }
        state = checkpoint.get(args.weights if args.weights == "ema" else "model")
        if not isinstance(state, dict):
            raise ExportError(f"{checkpoint_file} holds no {args.weights} weights")
        path = export_model(state, config, tokenizer_path, out_dir, provenance, overwrite=args.overwrite)
        print(path)
        if args.hub_cache or args.push_to_hub:
            run = run_folder(Path(args.source), checkpoint_file)
            revisions = hub.find_revisions(run, path) if run is not None else {hub.MAIN: path}
            if len(revisions) == 1:
                print(f"note: no {hub.CHECKPOINT_PREFIX}* exports beside {args.source}: only 'main' is written")
            hub.publish(args.hub_cache, args.push_to_hub, revisions, args.hub_cache_dir)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. an output folder we may not write
        print(f"error: {exc.strerror or exc}: {exc.filename or args.out}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
