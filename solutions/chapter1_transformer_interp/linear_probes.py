"""Reference solutions for 1.3.1 Linear probes (after Marks & Tegmark 2023, *The Geometry of Truth*).

Verdict logit differences, residual-stream activations at chosen positions, PCA, balanced accuracy,
mass-mean probes (plain and covariance-adjusted), a logistic-regression probe trained in torch, a
layer sweep, a cross-family generalisation matrix, and the causal test that adds a direction to the
residual stream. Importing this module has no side effects.
"""

from collections.abc import Callable

import torch
from jaxtyping import Bool, Float
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.hook_points import HookPoint


def verdict_logit_diff(model: HookedTransformer, prompts: list[str]) -> Float[Tensor, " batch"]:
    """The logit of " true" minus the logit of " false" for the token after each prompt.

    Prompts of different lengths are padded on the left, so each one ends at position -1."""
    tokens = model.to_tokens(prompts, padding_side="left")
    final = model(tokens)[:, -1]
    return (final[:, model.to_single_token(" true")] - final[:, model.to_single_token(" false")]).cpu()


def cache_activations(
    model: HookedTransformer, prompts: list[str], positions: list[int]
) -> Float[Tensor, "layer position batch d_model"]:
    """The residual stream after every block (hook_resid_post), at each of `positions` counted from the
    end of each prompt (-1 is its last token; prompts are left-padded), from one forward pass."""
    tokens = model.to_tokens(prompts, padding_side="left")
    _, cache = model.run_with_cache(tokens, names_filter=lambda name: name.endswith("hook_resid_post"))
    per_layer = [cache["resid_post", layer][:, positions] for layer in range(model.cfg.n_layers)]
    return torch.stack(per_layer).transpose(1, 2).cpu()


def pca_components(acts: Float[Tensor, "batch d_model"], k: int) -> Float[Tensor, "k d_model"]:
    """The top k principal directions of acts (unit vectors, the direction of most variance first).

    Each direction's sign is arbitrary."""
    centred = acts - acts.mean(0)
    return torch.linalg.svd(centred, full_matrices=False).Vh[:k]


def balanced_accuracy(predictions: Bool[Tensor, " batch"], labels: Bool[Tensor, " batch"]) -> float:
    """The mean of the accuracy on the true statements and the accuracy on the false ones.

    Always predicting one class scores 0.5, however unequal the classes are."""
    on_true = predictions[labels].float().mean()
    on_false = (~predictions[~labels]).float().mean()
    return (0.5 * (on_true + on_false)).item()


def mass_mean_probe(
    acts: Float[Tensor, "batch d_model"], labels: Bool[Tensor, " batch"]
) -> tuple[Float[Tensor, " d_model"], float]:
    """The mass-mean probe: the direction from the mean of the false statements to the mean of the true
    ones, and the bias that puts the decision boundary halfway between the two means."""
    mean_true, mean_false = acts[labels].mean(0), acts[~labels].mean(0)
    direction = mean_true - mean_false
    return direction, -(direction @ (mean_true + mean_false) / 2).item()


def iid_mass_mean_probe(
    acts: Float[Tensor, "batch d_model"], labels: Bool[Tensor, " batch"], ridge: float = 0.1
) -> tuple[Float[Tensor, " d_model"], float]:
    """The covariance-adjusted ("IID") mass-mean probe: Sigma^-1 (mean_true - mean_false), where Sigma is
    the covariance of the activations after subtracting each statement's class mean (divided by the
    number of statements), plus ridge * (the mean of Sigma's diagonal) on the diagonal so it inverts.
    The bias puts the decision boundary halfway between the two class means."""
    mean_true, mean_false = acts[labels].mean(0), acts[~labels].mean(0)
    centred = acts - torch.where(labels[:, None], mean_true, mean_false)
    sigma = centred.T @ centred / len(acts)
    sigma = sigma + ridge * sigma.diagonal().mean() * torch.eye(len(sigma))
    direction = torch.linalg.solve(sigma, mean_true - mean_false)
    return direction, -(direction @ (mean_true + mean_false) / 2).item()


