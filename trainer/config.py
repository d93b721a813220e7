"""One typed, validated configuration for a training run.

This is the schema every part of the project speaks: the search spaces name its
fields, a sweep trial is one instance of it, `best_config.json` is its JSON and
`python -m trainer.train --config` reads it back unchanged.

Defaults are the recipe's best model (the reference's `config-gauss.json`: bimodal
Gaussian schedule with p = 0.1, rank-weighted frequency masking with q = 0.02 and its
curriculum) except where noted beside a field. The departures (also listed in the
README): a CPU-sized model, batch, step budget and optimiser (`tiny` without dropout, 32
sequences, 1000 steps, AdamW at 2e-3 instead of `base`, 1024, 10 epochs, LAMB at 0.007), fp32 on
CPUs without native bf16, the curriculum as a linear ramp over training progress instead of a per-epoch
step, and a scaled time input to the sinusoid (`time_input_scale`).
"""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from trainer.errors import UserError

Schedule = Literal["linear", "cosine", "cosine_squared", "gaussian", "bimodal_gaussian", "log_linear"]
SCHEDULES: tuple[str, ...] = Schedule.__args__  # type: ignore[attr-defined]
PresetName = Literal["tiny", "small", "base"]


class ConfigError(UserError):
    """A configuration value is invalid. The message is one line naming the field."""


