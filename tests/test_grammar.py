"""Tests of the built-in grammar corpus and minimal pairs (trainer/data/grammar.py).

The agreement checks read the generated text and judge it against lexicon
facts (which forms are plural nouns, which names are female, ...), never by
re-running the generator.
"""

from __future__ import annotations

import json
import math
import multiprocessing
from pathlib import Path

import pytest

from trainer.data import grammar as G

LEX = G.LEXICON
SMALL = dict(train_sentences=3000, dev_sentences=200, pairs_per_paradigm=40)

SINGULAR_DETERMINERS = {"this", "a", "an", "every", "each", "another", "one"}
PLURAL_DETERMINERS = {"these", "those", "many", "several", "two", "three", "four", "few", "some"}
ALL_DETERMINERS = SINGULAR_DETERMINERS | PLURAL_DETERMINERS | {"the", "that"}
NUMBERED_DETERMINERS = SINGULAR_DETERMINERS | PLURAL_DETERMINERS | {"that"}  # "the" shows no number
PREPOSITIONS = set(G.NOUN_PREPOSITIONS.split())
CLAUSE_LINKS = {"and", "but", "because", "while", "so", "although", "that", "who", "what"}
NAME_GENDER = {name.lower(): gender for name, gender in LEX.name_gender.items()}
NOUN_GENDER = {}  # form -> "m"/"f"/"n" (it), "any" (teacher: a person of either gender) or "pl"
for _noun in LEX.nouns:
    NOUN_GENDER[_noun.singular] = _noun.gender or "any"
    NOUN_GENDER[_noun.plural] = "pl"
REFLEXIVE_FOR = {"m": "himself", "f": "herself", "n": "itself", "pl": "themselves"}
# Present forms that are also past forms ("read", "cut", "hurt") tell us nothing about number.
SG_FINITE = LEX.third_singular_verbs - LEX.past_forms
PL_FINITE = LEX.plural_present_verbs - LEX.past_forms
FINITE = SG_FINITE | PL_FINITE


def _spawned_builtin_data_dir(cache_root: str) -> None:
    G.builtin_data_dir(cache_root, 0)


@pytest.fixture(scope="module")
def default_data(tmp_path_factory):
    """The default-size data, made by two processes calling builtin_data_dir at once."""
    cache = tmp_path_factory.mktemp("cache")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=G.builtin_data_dir, args=(str(cache), 0)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0]
    root = G.builtin_data_dir(cache, 0)  # already there: must not regenerate
    train = (root / "corpus" / "builtin.train").read_text(encoding="utf-8")
    dev = (root / "corpus" / "builtin.dev").read_text(encoding="utf-8")
    pairs = {p.stem: [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines()]
             for p in sorted((root / "pairs").glob("*.jsonl"))}
    train_lines = [l for l in train.splitlines() if l.strip()]
    return {"cache": cache, "root": root, "train": train, "dev": dev, "pairs": pairs,
            "train_lines": train_lines,
            "train_tokens": [(line, _tokens(line)) for line in train_lines],
            "dev_lines": [l for l in dev.splitlines() if l.strip()]}


def _tokens(line: str) -> list[str]:
    return [w.strip(".?").lower() for w in line.split()]


def _noun_phrase_end(tokens: list[str], i: int) -> int | None:
    """Index of the head noun of 'det adj* noun' starting at tokens[i], or None."""
    if i >= len(tokens) or tokens[i] not in ALL_DETERMINERS:
        return None
    j = i + 1
    while j < len(tokens) and tokens[j] in LEX.adjective_words:
        j += 1
    if j < len(tokens) and tokens[j] in NOUN_GENDER:
        return j
    return None


def _subject(tokens: list[str]) -> tuple[str | None, int]:
    """(NOUN_GENDER-style class of the sentence-initial subject's head, index after the head); None if none."""
    first = tokens[0]
    if first in NAME_GENDER:
        return NAME_GENDER[first], 1
    if first in {"he", "she", "it", "they"}:
        return {"he": "m", "she": "f", "it": "n", "they": "pl"}[first], 1
    head = _noun_phrase_end(tokens, 0)
    if head is None:
        return None, 0
    return NOUN_GENDER[tokens[head]], head + 1


