"""The validation sample: spread over every source file in proportion to its rows, fixed
for every trial, recorded where a sweep's answer is read."""

import random

import numpy as np
import pytest

from trainer.data.prepare import prepare_corpus
from trainer.data.tokenizer import BOS_ID, EOS_ID, PAD_ID, load_tokenizer
from trainer.data.validation import allocate, interim_keep, validation_rows


def test_largest_remainder_by_hand():
    # Quotas 7 * (10, 30, 60) / 100 = 0.7, 2.1, 4.2: floors 0, 2, 4 (6), the one left goes
    # to the largest remainder (0.7).
    assert allocate([10, 30, 60], 7) == [1, 2, 4]
    # Ties go to the earlier file: quotas 1.5, 1.5 -> 1, 1 and one more for the first.
    assert allocate([5, 5], 3) == [2, 1]
    assert allocate([3, 4], 100) == [3, 4]  # asking for more than there is: everything
    assert allocate([0, 8], 4) == [0, 4]


def test_sample_is_fixed_proportional_and_inside_each_file():
    spans = [("a.dev", 0, 40), ("b.dev", 40, 200), ("c.dev", 200, 1000)]
    rows, description = validation_rows(spans, 100)
    again, _ = validation_rows(spans, 100)
    assert np.array_equal(rows, again)  # common random numbers: the same rows every call
    assert len(set(rows.tolist())) == 100
    per_file = [int(((rows >= s) & (rows < e)).sum()) for _, s, e in spans]
    assert per_file == [4, 16, 80]  # 100 * (40, 160, 800) / 1000
    assert [f["rows"] for f in description["files"]] == per_file
    assert [f["of"] for f in description["files"]] == [40, 160, 800]
    assert description["rows"] == 100 and description["of"] == 1000
    # A different seed draws different rows with the same allocation.
    other, _ = validation_rows(spans, 100, seed=1)
    assert not np.array_equal(rows, other)
    assert [int(((other >= s) & (other < e)).sum()) for _, s, e in spans] == per_file


def domain_documents(words, n_docs, rng, tag):
    return "\n".join(f"{tag}{d} " + " ".join(rng.choice(words) for _ in range(rng.randint(6, 14))) + "\n"
                     for d in range(n_docs))


@pytest.fixture(scope="module")
def two_domains(tmp_path_factory):
    """A BabyLM folder whose two dev files use disjoint vocabularies, so a row's domain can be read
    off its tokens: alpha.dev (a third of the dev text) and beta.dev (two thirds)."""
    root = tmp_path_factory.mktemp("two_domains")
    rng = random.Random(0)
    alpha = "apple banana cherry grape melon peach plum pear lemon lime".split()
    beta = "seven eight nine ten eleven twelve twenty thirty forty fifty".split()
    corpus = root / "corpus"
    corpus.mkdir()
    (corpus / "alpha.train").write_text(domain_documents(alpha, 400, rng, "a"))
    (corpus / "beta.train").write_text(domain_documents(beta, 400, rng, "b"))
    (corpus / "alpha.dev").write_text(domain_documents(alpha, 100, rng, "a"))
    (corpus / "beta.dev").write_text(domain_documents(beta, 200, rng, "b"))
    data = prepare_corpus(corpus, root / "cache", vocab_size=300, seq_length=32, show_progress=False)
    return data, set(alpha), set(beta)


def test_source_rows_partition_the_shard_by_file(two_domains):
    data, alpha, beta = two_domains
    spans = data.source_rows("val")
    assert [path for path, _, _ in spans] == ["alpha.dev", "beta.dev"]
    assert spans[0][1] == 0 and spans[0][2] == spans[1][1] and spans[1][2] == data.manifest["rows"]["val"]
    assert [p for p, _, _ in data.source_rows("train")] == ["alpha.train", "beta.train"]
    # Every row a file owns holds that file's words (the first row of beta may start with
    # the end of alpha: a row spanning two files counts for the later one).
    tok = load_tokenizer(data.tokenizer_path)
    from trainer.data.dataset import TokenShard

    shard = TokenShard(data.val_path)
    for (path, start, end), own, other in ((spans[0], alpha, beta), (spans[1], beta, alpha)):
        for row in range(start + 1, end):
            # Rows are packed, so a row's first and last token may be pieces of a word: skip them.
            tokens = [t for t in shard.rows([row])[0].tolist() if t not in (BOS_ID, EOS_ID, PAD_ID)]
            words = set(tok.decode(tokens[1:-1]).split())
            text = tok.decode(tokens)
            assert not words & other and (words & own or len(tokens) < 3), (path, row, text)


