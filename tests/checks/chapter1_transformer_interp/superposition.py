"""Checks for 1.5.4 Superposition and toy SAEs.

The samplers are checked by statistics over many draws (the share of nonzero features, of pairs on together,
the mean of the nonzero values) within a stated number of standard errors, and by determinism under a seeded
generator. The training loops are checked by what they reach: the learner's models and the reference's, trained
on the same settings, are scored on the same held-out data, and the learner's must be about as good (two runs
need not draw the same numbers). The findings are graded against the toy models the notebook trains, retrained
here with the reference functions and the same seeds (on one thread, as in the notebook); the features those
models keep or recover are planted by construction.
"""

import functools
import math

import einops
import torch

from solutions.chapter1_transformer_interp import superposition as ref
from tests.harness import Case, Checker, Exercise, Finding, Mismatch, describe, same_set

# ----------------------------------------------------------------------------- samplers


def _one_thread(fn):
    """Run fn on one thread, as the notebook does, so retrained models match it exactly."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return fn(*args, **kwargs)
        finally:
            torch.set_num_threads(threads)

    return wrapper


def _feature_batch_cases(gen):
    for probability, label in [
        (torch.tensor([[0.1, 0.5, 0.9]]), "one instance, feature probabilities 0.1, 0.5, 0.9"),
        (torch.tensor([[1.0, 0.0, 0.25], [0.02, 0.7, 0.3]]), "two instances, with p = 1 and p = 0"),
        (torch.rand(3, 4, generator=gen), "three instances of four random probabilities"),
    ]:
        yield Case((probability,), label, expected=_expected_feature_stats(probability))


_DRAWS = 20_000


def _run_feature_batch(impl, case):
    """Statistics of _DRAWS rows drawn with a seeded generator, and whether the draw is reproducible."""
    (probability,) = case.args
    batch = impl(_DRAWS, probability, torch.Generator().manual_seed(0))
    if not isinstance(batch, torch.Tensor) or batch.shape != (_DRAWS, *probability.shape):
        raise Mismatch(f"output: expected a Tensor of shape {(_DRAWS, *probability.shape)}, got {describe(batch)}")
    again = impl(_DRAWS, probability, torch.Generator().manual_seed(0))
    return _sample_stats(batch, again)


def _sample_stats(batch, again):
    nonzero = batch != 0
    values = batch[nonzero]
    return {
        "share nonzero": nonzero.float().mean(0),
        "mean nonzero value": values.mean().item() if len(values) else 0.5,
        "range": (batch.min().item(), batch.max().item()),
        "same seed, same batch": torch.equal(batch, again),
    }


def _expected_feature_stats(probability):
    return {"share nonzero": probability, "mean nonzero value": 0.5, "range": (0.0, 1.0), "same seed, same batch": True}


def _compare_sample_stats(expected, got):
    if not got["same seed, same batch"]:
        raise Mismatch("output: two calls with generators seeded alike gave different batches: draw every random "
                       "number with the `generator` argument")  # fmt: skip
    low, high = got["range"]
    if low < 0 or high >= 1:
        raise Mismatch(f"output: values range over [{low:.3f}, {high:.3f}]; nonzero features are uniform on [0, 1)")
    share, p = got["share nonzero"], expected["share nonzero"]
    stderr = (p * (1 - p) / _DRAWS).sqrt().clamp(min=1 / _DRAWS)
    far = (share - p).abs() > 5 * stderr
    if far.any():
        index = tuple(far.nonzero()[0].tolist())
        raise Mismatch(
            f"output: item {index} is nonzero in {share[index]:.4f} of {_DRAWS} draws; it should be nonzero with "
            f"probability {p[index]:.4f}"
        )
    if abs(got["mean nonzero value"] - 0.5) > 0.02:
        raise Mismatch(
            f"output: the nonzero values average {got['mean nonzero value']:.3f}; uniform on [0, 1) averages 0.5"
        )


def _feature_batch_zero_probability(n_batch, feature_probability, generator):
    return ref.generate_feature_batch(n_batch, 1 - feature_probability, generator)


def _feature_batch_ones(n_batch, feature_probability, generator):
    return (ref.generate_feature_batch(n_batch, feature_probability, generator) > 0).float()


def _feature_batch_global_random(n_batch, feature_probability, generator):
    shape = (n_batch, *feature_probability.shape)
    return torch.where(torch.rand(shape) < feature_probability, torch.rand(shape), torch.zeros(()))


def _feature_batch_one_draw(n_batch, feature_probability, generator):
    # The same uniform draw decides whether a feature is on and gives its value: nonzero values fall below p.
    values = torch.rand((n_batch, *feature_probability.shape), generator=generator)
    return torch.where(values < feature_probability, values, torch.zeros(()))


def _paired_cases(gen):
    for args, label in [
        ((2, 3, 0.2, True), "two instances, three correlated pairs, pair probability 0.2"),
        ((2, 3, 0.2, False), "two instances, three anticorrelated pairs, pair probability 0.2"),
        ((1, 2, 0.6, False), "one instance, two anticorrelated pairs, pair probability 0.6"),
        ((3, 1, 1.0, True), "three instances, one correlated pair that is always on"),
    ]:
        yield Case(args, label, expected=_expected_paired(*args))


def _run_paired(impl, case):
    n_instances, n_pairs, p, correlated = case.args
    batch = impl(_DRAWS, n_instances, n_pairs, p, correlated, torch.Generator().manual_seed(0))
    if not isinstance(batch, torch.Tensor) or batch.shape != (_DRAWS, n_instances, 2 * n_pairs):
        raise Mismatch(
            f"output: expected a Tensor of shape {(_DRAWS, n_instances, 2 * n_pairs)}, got {describe(batch)}"
        )
    again = impl(_DRAWS, n_instances, n_pairs, p, correlated, torch.Generator().manual_seed(0))
    stats = _sample_stats(batch, again)
    pairs = einops.rearrange(batch != 0, "b k (pairs two) -> b k pairs two", two=2)
    stats["both on"] = pairs.all(-1).float().mean(0)
    stats["one on"] = (pairs.sum(-1) == 1).float().mean(0)
    # Features of different pairs must be independent: both features 0 and 2 on, against the product.
    if n_pairs > 1:
        stats["features 0 and 2 on together"] = ((batch[..., 0] != 0) & (batch[..., 2] != 0)).float().mean(0)
    return stats


def _expected_paired(n_instances, n_pairs, p, correlated):
    per_feature = p if correlated else p / 2
    return {
        "share nonzero": torch.full((n_instances, 2 * n_pairs), per_feature),
        "mean nonzero value": 0.5,
        "range": (0.0, 1.0),
        "same seed, same batch": True,
        "both on": torch.full((n_instances, n_pairs), p if correlated else 0.0),
        "one on": torch.full((n_instances, n_pairs), 0.0 if correlated else p),
        "features 0 and 2 on together": torch.full((n_instances,), per_feature**2) if n_pairs > 1 else None,
    }


def _compare_paired(expected, got):
    _compare_sample_stats(expected, got)
    for key, what in [("both on", "both features of a pair are on"), ("one on", "exactly one feature of a pair is on"),
                      ("features 0 and 2 on together", "features 0 and 2 (of different pairs) are on together")]:  # fmt: skip
        if expected[key] is None:
            continue
        p, share = expected[key], got[key]
        stderr = (p * (1 - p) / _DRAWS).sqrt().clamp(min=1 / _DRAWS)
        far = (share - p).abs() > 5 * stderr
        if far.any():
            index = tuple(far.nonzero()[0].tolist())
            raise Mismatch(f"output: {what} in {share[index]:.4f} of the draws (at {index}); expected {p[index]:.4f}")


def _paired_independent_features(n_batch, n_instances, n_pairs, pair_probability, correlated, generator):
    # Each feature decides on its own whether it is on: no correlation at all.
    p = pair_probability if correlated else pair_probability / 2
    probability = torch.full((n_instances, 2 * n_pairs), p)
    return ref.generate_feature_batch(n_batch, probability, generator)


def _paired_split_layout(n_batch, n_instances, n_pairs, pair_probability, correlated, generator):
    # Pair p as features p and p + n_pairs instead of 2p and 2p + 1.
    batch = ref.generate_paired_batch(n_batch, n_instances, n_pairs, pair_probability, correlated, generator)
    return einops.rearrange(batch, "b k (pairs two) -> b k (two pairs)", two=2)


def _paired_anti_both_off_or_on(n_batch, n_instances, n_pairs, pair_probability, correlated, generator):
    # Anticorrelated drawn as "each feature on when the pair is active, with probability 1/2" (both may be on).
    shape = (n_batch, n_instances, n_pairs, 2)
    values = torch.rand(shape, generator=generator)
    active = torch.rand(shape[:-1], generator=generator)[..., None] < pair_probability
    if not correlated:
        active = active & (torch.rand(shape, generator=generator) < 0.5)
    batch = torch.where(active, values, torch.zeros(()))
    return einops.rearrange(batch, "b k pairs two -> b k (pairs two)")


# ----------------------------------------------------------------------------- the toy model


def _forward_cases(gen):
    W = torch.eye(2)[None]
    # W = I: h = x, output ReLU(x + b) = ReLU([1 - 0.5, 0.2 + 0, -0.4 ...]).
    yield Case((W, torch.tensor([[-0.5, 0.0]]), torch.tensor([[[1.0, 0.2]], [[0.3, 0.9]]])),
               "W = identity, b = (-0.5, 0): ReLU(x + b)", expected=torch.tensor([[[0.5, 0.2]], [[0.0, 0.9]]]))  # fmt: skip
    W = torch.tensor([[[1.0, -1.0]]])
    # One hidden dimension: h = x0 - x1; with relu_hidden, x = (0.2, 0.7) gives h = 0, output ReLU(b) = (0.1, 0).
    yield Case((W, torch.tensor([[0.1, -0.2]]), torch.tensor([[[0.2, 0.7]]]), True),
               "an antipodal pair with a ReLU on the hidden layer", expected=torch.tensor([[[0.1, 0.0]]]))  # fmt: skip
    yield Case((torch.randn(3, 2, 5, generator=gen), torch.randn(3, 5, generator=gen), torch.rand(4, 3, 5, generator=gen)),
               "3 instances, 5 features in 2 dimensions, batch 4")  # fmt: skip
    yield Case((torch.randn(2, 4, 4, generator=gen), torch.randn(2, 4, generator=gen), torch.rand(6, 2, 4, generator=gen),
                True), "2 instances, 4 features in 4 neurons (hidden = features), relu_hidden")  # fmt: skip


def _forward_no_output_relu(W, b, x, relu_hidden=False):
    h = einops.einsum(W, x, "k h f, b k f -> b k h")
    if relu_hidden:
        h = h.relu()
    return einops.einsum(W, h, "k h f, b k h -> b k f") + b


def _forward_no_bias(W, b, x, relu_hidden=False):
    return ref.toy_forward(W, torch.zeros_like(b), x, relu_hidden)


def _forward_bias_after_relu(W, b, x, relu_hidden=False):
    return ref.toy_forward(W, torch.zeros_like(b), x, relu_hidden) + b


def _forward_ignores_relu_hidden(W, b, x, relu_hidden=False):
    return ref.toy_forward(W, b, x, False)


def _forward_transposed_read(W, b, x, relu_hidden=False):
    # Reads the hidden vector back with W's transpose swapped (W W instead of W^T W): only runs when hidden = features.
    h = einops.einsum(W, x, "k h f, b k f -> b k h")
    if relu_hidden:
        h = h.relu()
    return (einops.einsum(W, h, "k f h, b k h -> b k f") + b).relu()


def _loss_cases(gen):
    x = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])
    x_hat = torch.tensor([[[0.0, 0.0]], [[0.0, 0.0]]])
    # Errors 1 on feature 0 in row 0, 1 on feature 1 in row 1; importances 1 and 0.5: (1 + 0.5) / 2 = 0.75.
    yield Case((x, x_hat, torch.tensor([[1.0, 0.5]])), "two rows, one error each, importances 1 and 0.5",
               expected=torch.tensor([0.75]))  # fmt: skip
    yield Case((torch.rand(8, 3, 5, generator=gen), torch.rand(8, 3, 5, generator=gen), torch.rand(3, 5, generator=gen)),
               "batch 8, 3 instances, 5 features")  # fmt: skip
    yield Case((torch.rand(4, 2, 3, generator=gen), torch.rand(4, 2, 3, generator=gen), 0.9 ** torch.arange(3.0).expand(2, 3)),
               "importance 0.9^i")  # fmt: skip


def _loss_no_importance(x, x_hat, importance):
    return (x - x_hat).pow(2).sum(-1).mean(0)


def _loss_mean_over_features(x, x_hat, importance):
    return (importance * (x - x_hat).pow(2)).mean(-1).mean(0)


def _loss_sum_over_batch(x, x_hat, importance):
    return (importance * (x - x_hat).pow(2)).sum(-1).sum(0)


def _loss_importance_squared(x, x_hat, importance):
    return (importance.pow(2) * (x - x_hat).pow(2)).sum(-1).mean(0)


# ----------------------------------------------------------------------------- training the toy models


def _train_toy_cases(gen):
    # Dense features with steep importances: the optimum keeps the two most important features (in each instance).
    probability = torch.ones(3, 5)
    importance = (0.6 ** torch.arange(5.0)).expand(3, 5)
    yield Case((probability, importance, 2, False, 400, 256, 1e-2, 0), "3 instances, 5 dense features, 2 dimensions")
    # Sparse features with a ReLU on the hidden layer: superposition, and the hidden ReLU matters.
    probability = torch.tensor([[0.05] * 6, [0.2] * 6])
    importance = torch.ones(2, 6)
    yield Case((probability, importance, 3, True, 400, 256, 1e-2, 1), "2 instances, 6 sparse features, 3 neurons")


def _run_train_toy(impl, case):
    """Train on independent features with the case's probabilities; score each instance on held-out data."""
    probability, importance, n_hidden, relu_hidden, steps, batch_size, lr, seed = case.args

    def sample(n, generator):
        return ref.generate_feature_batch(n, probability, generator)

    with torch.no_grad():  # the function must turn gradients on itself if it needs them
        result = impl(sample, importance, n_hidden, relu_hidden, steps, batch_size, lr, seed)
    if not (isinstance(result, tuple) and len(result) == 2):
        raise Mismatch(f"output: expected a (W, b) pair, got {describe(result)}")
    W, b = result
    n_instances, n_features = importance.shape
    if not isinstance(W, torch.Tensor) or W.shape != (n_instances, n_hidden, n_features):
        raise Mismatch(f"output: W should have shape {(n_instances, n_hidden, n_features)}, got {describe(W)}")
    if not isinstance(b, torch.Tensor) or b.shape != (n_instances, n_features):
        raise Mismatch(f"output: b should have shape {(n_instances, n_features)}, got {describe(b)}")
    held_out = ref.generate_feature_batch(20_000, probability, torch.Generator().manual_seed(123))
    with torch.no_grad():
        loss = ref.importance_weighted_loss(
            held_out, ref.toy_forward(W.detach(), b.detach(), held_out, relu_hidden), importance
        )
    return loss


