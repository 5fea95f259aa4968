"""Checks for 1.3.1 Linear probes.

The probe exercises run on seeded synthetic clusters: two classes of unequal size whose shared covariance
has a long axis close to the difference of their means, so that the mass-mean and covariance-adjusted
directions differ, a probe fitted without balancing the classes is visibly off, and a probe scored on its
own training statements looks better than it is. The exercises that run a model use an untrained
two-layer model with the zoo tokenizer, on judged-claim prompts of different lengths (left padding
matters); their oracles run each prompt on its own, unpadded. The findings are graded against the zoo's
gpt2-mini-truth, measured with the reference functions.
"""

import functools
import math

import numpy as np
import torch

from solutions.chapter1_transformer_interp import linear_probes as ref
from tests.harness import Case, Checker, Exercise, Finding, Mismatch, describe

_PROMPTS = [
    "Mary said that Paris is in Spain. That is",
    "Tom said that Lyon is not in France. That is",
    "Ella said that the war lasted from 1789 to 1732. That is",
    "Ben said that Cairo is in Egypt. That is",
]


def _clusters(gen: torch.Generator, n_true: int, n_false: int, d: int, scale: float = 1.0):
    """Activations [n_true + n_false, d] and labels: two Gaussian classes sharing an anisotropic covariance
    whose widest axis is tilted towards the difference of the means, shuffled together."""
    difference = torch.randn(d, generator=gen)
    difference = 2.0 * difference / difference.norm()
    tilted = difference / difference.norm() + 0.7 * torch.randn(d, generator=gen) / math.sqrt(d)
    basis = torch.linalg.qr(torch.cat([tilted[:, None], torch.randn(d, d - 1, generator=gen)], 1)).Q
    spread = torch.linspace(3.0, 0.3, d)  # standard deviations along the basis, widest along `tilted`
    noise = torch.randn(n_true + n_false, d, generator=gen) * spread @ basis.T
    offset = torch.randn(d, generator=gen)
    labels = torch.arange(n_true + n_false) < n_true
    acts = offset + noise + torch.where(labels[:, None], difference / 2, -difference / 2)
    order = torch.randperm(n_true + n_false, generator=gen)
    return scale * acts[order], labels[order]


def _half_mask(gen: torch.Generator, labels: torch.Tensor, share: float = 0.5) -> torch.Tensor:
    """A train mask with `share` of each class, so both sides of it hold both classes."""
    mask = torch.zeros_like(labels)
    for cls in (True, False):
        members = (labels == cls).nonzero()[:, 0]
        chosen = members[torch.randperm(len(members), generator=gen)[: max(1, round(share * len(members)))]]
        mask[chosen] = True
    return mask


@functools.lru_cache(maxsize=1)
def _tiny_model():
    """An untrained two-layer model with the zoo tokenizer (it has " true" and " false")."""
    from zoo import build_model
    from zoo.tokenizer import load_tokenizer

    config = dict(n_layers=2, d_model=16, n_heads=2, d_head=8, d_mlp=32, n_ctx=32, d_vocab=len(load_tokenizer()),
                  act_fn="gelu", normalization_type="LN", seed=1)  # fmt: skip
    return build_model(config, device="cpu").eval()


def _run_on_model(impl, case):
    """Cases name their model (a deep copy of a model per case would be slow): look it up and call impl."""
    with torch.no_grad():
        return impl(_tiny_model(), *case.args[1:])


def _truth_ids(model) -> tuple[int, int]:
    return model.to_single_token(" true"), model.to_single_token(" false")


def _one_by_one(model, prompts, fwd_hooks_for=lambda length: []):
    """Final logits of each prompt run alone (no padding), with hooks built for its length."""
    rows = []
    for prompt in prompts:
        tokens = model.to_tokens(prompt)
        rows.append(model.run_with_hooks(tokens, fwd_hooks=fwd_hooks_for(tokens.shape[1]))[0, -1])
    return torch.stack(rows)


# ----------------------------------------------------------------------------- verdicts and activations


def _verdict_cases(gen):
    yield Case(("untrained", _PROMPTS[:1]), "an untrained 2-layer model, one judged claim")
    yield Case(("untrained", _PROMPTS), "an untrained 2-layer model, four judged claims of three lengths")


def _oracle_verdict(model, prompts):
    true_id, false_id = _truth_ids(model)
    logits = _one_by_one(model, prompts)
    return logits[:, true_id] - logits[:, false_id]


def _verdict_false_minus_true(model, prompts):
    return -ref.verdict_logit_diff(model, prompts)


def _verdict_probabilities(model, prompts):
    probs = model(model.to_tokens(prompts, padding_side="left"))[:, -1].softmax(-1)
    true_id, false_id = _truth_ids(model)
    return probs[:, true_id] - probs[:, false_id]


def _verdict_right_padding(model, prompts):
    logits = model(model.to_tokens(prompts, padding_side="right"))[:, -1]
    true_id, false_id = _truth_ids(model)
    return logits[:, true_id] - logits[:, false_id]


def _verdict_without_space(model, prompts):
    logits = model(model.to_tokens(prompts, padding_side="left"))[:, -1]
    return logits[:, model.to_single_token("true")] - logits[:, model.to_single_token("false")]


def _cache_cases(gen):
    yield Case(("untrained", _PROMPTS[:1], [-1]), "an untrained 2-layer model, one prompt, its last token")
    yield Case(("untrained", _PROMPTS, [-3, -1]), "four prompts of three lengths, the period (-3) and the last token")
    yield Case(("untrained", _PROMPTS[1:], [-4, -3, -2]), "three prompts, positions -4, -3, -2")


