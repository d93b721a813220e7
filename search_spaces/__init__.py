"""Named search spaces, written as data over TrainConfig field names.

A space file (YAML or JSON) reads like a paper's ablation table:

    description: derivative power p over [0, 1] on the bimodal Gaussian schedule
    fixed:  {schedule: bimodal_gaussian}            # set for every trial
    search:
      derivative_power: {type: float, low: 0.0, high: 1.0, grid: [0, 0.1, 0.25, 0.5, 1]}
      bimodal_left_weight: {type: float, low: 0.3, high: 0.8, optional: true}
      gaussian_mean: {type: float, low: 0.1, high: 0.5, when: {schedule: gaussian}}

Parameter types: float (low, high, optional log), int (low, high, optional log),
categorical (choices), bool. `grid` lists the values grid search tries (floats default to
five evenly spaced points). `optional: true` parameters are searched only when asked
(`--search-optional`), else left at the base config's value. `when` makes a parameter
conditional on other parameters' values (a define-by-run space for Optuna). A name may be a
dotted path into the config, e.g. `model.time_conditioning`.

A space may also be a *study*: the paper's ablation run as a grid over several seeds.

    study:
      seeds: 3                                       # every grid point trains with seeds 0, 1, 2
      paper:                                         # what the paper reports, to compare signs with
        source: "BabyLM 2025 paper, Table 2 (100M words)"
        metric: BLiMP
        points: [{values: {derivative_power: 0.0}, score: 78.28}, {values: {derivative_power: 1.0}, score: 68.13}]

`python sweeps/run.py --space <study>` then trains every grid point with every seed (no early
stopping, no search) and writes the study table (sweeps/study.py).

Every space is validated against the config schema before anything runs: unknown fields,
empty ranges, wrong types and out-of-range bounds are one-line `SpaceError`s. A syntax error
names its line and column (1-based, as editors count them); an unknown name names the closest
valid ones and, read from a file, the line and column where it is written.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from trainer.config import ConfigError, ModelConfig, TrainConfig, close_matches, did_you_mean, json_key_position
from trainer.errors import UserError

SPACES_DIR = Path(__file__).resolve().parent
PARAM_TYPES = ("float", "int", "categorical", "bool")
PARAM_KEYS = {"type", "low", "high", "log", "choices", "grid", "optional", "when"}
TOP_LEVEL_KEYS = ("description", "fixed", "search", "study")
DEFAULT_GRID_POINTS = 5


class SpaceError(UserError):
    """A search space is invalid; the message is one line."""


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple = ()
    grid: tuple = ()
    optional: bool = False
    when: dict = field(default_factory=dict)

    def grid_values(self) -> list:
        if self.grid:
            return list(self.grid)
        if self.type == "bool":
            return [False, True]
        if self.type == "categorical":
            return list(self.choices)
        if self.type == "int":
            return sorted({round(self.low + (self.high - self.low) * i / (DEFAULT_GRID_POINTS - 1)) for i in range(DEFAULT_GRID_POINTS)})
        if self.log:
            ratio = math.log(self.high / self.low)
            return [self.low * math.exp(ratio * i / (DEFAULT_GRID_POINTS - 1)) for i in range(DEFAULT_GRID_POINTS)]
        return [self.low + (self.high - self.low) * i / (DEFAULT_GRID_POINTS - 1) for i in range(DEFAULT_GRID_POINTS)]

    def distribution(self):
        """The Optuna distribution `suggest` samples this parameter from."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.type == "float":
            return FloatDistribution(self.low, self.high, log=self.log)
        if self.type == "int":
            return IntDistribution(int(self.low), int(self.high), log=self.log)
        return CategoricalDistribution([False, True] if self.type == "bool" else list(self.choices))

    def as_data(self) -> dict[str, Any]:
        """The parameter as its space file writes it (parse_space reads it back unchanged)."""
        data: dict[str, Any] = {"type": self.type}
        if self.type in ("float", "int"):
            data.update(low=self.low, high=self.high)
            if self.log:
                data["log"] = True
        if self.type == "categorical":
            data["choices"] = list(self.choices)
        if self.grid:
            data["grid"] = list(self.grid)
        if self.optional:
            data["optional"] = True
        if self.when:
            data["when"] = dict(self.when)
        return data

    def describe(self) -> str:
        if self.type in ("float", "int"):
            text = f"{self.type} [{self.low:g}, {self.high:g}]" + (" log" if self.log else "")
        elif self.type == "bool":
            text = "bool"
        else:
            text = "one of " + ", ".join(map(str, self.choices))
        if self.when:
            text += " when " + ", ".join(f"{k} = {v}" for k, v in self.when.items())
        if self.optional:
            text += " (optional)"
        return text