def _compare_train_toy(expected, got):
    worse = got > expected * 1.15 + 2e-3
    if worse.any():
        k = int(worse.nonzero()[0, 0])
        raise Mismatch(
            f"output: instance {k}'s held-out loss is {got[k]:.4f}; the reference reaches {expected[k]:.4f} with the "
            "same settings. Check the loss (importance-weighted, summed over instances), a fresh batch every step, "
            "and that every step runs"
        )


def _oracle_train_toy(sample_batch, importance, n_hidden, relu_hidden, steps, batch_size, lr, seed):
    """The same training with torch.optim.Adam replaced by a hand-written Adam, in float64."""
    generator = torch.Generator().manual_seed(seed)
    n_instances, n_features = importance.shape
    std = math.sqrt(2 / (n_hidden + n_features))
    params = [(torch.randn(n_instances, n_hidden, n_features, generator=generator) * std).double(),
              torch.zeros(n_instances, n_features, dtype=torch.float64)]  # fmt: skip
    moments = [(torch.zeros_like(p), torch.zeros_like(p)) for p in params]
    for t in range(1, steps + 1):
        x = sample_batch(batch_size, generator).double()
        with torch.enable_grad():
            for p in params:
                p.requires_grad_()
            x_hat = ref.toy_forward(params[0], params[1], x, relu_hidden)
            loss = (importance.double() * (x - x_hat).pow(2)).sum(-1).mean(0).sum()
            grads = torch.autograd.grad(loss, params)
        new = []
        for p, g, (m, v) in zip(params, grads, moments):
            m.mul_(0.9).add_(0.1 * g)
            v.mul_(0.999).add_(0.001 * g * g)
            update = lr * (m / (1 - 0.9**t)) / ((v / (1 - 0.999**t)).sqrt() + 1e-8)
            new.append((p - update).detach())
        params = new
    return params[0].float(), params[1].float()


