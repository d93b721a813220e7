"""A built-in, English-like corpus and BLiMP-style minimal pairs from a probabilistic grammar.

No data can be downloaded, so the project makes its own default data: a small
probabilistic grammar of English writes a training corpus, a dev corpus and
minimal-pair test sets. Everything is deterministic from one integer seed and
uses only ``random.Random``.

What the grammar guarantees, in every sentence it writes:

* determiner-noun number: this/that/a/every + singular, these/those/many + plural;
* subject-verb number, also across a prepositional phrase ("the key to the
  cabinets is ...") and across a relative clause ("the dogs that the girl
  likes are ...");
* reflexives agree with their subject in number and gender (names carry gender);
* irregular past tenses and participles ("ate", "has eaten");
* existential "there is/are" agrees with the following noun.

The minimal pairs (``pairs/<paradigm>.jsonl``) test exactly these: each good
sentence is one the grammar can write, and its bad twin differs in one word.
Like BLiMP's, pair sentences are short and use frequent real words, and only
the "across" paradigms contain a noun of the opposite number (an attractor).
No pair sentence occurs verbatim as a line of the corpus.

The lexicon is a core of real English words plus generated pseudo-words
("blicket", "tromel") that inflect regularly; words are drawn from Zipf
distributions, so a few are very frequent and many are rare.

Layout written by :func:`generate_builtin_data` (BabyLM style)::

    <root>/corpus/builtin.train   one sentence per line, blank line between documents
    <root>/corpus/builtin.dev     the same, different sentences, ~5% of the train size
    <root>/pairs/<paradigm>.jsonl BLiMP JSONL: sentence_good, sentence_bad, UID, ...
    <root>/README.txt

Command line: ``python -m trainer.data.grammar OUT_DIR [--seed N] ...``.

Reading order: lexicon tables, morphology, pseudo-words, the ``Lexicon``,
samplers, the ``SentenceGenerator`` (noun phrases, verb groups, clause frames,
sentences, documents), minimal pairs, and finally file writing and the API.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

__all__ = [
    "GRAMMAR_VERSION",
    "LEXICON",
    "PARADIGMS",
    "builtin_data_dir",
    "generate_builtin_data",
    "word_types",
]

# Bump whenever the generated files change for a given seed: cached copies are
# keyed by it (builtin-v{GRAMMAR_VERSION}-seed{seed}).
GRAMMAR_VERSION = 2

ZIPF_EXPONENT = 1.0  # P(word of rank r within its class) is proportional to 1 / r**ZIPF_EXPONENT
LEXICON_SEED = 1729  # the pseudo-words are the same for every corpus seed

# ---------------------------------------------------------------------------
# Lexicon tables
#
# Within each table the order is the frequency rank: earlier words are drawn
# more often. Nouns are grouped into semantic classes so that verbs can select
# sensible subjects and objects ("the girl eats the apple", not "the apple eats
# the girl").
# ---------------------------------------------------------------------------

NOUN_CLASSES = ("person", "animal", "food", "drink", "text", "vehicle", "place", "clothing", "object")
CLASS_GROUPS = {
    "any": NOUN_CLASSES,
    "animate": ("person", "animal"),
    "thing": NOUN_CLASSES[2:],
}
# How often each class heads a noun phrase when a verb allows several.
CLASS_WEIGHTS = {
    "person": 4.0, "animal": 2.0, "food": 1.0, "drink": 0.5, "text": 1.0,
    "vehicle": 0.7, "place": 1.2, "clothing": 0.7, "object": 2.0,
}

# "singular[/plural] [m|f]": plural defaults to the regular one; m/f marks the
# gender of person nouns (teacher, child ... are left unmarked: any gender).
NOUNS = {
    "person": """
        man/men m, woman/women f, child/children, boy m, girl f, person/people,
        teacher, friend, mother f, father m, student, doctor, baby/babies, king m,
        queen f, brother m, sister f, farmer, neighbor, son m, daughter f, driver,
        customer, worker, artist, writer, uncle m, aunt f, player, singer, nurse,
        lawyer, pilot, guest, soldier, prince m, princess/princesses f,
        husband m, wife/wives f, lady/ladies f, gentleman/gentlemen m,
        thief/thieves, scientist, officer, dancer, stranger, visitor, parent,
        cousin, manager, author, professor, grandmother f, grandfather m,
        policeman/policemen m, waiter m, waitress/waitresses f, actor m,
        actress/actresses f, nephew m, niece f, engineer, baker, sailor,
        tourist, musician, hunter, chef, clerk
    """,
    "animal": """
        dog, cat, bird, horse, mouse/mice, cow, rabbit, fox, wolf/wolves, bear,
        lion, tiger, duck, pig, goat, monkey, frog, snake, goose/geese, ox/oxen,
        donkey, owl, spider, elephant, puppy/puppies, kitten, squirrel, turtle,
        bee, whale, dolphin, camel, parrot, zebra, hamster, ant, chicken, pony/ponies
    """,
    "food": """
        apple, cake, sandwich, cookie, egg, banana, potato/potatoes,
        tomato/tomatoes, pie, loaf/loaves, carrot, lemon, pear, peach,
        cherry/cherries, muffin, pizza, sausage, onion, strawberry/strawberries,
        biscuit, candy/candies, pepper, cucumber, melon, grape, pancake, donut,
        cactus/cacti, mushroom
    """,
    "drink": """
        coffee, soda, milkshake, smoothie, juice, cocktail, beer, lemonade
    """,
    "text": """
        book, letter, story/stories, song, poem, note, report, message, article,
        novel, essay, joke, speech, email, list, recipe, diary/diaries,
        postcard, magazine, newspaper
    """,
    "vehicle": """
        car, bus, bicycle, truck, boat, plane, taxi, tractor, motorcycle, ship,
        van, scooter, canoe, tram
    """,
    "place": """
        house, school, park, garden, kitchen, city/cities, river, church,
        hospital, library/libraries, museum, office, village, forest, beach,
        restaurant, shop, station, farm, castle, hotel, market, theater, island,
        room, street, lake, mountain, zoo, airport, bakery/bakeries, classroom,
        bridge
    """,
    "clothing": """
        shoe, hat, coat, shirt, dress, jacket, sock, scarf/scarves, sweater,
        glove, boot, belt, skirt
    """,
    "object": """
        key, box, table, chair, door, window, cup, ball, picture, bottle, bag,
        phone, computer, knife/knives, shelf/shelves, glass,
        dish, lamp, clock, photo/photos, painting, map, flower, rock,
        stone, pen, pencil, gift, toy, candle, mirror, blanket, pillow, basket,
        cabinet, desk, tree, wheel, bell, coin, button, umbrella, ladder, bucket,
        hammer, tooth/teeth, fungus/fungi, bench, brush, fence, sofa, kite,
        drum, guitar, piano, violin, plate, spoon, fork, bowl, jar, envelope
    """,
}

NAMES = {
    "m": """
        John, David, Michael, James, Robert, Daniel, Thomas, Peter, Paul, George,
        Henry, Edward, Samuel, Charles, Richard, Steven, Kevin, Brian, Jason,
        Eric, Adam, Simon, Oliver, Lucas, Martin, Oscar, Victor, Frank, Arthur,
        Harry, Jacob, Ethan, Noah, Leo, Felix, Hugo, Carl, Dennis, Walter, Gregory
    """,
    "f": """
        Mary, Sarah, Emma, Anna, Lisa, Laura, Susan, Alice, Julia, Rachel, Emily,
        Helen, Linda, Karen, Jessica, Olivia, Sophie, Lucy, Claire, Diana, Nancy,
        Rebecca, Monica, Wendy, Tina, Amy, Ruth, Carol, Martha, Irene, Fiona,
        Vanessa, Nora, Ella, Chloe, Hannah, Megan, Paula, Kate, Bella
    """,
}

# "base[/past/participle]  SUBJECT -> OBJECT": regular verbs give only the base.
# SUBJECT and OBJECT are noun classes or groups joined by "+"; "clause" in the
# object means the verb also takes a "that" clause ("Mary knows that ...").
TRANSITIVE_VERBS = """
    see/saw/seen             animate -> any
    like                     animate -> any
    eat/ate/eaten            animate -> food
    take/took/taken          person -> thing+animal
    make/made/made           person -> food+drink+text+object+clothing
    want                     animate -> thing
    find/found/found         animate -> any
    know/knew/known          person -> person+animal+place+text+clause
    help                     animate -> animate
    love                     animate -> any
    watch                    animate -> any
    visit                    person -> person+place
    call                     person -> person+animal
    write/wrote/written      person -> text
    read/read/read           person -> text
    buy/bought/bought        person -> food+drink+text+vehicle+clothing+object
    hear/heard/heard         animate -> animate+vehicle+text+clause
    follow                   animate -> animate+vehicle
    chase                    animate -> animate+vehicle+object
    drive/drove/driven       person -> vehicle
    bring/brought/brought    person -> food+drink+text+object+clothing+animal
    sing/sang/sung           person -> text
    meet/met/met             animate -> animate
    break/broke/broken       animate -> object+vehicle
    carry                    animate -> food+drink+object+clothing+animal
    hate                     animate -> any
    remember                 person -> any+clause
    forget/forgot/forgotten  person -> any+clause
    drink/drank/drunk        animate -> drink
    draw/drew/drawn          person -> any
    show/showed/shown        person -> thing+animal
    wear/wore/worn           person -> clothing
    throw/threw/thrown       person -> food+object+clothing
    steal/stole/stolen       person -> thing+animal
    hide/hid/hidden          animate -> thing+animal
    ride/rode/ridden         person -> vehicle+animal
    choose/chose/chosen      person -> any
    sell/sold/sold           person -> food+drink+text+vehicle+clothing+object+place
    hold/held/held           person -> food+drink+object+clothing+animal+text
    keep/kept/kept           person -> thing+animal
    lose/lost/lost           person -> thing+animal
    build/built/built        person -> place+object+vehicle
    teach/taught/taught      person -> person+animal
    understand/understood/understood  person -> person+text+clause
    bite/bit/bitten          animal -> animate+food+object
    begin/began/begun        person -> text
    tear/tore/torn           person -> clothing+text
    shake/shook/shaken       animate -> object
    wake/woke/woken          animate -> animate
    freeze/froze/frozen      person -> food+drink
    grow/grew/grown          person -> food
    ring/rang/rung           person -> object
    forgive/forgave/forgiven person -> person
    push                     animate -> object+vehicle+animate
    pull                     animate -> object+vehicle+animate
    kick                     animate -> object+animate
    wash                     person -> animal+clothing+object+vehicle+food
    open                     person -> object+text
    cook                     person -> food
    bake                     person -> food
    order                    person -> food+drink+text+object
    fix                      person -> object+vehicle
    repair                   person -> object+vehicle+clothing
    lift                     person -> object+animal
    drop                     animate -> thing
    climb                    animate -> place+object
    cross                    animate -> place
    explore                  animate -> place
    admire                   person -> any
    trust                    animate -> animate
    praise                   person -> animate+text
    blame                    person -> animate
    hurt/hurt/hurt           animate -> animate
    attack                   animate -> animate
    kiss                     person -> animate
    hug                      person -> animate
    notice                   animate -> any+clause
    ignore                   animate -> animate+text
    annoy                    animate -> animate
    surprise                 animate -> animate
    greet                    person -> animate
    thank                    person -> person
    invite                   person -> person
    warn                     person -> animate
    save                     person -> animate+text
    protect                  animate -> animate+place
    describe                 person -> any
    discover                 person -> any
    destroy                  animate -> object+vehicle+place+text
    touch                    animate -> any
    study                    person -> text+animal+place
    borrow                   person -> object+text+vehicle+clothing
    deliver                  person -> food+drink+text+object
    fold                     person -> clothing+text
    pack                     person -> clothing+object+food
    taste                    animate -> food+drink
    smell                    animate -> any
    feed/fed/fed             person -> animate
    scare                    animate -> animate
    examine                  person -> any
    defend                   animate -> animate+place
    introduce                person -> person
    cut/cut/cut              person -> food+object+clothing+text
