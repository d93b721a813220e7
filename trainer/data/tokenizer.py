"""Byte-level BPE tokenizer with a fixed block of 16 special tokens.

Special token ids are fixed (0-15) so that model code, masking code and the
frequency table can refer to them as constants without loading the tokenizer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, List, Union

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

UNK_TOKEN = "<unk>"
BOS_TOKEN = "<s>"
EOS_TOKEN = "</s>"
PAD_TOKEN = "<pad>"
MASK_TOKEN = "<mask>"
NUM_SPECIAL_TOKENS = 16

# Order matters: the BPE trainer assigns ids to special tokens in list order,
# before the 256-symbol byte alphabet and the learned merges.
SPECIAL_TOKENS: List[str] = [UNK_TOKEN, BOS_TOKEN, EOS_TOKEN, PAD_TOKEN, MASK_TOKEN] + [
    f"<special_{i}>" for i in range(NUM_SPECIAL_TOKENS - 5)
]
UNK_ID, BOS_ID, EOS_ID, PAD_ID, MASK_ID = range(5)

DEFAULT_VOCAB_SIZE = 16384
# Smallest vocabulary that still holds the full byte alphabet plus the specials;
# below this the byte-level model could not represent arbitrary text.
MIN_VOCAB_SIZE = 256 + NUM_SPECIAL_TOKENS

assert len(SPECIAL_TOKENS) == NUM_SPECIAL_TOKENS


def _bpe_model() -> models.BPE:
    # ignore_merges: a pre-tokenized word that is itself in the vocabulary is
    # emitted as one token instead of being rebuilt merge by merge (faster, and
    # what newer GPT-style tokenizers do). Only pass it where supported.
    kwargs = {"unk_token": UNK_TOKEN}
    try:
        models.BPE(ignore_merges=True)
        kwargs["ignore_merges"] = True
    except TypeError:  # older tokenizers releases
        pass
    return models.BPE(**kwargs)


def build_untrained_tokenizer() -> Tokenizer:
    """The tokenizer pipeline (normaliser, pre-tokenizer, decoder) before training."""
    tok = Tokenizer(_bpe_model())
    tok.normalizer = normalizers.NFKC()
    # add_prefix_space=True: a word at the start of a line is tokenized like
    # the same word mid-sentence ("Ġthe"), so lines encoded separately and then
    # concatenated look like running text to the model.
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    # No post-processor: the data pipeline inserts <s>/</s> itself when packing.
    return tok


def train_tokenizer(
    text_iterator: Iterable[Union[str, List[str]]],
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    show_progress: bool = True,
) -> Tokenizer:
    """Train a byte-level BPE tokenizer.

    ``text_iterator`` yields strings or lists of strings (batches are faster).
    It must only contain TRAINING text; the caller is responsible for that.
    The resulting vocabulary can be smaller than ``vocab_size`` when the
    corpus runs out of merges; use ``tok.get_vocab_size()`` for the real size.
    """
    if vocab_size < MIN_VOCAB_SIZE:
        raise ValueError(f"vocab_size must be >= {MIN_VOCAB_SIZE} (256 bytes + 16 specials), got {vocab_size}")
    tok = build_untrained_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        # Always include all 256 bytes so no input ever maps to <unk>.
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=show_progress,
    )
    tok.train_from_iterator(text_iterator, trainer=trainer)
    check_special_tokens(tok)
    return tok


def check_special_tokens(tok: Tokenizer) -> None:
    """Raise ValueError unless the special tokens sit at their fixed ids."""
    for expected_id, token in enumerate(SPECIAL_TOKENS):
        got = tok.token_to_id(token)
        if got != expected_id:
            raise ValueError(f"tokenizer has {token!r} at id {got}, expected {expected_id}")
    ids = tok.encode(MASK_TOKEN, add_special_tokens=False).ids
    if ids != [MASK_ID]:
        raise ValueError(f"{MASK_TOKEN!r} encodes to {ids}, expected [{MASK_ID}]")


def load_tokenizer(path: Union[str, Path]) -> Tokenizer:
    """Load a tokenizer saved with ``Tokenizer.save`` and check its special ids."""
    tok = Tokenizer.from_file(str(path))
    check_special_tokens(tok)
    return tok