def _train_toy_variant(
    sample_batch, importance, n_hidden, relu_hidden, steps, batch_size, lr, seed, *,
    weighted=True, fresh_batches=True, relu=None, train_bias=True,
):  # fmt: skip
    generator = torch.Generator().manual_seed(seed)
    n_instances, n_features = importance.shape
    std = math.sqrt(2 / (n_hidden + n_features))
    W = (torch.randn(n_instances, n_hidden, n_features, generator=generator) * std).requires_grad_()
    b = torch.zeros(n_instances, n_features, requires_grad=train_bias)
    optimizer = torch.optim.Adam([W, b] if train_bias else [W], lr=lr)
    x = sample_batch(batch_size, generator)
    with torch.enable_grad():
        for _ in range(steps):
            if fresh_batches:
                x = sample_batch(batch_size, generator)
            x_hat = ref.toy_forward(W, b, x, relu_hidden if relu is None else relu)
            loss = ref.importance_weighted_loss(x, x_hat, importance if weighted else torch.ones_like(importance))
            optimizer.zero_grad()
            loss.sum().backward()
            optimizer.step()
    return W.detach(), b.detach()


def _train_toy_unweighted(*args):
    return _train_toy_variant(*args, weighted=False)


def _train_toy_one_batch(*args):
    return _train_toy_variant(*args, fresh_batches=False)


def _train_toy_no_hidden_relu(*args):
    return _train_toy_variant(*args, relu=False)


def _train_toy_frozen_bias(*args):
    return _train_toy_variant(*args, train_bias=False)


