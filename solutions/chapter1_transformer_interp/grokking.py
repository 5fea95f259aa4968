"""Reference solutions for 1.5.2 Grokking and modular arithmetic (after Nanda et al. 2023, *Progress
measures for grokking via mechanistic interpretability*, and Power et al. 2022).

The Fourier basis over Z_p, the embedding's frequencies, attention and neuron activations over all
inputs (a, b) and their 2-D Fourier transform, how much of each neuron one frequency explains, the
trig-identity fit of the logits, the restricted and excluded losses, the weight norm, progress
measures over checkpoints and the phase boundaries read from them. Importing this module has no
side effects.
"""

import math

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer


def fourier_basis(p: int) -> Float[Tensor, "p p"]:
    """Orthonormal rows: the constant, then cos(2 pi k x / p) and sin(2 pi k x / p) for k = 1 .. p // 2
    (cos before sin), each divided by its norm. Row i evaluated at x = 0 .. p - 1. p is odd."""
    x = torch.arange(p, dtype=torch.float64)
    rows = [torch.ones(p, dtype=torch.float64)]
    for k in range(1, p // 2 + 1):
        rows += [torch.cos(2 * math.pi * k * x / p), torch.sin(2 * math.pi * k * x / p)]
    basis = torch.stack(rows)
    return (basis / basis.norm(dim=1, keepdim=True)).float()


def frequency_shares(W_E: Float[Tensor, "p d_model"]) -> Float[Tensor, " n_freq"]:
    """For each frequency k = 1 .. p // 2 (index k - 1), the squared norm of the number embeddings
    W_E (one row per number 0 .. p - 1) along cos k and sin k together, as a share of the total
    squared norm over all frequencies (the constant direction left out). The shares sum to 1."""
    p = W_E.shape[0]
    coefficients = fourier_basis(p) @ W_E
    per_row = coefficients.pow(2).sum(-1)
    per_frequency = per_row[1::2] + per_row[2::2]
    return per_frequency / per_frequency.sum()


def neuron_grid(model: HookedTransformer, tokens: Int[Tensor, "batch 3"]) -> Float[Tensor, "p p d_mlp"]:
    """The MLP neuron activations (after the ReLU) at the "=" position for every input, as a grid
    [a, b, neuron]. `tokens` holds all p * p inputs in row-major order of (a, b)."""
    p = model.cfg.d_vocab_out
    _, cache = model.run_with_cache(tokens, names_filter="blocks.0.mlp.hook_post")
    return cache["blocks.0.mlp.hook_post"][:, -1].reshape(p, p, -1)


def attention_grid(model: HookedTransformer, tokens: Int[Tensor, "batch 3"]) -> Float[Tensor, "head p p"]:
    """For each head, the attention the "=" position pays to the `a` token (position 0), as a grid
    [head, a, b]. `tokens` holds all p * p inputs in row-major order of (a, b)."""
    p = model.cfg.d_vocab_out
    _, cache = model.run_with_cache(tokens, names_filter="blocks.0.attn.hook_pattern")
    pattern = cache["blocks.0.attn.hook_pattern"][:, :, -1, 0]  # batch head
    return pattern.T.reshape(-1, p, p)


def fourier_2d(grid: Float[Tensor, "p p *rest"], basis: Float[Tensor, "p p"]) -> Float[Tensor, "p p *rest"]:
    """The 2-D Fourier transform of a function of (a, b): out[i, j] = sum over a, b of
    basis[i, a] * basis[j, b] * grid[a, b] (any trailing dimensions carried along)."""
    return torch.einsum("ia,jb,ab...->ij...", basis, basis, grid)


def neuron_frequency_fractions(fourier_acts: Float[Tensor, "p p d_mlp"]) -> Float[Tensor, "d_mlp n_freq"]:
    """For each neuron (2-D Fourier coefficients over (a, b) in the basis of `fourier_basis`) and
    frequency k = 1 .. p // 2 (column k - 1): the share of the neuron's variance (its squared
    coefficients, the constant term [0, 0] left out) in the coefficients whose two indices are both
    among {constant, cos k, sin k}."""
    p = fourier_acts.shape[0]
    energy = fourier_acts.pow(2)
    energy[0, 0] = 0
    total = energy.sum((0, 1))
    fractions = []
    for k in range(1, p // 2 + 1):
        index = torch.tensor([0, 2 * k - 1, 2 * k])
        fractions.append(energy[index][:, index].sum((0, 1)) / total)
    return torch.stack(fractions, dim=1)


def trig_fraction_explained(logits: Float[Tensor, "p p p"], frequencies: list[int]) -> float:
    """The share of the variance of logits [a, b, c] (each output c's mean over (a, b) removed first)
    explained by one term alpha_w * cos(2 pi w (a + b - c) / p) per frequency w, each fitted by least
    squares (the terms are orthogonal, so the shares add up)."""
    p = logits.shape[-1]
    x = torch.arange(p, dtype=torch.float32)
    centred = logits - logits.mean((0, 1), keepdim=True)
    explained = torch.tensor(0.0)
    for w in frequencies:
        angle = 2 * math.pi * w * (x[:, None, None] + x[None, :, None] - x[None, None, :]) / p
        term = torch.cos(angle)
        explained = explained + (centred * term).sum() ** 2 / term.pow(2).sum()
    return (explained / centred.pow(2).sum()).item()


def key_projection(logits: Float[Tensor, "batch p"], frequencies: list[int]) -> Float[Tensor, "batch p"]:
    """The part of the logits (one row per input, all p * p inputs in row-major order of (a, b)) along
    the directions cos(2 pi w (a + b) / p) and sin(2 pi w (a + b) / p) over the inputs, for each
    frequency w given: the orthogonal projection, done separately for each output column."""
    p = logits.shape[-1]
    a = torch.arange(p).repeat_interleave(p).float()
    b = torch.arange(p).repeat(p).float()
    directions = []
    for w in frequencies:
        angle = 2 * math.pi * w * (a + b) / p
        directions += [torch.cos(angle), torch.sin(angle)]
    u = torch.stack(directions)
    u = u / u.norm(dim=1, keepdim=True)
    return u.T @ (u @ logits)


def restricted_and_excluded_loss(
    logits: Float[Tensor, "batch p"],
    labels: Int[Tensor, " batch"],
    train: Int[Tensor, " n_train"],
    frequencies: list[int],
) -> tuple[float, float]:
    """Restricted loss: cross-entropy over all inputs of each output's mean logit plus the logits'
    key_projection (only the key directions kept). Excluded loss: cross-entropy over the training
    inputs of the logits minus their key_projection (the key directions removed)."""
    projection = key_projection(logits, frequencies)
    restricted = logits.mean(0, keepdim=True) + projection
    excluded = (logits - projection)[train]
    return F.cross_entropy(restricted, labels).item(), F.cross_entropy(excluded, labels[train]).item()


def weight_norm(model: HookedTransformer) -> float:
    """The L2 norm of all the model's parameters together (as one long vector)."""
    return math.sqrt(sum(param.detach().pow(2).sum().item() for param in model.parameters()))


def progress_measures(
    models: dict[int, HookedTransformer],
    tokens: Int[Tensor, "batch 3"],
    labels: Int[Tensor, " batch"],
    train: Int[Tensor, " n_train"],
    test: Int[Tensor, " n_test"],
    frequencies: list[int],
) -> dict[str, list[float]]:
    """For each checkpoint (by step, in increasing order): train and test loss and accuracy at the
    "=" position, restricted and excluded loss (restricted_and_excluded_loss) and weight norm.
    Keys: "step", "train_loss", "test_loss", "train_accuracy", "test_accuracy", "restricted_loss",
    "excluded_loss", "weight_norm"; each a list with one entry per checkpoint."""
    keys = ["step", "train_loss", "test_loss", "train_accuracy", "test_accuracy"]
    keys += ["restricted_loss", "excluded_loss", "weight_norm"]
    out = {key: [] for key in keys}
    for step in sorted(models):
        logits = models[step](tokens)[:, -1]
        out["step"].append(step)
        for split, idx in [("train", train), ("test", test)]:
            out[f"{split}_loss"].append(F.cross_entropy(logits[idx], labels[idx]).item())
            out[f"{split}_accuracy"].append((logits[idx].argmax(-1) == labels[idx]).float().mean().item())
        restricted, excluded = restricted_and_excluded_loss(logits, labels, train, frequencies)
        out["restricted_loss"].append(restricted)
        out["excluded_loss"].append(excluded)
        out["weight_norm"].append(weight_norm(models[step]))
    return out


def phase_boundaries(measures: dict[str, list[float]]) -> dict[str, int]:
    """The steps that end each phase, from progress_measures' output (the first entry is step 0):
    "memorised": the first step with train accuracy 1;
    "cleanup_start": the first step after "memorised" whose test loss is below the test loss at step 0;
    "grokked": the first step with test accuracy at least 0.99."""
    steps = measures["step"]
    memorised = next(s for s, acc in zip(steps, measures["train_accuracy"]) if acc == 1.0)
    chance = measures["test_loss"][0]
    cleanup = next(s for s, loss in zip(steps, measures["test_loss"]) if s > memorised and loss < chance)
    grokked = next(s for s, acc in zip(steps, measures["test_accuracy"]) if acc >= 0.99)
    return {"memorised": memorised, "cleanup_start": cleanup, "grokked": grokked}