class ModelConfig(BaseModel):
    """Architecture of the LTG-BERT encoder (vocabulary size comes from the tokenizer)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hidden_size: int = Field(ge=8, le=8192)
    num_layers: int = Field(ge=1, le=128)
    num_heads: int = Field(ge=1, le=128)
    intermediate_size: int = Field(ge=8, le=65536)
    position_bucket_size: int = Field(default=32, ge=2, le=512)
    max_position: int = Field(default=512, ge=8, le=65536)
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0)
    attention_dropout: float = Field(default=0.1, ge=0.0, lt=1.0)
    # AdaLN-Zero conditioning on the mask rate; switchable because whether masked
    # diffusion needs time conditioning at all is an open question (LLaDA says no).
    time_conditioning: bool = True
    cond_dim: int = Field(default=128, ge=1, le=4096)
    time_embedding_dim: int = Field(default=256, ge=2, le=4096)
    # The reference feeds the rate in [0, 1] straight into a sinusoid with max
    # period 10000, so most features are constant. We scale the rate by 1000
    # first (as DiT does with timesteps), so the embedding actually varies.
    time_input_scale: float = Field(default=1000.0, gt=0.0)

    @model_validator(mode="after")
    def _heads_divide(self) -> "ModelConfig":
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
        if self.time_embedding_dim % 2:
            raise ValueError("time_embedding_dim must be even")
        return self


PRESETS: dict[str, ModelConfig] = {
    # Trains usefully on a 2-core CPU in minutes. No dropout: a model this small underfits any
    # corpus in the steps it gets (BabyLM's 10M words are ~40,000 steps an epoch), so dropout only
    # slows it; on the built-in corpus, pairs_acc at step 600 went 0.58 -> 0.73 without it
    # (lr 5e-3, benchmarks/first_run.py). The larger presets keep LTG-BERT's 0.1.
    # 2 layers (4 until the first-sweep work): on the built-in corpus, 300 steps of batch 32, p = 0
    # against p = 1, the 2-layer model scored pairs_acc 0.593 / 0.503 and the 4-layer one
    # 0.570 / 0.551, at about 0.55x the tokens/s (1 thread each, 2 runs at once, native-bf16 EPYC):
    # learning per token is the same at this budget, so the shallower model buys a first
    # sweep that fits ten minutes on an fp32-only CPU (benchmarks/README.md, "first sweep").
    "tiny": ModelConfig(hidden_size=128, num_layers=2, num_heads=4, intermediate_size=320, cond_dim=64, time_embedding_dim=128,
                        dropout=0.0, attention_dropout=0.0),
    # LTG-BERT "small" proportions.
    "small": ModelConfig(hidden_size=384, num_layers=12, num_heads=6, intermediate_size=1280),
    # The paper's size: 126,636,800 parameters at vocab 16384 with time conditioning.
    "base": ModelConfig(hidden_size=768, num_layers=12, num_heads=12, intermediate_size=2560),
}


class TrainConfig(BaseModel):
    """Every hyperparameter of a run. Unknown fields are rejected."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # --- model -------------------------------------------------------------
    preset: PresetName = "tiny"
    model: ModelConfig | None = None  # None: taken from `preset`

    # --- data --------------------------------------------------------------
    corpus: str | None = None  # folder of *.train/*.dev or *.txt; None = built-in grammar corpus
    pairs: str | None = None  # folder of BLiMP-style *.jsonl; None = built-in pairs (only with the built-in corpus)
    vocab_size: int = Field(default=16384, ge=272, le=262144)
    seq_length: int = Field(default=128, ge=8, le=8192)

    # --- noise schedule ----------------------------------------------------
    schedule: Schedule = "bimodal_gaussian"
    # p in |alpha'(t)|^p / (1 - alpha(t)); p=1 is the true NELBO weight, p=0 drops the derivative.
    derivative_power: float = Field(default=0.1, ge=0.0, le=2.0)
    # MDLM's floor: t is mapped to (1-eps)*t + eps so the mask rate never reaches 0.
    time_epsilon: float = Field(default=1e-3, ge=0.0, lt=0.5)
    gaussian_mean: float = Field(default=0.2, gt=0.0, lt=1.0)
    gaussian_std: float = Field(default=0.12, gt=0.0, le=1.0)
    # Bimodal Gaussian: values of the reference's best-model config.
    bimodal_left_mean: float = Field(default=0.12, gt=0.0, lt=1.0)
    bimodal_left_std: float = Field(default=0.02, gt=0.0, le=1.0)
    bimodal_right_mean_start: float = Field(default=0.4, gt=0.0, lt=1.0)
    bimodal_right_mean_end: float = Field(default=0.85, gt=0.0, lt=1.0)
    bimodal_right_std: float = Field(default=0.08, gt=0.0, le=1.0)
    bimodal_right_rate: float = Field(default=1.0, ge=0.0, le=100.0)
    bimodal_left_weight: float = Field(default=0.6, ge=0.0, le=1.0)

    # --- masking -----------------------------------------------------------
    # q, the softening power; 0 = uniform masking (frequency-informed masking off).
    # The reference's best config: rank weighting, q = 0.02, with the curriculum.
    frequency_power: float = Field(default=0.02, ge=0.0, le=5.0)
    frequency_weighting: Literal["rank", "inverse"] = "rank"
    frequency_curriculum: bool = True
    # Progress at which the curriculum reaches the target power. Departure: the reference
    # steps q per epoch (epoch / 9 * q, so all of epoch 0 is uniform) and reaches it at
    # epoch 9 of 10; a linear ramp over progress does the same for runs of any length.
    frequency_curriculum_end: float = Field(default=0.9, gt=0.0, le=1.0)

    # --- optimisation --------------------------------------------------------
    # Departure: the reference trains with LAMB at lr 0.007 on 1024-sequence batches; LAMB's
    # per-tensor trust ratio is a large-batch method, and at the CPU batch of 32 the default
    # is AdamW at 2e-3. `--set optimizer=lamb --set lr=0.007` gives the reference's.
    optimizer: Literal["adamw", "lamb"] = "adamw"
    lr: float = Field(default=2e-3, gt=0.0, le=1.0)
    beta1: float = Field(default=0.9, ge=0.0, lt=1.0)
    beta2: float = Field(default=0.98, ge=0.0, lt=1.0)
    adam_eps: float = Field(default=1e-8, gt=0.0, le=1e-2)
    weight_decay: float = Field(default=0.1, ge=0.0, le=10.0)
    grad_clip: float = Field(default=2.0, ge=0.0)  # 0 disables clipping
    warmup_proportion: float = Field(default=0.016, ge=0.0, le=0.5)
    cooldown_proportion: float = Field(default=0.016, ge=0.0, le=0.5)
    lr_floor: float = Field(default=0.1, ge=0.0, le=1.0)  # cosine decays to this fraction of lr
    ema_decay: float = Field(default=0.999, ge=0.0, lt=1.0)
    batch_size: int = Field(default=32, ge=1)  # global sequences per optimizer step (reference: 1024; 32 keeps CPU runs short)
    micro_batch_size: int = Field(default=32, ge=1)  # per worker per forward pass
    # tiny on a 2-core CPU: ~5 minutes (bf16), by when the built-in pairs' agreement is learned (benchmarks/first_run.py)
    max_steps: int = Field(default=1000, ge=1)
    # Budget in words of raw training text seen (repeats count), as BabyLM counts it.
    # When set it replaces max_steps: the run ends at the first step at or past it.
    max_words: int | None = Field(default=None, ge=1)
    # The challenge's cap on passes over the training data; a longer budget is refused.
    max_epochs: float = Field(default=10.0, gt=0.0, le=1000.0)
    # auto: bf16 where the hardware multiplies bf16 natively (CUDA with bf16; CPUs with
    # AVX512-BF16 or AMX), else fp32 (trainer/precision.py); the choice is in every metrics line.
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    # torch.compile of the encoder (the head runs on a varying number of masked positions and
    # stays eager). auto: on for CUDA, off on CPU, where the compiled step measured 0.86x / 0.89x
    # the eager one (benchmarks/throughput.py --variants compile); compiling is a one-off cost
    # at the first step. The choice is in every metrics line (`compiled`).
    compile: Literal["auto", "on", "off"] = "auto"
    seed: int = Field(default=0, ge=0)

    # --- evaluation and checkpoints -----------------------------------------
    eval_every: int = Field(default=100, ge=1)
    # Validation rows scored for val_nelbo / val_acc: one fixed sample spread over every
    # validation file in proportion to its rows (trainer/data/validation.py).
    val_rows: int = Field(default=512, ge=1)
    val_mask_rates: int = Field(default=8, ge=1, le=128)  # midpoint quadrature nodes on (0, 1)
    # At evaluations before the last, score one in this many of those rows (whole blocks of
    # the val_mask_rates rates, the same masks): a cheaper, noisier interim number; the last
    # evaluation scores them all. A sweep that does not select on a val_ metric sets 4.
    interim_val_subsample: int = Field(default=1, ge=1)
    # Tuning (and held-out) pairs scored per paradigm at each evaluation; None = all. 200 scores
    # every built-in tuning pair (1,384, at most 170 a paradigm; measured at about 5% of a default
    # sweep trial's time on 2 CPUs, README) and 13,400 of BLiMP's 67 paradigms: 3x the evidence
    # of the earlier 50 for a paired comparison. The sweep warns when an evaluation takes more than
    # 15% of a trial's time (then lower this).
    eval_pairs_per_paradigm: int | None = Field(default=200, ge=1)
    # Which rate a time-conditioned model sees at evaluation (no time is given there):
    # the row's realised mask fraction, a fixed rate, or no conditioning at all.
    eval_time_conditioning: Literal["mask_fraction", "fixed", "off"] = "mask_fraction"
    eval_fixed_rate: float = Field(default=0.15, gt=0.0, le=1.0)
    checkpoint_every: int = Field(default=100, ge=1)
    # Export a model folder chck_<N>M at the first step at or past each of these word
    # counts (`--checkpoint-words babylm` gives the challenge's schedule).
    checkpoint_words: list[int] = Field(default_factory=list)
    # Share of each paradigm's minimal pairs held out from selection (by a hash of the
    # pair): pairs_acc is measured on the rest, pairs_acc_heldout on these.
    pairs_heldout_fraction: float = Field(default=0.5, ge=0.0, lt=1.0)
    # A folder laid out like the BabyLM pipeline's evaluation_data/full_eval (or fast_eval): every
    # zero-shot task found there (trainer/zero_shot.py) is scored at every evaluation, on its
    # tuning items (held out within each UID by a hash, pairs_heldout_fraction of them), as
    # <task>_acc (wug: <task>_rho) and their mean babylm_score; the held-out items at the last
    # evaluation.
    eval_data: str | None = None
    # Tuning (and held-out) items scored per UID of each task at each evaluation; None = all.
    eval_items_per_uid: int | None = Field(default=50, ge=1)

    @model_validator(mode="after")
    def _resolve(self) -> "TrainConfig":
        if self.model is None:
            # Bypass validate_assignment recursion: set the resolved preset directly.
            object.__setattr__(self, "model", PRESETS[self.preset])
        if self.batch_size % self.micro_batch_size:
            raise ValueError(
                f"batch_size {self.batch_size} must be a multiple of micro_batch_size {self.micro_batch_size}"
            )
        if any(words < 1 for words in self.checkpoint_words):
            raise ValueError("checkpoint_words must be positive word counts")
        if self.checkpoint_words != sorted(set(self.checkpoint_words)):
            object.__setattr__(self, "checkpoint_words", sorted(set(self.checkpoint_words)))
        if self.warmup_proportion + self.cooldown_proportion > 1.0:
            raise ValueError("warmup_proportion + cooldown_proportion must be at most 1")
        return self

    # --- helpers -------------------------------------------------------------
    def with_preset(self, preset: str) -> "TrainConfig":
        """The same config with another model preset (model architecture reset to it)."""
        data = self.as_dict()
        data["preset"] = preset
        data["model"] = None
        return TrainConfig.parse(data)

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, sort_keys=False)

    @classmethod
    def parse(cls, data: dict[str, Any]) -> "TrainConfig":
        """Validate a dict; raise ConfigError with a one-line message on bad input."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(describe_validation_error(exc)) from None

    @classmethod
    def from_json_file(cls, path: str | Path) -> "TrainConfig":
        """Read a config file. Extra top-level keys written by exports
        (`provenance`, `final_command`) are ignored; the `config` key is used when present."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
            data = json.loads(text)
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid JSON: line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path} must hold a JSON object")
        if "config" in data and isinstance(data["config"], dict):
            data = data["config"]  # an exported best_config.json
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            loc = exc.errors()[0].get("loc", ())
            mark = json_key_position(text, str(loc[-1])) if loc else None
            where = f"config file {path}" + (f": line {mark[0]}, column {mark[1]}" if mark else "")
            raise ConfigError(f"{where}: {describe_validation_error(exc)}") from None


