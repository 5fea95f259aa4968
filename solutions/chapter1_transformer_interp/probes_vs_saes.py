"""Reference solutions for 1.3.4 Probes vs SAEs: a head-to-head on detecting false statements.

Activations of judged claims, a balanced training sample of a fixed budget, balanced accuracy and AUROC,
and four detectors fit on the same sample: a logistic-regression probe and a difference-of-means direction
on the residual stream, the single best SAE latent, and a sparse logistic probe on SAE latents; then the
head-to-head over seeds, and steering the model's verdicts with each detector's direction.
Importing this module has no side effects.
"""

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.hook_points import HookPoint

from zoo import corpus


def claim_activations(
    model: HookedTransformer, statements: list[str], layer: int, position: int, speaker: str = "Mary"
) -> Float[Tensor, "n d_model"]:
    """The residual stream after block `layer` at `position` (counted from the end: -1 is the last token)
    of each judged-claim prompt corpus.judged_claim(statement, speaker), run as one left-padded batch."""
    prompts = [corpus.judged_claim(statement, speaker) for statement in statements]
    tokens = model.to_tokens(prompts, padding_side="left")
    hook_name = f"blocks.{layer}.hook_resid_post"
    _, cache = model.run_with_cache(tokens, names_filter=[hook_name], stop_at_layer=layer + 1)
    return cache[hook_name][:, position].cpu()


def balanced_sample(labels: Bool[Tensor, " n"], n_per_class: int, seed: int) -> Int[Tensor, " sample"]:
    """Indices of n_per_class examples labelled True and n_per_class labelled False, drawn without
    replacement, uniformly within each class, with a generator seeded by `seed` (True ones first)."""
    generator = torch.Generator().manual_seed(seed)
    picked = []
    for value in (True, False):
        members = (labels == value).nonzero().flatten()
        picked.append(members[torch.randperm(len(members), generator=generator)[:n_per_class]])
    return torch.cat(picked)


def balanced_accuracy(predicted: Bool[Tensor, " n"], labels: Bool[Tensor, " n"]) -> float:
    """The mean of the accuracy on the examples labelled True and the accuracy on those labelled False
    (0.5 for a constant guess, whatever the share of each class)."""
    return 0.5 * ((predicted[labels]).float().mean() + (~predicted[~labels]).float().mean()).item()


def auroc(scores: Float[Tensor, " n"], labels: Bool[Tensor, " n"]) -> float:
    """Area under the ROC curve: the probability that an example labelled True scores higher than one
    labelled False, counting ties as half."""
    positive, negative = scores[labels], scores[~labels]
    higher = (positive[:, None] > negative[None, :]).float()
    tied = (positive[:, None] == negative[None, :]).float()
    return (higher + 0.5 * tied).mean().item()


