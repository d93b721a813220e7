"""BLiMP-style minimal pairs: a folder of JSONL files with `sentence_good`/`sentence_bad`.

The paradigm of a pair is its `UID` field, else the file's stem (BLiMP supplement
files carry only the two sentences). Real BLiMP folders and the built-in pairs go
through this same reader.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from trainer.errors import UserError


class PairsError(UserError):
    """Bad minimal-pair input; the message is one line."""


@dataclass(frozen=True)
class MinimalPair:
    good: str
    bad: str
    paradigm: str
    pair_id: str


def load_pairs(folder: str | Path) -> list[MinimalPair]:
    """Every pair of every `*.jsonl` under `folder` (recursively), in a stable order."""
    folder = Path(folder)
    if not folder.exists():
        raise PairsError(f"pairs folder {folder} does not exist")
    files = [folder] if folder.is_file() else sorted(folder.rglob("*.jsonl"))
    if not files:
        raise PairsError(f"pairs folder {folder} holds no *.jsonl files")
    pairs: list[MinimalPair] = []
    for path in files:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as exc:
            raise PairsError(f"{path} is not valid UTF-8 (byte {exc.start})") from None
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                raise PairsError(f"{path}:{number} is not a JSON object") from None
            if not isinstance(row, dict):
                raise PairsError(f"{path}:{number} is not a JSON object")
            good, bad = row.get("sentence_good"), row.get("sentence_bad")
            if not isinstance(good, str) or not isinstance(bad, str) or not good.strip() or not bad.strip():
                raise PairsError(f"{path}:{number} needs non-empty string fields 'sentence_good' and 'sentence_bad'")
            paradigm = str(row.get("UID") or path.stem)
            pair_id = str(row.get("pairID", number - 1))
            pairs.append(MinimalPair(good.strip(), bad.strip(), paradigm, pair_id))
    if not pairs:
        raise PairsError(f"pairs folder {folder} holds no pairs")
    return pairs


def limit_per_paradigm(pairs: list[MinimalPair], limit: int | None) -> list[MinimalPair]:
    """The first `limit` pairs of each paradigm (all when limit is None), order kept."""
    if limit is None:
        return list(pairs)
    seen: dict[str, int] = {}
    kept = []
    for pair in pairs:
        if seen.get(pair.paradigm, 0) < limit:
            seen[pair.paradigm] = seen.get(pair.paradigm, 0) + 1
            kept.append(pair)
    return kept


def is_heldout(pair: MinimalPair, heldout_fraction: float) -> bool:
    """Deterministic, order-free assignment by a hash of the pair's paradigm and text:
    the same pair lands on the same side whatever folder, file order or subset it
    comes in, so a held-out pair is never used for selection."""
    key = f"{pair.paradigm}\t{pair.good}\t{pair.bad}".encode("utf-8")
    digest = hashlib.blake2b(key, digest_size=8, person=b"mdlm-pairs").digest()
    return int.from_bytes(digest, "big") / 2.0**64 < heldout_fraction


def split_pairs(pairs: list[MinimalPair], heldout_fraction: float) -> tuple[list[MinimalPair], list[MinimalPair]]:
    """(tuning, held_out) within every paradigm, order kept."""
    tuning = [p for p in pairs if not is_heldout(p, heldout_fraction)]
    held_out = [p for p in pairs if is_heldout(p, heldout_fraction)]
    return tuning, held_out


def split_description(tuning: list[MinimalPair], held_out: list[MinimalPair], heldout_fraction: float) -> dict:
    """What provenance records about the split (enough to check it was not tuned on)."""

    def fingerprint(part: list[MinimalPair]) -> str:
        keys = sorted(f"{p.paradigm}\t{p.good}\t{p.bad}" for p in part)
        return hashlib.sha256("\n".join(keys).encode("utf-8")).hexdigest()[:16]

    return {
        "method": "blake2b(paradigm, good, bad) < heldout_fraction, within every paradigm",
        "heldout_fraction": heldout_fraction,
        "tuning_pairs": len(tuning),
        "heldout_pairs": len(held_out),
        "tuning_fingerprint": fingerprint(tuning),
        "heldout_fingerprint": fingerprint(held_out),
        "selection_metric_uses": "tuning pairs only",
    }