def describe_validation_error(exc: ValidationError) -> str:
    """Turn pydantic's multi-line report into one line naming the field and what is allowed."""
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err.get("loc", ())) or "config"
    kind = err.get("type", "")
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        return f"unknown config field '{field}'" + did_you_mean(field)
    bounds = _declared_bounds(err.get("loc", ())) if any(k in ctx for k in ("ge", "gt", "le", "lt")) else []
    for key, sym in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
        if key in ctx and not bounds:
            bounds.append(f"{sym} {ctx[key]}")
    if bounds:
        return f"config field '{field}' = {err.get('input')!r} is out of range: must be {' and '.join(bounds)}"
    if kind == "literal_error":
        return f"config field '{field}' = {err.get('input')!r} is not allowed: expected {ctx.get('expected')}"
    msg = err.get("msg", "invalid value").replace("Value error, ", "")
    if field == "config" or kind == "value_error":
        return f"invalid config: {msg}"
    return f"config field '{field}': {msg} (got {err.get('input')!r})"


def _declared_bounds(loc: tuple) -> list[str]:
    """Every bound declared on a field (pydantic reports only the one that was broken),
    so the message states the whole allowed range."""
    model: Any = TrainConfig
    field = None
    for part in loc:
        fields = getattr(model, "model_fields", {})
        if part not in fields:
            return []
        field = fields[part]
        model = ModelConfig if part == "model" else None
    if field is None:
        return []
    symbols = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
    bounds = []
    for constraint in field.metadata:
        for key, sym in symbols.items():
            value = getattr(constraint, key, None)
            if value is not None:
                bounds.append(f"{sym} {value}")
    return bounds


