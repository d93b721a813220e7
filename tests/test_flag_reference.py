"""The README's flag reference is the commands' parsers as they are (sweeps/flag_reference.py)."""

import argparse

import pytest

from sweeps import flag_reference, run

ROOT = flag_reference.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def test_the_readme_flag_reference_is_the_parsers():
    text = README.read_text(encoding="utf-8")
    assert flag_reference.splice(text, flag_reference.render()) == text, (
        "README.md's flag reference differs from the parsers: run `python -m sweeps.flag_reference --write README.md`")


def test_every_flag_of_every_command_is_in_the_reference():
    body = flag_reference.render()
    for parser in flag_reference.parsers():
        assert f"### `{parser.prog}`" in body
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            name = action.option_strings[0] if action.option_strings else action.dest
            assert f"| `{name}" in body, f"{parser.prog} {name}"


def test_a_new_flag_changes_the_reference(monkeypatch):
    """Read at run time: a flag added to sweeps/run.py shows up without touching the generator."""
    before = flag_reference.render()
    build = run.build_parser

    def with_new_flag():
        parser = build()
        parser.add_argument("--brand-new-flag", type=int, default=7, help="a | pipe, *stars* and <storage>")
        return parser

    monkeypatch.setattr(run, "build_parser", with_new_flag)
    after = flag_reference.render()
    assert after != before
    assert r"| `--brand-new-flag BRAND_NEW_FLAG` | `7` | a \| pipe, \*stars\* and \<storage> |" in after


def test_write_then_check(tmp_path, capsys):
    doc = tmp_path / "README.md"
    doc.write_text(f"# title\n\n{flag_reference.BEGIN}\nstale\n{flag_reference.END}\n\nafter\n", encoding="utf-8")
    assert flag_reference.main(["--check", str(doc)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "out of date" in err
    assert flag_reference.main(["--write", str(doc)]) == 0
    text = doc.read_text(encoding="utf-8")
    assert text.startswith("# title\n\n") and text.endswith(f"{flag_reference.END}\n\nafter\n")
    assert "stale" not in text and "### `python sweeps/run.py`" in text
    assert flag_reference.main(["--check", str(doc)]) == 0
    assert flag_reference.main(["--write", str(doc)]) == 0 and doc.read_text(encoding="utf-8") == text


def test_a_file_without_markers_is_one_line_error(tmp_path, capsys):
    doc = tmp_path / "README.md"
    doc.write_text("no markers\n", encoding="utf-8")
    assert flag_reference.main(["--check", str(doc)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1


def test_the_reference_is_the_same_on_every_machine(monkeypatch, tmp_path):
    """This machine's cache folder and home never leak into the README."""
    monkeypatch.setenv("MDLM_CACHE_DIR", str(tmp_path / "elsewhere"))
    body = flag_reference.render()
    assert str(tmp_path) not in body
    monkeypatch.delenv("MDLM_CACHE_DIR")
    assert flag_reference.render() == body


@pytest.mark.parametrize("module", ["sweeps.report", "sweeps.export", "trainer.train", "trainer.export", "trainer.hub",
                                    "trainer.plot_schedule", "trainer.data.prepare", "trainer.data.grammar"])
def test_every_command_builds_its_parser(module):
    import importlib

    parser = importlib.import_module(module).build_parser()
    assert isinstance(parser, argparse.ArgumentParser)
    assert module in parser.prog or module.replace(".", "/") + ".py" in parser.prog
