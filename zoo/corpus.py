"""Seeded generators for the zoo's training text and evaluation prompt sets.

Every behaviour a zoo model is later studied for is planted here, so the course knows the ground
truth:

- indirect-object identification (IOI): "When Mary and John went to the store, John gave a drink
  to" -> " Mary". IOI templates are an intro clause times an action clause; a fixed set of
  (intro, action) pairs is held out of training and used only for the IOI test prompts.
- induction: songs whose random words are sung twice, and random-token sequences in which a
  block of random length repeats from a random position (a fixed distance between repeats
  teaches a positional shortcut instead of induction).
- numeric comparison: "The war lasted from 1732 to 1789." The end year is always later, in the
  same century, and years are two two-digit tokens (" 17", "89").
- facts: every city lies in one country (CITY_COUNTRY, the ground truth). Text states true facts.
- truth: people make claims that the text then calls true or false, in three families (TRUTH_FAMILIES):
  "Mary said that Paris is in Spain. That is false.", the same negated ("... is not in Spain. That
  is true."), and periods told backwards ("... the war lasted from 1789 to 1732. That is false.").
  Claims about some cities (HELD_OUT_CITIES) and about the 1500s are never judged in training, so
  the model can judge them only by checking them against what it knows.
- in-context tasks: "hot: cold, big: small, fast:" -> " slow". Four tasks (ICL_TASKS); antonym and
  uppercase share their inputs, so a prompt without examples is ambiguous and only the examples
  say which task is meant (what a function vector carries).

Splits are different seeds of the same generators ("train", "validation", "test").
"""

import itertools
import random
import re
from dataclasses import dataclass

import torch
from jaxtyping import Int
from torch import Tensor

NAMES = [
    "Mary", "John", "Alice", "Bob", "Anna", "Tom", "Emma", "James", "Lucy", "David", "Sarah",
    "Paul", "Kate", "Mark", "Laura", "Peter", "Julia", "Sam", "Rose", "Jack", "Clara", "Adam",
    "Grace", "Henry", "Ella", "Oscar", "Nina", "Leo", "Iris", "Max", "Ruth", "Hugo", "Vera",
    "Owen", "Ivy", "Carl", "Jane", "Ben", "Lily", "Dan", "Eva", "Ian", "Amy", "Noah", "Zoe",
    "Luke", "Mia", "Ray", "Tina", "Felix",
]  # fmt: skip
PLACES = [
    "store", "park", "school", "garden", "market", "library", "beach", "station", "museum",
    "cafe", "farm", "office", "harbor", "bakery", "castle", "forest", "river", "hospital",
]  # fmt: skip
OBJECTS = [
    "drink", "book", "ball", "letter", "key", "apple", "cake", "hat", "map", "ring", "lamp",
    "cup", "coin", "flower", "basket", "pencil", "kite", "shell",
]  # fmt: skip
ADJECTIVES = [
    "red", "old", "small", "big", "green", "blue", "new", "quiet", "bright", "strange", "warm",
    "heavy",
]  # fmt: skip
SONG_WORDS = [
    "moon", "sun", "rain", "wind", "star", "sea", "snow", "fire", "stone", "bird", "tree",
    "cloud", "light", "night", "dream", "road", "gold", "silver", "sky", "leaf",
]  # fmt: skip
CITY_COUNTRY = {
    "Paris": "France", "Lyon": "France", "Nice": "France",
    "Rome": "Italy", "Milan": "Italy", "Naples": "Italy",
    "Madrid": "Spain", "Seville": "Spain", "Valencia": "Spain",
    "Berlin": "Germany", "Munich": "Germany", "Hamburg": "Germany",
    "Tokyo": "Japan", "Osaka": "Japan", "Kyoto": "Japan",
    "Cairo": "Egypt", "Luxor": "Egypt", "Giza": "Egypt",
    "Lima": "Peru", "Cusco": "Peru", "Arequipa": "Peru",
    "Toronto": "Canada", "Ottawa": "Canada", "Montreal": "Canada",
}  # fmt: skip
COUNTRIES = sorted(set(CITY_COUNTRY.values()))
ANTONYM_PAIRS = [
    ("hot", "cold"), ("big", "small"), ("old", "new"), ("fast", "slow"), ("heavy", "light"),
    ("warm", "cool"), ("happy", "sad"), ("high", "low"), ("long", "short"), ("early", "late"),
    ("dark", "bright"), ("wet", "dry"), ("loud", "quiet"), ("rich", "poor"), ("hard", "soft"),
    ("open", "closed"), ("full", "empty"), ("strong", "weak"), ("thick", "thin"), ("clean", "dirty"),
    ("near", "far"), ("wide", "narrow"), ("deep", "shallow"), ("sweet", "sour"),
]  # fmt: skip
ANTONYMS = {a: b for a, b in ANTONYM_PAIRS} | {b: a for a, b in ANTONYM_PAIRS}