def field_names() -> list[str]:
    """Every name a config field goes by: TrainConfig's own, and `model.<field>` for the architecture."""
    return [name for name in TrainConfig.model_fields if name != "model"] + [f"model.{name}" for name in ModelConfig.model_fields]


def close_matches(name: str, candidates) -> list[str]:
    """The valid names closest to a misspelt one (at most three, best first)."""
    return difflib.get_close_matches(name, list(candidates), n=3, cutoff=0.6)


def did_you_mean(name: str, candidates=None) -> str:
    """The end of an unknown-name message: `; did you mean 'x'?` with the closest valid names
    (config field names unless `candidates` are given), else where the valid names are."""
    if candidates is None:
        section = name.split(".", 1)[0] if "." in name else ""
        candidates = [n for n in field_names() if n.startswith("model.")] if section == "model" else field_names()
        fallback = "; no field has a similar name (the fields are listed in trainer/config.py)"
    else:
        candidates = list(candidates)
        fallback = "; allowed: " + ", ".join(sorted(map(str, candidates)))
    found = close_matches(name, candidates)
    if not found:
        return fallback
    quoted = [f"'{n}'" for n in found]
    return "; did you mean " + (quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]) + "?"


def json_key_position(text: str, key: str) -> tuple[int, int] | None:
    """The 1-based (line, column) of `"key":` in a JSON text, when the key is written there
    exactly once (json keeps no positions of what it parsed)."""
    hits = [m.start() for m in re.finditer(r'"' + re.escape(json.dumps(key)[1:-1]) + r'"\s*:', text)]
    if len(hits) != 1:
        return None
    return text.count("\n", 0, hits[0]) + 1, hits[0] - text.rfind("\n", 0, hits[0])