"""

# Verbs that can take a reflexive object ("Mary hurt herself"). Kept to verbs
# where the reflexive reading is natural.
REFLEXIVE_VERBS = """
    see like love hate find help watch hurt blame praise trust admire wash
    describe teach remember protect save surprise scare notice draw hear
    forgive bite introduce defend cut examine ignore
"""

INTRANSITIVE_VERBS = """
    go/went/gone             animate
    come/came/come           animate
    sleep/slept/slept        animate
    run/ran/run              animate
    walk                     animate
    laugh                    person
    smile                    person
    fall/fell/fallen         any
    sit/sat/sat              animate
    wait                     animate
    cry                      animate
    dance                    person
    jump                     animate
    talk                     person
    play                     animate
    work                     person
    swim/swam/swum           animate
    fly/flew/flown           animate
    speak/spoke/spoken       person
    leave/left/left          animate
    win/won/won              person
    shout                    person
    rest                     animate
    arrive                   animate+vehicle
    disappear                any
    sink/sank/sunk           vehicle+object
    move                     any
    travel                   person
    listen                   animate
    relax                    animate
    complain                 person
    whisper                  person
    hurry                    animate
    sneeze                   animate
    yawn                     animate
    cough                    person
    roll                     object+food+vehicle
    stop                     vehicle+animate
"""

# Verbs whose complement is a "that" clause ("John thinks that the dog is hungry").
CLAUSE_VERBS = """
    think/thought/thought    person
    say/said/said            person
    believe                  person
    hope                     person
    claim                    person
    suspect                  person
    know/knew/known          person
    hear/heard/heard         person
    remember                 person
    forget/forgot/forgotten  person
    notice                   person
    understand/understood/understood  person
"""

# Verbs that link a subject to an adjective ("the dog seems hungry").
COPULAR_VERBS = """
    seem                     any
    look                     any
    become/became/become     any
    remain                   any
    feel/felt/felt           animate
"""

# "word: CLASSES": which nouns an adjective may describe.
ADJECTIVES = """
    any: big, small, old, new, little, large, red, blue, green, yellow, black,
        white, brown, pretty, strange, beautiful, famous, tiny, huge, pink,
        purple, gray, dark, bright, heavy, soft, warm, cold, hot, dry, wet,
        clean, dirty, ugly, nice, lovely, wonderful, terrible, perfect,
        ordinary, special, popular, enormous, round, flat, plain, smooth,
        rough, modern, ancient, cheap, expensive, fancy, simple, excellent,
        rare, common, useful
    animate: young, happy, sad, angry, brave, clever, kind, friendly, hungry,
        sleepy, tired, nervous, curious, polite, rude, proud, shy, funny,
        serious, lazy, busy, calm, wild, gentle, honest, wise, silly, lucky,
        lonely, healthy, sick, noisy, clumsy, elegant, quiet, loud, strong,
        weak, rich, poor, careful, thirsty, grumpy, excited, bored, upset
    thing: shiny, wooden, golden, dusty, sticky, empty, full, sharp, cozy,
        tidy, messy, fragile, thick, thin, wide, narrow, deep, broad
    food+drink: delicious, tasty, sweet, sour, fresh, spicy, salty, bitter,
        crunchy, juicy
"""

# Adverbs before the verb ("the dog often sleeps") and after the verb phrase
# ("... sleeps quietly").
FREQUENCY_ADVERBS = "often always never sometimes usually rarely really also finally suddenly just still"
MANNER_ADVERBS = """
    quickly slowly quietly happily carefully loudly gently politely angrily
    eagerly proudly nervously patiently calmly silently easily again badly
    warmly secretly bravely lazily sadly kindly clumsily cheerfully briefly