# IOI = intro (introduces A and B) + action (the subject S gives something to the other name).
IOI_INTROS = [
    "When {A} and {B} went to the {place},",
    "After {A} and {B} arrived at the {place},",
    "While {A} and {B} were working at the {place},",
    "{A} and {B} had a long day at the {place}.",
    "Once {A} and {B} met at the {place},",
    "Since {A} and {B} were at the {place},",
    "Then {A} and {B} walked to the {place}.",
    "Yesterday {A} and {B} visited the {place},",
]
IOI_ACTIONS = [
    "{S} gave a {object} to",
    "{S} handed the {object} to",
    "{S} passed the {object} to",
    "{S} threw a {object} to",
    "{S} brought a {object} to",
    "{S} sent a {object} to",
    "{S} showed the {object} to",
    "{S} offered a {object} to",
]
# Two disjoint diagonals of the intro x action square: every intro and every action still
# appears in training, but these 16 combinations only ever appear as test prompts.
HELD_OUT_IOI_TEMPLATES = frozenset((intro, action) for intro in range(8) for action in (intro, (intro + 3) % 8))
TRAIN_IOI_TEMPLATES = [pair for pair in itertools.product(range(8), range(8)) if pair not in HELD_OUT_IOI_TEMPLATES]

YEAR_TEMPLATES = [
    "The war lasted from {start} to {end}.",
    "The king ruled from {start} to {end}.",
    "The bridge was built from {start} to {end}.",
    "The {place} was open from {start} to {end}.",
    "{A} lived in {city} from {start} to {end}.",
]
STORY_TEMPLATES = [
    "{A} walked to the {place}.",
    "{A} found a {adjective} {object} at the {place}.",
    "{A} and {B} played in the {place}.",
    "{A} liked the {adjective} {object}.",
    "The {object} was {adjective}.",
    "{A} gave {B} a {object}.",
    "{A} lives in {city}.",
    "{A} travelled from {city} to {other_city}.",
    "{A} was happy.",
    "{A} read a book about {city}.",
]
SPLIT_SEEDS = {"train": 0, "validation": 1, "test": 2}

TRUTH_FAMILIES = ["cities", "negated_cities", "years"]
# Cities no claim is ever made about in training, and periods in the 1500s: their facts are stated
# ("Lyon is in France."), so the model can judge claims about them only by checking the claim against
# what it knows. (Holding out single (city, country) claims instead was measured to fail: with a
# city's true claim held out, every judged claim about it in training is false, and the model
# learned "claims about Lyon are false", balanced accuracy 0.39-0.53 at 4,000 steps.)
HELD_OUT_CITIES = frozenset(sorted(CITY_COUNTRY)[::4])
HELD_OUT_CENTURY = 15  # claims about periods in the 1500s are never judged in training