def _train_toy_few_steps(sample_batch, importance, n_hidden, relu_hidden, steps, batch_size, lr, seed):
    return _train_toy_variant(sample_batch, importance, n_hidden, relu_hidden, steps // 10, batch_size, lr, seed)


# ----------------------------------------------------------------------------- geometry


def _geometry_cases(gen):
    W = torch.tensor([[[1.0, 0.0, -1.0], [0.0, 2.0, 0.0]]])
    # Columns (1, 0), (0, 2), (-1, 0): norms 1, 2, 1; features 0 and 2 overlap fully (1 each), feature 1 not at all.
    yield Case(
        (W,),
        "columns (1, 0), (0, 2), (-1, 0)",
        expected=(torch.tensor([[1.0, 2.0, 1.0]]), torch.tensor([[1.0, 0.0, 1.0]])),
    )
    W = torch.tensor([[[3.0, 0.0, 1.0], [0.0, 0.0, 1.0]]])
    # Column 1 is zero: norm 0, superposition 0. Feature 0 (unit (1, 0)) sees (1, 1): 1. Feature 2 (unit (1, 1)/sqrt 2)
    # sees (3, 0): (3 / sqrt 2)^2 = 4.5.
    yield Case((W,), "a zero column, and columns (3, 0), (1, 1)",
               expected=(torch.tensor([[3.0, 0.0, math.sqrt(2)]]), torch.tensor([[1.0, 0.0, 4.5]])))  # fmt: skip
    yield Case((torch.randn(4, 2, 5, generator=gen),), "4 instances, 5 features in 2 dimensions")
    yield Case((torch.randn(2, 3, 3, generator=gen),), "2 instances, 3 features in 3 dimensions")


def _geometry_with_diagonal(W):
    norms, superposition = ref.feature_geometry(W)
    return norms, superposition + norms.pow(2)


def _geometry_not_normalised(W):
    overlaps = einops.einsum(W, W, "k h i, k h j -> k i j").pow(2) * (1 - torch.eye(W.shape[-1]))
    return W.norm(dim=1), overlaps.sum(-1)


def _geometry_not_squared(W):
    norms = W.norm(dim=1)
    unit = W / norms.clamp(min=1e-8)[:, None]
    overlaps = einops.einsum(unit, W, "k h i, k h j -> k i j") * (1 - torch.eye(W.shape[-1]))
    return norms, overlaps.sum(-1)


def _geometry_rows(W):
    return ref.feature_geometry(W.transpose(1, 2))


def _dimensionality_cases(gen):
    W = torch.tensor([[[2.0, -2.0, 0.0, 0.0], [0.0, 0.0, 3.0, 0.0]]])
    # An antipodal pair of norm 2: 4 / (4 + 4) = 1/2 each; (0, 3) alone: 1; a zero column: 0.
    yield Case((W,), "an antipodal pair of norm 2, a feature alone, a zero column",
               expected=torch.tensor([[0.5, 0.5, 1.0, 0.0]]))  # fmt: skip
    angles = torch.arange(5) * 2 * math.pi / 5
    pentagon = torch.stack([angles.cos(), angles.sin()])[None]
    yield Case((pentagon,), "a regular pentagon of unit vectors", expected=torch.full((1, 5), 0.4))
    yield Case((torch.randn(3, 2, 6, generator=gen),), "3 instances, 6 features in 2 dimensions")


def _dimensionality_norm_not_squared(W):
    return ref.feature_dimensionality(W) / W.norm(dim=1).clamp(min=1e-8) * (W.norm(dim=1) > 0)


def _dimensionality_without_self(W):
    norms, superposition = ref.feature_geometry(W)
    return norms.pow(2) / superposition.clamp(min=1e-8)


def _dimensionality_dot_products(W):
    overlaps = einops.einsum(W, W, "k h i, k h j -> k i j").pow(2)
    return W.norm(dim=1).pow(2) / overlaps.sum(-1).clamp(min=1e-8)


def _top_share_cases(gen):
    W = torch.tensor([[[3.0, 4.0, 0.0], [0.0, 0.0, 0.0]]])
    # Neuron 0: weights (3, 4, 0): 16 / 25; neuron 1 has no weights: 0.
    yield Case((W,), "a neuron with weights (3, 4, 0), and one with none", expected=torch.tensor([[0.64, 0.0]]))
    W = torch.tensor([[[-2.0, 1.0], [0.5, 0.5]]])
    yield Case((W,), "a negative top weight, and a neuron split evenly", expected=torch.tensor([[0.8, 0.5]]))
    yield Case((torch.randn(3, 4, 6, generator=gen),), "3 instances, 4 neurons, 6 features")


def _top_share_abs(W):
    return W.abs().max(-1).values / W.abs().sum(-1).clamp(min=1e-12)


def _top_share_per_feature(W):
    squared = W.pow(2)
    return (squared.max(-2).values / squared.sum(-2).clamp(min=1e-12))[..., : W.shape[1]]


def _top_share_signed(W):
    return W.max(-1).values.clamp(min=0).pow(2) / W.pow(2).sum(-1).clamp(min=1e-12)


# ----------------------------------------------------------------------------- SAEs


def _sae_forward_cases(gen):
    W_enc, b_enc = torch.eye(2), torch.zeros(2)
    W_dec, b_dec = torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.zeros(2)
    # Latents (1, 0.5); unit decoder rows are the identity: the reconstruction is (1, 0.5).
    yield Case((W_enc, b_enc, W_dec, b_dec, torch.tensor([[1.0, 0.5]])), "identity encoder, decoder rows of norm 2 and 1",
               expected=(torch.tensor([[1.0, 0.5]]), torch.tensor([[1.0, 0.5]])))  # fmt: skip
    b_dec = torch.tensor([1.0, -1.0])
    # (h - b_dec) = (0, 1.5) -> latents (0, 1.5); reconstruction (0, 1.5) + b_dec = (1, 0.5). Input (-1, 0): latents
    # ReLU((-2, 1)) = (0, 1), reconstruction (1, 0).
    yield Case((torch.eye(2), torch.zeros(2), torch.eye(2), b_dec, torch.tensor([[1.0, 0.5], [-1.0, 0.0]])),
               "a decoder bias, and a negative pre-activation",
               expected=(torch.tensor([[0.0, 1.5], [0.0, 1.0]]), torch.tensor([[1.0, 0.5], [1.0, 0.0]])))  # fmt: skip
    d_in, d_sae = 5, 12
    yield Case((torch.randn(d_in, d_sae, generator=gen), torch.randn(d_sae, generator=gen) * 0.1,
                torch.randn(d_sae, d_in, generator=gen) * 3, torch.randn(d_in, generator=gen), torch.randn(16, d_in, generator=gen)),
               "d_in 5, 12 latents, decoder rows of norm about 6, batch 16")  # fmt: skip


def _sae_unnormalised_decoder(W_enc, b_enc, W_dec, b_dec, h):
    latents = ((h - b_dec) @ W_enc + b_enc).relu()
    return latents, latents @ W_dec + b_dec


def _sae_no_b_dec_subtracted(W_enc, b_enc, W_dec, b_dec, h):
    return ref.sae_forward(W_enc, b_enc + b_dec @ W_enc, W_dec, b_dec, h)


def _sae_no_relu(W_enc, b_enc, W_dec, b_dec, h):
    latents = (h - b_dec) @ W_enc + b_enc
    return latents, latents @ (W_dec / W_dec.norm(dim=-1, keepdim=True)) + b_dec


def _sae_columns_normalised(W_enc, b_enc, W_dec, b_dec, h):
    latents = ((h - b_dec) @ W_enc + b_enc).relu()
    return latents, latents @ (W_dec / W_dec.norm(dim=0, keepdim=True)) + b_dec


def _sae_loss_cases(gen):
    h = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    reconstruction = torch.tensor([[0.0, 1.0], [0.0, 0.5]])
    latents = torch.tensor([[2.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    # Row 0: error 1 + 1 = 2, L1 3 -> 2 + 0.1 * 3 = 2.3. Row 1: error 0.25, L1 0.
    yield Case((h, latents, reconstruction, 0.1), "two inputs, L1 coefficient 0.1", expected=torch.tensor([2.3, 0.25]))
    yield Case((torch.randn(8, 5, generator=gen), torch.rand(8, 12, generator=gen), torch.randn(8, 5, generator=gen), 0.5),
               "8 inputs, d_in 5, 12 latents")  # fmt: skip


def _sae_loss_l1_on_reconstruction(h, latents, reconstruction, l1_coefficient):
    return (h - reconstruction).pow(2).sum(-1) + l1_coefficient * reconstruction.abs().sum(-1)


def _sae_loss_mean_over_d_in(h, latents, reconstruction, l1_coefficient):
    return (h - reconstruction).pow(2).mean(-1) + l1_coefficient * latents.abs().sum(-1)


def _sae_loss_l2_penalty(h, latents, reconstruction, l1_coefficient):
    return (h - reconstruction).pow(2).sum(-1) + l1_coefficient * latents.pow(2).sum(-1)


def _resample_cases(gen):
    names = ("W_enc", "b_enc", "W_dec", "b_dec", "h", "losses", "dead")
    # One dead latent (1); only input 1 has a loss, so it is drawn. h[1] - b_dec = (0, 2) -> decoder row (0, 1);
    # live encoder columns 0 and 2 have norms 1 and 3, mean 2 -> encoder column 0.2 * 2 * (0, 1) = (0, 0.4).
    inputs = dict(zip(names, (
        torch.tensor([[1.0, 5.0, 0.0], [0.0, 5.0, 3.0]]), torch.tensor([0.1, -2.0, 0.2]),
        torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]]), torch.tensor([1.0, 0.0]),
        torch.tensor([[1.0, 0.0], [1.0, 2.0]]), torch.tensor([0.0, 1.5]), torch.tensor([False, True, False]),
    )))  # fmt: skip
    expected = (torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.4, 3.0]]), torch.tensor([0.1, 0.0, 0.2]),
                torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]))  # fmt: skip
    yield Case((inputs, 0), "3 latents, latent 1 dead, one input with a loss", expected=expected)
    d_in, d_sae, n = 5, 16, 64
    W_dec = torch.randn(d_sae, d_in, generator=gen)
    values = (torch.randn(d_in, d_sae, generator=gen), torch.randn(d_sae, generator=gen), W_dec / W_dec.norm(dim=-1, keepdim=True),
              torch.randn(d_in, generator=gen), torch.randn(n, d_in, generator=gen), torch.rand(n, generator=gen))  # fmt: skip
    for dead, seed, label in [
        (torch.rand(d_sae, generator=gen) < 0.4, 1, "16 latents, about 40% dead, 64 inputs"),
        (torch.ones(d_sae, dtype=torch.bool), 2, "16 latents, every one dead (no live encoder norm: use 1)"),
        (torch.zeros(d_sae, dtype=torch.bool), 3, "16 latents, none dead: nothing changes"),
    ]:
        yield Case((dict(zip(names, (*values, dead))), seed), label)