"""

# Determiners by number, with weights; "a" becomes "an" before a vowel.
# "the" shows no number, so the others are kept frequent enough to teach agreement.
SINGULAR_DETERMINERS = {"the": 32, "a": 26, "this": 12, "that": 10, "every": 8, "each": 4, "another": 4, "one": 4}
PLURAL_DETERMINERS = {
    "the": 32, "these": 14, "those": 11, "some": 11, "many": 10, "several": 6,
    "two": 7, "three": 4, "few": 3, "four": 2,
}
# Noun phrases after "there is/are" are indefinite.
SINGULAR_INDEFINITES = {"a": 85, "another": 8, "one": 7}
PLURAL_INDEFINITES = {"some": 35, "many": 20, "several": 12, "two": 15, "three": 10, "few": 8}

# Prepositions inside noun phrases ("the key to the cabinet") and at the end
# of a verb phrase ("... in the garden").
NOUN_PREPOSITIONS = "of with near on in behind under from beside above to without"
LOCATIVE_PREPOSITIONS = "in near behind under on beside at inside outside above by around across below"

MODALS = {"will": 30, "can": 25, "should": 12, "might": 10, "must": 8, "could": 10, "would": 5}
CONJUNCTIONS = {"and": 45, "but": 25, "because": 12, "while": 8, "so": 6, "although": 4}

PRONOUNS = {  # (number, gender) -> (subject, object, reflexive, possessive)
    ("sg", "m"): ("he", "him", "himself", "his"),
    ("sg", "f"): ("she", "her", "herself", "her"),
    ("sg", "n"): ("it", "it", "itself", "its"),
    ("pl", None): ("they", "them", "themselves", "their"),
}

# Regular verbs that double their final consonant before -ed/-ing.
DOUBLING_VERBS = {"stop", "drop", "hug", "run", "swim", "begin", "sit", "cut", "win", "forget", "shop"}

# ---------------------------------------------------------------------------
# Morphology
# ---------------------------------------------------------------------------

VOWELS = "aeiou"


def pluralize(noun: str) -> str:
    """Regular English plural: box -> boxes, baby -> babies, dog -> dogs."""
    if noun.endswith(("s", "x", "z", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2] not in VOWELS:
        return noun[:-1] + "ies"
    return noun + "s"


def third_singular(verb: str) -> str:
    """Present tense, third person singular: eat -> eats, watch -> watches, go -> goes."""
    if verb.endswith(("s", "x", "z", "ch", "sh", "o")):
        return verb + "es"
    if verb.endswith("y") and verb[-2] not in VOWELS:
        return verb[:-1] + "ies"
    return verb + "s"


def regular_past(verb: str) -> str:
    """like -> liked, carry -> carried, stop -> stopped, walk -> walked."""
    if verb.endswith("e"):
        return verb + "d"
    if verb.endswith("y") and verb[-2] not in VOWELS:
        return verb[:-1] + "ied"
    if verb in DOUBLING_VERBS:
        return verb + verb[-1] + "ed"
    return verb + "ed"


def present_participle(verb: str) -> str:
    """make -> making, see -> seeing, run -> running, eat -> eating."""
    if verb.endswith("ie"):
        return verb[:-2] + "ying"
    if verb.endswith("e") and not verb.endswith(("ee", "ye", "oe")):
        return verb[:-1] + "ing"
    if verb in DOUBLING_VERBS:
        return verb + verb[-1] + "ing"
    return verb + "ing"


def article_for(word: str) -> str:
    """The indefinite article before `word` (all lexicon words are spelled so the letter rule is right)."""
    return "an" if word[0] in VOWELS else "a"


# ---------------------------------------------------------------------------
# Lexical entries
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Noun:
    singular: str
    plural: str
    cls: str  # one of NOUN_CLASSES
    gender: Optional[str]  # "m"/"f" for gendered person nouns, "n" for animals and things, None = any person
    real: bool  # False for generated pseudo-words


@dataclass(frozen=True)
class Name:
    word: str
    gender: str  # "m" or "f"


@dataclass(frozen=True)
class Verb:
    base: str
    third: str  # present, 3rd person singular
    past: str
    participle: str
    ing: str
    subj: Tuple[str, ...]  # noun classes allowed as subject
    obj: Tuple[str, ...]  # noun classes allowed as object; () = intransitive
    takes_clause: bool
    real: bool


@dataclass(frozen=True)
class Adjective:
    word: str
    applies_to: Tuple[str, ...]
    real: bool


def parse_classes(spec: str) -> Tuple[str, ...]:
    """'animate+food' -> ('person', 'animal', 'food'), always in NOUN_CLASSES order (deterministic)."""
    wanted = set()
    for part in spec.split("+"):
        part = part.strip()
        if part == "clause":
            continue
        group = CLASS_GROUPS.get(part, (part,))
        for cls in group:
            if cls not in NOUN_CLASSES:
                raise ValueError(f"unknown noun class {cls!r} in {spec!r}")
        wanted.update(group)
    return tuple(c for c in NOUN_CLASSES if c in wanted)


def _comma_items(text: str) -> List[str]:
    return [item.strip() for item in text.replace("\n", " ").split(",") if item.strip()]


def _make_verb(forms: str, subj: str, obj: str, real: bool = True) -> Verb:
    parts = forms.split("/")
    base = parts[0]
    past, participle = (parts[1], parts[2]) if len(parts) == 3 else (regular_past(base), regular_past(base))
    return Verb(
        base=base,
        third=third_singular(base),
        past=past,
        participle=participle,
        ing=present_participle(base),
        subj=parse_classes(subj),
        obj=parse_classes(obj) if obj else (),
        takes_clause="clause" in obj.split("+"),
        real=real,
    )


def _parse_verb_table(table: str, transitive: bool) -> List[Verb]:
    verbs = []
    for line in table.strip().splitlines():
        if transitive:
            left, obj = line.split("->")
            forms, subj = left.split()
        else:
            forms, subj = line.split()
            obj = ""
        verbs.append(_make_verb(forms, subj, obj.strip()))
    return verbs


# ---------------------------------------------------------------------------
# Pseudo-words: pronounceable, regularly inflected, never clashing with a real
# form. They give the corpus its long tail of rare word types.
# ---------------------------------------------------------------------------

ONSETS = "b bl br d dr f fl fr g gl gr k kl kr l m n p pl pr r s sk sl sm sn sp st t tr v w z sh ch th".split()
NUCLEI = "a e i o u a e i o u oo ee ai ou".split()
MIDDLES = "b d f g k l m n p r s t v z nd mp nt lk rk st".split()
# Final consonants that take a plain -s / -ed / -ing (no sibilants, no y).
CODAS = "ck d g k l m n p t nd mp nt lk rk ft rn lm rt rd sk st ng".split()
SECOND_VOWELS = "a e i o u e o".split()
ADJECTIVE_SUFFIXES = "ish ous ful ic al y".split()

PSEUDO_NOUNS = 260
PSEUDO_TRANSITIVE_VERBS = 110
PSEUDO_INTRANSITIVE_VERBS = 40
PSEUDO_ADJECTIVES = 110
# Classes of the pseudo-nouns, cycled: they are animals, objects, food or places.
PSEUDO_NOUN_CLASSES = ("object", "animal", "object", "food", "place", "animal", "object", "clothing")


def _pseudo_stem(rng: random.Random) -> str:
    """One or two syllables: 'dax'-like (CVC) or 'tromel'-like (CVCVC)."""
    onset, nucleus = rng.choice(ONSETS), rng.choice(NUCLEI)
    if rng.random() < 0.4:
        return onset + nucleus + rng.choice(CODAS)
    return onset + nucleus + rng.choice(MIDDLES) + rng.choice(SECOND_VOWELS) + rng.choice("ck d g k l m n p t".split())


# ---------------------------------------------------------------------------
# The lexicon
# ---------------------------------------------------------------------------


class Lexicon:
    """All words of the grammar, plus derived lookup sets (used by the generator and the tests)."""

    def __init__(self) -> None:
        self.nouns: List[Noun] = []
        for cls, table in NOUNS.items():
            for item in _comma_items(table):
                word, *gender = item.split()
                singular, _, plural = word.partition("/")
                g = gender[0] if gender else (None if cls == "person" else "n")
                self.nouns.append(Noun(singular, plural or pluralize(singular), cls, g, True))
        self.names = [Name(w, g) for g, table in NAMES.items() for w in _comma_items(table)]
        self.transitive_verbs = _parse_verb_table(TRANSITIVE_VERBS, transitive=True)
        self.intransitive_verbs = _parse_verb_table(INTRANSITIVE_VERBS, transitive=False)
        self.clause_verbs = _parse_verb_table(CLAUSE_VERBS, transitive=False)
        self.copular_verbs = _parse_verb_table(COPULAR_VERBS, transitive=False)
        reflexive = set(REFLEXIVE_VERBS.split())
        self.adjectives = [Adjective(w, parse_classes(spec), True)
                           for spec, words in _adjective_blocks(ADJECTIVES) for w in _comma_items(words)]
        self.frequency_adverbs = FREQUENCY_ADVERBS.split()
        self.manner_adverbs = MANNER_ADVERBS.split()

        self._add_pseudo_words()
        # A reflexive needs a subject class that is also a possible object (and animate).
        self.reflexive_verbs = [v for v in self.transitive_verbs
                                if (v.base in reflexive or not v.real)
                                and any(c in v.obj for c in v.subj if c in ("person", "animal"))]
        self._derive_sets()

    def adjectives_in_rank_order(self, cls: str) -> List[Adjective]:
        """Adjectives for nouns of `cls`, most frequent first.

        General and class-specific real adjectives alternate (so "happy" ranks
        near "big" for people); pseudo-adjectives come last.
        """
        groups: Dict[Tuple[str, ...], List[Adjective]] = {}
        for a in self.adjectives:
            if a.real and cls in a.applies_to:
                groups.setdefault(a.applies_to, []).append(a)
        ranked = []
        lists = list(groups.values())
        for i in range(max(len(group) for group in lists)):
            ranked += [group[i] for group in lists if i < len(group)]
        return ranked + [a for a in self.adjectives if not a.real and cls in a.applies_to]

    # -- pseudo-words -------------------------------------------------------

    def _add_pseudo_words(self) -> None:
        rng = random.Random(LEXICON_SEED)
        taken = set(self.all_real_forms())

        def fresh(forms_of: Callable[[str], Sequence[str]], make_stem=_pseudo_stem) -> str:
            while True:
                stem = make_stem(rng)
                forms = forms_of(stem)
                if len(stem) >= 3 and not any(f in taken for f in forms) and len(set(forms)) == len(forms):
                    taken.update(forms)
                    return stem

        for i in range(PSEUDO_NOUNS):
            stem = fresh(lambda s: (s, s + "s"))
            cls = PSEUDO_NOUN_CLASSES[i % len(PSEUDO_NOUN_CLASSES)]
            self.nouns.append(Noun(stem, stem + "s", cls, "n", False))
        for i in range(PSEUDO_TRANSITIVE_VERBS + PSEUDO_INTRANSITIVE_VERBS):
            stem = fresh(lambda s: (s, s + "s", s + "ed", s + "ing"))
            transitive = i < PSEUDO_TRANSITIVE_VERBS
            verb = Verb(stem, stem + "s", stem + "ed", stem + "ed", stem + "ing",
                        subj=parse_classes("animate"), obj=parse_classes("any") if transitive else (),
                        takes_clause=False, real=False)
            (self.transitive_verbs if transitive else self.intransitive_verbs).append(verb)
        for _ in range(PSEUDO_ADJECTIVES):
            word = fresh(lambda s: (s,), lambda r: _pseudo_stem(r) + r.choice(ADJECTIVE_SUFFIXES))
            self.adjectives.append(Adjective(word, NOUN_CLASSES, False))

    def all_real_forms(self) -> List[str]:
        """Every real word form, lowercased (pseudo-words must avoid all of them)."""
        forms = ["there", "that", "who", "what", "not", "very", "been", "be", "is", "are", "was", "were",
                 "has", "have", "had", "does", "do", "did", "a", "an"]
        for n in self.nouns:
            forms += [n.singular, n.plural]
        forms += [n.word.lower() for n in self.names]
        for v in self.transitive_verbs + self.intransitive_verbs + self.clause_verbs + self.copular_verbs:
            forms += [v.base, v.third, v.past, v.participle, v.ing]
        forms += [a.word for a in self.adjectives] + self.frequency_adverbs + self.manner_adverbs
        forms += list(SINGULAR_DETERMINERS) + list(PLURAL_DETERMINERS) + list(MODALS) + list(CONJUNCTIONS)
        forms += NOUN_PREPOSITIONS.split() + LOCATIVE_PREPOSITIONS.split()
        for p in PRONOUNS.values():
            forms += list(p)
        return forms

    # -- derived sets -------------------------------------------------------

    def _derive_sets(self) -> None:
        self.singular_nouns = {n.singular for n in self.nouns}
        self.plural_nouns = {n.plural for n in self.nouns}
        self.noun_number_flip = {}  # singular <-> plural form, for determiner-noun pairs
        for n in self.nouns:
            self.noun_number_flip[n.singular] = n.plural
            self.noun_number_flip[n.plural] = n.singular
        self.adjective_words = {a.word for a in self.adjectives}
        self.name_gender = {n.word: n.gender for n in self.names}
        all_verbs = self.transitive_verbs + self.intransitive_verbs + self.clause_verbs + self.copular_verbs
        # Finite verb forms that show number, with their other-number twin.
        self.verb_number_flip = {"is": "are", "are": "is", "was": "were", "were": "was",
                                 "has": "have", "have": "has", "does": "do", "do": "does"}
        for v in all_verbs:
            self.verb_number_flip[v.third] = v.base
            self.verb_number_flip[v.base] = v.third
        self.third_singular_verbs = {v.third for v in all_verbs} | {"is", "was", "has", "does"}
        self.plural_present_verbs = {v.base for v in all_verbs} | {"are", "were", "have", "do"}
        self.past_forms = {v.past for v in all_verbs}
        self.participles = {v.participle for v in all_verbs}
        # Real verbs whose simple past and participle differ (eat: ate / eaten), from the
        # tables whose frames the irregular-participle pairs use.
        self.irregular_verbs = [v for v in self.transitive_verbs + self.intransitive_verbs
                                if v.real and v.past != v.participle and v.participle != v.base]
        self.past_only_forms = {v.past for v in self.irregular_verbs}
        self.participle_only_forms = {v.participle for v in self.irregular_verbs}
        self.past_participle_flip = {}
        for v in self.irregular_verbs:
            self.past_participle_flip[v.past] = v.participle
            self.past_participle_flip[v.participle] = v.past
        self.reflexives = {"himself": "m", "herself": "f", "itself": "n", "themselves": None}
        self._check_consistency(all_verbs)

    def _check_consistency(self, all_verbs: List[Verb]) -> None:
        """A word form may belong to one part of speech only, else agreement would be ambiguous."""
        by_base: Dict[str, Verb] = {}
        for v in all_verbs:
            other = by_base.setdefault(v.base, v)
            if (other.past, other.participle) != (v.past, v.participle):
                raise ValueError(f"verb {v.base!r} has inconsistent forms in two tables")
        verb_forms = {f for v in all_verbs for f in (v.base, v.third, v.past, v.participle, v.ing)}
        noun_forms = self.singular_nouns | self.plural_nouns
        for name, a, b in [("noun/verb", noun_forms, verb_forms),
                           ("noun/adjective", noun_forms, self.adjective_words),
                           ("verb/adjective", verb_forms, self.adjective_words),
                           ("singular/plural", self.singular_nouns, self.plural_nouns)]:
            clash = sorted(a & b)
            if clash:
                raise ValueError(f"{name} forms clash: {clash[:10]}")


def _adjective_blocks(table: str) -> List[Tuple[str, str]]:
    """'spec: words, ...' blocks of the ADJECTIVES table."""
    blocks: List[Tuple[str, str]] = []
    for line in table.strip().splitlines():
        if ":" in line:
            spec, words = line.split(":", 1)
            blocks.append((spec.strip(), words))
        else:
            spec, words = blocks[-1]
            blocks[-1] = (spec, words + " " + line)
    return blocks


LEXICON = Lexicon()

# ---------------------------------------------------------------------------
# Samplers
# ---------------------------------------------------------------------------


class Weighted:
    """Draws items with given weights by bisecting cumulative sums (one rng.random() per draw)."""

    def __init__(self, items: Sequence, weights: Iterable[float]) -> None:
        self.items = list(items)
        self.cumulative: List[float] = []
        total = 0.0
        for w in weights:
            total += w
            self.cumulative.append(total)
        self.total = total
        if not self.items or len(self.items) != len(self.cumulative):
            raise ValueError("Weighted needs one weight per item and at least one item")

    def sample(self, rng: random.Random):
        return self.items[bisect.bisect_right(self.cumulative, rng.random() * self.total)]


def zipf(items: Sequence) -> Weighted:
    """Items in rank order; P(rank r) proportional to 1 / r**ZIPF_EXPONENT."""
    return Weighted(items, [1.0 / (r ** ZIPF_EXPONENT) for r in range(1, len(items) + 1)])


def weighted(table: Dict[str, float]) -> Weighted:
    return Weighted(list(table), list(table.values()))


# ---------------------------------------------------------------------------
# Sentence generation
# ---------------------------------------------------------------------------

TENSES = {  # how often each verb-group shape is chosen (number-marked ones dominate)
    "present": 44, "past": 20, "perfect": 13, "past_perfect": 2, "progressive": 8,
    "past_progressive": 3, "modal": 6, "negated": 4,
}
# Tenses whose finite verb shows number (eats/eat, has/have, is/are, was/were, does/do).
NUMBER_MARKED_TENSES = ("present", "perfect", "progressive", "past_progressive")

P_PLURAL = 0.5  # chance that a noun phrase is plural (balanced: number is never predictable a priori)
ANIMATE = parse_classes("animate")
LOCATIONS = parse_classes("place+object+vehicle")  # what can follow "in", "near", "under" ...
# Chance of a name / pronoun instead of a common noun, by role.
P_NAME = {"subject": 0.22, "object": 0.15, "inner": 0.10}
P_PRONOUN = {"subject": 0.10, "object": 0.07, "inner": 0.0}
# Chance of a prepositional phrase / relative clause modifying a noun, by role.
P_PP_MODIFIER = {"subject": 0.15, "object": 0.10, "inner": 0.0}
P_RC_MODIFIER = {"subject": 0.11, "object": 0.05, "inner": 0.0}

SENTENCE_FRAMES = {
    "transitive": 23, "intransitive": 8, "copular": 11, "existential": 8, "reflexive": 12,
    "possessive": 6, "passive": 4, "embedded": 8, "coordinated": 11, "yes_no_question": 6,
    "wh_question": 3,
}


@dataclass
class Phrase:
    """A noun phrase: its words, agreement features and where its head noun is."""

    words: List[str]
    number: str  # "sg" or "pl"
    gender: Optional[str]  # "m", "f", "n" (it) or None (a person of unknown gender, or plural)
    cls: str
    head: int  # index of the head word in `words`
    attractor: Optional[int] = None  # index of the noun inside a modifier (PP or relative clause)


@dataclass
class VerbGroup:
    words: List[str]
    finite: Optional[int]  # index of the number-marked finite word, if any
    lexical: int  # index of the main verb


@dataclass
class Clause:
    """A clause's words plus named word positions ("finite", "subj_head", ...) used to build minimal pairs."""

    words: List[str]
    marks: Dict[str, int]
    subject: Optional[Phrase] = None
    verb: Optional[Verb] = None


