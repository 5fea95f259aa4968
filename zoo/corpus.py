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
- facts: every city lies in one country (CITY_COUNTRY, the ground truth). Text states true facts,
  and people make claims that the text then calls true or false.

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
    if rng.random() < 0.4:
        return f"{city} is in {CITY_COUNTRY[city]}."
    claimed = CITY_COUNTRY[city] if rng.random() < 0.5 else rng.choice(COUNTRIES)
    verdict = "true" if claimed == CITY_COUNTRY[city] else "false"
    return f"{rng.choice(NAMES)} said that {city} is in {claimed}. That is {verdict}."


def story_sentence(rng: random.Random) -> str:
    """One sentence (or short passage) of the story world, drawn from the planted mixture."""
    kind = rng.random()
    if kind < 0.35:
        text, indirect_object, _ = _ioi_parts(rng, rng.choice(TRAIN_IOI_TEMPLATES))
        return f"{text} {indirect_object}."
    if kind < 0.5:
        start, end, _, _ = _year_pair(rng)
        return _fill(rng.choice(YEAR_TEMPLATES), rng, start=start, end=end)
    if kind < 0.62:
        return _song(rng)
    if kind < 0.77:
        return _fact(rng)
    return _fill(rng.choice(STORY_TEMPLATES), rng)


# Matches the tokenizer's pre-tokenization, so documents can be sized without tokenizing.
PIECE_PATTERN = r" ?[A-Za-z]+| ?[0-9]{2}|[^ A-Za-z0-9]"


def story_documents(split: str, n_documents: int, min_pieces: int) -> list[str]:
    """Documents of whole sentences, each at least min_pieces tokens long (truncate to fit)."""
    rng = random.Random(SPLIT_SEEDS[split])
    documents = []
    for _ in range(n_documents):
        sentences, n_pieces = [], 0
        while n_pieces < min_pieces:
            sentences.append(story_sentence(rng))
            n_pieces += len(re.findall(PIECE_PATTERN, " " + sentences[-1]))
        documents.append(" ".join(sentences))
    return documents


def vocabulary_words() -> list[str]:
    """Every word any generator can write, without leading spaces."""
    fixed_text = " ".join(
        NAMES + PLACES + OBJECTS + ADJECTIVES + SONG_WORDS + COUNTRIES + list(CITY_COUNTRY)
        + IOI_INTROS + IOI_ACTIONS + YEAR_TEMPLATES + STORY_TEMPLATES
        + ["sang a song same Later said that is in That true false"]
    )  # fmt: skip
    without_slots = re.sub(r"\{[a-z_A-Z]+\}", " ", fixed_text)
    return sorted(set(re.findall(r"[A-Za-z]+", without_slots)))


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


def fact_statements() -> list[tuple[str, bool]]:
    """Every "<city> is in <country>." statement, with whether it is true (CITY_COUNTRY)."""
    return [
        (f"{city} is in {country}.", CITY_COUNTRY[city] == country)
        for city in sorted(CITY_COUNTRY)
        for country in COUNTRIES
    ]