def _run_resample(impl, case):
    """Cases hold the inputs as a dict (eight arguments make a long message) and the generator's seed."""
    inputs, seed = case.args
    return impl(*inputs.values(), torch.Generator().manual_seed(seed))


def _resample_variant(W_enc, b_enc, W_dec, b_dec, h, losses, dead, generator, *, invert=False, weights="squared",
                      centre=True, scale=True, reset_bias=True):  # fmt: skip
    W_enc, b_enc, W_dec = W_enc.clone(), b_enc.clone(), W_dec.clone()
    if invert:
        dead = ~dead
    n_dead = int(dead.sum())
    if n_dead == 0:
        return W_enc, b_enc, W_dec
    probabilities = {"squared": losses.pow(2), "linear": losses, "uniform": torch.ones_like(losses)}[weights]
    chosen = torch.multinomial(probabilities, n_dead, replacement=True, generator=generator)
    directions = h[chosen] - b_dec if centre else h[chosen]
    directions = directions / directions.norm(dim=-1, keepdim=True).clamp(min=1e-8)
    live_norm = W_enc[:, ~dead].norm(dim=0).mean() if (~dead).any() else torch.tensor(1.0)
    W_dec[dead] = directions
    W_enc[:, dead] = directions.T * (0.2 * live_norm if scale else 1.0)
    if reset_bias:
        b_enc[dead] = 0.0
    return W_enc, b_enc, W_dec


def _resample_live(*args):
    return _resample_variant(*args, invert=True)


def _resample_uniform(*args):
    return _resample_variant(*args, weights="uniform")


def _resample_linear(*args):
    return _resample_variant(*args, weights="linear")


def _resample_uncentred(*args):
    return _resample_variant(*args, centre=False)


def _resample_unit_encoder(*args):
    return _resample_variant(*args, scale=False)


def _resample_keeps_bias(*args):
    return _resample_variant(*args, reset_bias=False)


def _topk_cases(gen):
    yield Case(
        (torch.tensor([[3.0, -1.0, 2.0, 5.0]]), 2),
        "k = 2 of (3, -1, 2, 5)",
        expected=torch.tensor([[3.0, 0.0, 0.0, 5.0]]),
    )
    yield Case((torch.tensor([[-1.0, -2.0, -3.0], [0.5, -1.0, 2.0]]), 2), "negative values among the top k",
               expected=torch.tensor([[0.0, 0.0, 0.0], [0.5, 0.0, 2.0]]))  # fmt: skip
    yield Case((torch.randn(16, 30, generator=gen), 1), "16 inputs, 30 latents, k = 1")
    yield Case((torch.randn(8, 12, generator=gen), 4), "8 inputs, 12 latents, k = 4")


def _topk_no_relu(pre_activations, k):
    top = pre_activations.topk(k, dim=-1)
    return torch.zeros_like(pre_activations).scatter(-1, top.indices, top.values)


def _topk_by_magnitude(pre_activations, k):
    top = pre_activations.abs().topk(k, dim=-1)
    return torch.zeros_like(pre_activations).scatter(-1, top.indices, pre_activations.gather(-1, top.indices).relu())


def _topk_relu_then_all_ties(pre_activations, k):
    # A threshold at the k-th value keeps every value above it: right without ties, but also keeps nothing special.
    relu = pre_activations.relu()
    threshold = relu.topk(k, dim=-1).values[..., -1:]
    return torch.where(relu >= threshold, relu, torch.zeros(()))


def _recovery_cases(gen):
    true = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    W_dec = torch.tensor([[0.0, -3.0], [2.0, 0.0]])
    # Feature 0 (1, 0) matches row (2, 0): 1. Feature 1 (0, 1): rows give -1 and 0, so 0.
    yield Case((true, W_dec), "feature (0, 1) has only an opposite decoder row", expected=torch.tensor([1.0, 0.0]))
    yield Case(
        (torch.randn(5, 20, generator=gen) * 2, torch.randn(30, 5, generator=gen) * 3),
        "20 features in 5 dimensions, 30 latents",
    )
    yield Case((torch.randn(3, 4, generator=gen), torch.randn(2, 3, generator=gen)), "4 features, 2 latents")


def _recovery_abs(true_directions, W_dec):
    true_unit = true_directions / true_directions.norm(dim=0, keepdim=True)
    decoder_unit = W_dec / W_dec.norm(dim=-1, keepdim=True)
    return (decoder_unit @ true_unit).abs().max(dim=0).values


def _recovery_dot_products(true_directions, W_dec):
    return (W_dec @ true_directions).max(dim=0).values


def _recovery_per_latent(true_directions, W_dec):
    true_unit = true_directions / true_directions.norm(dim=0, keepdim=True)
    decoder_unit = W_dec / W_dec.norm(dim=-1, keepdim=True)
    return (decoder_unit @ true_unit).max(dim=1).values[: true_directions.shape[1]]


def _recovery_rows_as_features(true_directions, W_dec):
    # Normalises true_directions by rows, as if each row were a feature.
    true_unit = true_directions / true_directions.norm(dim=1, keepdim=True)
    decoder_unit = W_dec / W_dec.norm(dim=-1, keepdim=True)
    return (decoder_unit @ true_unit).max(dim=0).values


# ----------------------------------------------------------------------------- training an SAE


def _sae_data(d_in, n_features, p, offset_norm, seed):
    generator = torch.Generator().manual_seed(seed)
    directions = torch.randn(d_in, n_features, generator=generator)
    directions = directions / directions.norm(dim=0, keepdim=True)
    offset = torch.randn(d_in, generator=generator)
    offset = offset / offset.norm() * offset_norm
    probability = torch.full((1, n_features), p)

    def sample(n, generator):
        return ref.generate_feature_batch(n, probability, generator)[:, 0] @ directions.T + offset

    return directions, sample


def _train_sae_cases(gen):
    common = dict(batch_size=256, lr=1e-2)
    yield Case(({"d_in": 4, "n_features": 8, "p": 0.05, "offset": 0.0, "d_sae": 16, "l1_coefficient": 0.3, "k": None,
                 "steps": 400, "resample_every": None, "seed": 0, **common},),
               "8 features in 4 dimensions, 16 latents, L1 0.3, no resampling")  # fmt: skip
    yield Case(({"d_in": 5, "n_features": 20, "p": 0.025, "offset": 1.0, "d_sae": 30, "l1_coefficient": 0.5, "k": None,
                 "steps": 1000, "resample_every": 50, "seed": 0, **common},),
               "20 features in 5 dimensions plus an offset of norm 1, 30 latents, L1 0.5, resampling every 50 steps")  # fmt: skip
    yield Case(({"d_in": 4, "n_features": 8, "p": 0.05, "offset": 0.0, "d_sae": 12, "l1_coefficient": 0.0, "k": 1,
                 "steps": 400, "resample_every": None, "seed": 1, **common},),
               "8 features in 4 dimensions, 12 TopK latents, k = 1")  # fmt: skip