def _np_marks(np: Phrase, offset: int, prefix: str) -> Dict[str, int]:
    marks = {prefix + "head": offset + np.head}
    if np.attractor is not None:
        marks[prefix + "attractor"] = offset + np.attractor
    return marks


def finish(words: Sequence[str], question: bool = False) -> str:
    """Capitalise the first word and add the final punctuation mark."""
    first = words[0]
    return " ".join([first[0].upper() + first[1:], *words[1:]]) + ("?" if question else ".")


class SentenceGenerator:
    """Writes sentences from the grammar.

    With ``core_only`` it draws only real (non-pseudo) words, and with
    ``endings=False`` it leaves out the optional phrase-final material (places,
    manner adverbs, companions). The minimal pairs use both: frequent words,
    and short sentences without extra noun phrases whose number could act as
    an unintended cue, as in BLiMP.
    """

    def __init__(self, rng: random.Random, lexicon: Lexicon = LEXICON, core_only: bool = False,
                 endings: bool = True) -> None:
        self.rng = rng
        self.lex = lexicon
        self.endings = endings
        self.cast: List[Name] = []  # the recurring characters of the current document
        self.last_named: Optional[Name] = None  # who "he"/"she" most likely refers to

        def keep(entries):
            return [e for e in entries if e.real or not core_only]

        lex = lexicon
        self.nouns_by_class = {c: zipf(keep([n for n in lex.nouns if n.cls == c])) for c in NOUN_CLASSES}
        self.names_by_gender = {g: zipf([n for n in lex.names if n.gender == g]) for g in ("m", "f")}
        self.adjectives_for = {c: zipf(keep(lex.adjectives_in_rank_order(c))) for c in NOUN_CLASSES}
        transitive = keep(lex.transitive_verbs)
        self.transitive = zipf(transitive)
        # For relative clauses on a head of each class (only classes some verb accepts there).
        self.transitive_with_object = {c: zipf([v for v in transitive if c in v.obj])
                                       for c in NOUN_CLASSES if any(c in v.obj for v in transitive)}
        self.transitive_with_subject = {c: zipf([v for v in transitive if c in v.subj])
                                        for c in NOUN_CLASSES if any(c in v.subj for v in transitive)}
        self.reflexive = zipf(keep(lex.reflexive_verbs))
        self.intransitive = zipf(keep(lex.intransitive_verbs))
        self.clause_verbs = zipf(lex.clause_verbs)
        self.copular_verbs = zipf(lex.copular_verbs)
        self.irregular = zipf(lex.irregular_verbs)
        self.frequency_adverbs = zipf(lex.frequency_adverbs)
        self.manner_adverbs = zipf(lex.manner_adverbs)
        self.noun_prepositions = zipf(NOUN_PREPOSITIONS.split())
        self.locative_prepositions = zipf(LOCATIVE_PREPOSITIONS.split())
        self.determiners = {"sg": weighted(SINGULAR_DETERMINERS), "pl": weighted(PLURAL_DETERMINERS)}
        self.indefinites = {"sg": weighted(SINGULAR_INDEFINITES), "pl": weighted(PLURAL_INDEFINITES)}
        self.modals = weighted(MODALS)
        self.conjunctions = weighted(CONJUNCTIONS)
        self.tenses = weighted(TENSES)
        self.frames = weighted(SENTENCE_FRAMES)
        self._class_choosers: Dict[Tuple[str, ...], Weighted] = {}

    # -- small helpers ------------------------------------------------------

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def pick_class(self, classes: Tuple[str, ...]) -> str:
        chooser = self._class_choosers.get(classes)
        if chooser is None:
            chooser = self._class_choosers[classes] = Weighted(classes, [CLASS_WEIGHTS[c] for c in classes])
        return chooser.sample(self.rng)

    def name(self, gender: Optional[str] = None) -> Name:
        """A name; half the time one of the document's recurring characters."""
        if self.cast and self.chance(0.5):
            options = [n for n in self.cast if gender is None or n.gender == gender]
            if options:
                return options[int(self.rng.random() * len(options))]
        if gender is None:
            gender = "m" if self.chance(0.5) else "f"
        return self.names_by_gender[gender].sample(self.rng)

    def named(self) -> Name:
        """A name that later pronouns may refer back to."""
        self.last_named = self.name()
        return self.last_named

    # -- noun phrases -------------------------------------------------------

    def noun_phrase(
        self,
        classes: Tuple[str, ...],
        role: str = "subject",
        *,
        cls: Optional[str] = None,
        number: Optional[str] = None,
        det: Optional[str] = None,
        n_adj: Optional[int] = None,
        modifier: Optional[str] = None,
        attractor_number: Optional[str] = None,
        kind: Optional[str] = None,
    ) -> Phrase:
        """A noun phrase whose head is of one of `classes`.

        role: "subject", "object" or "inner" (inside a modifier; never modified again).
        kind: "noun", "name" or "pronoun" (None: random). det: a determiner, "indefinite",
        or None (random). modifier: "none", "pp", "rc", "rc_object", "rc_subject" or None (random).
        """
        rng = self.rng
        cls = cls or self.pick_class(classes)
        if kind is None:
            kind = "noun"
            if det is None and n_adj is None and modifier is None:
                r = rng.random()
                if cls == "person" and number != "pl" and r < P_NAME[role]:
                    kind = "name"
                elif r > 1.0 - P_PRONOUN[role]:
                    kind = "pronoun"
        if kind == "name":
            name = self.named()
            return Phrase([name.word], "sg", name.gender, "person", 0)
        if kind == "pronoun":
            return self.pronoun(cls, role, number)

        noun = self.nouns_by_class[cls].sample(rng)
        if number is None:
            number = "pl" if rng.random() < P_PLURAL else "sg"
        if n_adj is None:
            r = rng.random()
            n_adj = 0 if r < 0.6 else 1 if r < 0.93 else 2
        adjectives: List[str] = []
        while len(adjectives) < n_adj:
            adjective = self.adjectives_for[cls].sample(rng).word
            if adjective not in adjectives:
                adjectives.append(adjective)
        form = noun.plural if number == "pl" else noun.singular
        if det is None:
            det = self.determiners[number].sample(rng)
        elif det == "indefinite":
            det = self.indefinites[number].sample(rng)
        if det == "a":
            det = article_for(adjectives[0] if adjectives else form)
        words = [det, *adjectives, form]
        phrase = Phrase(words, number, None if number == "pl" else noun.gender, cls, len(words) - 1)

        if modifier is None:
            r = rng.random()
            modifier = "pp" if r < P_PP_MODIFIER[role] else "rc" if r < P_PP_MODIFIER[role] + P_RC_MODIFIER[role] else "none"
        if modifier == "pp":
            # "the key to the cabinets": the inner noun's number is free, so it
            # often differs from the head's (an agreement attractor).
            inner = self.noun_phrase(NOUN_CLASSES, "inner", number=attractor_number, modifier="none",
                                     kind="noun" if attractor_number else None)
            phrase.attractor = len(words) + 1 + inner.head
            words += [self.noun_prepositions.sample(rng), *inner.words]
        elif modifier.startswith("rc"):
            rc_words, attractor = self.relative_clause(phrase, modifier, attractor_number)
            phrase.attractor = len(words) + attractor
            words += rc_words
        return phrase

    def pronoun(self, cls: str, role: str, number: Optional[str]) -> Phrase:
        if number is None:
            number = "pl" if self.rng.random() < P_PLURAL else "sg"
        if number == "pl":
            gender = None
        elif cls == "person":
            # Usually the last named character: "Mary smiled. She ..."
            if self.last_named is not None and self.chance(0.8):
                gender = self.last_named.gender
            else:
                gender = "m" if self.chance(0.5) else "f"
        else:
            gender = "n"
        subject_form, object_form, _, _ = PRONOUNS[(number, gender)]
        return Phrase([subject_form if role == "subject" else object_form], number, gender, cls, 0)

    def relative_clause(self, head: Phrase, kind: str, attractor_number: Optional[str]) -> Tuple[List[str], int]:
        """'that the girl likes' (object gap) or 'that chases the cats' (subject gap).

        Returns the words and the index of the clause's own noun (a possible attractor).
        """
        rng = self.rng
        if kind == "rc":
            kind = "rc_object" if rng.random() < 0.6 else "rc_subject"
        if head.cls not in self.transitive_with_subject:  # things do not act: "the box that the girl found"
            kind = "rc_object"
        relative = "who" if head.cls == "person" and rng.random() < 0.3 else "that"
        tense = "present" if rng.random() < 0.6 else "past"
        if kind == "rc_object":
            # The gap is the verb's object, so the verb must accept the head noun as object.
            verb = self.transitive_with_object[head.cls].sample(rng)
            subject = self.noun_phrase(verb.subj, "inner", number=attractor_number, modifier="none",
                                       kind="noun" if attractor_number else None)
            group = self.verb_group(verb, subject.number, tense)
            return [relative, *subject.words, *group.words], 1 + subject.head
        verb = self.transitive_with_subject[head.cls].sample(rng)
        obj = self.noun_phrase(verb.obj, "inner", number=attractor_number, modifier="none",
                               kind="noun" if attractor_number else None)
        group = self.verb_group(verb, head.number, tense)  # agrees with the head noun
        return [relative, *group.words, *obj.words], 1 + len(group.words) + obj.head

    # -- verbs --------------------------------------------------------------

    def verb_group(self, verb: Verb, number: str, tense: str, adverb: bool = False) -> VerbGroup:
        """The verb with its auxiliaries, agreeing with a subject of `number`."""
        sg = number == "sg"
        if tense in ("present", "past"):
            words = [(verb.third if sg else verb.base) if tense == "present" else verb.past]
            if adverb and self.chance(0.1):
                words.insert(0, self.frequency_adverbs.sample(self.rng))
            finite = len(words) - 1 if tense == "present" else None
            return VerbGroup(words, finite, len(words) - 1)
        if tense == "perfect":
            return VerbGroup(["has" if sg else "have", verb.participle], 0, 1)
        if tense == "past_perfect":
            return VerbGroup(["had", verb.participle], None, 1)
        if tense == "progressive":
            return VerbGroup(["is" if sg else "are", verb.ing], 0, 1)
        if tense == "past_progressive":
            return VerbGroup(["was" if sg else "were", verb.ing], 0, 1)
        if tense == "modal":
            return VerbGroup([self.modals.sample(self.rng), verb.base], None, 1)
        if tense == "negated":
            if self.chance(0.5):
                return VerbGroup(["does" if sg else "do", "not", verb.base], 0, 2)
            return VerbGroup(["did", "not", verb.base], None, 2)
        raise ValueError(f"unknown tense {tense!r}")

    def be_group(self, number: str, tense: str) -> VerbGroup:
        """Forms of "be" (copular and existential sentences)."""
        sg = number == "sg"
        if tense == "present":
            return VerbGroup(["is" if sg else "are"], 0, 0)
        if tense == "past":
            return VerbGroup(["was" if sg else "were"], 0, 0)
        if tense == "perfect":
            return VerbGroup(["has" if sg else "have", "been"], 0, 1)
        return VerbGroup([self.modals.sample(self.rng), "be"], None, 1)

    def be_tense(self) -> str:
        r = self.rng.random()
        return "present" if r < 0.55 else "past" if r < 0.85 else "perfect" if r < 0.93 else "modal"

    def predicate_adjective(self, cls: str) -> List[str]:
        words = [self.adjectives_for[cls].sample(self.rng).word]
        if self.chance(0.12):
            words.insert(0, "very")
        return words

    def locative(self) -> List[str]:
        """'in the garden', 'under a table'."""
        np = self.noun_phrase(LOCATIONS, "inner", modifier="none")
        return [self.locative_prepositions.sample(self.rng), *np.words]

    def ending(self) -> List[str]:
        """An optional place, manner adverb or companion at the end of a verb phrase."""
        if not self.endings:
            return []
        r = self.rng.random()
        if r < 0.30:
            return self.locative()
        if r < 0.43:
            return [self.manner_adverbs.sample(self.rng)]
        if r < 0.48:
            return ["with", *self.noun_phrase(ANIMATE, "inner", modifier="none").words]
        return []

    # -- clause frames ------------------------------------------------------
    # Each returns a Clause whose marks name the positions minimal pairs edit.

    def _assemble(self, subject: Phrase, group: VerbGroup, rest: List[str], verb: Optional[Verb] = None,
                  before: Sequence[str] = ()) -> Clause:
        words = [*before, *subject.words, *group.words, *rest]
        offset = len(before) + len(subject.words)
        marks = _np_marks(subject, len(before), "subj_")
        if group.finite is not None:
            marks["finite"] = offset + group.finite
        marks["lexical"] = offset + group.lexical
        return Clause(words, marks, subject, verb)

    def transitive_clause(self, verb: Optional[Verb] = None, subject: Optional[Phrase] = None,
                          obj: Optional[Phrase] = None, tense: Optional[str] = None) -> Clause:
        """'The girl often eats the apples in the kitchen.'"""
        verb = verb or self.transitive.sample(self.rng)
        subject = subject or self.noun_phrase(verb.subj, "subject")
        obj = obj or self.noun_phrase(verb.obj, "object")
        group = self.verb_group(verb, subject.number, tense or self.tenses.sample(self.rng), adverb=True)
        clause = self._assemble(subject, group, [*obj.words, *self.ending()], verb)
        clause.marks.update(_np_marks(obj, len(subject.words) + len(group.words), "obj_"))
        return clause

    def intransitive_clause(self, verb: Optional[Verb] = None, subject: Optional[Phrase] = None,
                            tense: Optional[str] = None) -> Clause:
        """'The dogs sleep in the garden.'"""
        verb = verb or self.intransitive.sample(self.rng)
        subject = subject or self.noun_phrase(verb.subj, "subject")
        group = self.verb_group(verb, subject.number, tense or self.tenses.sample(self.rng), adverb=True)
        return self._assemble(subject, group, self.ending() or self.ending(), verb)  # rarely bare: "The fox waited."

    def copular_clause(self, subject: Optional[Phrase] = None, tense: Optional[str] = None) -> Clause:
        """'The key to the cabinets is shiny.' / 'The dogs seem hungry.' / 'Mary was in the park.'"""
        subject = subject or self.noun_phrase(NOUN_CLASSES, "subject")
        r = self.rng.random()
        if r < 0.2:  # seem / look / become ... + adjective
            verb = self.copular_verbs.sample(self.rng)
            while subject.cls not in verb.subj:
                verb = self.copular_verbs.sample(self.rng)
            group = self.verb_group(verb, subject.number, tense or self.tenses.sample(self.rng))
            return self._assemble(subject, group, self.predicate_adjective(subject.cls), verb)
        group = self.be_group(subject.number, tense or self.be_tense())
        rest = self.predicate_adjective(subject.cls) if r < 0.8 or not self.endings else self.locative()
        return self._assemble(subject, group, rest)

    def existential_clause(self, number: Optional[str] = None, tense: Optional[str] = None) -> Clause:
        """'There are two dogs in the garden.'"""
        np = self.noun_phrase(NOUN_CLASSES, "object", number=number, det="indefinite", modifier="none")
        group = self.be_group(np.number, tense or self.be_tense())
        rest = self.locative() if self.endings and self.chance(0.8) else []
        words = ["there", *group.words, *np.words, *rest]
        marks = _np_marks(np, 1 + len(group.words), "obj_")
        if group.finite is not None:
            marks["finite"] = 1 + group.finite
        return Clause(words, marks, np)

    def reflexive_subject(self, verb: Verb, **constraints) -> Phrase:
        """A subject whose reflexive is determined: plural, named, gendered, or an animal."""
        classes = tuple(c for c in verb.subj if c in verb.obj and c in ("person", "animal"))
        while True:
            subject = self.noun_phrase(classes, "subject", **constraints)
            if subject.number == "pl" or subject.gender is not None:
                return subject

    def reflexive_clause(self, verb: Optional[Verb] = None, subject: Optional[Phrase] = None,
                         tense: Optional[str] = None) -> Clause:
        """'Mary hurt herself.' / 'The boys near the car saw themselves in the mirror.'"""
        verb = verb or self.reflexive.sample(self.rng)
        subject = subject or self.reflexive_subject(verb)
        reflexive = PRONOUNS[(subject.number, subject.gender)][2]
        group = self.verb_group(verb, subject.number, tense or self.tenses.sample(self.rng), adverb=True)
        clause = self._assemble(subject, group, [reflexive, *self.ending()], verb)
        clause.marks["reflexive"] = len(subject.words) + len(group.words)
        return clause

    def possessive_clause(self) -> Clause:
        """'John washed his car.' / 'The girls lost their keys.' (the possessive agrees with the subject)"""
        verb = self.transitive.sample(self.rng)
        while not any(c in ("person", "animal") for c in verb.subj):
            verb = self.transitive.sample(self.rng)
        classes = tuple(c for c in verb.subj if c in ("person", "animal"))
        while True:
            subject = self.noun_phrase(classes, "subject")
            if subject.number == "pl" or subject.gender is not None:
                break
        possessive = PRONOUNS[(subject.number, subject.gender)][3]
        obj = self.noun_phrase(verb.obj, "object", det=possessive, modifier="none")
        return self.transitive_clause(verb, subject, obj)

    def passive_clause(self) -> Clause:
        """'The apples were eaten by the girl.'"""
        verb = self.transitive.sample(self.rng)
        subject = self.noun_phrase(verb.obj, "subject", modifier="none")
        group = self.be_group(subject.number, self.be_tense())  # "is", "were", "has been", "will be"
        words = [*group.words, verb.participle]
        rest = ["by", *self.noun_phrase(verb.subj, "inner", modifier="none").words] if self.chance(0.6) else []
        return self._assemble(subject, VerbGroup(words, group.finite, len(words) - 1), rest, verb)

    def embedded_clause(self) -> Clause:
        """'John thinks that the dogs are hungry.'"""
        verb = self.clause_verbs.sample(self.rng)
        subject = self.noun_phrase(verb.subj, "subject", modifier="none")
        tense = "present" if self.chance(0.5) else "past" if self.chance(0.8) else "perfect"
        group = self.verb_group(verb, subject.number, tense)
        inner = self.simple_clause()
        return self._assemble(subject, group, ["that", *inner.words], verb)

    def simple_clause(self) -> Clause:
        r = self.rng.random()
        if r < 0.45:
            return self.transitive_clause()
        if r < 0.65:
            return self.intransitive_clause()
        if r < 0.9:
            return self.copular_clause()
        return self.existential_clause()

    def coordinated_clause(self) -> Clause:
        """'The dog sleeps and the cats play in the garden.'"""
        first, second = self.simple_clause(), self.simple_clause()
        return Clause([*first.words, self.conjunctions.sample(self.rng), *second.words], first.marks)

    def yes_no_question(self) -> Clause:
        """'Is the dog hungry?' / 'Do the girls like the cake?' / 'Has John eaten the apple?'"""
        rng = self.rng
        r = rng.random()
        if r < 0.4:
            subject = self.noun_phrase(NOUN_CLASSES, "subject")
            aux = ("is" if subject.number == "sg" else "are") if self.chance(0.65) else \
                  ("was" if subject.number == "sg" else "were")
            rest = self.predicate_adjective(subject.cls) if self.chance(0.8) else self.locative()
            return Clause([aux, *subject.words, *rest], {"finite": 0})
        verb = self.transitive.sample(rng) if self.chance(0.75) else self.intransitive.sample(rng)
        subject = self.noun_phrase(verb.subj, "subject")
        sg = subject.number == "sg"
        if r < 0.7:
            aux, form = ("does" if sg else "do") if self.chance(0.6) else "did", verb.base
        elif r < 0.85:
            aux, form = "has" if sg else "have", verb.participle
        else:
            aux, form = self.modals.sample(rng), verb.base
        rest = self.noun_phrase(verb.obj, "object").words if verb.obj else self.ending()
        return Clause([aux, *subject.words, form, *rest], {"finite": 0})

    def wh_question(self) -> Clause:
        """'Who likes the dogs?' / 'What did the girl eat?'"""
        rng = self.rng
        verb = self.transitive.sample(rng)
        if "person" in verb.subj and self.chance(0.5):
            # "who" as subject is singular: "Who likes ...", "Who has eaten ..."
            tense = "present" if self.chance(0.5) else "past" if self.chance(0.7) else "perfect"
            group = self.verb_group(verb, "sg", tense)
            return Clause(["who", *group.words, *self.noun_phrase(verb.obj, "object").words], {})
        wh = "who" if verb.obj == ("person",) or ("person" in verb.obj and self.chance(0.3)) else "what"
        subject = self.noun_phrase(verb.subj, "subject", modifier="none")
        sg = subject.number == "sg"
        r = rng.random()
        if r < 0.6:
            aux, form = ("does" if sg else "do") if self.chance(0.5) else "did", verb.base
        elif r < 0.8:
            aux, form = "has" if sg else "have", verb.participle
        else:
            aux, form = self.modals.sample(rng), verb.base
        return Clause([wh, aux, *subject.words, form], {})

    # -- sentences and documents -------------------------------------------

    def sentence(self) -> str:
        frame = self.frames.sample(self.rng)
        build = {
            "transitive": self.transitive_clause, "intransitive": self.intransitive_clause,
            "copular": self.copular_clause, "existential": self.existential_clause,
            "reflexive": self.reflexive_clause, "possessive": self.possessive_clause,
            "passive": self.passive_clause, "embedded": self.embedded_clause,
            "coordinated": self.coordinated_clause, "yes_no_question": self.yes_no_question,
            "wh_question": self.wh_question,
        }[frame]
        return finish(build().words, question=frame.endswith("question"))

    def document(self, n_sentences: int) -> List[str]:
        """Sentences sharing a small cast of named characters (so names recur within a document)."""
        self.cast = [self.names_by_gender["m" if self.chance(0.5) else "f"].sample(self.rng)
                     for _ in range(2 + int(self.rng.random() * 3))]
        sentences = [self.sentence() for _ in range(n_sentences)]
        self.cast, self.last_named = [], None
        return sentences


