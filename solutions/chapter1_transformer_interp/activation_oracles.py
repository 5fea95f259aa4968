"""Reference solutions for 1.3.5 Activation oracles: a model that answers questions about another
model's activations (Karvonen et al. 2025), on the zoo's chat organism and its oracle.

Norm-matched injection at a placeholder token, the oracle's answer distribution, accuracy against the
generator's labels, a one-vs-rest logistic probe on the same activations (1.3.1's probe), secret
extraction, misalignment detection on an emergent-misalignment fine-tune, and model diffing.
Importing this module has no side effects.
"""

from collections.abc import Callable

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from solutions.chapter1_transformer_interp.linear_probes import train_logistic_probe


def inject(
    resid: Float[Tensor, "batch pos d_model"],
    vectors: Float[Tensor, "batch d_model"],
    position: int,
    scale: float = 1.0,
) -> Float[Tensor, "batch pos d_model"]:
    """A new residual stream: at `position`, each row's residual plus its vector rescaled to
    scale * the norm of that residual (norm-matched addition); every other position unchanged.
    The input is not modified."""
    here = resid[:, position]
    unit = vectors / vectors.norm(dim=-1, keepdim=True)
    added = torch.zeros_like(resid)
    added[:, position] = scale * here.norm(dim=-1, keepdim=True) * unit
    return resid + added


def injection_hook(vectors: Float[Tensor, "batch d_model"], position: int, scale: float = 1.0) -> Callable:
    """A TransformerLens forward hook that applies `inject` with these vectors at `position`."""

    def hook(resid: Tensor, hook) -> Tensor:
        return inject(resid, vectors, position, scale)

    return hook


def answer_probabilities(
    oracle: HookedTransformer,
    prompt: str,
    answer_ids: Int[Tensor, " n_answers"],
    vectors: Float[Tensor, "batch d_model"],
    hook_name: str,
    position: int,
) -> Float[Tensor, "batch n_answers"]:
    """The oracle's next-token distribution after `prompt` (one copy per vector, each with its vector
    injected at `hook_name` and `position`), restricted to the answer tokens and renormalised."""
    tokens = oracle.to_tokens([prompt] * len(vectors))
    logits = oracle.run_with_hooks(tokens, fwd_hooks=[(hook_name, injection_hook(vectors, position))])
    return logits[:, -1, answer_ids].softmax(-1)


def accuracy(probabilities: Float[Tensor, "batch n_answers"], truth: Int[Tensor, " batch"]) -> float:
    """The share of rows whose most probable answer is the true one (ties: the first answer)."""
    return (probabilities.argmax(-1) == truth).float().mean().item()


def one_vs_rest_probe(
    acts: Float[Tensor, "n d_model"], labels: Int[Tensor, " n"], n_classes: int, l2: float = 1e-2
) -> tuple[Float[Tensor, "n_classes d_model"], Float[Tensor, " n_classes"]]:
    """One logistic probe per class (that class against the rest, 1.3.1's class-balanced probe), each
    fit on the activations centred on their mean: (directions, biases), both for centred inputs."""
    centred = acts - acts.mean(0)
    directions, biases = [], []
    for k in range(n_classes):
        direction, bias = train_logistic_probe(centred, labels == k, l2=l2)
        directions.append(direction)
        biases.append(bias)
    return torch.stack(directions), torch.tensor(biases)


def probe_predict(
    directions: Float[Tensor, "n_classes d_model"],
    biases: Float[Tensor, " n_classes"],
    acts: Float[Tensor, "n d_model"],
    train_mean: Float[Tensor, " d_model"],
) -> Int[Tensor, " n"]:
    """The class whose probe scores highest on each activation (centred on the training mean)."""
    return ((acts - train_mean) @ directions.T + biases).argmax(-1)


def answer_counts(answers: Int[Tensor, " n"], n_answers: int) -> Float[Tensor, " n_answers"]:
    """The share of rows giving each answer index (a histogram that sums to 1)."""
    return torch.bincount(answers, minlength=n_answers).float() / len(answers)


def persona_shift(p_base: Float[Tensor, "n n_answers"], p_tuned: Float[Tensor, "n n_answers"], answer: int) -> float:
    """How much more probability the oracle puts on one answer reading the fine-tuned model than
    reading the base model, on the same prompts: mean over prompts of p_tuned - p_base."""
    return (p_tuned[:, answer] - p_base[:, answer]).mean().item()


def difference_vectors(
    acts_tuned: Float[Tensor, "n d_model"], acts_base: Float[Tensor, "n d_model"]
) -> Float[Tensor, "n d_model"]:
    """Model diffing's input: the fine-tuned model's activation minus the base model's, prompt by prompt."""
    return acts_tuned - acts_base


def cosine_to_mean(vectors: Float[Tensor, "n d_model"], direction: Float[Tensor, " d_model"]) -> float:
    """The cosine between the mean of the vectors and a direction."""
    return torch.cosine_similarity(vectors.mean(0), direction, dim=0).item()
