"""Search spaces: the built-in ones load and validate; bad spaces are one-line errors;
define-by-run sampling respects conditions; values flow into TrainConfig unchanged."""

import json

import optuna
import pytest

from search_spaces import SpaceError, apply_values, builtin_names, list_spaces, load_space
from trainer.config import TrainConfig


def test_builtin_spaces_exist_and_validate():
    assert set(builtin_names()) >= {"bimodal_p", "schedule", "frequency", "curriculum", "full"}
    for space in list_spaces():
        assert space.description and space.params


def test_bimodal_p_searches_p_on_the_bimodal_schedule():
    space = load_space("bimodal_p")
    assert space.fixed == {"schedule": "bimodal_gaussian"}
    assert [p.name for p in space.active_params()] == ["derivative_power"]
    assert len(space.active_params(include_optional=True)) > 1
    p = space.params[0]
    assert (p.low, p.high) == (0.0, 1.0)


def test_full_space_is_conditional():
    space = load_space("full")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(60):
        trial = study.ask()
        values = space.suggest(trial)
        seen.add(values["schedule"])
        has_bimodal = any(k.startswith("bimodal_") for k in values)
        has_gauss = any(k.startswith("gaussian_") for k in values)
        assert has_bimodal == (values["schedule"] == "bimodal_gaussian")
        assert has_gauss == (values["schedule"] == "gaussian")
        config = apply_values(TrainConfig(), values)  # every sample is a valid config
        assert config.schedule == values["schedule"]
        assert config.model.time_conditioning == values["model.time_conditioning"]
        study.tell(trial, 0.0)
    assert len(seen) == 5


def test_grid_points_respect_conditions():
    space = load_space("curriculum")
    points = space.grid_points()
    # curriculum off: 3 powers; on: 3 powers x 2 ramp ends.
    assert len(points) == 3 + 6 == space.grid_size()
    assert all(("frequency_curriculum_end" in p) == p["frequency_curriculum"] for p in points)


def test_values_keep_their_names_and_types_through_json():
    config = apply_values(TrainConfig(), {"derivative_power": 0.25, "schedule": "cosine"})
    again = TrainConfig.parse(json.loads(config.to_json()))
    assert again.derivative_power == 0.25 and again.schedule == "cosine"


@pytest.mark.parametrize(
    "text,message",
    [
        ("search: {not_a_field: {type: float, low: 0, high: 1}}", "unknown config field 'not_a_field'"),
        ("search: {derivative_power: {type: float, low: 0.5, high: 0.5}}", "empty range"),
        ("search: {derivative_power: {type: float, low: 0, high: 9}}", "not a valid config value"),
        ("search: {derivative_power: {type: banana}}", "has type 'banana'"),
        ("search: {derivative_power: {type: float, low: zero, high: 1}}", "numeric 'low'"),
        ("search: {schedule: {type: categorical, choices: []}}", "non-empty list"),
        ("search: {schedule: {type: categorical, choices: [linear, spiral]}}", "'spiral'"),
        ("search: {}", "at least one"),
        ("serch: {}", "unknown top-level key"),
        ("search: {derivative_power: {type: float, low: 0, high: 1, step: 2}}", "unknown key"),
        ("search: {gaussian_mean: {type: float, low: 0.1, high: 0.4, when: {schedule: gaussian}}}", "depends on 'schedule'"),
        ("fixed: {schedule: gaussian}\nsearch: {schedule: {type: categorical, choices: [linear]}}", "both fixed and searched"),
        ("search: [1, 2", "cannot be parsed"),
    ],
)
def test_bad_spaces_are_one_line_errors(tmp_path, text, message):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    with pytest.raises(SpaceError) as info:
        load_space(str(path))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_json_space_file_and_unknown_name(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"search": {"frequency_power": {"type": "float", "low": 0.0, "high": 0.5}}}))
    assert load_space(str(path)).params[0].name == "frequency_power"
    with pytest.raises(SpaceError, match="unknown search space 'nope'"):
        load_space("nope")
