"""The walls of the house (shared/reference/house.md), checked on the source: modules import
one way, counting imports hidden inside functions."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# sweeps/ from the bottom layer up: a module may import only modules of a lower layer.
# loggers (the W&B and TensorBoard callbacks) may import spec and storage only: tuning tells it the rest.
SWEEPS_LAYERS = [{"storage", "stats"}, {"spec"}, {"loggers"}, {"trial"}, {"schedulers"}, {"tuning"}, {"results"}, {"export", "confirm", "study"}, {"report"},
                 {"wandb_summary", "warm_start"}, {"final", "run"}, {"flag_reference"}]


def project_imports(path: Path) -> set[str]:
    """Every project module a file imports, at any depth of its code (`sweeps.spec`, ...)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found.update(n for n in names if n.split(".")[0] in ("sweeps", "trainer", "search_spaces"))
    return found


def sweeps_edges() -> dict[str, set[str]]:
    modules = {p.stem for p in (ROOT / "sweeps").glob("*.py") if p.stem != "__init__"}
    edges = {}
    for name in modules:
        targets = {n.split(".")[1] for n in project_imports(ROOT / "sweeps" / f"{name}.py")
                   if n.startswith("sweeps.") and n.split(".")[1] in modules}
        edges[name] = targets - {name}
    return edges


def test_sweeps_import_one_way():
    edges = sweeps_edges()
    layer = {name: i for i, names in enumerate(SWEEPS_LAYERS) for name in names}
    assert set(edges) == set(layer), f"modules without a layer: {set(edges) ^ set(layer)}"
    upward = [(a, b) for a, targets in edges.items() for b in targets if layer[b] >= layer[a] and a != b]
    assert not upward, f"imports that go up or sideways: {upward}"


def test_sweeps_has_no_import_cycle():
    edges = sweeps_edges()
    state: dict[str, int] = {}

    def visit(node, path):
        state[node] = 1
        for nxt in edges[node]:
            assert state.get(nxt) != 1, f"import cycle: {' -> '.join(path + [nxt])}"
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for name in edges:
        if name not in state:
            visit(name, [name])


def test_trainer_and_spaces_never_import_sweeps():
    for folder in ("trainer", "search_spaces"):
        for path in (ROOT / folder).rglob("*.py"):
            assert not any(n.startswith("sweeps") for n in project_imports(path)), path


def test_sweeps_never_import_the_model():
    """The sweep reaches the trainer through the config, the run plan and the loop's entry: a
    parameter count or a checkpoint's size comes from the plan (trainer/plan.py), not the model."""
    for path in (ROOT / "sweeps").glob("*.py"):
        assert not any(n == "trainer.model" or n.startswith("trainer.model.") for n in project_imports(path)), path


def test_the_entry_point_imports_cleanly():
    result = subprocess.run([sys.executable, "-c", "import sweeps.run"], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_help_and_flag_errors_import_neither_torch_nor_ray():
    """`--help`, a bad flag and the flag and space checks answer before the heavy layers load
    (torch and Ray cost seconds to import): the entry point imports them only where it uses them."""
    probe = ("import sys, runpy\n"
             "sys.argv = ['sweeps/run.py', *sys.argv[1:]]\n"
             "try:\n"
             "    runpy.run_path('sweeps/run.py', run_name='__main__')\n"
             "except SystemExit as exc:\n"
             "    code = exc.code\n"
             "heavy = sorted(m for m in ('torch', 'ray') if m in sys.modules)\n"
             "print('HEAVY', heavy, 'CODE', code)\n")
    for argv in (["--help"], ["--bogus"], ["--num-samples", "0"], ["--space", "no_such_space"],
                 ["--set", "derivitive_power=0"]):
        result = subprocess.run([sys.executable, "-c", probe, *argv], cwd=ROOT, capture_output=True, text=True,
                                timeout=120)
        assert "HEAVY [] CODE" in result.stdout, (argv, result.stdout[-500:], result.stderr[-500:])