# ---------------------------------------------------------------------------
# Minimal pairs
#
# Each paradigm builds a grammatical sentence with one of the clause frames
# above (with some choices forced) and makes its bad twin by replacing the one
# word at a marked position. Builders return (good words, bad words), or None
# to ask for another draw.
# ---------------------------------------------------------------------------

PairWords = Optional[Tuple[List[str], List[str]]]


def _swap(words: List[str], index: int, replacement: str) -> Tuple[List[str], List[str]]:
    bad = list(words)
    bad[index] = replacement
    return list(words), bad


def _opposite(number: str) -> str:
    return "pl" if number == "sg" else "sg"


def pair_determiner_noun(g: SentenceGenerator, n_adj: int) -> PairWords:
    """'Mary saw these dogs.' / '*Mary saw these dog.'

    As in BLiMP, the subject is a name and the verb shows no number, so the
    determiner is the only cue to the noun's number.
    """
    verb = g.transitive.sample(g.rng)
    while "person" not in verb.subj:
        verb = g.transitive.sample(g.rng)
    number = "pl" if g.chance(0.5) else "sg"
    det = ("these" if g.chance(0.5) else "those") if number == "pl" else ("this" if g.chance(0.5) else "that")
    obj = g.noun_phrase(verb.obj, "object", number=number, det=det, n_adj=n_adj, modifier="none")
    subject = g.noun_phrase(("person",), "subject", kind="name")
    tense = "past" if g.chance(0.7) else "modal" if g.chance(0.7) else "past_perfect"
    clause = g.transitive_clause(verb, subject, obj, tense)
    head = clause.marks["obj_head"]
    return _swap(clause.words, head, g.lex.noun_number_flip[clause.words[head]])


