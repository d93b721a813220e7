"""The README's flag reference, generated from the commands' own argparse parsers.

    python -m sweeps.flag_reference                      # print the markdown
    python -m sweeps.flag_reference --write README.md    # replace the text between the markers
    python -m sweeps.flag_reference --check README.md    # exit 1 when it is out of date

Every command's parser is built at run time through its `build_parser()`, so the reference is
the flags as they are, never a copy: one table per command (flag, default, help text), between
`<!-- FLAGS:BEGIN -->` and `<!-- FLAGS:END -->`. tests/test_flag_reference.py fails when the
README's section differs from `render()`, e.g. after a flag was added without regenerating.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

BEGIN = "<!-- FLAGS:BEGIN -->"
END = "<!-- FLAGS:END -->"
NOTE = ("<!-- generated from the commands' parsers by `python -m sweeps.flag_reference --write README.md`: "
        "edit their help texts, not this -->")


class FlagReferenceError(Exception):
    """A file without the markers; one line."""


def parsers() -> list[argparse.ArgumentParser]:
    """Every command's parser, in the order a user meets them, built now."""
    from sweeps import export, final, report, run
    from trainer import export as trainer_export
    from trainer import hub, plot_schedule, train
    from trainer.data import grammar, prepare

    return [run.build_parser(), final.build_parser(), export.build_parser(), report.build_parser(),
            train.build_parser(), prepare.build_parser(), trainer_export.build_parser(), hub.build_parser(),
            plot_schedule.build_parser(), grammar.build_parser()]


def _portable(text: str) -> str:
    """The same text on every machine: this machine's data cache and home folder as the
    defaults they stand for."""
    from trainer.data.sources import default_cache_dir

    text = text.replace(str(default_cache_dir()), "$MDLM_CACHE_DIR or ~/.cache/mdlm-sweeps")
    return text.replace(str(Path.home()) + "/", "~/")


def _escape(text: str) -> str:
    """Plain text for a markdown table cell: code spans kept, markdown's special characters
    escaped outside them, `|` escaped everywhere (GFM splits cells on it even in code)."""
    parts = text.split("`")
    if len(parts) % 2 == 0:  # an unpaired backtick: no code spans
        parts = [text.replace("`", "\\`")]
    out = []
    for i, part in enumerate(parts):
        if i % 2:
            out.append("`" + part.replace("|", "\\|") + "`")
        else:
            for char in "\\|*<$~":
                part = part.replace(char, "\\" + char)
            out.append(part)
    return "".join(out)


def _code(text: str) -> str:
    return "`" + text.replace("|", "\\|") + "`"


def _invocation(action: argparse.Action) -> str:
    if not action.option_strings:
        return action.metavar or action.dest
    names = ", ".join(action.option_strings)
    if action.nargs == 0:
        return names
    if action.metavar is not None:
        metavar = " ".join(action.metavar) if isinstance(action.metavar, tuple) else action.metavar
    elif action.choices is not None:
        metavar = "{" + ",".join(map(str, action.choices)) + "}"
    else:
        metavar = action.dest.upper()
    shapes = {None: metavar, "?": f"[{metavar}]", "*": f"[{metavar} ...]", "+": f"{metavar} [{metavar} ...]"}
    args = shapes.get(action.nargs) if not isinstance(action.nargs, int) else " ".join([metavar] * action.nargs)
    return f"{names} {args or metavar}"


def _default(action: argparse.Action) -> str:
    if action.required or (not action.option_strings and action.nargs not in ("?", "*")):
        return "required"
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        return "off" if action.default is False else "on"
    if action.default is None or action.default is argparse.SUPPRESS:
        return "—"
    if action.default == "":
        return _code("''")
    return _code(_portable(str(action.default)))


def _help(action: argparse.Action, prog: str) -> str:
    text = action.help or ""
    if "%" in text:  # as argparse expands it
        params = {k: v for k, v in dict(vars(action), prog=prog).items() if v is not argparse.SUPPRESS}
        if params.get("choices") is not None:
            params["choices"] = ", ".join(map(str, params["choices"]))
        text = text % params
    text = " ".join(_portable(text).split())
    if isinstance(action, (argparse._AppendAction, argparse._AppendConstAction, argparse._CountAction)):
        text = f"{text} (repeatable)".strip()
    return _escape(text)


def command_table(parser: argparse.ArgumentParser) -> str:
    """One command: its name, its one-line description, and a row per flag or argument."""
    lines = [f"### `{parser.prog}`", ""]
    if parser.description:
        lines += [_escape(" ".join(_portable(parser.description).split())), ""]
    lines += ["| flag | default | what it does |", "|---|---|---|"]
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction)) or action.help is argparse.SUPPRESS:
            continue
        lines.append(f"| {_code(_invocation(action))} | {_default(action)} | {_help(action, parser.prog)} |")
    return "\n".join(lines)


def render() -> str:
    """The markdown between the README's markers (without the markers)."""
    return "\n\n".join([NOTE, *(command_table(p) for p in parsers())])


def splice(text: str, body: str) -> str:
    """`text` with everything between the markers replaced by `body`."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise FlagReferenceError(f"no {BEGIN} ... {END} section")
    return text[: start + len(BEGIN)] + "\n" + body + "\n" + text[end:]


def build_parser() -> argparse.ArgumentParser:
    from trainer.cli import ArgumentParser

    parser = ArgumentParser(prog="python -m sweeps.flag_reference", description=__doc__.split("\n")[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", metavar="FILE", help="replace the flag reference between the markers in FILE")
    group.add_argument("--check", metavar="FILE", help="exit 1 when FILE's flag reference differs from the parsers")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    body = render()
    if not (args.write or args.check):
        print(body)
        return 0
    path = Path(args.write or args.check)
    try:
        text = path.read_text(encoding="utf-8")
        updated = splice(text, body)
    except (OSError, FlagReferenceError) as exc:
        print(f"error: {path}: {exc}", file=sys.stderr)
        return 2
    if args.check:
        if updated != text:
            print(f"{path}: the flag reference is out of date; run `python -m sweeps.flag_reference --write {path}`",
                  file=sys.stderr)
            return 1
        return 0
    if updated != text:
        path.write_text(updated, encoding="utf-8")
    print(f"{path}: flag reference {'updated' if updated != text else 'unchanged'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