def _oracle_cache(model, prompts, positions):
    rows = []
    for prompt in prompts:
        _, cache = model.run_with_cache(model.to_tokens(prompt))
        rows.append(
            torch.stack([cache[f"blocks.{layer}.hook_resid_post"][0, positions] for layer in range(model.cfg.n_layers)])
        )
    return torch.stack(rows, dim=2)  # [layer, position, batch, d_model]


def _cache_with(model, prompts, positions, hook="hook_resid_post", padding_side="left"):
    _, cache = model.run_with_cache(model.to_tokens(prompts, padding_side=padding_side))
    per_layer = [cache[f"blocks.{layer}.{hook}"][:, positions] for layer in range(model.cfg.n_layers)]
    return torch.stack(per_layer).transpose(1, 2)


def _cache_batch_first(model, prompts, positions):
    return ref.cache_activations(model, prompts, positions).permute(2, 0, 1, 3)


# ----------------------------------------------------------------------------- PCA and accuracy


def _pca_cases(gen):
    # Points on a line along (3, 4) / 5, plus a little spread along (-4, 3) / 5: the first direction is (0.6, 0.8).
    along, across = torch.tensor([0.6, 0.8]), torch.tensor([-0.8, 0.6])
    points = (
        torch.tensor([-2.0, -1.0, 0.0, 1.0, 2.0])[:, None] * along
        + torch.tensor([0.1, -0.1, 0.0, 0.1, -0.1])[:, None] * across
        + torch.tensor([5.0, 5.0])
    )
    yield Case((points, 1), "5 points along (0.6, 0.8), offset to (5, 5)", expected=along[None])
    acts, _ = _clusters(gen, 30, 50, 8)
    yield Case((acts, 3), "80 synthetic activations, d_model 8, k 3")
    yield Case((_clusters(gen, 60, 140, 24, scale=4.0)[0] + 20.0, 2), "200 activations far from the origin, k 2")


def _compare_pca(expected, got):
    if not isinstance(got, torch.Tensor) or got.shape != expected.shape:
        raise Mismatch(f"output: expected a Tensor of shape {tuple(expected.shape)}, got {describe(got)}")
    norms = got.float().norm(dim=-1)
    if not torch.allclose(norms, torch.ones_like(norms), atol=1e-3):
        raise Mismatch(f"output: each direction should have norm 1, got norms {describe(norms)}")
    cosines = (got.float() * expected).sum(-1).abs()
    for i, cosine in enumerate(cosines.tolist()):
        if cosine < 0.999:
            raise Mismatch(
                f"output: direction {i} has |cosine| {cosine:.3f} with the expected principal direction {i} "
                "(the sign may differ; the direction may not)"
            )


def _oracle_pca(acts, k):
    centred = acts - acts.mean(0)
    values, vectors = torch.linalg.eigh(centred.T @ centred)
    return vectors[:, values.argsort(descending=True)[:k]].T


def _pca_not_centred(acts, k):
    return torch.linalg.svd(acts, full_matrices=False).Vh[:k]


def _pca_eigh_ascending(acts, k):
    centred = acts - acts.mean(0)
    return torch.linalg.eigh(centred.T @ centred).eigenvectors[:, :k].T


def _pca_rows_of_eigenvectors(acts, k):
    centred = acts - acts.mean(0)
    values, vectors = torch.linalg.eigh(centred.T @ centred)
    return vectors[values.argsort(descending=True)[:k]]


def _balanced_cases(gen):
    labels = torch.tensor([True, True, False, False, False, False])
    yield Case((torch.tensor([True, False, False, False, False, True]), labels), "2 true, 4 false: 1/2 and 3/4 right",
               expected=0.625)  # fmt: skip
    yield Case((torch.zeros(6, dtype=torch.bool), labels), "always 'false' on 2 true, 4 false", expected=0.5)
    yield Case((torch.tensor([True, True, True, False]), torch.tensor([True, True, True, False])), "all 4 right",
               expected=1.0)  # fmt: skip
    labels = torch.rand(50, generator=gen) < 0.2
    yield Case((torch.rand(50, generator=gen) < 0.5, labels), "50 random predictions, about 20% true")


def _accuracy(predictions, labels):
    return (predictions == labels).float().mean().item()


def _balanced_swapped(predictions, labels):
    return 0.5 * ((~predictions[labels]).float().mean() + predictions[~labels].float().mean()).item()


def _balanced_true_class_only(predictions, labels):
    return predictions[labels].float().mean().item()


# ----------------------------------------------------------------------------- mass-mean probes


def _probe_cases(gen):
    acts = torch.tensor([[2.0, 0.0], [4.0, 2.0], [0.0, 0.0], [0.0, 2.0], [-1.0, 1.0], [1.0, 1.0]])
    labels = torch.tensor([True, True, False, False, False, False])
    # true mean (3, 1), false mean (0, 1): direction (3, 0), midpoint (1.5, 1), bias -4.5.
    yield Case((acts, labels), "2 true (mean (3, 1)), 4 false (mean (0, 1))", expected=(torch.tensor([3.0, 0.0]), -4.5))
    yield Case(_clusters(gen, 20, 60, 6), "80 synthetic activations, 20 true")
    yield Case(_clusters(gen, 90, 30, 16, scale=3.0), "120 synthetic activations, 90 true")


def _mm_false_minus_true(acts, labels):
    direction, bias = ref.mass_mean_probe(acts, labels)
    return -direction, -bias


def _mm_unit_direction(acts, labels):
    direction, _ = ref.mass_mean_probe(acts, labels)
    unit = direction / direction.norm()
    return unit, -(unit @ (acts[labels].mean(0) + acts[~labels].mean(0)) / 2).item()