# ---------------------------------------------------------------------------
# Layout, determinism, concurrency
# ---------------------------------------------------------------------------


def test_concurrent_calls_leave_one_intact_directory(default_data):
    cache, root = default_data["cache"], default_data["root"]
    assert root == cache / f"builtin-v{G.GRAMMAR_VERSION}-seed0"
    assert sorted(p.name for p in cache.iterdir()) == [root.name]  # no temporary leftovers
    assert sorted(p.name for p in root.iterdir()) == ["README.txt", "corpus", "pairs"]
    assert sorted(p.name for p in (root / "corpus").iterdir()) == ["builtin.dev", "builtin.train"]
    assert len(default_data["train_lines"]) == 60000
    assert len(default_data["dev_lines"]) == 3000
    assert "seed 0" in (root / "README.txt").read_text()
    for rows in default_data["pairs"].values():
        assert len(rows) == 300


def test_same_seed_same_bytes_and_different_seed_different(tmp_path):
    def files(root: Path) -> dict:
        return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    G.generate_builtin_data(tmp_path / "a", seed=7, **SMALL)
    G.generate_builtin_data(tmp_path / "b", seed=7, **SMALL)
    G.generate_builtin_data(tmp_path / "c", seed=8, **SMALL)
    a, b, c = files(tmp_path / "a"), files(tmp_path / "b"), files(tmp_path / "c")
    assert a == b
    assert a.keys() == c.keys()
    assert a[Path("corpus/builtin.train")] != c[Path("corpus/builtin.train")]
    assert a[Path("pairs/determiner_noun_agreement.jsonl")] != c[Path("pairs/determiner_noun_agreement.jsonl")]


def test_generate_summary_and_existing_target(tmp_path):
    summary = G.generate_builtin_data(tmp_path / "d", seed=3, **SMALL)
    assert summary["created"] is True
    assert summary["train_sentences"] == 3000 and summary["dev_sentences"] == 200
    assert summary["train_words"] > 3000 * 5
    assert summary["paradigms"] == {p.uid: 40 for p in G.PARADIGMS}
    with pytest.raises(FileExistsError):
        G.generate_builtin_data(tmp_path / "d", seed=3, **SMALL)
    again = G.generate_builtin_data(tmp_path / "d", seed=3, exist_ok=True, **SMALL)
    assert again["created"] is False and again["train_words"] == summary["train_words"]