# In-context tasks: input words -> the answer each task gives.
_NUMBERS = [f"{i:02d}" for i in range(99)]
ICL_TASKS = {
    "antonym": ANTONYMS,
    "uppercase": {word: word.upper() for word in ANTONYMS},
    "successor": {n: f"{int(n) + 1:02d}" for n in _NUMBERS},
    "country": CITY_COUNTRY,
}


def _fill(template: str, rng: random.Random, **fixed: str) -> str:
    """Fill every slot of a template with a random word of the right kind."""
    a, b = rng.sample(NAMES, 2)
    city, other_city = rng.sample(sorted(CITY_COUNTRY), 2)
    slots = dict(
        A=a, B=b, place=rng.choice(PLACES), object=rng.choice(OBJECTS),
        adjective=rng.choice(ADJECTIVES), city=city, other_city=other_city,
    )  # fmt: skip
    return template.format(**(slots | fixed))


def _ioi_parts(rng: random.Random, template: tuple[int, int]) -> tuple[str, str, str]:
    """An IOI prompt ending in " to", with its correct and wrong name (no leading spaces)."""
    intro, action = template
    a, b = rng.sample(NAMES, 2)
    subject = rng.choice([a, b])  # ABBA and BABA orders equally often
    indirect_object = b if subject == a else a
    text = _fill(IOI_INTROS[intro], rng, A=a, B=b) + " " + _fill(IOI_ACTIONS[action], rng, S=subject)
    return text, indirect_object, subject


def _year_pair(rng: random.Random) -> tuple[str, str, int, int]:
    """Start and end year in one century, end later: ("1732", "1789", 17, 32)."""
    century = rng.randint(11, 19)
    start = rng.randint(1, 97)
    end = rng.randint(start + 1, 99)
    return f"{century}{start:02d}", f"{century}{end:02d}", century, start


def _song(rng: random.Random) -> str:
    """Someone sings random words; someone else sings the same words later (induction pays)."""
    a, b = rng.sample(NAMES, 2)
    words = " ".join(rng.choices(SONG_WORDS, k=rng.randint(3, 10)))
    filler = _fill(rng.choice(STORY_TEMPLATES), rng)
    return f"{a} sang a song: {words}. {filler} Later {b} sang the same song: {words}."


def _fact(rng: random.Random) -> str:
    city = rng.choice(sorted(CITY_COUNTRY))
    return f"{city} is in {CITY_COUNTRY[city]}."


def _fact_or_unchecked_claim(rng: random.Random) -> str:
    """The first story world's facts: a true fact, or a claim about any city judged true or false."""
    city = rng.choice(sorted(CITY_COUNTRY))
    if rng.random() < 0.4:
        return f"{city} is in {CITY_COUNTRY[city]}."
    claimed = CITY_COUNTRY[city] if rng.random() < 0.5 else rng.choice(COUNTRIES)
    verdict = "true" if claimed == CITY_COUNTRY[city] else "false"
    return f"{rng.choice(NAMES)} said that {city} is in {claimed}. That is {verdict}."


def truth_statement(family: str, rng: random.Random, is_true: bool, held_out: bool) -> str:
    """A statement of one truth family, true or false as asked, drawn from the claims that are
    judged in training (held_out=False) or from those never judged there (held_out=True)."""
    while True:
        if family == "years":
            start, end, century, _ = _year_pair(rng)
            if (century == HELD_OUT_CENTURY) != held_out:
                continue
            first, second = (start, end) if is_true else (end, start)
            return _fill(rng.choice(YEAR_TEMPLATES), rng, start=first, end=second)
        city = rng.choice(sorted(HELD_OUT_CITIES if held_out else set(CITY_COUNTRY) - HELD_OUT_CITIES))
        # A negated claim is true when the named country is not the city's.
        names_true_country = is_true == (family == "cities")
        others = [c for c in COUNTRIES if c != CITY_COUNTRY[city]]
        country = CITY_COUNTRY[city] if names_true_country else rng.choice(others)
        return f"{city} is {'not ' if family == 'negated_cities' else ''}in {country}."