PAIR_TENSES = Weighted(NUMBER_MARKED_TENSES, (6, 2, 1, 1))  # mostly simple present: "sleeps" / "sleep"


def _subject_verb_pair(g: SentenceGenerator, subject_of: Callable[[Tuple[str, ...]], Phrase]) -> PairWords:
    """A clause with a number-marked finite verb; the bad twin has the other number.

    Intransitive or copular, so no object noun phrase competes as a cue.
    """
    tense = PAIR_TENSES.sample(g.rng)
    if g.chance(0.4):
        verb = g.intransitive.sample(g.rng)
        clause = g.intransitive_clause(verb, subject_of(verb.subj), tense=tense)
    else:
        clause = g.copular_clause(subject_of(NOUN_CLASSES), tense="present" if g.chance(0.7) else "past")
    finite = clause.marks.get("finite")
    if finite is None:
        return None
    return _swap(clause.words, finite, g.lex.verb_number_flip[clause.words[finite]])


def pair_subject_verb_simple(g: SentenceGenerator) -> PairWords:
    """'The dogs sleep.' / '*The dogs sleeps.'; 'The green shoes are small.' / '*The green shoes is small.'"""
    return _subject_verb_pair(g, lambda classes: g.noun_phrase(classes, "subject", kind="noun", modifier="none"))