def test_validation_sample_reads_both_domains(two_domains):
    data, _, _ = two_domains
    spans = data.source_rows("val")
    n_alpha, n_beta = (end - start for _, start, end in spans)
    n = 12
    rows, description = validation_rows(spans, n)
    in_alpha = int((rows < spans[0][2]).sum())
    # Proportional to each file's rows (largest remainder), not the first n rows in file order,
    # which would all be alpha.dev.
    assert in_alpha == allocate([n_alpha, n_beta], n)[0] and 0 < in_alpha < n
    assert set(range(n)) <= set(range(spans[0][2]))  # the old first-n rows: alpha only
    assert [f["path"] for f in description["files"]] == ["alpha.dev", "beta.dev"]


def per_file_counts(rows, spans):
    return np.array([int(((rows >= start) & (rows < end)).sum()) for _, start, end in spans])


def spans_of(sizes):
    ends = np.cumsum(sizes)
    return [(f"file{i}.dev", int(end - size), int(end)) for i, (size, end) in enumerate(zip(sizes, ends))]


@pytest.mark.parametrize("sizes", [(1000, 500, 30), (1248, 2753), (5000, 40, 700, 3, 1200, 90)])
def test_interim_subsample_keeps_every_files_share_and_every_rates(sizes):
    """The interim quarter is a stratified sample of the same files in the same proportions."""
    num_rates, subsample, n = 8, 4, 512
    spans = spans_of(sizes)
    rows, _ = validation_rows(spans, n)
    keep = interim_keep(len(rows), num_rates, subsample)
    assert keep.sum() == 128
    in_sample = per_file_counts(rows, spans)
    in_interim = per_file_counts(rows[keep], spans)
    # Each file's share among the kept rows is its share of the whole sample to within the
    # rounding of apportioning 128 rows over the files (Sainte-Lague on a proportional
    # interleave keeps every prefix within about a row; 1.5 leaves room for that rounding).
    assert np.all(np.abs(in_interim - in_sample * keep.sum() / n) <= 1.5), (in_interim, in_sample / 4)
    # Every mask rate (row i at rate i mod num_rates) keeps its share: 16 rows each.
    assert np.array_equal(np.bincount(np.flatnonzero(keep) % num_rates, minlength=num_rates), np.full(num_rates, 16))


@pytest.mark.parametrize("sizes, num_rates", [((3000, 3000), 8), ((1000, 500, 30), 8), ((1248, 2753), 8),
                                              ((900, 900, 900, 50), 4), ((5000, 40, 700, 3, 1200, 90), 16)])
def test_each_file_meets_every_mask_rate_about_equally_often(sizes, num_rates):
    """Row i is scored at rate i mod num_rates, so a file's rows must not fall in step with it
    (interleaving two equal files alone would give one only the even rates)."""
    spans = spans_of(sizes)
    rows, _ = validation_rows(spans, 512, num_rates=num_rates)
    rate = np.arange(len(rows)) % num_rates
    for (_, start, end), k in zip(spans, per_file_counts(rows, spans)):
        mine = (rows >= start) & (rows < end)
        per_rate = np.bincount(rate[mine], minlength=num_rates)
        assert np.all(np.abs(per_rate - k / num_rates) <= 1.5), (k, per_rate)


def test_the_order_changes_neither_the_rows_nor_any_files_count():
    spans = spans_of((1000, 500, 30))
    rows, description = validation_rows(spans, 512)
    assert len(set(rows.tolist())) == 512
    assert per_file_counts(rows, spans).tolist() == allocate([1000, 500, 30], 512) == [335, 167, 10]
    assert "interleaved" in description["order"]
    # The same rows in another rate block (only the order inside blocks may differ).
    other, _ = validation_rows(spans, 512, num_rates=4)
    assert sorted(other.tolist()) == sorted(rows.tolist())
    assert np.array_equal(interim_keep(10, 4, 2), [True] * 8 + [False] * 2)  # blocks 0, 1 of 3
    assert interim_keep(7, 8, 3).all() and interim_keep(512, 8, 1).all()