@dataclass(frozen=True)
class SearchSpace:
    name: str
    description: str
    fixed: dict
    params: tuple[Param, ...]
    source: str = ""
    study: dict | None = None  # {"seeds": int, "paper": {...}} for a study space (see the module docstring)

    def active_params(self, include_optional: bool = False) -> list[Param]:
        return [p for p in self.params if include_optional or not p.optional]

    def suggest(self, trial, include_optional: bool = False) -> dict[str, Any]:
        """Define-by-run sampling for Optuna: the trial's values (fixed ones included).

        Parameters are visited in file order, so a `when` condition sees the values
        of the parameters above it.
        """
        values: dict[str, Any] = dict(self.fixed)
        for p in self.active_params(include_optional):
            if any(values.get(key) != wanted for key, wanted in p.when.items()):
                continue
            if p.type == "float":
                values[p.name] = trial.suggest_float(p.name, p.low, p.high, log=p.log)
            elif p.type == "int":
                values[p.name] = trial.suggest_int(p.name, int(p.low), int(p.high), log=p.log)
            elif p.type == "bool":
                values[p.name] = trial.suggest_categorical(p.name, [False, True])
            else:
                values[p.name] = trial.suggest_categorical(p.name, list(p.choices))
        return values

    def values_of(self, config: TrainConfig, include_optional: bool = False) -> dict[str, Any]:
        """The searched parameters' values in `config` (a point of this space), visiting them as
        `suggest` does so `when` conditions hold. Raises SpaceError when a value is outside its
        parameter's range or choices (the config is not a point of this space)."""
        data = config.as_dict()

        def value(name: str):
            target = data
            for part in name.split("."):
                target = target[part]
            return target

        values: dict[str, Any] = {k: value(k) for k in self.fixed}
        point: dict[str, Any] = {}
        for p in self.active_params(include_optional):
            if any(values.get(key) != wanted for key, wanted in p.when.items()):
                continue
            found = value(p.name)
            inside = (p.low <= found <= p.high if p.type in ("float", "int") else
                      isinstance(found, bool) if p.type == "bool" else found in p.choices)
            if not inside:
                raise SpaceError(f"{p.name} = {found!r} is outside the space ({p.describe()})")
            values[p.name] = point[p.name] = found
        return point

    def grid_points(self, include_optional: bool = False) -> list[dict[str, Any]]:
        """Every combination of grid values, respecting `when` (an inactive parameter
        does not multiply the grid)."""
        points: list[dict[str, Any]] = [dict(self.fixed)]
        for p in self.active_params(include_optional):
            expanded = []
            for point in points:
                if any(point.get(key) != wanted for key, wanted in p.when.items()):
                    expanded.append(point)
                else:
                    expanded.extend({**point, p.name: value} for value in p.grid_values())
            points = expanded
        return points

    def grid_size(self, include_optional: bool = False) -> int:
        """Number of grid points (built only when conditions make the product inexact)."""
        if self.has_conditions:
            return len(self.grid_points(include_optional))
        return math.prod(len(p.grid_values()) for p in self.active_params(include_optional))

    @property
    def has_conditions(self) -> bool:
        return any(p.when for p in self.params)

    def as_data(self) -> dict[str, Any]:
        """The space as its file writes it: {description, fixed, search: {name: parameter}}."""
        data = {"description": self.description, "fixed": dict(self.fixed),
                "search": {p.name: p.as_data() for p in self.params}}
        if self.study is not None:
            data["study"] = self.study
        return data

    def describe(self) -> str:
        lines = [f"{self.name}: {self.description}"]
        for key, value in self.fixed.items():
            lines.append(f"    {key} = {value}")
        for p in self.params:
            lines.append(f"    {p.name}: {p.describe()}")
        return "\n".join(lines)