def pair_subject_verb_across_pp(g: SentenceGenerator) -> PairWords:
    """'The key to the cabinets is shiny.' / '*The key to the cabinets are shiny.'"""
    def subject(classes):
        number = "pl" if g.chance(0.5) else "sg"
        return g.noun_phrase(classes, "subject", number=number, modifier="pp", attractor_number=_opposite(number))
    return _subject_verb_pair(g, subject)


def pair_subject_verb_across_relative_clause(g: SentenceGenerator) -> PairWords:
    """'The dogs that the girl likes are hungry.' / '*The dogs that the girl likes is hungry.'"""
    def subject(classes):
        number = "pl" if g.chance(0.5) else "sg"
        return g.noun_phrase(classes, "subject", number=number, modifier="rc_object",
                             attractor_number=_opposite(number))
    return _subject_verb_pair(g, subject)


def pair_anaphor_number(g: SentenceGenerator) -> PairWords:
    """'The girls hurt themselves.' / '*The girls hurt herself.'"""
    verb = g.reflexive.sample(g.rng)
    clause = g.reflexive_clause(verb, g.reflexive_subject(verb, modifier="none"))
    index = clause.marks["reflexive"]
    subject = clause.subject
    if subject.number == "pl":
        gender = subject.gender or ("m" if g.chance(0.5) else "f")
        if subject.cls == "animal":
            gender = "n"
        return _swap(clause.words, index, PRONOUNS[("sg", gender)][2])
    return _swap(clause.words, index, "themselves")


def pair_anaphor_gender(g: SentenceGenerator) -> PairWords:
    """'Mary hurt herself.' / '*Mary hurt himself.'

    Only himself <-> herself, so a model that ignores gender scores 50%
    (not "itself", whose frequency alone would bias the score).
    """
    verb = g.reflexive.sample(g.rng)
    if "person" not in verb.subj or "person" not in verb.obj:
        return None
    subject = g.noun_phrase(("person",), "subject", number="sg", modifier="none",
                            kind="name" if g.chance(0.6) else "noun")
    if subject.gender not in ("m", "f"):
        return None
    clause = g.reflexive_clause(verb, subject)
    return _swap(clause.words, clause.marks["reflexive"], "herself" if subject.gender == "m" else "himself")


def pair_irregular_past_participle(g: SentenceGenerator) -> PairWords:
    """'The boy has eaten the cake.' / '*The boy has ate the cake.'; 'The boy ate ...' / '*The boy eaten ...'"""
    verb = g.irregular.sample(g.rng)
    tense = "perfect" if g.chance(0.5) else "past"
    if verb.obj:
        clause = g.transitive_clause(verb, tense=tense)
    else:
        clause = g.intransitive_clause(verb, tense=tense)
    index = clause.marks["lexical"]
    return _swap(clause.words, index, g.lex.past_participle_flip[clause.words[index]])


def pair_existential_there(g: SentenceGenerator) -> PairWords:
    """'There are two big dogs.' / '*There is two big dogs.'"""
    clause = g.existential_clause(tense="present" if g.chance(0.7) else "past")
    index = clause.marks["finite"]
    return _swap(clause.words, index, g.lex.verb_number_flip[clause.words[index]])


@dataclass(frozen=True)
class Paradigm:
    uid: str
    field: str
    linguistics_term: str
    build: Callable[[SentenceGenerator], PairWords]


PARADIGMS: Tuple[Paradigm, ...] = (
    Paradigm("determiner_noun_agreement", "morphology", "determiner_noun_agreement",
             lambda g: pair_determiner_noun(g, n_adj=0)),
    Paradigm("determiner_noun_agreement_with_adjective", "morphology", "determiner_noun_agreement",
             lambda g: pair_determiner_noun(g, n_adj=1)),
    Paradigm("subject_verb_agreement_simple", "morphology", "subject_verb_agreement", pair_subject_verb_simple),
    Paradigm("subject_verb_agreement_across_pp", "syntax", "subject_verb_agreement", pair_subject_verb_across_pp),
    Paradigm("subject_verb_agreement_across_relative_clause", "syntax", "subject_verb_agreement",
             pair_subject_verb_across_relative_clause),
    Paradigm("anaphor_number_agreement", "morphology", "anaphor_agreement", pair_anaphor_number),
    Paradigm("anaphor_gender_agreement", "morphology", "anaphor_agreement", pair_anaphor_gender),
    Paradigm("irregular_past_participle", "morphology", "irregular_forms", pair_irregular_past_participle),
    Paradigm("existential_there_agreement", "syntax", "subject_verb_agreement", pair_existential_there),
)

MIN_PAIR_WORD_COUNT = 3  # every word of a pair occurs at least this often in the training text
# The word a pair changes, and its replacement, must be frequent: a tiny model learns
# the number or gender of frequent words first. (2 per 10,000 words: ~100 at the default size.)
MIN_CRITICAL_WORD_SHARE = 2e-4


def _bare(word: str) -> str:
    return word.strip(".?,").lower()


def word_types(lines: Iterable[str]) -> Counter:
    """Word counts of text lines: lowercased, sentence punctuation removed ("Dogs." counts as "dogs")."""
    text = "\n".join(lines).lower()
    for mark in ".?,":
        text = text.replace(mark, " ")
    return Counter(text.split())