def _mm_bias_from_mean_of_all(acts, labels):
    direction, _ = ref.mass_mean_probe(acts, labels)
    return direction, -(direction @ acts.mean(0)).item()


def _mm_no_bias(acts, labels):
    return ref.mass_mean_probe(acts, labels)[0], 0.0


def _iid_cases(gen):
    yield Case(_clusters(gen, 40, 120, 6), "160 synthetic activations, d_model 6, ridge 0.1")
    acts, labels = _clusters(gen, 150, 50, 12, scale=2.0)
    yield Case((acts, labels, 0.5), "200 synthetic activations, d_model 12, ridge 0.5")
    acts, labels = _clusters(gen, 15, 25, 32)
    yield Case((acts, labels), "40 activations in 32 dimensions (Sigma alone is near singular)")


def _oracle_iid(acts, labels, ridge=0.1):
    x, y = acts.double().numpy(), labels.numpy()
    means = {cls: x[y == cls].mean(0) for cls in (True, False)}
    centred = np.stack([row - means[cls] for row, cls in zip(x, y)])
    sigma = np.cov(centred, rowvar=False, bias=True)
    sigma += ridge * np.trace(sigma) / len(sigma) * np.eye(len(sigma))
    direction = np.linalg.inv(sigma) @ (means[True] - means[False])
    bias = -direction @ (means[True] + means[False]) / 2
    return torch.from_numpy(direction).float(), float(bias)


def _iid_total_covariance(acts, labels, ridge=0.1):
    centred = acts - acts.mean(0)
    sigma = centred.T @ centred / len(acts)
    sigma = sigma + ridge * sigma.diagonal().mean() * torch.eye(len(sigma))
    mean_true, mean_false = acts[labels].mean(0), acts[~labels].mean(0)
    direction = torch.linalg.solve(sigma, mean_true - mean_false)
    return direction, -(direction @ (mean_true + mean_false) / 2).item()


def _iid_times_sigma(acts, labels, ridge=0.1):
    mean_true, mean_false = acts[labels].mean(0), acts[~labels].mean(0)
    centred = acts - torch.where(labels[:, None], mean_true, mean_false)
    sigma = centred.T @ centred / len(acts)
    direction = (sigma + ridge * sigma.diagonal().mean() * torch.eye(len(sigma))) @ (mean_true - mean_false)
    return direction, -(direction @ (mean_true + mean_false) / 2).item()


def _iid_unscaled_ridge(acts, labels, ridge=0.1):
    mean_true, mean_false = acts[labels].mean(0), acts[~labels].mean(0)
    centred = acts - torch.where(labels[:, None], mean_true, mean_false)
    sigma = centred.T @ centred / len(acts) + ridge * torch.eye(acts.shape[1])
    direction = torch.linalg.solve(sigma, mean_true - mean_false)
    return direction, -(direction @ (mean_true + mean_false) / 2).item()


def _iid_plain_mass_mean(acts, labels, ridge=0.1):
    return ref.mass_mean_probe(acts, labels)


# ----------------------------------------------------------------------------- logistic regression


def _loss_cases(gen):
    acts = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    labels = torch.tensor([True, False, False])
    # Logits 0 everywhere: every BCE is log 2; the penalty is 0.5 / 2 * (1 + 4) = 1.25 (bias not penalised).
    yield Case(
        (acts, labels, torch.zeros(2), torch.tensor(0.0), 0.0), "zero probe: log 2", expected=torch.tensor(math.log(2))
    )
    yield Case((acts, labels, torch.tensor([1.0, -2.0]) * 0, torch.tensor(0.0), 0.5), "zero weights, l2 0.5",
               expected=torch.tensor(math.log(2)))  # fmt: skip
    acts, labels = _clusters(gen, 10, 40, 5)
    yield Case((acts, labels, torch.randn(5, generator=gen), torch.tensor(0.3), 0.1), "50 activations, 10 true, l2 0.1")
    acts, labels = _clusters(gen, 45, 15, 7)
    yield Case((acts, labels, torch.randn(7, generator=gen), torch.tensor(-1.0), 0.0), "60 activations, 45 true, no l2")


def _oracle_loss(acts, labels, direction, bias, l2):
    logits = (acts @ direction + bias).double()
    nll = torch.where(labels, -torch.log(torch.sigmoid(logits)), -torch.log(1 - torch.sigmoid(logits)))
    balanced = (nll[labels].sum() / labels.sum() + nll[~labels].sum() / (~labels).sum()) / 2
    return (balanced + l2 / 2 * (direction.double() ** 2).sum()).float()


def _loss_unbalanced(acts, labels, direction, bias, l2):
    bce = torch.nn.functional.binary_cross_entropy_with_logits(acts @ direction + bias, labels.float())
    return bce + l2 / 2 * direction.pow(2).sum()


def _loss_penalises_bias(acts, labels, direction, bias, l2):
    return ref.logistic_probe_loss(acts, labels, direction, bias, l2) + l2 / 2 * bias**2


def _loss_full_l2(acts, labels, direction, bias, l2):
    return ref.logistic_probe_loss(acts, labels, direction, bias, 0.0) + l2 * direction.pow(2).sum()


def _train_cases(gen):
    yield Case(_clusters(gen, 20, 100, 6), "120 synthetic activations, 20 true, l2 1e-2 (the default)")
    acts, labels = _clusters(gen, 80, 30, 10, scale=2.0)
    yield Case((acts, labels, 0.05), "110 activations, 80 true, l2 0.05")
    acts, labels = _clusters(gen, 30, 170, 16)
    yield Case((acts, labels, 0.01), "200 activations in 16 dimensions, 30 true, l2 0.01")


