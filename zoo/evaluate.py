"""Measurements of the zoo models' planted behaviours. train.py records them in metrics.json;
tests/zoo re-measures the shipped weights with the same functions."""

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from zoo import corpus

HELDOUT_DOCUMENTS = 128
INDUCTION_HALF_LEN = 24
N_IOI_PROMPTS = 400
N_YEAR_PROMPTS = 300


def word_token_ids(model: HookedTransformer) -> Int[Tensor, " n_ids"]:
    """Every token except the special ones, to draw random sequences from."""
    special = set(model.tokenizer.all_special_ids)
    return torch.tensor([i for i in range(model.cfg.d_vocab) if i not in special])


def story_tokens(model: HookedTransformer, split: str, n_documents: int) -> Int[Tensor, "batch pos"]:
    """Story documents truncated to the context window; long enough that none needs padding."""
    documents = corpus.story_documents(split, n_documents, min_pieces=model.cfg.n_ctx)
    tokens = model.to_tokens(documents, move_to_device=False)
    assert tokens.shape[1] == model.cfg.n_ctx and (tokens != model.tokenizer.pad_token_id).all()
    return tokens


@torch.inference_mode()
def heldout_loss(model: HookedTransformer, batch_size: int = 32) -> float:
    """Mean next-token loss on the test split of the story corpus."""
    tokens = story_tokens(model, "test", HELDOUT_DOCUMENTS)
    losses = [model(batch.to(model.cfg.device), return_type="loss").item() for batch in tokens.split(batch_size)]
    return sum(losses) / len(losses)


@torch.inference_mode()
def head_scores(model: HookedTransformer, n_sequences: int = 64) -> dict[str, Float[Tensor, "layer head"]]:
    """Previous-token and induction scores of every head, on repeated random tokens.

    previous_token: mean attention from each position to the one before it (from position 2
    on: position 1's previous token is the BOS, where many heads park attention anyway).
    induction: mean attention from a token in the repeat to the token after its first copy.
    """
    tokens = corpus.repeated_random_tokens(
        n_sequences, INDUCTION_HALF_LEN, word_token_ids(model), model.tokenizer.bos_token_id
    ).to(model.cfg.device)
    _, cache = model.run_with_cache(tokens, names_filter=lambda name: name.endswith("hook_pattern"))
    patterns = torch.stack([cache["pattern", layer] for layer in range(model.cfg.n_layers)])
    # patterns: [layer, batch, head, query_pos, key_pos]
    previous_token = patterns.diagonal(offset=-1, dim1=-2, dim2=-1)[..., 1:].mean((1, -1))
    induction_diagonal = patterns.diagonal(offset=-(INDUCTION_HALF_LEN - 1), dim1=-2, dim2=-1)
    induction = induction_diagonal[..., 1:].mean((1, -1))  # queries in the repeated half only
    return {"previous_token": previous_token.cpu(), "induction": induction.cpu()}


def parse_head(head: str) -> tuple[int, int]:
    """ "L1H3" -> (1, 3)."""
    layer, head_index = head[1:].split("H")
    return int(layer), int(head_index)


@torch.inference_mode()
def final_logits(model: HookedTransformer, prompts: list[str]) -> Float[Tensor, "batch d_vocab"]:
    """Next-token logits after each prompt; left padding puts every prompt's end at -1."""
    tokens = model.to_tokens(prompts, padding_side="left")
    return model(tokens)[:, -1].cpu()


def ioi_metrics(model: HookedTransformer) -> dict[str, float]:
    """On prompts from IOI templates never trained on: how often the indirect object beats the
    subject, the mean logit difference, and how often it is the top prediction."""
    prompts = corpus.ioi_prompts(model.tokenizer, N_IOI_PROMPTS, split="test")
    logits = final_logits(model, prompts.prompts)
    rows = torch.arange(len(logits))
    logit_diff = logits[rows, prompts.correct_token_ids] - logits[rows, prompts.wrong_token_ids]
    return {
        "ioi_accuracy": (logit_diff > 0).float().mean().item(),
        "ioi_logit_diff": logit_diff.mean().item(),
        "ioi_top1_accuracy": (logits.argmax(-1) == prompts.correct_token_ids).float().mean().item(),
    }


def year_metrics(model: HookedTransformer) -> dict[str, float]:
    """After "... from 1732 to 17": how often the top prediction is a later year ending, and the
    mean probability on later endings minus the mean probability on earlier or equal ones."""
    prompts = corpus.year_prompts(model.tokenizer, N_YEAR_PROMPTS)
    probs = final_logits(model, prompts.prompts).softmax(-1)
    two_digit_probs = probs[:, prompts.two_digit_token_ids]  # [batch, 100]
    is_later = torch.arange(100)[None, :] > prompts.start_years[:, None]
    top_token = probs.argmax(-1)
    top_is_later_year = (prompts.two_digit_token_ids[None, :] == top_token[:, None]) & is_later
    later_mass = (two_digit_probs * is_later).sum(-1)
    earlier_mass = (two_digit_probs * ~is_later).sum(-1)
    return {
        "year_accuracy": top_is_later_year.any(-1).float().mean().item(),
        "year_probability_difference": (later_mass - earlier_mass).mean().item(),
    }


def fact_metrics(model: HookedTransformer) -> dict[str, float]:
    """Fact recall ("Paris is in" -> " France", argmax over countries) and truth judgement
    ("Mary said that Paris is in Spain. That is" -> " false" over " true")."""
    tokenizer = model.tokenizer
    country_ids = torch.tensor([corpus.single_token_id(tokenizer, " " + c) for c in corpus.COUNTRIES])
    cities = sorted(corpus.CITY_COUNTRY)
    recall_logits = final_logits(model, [f"{city} is in" for city in cities])[:, country_ids]
    truth_ids = torch.tensor([corpus.single_token_id(tokenizer, w) for w in (" false", " true")])
    statements = corpus.fact_statements()
    claims = [f"Mary said that {statement} That is" for statement, _ in statements]
    judged_true = final_logits(model, claims)[:, truth_ids].argmax(-1).bool()
    labels = torch.tensor([is_true for _, is_true in statements])
    correct_country = torch.tensor([corpus.COUNTRIES.index(corpus.CITY_COUNTRY[c]) for c in cities])
    # Balance the judgement accuracy: there are 7 false statements for every true one.
    return {
        "fact_recall_accuracy": (recall_logits.argmax(-1) == correct_country).float().mean().item(),
        "fact_judgement_balanced_accuracy": 0.5 * (
            judged_true[labels].float().mean() + (~judged_true[~labels]).float().mean()
        ).item(),
    }  # fmt: skip
