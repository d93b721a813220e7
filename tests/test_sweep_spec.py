"""The SweepSpec: everything a sweep is, typed, round-tripping through sweep.json; and the
flags -> spec path of run.py (a space's fixed values reach the base config)."""

import json

import numpy as np
import pytest

from search_spaces import load_space, parse_space
from sweeps.run import base_config, build_parser, resolve_step_budget
from sweeps.spec import SWEEP_FILE, DataRef, Objective, Provenance, SearchSettings, SpaceSpec, SweepError, SweepSpec
from trainer.config import TrainConfig


def make_spec(tmp_path, **changes) -> SweepSpec:
    spec = SweepSpec(
        name="s", storage=str(tmp_path), space=SpaceSpec.of(load_space("full")),
        search=SearchSettings(algorithm="random", num_samples=3, seed=7),
        objectives=(Objective(metric="pairs_acc", mode="max"), Objective(metric="val_nelbo", mode="min")),
        base_config=TrainConfig(max_steps=40), data=DataRef(data_root="/data", data_hash="abc"),
        provenance=Provenance(code_version="v1", versions={"ray": "2.60.0"}, command="run.py --space full"),
    )
    return spec.with_changes(**changes) if changes else spec


def test_sweep_json_round_trips(tmp_path):
    spec = make_spec(tmp_path)
    spec.save()
    again = SweepSpec.load(spec.experiment)
    assert again == spec
    assert again.space.load() == load_space("full")  # the space is data, re-validated when read
    assert again.multi_objective and again.metric == "pairs_acc" and again.full_budget == 40
    raw = json.loads((tmp_path / "s" / SWEEP_FILE).read_text())
    assert raw["base_config"]["max_steps"] == 40 and raw["search"]["seed"] == 7
    with pytest.raises(Exception):
        spec.name = "other"  # frozen


def test_every_space_round_trips_through_its_data():
    for name in ("bimodal_p", "schedule", "frequency", "curriculum", "full"):
        space = load_space(name)
        assert parse_space(json.loads(json.dumps(space.as_data())), space.name, space.source) == space


def test_bad_sweep_json_is_one_line(tmp_path):
    with pytest.raises(SweepError, match="is not a sweep folder"):
        SweepSpec.load(str(tmp_path))
    (tmp_path / SWEEP_FILE).write_text(json.dumps({"name": "old", "metric": "pairs_acc"}))
    with pytest.raises(SweepError, match="spec version 1, this code reads 2"):
        SweepSpec.load(str(tmp_path))
    data = json.loads(make_spec(tmp_path).to_json())
    data["search"]["algorithm"] = "bayes"
    (tmp_path / SWEEP_FILE).write_text(json.dumps(data))
    with pytest.raises(SweepError, match="field 'search.algorithm'") as info:
        SweepSpec.load(str(tmp_path))
    assert "\n" not in str(info.value)


def test_objectives_must_be_distinct(tmp_path):
    with pytest.raises(Exception, match="name a metric twice"):
        make_spec(tmp_path, objectives=[{"metric": "val_nelbo", "mode": "min"}, {"metric": "val_nelbo", "mode": "max"}])


def test_a_spaces_fixed_values_reach_the_base_config_and_the_word_budget(tmp_path):
    # The space fixes batch_size = 64: a 6,400-word budget on rows of 10 words is 10 steps,
    # not the 20 that the default batch of 32 would give.
    space_file = tmp_path / "fixed.yaml"
    space_file.write_text("fixed: {batch_size: 64, micro_batch_size: 32}\n"
                          "search:\n  derivative_power: {type: float, low: 0.0, high: 1.0}\n")
    space = load_space(str(space_file))
    args = build_parser().parse_args(["--space", str(space_file), "--max-words", "6400"])
    config = base_config(args, space)
    assert config.batch_size == 64
    row_words = np.full(1000, 10, dtype=np.int64)
    assert resolve_step_budget(config, row_words, evals_per_trial=2).max_steps == 10
    plain = base_config(build_parser().parse_args(["--max-words", "6400"]), load_space("bimodal_p"))
    assert resolve_step_budget(plain, row_words, evals_per_trial=2).max_steps == 20


def test_resources_derive_what_trials_reserve(tmp_path):
    spec = make_spec(tmp_path, resources={"runner": "train", "workers_per_trial": 4, "cpus_per_worker": 2.0,
                                          "gpus_per_worker": 0.5})
    assert spec.resources.worker_cpus == pytest.approx(1.99) and spec.resources.gpus_per_trial == 2.0
    assert spec.resources.cpus_per_trial == pytest.approx(4 * 1.99 + 0.01)


def test_dry_run_checks_everything_and_writes_nothing(tmp_path, capsys, monkeypatch):
    from conftest import write_toy_corpus
    from sweeps.run import main
    from trainer.budget import resolve_max_steps
    from trainer.data.prepare import prepare_corpus

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    corpus = write_toy_corpus(tmp_path / "corpus")
    cache = tmp_path / "cache"
    store = tmp_path / "store"
    common = ["--corpus", str(corpus), "--cache-dir", str(cache), "--storage", str(store), "--name", "plan",
              "--set", "vocab_size=300", "--set", "seq_length=32", "--set", "batch_size=8", "--set", "micro_batch_size=8"]

    def listing():
        return sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))

    # Not prepared yet: the plan says so, and the cache and storage stay untouched.
    before = listing()
    assert main([*common, "--dry-run", "--max-words", "6400"]) == 0
    out = capsys.readouterr().out
    assert "data: not prepared yet" in out and "the step count is known once the corpus is prepared" in out
    assert "dry run: nothing was started and nothing was written" in out
    assert listing() == before and not store.exists() and not cache.exists()

    # Prepared: the word budget becomes the exact step count a real run would train.
    prepared = prepare_corpus(corpus, cache / "prepared", vocab_size=300, seq_length=32, show_progress=False)
    before = listing()
    assert main([*common, "--dry-run", "--max-words", "6400", "--search", "grid", "--num-samples", "2"]) == 0
    out = capsys.readouterr().out
    config = TrainConfig(corpus=str(corpus), vocab_size=300, seq_length=32, batch_size=8, micro_batch_size=8,
                         max_words=6400)
    steps = resolve_max_steps(config, prepared.row_words())
    assert f"budget: 6,400 words per trial = {steps:,} steps of 8 rows on this data" in out
    assert "note: grid search runs every one of the space's 5 grid points, more than --num-samples 2" in out
    assert "MB per trial (its one checkpoint)" in out and "cluster: " in out
    assert listing() == before


def test_interim_validation_is_a_subsample_only_when_nothing_selects_on_it():
    from sweeps.run import INTERIM_VAL_SUBSAMPLE, interim_validation
    from sweeps.spec import Objective

    config = TrainConfig()
    pairs, nelbo = Objective(metric="pairs_acc", mode="max"), Objective(metric="val_nelbo", mode="min")
    assert interim_validation(config, (pairs,), []).interim_val_subsample == INTERIM_VAL_SUBSAMPLE > 1
    assert interim_validation(config, (nelbo,), []).interim_val_subsample == 1
    assert interim_validation(config, (pairs, nelbo), []).interim_val_subsample == 1
    given = config.model_copy(update={"interim_val_subsample": 2})
    assert interim_validation(given, (pairs,), ["interim_val_subsample=2"]).interim_val_subsample == 2
