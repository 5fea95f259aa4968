"""Reference solutions for 4.7 Estimating the probability of rare outputs (after Wu and Hilton 2024,
"Estimating the probabilities of rare outputs in language models").

The input distribution is every length-k sequence over a small vocabulary, drawn uniformly (after a BOS
token); the rare output is one target token being the strict argmax of the model's logits at the last
position. The exact probability comes from enumerating every input; the estimators are naive sampling,
independent-token gradient importance sampling (ITGIS) and a Gaussian fit to the target's logit margin.
Estimators see the model through `margin_fn`, a function from a batch of inputs to their margins, so
that the same code runs on the model or on a cached table of its margins. Importing this module has
no side effects.
"""

import math
from collections.abc import Callable

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

MarginFn = Callable[[Tensor], Tensor]


def all_inputs(vocab: Int[Tensor, " v"], k: int) -> Int[Tensor, "n k"]:
    """Every sequence of k tokens from `vocab`, one a row, len(vocab) ** k rows in lexicographic order
    of positions in `vocab` (the last position varies fastest), so row i is i written in base len(vocab)."""
    digits = torch.arange(len(vocab) ** k)[:, None] // len(vocab) ** torch.arange(k - 1, -1, -1) % len(vocab)
    return vocab[digits]


def target_margin(logits: Float[Tensor, "n d_vocab"], target: int) -> Float[Tensor, " n"]:
    """The target's logit minus the largest other logit, per row: positive exactly when the target is
    the strict argmax."""
    others = logits.clone()
    others[:, target] = -torch.inf
    return logits[:, target] - others.max(-1).values


def logit_margins(
    model: HookedTransformer, inputs: Int[Tensor, "n k"], target: int, batch_size: int = 4096
) -> Float[Tensor, " n"]:
    """The target margin (`target_margin`) at the last position for each input, with the model's BOS
    token prepended, computed without gradients in batches of at most `batch_size` rows."""
    bos = model.tokenizer.bos_token_id
    out = []
    with torch.no_grad():
        for start in range(0, len(inputs), batch_size):
            batch = inputs[start : start + batch_size]
            tokens = torch.cat([torch.full((len(batch), 1), bos, dtype=batch.dtype), batch], 1)
            out.append(target_margin(model(tokens)[:, -1], target))
    return torch.cat(out)


def naive_estimate(margin_fn: MarginFn, vocab: Int[Tensor, " v"], k: int, n: int, generator: torch.Generator) -> float:
    """The fraction of n inputs, drawn uniformly as `vocab[torch.randint(len(vocab), (n, k), generator=generator)]`,
    whose margin is positive."""
    inputs = vocab[torch.randint(len(vocab), (n, k), generator=generator)]
    return (margin_fn(inputs) > 0).float().mean().item()


def embedding_gradients(
    model: HookedTransformer, inputs: Int[Tensor, "n k"], target: int
) -> Float[Tensor, "k d_model"]:
    """The gradient of the target margin with respect to the token embedding (`hook_embed`) at each of
    the k input positions (BOS excluded), averaged over the inputs. The model's weights get no gradient."""
    bos = model.tokenizer.bos_token_id
    tokens = torch.cat([torch.full((len(inputs), 1), bos, dtype=inputs.dtype), inputs], 1)
    store = {}

    def keep(embed, hook):
        embed = embed.detach().requires_grad_(True)
        store["embed"] = embed
        return embed

    with torch.enable_grad():
        logits = model.run_with_hooks(tokens, fwd_hooks=[("hook_embed", keep)])[:, -1]
        (grad,) = torch.autograd.grad(target_margin(logits, target).sum(), store["embed"])
    return grad[:, 1:].mean(0)


def itgis_proposal(
    grads: Float[Tensor, "k d_model"],
    W_E: Float[Tensor, "d_vocab d_model"],
    vocab: Int[Tensor, " v"],
    temperature: float,
) -> Float[Tensor, "k v"]:
    """Independent-token proposal: at position i, token vocab[j] gets probability proportional to
    exp(W_E[vocab[j]] . grads[i] / temperature), the first-order gain in margin from putting it there."""
    scores = grads @ W_E[vocab].T
    return torch.softmax(scores / temperature, -1)


