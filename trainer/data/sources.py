"""Where a run's data comes from: the user's corpus and pairs, or the built-in ones.

The built-in corpus is just another corpus folder in BabyLM layout: after this
point it goes through exactly the same preparation and reading code as a real one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import hashlib

from trainer.data import grammar
from trainer.data.grammar import builtin_data_dir
from trainer.data.pairs import load_pairs
from trainer.data.prepare import PreparedData, cached_preparation, prepare_corpus


def default_cache_dir() -> Path:
    """`$MDLM_CACHE_DIR`, else ~/.cache/mdlm-sweeps."""
    return Path(os.environ.get("MDLM_CACHE_DIR") or Path.home() / ".cache" / "mdlm-sweeps").expanduser()


@dataclass(frozen=True)
class RunData:
    prepared: PreparedData
    corpus_dir: Path
    pairs_dir: Path | None

    @property
    def data_root(self) -> Path:
        return self.prepared.root


def _builtin_root(cache_dir: Path, generate: bool = True) -> Path:
    # Keyed by the generator's source too: a grammar edit that forgot to bump
    # GRAMMAR_VERSION must not silently reuse the old corpus.
    source_hash = hashlib.sha256(Path(grammar.__file__).read_bytes()).hexdigest()[:12]
    return builtin_data_dir(cache_dir / "builtin" / source_hash, generate=generate)


def find_prepared(config, cache_dir: str | Path | None = None) -> PreparedData | None:
    """The prepared data `resolve_data` would use, if it is already in the cache; writes nothing
    (it reads and hashes the corpus files). None when the corpus has not been prepared yet."""
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    corpus_dir = _builtin_root(cache_dir, generate=False) / "corpus" if config.corpus is None else Path(config.corpus)
    if not corpus_dir.is_dir():
        return None
    return cached_preparation(corpus_dir.expanduser(), cache_dir / "prepared", vocab_size=config.vocab_size,
                              seq_length=config.seq_length)


def resolve_data(config, cache_dir: str | Path | None = None, show_progress: bool = True) -> RunData:
    """Prepare (or reuse) the Arrow cache for `config`'s corpus and find its pairs."""
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    pairs_dir = Path(config.pairs).expanduser() if config.pairs else None
    if pairs_dir is not None:
        load_pairs(pairs_dir)  # validate the user's pairs before any slow work
    if config.corpus is None:
        builtin = _builtin_root(cache_dir)
        corpus_dir = builtin / "corpus"
        pairs_dir = pairs_dir or builtin / "pairs"
    else:
        corpus_dir = Path(config.corpus).expanduser()
    prepared = prepare_corpus(
        corpus_dir,
        cache_dir / "prepared",
        vocab_size=config.vocab_size,
        seq_length=config.seq_length,
        show_progress=show_progress,
    )
    # A cache folder can be damaged after it was built (disk errors, a partial copy between
    # machines). Sizes are checked on every open; the full hash check (about a second per
    # GB) runs here once per run or sweep, before any trial reads the shards.
    from trainer.data.prepare import open_prepared

    prepared = open_prepared(prepared.root, verify_hashes=True)
    return RunData(prepared, corpus_dir, pairs_dir)