def logistic_probe_loss(
    acts: Float[Tensor, "batch d_model"],
    labels: Bool[Tensor, " batch"],
    direction: Float[Tensor, " d_model"],
    bias: Float[Tensor, ""],
    l2: float,
) -> Float[Tensor, ""]:
    """Class-balanced logistic loss of the probe sigmoid(acts @ direction + bias): the mean binary
    cross-entropy over the true statements and the mean over the false ones, averaged, plus
    l2 / 2 * |direction|^2 (the bias is not penalised)."""
    losses = torch.nn.functional.binary_cross_entropy_with_logits(
        acts @ direction + bias, labels.float(), reduction="none"
    )
    return 0.5 * (losses[labels].mean() + losses[~labels].mean()) + l2 / 2 * direction.pow(2).sum()


def train_logistic_probe(
    acts: Float[Tensor, "batch d_model"], labels: Bool[Tensor, " batch"], l2: float = 1e-2
) -> tuple[Float[Tensor, " d_model"], float]:
    """The logistic-regression probe that minimises logistic_probe_loss (a convex loss with one
    minimum), trained in torch from zero weights."""
    direction = torch.zeros(acts.shape[1], requires_grad=True)
    bias = torch.zeros((), requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [direction, bias], max_iter=500, tolerance_grad=1e-7, tolerance_change=1e-10, line_search_fn="strong_wolfe"
    )

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = logistic_probe_loss(acts, labels, direction, bias, l2)
        loss.backward()
        return loss

    with torch.enable_grad():  # the notebook turns gradients off for reading the model
        optimizer.step(closure)
    return direction.detach(), bias.item()


def layer_sweep(
    acts: Float[Tensor, "layer batch d_model"],
    labels: Bool[Tensor, " batch"],
    train_mask: Bool[Tensor, " batch"],
    fit: Callable[[Tensor, Tensor], tuple[Tensor, float]],
) -> Float[Tensor, " layer"]:
    """For each layer: fit a probe with fit(acts, labels) on the statements in train_mask, and return
    its balanced accuracy on the others."""
    accuracies = []
    for layer_acts in acts:
        direction, bias = fit(layer_acts[train_mask], labels[train_mask])
        predictions = layer_acts[~train_mask] @ direction + bias > 0
        accuracies.append(balanced_accuracy(predictions, labels[~train_mask]))
    return torch.tensor(accuracies)


def generalisation_matrix(
    acts: dict[str, Float[Tensor, "batch d_model"]],
    labels: dict[str, Bool[Tensor, " batch"]],
    train_masks: dict[str, Bool[Tensor, " batch"]],
    fit: Callable[[Tensor, Tensor], tuple[Tensor, float]],
) -> Float[Tensor, "train_family test_family"]:
    """Entry [i, j]: the balanced accuracy on family j's statements outside its train mask, of a probe
    fitted with fit(acts, labels) on family i's statements in its train mask (families in dict order)."""
    matrix = torch.zeros(len(acts), len(acts))
    for i, train in enumerate(acts):
        mask = train_masks[train]
        direction, bias = fit(acts[train][mask], labels[train][mask])
        for j, test in enumerate(acts):
            held_out = ~train_masks[test]
            predictions = acts[test][held_out] @ direction + bias > 0
            matrix[i, j] = balanced_accuracy(predictions, labels[test][held_out])
    return matrix


def steered_logit_diff(
    model: HookedTransformer,
    prompts: list[str],
    direction: Float[Tensor, " d_model"],
    layer: int,
    position: int,
) -> Float[Tensor, " batch"]:
    """verdict_logit_diff with `direction` added to the residual stream after block `layer`
    (hook_resid_post) at `position`, counted from the end of each (left-padded) prompt."""

    def add_direction(resid: Float[Tensor, "batch pos d_model"], hook: HookPoint) -> Float[Tensor, "batch pos d_model"]:
        resid = resid.clone()  # edit a copy: other views of the hook's input stay as they were
        resid[:, position] += direction.to(resid.device)
        return resid

    tokens = model.to_tokens(prompts, padding_side="left")
    final = model.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{layer}.hook_resid_post", add_direction)])[:, -1]
    return (final[:, model.to_single_token(" true")] - final[:, model.to_single_token(" false")]).cpu()


def random_direction_like(direction: Float[Tensor, " d_model"], seed: int) -> Float[Tensor, " d_model"]:
    """A direction drawn uniformly at random (a seeded standard normal draw, rescaled) with the same norm
    as `direction`: the control for a causal test. The same seed gives the same direction."""
    draw = torch.randn(direction.shape, generator=torch.Generator().manual_seed(seed))
    return draw / draw.norm() * direction.norm()