def importance_estimate(
    margin_fn: MarginFn, vocab: Int[Tensor, " v"], proposal: Float[Tensor, "k v"], n: int, generator: torch.Generator
) -> float:
    """Importance-sampling estimate of P(margin > 0) under the uniform distribution on vocab ** k: draw
    positions `torch.multinomial(proposal, n, replacement=True, generator=generator).T` (n x k indices into
    vocab), and average 1[margin > 0] * p(x) / q(x), where p(x) = len(vocab) ** -k and q(x) is the product of
    the proposal's probabilities of the drawn indices."""
    idx = torch.multinomial(proposal, n, replacement=True, generator=generator).T
    k = proposal.shape[0]
    log_q = torch.log(proposal.gather(1, idx.T)).sum(0)
    weights = torch.exp(-k * math.log(len(vocab)) - log_q)
    hits = (margin_fn(vocab[idx]) > 0).to(weights.dtype)
    return (hits * weights).mean().item()


def gaussian_tail_estimate(margins: Float[Tensor, " n"]) -> float:
    """P(X > 0) for X normal with the sample mean and (unbiased) standard deviation of `margins`."""
    mean, std = margins.mean().item(), margins.std().item()
    return 0.5 * math.erfc(-mean / (std * math.sqrt(2)))


def error_by_budget(
    estimator: Callable[[int, torch.Generator], float], budgets: list[int], seeds: list[int], truth: float
) -> Float[Tensor, " b"]:
    """For each budget n, the mean over seeds s of the relative error |estimate - truth| / truth, where
    estimate = estimator(n, torch.Generator().manual_seed(s)); a float32 tensor, one entry a budget."""
    means = []
    for n in budgets:
        errors = [abs(estimator(n, torch.Generator().manual_seed(s)) - truth) / truth for s in seeds]
        means.append(sum(errors) / len(errors))
    return torch.tensor(means)


def importance_relative_std(proposal: Float[Tensor, "k v"], hit_positions: Int[Tensor, "h k"], n: int) -> float:
    """The exact relative standard error (standard deviation / P) of the importance-sampling estimate with
    n draws from the independent proposal, when the inputs with the event are the rows of `hit_positions`
    (indices into the vocabulary, one row each, no repeats) and p is uniform: one draw's estimate
    1[hit] p(x) / q(x) has mean P = h * v ** -k and second moment, the sum over hits of p(x) ** 2 / q(x)."""
    k, v = proposal.shape
    p = float(v) ** -k
    q = proposal.double().gather(1, hit_positions.T).prod(0)
    P = len(hit_positions) * p
    second = (p**2 / q).sum().item()
    return math.sqrt(max(second - P**2, 0.0) / n) / P


def defensive_relative_std(
    proposal: Float[Tensor, "k v"], hit_positions: Int[Tensor, "h k"], lam: float, n: int
) -> float:
    """The exact relative standard error (standard deviation / P) of the importance-sampling estimate with
    n draws from the defensive mixture q_lam(x) = lam * p(x) + (1 - lam) * q(x): each draw is a uniform input
    with probability lam, else a draw from the independent `proposal` q, and is weighted by p(x) / q_lam(x),
    which is at most 1 / lam. The hits are the rows of `hit_positions` and p is uniform, as in
    `importance_relative_std`."""
    k, v = proposal.shape
    p = float(v) ** -k
    q = proposal.double().gather(1, hit_positions.T).prod(0)
    q_lam = lam * p + (1 - lam) * q
    P = len(hit_positions) * p
    second = (p**2 / q_lam).sum().item()
    return math.sqrt(max(second - P**2, 0.0) / n) / P


def hit_marginal_proposal(hit_positions: Int[Tensor, "h k"], v: int) -> Float[Tensor, "k v"]:
    """At each position, the fraction of the hit inputs (rows of indices into a vocabulary of size v) that
    have each token there: the independent proposal closest in KL divergence to the inputs given the event."""
    k = hit_positions.shape[1]
    counts = torch.zeros(k, v)
    counts.scatter_add_(1, hit_positions.T, torch.ones(k, len(hit_positions)))
    return counts / len(hit_positions)
