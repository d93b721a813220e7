"""Error messages a researcher can act on: a syntax error in a search-space file names its line
and column (1-based, as editors count them), and a misspelt name names the closest valid ones,
from a space file, a config JSON, `--set` and both command lines."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from search_spaces import SpaceError, load_space, parse_space
from trainer.config import ConfigError, TrainConfig, apply_overrides, parse_overrides

ROOT = Path(__file__).resolve().parents[1]


def space_error(path: Path) -> str:
    with pytest.raises(SpaceError) as info:
        load_space(str(path))
    message = str(info.value)
    assert "\n" not in message
    return message


# --- search-space files: syntax -------------------------------------------------------------

def test_yaml_syntax_error_names_line_and_column(tmp_path):
    path = tmp_path / "my.yaml"
    lines = [
        "description: a typo on line 4",
        "search:",
        "  derivative_power: {type: float, low: 0, high: 1}",
        "  lr: low: 0.001",  # a second 'key:' on one line; YAML points at its colon
    ]
    path.write_text("\n".join(lines) + "\n")
    column = lines[3].index("low:") + len("low") + 1  # 1-based column of that colon
    assert column == 10
    message = space_error(path)
    assert f"{path}" in message
    assert "line 4, column 10: mapping values are not allowed here" in message


def test_yaml_unclosed_bracket_names_where_it_opened(tmp_path):
    path = tmp_path / "open.yaml"
    path.write_text("search: [1, 2\n")
    message = space_error(path)
    assert "line 2, column 1: expected ',' or ']'" in message
    assert "flow sequence that starts at line 1, column 9" in message


def test_yaml_tab_indent_names_line_and_column(tmp_path):
    path = tmp_path / "tabs.yaml"
    path.write_text("search:\n  derivative_power: {type: float, low: 0, high: 1}\n\tlr: {type: float, low: 0.1, high: 0.5}\n")
    assert "line 3, column 1: found character '\\t' that cannot start any token" in space_error(path)


def test_json_space_syntax_error_names_line_and_column(tmp_path):
    path = tmp_path / "my.json"
    path.write_text('{\n  "search": {\n    "derivative_power": {"type": "float", "low": 0, "high": 1}\n'
                    '    "lr": {"type": "float", "low": 0.001, "high": 0.01}\n  }\n}\n')
    message = space_error(path)
    assert f"{path}" in message
    assert "line 4, column 5: Expecting ',' delimiter" in message


# --- search-space files: unknown names --------------------------------------------------------

def test_unknown_searched_field_suggests_and_names_its_line(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("description: typo\nsearch:\n  derivitive_power: {type: float, low: 0, high: 1}\n")
    message = space_error(path)
    assert message == (f"{path}: line 3, column 3: unknown config field 'derivitive_power' in 'search'; "
                       "did you mean 'derivative_power'?")


def test_unknown_fixed_field_suggests(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("fixed:\n  schedul: gaussian\nsearch:\n  gaussian_mean: {type: float, low: 0.1, high: 0.4}\n")
    message = space_error(path)
    assert "line 2, column 3: unknown config field 'schedul' in 'fixed'" in message
    assert "did you mean 'schedule'?" in message


def test_unknown_model_field_suggests_a_model_field(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("search:\n  model.dropuot: {type: float, low: 0, high: 0.5}\n")
    assert "did you mean 'model.dropout'" in space_error(path)


def test_unknown_param_key_suggests(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("search:\n  derivative_power:\n    tpye: float\n    low: 0\n    high: 1\n")
    message = space_error(path)
    assert "line 3, column 5: parameter 'derivative_power' has unknown key 'tpye'; did you mean 'type'?" in message


def test_unknown_top_level_key_suggests(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("description: d\nserch:\n  derivative_power: {type: float, low: 0, high: 1}\n")
    assert "line 2, column 1: unknown top-level key 'serch'; did you mean 'search'?" in space_error(path)


def test_unknown_field_in_json_space_suggests_with_line(tmp_path):
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"search": {"derivitive_power": {"type": "float", "low": 0, "high": 1}}}, indent=2))
    message = space_error(path)
    assert "line 3, column 5: unknown config field 'derivitive_power'" in message
    assert "did you mean 'derivative_power'?" in message


def test_unknown_field_without_a_file_still_suggests():
    with pytest.raises(SpaceError) as info:
        parse_space({"search": {"derivitive_power": {"type": "float", "low": 0, "high": 1}}}, "mine", "mine")
    assert str(info.value) == "mine: unknown config field 'derivitive_power' in 'search'; did you mean 'derivative_power'?"


# --- configs and --set -----------------------------------------------------------------------

def test_set_typo_names_the_flag_and_suggests():
    with pytest.raises(ConfigError) as info:
        parse_overrides(["derivitive_power=0"])
    assert str(info.value) == ("--set derivitive_power=0: unknown config field 'derivitive_power'; "
                               "did you mean 'derivative_power'?")


def test_set_model_typo_suggests_model_fields():
    with pytest.raises(ConfigError, match=r"--set model.dropuot=0.1: unknown config field 'model.dropuot'; "
                                          r"did you mean 'model.dropout'"):
        parse_overrides(["model.dropuot=0.1"])


def test_set_architecture_field_without_its_section_suggests_it():
    with pytest.raises(ConfigError, match=r"did you mean 'model.dropout'\?"):
        parse_overrides(["dropout=0.1"])


def test_apply_overrides_checks_names_too():
    with pytest.raises(ConfigError, match=r"unknown config field 'derivitive_power'; did you mean 'derivative_power'\?"):
        apply_overrides(TrainConfig().as_dict(), {"derivitive_power": 0})


def test_parse_suggests_for_unknown_field():
    with pytest.raises(ConfigError) as info:
        TrainConfig.parse({"derivitive_power": 0})
    assert str(info.value) == "unknown config field 'derivitive_power'; did you mean 'derivative_power'?"


def test_config_file_typo_names_file_line_and_suggestion(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"lr": 0.001, "derivitive_power": 0.5}, indent=2))
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_json_file(path)
    assert str(info.value) == (f"config file {path}: line 3, column 3: unknown config field 'derivitive_power'; "
                               "did you mean 'derivative_power'?")


def test_config_file_syntax_error_names_line_and_column(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{\n  "lr": 0.001,\n  "seed": 1,\n}\n')
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_json_file(path)
    assert "is not valid JSON: line 4, column 1: Expecting property name enclosed in double quotes" in str(info.value)


def test_value_errors_still_name_the_field_and_what_is_allowed():
    with pytest.raises(ConfigError, match=r"config field 'lr' = 5 is out of range: must be > 0.0 and <= 1.0"):
        TrainConfig.parse(apply_overrides(TrainConfig().as_dict(), parse_overrides(["lr=5"])))
    with pytest.raises(ConfigError, match=r"config field 'schedule' = 'cosin' is not allowed: expected 'linear', 'cosine'"):
        TrainConfig.parse(apply_overrides(TrainConfig().as_dict(), parse_overrides(["schedule=cosin"])))


# --- the command lines -------------------------------------------------------------------------

def run(args, tmp_path):
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0",
           "WANDB_MODE": "offline", "MDLM_CACHE_DIR": str(tmp_path / "cache")}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def one_error_line(result) -> str:
    assert result.returncode == 2, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_sweep_cli_set_typo_is_one_line_with_suggestion(tmp_path):
    storage = tmp_path / "sweeps"
    result = run(["sweeps/run.py", "--set", "derivitive_power=0", "--dry-run", "--storage", str(storage)], tmp_path)
    line = one_error_line(result)
    assert "--set derivitive_power=0" in line and "did you mean 'derivative_power'?" in line, line
    assert not storage.exists()


def test_train_cli_set_typo_is_one_line_with_suggestion_and_writes_nothing(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    result = run(["-m", "trainer.train", "--set", "derivitive_power=0", "--max-steps", "1", "--out", str(out)], tmp_path)
    line = one_error_line(result)
    assert "--set derivitive_power=0" in line and "did you mean 'derivative_power'?" in line, line
    assert list(out.iterdir()) == []