def fit_logistic_probe(
    x: Float[Tensor, "n d"], labels: Bool[Tensor, " n"], l2: float, n_steps: int = 100
) -> tuple[Float[Tensor, " d"], float]:
    """Weights w and bias b minimising mean binary cross-entropy of sigmoid(x @ w + b) against labels,
    plus l2 * ||w||^2 (the bias is not penalised), found by L-BFGS from zero for up to n_steps iterations."""
    x, y = x.detach().float(), labels.float()
    w = torch.zeros(x.shape[1], requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.LBFGS([w, b], max_iter=n_steps, line_search_fn="strong_wolfe")

    def objective() -> Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(x @ w + b, y) + l2 * w.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(objective)
    return w.detach(), b.item()


def diff_of_means(x: Float[Tensor, "n d"], labels: Bool[Tensor, " n"]) -> tuple[Float[Tensor, " d"], float]:
    """The mean of the True examples minus the mean of the False ones (not normalised), and the threshold
    halfway between the two means' projections on it: x @ direction > threshold predicts True."""
    direction = x[labels].mean(0) - x[~labels].mean(0)
    threshold = 0.5 * (x[labels].mean(0) + x[~labels].mean(0)) @ direction
    return direction, threshold.item()


def best_latent(latents: Float[Tensor, "n d_sae"], labels: Bool[Tensor, " n"]) -> tuple[int, float, float]:
    """The single latent that best separates the labels as a threshold rule, on these examples:
    (index, sign, threshold) such that sign * (latents[:, index] - threshold) > 0 predicts True, chosen
    to maximise balanced accuracy over every latent, both signs and every threshold (ties: lowest index)."""
    n_true, n_false = labels.sum(), (~labels).sum()
    values, order = latents.sort(dim=0)  # per latent, ascending
    sorted_labels = labels[order]  # [n, d_sae]
    # Threshold just above the first i sorted values (i = 0..n): rule "value > threshold" predicts True
    # for the n - i largest. True positives = True labels above, true negatives = False labels below.
    below_true = torch.cat([torch.zeros(1, latents.shape[1]), sorted_labels.float().cumsum(0)])
    below_false = torch.arange(len(labels) + 1)[:, None] - below_true
    up_accuracy = 0.5 * ((n_true - below_true) / n_true + below_false / n_false)
    # Only cut between distinct values (a cut inside a run of ties cannot be realised by a threshold).
    distinct = torch.ones(len(labels) + 1, latents.shape[1], dtype=torch.bool)
    distinct[1:-1] = values[1:] > values[:-1]
    up_accuracy = up_accuracy.masked_fill(~distinct, 0.0)
    # The opposite sign's accuracy at the same cut is 1 - accuracy.
    accuracy = torch.maximum(up_accuracy, (1 - up_accuracy).masked_fill(~distinct, 0.0))
    best_per_latent, cut = accuracy.max(0)
    index = int(best_per_latent.argmax())
    i = int(cut[index])
    column = values[:, index]
    low = column[i - 1] if i > 0 else column[0] - 1.0
    high = column[i] if i < len(column) else column[-1] + 1.0
    sign = 1.0 if up_accuracy[i, index] >= 1 - up_accuracy[i, index] else -1.0
    return index, sign, (0.5 * (low + high)).item()


def sparse_latent_probe(
    latents: Float[Tensor, "n d_sae"], labels: Bool[Tensor, " n"], k: int, l2: float
) -> tuple[Int[Tensor, " k"], Float[Tensor, " k"], float]:
    """A logistic probe on k SAE latents: the k with the largest absolute difference between their mean
    on True and on False examples (largest first), then fit_logistic_probe on those columns.
    Returns (indices, weights, bias)."""
    difference = (latents[labels].mean(0) - latents[~labels].mean(0)).abs()
    indices = difference.topk(k).indices
    weights, bias = fit_logistic_probe(latents[:, indices], labels, l2)
    return indices, weights, bias


METHODS = ["logistic probe", "diff of means", "best SAE latent", "SAE latent probe"]


def head_to_head(
    train: tuple[Float[Tensor, "n_train d_model"], Float[Tensor, "n_train d_sae"], Bool[Tensor, " n_train"]],
    test: tuple[Float[Tensor, "n_test d_model"], Float[Tensor, "n_test d_sae"], Bool[Tensor, " n_test"]],
    samples: list[Int[Tensor, " sample"]],
    l2: float,
    k: int,
) -> dict[str, Float[Tensor, "n_samples 2"]]:
    """The four detectors on one data budget. `train` and `test` are (activations, SAE latents, labels).
    For each sample (indices into the training set), fit every detector on those examples alone (the probes
    with `l2`, the latent probe on k latents) and score it on the whole test set. Returns, for each name in
    METHODS, a tensor of (balanced accuracy, AUROC) per sample. Each detector's score for AUROC is what it
    thresholds: the logit, the projection on the direction, or the latent's activation times its sign."""
    (train_x, train_latents, train_labels), (test_x, test_latents, test_labels) = train, test
    results = {method: [] for method in METHODS}
    for picked in samples:
        x, latents, labels = train_x[picked], train_latents[picked], train_labels[picked]
        w, b = fit_logistic_probe(x, labels, l2)
        direction, threshold = diff_of_means(x, labels)
        index, sign, cut = best_latent(latents, labels)
        indices, latent_w, latent_b = sparse_latent_probe(latents, labels, k, l2)
        scored = {
            "logistic probe": (test_x @ w + b, 0.0),
            "diff of means": (test_x @ direction, threshold),
            "best SAE latent": (sign * test_latents[:, index], sign * cut),
            "SAE latent probe": (test_latents[:, indices] @ latent_w + latent_b, 0.0),
        }
        for method, (scores, boundary) in scored.items():
            accuracy = balanced_accuracy(scores > boundary, test_labels)
            results[method].append(torch.tensor([accuracy, auroc(scores, test_labels)]))
    return {method: torch.stack(rows) for method, rows in results.items()}


def steered_verdicts(
    model: HookedTransformer,
    statements: list[str],
    direction: Float[Tensor, " d_model"],
    layer: int,
    scale: float,
    speaker: str = "Mary",
) -> Bool[Tensor, " n"]:
    """Whether the model judges each statement true (the logit of " true" above that of " false" at the
    last position of corpus.judged_claim(statement, speaker)) when scale * direction / ||direction|| is
    added to the residual stream after block `layer` at the last position only (one left-padded batch)."""
    prompts = [corpus.judged_claim(statement, speaker) for statement in statements]
    tokens = model.to_tokens(prompts, padding_side="left")
    push = scale * direction / direction.norm()

    def add_at_last_position(resid: Float[Tensor, "batch pos d_model"], hook: HookPoint) -> Tensor:
        resid[:, -1] += push.to(resid.device)
        return resid

    logits = model.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{layer}.hook_resid_post", add_at_last_position)])
    false_id, true_id = (corpus.single_token_id(model.tokenizer, word) for word in (" false", " true"))
    return (logits[:, -1, true_id] > logits[:, -1, false_id]).cpu()