def suggest_values(trial, space: SearchSpace, include_optional: bool = False) -> dict[str, Any]:
    """Module-level (picklable with functools.partial) define-by-run function for Optuna."""
    return space.suggest(trial, include_optional)


def apply_values(base: TrainConfig, values: dict[str, Any]) -> TrainConfig:
    """The base config with a trial's values set (dotted names reach into `model`)."""
    data = base.as_dict()
    for name, value in values.items():
        target = data
        *parents, leaf = name.split(".")
        for parent in parents:
            target = target[parent]
        target[leaf] = value
    return TrainConfig.parse(data)


def _config_fields() -> dict[str, Any]:
    fields = {name: info for name, info in TrainConfig.model_fields.items() if name != "model"}
    fields.update({f"model.{name}": info for name, info in ModelConfig.model_fields.items()})
    return fields


# Where each mapping key of a space file is written: its path of keys, e.g. ("search", "lr", "low"),
# to its 1-based (line, column).
Marks = dict[tuple, tuple[int, int]]


def _at(source: str, marks: Marks | None, *path) -> str:
    """`source`, followed by the line and column of the key at `path` when the file's marks have it."""
    mark = (marks or {}).get(tuple(str(part) for part in path))
    return f"{source}: line {mark[0]}, column {mark[1]}" if mark else source


def _parse_param(source: str, name: str, spec: Any, marks: Marks | None = None) -> Param:
    where = f"{_at(source, marks, 'search', name)}: parameter '{name}'"
    if not isinstance(spec, dict):
        raise SpaceError(f"{where} must be a mapping with a 'type'")
    unknown = [key for key in spec if key not in PARAM_KEYS]
    if unknown:
        key = unknown[0]
        raise SpaceError(f"{_at(source, marks, 'search', name, key)}: parameter '{name}' has unknown key '{key}'"
                         + did_you_mean(str(key), sorted(PARAM_KEYS)))
    kind = spec.get("type")
    if kind not in PARAM_TYPES:
        raise SpaceError(f"{where} has type {kind!r}; expected one of {', '.join(PARAM_TYPES)}")
    low, high, choices = spec.get("low"), spec.get("high"), spec.get("choices")
    if kind in ("float", "int"):
        for bound_name, bound in (("low", low), ("high", high)):
            if isinstance(bound, bool) or not isinstance(bound, (int, float)):
                raise SpaceError(f"{where} needs a numeric '{bound_name}', got {bound!r}")
        if kind == "int" and (int(low) != low or int(high) != high):
            raise SpaceError(f"{where} is an int parameter: 'low' and 'high' must be whole numbers")
        if not low < high:
            raise SpaceError(f"{where} has an empty range: low {low} must be below high {high}")
        if spec.get("log") and low <= 0:
            raise SpaceError(f"{where} is log-scaled: 'low' must be > 0, got {low}")
    elif kind == "categorical":
        if not isinstance(choices, list) or not choices:
            raise SpaceError(f"{where} needs a non-empty list of 'choices'")
    when = spec.get("when") or {}
    if not isinstance(when, dict):
        raise SpaceError(f"{where}: 'when' must map parameter names to values")
    grid = spec.get("grid") or []
    if not isinstance(grid, list):
        raise SpaceError(f"{where}: 'grid' must be a list of values")
    for value in grid:
        if kind in ("float", "int") and not (low <= value <= high):
            raise SpaceError(f"{where}: grid value {value} is outside [{low}, {high}]")
    return Param(
        name=name,
        type=kind,
        low=float(low) if kind == "float" else low,
        high=float(high) if kind == "float" else high,
        log=bool(spec.get("log", False)),
        choices=tuple(choices or ()),
        grid=tuple(grid),
        optional=bool(spec.get("optional", False)),
        when=dict(when),
    )


