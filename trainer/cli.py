"""Command-line conventions shared by every entry point: a mistake is one line on stderr
(`error: ...`), exit status 2, no usage dump and no traceback."""

from __future__ import annotations

import argparse
import sys


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad flag gives one line (argparse's default prints the usage first)."""

    def error(self, message: str):  # type: ignore[override]
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)
