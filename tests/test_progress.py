"""The sweep's console between evaluations: the overall line's counts and ETA, and freed CPUs
handed to the trials still running at the tail (driver side, with stand-in trials)."""

from types import SimpleNamespace

import pytest

from sweeps import tuning
from sweeps.trial import ProgressBoard

from test_sweep_spec import make_spec


def trial(trial_id, status, step=0, node="n1"):
    return SimpleNamespace(trial_id=trial_id, status=status, last_result={"step": step, "node_id": node} if step else {})


@pytest.fixture
def lines(tmp_path):
    spec = make_spec(tmp_path)
    console = tuning.ConsoleLines(spec)
    console.planned = 6
    console.sweep_start = 0.0
    return console


def test_overall_line_counts_and_eta(lines):
    budget = lines.spec.base_config.max_steps
    lines.started_at = {"a": 0.0, "b": 40.0}
    lines.latest_step = {"a": budget // 2, "b": budget // 4}
    trials = [trial("done", "TERMINATED", budget), trial("cut", "TERMINATED", budget // 3),
              trial("a", "RUNNING", budget // 4), trial("b", "RUNNING")]
    now = 100.0
    text = lines.overall_line(trials, now)
    assert "2/6 trials ended (1 stopped early), 2 running, 2 queued; 1m40s elapsed" in text
    # Wall seconds per step: a 100 s over budget/2 steps, b 60 s over budget/4: median of two = the larger.
    rates = sorted([100.0 / (budget // 2), 60.0 / (budget // 4)])
    per_step = rates[1]
    remaining = (budget - budget // 2) + (budget - budget // 4) + 2 * budget
    seconds = int(remaining * per_step / 2)
    assert f"about {seconds // 60}m{seconds % 60:02d}s left at most" in text


def test_freed_cpus_go_to_the_last_trials_only_at_the_tail(lines, monkeypatch):
    posted = []
    lines.board = SimpleNamespace(set_threads=SimpleNamespace(remote=posted.append))
    monkeypatch.setattr(tuning, "node_cpu_counts", lambda: {"n1": 2.0, "n2": 4.0})
    lines.planned = 3
    # Something still queued: every trial keeps its reserved CPU.
    lines._hand_out_threads([trial("a", "RUNNING", 5), trial("b", "PENDING")])
    assert posted == []
    # The tail: one trial left on a 2-CPU node takes both; two on a 4-CPU node take two each.
    lines._hand_out_threads([trial("a", "RUNNING", 5), trial("x", "TERMINATED", 9),
                             trial("c", "RUNNING", 5, node="n2"), trial("d", "RUNNING", 5, node="n2")])
    assert posted[-1] == {"a": 2, "c": 2, "d": 2}
    # A node it does not know (no progress yet): nothing handed out there.
    lines.node_of = {}
    lines._hand_out_threads([trial("e", "RUNNING"), trial("x", "TERMINATED", 9), trial("y", "TERMINATED", 9)])
    assert posted[-1] == {}


def test_progress_board_hands_back_threads_and_drains_once():
    board = ProgressBoard()
    assert board.post("a", {"step": 1}) is None
    board.set_threads({"a": 2})
    assert board.post("a", {"step": 2}) == 2 and board.post("b", {"step": 1}) is None
    assert board.drain() == [("a", {"step": 1}), ("a", {"step": 2}), ("b", {"step": 1})]
    assert board.drain() == []