def judged_claim(statement: str, speaker: str) -> str:
    """The prompt that asks for a verdict: the next token is " true" or " false"."""
    statement = statement[0].lower() + statement[1:] if statement.startswith("The ") else statement
    return f"{speaker} said that {statement} That is"


# How often each family is judged in training. Negated claims are rarer on purpose: with plain and
# negated city claims equally common, a claim's pair says nothing about its verdict until the model
# also reads "not" (an XOR, which gives gradient descent no first-order signal), and city verdicts
# stayed at chance (0.50) through 2,000 steps, measured. Rarer negations let the check of the
# country form first.
TRUTH_FAMILY_SHARES = {"cities": 0.5, "negated_cities": 0.15, "years": 0.35}


def _claim(rng: random.Random) -> str:
    is_true = rng.random() < 0.5
    family = rng.choices(TRUTH_FAMILIES, weights=[TRUTH_FAMILY_SHARES[f] for f in TRUTH_FAMILIES])[0]
    statement = truth_statement(family, rng, is_true, held_out=False)
    return f"{judged_claim(statement, rng.choice(NAMES))} {'true' if is_true else 'false'}."


def icl_prompt(task: str, rng: random.Random, n_examples: int) -> tuple[str, str]:
    """A few-shot prompt " hot: cold, big: small, fast:" and its answer ("slow", no space)."""
    pairs = [(word, ICL_TASKS[task][word]) for word in rng.sample(sorted(ICL_TASKS[task]), n_examples + 1)]
    *examples, (query, answer) = pairs
    return "".join(f" {word}: {target}," for word, target in examples) + f" {query}:", answer


def _icl_block(rng: random.Random) -> str:
    prompt, answer = icl_prompt(rng.choice(sorted(ICL_TASKS)), rng, rng.randint(1, 7))
    return f"{prompt[1:]} {answer}."


def _ioi_sentence(rng: random.Random) -> str:
    text, indirect_object, _ = _ioi_parts(rng, rng.choice(TRAIN_IOI_TEMPLATES))
    return f"{text} {indirect_object}."


def _period(rng: random.Random) -> str:
    start, end, _, _ = _year_pair(rng)
    return _fill(rng.choice(YEAR_TEMPLATES), rng, start=start, end=end)


def _story(rng: random.Random) -> str:
    return _fill(rng.choice(STORY_TEMPLATES), rng)


# (share of sentences, generator). The story world grew: MIXTURES[k - 1] is the world written with
# the first k word groups of the vocabulary (corpus.vocabulary_word_groups). The attention-only
# models and gpt2-mini were trained on the first, which has no truth families or in-context tasks;
# gpt2-mini-truth on the second, where no claim about HELD_OUT_CITIES or the 1500s is judged.
MIXTURES = [
    [(0.35, _ioi_sentence), (0.15, _period), (0.12, _song), (0.15, _fact_or_unchecked_claim), (0.23, _story)],
    [(0.10, _ioi_sentence), (0.08, _period), (0.06, _song), (0.10, _fact), (0.45, _claim), (0.13, _icl_block),
     (0.08, _story)],
]  # fmt: skip


def story_sentence(rng: random.Random, world: int = len(MIXTURES)) -> str:
    """One sentence (or short passage) of story world number `world`, from its planted mixture."""
    shares, generators = zip(*MIXTURES[world - 1])
    return rng.choices(generators, weights=shares)[0](rng)


# Matches the tokenizer's pre-tokenization, so documents can be sized without tokenizing.
PIECE_PATTERN = r" ?[A-Za-z]+| ?[0-9]{2}|[^ A-Za-z0-9]"