def _run_train_sae(impl, case):
    """Train on synthetic sparse features (random unit directions, plus an offset); score the SAE on held-out
    inputs: its mean loss, and how many true features live latents recover."""
    (config,) = case.args
    d_in, d_sae, l1, k = config["d_in"], config["d_sae"], config["l1_coefficient"], config["k"]
    directions, sample = _sae_data(d_in, config["n_features"], config["p"], config["offset"], config["seed"])
    with torch.no_grad():  # the function must turn gradients on itself if it needs them
        sae = impl(sample, d_in, d_sae, l1, k, config["steps"], config["batch_size"], config["lr"],
                   config["resample_every"], config["seed"])  # fmt: skip
    expected_shapes = {"W_enc": (d_in, d_sae), "b_enc": (d_sae,), "W_dec": (d_sae, d_in), "b_dec": (d_in,)}
    if not isinstance(sae, dict) or set(sae) != set(expected_shapes):
        raise Mismatch(f"output: expected a dict with keys {sorted(expected_shapes)}, got {describe(sae)}")
    for name, shape in expected_shapes.items():
        if not isinstance(sae[name], torch.Tensor) or sae[name].shape != shape:
            raise Mismatch(f"output: {name} should have shape {shape}, got {describe(sae[name])}")
    sae = {name: value.detach().float() for name, value in sae.items()}
    row_norms = sae["W_dec"].norm(dim=-1)
    h = sample(8192, torch.Generator().manual_seed(123))
    pre = (h - sae["b_dec"]) @ sae["W_enc"] + sae["b_enc"]
    latents = pre.relu() if k is None else ref.topk_latents(pre, k)
    reconstruction = latents @ (sae["W_dec"] / row_norms.clamp(min=1e-8)[:, None]) + sae["b_dec"]
    live = (latents > 0).any(0)
    recovered = ref.feature_recovery(directions, sae["W_dec"][live]) if live.any() else torch.zeros(1)
    return {
        "unit decoder rows": bool(((row_norms - 1).abs() < 1e-3).all()),
        "loss": ref.sae_loss(h, latents, reconstruction, l1).mean().item(),
        "recovered": int((recovered > 0.9).sum()),
    }


def _compare_train_sae(expected, got):
    if not got["unit decoder rows"]:
        raise Mismatch("output: the returned decoder rows should have norm 1 (rescale them before returning)")
    # Two correct runs differ (a TopK SAE's held-out loss varies by up to 2x across seeds here): compare loosely.
    if got["loss"] > expected["loss"] * 1.3 + 5e-3:
        raise Mismatch(f"output: your SAE's held-out loss is {got['loss']:.4f}; the reference reaches {expected['loss']:.4f} "
                       "with the same settings")  # fmt: skip
    if got["recovered"] < expected["recovered"] - 2:
        raise Mismatch(f"output: your SAE's live latents recover {got['recovered']} true features; the reference's "
                       f"recover {expected['recovered']} with the same settings")  # fmt: skip


def _train_sae_variant(sample_h, d_in, d_sae, l1_coefficient, k, steps, batch_size, lr, resample_every, seed, *,
                       resample=True, normalise=True, use_l1=True, reset_fired=True, use_k=True):  # fmt: skip
    generator = torch.Generator().manual_seed(seed)
    W_dec = torch.randn(d_sae, d_in, generator=generator)
    W_dec = W_dec / W_dec.norm(dim=-1, keepdim=True)
    params = {"W_enc": W_dec.T.clone(), "b_enc": torch.zeros(d_sae), "W_dec": W_dec, "b_dec": torch.zeros(d_in)}
    for param in params.values():
        param.requires_grad_()
    optimizer = torch.optim.Adam(params.values(), lr=lr)
    fired = torch.zeros(d_sae, dtype=torch.bool)
    with torch.enable_grad():
        for step in range(1, steps + 1):
            h = sample_h(batch_size, generator)
            pre = (h - params["b_dec"]) @ params["W_enc"] + params["b_enc"]
            latents = ref.topk_latents(pre, k) if (k is not None and use_k) else pre.relu()
            decoder = params["W_dec"] / params["W_dec"].norm(dim=-1, keepdim=True) if normalise else params["W_dec"]
            reconstruction = latents @ decoder + params["b_dec"]
            losses = ref.sae_loss(h, latents, reconstruction, l1_coefficient if use_l1 else 0.0)
            optimizer.zero_grad()
            losses.mean().backward()
            optimizer.step()
            fired |= (latents > 0).any(0)
            if resample and resample_every is not None and step % resample_every == 0:
                if step <= steps // 2 and not fired.all():
                    with torch.no_grad():
                        new = ref.resample_dead_latents(**params, h=h, losses=losses.detach(), dead=~fired,
                                                        generator=generator)  # fmt: skip
                        for name, value in zip(("W_enc", "b_enc", "W_dec"), new):
                            params[name].copy_(value)
                    optimizer = torch.optim.Adam(params.values(), lr=lr)
                if reset_fired:
                    fired = torch.zeros(d_sae, dtype=torch.bool)
    weights = {name: param.detach() for name, param in params.items()}
    weights["W_dec"] = weights["W_dec"] / weights["W_dec"].norm(dim=-1, keepdim=True)
    return weights


def _oracle_train_sae(sample_h, d_in, d_sae, l1_coefficient, k, steps, batch_size, lr, resample_every, seed):
    """The same training written out with a hand-made Adam in float64, its own forward pass and the resampler above."""
    generator = torch.Generator().manual_seed(seed)
    W_dec = torch.randn(d_sae, d_in, generator=generator).double()
    W_dec = W_dec / W_dec.norm(dim=-1, keepdim=True)
    names = ("W_enc", "b_enc", "W_dec", "b_dec")
    params = dict(zip(names, (W_dec.T.clone(), torch.zeros(d_sae).double(), W_dec, torch.zeros(d_in).double())))
    moments = {name: (torch.zeros_like(p), torch.zeros_like(p)) for name, p in params.items()}
    t, fired = 0, torch.zeros(d_sae, dtype=torch.bool)
    for step in range(1, steps + 1):
        h = sample_h(batch_size, generator).double()
        with torch.enable_grad():
            leaves = {name: p.detach().requires_grad_() for name, p in params.items()}
            pre = (h - leaves["b_dec"]) @ leaves["W_enc"] + leaves["b_enc"]
            if k is None:
                latents = pre.clamp(min=0)
            else:
                keep = torch.zeros_like(pre, dtype=torch.bool).scatter(-1, pre.topk(k, dim=-1).indices, True)
                latents = torch.where(keep, pre.clamp(min=0), torch.zeros((), dtype=pre.dtype))
            rows = leaves["W_dec"] / leaves["W_dec"].norm(dim=-1, keepdim=True)
            losses = ((h - latents @ rows - leaves["b_dec"]) ** 2).sum(-1) + l1_coefficient * latents.abs().sum(-1)
            grads = dict(zip(names, torch.autograd.grad(losses.mean(), [leaves[n] for n in names])))
        t += 1
        for name in names:
            m, v = moments[name]
            m.mul_(0.9).add_(0.1 * grads[name])
            v.mul_(0.999).add_(0.001 * grads[name] ** 2)
            params[name] = params[name] - lr * (m / (1 - 0.9**t)) / ((v / (1 - 0.999**t)).sqrt() + 1e-8)
        fired |= (latents > 0).any(0)
        if resample_every is not None and step % resample_every == 0:
            if step <= steps // 2 and not fired.all():
                new = _resample_variant(*(params[n] for n in names), h, losses.detach(), ~fired, generator)
                params.update(zip(("W_enc", "b_enc", "W_dec"), new))
                moments = {name: (torch.zeros_like(p), torch.zeros_like(p)) for name, p in params.items()}
                t = 0
            fired = torch.zeros(d_sae, dtype=torch.bool)
    weights = {name: p.detach().float() for name, p in params.items()}
    weights["W_dec"] = weights["W_dec"] / weights["W_dec"].norm(dim=-1, keepdim=True)
    return weights


