"""The defaults are the recipe's best model, and every departure is stated in the README.

REFERENCE is the reference's best-model configuration (babylm-diffusion
`slurm-scripts/config-gauss.json`, with the optimiser and schedule constants of
`mdlm-recipe.md` section 5), written out by hand in our field names: an independent fact,
not read from our code."""

import re
from pathlib import Path

from trainer.config import TrainConfig

README = Path(__file__).resolve().parents[1] / "README.md"

REFERENCE = {
    "preset": "base",
    "seq_length": 128,
    "vocab_size": 16384,
    "schedule": "bimodal_gaussian",
    "derivative_power": 0.1,  # "gaussian_power"
    "bimodal_left_mean": 0.12,
    "bimodal_left_std": 0.02,
    "bimodal_right_mean_start": 0.4,
    "bimodal_right_mean_end": 0.85,
    "bimodal_right_std": 0.08,
    "bimodal_right_rate": 1.0,
    "bimodal_left_weight": 0.6,
    "frequency_power": 0.02,  # "pow_frequency"
    "frequency_weighting": "rank",  # "frequency_method"
    "frequency_curriculum": True,  # "mask_curriculum"
    "optimizer": "lamb",
    "lr": 0.007,
    "beta1": 0.9,
    "beta2": 0.98,
    "adam_eps": 1e-8,
    "weight_decay": 0.1,
    "grad_clip": 2.0,
    "warmup_proportion": 0.016,
    "cooldown_proportion": 0.016,
    "lr_floor": 0.1,
    "ema_decay": 0.999,
    "batch_size": 1024,  # global: 4 GPUs x 8 accumulation x 32
    "micro_batch_size": 32,  # "local_batch_size"
    "precision": "bf16",  # "mixed_precision": true
}
REFERENCE_MODEL = {"time_conditioning": True, "time_input_scale": 1.0, "position_bucket_size": 32,
                   "dropout": 0.1, "attention_dropout": 0.1}


def departure_table() -> set[str]:
    """Field names in the first column of the README's defaults table."""
    text = README.read_text(encoding="utf-8")
    table = text[text.index("| field | default here | reference best model |"):].split("\n\n")[0]
    fields = set()
    for row in table.splitlines()[2:]:
        fields.update(re.findall(r"`([a-z_]+)`", row.split("|")[1]))
    return fields


def test_every_default_that_departs_from_the_reference_is_in_the_readme():
    config = TrainConfig()
    departs = {name for name, value in REFERENCE.items() if getattr(config, name) != value}
    departs |= {name for name, value in REFERENCE_MODEL.items() if getattr(config.model, name) != value}
    table = departure_table()
    assert departs <= table, f"defaults that differ from the reference but are not in the README: {departs - table}"
    known = set(TrainConfig.model_fields) | set(REFERENCE_MODEL)
    assert table <= known, f"README names fields that do not exist: {table - known}"


def test_the_recipe_axes_default_to_the_best_model():
    # What --space bimodal_p sweeps around: the published schedule and frequency masking.
    config = TrainConfig()
    axes = ("schedule", "derivative_power", "frequency_power", "frequency_weighting", "frequency_curriculum")
    assert {a: getattr(config, a) for a in axes} == {a: REFERENCE[a] for a in axes}
    assert all(getattr(config, k) == v for k, v in REFERENCE.items() if k.startswith("bimodal_"))