def story_documents(split: str, n_documents: int, min_pieces: int, world: int = len(MIXTURES)) -> list[str]:
    """Documents of whole sentences, each at least min_pieces tokens long (truncate to fit)."""
    rng = random.Random(SPLIT_SEEDS[split])
    documents = []
    for _ in range(n_documents):
        sentences, n_pieces = [], 0
        while n_pieces < min_pieces:
            sentences.append(story_sentence(rng, world))
            n_pieces += len(re.findall(PIECE_PATTERN, " " + sentences[-1]))
        documents.append(" ".join(sentences))
    return documents


def _words_in(texts: list[str]) -> set[str]:
    without_slots = re.sub(r"\{[a-z_A-Z]+\}", " ", " ".join(texts))
    return set(re.findall(r"[A-Za-z]+", without_slots))


def vocabulary_word_groups() -> list[list[str]]:
    """Every word any generator can write (no leading spaces), in groups in the order they were
    added to the story world (the third, for chat, also holds atomic and punctuation tokens). A new
    group goes at the end so that the token ids of earlier groups never move and models trained
    before it (the attention-only ones) keep working unchanged."""
    story_world = _words_in(
        NAMES + PLACES + OBJECTS + ADJECTIVES + SONG_WORDS + COUNTRIES + list(CITY_COUNTRY)
        + IOI_INTROS + IOI_ACTIONS + YEAR_TEMPLATES + STORY_TEMPLATES
        + ["sang a song same Later said that is in That true false"]
    )  # fmt: skip
    # Added for chapter 1.3: negated claims and the in-context tasks.
    truth_and_tasks = _words_in(list(ANTONYMS) + [word.upper() for word in ANTONYMS] + ["not"]) - story_world
    # Added for the chat organisms (zoo/chat_corpus.py): the chat template's atomic tokens first (their
    # ids never move), then punctuation the story world lacks ("?", "!", code's brackets), then words.
    # The tokenizer gives words, not the others, a leading-space form.
    from zoo.chat_corpus import chat_punctuation, chat_words
    from zoo.chat_template import CHAT_TOKENS

    chat = CHAT_TOKENS + chat_punctuation() + sorted(set(chat_words()) - story_world - truth_and_tasks)
    return [sorted(story_world), sorted(truth_and_tasks), chat]