def _run_train(impl, case):
    """The loss the learner's probe reaches on the case, and its unit direction. It runs with gradients off,
    as in the notebook (torch.set_grad_enabled(False)): the function must turn them on itself."""
    acts, labels, *rest = case.args
    l2 = rest[0] if rest else 1e-2
    try:
        with torch.no_grad():
            probe = impl(*case.args)
    except RuntimeError as error:
        if "does not require grad" not in str(error):
            raise
        raise Mismatch(
            "your training ran with gradients off, as the notebook has them (torch.set_grad_enabled(False)); "
            "wrap it in `with torch.enable_grad():`"
        ) from None
    if not (isinstance(probe, tuple) and len(probe) == 2):
        raise Mismatch(f"output: expected a (direction, bias) pair, got {describe(probe)}")
    direction, bias = probe
    if not isinstance(direction, torch.Tensor) or direction.shape != (acts.shape[1],):
        raise Mismatch(f"output: expected a direction of shape ({acts.shape[1]},), got {describe(direction)}")
    direction = direction.detach().float()
    bias = torch.as_tensor(bias, dtype=torch.float32).detach()
    loss = ref.logistic_probe_loss(acts, labels, direction, bias, l2).item()
    return {"loss": loss, "direction": direction / direction.norm().clamp(min=1e-12)}


def _compare_train(expected, got):
    if got["loss"] > expected["loss"] + 2e-4:
        raise Mismatch(
            f"output: your probe's logistic_probe_loss is {got['loss']:.5f}; the minimum is {expected['loss']:.5f}. "
            "Train until the loss stops falling, on the loss with both classes weighted equally"
        )
    cosine = (expected["direction"] * got["direction"]).sum().item()
    if cosine < 0.99:
        raise Mismatch(f"output: your direction has cosine {cosine:.3f} with the minimum's (needed: 0.99)")


def _oracle_train(acts, labels, l2=1e-2):
    """Newton's method on the same convex loss, in float64."""
    x = torch.cat([acts.double(), torch.ones(len(acts), 1, dtype=torch.float64)], 1)
    weights = torch.where(labels, 0.5 / labels.sum(), 0.5 / (~labels).sum()).double()
    penalty = torch.full((x.shape[1],), l2, dtype=torch.float64)
    penalty[-1] = 0.0
    theta = torch.zeros(x.shape[1], dtype=torch.float64)
    for _ in range(50):
        p = torch.sigmoid(x @ theta)
        gradient = x.T @ (weights * (p - labels.double())) + penalty * theta
        hessian = x.T @ (x * (weights * p * (1 - p))[:, None]) + torch.diag(penalty) + 1e-12 * torch.eye(len(theta))
        theta = theta - torch.linalg.solve(hessian, gradient)
    return theta[:-1].float(), theta[-1].item()