def _check_override_field(key: str, item: str) -> None:
    """An unknown `--set` field is named with the closest valid ones, before any config is built."""
    section, dotted, field = key.partition(".")
    if dotted and section != "model":
        return  # apply_overrides says that only architecture fields take a dotted name
    known = ModelConfig.model_fields if dotted else TrainConfig.model_fields
    if (field if dotted else key) not in known:
        raise ConfigError(f"--set {item}: unknown config field '{key}'" + did_you_mean(key))


def parse_overrides(pairs: list[str]) -> dict:
    """`--set field=value` pairs; values are parsed as JSON when they parse, else kept as strings.
    An unknown field name is refused here, with the closest valid names."""
    overrides = {}
    for item in pairs:
        if "=" not in item:
            raise ConfigError(f"--set expects field=value, got '{item}'")
        key, raw = item.split("=", 1)
        key = key.strip()
        _check_override_field(key, f"{key}={raw}")
        try:
            overrides[key] = json.loads(raw)
        except json.JSONDecodeError:
            overrides[key] = raw
    return overrides


def apply_overrides(data: dict, overrides: dict) -> dict:
    """Apply `--set` values to a config dict. `preset=<name>` resets the architecture to that
    preset's, as --preset does; `model.<field>=<value>` sets one architecture field (after any
    preset change), e.g. `--set model.dropout=0.1`."""
    overrides = dict(overrides)
    if "preset" in overrides:
        preset = overrides.pop("preset")
        if preset != data.get("preset") or not isinstance(data.get("model"), dict):
            data["preset"], data["model"] = preset, None
    for key, value in overrides.items():
        _check_override_field(key, f"{key}={json.dumps(value) if not isinstance(value, str) else value}")
        section, dotted, field = key.partition(".")
        if not dotted:
            data[key] = value
            continue
        if section != "model" or not field or "." in field:
            raise ConfigError(f"--set {key}: only architecture fields take a dotted name (model.<field>)")
        if not isinstance(data.get("model"), dict):
            preset = data.get("preset", TrainConfig.model_fields["preset"].default)
            if preset not in PRESETS:
                raise ConfigError(f"preset: '{preset}' is not one of {', '.join(PRESETS)}")
            data["model"] = PRESETS[preset].model_dump(mode="json")
        data["model"] = {**data["model"], field: value}
    return data
