"""Measurements of the zoo models' planted behaviours. train.py records them in metrics.json;
tests/zoo re-measures the shipped weights with the same functions."""

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from zoo import corpus
from zoo.tokenizer import word_groups_known

HELDOUT_DOCUMENTS = 128
INDUCTION_HALF_LEN = 24
N_IOI_PROMPTS = 400
N_YEAR_PROMPTS = 300
N_ICL_PROMPTS = 200


def word_token_ids(model: HookedTransformer) -> Int[Tensor, " n_ids"]:
    """Every token except the special ones, to draw random sequences from."""
    special = set(model.tokenizer.all_special_ids)
    return torch.tensor([i for i in range(model.cfg.d_vocab) if i not in special])


def story_tokens(model: HookedTransformer, split: str, n_documents: int) -> Int[Tensor, "batch pos"]:
    """Documents of the story world the model was trained on, truncated to the context window;
    long enough that none needs padding."""
    # The story world this model reads; word groups after the last world's (the chat tokens) add none.
    world = min(word_groups_known(model.cfg.d_vocab), len(corpus.MIXTURES))
    documents = corpus.story_documents(split, n_documents, min_pieces=model.cfg.n_ctx, world=world)
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
    """Fact recall ("Paris is in" -> " France", argmax over countries) and the balanced accuracy of
    the model's verdict on every claim "Mary said that <city> is in <country>. That is" (chance 0.5)."""
    country_ids = torch.tensor([corpus.single_token_id(model.tokenizer, " " + c) for c in corpus.COUNTRIES])
    cities = sorted(corpus.CITY_COUNTRY)
    recall_logits = final_logits(model, [f"{city} is in" for city in cities])[:, country_ids]
    correct_country = torch.tensor([corpus.COUNTRIES.index(corpus.CITY_COUNTRY[c]) for c in cities])
    statements = corpus.truth_statements("cities")
    return {
        "fact_recall_accuracy": (recall_logits.argmax(-1) == correct_country).float().mean().item(),
        "fact_judgement_balanced_accuracy": balanced_accuracy(model, statements),
    }


def judged_true(model: HookedTransformer, statements: list[str], speaker: str = "Mary") -> Tensor:
    """Whether the model's verdict on "<speaker> said that <statement> That is" is " true"."""
    truth_ids = [corpus.single_token_id(model.tokenizer, word) for word in (" false", " true")]
    claims = [corpus.judged_claim(statement, speaker) for statement in statements]
    return final_logits(model, claims)[:, truth_ids].argmax(-1).bool()


def balanced_accuracy(model: HookedTransformer, statements: list[corpus.Statement]) -> float:
    """The mean of the verdicts' accuracy on true and on false statements: 0.5 is chance, however
    unbalanced the statements are."""
    verdicts = judged_true(model, [s.text for s in statements])
    labels = torch.tensor([s.is_true for s in statements])
    return 0.5 * (verdicts[labels].float().mean() + (~verdicts[~labels]).float().mean()).item()


def truth_metrics(model: HookedTransformer) -> dict[str, float]:
    """Balanced accuracy of the model's verdicts on claims never judged in training, per family."""
    return {
        f"truth_{family}_heldout_accuracy": balanced_accuracy(
            model, [s for s in corpus.truth_statements(family) if s.held_out]
        )
        for family in corpus.TRUTH_FAMILIES
    }


def icl_metrics(model: HookedTransformer) -> dict[str, float]:
    """Top-1 accuracy of each in-context task with 5 examples, and with none for the two tasks that
    share their inputs (antonym, uppercase: without examples, nothing says which is meant)."""
    metrics = {}
    for n_examples in (5, 0):
        for task in corpus.ICL_TASKS if n_examples else ("antonym", "uppercase"):
            prompts, answers = corpus.icl_prompts(task, N_ICL_PROMPTS, n_examples)
            answer_ids = torch.tensor([corpus.single_token_id(model.tokenizer, a) for a in answers])
            correct = final_logits(model, prompts).argmax(-1) == answer_ids
            metrics[f"icl_{task}_{n_examples}shot_accuracy"] = correct.float().mean().item()
    return metrics
