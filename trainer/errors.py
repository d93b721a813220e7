"""One base for the errors a user can fix: bad flags, configs, corpora, pairs, caches,
checkpoints, search spaces, sweep folders, clusters.

Each carries a one-line message naming the problem; every command line catches `UserError`,
prints `error: <message>` to stderr and exits with status 2, having written nothing.
Anything else that escapes is a bug, and shows its traceback.
"""

from __future__ import annotations


class UserError(ValueError):
    """Bad input; the message is one line naming what is wrong and what is allowed."""
