"""A small synthetic BabyLM evaluation folder in the official file formats: a demo and a test fixture.

    python benchmarks/suite_data.py --out /tmp/suite [--items-per-uid 20] [--seed 0] [--cache-dir DIR]

writes a folder laid out like the BabyLM pipeline's `evaluation_data/fast_eval` (babylm-org/
babylm-eval, `strict/`), one sub-folder per zero-shot task, every line with the field names the
official `sentence_zero_shot/read_files.py` reads:

    blimp_filtered/<UID>.jsonl            sentence_good, sentence_bad, field, linguistics_term, UID,
                                          simple_LM_method, one_prefix_method, two_prefix_method,
                                          lexically_identical, pair_id (the built-in minimal pairs)
    supplement_filtered/<name>.jsonl      sentence_good, sentence_bad (no `field`: UID = file name)
    ewok_filtered/<Domain>.jsonl          Domain, ConceptA, ConceptB, ContextType, ContextDiff,
                                          TargetDiff, Context1, Context2, Target1, Target2; each item
                                          twice, the second with the contexts and the targets swapped
    entity_tracking/{regular,ambiref}.jsonl  sample_id, numops (0..2, lines sorted by it),
                                          input_prefix (ending with a space), options (the correct
                                          one first, no leading separator; 'nothing.' only as the
                                          correct one), example_id
    comps/comps_base.jsonl, comps_wugs.jsonl  prefix_acceptable, prefix_unacceptable, property_phrase
    wug_adj_nominalization/wug_adj_nominalization.jsonl  sentences (the candidates, tab-joined:
                                          -ity first, -ness second), ratio (share for candidate 0)
    wug_past_tense/wug_past_tense.jsonl   sentences (regular past first), ratio

What it is for: running the official pipeline and this project's `trainer.zero_shot` on the same
items (benchmarks/official_eval.py --eval-data), and `--eval-data` in tests and demos, where the
challenge's own data (distributed separately) is not at hand. What it is NOT: the challenge's data
or any fact about child language. BLiMP items are the built-in corpus's minimal pairs
(trainer/data/grammar.py, from `--pairs` or the data cache); every other item is made here from
templates over the built-in grammar's lexicon (its frequent real words, its pseudo-words), so a
model trained on the built-in corpus has seen the words and has a chance; the wug `ratio`s are
invented (a preference by the adjective's suffix, or regular past for the corpus's regular
pseudo-verbs and irregular past for its real irregular verbs, plus noise), not human judgements.
Deterministic: the same seed and size give the same bytes.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from trainer.data.grammar import LEXICON, article_for, regular_past  # noqa: E402
from trainer.data.pairs import load_pairs  # noqa: E402

# The official folder names (full_eval's; fast_eval differs only in blimp/supplement/ewok/entity
# tracking, whose `_fast` names trainer.zero_shot also reads).
FOLDERS = {
    "blimp": "blimp_filtered",
    "blimp_supplement": "supplement_filtered",
    "ewok": "ewok_filtered",
    "entity_tracking": "entity_tracking",
    "comps": "comps",
    "wug_adj": "wug_adj_nominalization",
    "wug_past": "wug_past_tense",
}
TOP = 25  # words are drawn from the first TOP of each lexicon table (its most frequent ones)

Rows = dict[str, list[dict]]  # file stem -> its lines, in order


# --------------------------------------------------------------------------------------
# Words of the built-in grammar
# --------------------------------------------------------------------------------------


def nouns(*classes: str) -> list:
    """Real nouns of these classes, the most frequent first."""
    return [n for n in LEXICON.nouns if n.cls in classes and n.real][:TOP]


def adjectives_for(cls: str) -> list[str]:
    """Real adjectives the grammar puts before nouns of `cls`, the most frequent first."""
    return [adjective.word for adjective in LEXICON.adjectives_in_rank_order(cls)][:TOP]


def animate_adjectives() -> list[str]:
    """Adjectives the grammar keeps for people and animals ('happy', 'hungry'), most frequent first."""
    animate = [a for a in LEXICON.adjectives if a.real and a.applies_to == ("person", "animal")]
    return [adjective.word for adjective in animate][:TOP]


def names(gender: str | None = None) -> list:
    return [n for n in LEXICON.names if gender is None or n.gender == gender][:2 * TOP]


def intransitive(*subject_classes: str) -> list:
    """Real intransitive verbs whose subjects are exactly these classes (('person',): 'laugh')."""
    return [v for v in LEXICON.intransitive_verbs if v.real and v.subj == subject_classes]


def pronoun(gender: str) -> str:
    return {"m": "he", "f": "she"}[gender]


def cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def indefinite(word: str) -> str:
    return f"{article_for(word)} {word}"


def distinct(rng: random.Random, make: Callable[[random.Random], dict], n: int, key: Callable[[dict], str]) -> list[dict]:
    """`n` items from `make` whose `key`s differ (the templates are small: give up after many tries)."""
    items, seen = [], set()
    for _ in range(200 * n + 100):
        if len(items) == n:
            break
        item = make(rng)
        if item is not None and key(item) not in seen:
            seen.add(key(item))
            items.append(item)
    if len(items) < n:
        raise SystemExit(f"error: the templates give only {len(items)} distinct items, fewer than {n}")
    return items


def good_bad(item: dict) -> str:
    return f"{item['sentence_good']}\t{item['sentence_bad']}"


# --------------------------------------------------------------------------------------
# BLiMP: the built-in minimal pairs, in BLiMP's own line format
# --------------------------------------------------------------------------------------


def blimp_rows(pairs_dir: Path, per_uid: int) -> Rows:
    """The first `per_uid` pairs of each paradigm in `pairs_dir` (the built-in ones by default), as
    BLiMP lines: its `field` (what marks a line as BLiMP rather than supplement), `linguistics_term`,
    `UID` (also the file's name, so a UID is one file) and `pair_id` in place of the grammar's
    `pairID`. Validated by trainer.data.pairs.load_pairs first."""
    load_pairs(pairs_dir)
    rows: Rows = {}
    for path in sorted(Path(pairs_dir).rglob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            source = json.loads(line)
            uid = str(source.get("UID") or path.stem)
            group = rows.setdefault(uid, [])
            if len(group) < per_uid:
                group.append({
                    "sentence_good": source["sentence_good"].strip(), "sentence_bad": source["sentence_bad"].strip(),
                    "field": source.get("field", "morphology"), "linguistics_term": source.get("linguistics_term", uid),
                    "UID": uid, "simple_LM_method": True, "one_prefix_method": True, "two_prefix_method": False,
                    "lexically_identical": False, "pair_id": len(group),
                })
    return rows


# --------------------------------------------------------------------------------------
# BLiMP supplement: the five files, each a contrast in the spirit of the official one
# --------------------------------------------------------------------------------------


def hypernym(rng):
    """Entailment runs from the specific noun to 'person', not back."""
    name, noun = rng.choice(names()), rng.choice([n for n in nouns("person") if n.singular != "person"])
    he = pronoun(name.gender)
    return {"sentence_good": f"{name.word} saw {indefinite(noun.singular)} so {he} saw a person.",
            "sentence_bad": f"{name.word} saw a person so {he} saw {indefinite(noun.singular)}."}


def qa_congruence_easy(rng):
    """A 'who' question answered with a person, a 'what ... eat' one with food."""
    asker, other = rng.sample(names(), 2)
    food = rng.choice(nouns("food")).singular
    if rng.random() < 0.5:
        question, verb, good, bad = f"Who did {asker.word} see?", "saw", other.word, f"the {food}"
    else:
        question, verb, good, bad = f"What did {asker.word} eat?", "ate", f"the {food}", other.word
    return {"sentence_good": f"{question}\n{asker.word} {verb} {good}.",
            "sentence_bad": f"{question}\n{asker.word} {verb} {bad}."}


def qa_congruence_tricky(rng):
    """'Who laughed?' answered by a person, not a thing (full answers and fragments)."""
    verb = rng.choice(intransitive("person"))
    person, thing = rng.choice(names()).word, f"The {rng.choice(nouns('object')).singular}"
    question = f"Who {verb.past}?"
    if rng.random() < 0.5:
        return {"sentence_good": f"{question}\n{person} {verb.past}.", "sentence_bad": f"{question}\n{thing} {verb.past}."}
    return {"sentence_good": f"A: {question}\nB: {person}.", "sentence_bad": f"A: {question}\nB: {thing}."}


def subject_aux_inversion(rng):
    """The auxiliary of the main clause moves to the front, not the one inside the relative clause."""
    noun = rng.choice(nouns("animal", "object"))
    watcher = rng.choice(names()).word
    adjective = rng.choice(adjectives_for(noun.cls))
    verb = rng.choice([v for v in LEXICON.transitive_verbs[:TOP] if noun.cls in v.obj and "person" in v.subj])
    return {"sentence_good": f"Is the {noun.singular} that {watcher} is {verb.ing} {adjective}?",
            "sentence_bad": f"Is the {noun.singular} that {watcher} {verb.ing} is {adjective}?"}


def turn_taking(rng):
    """'Are you ...?' is answered 'Yes, I am.'; a question about someone else is not."""
    asker, answerer = rng.sample(names(), 2)
    adjective = rng.choice(animate_adjectives())
    other = pronoun(rng.choice("mf"))
    answer = f"\n{answerer.word}: Yes, I am."
    return {"sentence_good": f"{asker.word}: Are you {adjective}?{answer}",
            "sentence_bad": f"{asker.word}: Is {other} {adjective}?{answer}"}


SUPPLEMENT = {"hypernym": hypernym, "qa_congruence_easy": qa_congruence_easy,
              "qa_congruence_tricky": qa_congruence_tricky, "subject_aux_inversion": subject_aux_inversion,
              "turn_taking": turn_taking}


def supplement_rows(seed: int, per_uid: int) -> Rows:
    return {name: distinct(random.Random(f"{seed}/supplement/{name}"), make, per_uid, good_bad)
            for name, make in SUPPLEMENT.items()}


# --------------------------------------------------------------------------------------
# EWoK: a context makes one target plausible and the other not
# --------------------------------------------------------------------------------------


def social_properties(rng):
    man, woman = rng.choice(names("m")), rng.choice(names("f"))
    adjective = rng.choice(animate_adjectives())
    verb = rng.choice(intransitive("person")).third
    return {"ConceptA": "he", "ConceptB": "she", "ContextType": "direct", "ContextDiff": "gender", "TargetDiff": "pronoun",
            "Context1": f"{man.word} is {adjective}.", "Context2": f"{woman.word} is {adjective}.",
            "Target1": f"He {verb}.", "Target2": f"She {verb}."}


def quantitative_properties(rng):
    noun = rng.choice(nouns("animal", "object"))
    place = rng.choice(nouns("place")).singular
    adjective = rng.choice(adjectives_for(noun.cls))
    few = rng.choice(["two", "three", "many", "some"])
    return {"ConceptA": "one", "ConceptB": few, "ContextType": "direct", "ContextDiff": "number", "TargetDiff": "pronoun",
            "Context1": f"There is {indefinite(noun.singular)} in the {place}.",
            "Context2": f"There are {few} {noun.plural} in the {place}.",
            "Target1": f"It is {adjective}.", "Target2": f"They are {adjective}."}


NEEDS = {  # a state and what an agent in it does
    "hungry": lambda rng: f"eats the {rng.choice(nouns('food')).singular}",
    "thirsty": lambda rng: f"drinks the {rng.choice(nouns('drink')).singular}",
    "sleepy": lambda rng: "sleeps",
    "tired": lambda rng: "rests",
}


def agent_properties(rng):
    agent = rng.choice(nouns("person", "animal")).singular
    state1, state2 = rng.sample(sorted(NEEDS), 2)
    return {"ConceptA": state1, "ConceptB": state2, "ContextType": "direct", "ContextDiff": "state", "TargetDiff": "action",
            "Context1": f"The {agent} is {state1}.", "Context2": f"The {agent} is {state2}.",
            "Target1": f"The {agent} {NEEDS[state1](rng)}.", "Target2": f"The {agent} {NEEDS[state2](rng)}."}


def physical_relations(rng):
    top, bottom = (n.singular for n in rng.sample(nouns("object"), 2))
    return {"ConceptA": "above", "ConceptB": "below", "ContextType": "direct", "ContextDiff": "antonym", "TargetDiff": "antonym",
            "Context1": f"The {top} is above the {bottom}.", "Context2": f"The {top} is below the {bottom}.",
            "Target1": f"The {bottom} is below the {top}.", "Target2": f"The {bottom} is above the {top}."}


EWOK = {"social-properties": social_properties, "quantitative-properties": quantitative_properties,
        "agent-properties": agent_properties, "physical-relations": physical_relations}


def swapped(item: dict) -> dict:
    """The official second line of an item: Context1<->Context2 and Target1<->Target2."""
    return {**item, "Context1": item["Context2"], "Context2": item["Context1"],
            "Target1": item["Target2"], "Target2": item["Target1"]}


def ewok_rows(seed: int, per_uid: int) -> Rows:
    """Per domain, ceil(per_uid / 2) items, each followed by its swap (per_uid lines, rounded up to even)."""
    rows: Rows = {}
    for domain, make in EWOK.items():
        items = distinct(random.Random(f"{seed}/ewok/{domain}"), lambda r: {"Domain": domain, **make(r)},
                         -(-per_uid // 2), key=lambda i: f"{i['Context1']}\t{i['Target1']}\t{i['Target2']}")
        rows[domain] = [line for item in items for line in (item, swapped(item))]
    return rows


# --------------------------------------------------------------------------------------
# Entity tracking: boxes, their contents, a few operations, then "Box N contains "
# --------------------------------------------------------------------------------------

BOXES = ("one", "two", "three", "four")
AMBIREF_ADJECTIVES = ("red", "blue", "green", "yellow", "big", "small")
PLACED = 6  # objects drawn into the boxes (each kept out with a small chance): short enough that every
# text fits the built-in models' 128-token sequences, which the pipeline never truncates and we do


def contents_text(objects: list[str]) -> str:
    return " and ".join(f"the {o}" for o in objects) + "." if objects else "nothing."


def entity_item(rng: random.Random, numops: int, ambiguous: bool) -> dict | None:
    """Boxes filled at random, `numops` operations (move, take out, drop in) applied in text and in
    state, and the contents of one box asked for: the true contents first, then four distractors
    (other boxes' contents and the true set with one object changed), 'nothing.' never among them.
    None when fewer than four distractors come out (the caller draws again)."""
    heads = [n.singular for n in nouns("object", "clothing", "food")]
    if ambiguous:  # objects that share a noun and differ in an adjective
        pool = [f"{adjective} {head}" for head in rng.sample(heads, 3) for adjective in rng.sample(AMBIREF_ADJECTIVES, 3)]
    else:
        pool = rng.sample(heads, 9)
    rng.shuffle(pool)
    boxes: dict[str, list[str]] = {box: [] for box in BOXES}
    spare = pool[PLACED:]
    for obj in pool[:PLACED]:
        if rng.random() < 0.85:
            boxes[rng.choice(BOXES)].append(obj)
        else:
            spare.append(obj)
    sentences = [", ".join(f"Box {box} contains {contents_text(boxes[box])[:-1]}" for box in BOXES) + "."]
    for _ in range(numops):
        full = [box for box in BOXES if boxes[box]]
        kind = rng.choice([k for k, possible in (("move", full), ("take", full), ("drop", spare)) if possible])
        if kind == "drop":
            obj, target = spare.pop(rng.randrange(len(spare))), rng.choice(BOXES)
            boxes[target].append(obj)
            sentences.append(f"Drop the {obj} in Box {target}.")
            continue
        source = rng.choice(full)
        obj = boxes[source].pop(rng.randrange(len(boxes[source])))
        if kind == "move":
            target = rng.choice([box for box in BOXES if box != source])
            boxes[target].append(obj)
            sentences.append(f"Move the {obj} from Box {source} to Box {target}.")
        else:
            spare.append(obj)
            sentences.append(f"Take the {obj} from Box {source}.")
    asked = rng.choice(BOXES)
    correct = contents_text(boxes[asked])
    candidates = [contents_text(boxes[box]) for box in BOXES if box != asked and boxes[box]]
    for _ in range(40):
        changed = list(boxes[asked]) or [rng.choice(pool)]
        changed[rng.randrange(len(changed))] = rng.choice(pool)
        candidates.append(contents_text(list(dict.fromkeys(changed))))
    distractors = [c for c in dict.fromkeys(candidates) if c not in (correct, "nothing.")][:4]
    if len(distractors) < 4:
        return None
    return {"numops": numops, "input_prefix": " ".join([*sentences, f"Box {asked} contains "]),
            "options": [correct, *distractors]}


def entity_tracking_rows(seed: int, per_uid: int) -> Rows:
    """regular and ambiref, `per_uid` items for each numops 0..2, in numops order as the official
    files are, with the official fields."""
    rows: Rows = {}
    for split in ("regular", "ambiref"):
        rng = random.Random(f"{seed}/entity_tracking/{split}")
        items = [item for numops in range(3)
                 for item in distinct(rng, lambda r: entity_item(r, numops, split == "ambiref"), per_uid,
                                      key=lambda i: i["input_prefix"])]
        rows[split] = [{"sample_id": k, "numops": item["numops"], "input_prefix": item["input_prefix"],
                        "options": item["options"], "example_id": k} for k, item in enumerate(items)]
    return rows


# --------------------------------------------------------------------------------------
# COMPS: a property that holds for one kind of noun and not another, then for a wug said to be one
# --------------------------------------------------------------------------------------

WUGS = ("wug", "dax", "fep", "blick", "zorp", "toma", "kiki", "gazzer")


def property_pair(rng):
    """(acceptable noun, unacceptable noun, property phrase): a verb only people do said of a
    person and of an object, or one only animate things do said of an animal and of an object."""
    if rng.random() < 0.5:
        verb, good = rng.choice(intransitive("person")), rng.choice(nouns("person")).singular
    else:
        verb, good = rng.choice(intransitive("person", "animal")), rng.choice(nouns("animal")).singular
    return good, rng.choice(nouns("object", "food")).singular, f"can {verb.base}."


def comps_base(rng):
    good, bad, phrase = property_pair(rng)
    return {"acceptable_concept": good, "unacceptable_concept": bad, "property_phrase": phrase,
            "prefix_acceptable": cap(indefinite(good)), "prefix_unacceptable": cap(indefinite(bad))}


def comps_wugs(rng):
    good, bad, phrase = property_pair(rng)
    wug = rng.choice(WUGS)
    return {"acceptable_concept": good, "unacceptable_concept": bad, "property_phrase": phrase,
            "prefix_acceptable": f"A {wug} is {indefinite(good)}. So the {wug}",
            "prefix_unacceptable": f"A {wug} is {indefinite(bad)}. So the {wug}"}


def comps_rows(seed: int, per_uid: int) -> Rows:
    key = lambda i: f"{i['prefix_acceptable']}\t{i['prefix_unacceptable']}\t{i['property_phrase']}"  # noqa: E731
    return {name: distinct(random.Random(f"{seed}/comps/{name}"), make, per_uid, key)
            for name, make in {"comps_base": comps_base, "comps_wugs": comps_wugs}.items()}


# --------------------------------------------------------------------------------------
# Wug tests: two candidate sentences and an invented preference for the first
# --------------------------------------------------------------------------------------

# An invented share for -ity by the adjective's suffix (English takes -ity after Latinate -al, -ic,
# -ous and -ness after -ful, -ish, -y); NOT measured on people.
ITY_SHARE = {"al": 0.8, "ic": 0.75, "ous": 0.7, "y": 0.3, "ful": 0.15, "ish": 0.1}


def ity(adjective: str) -> str:
    if adjective.endswith("ous"):
        return adjective[:-3] + "osity"
    if adjective.endswith("y"):
        return adjective[:-1] + "ity"
    return adjective + "ity"


def ness(adjective: str) -> str:
    return (adjective[:-1] + "i" if adjective.endswith("y") else adjective) + "ness"


def invented_ratio(rng: random.Random, centre: float) -> float:
    return round(min(1.0, max(0.0, centre + rng.uniform(-0.1, 0.1))), 4)


def wug_adj_rows(seed: int, per_uid: int) -> Rows:
    """The corpus's pseudo-adjectives nominalised with -ity (candidate 0) and -ness (candidate 1)."""
    rng = random.Random(f"{seed}/wug_adj")
    pseudo = [w.word for w in LEXICON.adjectives if not w.real]
    chosen = rng.sample(pseudo, min(per_uid, len(pseudo)))
    rows = []
    for adjective in chosen:
        noun, name = rng.choice(nouns("person", "animal")).singular, rng.choice(names()).word
        suffix = next(s for s in sorted(ITY_SHARE, key=len, reverse=True) if adjective.endswith(s))
        frame = f"The {noun} is very {adjective}. {name} likes the {{}} of the {noun}."
        rows.append({"sentences": "\t".join([frame.format(ity(adjective)), frame.format(ness(adjective))]),
                     "ratio": invented_ratio(rng, ITY_SHARE[suffix])})
    return {"wug_adj_nominalization": rows}


VOWEL_SHIFT = {"ee": "e", "oo": "o", "ai": "ou", "ou": "ai", "a": "u", "e": "o", "i": "a", "o": "e", "u": "o"}


def vowel_past(stem: str) -> str:
    """An irregular-looking past: the first vowel changed (sneemp -> snemp, spum -> spom)."""
    for i in range(len(stem)):
        for vowel in sorted(VOWEL_SHIFT, key=len, reverse=True):
            if stem.startswith(vowel, i):
                return stem[:i] + VOWEL_SHIFT[vowel] + stem[i + len(vowel):]
    return stem + "t"


def wug_past_rows(seed: int, per_uid: int) -> Rows:
    """Candidate 0 the regular past, candidate 1 an irregular one: for the corpus's (regular)
    pseudo-verbs the irregular form is made up and the invented share for regular is high; for its
    real irregular verbs the regular form is an over-regularisation and the share is low."""
    rng = random.Random(f"{seed}/wug_past")
    pseudo = [(v, regular_past(v.base), vowel_past(v.base), 0.85) for v in LEXICON.transitive_verbs if not v.real]
    irregular = [(v, regular_past(v.base), v.past, 0.15) for v in LEXICON.transitive_verbs
                 if v.real and v.past != regular_past(v.base)]
    n_irregular = min(per_uid // 2, len(irregular))  # about half; the rest, and any shortfall, pseudo-verbs
    chosen = rng.sample(pseudo, per_uid - n_irregular) + rng.sample(irregular, n_irregular)
    rng.shuffle(chosen)
    rows = []
    for verb, regular, other, centre in chosen:
        name = rng.choice(names()).word
        obj = rng.choice([n for n in LEXICON.nouns[:400] if n.real and n.cls in verb.obj][:TOP * 4]).singular
        frame = f"{name} {{}} the {obj}."
        rows.append({"sentences": "\t".join([frame.format(regular), frame.format(other)]),
                     "ratio": invented_ratio(rng, centre)})
    return {"wug_past_tense": rows}


# --------------------------------------------------------------------------------------
# The folder
# --------------------------------------------------------------------------------------


def suite_rows(pairs_dir: Path, per_uid: int, seed: int) -> dict[str, Rows]:
    """{task folder: {file stem: lines}} for every task."""
    return {
        FOLDERS["blimp"]: blimp_rows(pairs_dir, per_uid),
        FOLDERS["blimp_supplement"]: supplement_rows(seed, per_uid),
        FOLDERS["ewok"]: ewok_rows(seed, per_uid),
        FOLDERS["entity_tracking"]: entity_tracking_rows(seed, per_uid),
        FOLDERS["comps"]: comps_rows(seed, per_uid),
        FOLDERS["wug_adj"]: wug_adj_rows(seed, per_uid),
        FOLDERS["wug_past"]: wug_past_rows(seed, per_uid),
    }


def write_suite(out: Path, pairs_dir: Path, per_uid: int = 20, seed: int = 0) -> dict[str, dict[str, int]]:
    """Write every task's files under `out`; returns {folder: {file name: lines}}."""
    written: dict[str, dict[str, int]] = {}
    for folder, files in suite_rows(pairs_dir, per_uid, seed).items():
        (out / folder).mkdir(parents=True, exist_ok=True)
        for stem, rows in files.items():
            text = "".join(json.dumps(row) + "\n" for row in rows)
            (out / folder / f"{stem}.jsonl").write_text(text, encoding="utf-8")
            written.setdefault(folder, {})[f"{stem}.jsonl"] = len(rows)
    return written


def builtin_pairs_dir(cache_dir: str | Path | None) -> Path:
    """The built-in corpus's pairs folder in the data cache (generated there if absent, as a run does)."""
    from trainer.data.sources import _builtin_root, default_cache_dir

    return _builtin_root(Path(cache_dir).expanduser() if cache_dir else default_cache_dir()) / "pairs"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="the folder to write (laid out like fast_eval)")
    parser.add_argument("--items-per-uid", type=int, default=20, help="items per UID (EWoK: rounded up to even)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pairs", type=Path, default=None, help="BLiMP-style pairs (default: the built-in ones)")
    parser.add_argument("--cache-dir", default=None,
                        help="data cache of the built-in corpus (default: $MDLM_CACHE_DIR or ~/.cache/mdlm-sweeps)")
    args = parser.parse_args(argv)
    if not 1 <= args.items_per_uid <= 100:
        parser.error("--items-per-uid must be between 1 and 100")
    pairs_dir = args.pairs or builtin_pairs_dir(args.cache_dir)
    written = write_suite(args.out, pairs_dir, args.items_per_uid, args.seed)
    print(json.dumps({"out": str(args.out), "pairs": str(pairs_dir), "files": written}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