@torch.enable_grad()
def _train_unbalanced(acts, labels, l2=1e-2):
    direction = torch.zeros(acts.shape[1], requires_grad=True)
    bias = torch.zeros((), requires_grad=True)
    optimizer = torch.optim.LBFGS([direction, bias], max_iter=500, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = _loss_unbalanced(acts, labels, direction, bias, l2)
        loss.backward()
        return loss

    optimizer.step(closure)
    return direction.detach(), bias.item()


@torch.enable_grad()
def _train_too_few_steps(acts, labels, l2=1e-2):
    direction = torch.zeros(acts.shape[1], requires_grad=True)
    bias = torch.zeros((), requires_grad=True)
    optimizer = torch.optim.SGD([direction, bias], lr=0.01)
    for _ in range(20):
        optimizer.zero_grad()
        ref.logistic_probe_loss(acts, labels, direction, bias, l2).backward()
        optimizer.step()
    return direction.detach(), bias.item()


def _train_gradients_left_off(acts, labels, l2=1e-2):
    direction = torch.zeros(acts.shape[1], requires_grad=True)
    bias = torch.zeros((), requires_grad=True)
    optimizer = torch.optim.Adam([direction, bias], lr=0.05)
    for _ in range(3):
        optimizer.zero_grad()
        ref.logistic_probe_loss(acts, labels, direction, bias, l2).backward()
        optimizer.step()
    return direction.detach(), bias.item()


@torch.enable_grad()
def _train_no_bias(acts, labels, l2=1e-2):
    direction = torch.zeros(acts.shape[1], requires_grad=True)
    optimizer = torch.optim.LBFGS([direction], max_iter=500, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = ref.logistic_probe_loss(acts, labels, direction, torch.tensor(0.0), l2)
        loss.backward()
        return loss

    optimizer.step(closure)
    return direction.detach(), 0.0


def _train_mass_mean(acts, labels, l2=1e-2):
    return ref.mass_mean_probe(acts, labels)


# ----------------------------------------------------------------------------- sweeps and generalisation


def _sweep_cases(gen):
    # Layer 0 is noise; layer 1 separates the classes. Few statements in many dimensions: a probe scored on
    # its own training statements looks perfect everywhere.
    acts, labels = _clusters(gen, 12, 28, 24)
    noise = torch.randn(40, 24, generator=gen)
    mask = _half_mask(gen, labels)
    yield Case((torch.stack([noise, acts]), labels, mask, ref.mass_mean_probe), "2 layers (noise, clusters), mass-mean")
    acts, labels = _clusters(gen, 30, 90, 8)
    layers = torch.stack([acts * 0.1 + torch.randn(120, 8, generator=gen), acts, acts + 3.0])
    yield Case(
        (layers, labels, _half_mask(gen, labels, 0.3), ref.mass_mean_probe), "3 layers, 30% of each class to train"
    )
    yield Case((layers, labels, _half_mask(gen, labels, 0.6), ref.iid_mass_mean_probe), "3 layers, IID mass-mean")


def _oracle_balanced(scores, labels):
    """Balanced accuracy of the prediction scores > 0, written out."""
    recall_true = (scores[labels] > 0).float().mean()
    recall_false = (scores[~labels] <= 0).float().mean()
    return ((recall_true + recall_false) / 2).item()


def _oracle_sweep(acts, labels, train_mask, fit):
    result = []
    for layer in range(acts.shape[0]):
        direction, bias = fit(acts[layer][train_mask], labels[train_mask])
        result.append(_oracle_balanced(acts[layer][~train_mask] @ direction + bias, labels[~train_mask]))
    return torch.tensor(result)


def _sweep_scored_with(acts, labels, train_mask, fit, score=ref.balanced_accuracy, test=None, fit_on=None):
    """A layer sweep with one piece swapped: the scoring function, the statements scored, or those fitted."""
    test = ~train_mask if test is None else test
    fit_on = train_mask if fit_on is None else fit_on
    accuracies = []
    for layer_acts in acts:
        direction, bias = fit(layer_acts[fit_on], labels[fit_on])
        accuracies.append(score(layer_acts[test] @ direction + bias > 0, labels[test]))
    return torch.tensor(accuracies)


def _sweep_on_train(acts, labels, train_mask, fit):
    return _sweep_scored_with(acts, labels, train_mask, fit, test=train_mask)


def _sweep_plain_accuracy(acts, labels, train_mask, fit):
    return _sweep_scored_with(acts, labels, train_mask, fit, score=_accuracy)


def _sweep_fit_on_everything(acts, labels, train_mask, fit):
    return _sweep_scored_with(acts, labels, train_mask, fit, fit_on=torch.ones_like(train_mask))


def _sweep_ignores_bias(acts, labels, train_mask, fit):
    return torch.tensor(
        [ref.balanced_accuracy(a[~train_mask] @ d > 0, labels[~train_mask]) for a in acts
         for d, _ in [fit(a[train_mask], labels[train_mask])]]
    )  # fmt: skip


def _families(gen):
    """Three synthetic families: b is a (shifted) copy of a's geometry, c has its truth on another axis."""
    acts_a, labels_a = _clusters(gen, 20, 40, 10)
    acts_b, labels_b = acts_a[:50] + 0.5 + 0.3 * torch.randn(50, 10, generator=gen), labels_a[:50]
    acts_c, labels_c = _clusters(gen, 25, 25, 10)
    acts = {"a": acts_a, "b": acts_b, "c": acts_c}
    labels = {"a": labels_a, "b": labels_b, "c": labels_c}
    masks = {name: _half_mask(gen, labels[name]) for name in acts}
    return acts, labels, masks


def _generalisation_cases(gen):
    acts, labels, masks = _families(gen)
    yield Case((acts, labels, masks, ref.mass_mean_probe), "3 synthetic families, mass-mean")
    two = {"c": acts["c"], "a": acts["a"]}
    yield Case((two, {k: labels[k] for k in two}, {k: masks[k] for k in two}, ref.mass_mean_probe),
               "2 families given in the order c, a")  # fmt: skip


def _oracle_generalisation(acts, labels, train_masks, fit):
    rows = []
    for train in acts:
        direction, bias = fit(acts[train][train_masks[train]], labels[train][train_masks[train]])
        held_out = {test: ~train_masks[test] for test in acts}
        rows.append([_oracle_balanced(acts[test][held_out[test]] @ direction + bias, labels[test][held_out[test]])
                     for test in acts])  # fmt: skip
    return torch.tensor(rows)


def _generalisation_transposed(acts, labels, train_masks, fit):
    return ref.generalisation_matrix(acts, labels, train_masks, fit).T


def _generalisation_tests_on_all(acts, labels, train_masks, fit):
    everything = {name: torch.zeros_like(mask) for name, mask in train_masks.items()}
    names = list(acts)
    matrix = torch.zeros(len(names), len(names))
    for i, train in enumerate(names):
        direction, bias = fit(acts[train][train_masks[train]], labels[train][train_masks[train]])
        for j, test in enumerate(names):
            keep = ~everything[test]
            matrix[i, j] = ref.balanced_accuracy(acts[test][keep] @ direction + bias > 0, labels[test][keep])
    return matrix


def _generalisation_sorted_names(acts, labels, train_masks, fit):
    order = sorted(acts)
    return ref.generalisation_matrix({k: acts[k] for k in order}, labels, train_masks, fit)


# ----------------------------------------------------------------------------- the causal test


def _steer_cases(gen):
    direction = torch.randn(16, generator=gen) * 3
    yield Case(
        ("untrained", _PROMPTS[:1], direction, 0, -1), "an untrained 2-layer model, one prompt, layer 0, position -1"
    )
    yield Case(("untrained", _PROMPTS, direction, 0, -3), "four prompts of three lengths, layer 0, the period (-3)")
    yield Case(("untrained", _PROMPTS, torch.randn(16, generator=gen) * 3, 1, -1), "four prompts, layer 1, position -1")
    yield Case(
        ("untrained", _PROMPTS[1:], torch.randn(16, generator=gen) * 3, 0, -2), "three prompts, layer 0, position -2"
    )


def _oracle_steer(model, prompts, direction, layer, position):
    true_id, false_id = _truth_ids(model)

    def hooks(length):
        def add(resid, hook):
            resid = resid.clone()
            resid[0, length + position] = resid[0, length + position] + direction
            return resid

        return [(f"blocks.{layer}.hook_resid_post", add)]

    logits = _one_by_one(model, prompts, hooks)
    return logits[:, true_id] - logits[:, false_id]


def _steer_with(model, prompts, direction, layer, position, hook_name=None, where=None, padding_side="left"):
    def add(resid, hook):
        resid = resid.clone()
        if where == "all":
            resid += direction
        else:
            resid[:, position] += direction
        return resid

    tokens = model.to_tokens(prompts, padding_side=padding_side)
    name = hook_name or f"blocks.{layer}.hook_resid_post"
    final = model.run_with_hooks(tokens, fwd_hooks=[(name.format(layer=layer), add)])[:, -1]
    true_id, false_id = _truth_ids(model)
    return final[:, true_id] - final[:, false_id]


def _steer_every_position(model, prompts, direction, layer, position):
    return _steer_with(model, prompts, direction, layer, position, where="all")


def _steer_resid_pre(model, prompts, direction, layer, position):
    return _steer_with(model, prompts, direction, layer, position, hook_name="blocks.{layer}.hook_resid_pre")


def _steer_unit_direction(model, prompts, direction, layer, position):
    return ref.steered_logit_diff(model, prompts, direction / direction.norm(), layer, position)


def _steer_right_padding(model, prompts, direction, layer, position):
    return _steer_with(model, prompts, direction, layer, position, padding_side="right")


def _steer_subtracts(model, prompts, direction, layer, position):
    return ref.steered_logit_diff(model, prompts, -direction, layer, position)


def _random_cases(gen):
    yield Case((torch.tensor([3.0, 4.0] + [0.0] * 62), 0), "a direction of norm 5 in 64 dimensions, seed 0")
    yield Case((torch.randn(128, generator=gen) * 7, 3), "a random direction in 128 dimensions, seed 3")
    yield Case((torch.randn(16, generator=gen), 11), "a random direction in 16 dimensions, seed 11")


def _run_random(impl, case):
    """What matters about a random direction: its norm, that the seed fixes it, that different seeds give
    different ones, and, over 400 seeds, that it is centred and isotropic (a per-axis mean square of norm^2/d)."""
    direction, seed = case.args
    out = impl(direction, seed)
    if not isinstance(out, torch.Tensor) or out.shape != direction.shape:
        raise Mismatch(f"output: expected a Tensor of shape {tuple(direction.shape)}, got {describe(out)}")
    draws = torch.stack([impl(direction, s) for s in range(1000, 1400)]).float()
    return {
        "norm": out.norm().item(),
        "same seed, same direction": torch.equal(impl(direction, seed), out),
        "a new direction for each seed": not torch.equal(impl(direction, seed + 1), out),
        "mean over 400 seeds": draws.mean(0),
        "mean square per axis": draws.pow(2).mean(0),
        "cosine with the direction": torch.cosine_similarity(out.float(), direction.float(), dim=0).item(),
    }


def _compare_random(expected, got):
    if not math.isclose(got["norm"], expected["norm"], rel_tol=1e-4):
        raise Mismatch(f"output: norm {got['norm']:.4g}, expected the direction's norm {expected['norm']:.4g}")
    for key in ("same seed, same direction", "a new direction for each seed"):
        if not got[key]:
            raise Mismatch(f"output: expected {key}: seed a torch.Generator of your own with `seed`")
    d, norm = len(got["mean over 400 seeds"]), expected["norm"]
    # Over 400 draws, each coordinate's mean has standard error norm / sqrt(400 d); 5 of them is lenient.
    if (got["mean over 400 seeds"].abs() > 5 * norm / math.sqrt(400 * d)).any():
        raise Mismatch("output: over 400 seeds your directions are not centred on zero: draw from a distribution "
                       "that is symmetric about 0")  # fmt: skip
    per_axis = got["mean square per axis"] / (norm**2 / d)
    if (per_axis < 0.6).any() or (per_axis > 1.4).any():
        raise Mismatch("output: over 400 seeds some axes get much more of the norm than others: draw each "
                       "coordinate from the same distribution")  # fmt: skip
    if abs(got["cosine with the direction"]) > 0.9:
        raise Mismatch(f"output: cosine {got['cosine with the direction']:.2f} with the direction itself: "
                       "it should be a fresh direction")  # fmt: skip


def _oracle_random(direction, seed):
    generator = torch.Generator().manual_seed(seed)
    draw = torch.empty(direction.shape).normal_(generator=generator)
    return direction.norm() * draw / draw.norm()


def _random_unit(direction, seed):
    draw = torch.randn(direction.shape, generator=torch.Generator().manual_seed(seed))
    return draw / draw.norm()


def _random_global_state(direction, seed):
    draw = torch.randn(direction.shape)
    return draw / draw.norm() * direction.norm()


def _random_uniform(direction, seed):
    draw = torch.rand(direction.shape, generator=torch.Generator().manual_seed(seed))
    return draw / draw.norm() * direction.norm()


def _random_plus_noise(direction, seed):
    draw = direction + 0.1 * direction.norm() * torch.randn(
        direction.shape, generator=torch.Generator().manual_seed(seed)
    )
    return draw / draw.norm() * direction.norm()


# ----------------------------------------------------------------------------- findings, on gpt2-mini-truth


@functools.lru_cache(maxsize=1)
def _zoo_truth():
    """gpt2-mini-truth at the final token of every judged-claim prompt: per family, the residual stream after
    every block [layer, batch, d_model], the labels, the held-out flags and the model's verdicts."""
    from zoo import corpus, load_model

    model = load_model("gpt2-mini-truth", device="cpu")
    found = {}
    with torch.no_grad():
        for family in corpus.TRUTH_FAMILIES:
            statements = corpus.truth_statements(family)
            prompts = [corpus.judged_claim(s.text, "Mary") for s in statements]
            found[family] = dict(
                acts=ref.cache_activations(model, prompts, [-1])[:, 0],
                labels=torch.tensor([s.is_true for s in statements]),
                held_out=torch.tensor([s.held_out for s in statements]),
                verdicts=ref.verdict_logit_diff(model, prompts) > 0,
            )
    return found


def _years_sweep() -> torch.Tensor:
    years = _zoo_truth()["years"]
    return ref.layer_sweep(years["acts"], years["labels"], ~years["held_out"], ref.mass_mean_probe)


def _truth_layer() -> int:
    return int((_years_sweep() >= 0.9).nonzero()[0, 0])


def _grade_truth_layer(answer, truth) -> str | None:
    # No scores in these messages: the self-tests forbid the truth's digit anywhere in them.
    sweep = _years_sweep()
    if isinstance(answer, bool) or not isinstance(answer, int):
        return f"expected a block index (an int), got {describe(answer)}."
    if answer < 0:
        return "a negative number counts positions from the end of a prompt; blocks count up from 0."
    if answer >= len(sweep):
        return f"gpt2-mini-truth's blocks count from 0 to {len(sweep) - 1}; {answer} is not one of them."
    if answer == truth:
        return None
    if sweep[answer] < 0.9:
        return f"after block {answer} the probe stays below 0.9 on the held-out years."
    return f"after block {answer} the probe passes 0.9, but an earlier block already does."


def _cities_probe_scores(against: str) -> dict[str, float]:
    """The last-layer mass-mean probe fitted on judged cities claims, scored on each family's held-out
    statements against the truth ("truth") or against the model's verdicts ("verdicts")."""
    found = _zoo_truth()
    cities = found["cities"]
    judged = ~cities["held_out"]
    direction, bias = ref.mass_mean_probe(cities["acts"][-1][judged], cities["labels"][judged])
    scores = {}
    for family, data in found.items():
        kept = data["held_out"]
        targets = data["labels"] if against == "truth" else data["verdicts"]
        scores[family] = ref.balanced_accuracy(data["acts"][-1][kept] @ direction + bias > 0, targets[kept])
    return scores


def _family_set_grader(against: str, condition: str):
    def grade(answer, truth) -> str | None:
        from zoo import corpus

        if isinstance(answer, str):
            answer = {answer}
        if not isinstance(answer, (set, frozenset, list, tuple)):
            return f"expected a set of family names, got {describe(answer)}."
        unknown = [family for family in answer if family not in corpus.TRUTH_FAMILIES]
        if unknown:
            return f"{unknown[0]!r} is not a family; the families are {corpus.TRUTH_FAMILIES}."
        answer = set(answer)
        if answer == truth:
            return None
        scores = _cities_probe_scores(against)
        wrong = [f"on {family} it scores {scores[family]:.2f}" for family in sorted(answer - truth)]
        missed = len(truth - answer)
        parts = wrong + (
            [f"you missed {missed} famil{'y' if missed == 1 else 'ies'} where it is {condition}"] if missed else []
        )
        return "; ".join(parts) + "."

    return grade


check = Checker("1.3.1", [
    Exercise(
        ref.verdict_logit_diff, _verdict_cases, run=_run_on_model, oracle=_oracle_verdict,
        hint="Run the prompts padded on the left so each one ends at position -1, and subtract the logit of the "
             "token \" false\" from the logit of \" true\" (both with their leading space).",
        wrong={"false minus true": _verdict_false_minus_true,
               "probabilities, not logits": _verdict_probabilities,
               "padded on the right (position -1 is padding for the shorter prompts)": _verdict_right_padding,
               "the tokens without their leading space": _verdict_without_space},
    ),
    Exercise(
        ref.cache_activations, _cache_cases, run=_run_on_model, oracle=_oracle_cache,
        hint="Cache only the hook_resid_post of each block (names_filter), pad on the left, index the positions "
             "from the end, and stack to [layer, position, batch, d_model].",
        wrong={"the residual stream before each block (hook_resid_pre)": lambda m, p, pos: _cache_with(
                   m, p, pos, hook="hook_resid_pre"),
               "the attention output (hook_attn_out), not the residual stream": lambda m, p, pos: _cache_with(
                   m, p, pos, hook="hook_attn_out"),
               "padded on the right": lambda m, p, pos: _cache_with(m, p, pos, padding_side="right"),
               "batch first, not layer first": _cache_batch_first},
    ),  # fmt: skip
    Exercise(
        ref.pca_components, _pca_cases, oracle=_oracle_pca, compare=_compare_pca,
        hint="Subtract the mean first; the principal directions are the right singular vectors of the centred "
             "data (or the covariance's eigenvectors), largest singular value (eigenvalue) first.",
        wrong={"not centred (the first direction points at the mean)": _pca_not_centred,
               "eigenvectors in eigh's ascending order (least variance first)": _pca_eigh_ascending,
               "rows of the eigenvector matrix, not its columns": _pca_rows_of_eigenvectors},
    ),
    Exercise(
        ref.balanced_accuracy, _balanced_cases,
        hint="Compute the share right among the true statements and among the false ones separately, then average "
             "the two shares (not the counts).",
        wrong={"plain accuracy": _accuracy, "each class's share of wrong answers": _balanced_swapped,
               "the accuracy on the true statements only": _balanced_true_class_only},
    ),
    Exercise(
        ref.mass_mean_probe, _probe_cases,
        hint="The direction is mean(true) - mean(false), unnormalised; the boundary passes through the midpoint "
             "of the two means, so bias = -direction · midpoint.",
        wrong={"false minus true": _mm_false_minus_true, "a unit direction": _mm_unit_direction,
               "the bias from the mean of all statements, not the midpoint of the class means":
                   _mm_bias_from_mean_of_all,
               "no bias": _mm_no_bias},
    ),  # fmt: skip
    Exercise(
        ref.iid_mass_mean_probe, _iid_cases, oracle=_oracle_iid, rtol=1e-3, atol=1e-4,
        hint="Subtract from each statement the mean of its own class before taking the covariance; scale the ridge "
             "by the mean of Sigma's diagonal; solve (do not multiply by) Sigma.",
        wrong={"the covariance of all statements around one mean": _iid_total_covariance,
               "Sigma times the difference of means, not its inverse": _iid_times_sigma,
               "a ridge not scaled by the mean variance": _iid_unscaled_ridge,
               "the plain mass-mean direction": _iid_plain_mass_mean},
    ),
    Exercise(
        ref.logistic_probe_loss, _loss_cases, oracle=_oracle_loss,
        hint="Average the cross-entropy over each class separately, then average the two; penalise only the "
             "direction, by l2 / 2 times its squared norm.",
        wrong={"one mean over all statements (the larger class dominates)": _loss_unbalanced,
               "the bias penalised too": _loss_penalises_bias,
               "l2 times the squared norm, without the 1/2": _loss_full_l2},
    ),
    Exercise(
        ref.train_logistic_probe, _train_cases, run=_run_train, compare=_compare_train, oracle=_oracle_train,
        hint="Minimise your logistic_probe_loss over a direction and a bias that require gradients (inside "
             "torch.enable_grad()), full batch, until it stops falling: LBFGS converges in a few hundred iterations.",
        wrong={"the unbalanced loss": _train_unbalanced, "20 steps of SGD": _train_too_few_steps,
               "gradients left off (the notebook turns them off)": _train_gradients_left_off,
               "no bias": _train_no_bias, "the mass-mean probe": _train_mass_mean},
    ),
    Exercise(
        ref.layer_sweep, _sweep_cases, oracle=_oracle_sweep,
        hint="For each layer fit on the statements in train_mask only, and score with balanced_accuracy on the "
             "statements outside it; the probe's prediction includes its bias.",
        wrong={"scored on the training statements": _sweep_on_train,
               "plain accuracy": _sweep_plain_accuracy,
               "fitted on every statement": _sweep_fit_on_everything,
               "the bias left out of the prediction": _sweep_ignores_bias},
    ),
    Exercise(
        ref.generalisation_matrix, _generalisation_cases, oracle=_oracle_generalisation,
        hint="Rows are the family trained on (its train mask), columns the family tested on (outside its train "
             "mask), in the order of the dict.",
        wrong={"rows and columns swapped": _generalisation_transposed,
               "tested on every statement, training ones included": _generalisation_tests_on_all,
               "families in sorted order, not the dict's": _generalisation_sorted_names},
    ),
    Exercise(
        ref.steered_logit_diff, _steer_cases, run=_run_on_model, oracle=_oracle_steer,
        hint="Hook blocks.{layer}.hook_resid_post, add the direction at the one position (counted from the end, "
             "with left padding) and return the activation; then read the verdict as in verdict_logit_diff.",
        wrong={"added at every position": _steer_every_position,
               "added before the block (hook_resid_pre)": _steer_resid_pre,
               "the unit direction, not the direction as given": _steer_unit_direction,
               "padded on the right": _steer_right_padding,
               "subtracted": _steer_subtracts},
    ),
    Exercise(
        ref.random_direction_like, _random_cases, run=_run_random, compare=_compare_random, oracle=_oracle_random,
        hint="Draw each coordinate from a standard normal with a generator seeded by `seed` (a Gaussian vector "
             "points in a uniformly random direction), then rescale it to the direction's norm.",
        wrong={"a unit vector": _random_unit, "the global random state": _random_global_state,
               "uniform coordinates in [0, 1)": _random_uniform,
               "the direction plus a little noise": _random_plus_noise},
    ),
    Finding(
        "truth_layer", truth=_truth_layer, grade=_grade_truth_layer,
        hint="Sweep a mass-mean probe over the layers at the final token, fitted on the judged years statements and "
             "scored on the held-out ones; take the first block whose score reaches 0.9.",
        wrong={"the best block, not the first that passes": 3, "block 0 (the embeddings plus one block)": 0,
               "a block that does not exist": 4, "a position instead of a block": -1, "a name, not an int": "the second block"},
    ),
    Finding(
        "fails_against_truth", truth=lambda: {f for f, a in _cities_probe_scores("truth").items() if a < 0.75},
        grade=_family_set_grader("truth", "below 0.75"),
        hint="Score the last-layer cities probe on each family's held-out statements against the true labels, and "
             "keep the families below 0.75.",
        wrong={"only the negations (the Geometry of Truth result)": {"negated_cities"},
               "only the years": {"years"}, "none": set(), "every family": {"cities", "negated_cities", "years"},
               "a misspelt family": {"cities", "negated cities"}},
    ),
    Finding(
        "agrees_with_verdicts", truth=lambda: {f for f, a in _cities_probe_scores("verdicts").items() if a >= 0.9},
        grade=_family_set_grader("verdicts", "at least 0.9"),
        hint="Score the same probe with the model's own verdicts as the labels of the held-out statements, and keep "
             "the families where it reaches 0.9.",
        wrong={"only the years (where verdicts and truth agree)": {"years"},
               "the cities families but not the years": {"cities", "negated_cities"},
               "only its own family": {"cities"}, "none": set()},
    ),
])  # fmt: skip