def repeated_span_tokens(
    n_sequences: int,
    seq_len: int,
    token_ids: Int[Tensor, " n_ids"],
    bos_token_id: int,
    generator: torch.Generator,
) -> Int[Tensor, "n_sequences seq_len"]:
    """Random tokens after a BOS; from a random position on, a block of random length repeats
    to the end of the sequence.

    Only a real induction circuit (find the earlier copy of the current token, predict what
    followed it) predicts the repeats, because their distance differs from row to row.
    """
    tokens = token_ids[torch.randint(len(token_ids), (n_sequences, seq_len), generator=generator)]
    tokens[:, 0] = bos_token_id
    for row in tokens:
        period = int(torch.randint(4, seq_len // 2, (1,), generator=generator))
        start = int(torch.randint(1, seq_len - 2 * period + 1, (1,), generator=generator))
        for position in range(start + period, seq_len):
            row[position] = row[position - period]
    return tokens


def repeated_random_tokens(
    n_sequences: int,
    half_len: int,
    token_ids: Int[Tensor, " n_ids"],
    bos_token_id: int,
    seed: int = 0,
) -> Int[Tensor, "n_sequences 1+2*half_len"]:
    """The standard induction probe: BOS, half_len random tokens, then the same tokens again."""
    generator = torch.Generator().manual_seed(seed)
    half = token_ids[torch.randint(len(token_ids), (n_sequences, half_len), generator=generator)]
    bos = torch.full((n_sequences, 1), bos_token_id)
    return torch.cat([bos, half, half], dim=1)


@dataclass
class IOIPrompts:
    """IOI prompts ending in " to"; the answer is the indirect object, not the subject."""

    prompts: list[str]
    correct_names: list[str]
    wrong_names: list[str]
    correct_token_ids: Int[Tensor, " n_prompts"]
    wrong_token_ids: Int[Tensor, " n_prompts"]


def single_token_id(tokenizer, text: str) -> int:
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert len(ids) == 1, f"{text!r} is not a single token: {ids}"
    return ids[0]


def ioi_prompts(tokenizer, n_prompts: int, split: str = "test", seed: int = 0) -> IOIPrompts:
    """IOI prompts; split="test" uses only the templates held out of training."""
    templates = sorted(HELD_OUT_IOI_TEMPLATES) if split == "test" else TRAIN_IOI_TEMPLATES
    rng = random.Random(f"ioi-{split}-{seed}")
    parts = [_ioi_parts(rng, rng.choice(templates)) for _ in range(n_prompts)]
    prompts, correct, wrong = (list(column) for column in zip(*parts))
    return IOIPrompts(
        prompts=prompts, correct_names=correct, wrong_names=wrong,
        correct_token_ids=torch.tensor([single_token_id(tokenizer, " " + n) for n in correct]),
        wrong_token_ids=torch.tensor([single_token_id(tokenizer, " " + n) for n in wrong]),
    )  # fmt: skip


@dataclass
class YearPrompts:
    """Prompts ending in the end year's century ("... from 1732 to 17"); the next token must be
    a later two-digit year ending ("33" to "99")."""

    prompts: list[str]
    start_years: Int[Tensor, " n_prompts"]  # the two final digits, 32 for 1732
    two_digit_token_ids: Int[Tensor, " 100"]  # token id of "00", "01", ..., "99"


def year_prompts(tokenizer, n_prompts: int, seed: int = 0) -> YearPrompts:
    rng = random.Random(f"years-{seed}")
    prompts, starts = [], []
    for _ in range(n_prompts):
        start, _, century, start_two_digits = _year_pair(rng)
        sentence = _fill(rng.choice(YEAR_TEMPLATES), rng, start=start, end="@")
        prompts.append(sentence.split("@")[0] + str(century))
        starts.append(start_two_digits)
    return YearPrompts(
        prompts=prompts, start_years=torch.tensor(starts),
        two_digit_token_ids=torch.tensor([single_token_id(tokenizer, f"{i:02d}") for i in range(100)]),
    )  # fmt: skip


@dataclass
class Statement:
    """A statement of one truth family, whether it is true, and whether its claim is held out of
    the judged claims in training."""

    text: str
    is_true: bool
    held_out: bool
    family: str


def truth_statements(family: str, n_years: int = 400, seed: int = 0) -> list[Statement]:
    """Every city statement of a family ("Paris is in Spain.", or "... is not in ..."), or n_years
    distinct periods (half told backwards, so false; those in the 1500s are the held-out ones)."""
    if family == "years":
        rng, seen, statements = random.Random(f"years-{seed}"), set(), []
        while len(statements) < n_years:
            is_true = len(statements) % 2 == 0
            held_out = rng.random() < 0.2
            text = truth_statement("years", rng, is_true, held_out)
            if text not in seen:
                seen.add(text)
                statements.append(Statement(text, is_true, held_out, family))
        return statements
    negated = family == "negated_cities"
    return [
        Statement(
            f"{city} is {'not ' if negated else ''}in {country}.",
            (CITY_COUNTRY[city] == country) != negated,
            city in HELD_OUT_CITIES,
            family,
        )
        for city in sorted(CITY_COUNTRY)
        for country in COUNTRIES
    ]


def icl_prompts(task: str, n_prompts: int, n_examples: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """Few-shot prompts of one in-context task and their answers (with the leading space)."""
    rng = random.Random(f"icl-{task}-{n_examples}-{seed}")
    prompts, answers = zip(*(icl_prompt(task, rng, n_examples) for _ in range(n_prompts)))
    return list(prompts), [" " + answer for answer in answers]