def make_pairs(paradigm: Paradigm, n: int, rng: random.Random, seen_lines: set,
               train_counts: Counter) -> List[dict]:
    """`n` distinct pairs whose sentences are not in `seen_lines` and whose words all occur in training."""
    g = SentenceGenerator(rng, core_only=True, endings=False)
    min_critical = max(MIN_PAIR_WORD_COUNT, MIN_CRITICAL_WORD_SHARE * sum(train_counts.values()))
    pairs: List[dict] = []
    used = set()
    attempts = 0
    while len(pairs) < n:
        attempts += 1
        if attempts > 200 * n + 1000:
            raise RuntimeError(f"could not make {n} novel pairs for {paradigm.uid}; is the corpus too small?")
        built = paradigm.build(g)
        if built is None:
            continue
        good_words, bad_words = built
        good, bad = finish(good_words), finish(bad_words)
        if good == bad or good in used or good in seen_lines or bad in seen_lines:
            continue
        if any(train_counts[_bare(w)] < MIN_PAIR_WORD_COUNT for w in good_words + bad_words):
            continue
        changed = [_bare(w) for pair in zip(good_words, bad_words) if pair[0] != pair[1] for w in pair]
        if any(train_counts[w] < min_critical for w in changed):
            continue
        used.add(good)
        pairs.append({
            "sentence_good": good,
            "sentence_bad": bad,
            "field": paradigm.field,
            "linguistics_term": paradigm.linguistics_term,
            "UID": paradigm.uid,
            "simple_LM_method": True,
            "one_prefix_method": True,
            "two_prefix_method": False,
            "lexically_identical": False,
            "pairID": str(len(pairs)),
        })
    return pairs


# ---------------------------------------------------------------------------
# Corpus and files
# ---------------------------------------------------------------------------

DOCUMENT_SENTENCES = (5, 20)  # sentences per document, inclusive range


def generate_documents(g: SentenceGenerator, n_sentences: int, exclude: Optional[set] = None) -> List[List[str]]:
    """Documents totalling `n_sentences` sentences; sentences in `exclude` are redrawn."""
    documents = []
    remaining = n_sentences
    while remaining > 0:
        size = min(remaining, g.rng.randint(*DOCUMENT_SENTENCES))
        doc = g.document(size)
        if exclude:
            for i, sentence in enumerate(doc):
                while sentence in exclude:
                    sentence = g.sentence()
                doc[i] = sentence
        documents.append(doc)
        remaining -= size
    return documents


def _documents_text(documents: List[List[str]]) -> str:
    return "\n\n".join("\n".join(doc) for doc in documents) + "\n"


def _write_layout(tmp: Path, seed: int, train_sentences: int, dev_sentences: int, pairs_per_paradigm: int) -> None:
    rng = random.Random(seed)
    g = SentenceGenerator(rng)
    train = generate_documents(g, train_sentences)
    train_lines = {s for doc in train for s in doc}
    # Dev sentences differ from training sentences, so dev loss measures generalisation.
    dev = generate_documents(g, dev_sentences, exclude=train_lines)
    seen = train_lines | {s for doc in dev for s in doc}
    train_counts = word_types(s for doc in train for s in doc)

    (tmp / "corpus").mkdir()
    (tmp / "pairs").mkdir()
    (tmp / "corpus" / "builtin.train").write_text(_documents_text(train), encoding="utf-8")
    (tmp / "corpus" / "builtin.dev").write_text(_documents_text(dev), encoding="utf-8")
    for paradigm in PARADIGMS:
        pairs = make_pairs(paradigm, pairs_per_paradigm, rng, seen, train_counts)
        with open(tmp / "pairs" / f"{paradigm.uid}.jsonl", "w", encoding="utf-8") as f:
            for pair in pairs:
                f.write(json.dumps(pair) + "\n")

    n_words = sum(train_counts.values())
    (tmp / "README.txt").write_text(
        "Built-in English-like corpus and minimal pairs, generated from the probabilistic grammar in "
        f"trainer/data/grammar.py (grammar version {GRAMMAR_VERSION}, seed {seed}); nothing was downloaded. "
        f"corpus/builtin.train holds {train_sentences} sentences ({n_words} words, {len(train_counts)} word "
        f"types) in {len(train)} documents (one sentence per line, a blank line between documents); "
        f"corpus/builtin.dev holds {dev_sentences} different sentences in {len(dev)} documents. pairs/ holds "
        f"{len(PARADIGMS)} BLiMP-style paradigms of {pairs_per_paradigm} minimal pairs each "
        f"({', '.join(p.uid for p in PARADIGMS)}): every good sentence follows the grammar, its bad twin "
        "differs in one word, and no pair sentence occurs in the corpus. Words are a core of real English "
        "plus generated pseudo-words, drawn from Zipf distributions. Regenerate with: "
        f"python -m trainer.data.grammar OUT_DIR --seed {seed} --train-sentences {train_sentences} "
        f"--dev-sentences {dev_sentences} --pairs-per-paradigm {pairs_per_paradigm}\n",
        encoding="utf-8",
    )


def _is_populated(path: Path) -> bool:
    return path.is_dir() and any(path.iterdir())


def _write_atomically(target: Path, write: Callable[[Path], None]) -> bool:
    """Build the directory in a temporary sibling, then rename it into place.

    Returns False when `target` appeared meanwhile (another process won): the
    existing directory is kept and ours is deleted.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the result should be readable like any folder
        write(tmp)
        try:
            os.rename(tmp, target)  # atomic; fails if target is a non-empty directory
            return True
        except OSError:
            if _is_populated(target):
                return False
            raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def summarize(root: str | os.PathLike) -> dict:
    """Paths and counts of a generated directory (read back from the files)."""
    root = Path(root)
    train_path, dev_path = root / "corpus" / "builtin.train", root / "corpus" / "builtin.dev"
    train_lines = [l for l in train_path.read_text(encoding="utf-8").splitlines() if l.strip()]
    dev_lines = [l for l in dev_path.read_text(encoding="utf-8").splitlines() if l.strip()]
    counts = word_types(train_lines)
    paradigms = {}
    for path in sorted((root / "pairs").glob("*.jsonl")):
        paradigms[path.stem] = sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    return {
        "root": str(root),
        "train_path": str(train_path),
        "dev_path": str(dev_path),
        "pairs_dir": str(root / "pairs"),
        "readme_path": str(root / "README.txt"),
        "grammar_version": GRAMMAR_VERSION,
        "train_sentences": len(train_lines),
        "dev_sentences": len(dev_lines),
        "train_words": sum(len(l.split()) for l in train_lines),
        "dev_words": sum(len(l.split()) for l in dev_lines),
        "train_word_types": len(counts),
        "paradigms": paradigms,
    }


def generate_builtin_data(
    root: str | os.PathLike,
    seed: int = 0,
    train_sentences: int = 60000,
    dev_sentences: int = 3000,
    pairs_per_paradigm: int = 300,
    *,
    exist_ok: bool = False,
) -> dict:
    """Write the built-in corpus and minimal pairs to `root` (atomically) and return a summary.

    If `root` already holds data, raises FileExistsError unless `exist_ok`, in
    which case the existing data is kept. If another process creates `root`
    while we are generating, its copy is kept and ours discarded. The summary
    has paths, sentence/word/type counts, pairs per paradigm, the seed,
    `created` (whether this call wrote the data) and `seconds`.
    """
    root = Path(root)
    if train_sentences < 1 or dev_sentences < 1 or pairs_per_paradigm < 1:
        raise ValueError("train_sentences, dev_sentences and pairs_per_paradigm must be positive")
    start = time.perf_counter()
    created = False
    if _is_populated(root):
        if not exist_ok:
            raise FileExistsError(f"{root} already exists and is not empty")
    else:
        created = _write_atomically(
            root, lambda tmp: _write_layout(tmp, seed, train_sentences, dev_sentences, pairs_per_paradigm))
    summary = summarize(root)
    summary.update(seed=seed, created=created, seconds=round(time.perf_counter() - start, 2))
    return summary


def builtin_data_dir(cache_root: str | os.PathLike, seed: int = 0, generate: bool = True) -> Path:
    """`<cache_root>/builtin-v{GRAMMAR_VERSION}-seed{seed}`, generated with the defaults if absent
    (unless `generate=False`: then only the path, which may not exist).

    Safe when several processes call it at once: each generates into its own
    temporary directory and only the first rename wins.
    """
    path = Path(cache_root) / f"builtin-v{GRAMMAR_VERSION}-seed{seed}"
    if generate and not _is_populated(path):
        _write_atomically(path, lambda tmp: _write_layout(tmp, seed, 60000, 3000, 300))
    return path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m trainer.data.grammar",
        description="Generate the built-in English-like corpus and BLiMP-style minimal pairs.")
    parser.add_argument("out_dir", help="directory to create (must not exist or be empty)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-sentences", type=int, default=60000)
    parser.add_argument("--dev-sentences", type=int, default=3000)
    parser.add_argument("--pairs-per-paradigm", type=int, default=300)
    parser.add_argument("--exist-ok", action="store_true", help="keep existing data instead of failing")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        summary = generate_builtin_data(args.out_dir, args.seed, args.train_sentences, args.dev_sentences,
                                        args.pairs_per_paradigm, exist_ok=args.exist_ok)
    except (FileExistsError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