def parse_space(data: Any, name: str, source: str, marks: Marks | None = None) -> SearchSpace:
    """Build and validate a space from parsed YAML/JSON. `marks` (from `read_space_file`) put the
    line and column of an unknown or invalid key into the message."""
    if not isinstance(data, dict):
        raise SpaceError(f"{source}: a search space must be a mapping with 'search' (and optional 'fixed', 'description')")
    unknown = [key for key in data if key not in TOP_LEVEL_KEYS]
    if unknown:
        key = unknown[0]
        raise SpaceError(f"{_at(source, marks, key)}: unknown top-level key '{key}'" + did_you_mean(str(key), TOP_LEVEL_KEYS))
    search = data.get("search")
    if not isinstance(search, dict) or not search:
        raise SpaceError(f"{source}: 'search' must map at least one config field to a parameter")
    fixed = data.get("fixed") or {}
    if not isinstance(fixed, dict):
        raise SpaceError(f"{source}: 'fixed' must map config fields to values")
    fields = _config_fields()
    for section, keys in (("fixed", fixed), ("search", search)):
        for key in keys:
            if key not in fields:
                raise SpaceError(f"{_at(source, marks, section, key)}: unknown config field '{key}' in '{section}'"
                                 + did_you_mean(str(key)))
    overlap = set(fixed) & set(search)
    if overlap:
        raise SpaceError(f"{source}: field(s) {sorted(overlap)} are both fixed and searched")
    params = tuple(_parse_param(source, key, spec, marks) for key, spec in search.items())
    study = _parse_study(source, data["study"], params) if data.get("study") is not None else None
    space = SearchSpace(name=name, description=str(data.get("description", "")), fixed=dict(fixed), params=params,
                        source=source, study=study)
    _check_against_config(space)
    return space


def _parse_study(source: str, study: Any, params: tuple[Param, ...]) -> dict:
    """A study's settings: at least 2 seeds (a difference over one seed has no interval), and the
    paper's scores for points of the space's grid."""
    where = f"{source}: study"
    if not isinstance(study, dict) or set(study) - {"seeds", "paper"}:
        raise SpaceError(f"{where} must be a mapping with 'seeds' and optional 'paper'")
    seeds = study.get("seeds")
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 2:
        raise SpaceError(f"{where}: 'seeds' must be a whole number of at least 2, got {seeds!r}")
    paper = study.get("paper") or {}
    if not isinstance(paper, dict) or set(paper) - {"source", "metric", "points", "direction"}:
        raise SpaceError(f"{where}: 'paper' must be a mapping with 'source', 'metric', 'points' (and 'direction')")
    # The sign of (first point - second point) the paper reports, for when its numbers are not at hand.
    direction = paper.get("direction")
    if direction not in (None, 1, -1):
        raise SpaceError(f"{where}: paper 'direction' must be 1 (the first point scores higher) or -1, got {direction!r}")
    names = {p.name for p in params}
    points = paper.get("points") or []
    if not isinstance(points, list):
        raise SpaceError(f"{where}: paper 'points' must be a list")
    for point in points:
        if not isinstance(point, dict) or not isinstance(point.get("values"), dict) or set(point) - {"values", "score"}:
            raise SpaceError(f"{where}: each paper point needs 'values' (a mapping) and 'score' (a number or null)")
        if set(point["values"]) - names:
            raise SpaceError(f"{where}: paper point {point['values']} names parameters the space does not search")
        score = point.get("score")
        if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float))):
            raise SpaceError(f"{where}: paper score {score!r} is not a number")
    return {"seeds": seeds, "paper": {"source": str(paper.get("source", "")), "metric": str(paper.get("metric", "")),
                                      "direction": direction,
                                      "points": [{"values": dict(p["values"]), "score": p.get("score")} for p in points]}}


def _check_against_config(space: SearchSpace) -> None:
    """Every bound, choice and grid value must be a valid config value (the config's own
    validation says what is allowed), and `when` must name a parameter above it or a fixed field."""
    base = TrainConfig()
    try:
        apply_values(base, space.fixed)
    except ConfigError as exc:
        raise SpaceError(f"{space.source}: fixed values are invalid: {exc}") from None
    seen = set(space.fixed)
    for p in space.params:
        for key in p.when:
            if key not in seen:
                close = close_matches(str(key), seen)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                raise SpaceError(f"{space.source}: parameter '{p.name}' depends on '{key}', which is not fixed or searched above it"
                                 + hint)
        if p.type in ("float", "int"):
            candidates = [p.low, p.high, *p.grid]
        elif p.type == "bool":
            candidates = [False, True]
        else:
            candidates = list(p.choices) + list(p.grid)
        for value in candidates:
            try:
                apply_values(base, {**space.fixed, p.name: value})
            except ConfigError as exc:
                raise SpaceError(f"{space.source}: parameter '{p.name}' value {value!r} is not a valid config value: {exc}") from None
        seen.add(p.name)