def _train_sae_no_resampling(*args):
    return _train_sae_variant(*args, resample=False)


def _train_sae_unnormalised(*args):
    return _train_sae_variant(*args, normalise=False)


def _train_sae_no_l1(*args):
    return _train_sae_variant(*args, use_l1=False)


def _train_sae_ignores_k(*args):
    return _train_sae_variant(*args, use_k=False)


# ----------------------------------------------------------------------------- findings: the notebook's models


@functools.lru_cache(maxsize=1)
@_one_thread
def _sweep():
    """The notebook's sparsity sweep: 5 features in 2 dimensions, importance 0.9^i."""
    probabilities = torch.tensor([1.0, 0.3, 0.1, 0.05, 0.03, 0.01])[:, None].expand(-1, 5)
    importance = (0.9 ** torch.arange(5)).expand(6, -1)
    W, _ = ref.train_toy_models(lambda n, g: ref.generate_feature_batch(n, probabilities, g), importance, 2, False,
                                2000, 512, 1e-2, 0)  # fmt: skip
    return W


def _pentagon_instances() -> set[int]:
    dimensionality = ref.feature_dimensionality(_sweep())
    return set(((dimensionality - 0.4).abs() < 0.05).all(-1).nonzero()[:, 0].tolist())


def _grade_instances(answer, truth) -> str | None:
    if isinstance(answer, int) and not isinstance(answer, bool):
        answer = {answer}
    if not isinstance(answer, (set, frozenset, list, tuple)) or not all(isinstance(a, int) for a in answer):
        return f"expected a set of instance indices (ints), got {describe(answer)}."
    if any(not 0 <= a < 6 for a in answer):
        return "the sweep has instances 0 to 5 (indices into SWEEP_PROBABILITIES), not probabilities."
    answer = set(answer)
    if answer == truth:
        return None
    dimensionality = ref.feature_dimensionality(_sweep())
    wrong = [
        f"instance {k} has dimensionalities {dimensionality[k].numpy().round(2).tolist()}"
        for k in sorted(answer - truth)
    ]
    missed = len(truth - answer)
    return (
        "; ".join(wrong + ([f"you missed {missed} instance{'s' * (missed > 1)} in a pentagon"] if missed else [])) + "."
    )


@functools.lru_cache(maxsize=1)
@_one_thread
def _neuron_counts() -> list[int]:
    probabilities = torch.tensor([1.0, 0.3, 0.1, 0.03, 0.01])[:, None].expand(-1, 10)
    importance = (0.75 ** torch.arange(10)).expand(5, -1)
    W, _ = ref.train_toy_models(lambda n, g: ref.generate_feature_batch(n, probabilities, g), importance, 5, True,
                                3000, 512, 1e-2, 0)  # fmt: skip
    return (ref.neuron_top_share(W) > 0.9).sum(-1).tolist()


def _grade_counts(answer, truth) -> str | None:
    if isinstance(answer, torch.Tensor):
        answer = answer.tolist()
    if not isinstance(answer, (list, tuple)) or not all(isinstance(a, int) and not isinstance(a, bool) for a in answer):
        return f"expected a list of ints, one per instance, got {describe(answer)}."
    if len(answer) != len(truth):
        return f"expected {len(truth)} counts, one per instance of NEURON_PROBABILITIES; got {len(answer)}."
    if any(not 0 <= a <= 5 for a in answer):
        return "each instance has 5 neurons: a count is between 0 and 5."
    if list(answer) == truth:
        return None
    wrong = [k for k, (a, t) in enumerate(zip(answer, truth)) if a != t]
    return f"the count for instance {wrong[0]} is {'too high' if answer[wrong[0]] > truth[wrong[0]] else 'too low'}."


@functools.lru_cache(maxsize=1)
@_one_thread
def _recovered_with_resampling() -> int:
    probability = torch.full((1, 20), 0.025)
    W, _ = ref.train_toy_models(lambda n, g: ref.generate_feature_batch(n, probability, g), torch.ones(1, 20), 5, False,
                                1500, 512, 1e-2, 0)  # fmt: skip
    directions = W[0]
    offset = torch.randn(5, generator=torch.Generator().manual_seed(3))
    offset = offset / offset.norm()

    def sample(n, generator):
        return ref.generate_feature_batch(n, probability, generator)[:, 0] @ directions.T + offset

    sae = ref.train_sae(sample, 5, 30, 0.5, None, 1000, 256, 1e-2, 50, 0)
    h = sample(8192, torch.Generator().manual_seed(1))
    live = ((h - sae["b_dec"]) @ sae["W_enc"] + sae["b_enc"] > 0).any(0)
    return int((ref.feature_recovery(directions, sae["W_dec"][live]) > 0.9).sum())


def _grade_recovered(answer, truth) -> str | None:
    if isinstance(answer, torch.Tensor) and answer.numel() == 1:
        answer = answer.item()
    if isinstance(answer, bool) or not isinstance(answer, int):
        return f"expected a count of features (an int), got {describe(answer)}."
    if not 0 <= answer <= 20:
        return "a count of true features cannot be negative or exceed the number of true features."
    if abs(answer - truth) <= 1:
        return None
    return f"{answer} is too {'high' if answer > truth else 'low'}: count the features whose best cosine is above 0.9."