def test_command_line(tmp_path, capsys):
    out = tmp_path / "cli"
    assert G.main([str(out), "--seed", "2", "--train-sentences", "2000", "--dev-sentences", "100",
                   "--pairs-per-paradigm", "20"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["train_sentences"] == 2000 and summary["seed"] == 2
    assert G.main([str(out)]) == 1  # refuses to overwrite


# ---------------------------------------------------------------------------
# Corpus shape: documents, sentences, vocabulary
# ---------------------------------------------------------------------------


def test_documents_and_sentences(default_data):
    documents = [d.splitlines() for d in default_data["train"].strip("\n").split("\n\n")]
    assert all(5 <= len(d) <= 20 for d in documents[:-1]) and 1 <= len(documents[-1]) <= 20
    for line in default_data["train_lines"] + default_data["dev_lines"]:
        assert line[0].isupper() and line[-1] in ".?" and line == line.strip() and "  " not in line
    assert not set(default_data["dev_lines"]) & set(default_data["train_lines"])
    assert 0.03 < len(default_data["dev"]) / len(default_data["train"]) < 0.07
    words = sum(len(l.split()) for l in default_data["train_lines"])
    assert 480_000 <= words <= 750_000


def test_vocabulary_size_and_zipf(default_data):
    counts = G.word_types(default_data["train_lines"])
    assert len(counts) >= 2000
    frequencies = sorted(counts.values(), reverse=True)[:300]
    xs = [math.log(r) for r in range(1, len(frequencies) + 1)]
    ys = [math.log(f) for f in frequencies]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    assert -1.6 < slope < -0.6
    assert sum(1 for c in counts.values() if c <= 5) >= 50  # a tail of rare words
    # Real irregular forms and pseudo-words both occur.
    for word in ("children", "people", "mice", "ate", "eaten", "went", "gone", "wrote", "written"):
        assert counts[word] > 0, word
    pseudo = {n.singular for n in LEX.nouns if not n.real}
    assert sum(1 for w in counts if w in pseudo) > 100


def test_lexicon_facts():
    assert ("children", "person") in {(n.plural, n.cls) for n in LEX.nouns if n.singular == "child"}
    assert {"men", "mice", "people", "geese", "teeth"} <= LEX.plural_nouns
    assert not LEX.singular_nouns & LEX.plural_nouns
    forms = {(v.base, v.past, v.participle) for v in LEX.irregular_verbs}
    for triple in [("eat", "ate", "eaten"), ("go", "went", "gone"), ("see", "saw", "seen"),
                   ("write", "wrote", "written"), ("take", "took", "taken"), ("break", "broke", "broken"),
                   ("drive", "drove", "driven"), ("sing", "sang", "sung")]:
        assert triple in forms
    assert NAME_GENDER["mary"] == "f" and NAME_GENDER["john"] == "m"
    assert len(LEX.nouns) > 400 and len(LEX.adjectives) > 150


# ---------------------------------------------------------------------------
# Agreement in the generated text
# ---------------------------------------------------------------------------


def test_determiner_noun_agreement_in_text(default_data):
    checked = 0
    for line, tokens in default_data["train_tokens"]:
        for i, token in enumerate(tokens[:-1]):
            if token in NUMBERED_DETERMINERS:
                head = _noun_phrase_end(tokens, i)
                if head is None:
                    assert token in {"that", "one"}, line  # complementizer / relative "that"
                    continue
                number = "pl" if NOUN_GENDER[tokens[head]] == "pl" else "sg"
                assert number == ("pl" if token in PLURAL_DETERMINERS else "sg"), line
                checked += 1
            if token in ("a", "an"):
                assert (token == "an") == (tokens[i + 1][0] in "aeiou"), line
    assert checked > 50_000


def test_subject_verb_agreement_in_text(default_data):
    checked = {"simple": 0, "across_pp": 0, "across_rc": 0}
    for line, tokens in default_data["train_tokens"]:
        subject, i = _subject(tokens)
        if subject is None or i >= len(tokens):
            continue
        kind = "simple"
        if tokens[i] in PREPOSITIONS and _noun_phrase_end(tokens, i + 1) is not None:
            i = _noun_phrase_end(tokens, i + 1) + 1  # "the key to the cabinets | is"
            kind = "across_pp"
        elif tokens[i] in ("that", "who") and _noun_phrase_end(tokens, i + 1) is not None:
            i = _noun_phrase_end(tokens, i + 1) + 2  # "the dogs that the girl likes | are"
            kind = "across_rc"
        if i < len(tokens) and tokens[i] in FINITE:
            assert tokens[i] in (PL_FINITE if subject == "pl" else SG_FINITE), line
            checked[kind] += 1
    assert checked["simple"] > 10_000 and checked["across_pp"] > 1_000 and checked["across_rc"] > 500, checked


def test_existential_there_agreement_in_text(default_data):
    checked = 0
    for line, tokens in default_data["train_tokens"]:
        for i, token in enumerate(tokens[:-2]):
            if token == "there" and tokens[i + 1] in ("is", "are", "was", "were", "has", "have"):
                start = i + 3 if tokens[i + 2] == "been" else i + 2
                head = _noun_phrase_end(tokens, start)
                assert head is not None, line
                plural = NOUN_GENDER[tokens[head]] == "pl"
                assert plural == (tokens[i + 1] in ("are", "were", "have")), line
                checked += 1
    assert checked > 3_000


def test_reflexive_agreement_in_text(default_data):
    checked = {"m": 0, "f": 0, "n": 0, "pl": 0}
    for line, tokens in default_data["train_tokens"]:
        reflexives = [t for t in tokens if t in LEX.reflexives]
        if len(reflexives) != 1 or CLAUSE_LINKS & set(tokens):
            continue
        subject, _ = _subject(tokens)
        if subject is None:
            continue
        assert reflexives[0] == REFLEXIVE_FOR.get(subject), line  # "any" (the teacher) never takes one
        checked[subject] += 1
    assert min(checked.values()) > 300, checked


def test_irregular_forms_in_text(default_data):
    auxiliaries = {"has", "have", "had", "is", "are", "was", "were", "been", "be"}
    participles = pasts = 0
    for line, tokens in default_data["train_tokens"]:
        for previous, token in zip(tokens, tokens[1:]):
            if token in LEX.past_only_forms:  # "ate", never "has ate"
                assert previous not in auxiliaries, line
                pasts += 1
            if token in LEX.participle_only_forms and line.endswith("."):  # "has eaten", never "the dog eaten"
                assert previous in auxiliaries, line
                participles += 1
    assert pasts > 2_000 and participles > 2_000


# ---------------------------------------------------------------------------
# Minimal pairs
# ---------------------------------------------------------------------------

REQUIRED_FIELDS = {"sentence_good", "sentence_bad", "UID", "field", "linguistics_term", "pairID"}


def test_pair_files_and_fields(default_data):
    pairs = default_data["pairs"]
    assert len(pairs) >= 6 and set(pairs) == {p.uid for p in G.PARADIGMS}
    for uid, rows in pairs.items():
        assert len(rows) >= 200
        assert [r["pairID"] for r in rows] == [str(i) for i in range(len(rows))]
        assert len({r["sentence_good"] for r in rows}) == len(rows)  # no duplicate pairs
        for row in rows:
            assert REQUIRED_FIELDS <= row.keys() and row["UID"] == uid
            assert row["field"] in ("morphology", "syntax")
            good, bad = row["sentence_good"].split(), row["sentence_bad"].split()
            assert good != bad and len(good) == len(bad)
            assert sum(g != b for g, b in zip(good, bad)) == 1  # exactly one word changed


def test_pairs_are_novel_and_use_training_words(default_data):
    corpus = set(default_data["train_lines"]) | set(default_data["dev_lines"])
    counts = G.word_types(default_data["train_lines"])
    frequent = G.MIN_CRITICAL_WORD_SHARE * sum(counts.values())
    for rows in default_data["pairs"].values():
        for row in rows:
            assert row["sentence_good"] not in corpus and row["sentence_bad"] not in corpus
            good, bad = _tokens(row["sentence_good"]), _tokens(row["sentence_bad"])
            for word in good + bad:
                assert counts[word] >= G.MIN_PAIR_WORD_COUNT, word
            for g, b in zip(good, bad):  # the changed word and its replacement are frequent
                if g != b:
                    assert counts[g] >= frequent and counts[b] >= frequent, row


def test_pairs_test_the_named_phenomenon(default_data):
    """The changed word is of the kind the paradigm is about, checked with lexicon facts."""
    flips = {
        "determiner_noun_agreement": LEX.noun_number_flip,
        "determiner_noun_agreement_with_adjective": LEX.noun_number_flip,
        "subject_verb_agreement_simple": LEX.verb_number_flip,
        "subject_verb_agreement_across_pp": LEX.verb_number_flip,
        "subject_verb_agreement_across_relative_clause": LEX.verb_number_flip,
        "existential_there_agreement": {"is": "are", "are": "is", "was": "were", "were": "was"},
        "irregular_past_participle": LEX.past_participle_flip,
    }
    for uid, rows in default_data["pairs"].items():
        for row in rows:
            good, bad = _tokens(row["sentence_good"]), _tokens(row["sentence_bad"])
            i = next(k for k, (g, b) in enumerate(zip(good, bad)) if g != b)
            if uid in flips:
                assert flips[uid].get(good[i]) == bad[i], row
            else:  # anaphor paradigms: the good reflexive agrees with the subject
                subject, _ = _subject(good)
                assert good[i] == REFLEXIVE_FOR[subject] and bad[i] in LEX.reflexives, row
                if uid == "anaphor_gender_agreement":
                    assert subject in ("m", "f") and {good[i], bad[i]} == {"himself", "herself"}
        if uid == "existential_there_agreement":
            assert all(r["sentence_good"].startswith("There ") for r in rows)