def builtin_names() -> list[str]:
    return sorted(path.stem for path in SPACES_DIR.glob("*.yaml"))


def load_space(name_or_path: str) -> SearchSpace:
    """A built-in space by name (`bimodal_p`) or a YAML/JSON file by path."""
    path = Path(name_or_path)
    if path.suffix.lower() in (".yaml", ".yml", ".json") or path.exists():
        if not path.is_file():
            raise SpaceError(f"search space file {path} does not exist")
        name = path.stem
    else:
        path = SPACES_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            raise SpaceError(f"unknown search space '{name_or_path}'; built-in spaces: {', '.join(builtin_names())}, or pass a .yaml/.json file")
        name = name_or_path
    data, marks = read_space_file(path)
    return parse_space(data, name, str(path), marks)


def read_space_file(path: Path) -> tuple[Any, Marks]:
    """A space file's data, and where each of its mapping keys is written. A file that does not
    parse is a SpaceError naming the line and column of the problem (1-based)."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise SpaceError(f"search space file {path} cannot be parsed: line {line}: not UTF-8 text "
                         f"(byte {raw[exc.start]:#04x}: {exc.reason})") from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpaceError(f"search space file {path} cannot be parsed: line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
        marks: Marks = {}
        _json_marks(data, text, (), marks)
        return data, marks
    try:
        return _load_yaml_with_marks(text)
    except yaml.YAMLError as exc:
        raise SpaceError(f"search space file {path} cannot be parsed: {_describe_yaml_error(exc, text)}") from None


def _load_yaml_with_marks(text: str) -> tuple[Any, Marks]:
    """yaml.safe_load, also returning the 1-based (line, column) of every mapping key."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
    marks: Marks = {}
    seen: set[int] = set()  # an alias repeats a node (and may contain itself)
    stack = [(node, ())] if node is not None else []
    while stack:
        node, path = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode):
                    marks.setdefault((*path, str(key.value)), (key.start_mark.line + 1, key.start_mark.column + 1))
                    stack.append((value, (*path, str(key.value))))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, (*path, str(i))) for i, item in enumerate(node.value))
    return data, marks


def _json_marks(data: Any, text: str, path: tuple, marks: Marks) -> None:
    """Where each key of a parsed JSON space is written (keys written more than once are left out)."""
    if isinstance(data, dict):
        for key, value in data.items():
            position = json_key_position(text, str(key))
            if position:
                marks[(*path, str(key))] = position
            _json_marks(value, text, (*path, str(key)), marks)
    elif isinstance(data, list):
        for i, item in enumerate(data):
            _json_marks(item, text, (*path, str(i)), marks)


def _describe_yaml_error(exc: yaml.YAMLError, text: str) -> str:
    """One line: `line L, column C: <problem>` (1-based), with where the construct being read
    began when YAML says so, e.g. an unclosed bracket."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        line = f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark else problem
        context_mark = exc.context_mark
        if exc.problem and exc.context and context_mark and (
                mark is None or (context_mark.line, context_mark.column) != (mark.line, mark.column)):
            line += f" ({exc.context} that starts at line {context_mark.line + 1}, column {context_mark.column + 1})"
        return line
    if isinstance(exc, yaml.reader.ReaderError):  # a character YAML does not allow
        position = min(exc.position, len(text))
        what = f"{exc.reason} (U+{exc.character:04X})" if isinstance(exc.character, int) else exc.reason
        return f"line {text.count(chr(10), 0, position) + 1}, column {position - text.rfind(chr(10), 0, position)}: {what}"
    return str(exc).splitlines()[0]


def list_spaces() -> list[SearchSpace]:
    return [load_space(name) for name in builtin_names()]
