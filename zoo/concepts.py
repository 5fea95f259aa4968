"""Ground-truth concept labels for tokens, from the word lists and templates of zoo/corpus.py.

The zoo's text is generated, so what each token *is* is known: a name, a city, the second half of a
year, the end of a false claim. This is what an SAE latent's interpretation is scored against,
in place of an LLM's guess (autointerp): the claim "latent 123 is about countries" is checked by
the precision and recall of "latent 123 fires" against the "country" labels.

    from zoo.concepts import CONCEPTS, concept_labels, precision_recall
    labels = concept_labels(model.to_str_tokens(text), model.tokenizer)   # [pos, concept] bools
    precision, recall = precision_recall(latent_acts > 0, labels[..., CONCEPTS.index("country")])

A token can carry several concepts ("light" is a song word and an antonym word). Statement-level
truth: `statement_is_true` judges any statement of the three truth families against the ground
truth, and the concepts "true_claim" / "false_claim" mark the tokens between a judged claim and its
verdict (". That is"), where the model must hold the claim's truth to give its verdict.
"""

import re

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from zoo import corpus

# Concepts read off one token, by its word (leading space and case as the corpus writes them).
WORD_CONCEPTS: dict[str, frozenset[str]] = {
    "name": frozenset(corpus.NAMES),
    "place": frozenset(corpus.PLACES),
    "object": frozenset(corpus.OBJECTS),
    "adjective": frozenset(corpus.ADJECTIVES),
    "song_word": frozenset(corpus.SONG_WORDS),
    "city": frozenset(corpus.CITY_COUNTRY),
    "country": frozenset(corpus.COUNTRIES),
    "antonym_word": frozenset(corpus.ANTONYMS),
    "uppercase_word": frozenset(word.upper() for word in corpus.ANTONYMS),
    "truth_word": frozenset(["true", "false"]),
    "negation": frozenset(["not"]),
    "punctuation": frozenset(".,:"),
}
# Concepts that need the surrounding tokens.
CONTEXT_CONCEPTS = [
    "year",  # either half of a four-digit year (" 17", "89")
    "number",  # a two-digit token that is not part of a year (the successor/predecessor tasks)
    "true_claim",  # ". That is" after a true judged claim: "Mary said that Paris is in France. That is"
    "false_claim",  # the same after a false claim
]
CONCEPTS: list[str] = list(WORD_CONCEPTS) + CONTEXT_CONCEPTS

_YEAR = re.compile(r"(?<![0-9])[0-9]{4}(?![0-9])")
_CLAIM = re.compile(r"said that (?P<statement>[^.]+)(?P<tail>\. That is)")
_PERIOD = re.compile(r"from ([0-9]{4}) to ([0-9]{4})$")
_CITY_CLAIM = re.compile(r"(\w+) is (not )?in (\w+)$")


def statement_is_true(statement: str) -> bool:
    """Whether a statement of one of the truth families (corpus.TRUTH_FAMILIES) is true, by the
    ground truth: "Paris is in Spain." (False), "Paris is not in Spain." (True), "The war lasted from
    1789 to 1732." (False: periods run forwards). Raises ValueError for any other statement."""
    text = statement.strip().rstrip(".")
    if period := _PERIOD.search(text):
        start, end = (int(year) for year in period.groups())
        return start < end
    if (city_claim := _CITY_CLAIM.fullmatch(text)) and city_claim[1] in corpus.CITY_COUNTRY:
        city, negated, country = city_claim.groups()
        return (corpus.CITY_COUNTRY[city] == country) != bool(negated)
    raise ValueError(f"{statement!r} is not a statement of a truth family")


def _row_labels(str_tokens: list[str], special: set[str]) -> Bool[Tensor, "pos concept"]:
    pieces = ["" if token in special else token for token in str_tokens]
    labels = torch.zeros(len(pieces), len(CONCEPTS), dtype=torch.bool)
    for position, piece in enumerate(pieces):
        word = piece.strip()
        for concept, words in WORD_CONCEPTS.items():
            labels[position, CONCEPTS.index(concept)] = word in words
    # Context concepts: find spans in the joined text, then label every token that overlaps one.
    text = "".join(pieces)
    ends = torch.tensor([len(piece) for piece in pieces]).cumsum(0)
    starts = ends - torch.tensor([len(piece) for piece in pieces])

    def label_span(concept: str, start: int, end: int) -> None:
        overlaps = (starts < end) & (ends > start) & (ends > starts)
        labels[overlaps, CONCEPTS.index(concept)] = True

    for year in _YEAR.finditer(text):
        label_span("year", *year.span())
    is_two_digit = torch.tensor([bool(re.fullmatch(r" ?[0-9]{2}", piece)) for piece in pieces], dtype=torch.bool)
    labels[:, CONCEPTS.index("number")] = is_two_digit & ~labels[:, CONCEPTS.index("year")]
    for claim in _CLAIM.finditer(text):
        try:
            is_true = statement_is_true(claim["statement"])
        except ValueError:
            continue
        label_span("true_claim" if is_true else "false_claim", *claim.span("tail"))
    return labels


def concept_labels(
    tokens: list[str] | list[list[str]] | Int[Tensor, "*batch pos"], tokenizer
) -> Bool[Tensor, "*batch pos concept"]:
    """Which concepts (CONCEPTS, in order) each token carries. `tokens` are string tokens (one
    sequence, as model.to_str_tokens gives them, or a list of equally long sequences) or token ids
    of any batch shape. Special tokens (BOS, padding) carry none."""
    special = set(tokenizer.all_special_tokens)
    if isinstance(tokens, Tensor):
        rows = tokens.reshape(-1, tokens.shape[-1]).tolist()
        labels = [_row_labels(tokenizer.convert_ids_to_tokens(row), special) for row in rows]
        return torch.stack(labels).reshape(*tokens.shape, len(CONCEPTS))
    if tokens and isinstance(tokens[0], list):
        return torch.stack([_row_labels(row, special) for row in tokens])
    return _row_labels(tokens, special)


def precision_recall(fires: Bool[Tensor, "*tokens"], labels: Bool[Tensor, "*tokens"]) -> tuple[float, float]:
    """Precision (of the tokens where a latent fires, the share that carry the concept) and recall (of
    the tokens that carry the concept, the share where it fires). Either is 0.0 when undefined."""
    hits = (fires & labels).sum().item()
    return hits / max(fires.sum().item(), 1), hits / max(labels.sum().item(), 1)