check = Checker("1.5.4", [
    Exercise(
        ref.generate_feature_batch, _feature_batch_cases, run=_run_feature_batch, compare=_compare_sample_stats,
        hint="Each feature is nonzero with probability p (p is the chance of being on, not off), independently; a "
             "nonzero value is uniform on [0, 1); draw everything with the generator you are given.",
        wrong={"p used as the probability of being zero": _feature_batch_zero_probability,
               "every nonzero feature equal to 1": _feature_batch_ones,
               "the global random state instead of the generator": _feature_batch_global_random,
               "one uniform draw used for both the on/off decision and the value": _feature_batch_one_draw},
    ),
    Exercise(
        ref.toy_forward, _forward_cases,
        hint="h = W x sums over the features; W^T h sums over the hidden axis; the bias goes inside the final ReLU; "
             "relu_hidden puts a ReLU on h.",
        wrong={"no ReLU on the output": _forward_no_output_relu, "no bias": _forward_no_bias,
               "the bias added after the ReLU": _forward_bias_after_relu,
               "relu_hidden ignored": _forward_ignores_relu_hidden,
               "read back with W, not its transpose": _forward_transposed_read},
    ),
    Exercise(
        ref.importance_weighted_loss, _loss_cases,
        hint="Multiply each squared error by its feature's importance, sum over the features, average over the batch: "
             "one number per instance.",
        wrong={"importance ignored": _loss_no_importance, "averaged over the features, not summed": _loss_mean_over_features,
               "summed over the batch, not averaged": _loss_sum_over_batch, "importance squared": _loss_importance_squared},
    ),
    Exercise(
        ref.train_toy_models, _train_toy_cases, run=_run_train_toy, compare=_compare_train_toy, oracle=_oracle_train_toy,
        hint="Make W and b once, with gradients, and one Adam for both; every step draw a fresh batch with sample_batch, "
             "run toy_forward with relu_hidden, sum importance_weighted_loss over the instances, then zero_grad, "
             "backward, step.",
        wrong={"the loss without importances": _train_toy_unweighted, "one batch reused for every step": _train_toy_one_batch,
               "relu_hidden not passed on": _train_toy_no_hidden_relu, "the bias left out of the optimiser":
               _train_toy_frozen_bias, "a tenth of the steps": _train_toy_few_steps},
    ),
    Exercise(
        ref.feature_geometry, _geometry_cases,
        hint="A feature is a column: its norm is over the hidden axis. For superposition, normalise column i only, "
             "take squared dot products with every other column (not itself), and sum.",
        wrong={"feature i's overlap with itself included": _geometry_with_diagonal,
               "dot products of unnormalised columns": _geometry_not_normalised,
               "overlaps not squared": _geometry_not_squared, "rows taken as features": _geometry_rows},
    ),
    Exercise(
        ref.feature_dimensionality, _dimensionality_cases,
        hint="Squared norm over the sum of squared overlaps (unit(W_i) . W_j)^2 over every j, itself included; a zero "
             "column gives 0.",
        wrong={"the norm, not its square, on top": _dimensionality_norm_not_squared,
               "the feature itself left out of the sum": _dimensionality_without_self,
               "dot products of unnormalised columns": _dimensionality_dot_products},
    ),
    Exercise(
        ref.generate_paired_batch, _paired_cases, run=_run_paired, compare=_compare_paired,
        hint="One draw per pair decides whether it is active; a correlated pair turns both features on, an "
             "anticorrelated one exactly one of them (a second draw picks which). Pair p is features 2p and 2p + 1.",
        wrong={"each feature on independently (no pairs)": _paired_independent_features,
               "pair p laid out as features p and p + n_pairs": _paired_split_layout,
               "anticorrelated features each on with probability 1/2 (both can be on)": _paired_anti_both_off_or_on},
    ),
    Exercise(
        ref.neuron_top_share, _top_share_cases,
        hint="A neuron is a row of W (its weights to every feature). Square the weights, then divide the largest by "
             "their sum; a neuron with no weights gets 0.",
        wrong={"absolute values, not squares": _top_share_abs, "per feature, not per neuron": _top_share_per_feature,
               "the largest signed weight, not the largest magnitude": _top_share_signed},
    ),
    Exercise(
        ref.sae_forward, _sae_forward_cases,
        hint="Subtract b_dec, encode, add b_enc, ReLU; decode with each decoder row rescaled to norm 1, then add b_dec.",
        wrong={"the decoder used as it is, not normalised": _sae_unnormalised_decoder,
               "b_dec not subtracted before encoding": _sae_no_b_dec_subtracted,
               "no ReLU on the latents": _sae_no_relu, "decoder columns normalised instead of rows": _sae_columns_normalised},
    ),
    Exercise(
        ref.sae_loss, _sae_loss_cases,
        hint="Per input: the squared error summed over d_in, plus l1_coefficient times the sum of the absolute latents.",
        wrong={"the L1 penalty on the reconstruction": _sae_loss_l1_on_reconstruction,
               "the error averaged over d_in": _sae_loss_mean_over_d_in,
               "squared latents (an L2 penalty)": _sae_loss_l2_penalty},
    ),
    Exercise(
        ref.resample_dead_latents, _resample_cases, run=_run_resample,
        hint="Only the dead latents change. Draw with torch.multinomial(losses ** 2, n_dead, replacement=True, "
             "generator=generator); directions are unit(h[j] - b_dec); encoder columns get 0.2 times the mean live "
             "encoder-column norm; dead encoder biases become 0.",
        wrong={"the live latents resampled instead of the dead ones": _resample_live,
               "inputs drawn uniformly, not by squared loss": _resample_uniform,
               "inputs drawn by loss, not squared loss": _resample_linear,
               "b_dec not subtracted from the inputs": _resample_uncentred,
               "encoder columns at unit norm": _resample_unit_encoder,
               "the encoder bias kept": _resample_keeps_bias},
    ),
    Exercise(
        ref.topk_latents, _topk_cases,
        hint="Keep the k largest values of each row (largest, not largest in magnitude), put them through a ReLU, and "
             "set the rest to 0.",
        wrong={"no ReLU on the kept values": _topk_no_relu, "the k largest in magnitude": _topk_by_magnitude},
    ),
    Exercise(
        ref.train_sae, _train_sae_cases, run=_run_train_sae, compare=_compare_train_sae, oracle=_oracle_train_sae,
        hint="Start from normalised random decoder rows and W_enc = W_dec.T; each step: batch, latents (ReLU, or TopK "
             "if k), unit-row decoding, batch mean of sae_loss, Adam step; track which latents fired, and every "
             "resample_every steps in the first half resample the others and reset Adam.",
        wrong={"resampling never done": _train_sae_no_resampling, "decoder rows not normalised in training":
               _train_sae_unnormalised, "the L1 penalty left out": _train_sae_no_l1, "k ignored": _train_sae_ignores_k},
    ),
    Exercise(
        ref.feature_recovery, _recovery_cases,
        hint="Normalise the true directions (columns) and the decoder rows, take all their cosines, and keep the "
             "largest over the latents for each feature; an opposite row has cosine -1, not 1.",
        wrong={"absolute cosines (opposite rows count)": _recovery_abs, "dot products, not cosines": _recovery_dot_products,
               "the best feature per latent": _recovery_per_latent,
               "true directions normalised by rows": _recovery_rows_as_features},
    ),
    Finding(
        "dense_represented", truth=lambda: {0, 1}, grade=same_set("features the dense model represents"),
        hint="With 2 hidden dimensions and dense features there is no room to share: a model keeps as many features "
             "as it has dimensions, and chooses by importance.",
        wrong={"the least important": {3, 4}, "all five": {0, 1, 2, 3, 4}, "only the most important": {0},
               "dimensions, not features": {2}},
    ),
    Finding(
        "pentagon_instances", truth=_pentagon_instances, grade=_grade_instances,
        hint="Compute every feature's dimensionality in each instance and keep the instances where all five are within "
             "0.05 of 0.4.",
        wrong={"the antipodal instance too": {1, 2, 3, 4, 5}, "only the sparsest": {5}, "every instance": {0, 1, 2, 3, 4, 5},
               "probabilities, not indices": {0.1, 0.05}},
    ),
    Finding(
        "monosemantic_counts", truth=_neuron_counts, grade=_grade_counts,
        hint="Count, per instance, the neurons whose top share is above 0.9, in the order of NEURON_PROBABILITIES.",
        wrong={"every neuron monosemantic": [5, 5, 5, 5, 5], "in reverse order": list(reversed([5, 2, 0, 0, 0])),
               "a threshold of 0.5": [5, 4, 0, 3, 2], "one count only": [5]},
    ),
    Finding(
        "recovered_with_resampling", truth=_recovered_with_resampling, grade=_grade_recovered,
        hint="Count the true features whose best cosine with a live latent's decoder row is above 0.9, for the L1 SAE "
             "trained with resampling.",
        wrong={"the number of latents": 30, "none": 0, "the count without resampling": 16, "a fraction": 0.8},
    ),
])  # fmt: skip
