"""Reference solutions for 1.5.4 Superposition and toy SAEs (after Elhage et al. 2022, *Toy Models of
Superposition*, and Bricken et al. 2023, *Towards Monosemanticity*).

Sparse feature batches (independent, correlated and anticorrelated), the toy model x -> ReLU(W^T W x + b)
with an optional ReLU on its hidden layer, the importance-weighted loss and a training loop for many
instances at once, feature geometry (norms, superposition, dimensionality), neuron polysemanticity, and a sparse autoencoder on the toy model's hidden layer: its forward
pass with a normalised decoder, its loss, resampling of dead latents, TopK latents and how many of the
true features its decoder recovers. Importing this module has no side effects.
"""

import math
from collections.abc import Callable

import einops
import torch
from jaxtyping import Bool, Float
from torch import Tensor


def generate_feature_batch(
    n_batch: int, feature_probability: Float[Tensor, "instances features"], generator: torch.Generator
) -> Float[Tensor, "batch instances features"]:
    """A batch of sparse feature vectors for every instance: feature i of instance k is nonzero with
    probability feature_probability[k, i] (independently of the others), and a nonzero feature is drawn
    uniformly from [0, 1). All randomness comes from `generator`."""
    shape = (n_batch, *feature_probability.shape)
    values = torch.rand(shape, generator=generator)
    active = torch.rand(shape, generator=generator) < feature_probability
    return torch.where(active, values, torch.zeros(()))


def toy_forward(
    W: Float[Tensor, "instances hidden features"],
    b: Float[Tensor, "instances features"],
    x: Float[Tensor, "batch instances features"],
    relu_hidden: bool = False,
) -> Float[Tensor, "batch instances features"]:
    """The toy model of every instance: h = W x (then ReLU(h) if relu_hidden), output ReLU(W^T h + b)."""
    hidden = einops.einsum(W, x, "instances hidden features, batch instances features -> batch instances hidden")
    if relu_hidden:
        hidden = hidden.relu()
    out = einops.einsum(W, hidden, "instances hidden features, batch instances hidden -> batch instances features")
    return (out + b).relu()


def importance_weighted_loss(
    x: Float[Tensor, "batch instances features"],
    x_hat: Float[Tensor, "batch instances features"],
    importance: Float[Tensor, "instances features"],
) -> Float[Tensor, " instances"]:
    """Each instance's loss: the squared error of each feature times its importance, summed over the
    features and averaged over the batch."""
    return (importance * (x - x_hat).pow(2)).sum(-1).mean(0)


def train_toy_models(
    sample_batch: Callable[[int, torch.Generator], Float[Tensor, "batch instances features"]],
    importance: Float[Tensor, "instances features"],
    n_hidden: int,
    relu_hidden: bool,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
) -> tuple[Float[Tensor, "instances hidden features"], Float[Tensor, "instances features"]]:
    """Trains one toy model per instance, all at once, and returns their (W, b). W starts as a normal draw
    with standard deviation sqrt(2 / (n_hidden + n_features)) (Xavier) and b at zero; every step draws a
    fresh batch with sample_batch(batch_size, generator) and takes an Adam step (learning rate lr) on the
    sum over the instances of importance_weighted_loss. All randomness comes from one torch.Generator
    seeded with seed, made before W is drawn."""
    generator = torch.Generator().manual_seed(seed)
    n_instances, n_features = importance.shape
    std = math.sqrt(2 / (n_hidden + n_features))
    W = (torch.randn(n_instances, n_hidden, n_features, generator=generator) * std).requires_grad_()
    b = torch.zeros(n_instances, n_features, requires_grad=True)
    optimizer = torch.optim.Adam([W, b], lr=lr)
    with torch.enable_grad():  # the notebook may have gradients turned off
        for _ in range(steps):
            x = sample_batch(batch_size, generator)
            loss = importance_weighted_loss(x, toy_forward(W, b, x, relu_hidden), importance).sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return W.detach(), b.detach()


def feature_geometry(
    W: Float[Tensor, "instances hidden features"],
) -> tuple[Float[Tensor, "instances features"], Float[Tensor, "instances features"]]:
    """For every feature i of every instance: its norm ||W_i|| (W_i is column i), and how much other
    features share its direction, sum over j != i of (unit(W_i) . W_j)^2, where unit(W_i) = W_i / ||W_i||
    (0 for a feature whose column is zero)."""
    norms = W.norm(dim=1)
    unit = W / norms.clamp(min=1e-8)[:, None, :]
    overlaps = einops.einsum(unit, W, "instances hidden i, instances hidden j -> instances i j").pow(2)
    off_diagonal = overlaps * (1 - torch.eye(W.shape[-1]))
    return norms, off_diagonal.sum(-1)


def feature_dimensionality(W: Float[Tensor, "instances hidden features"]) -> Float[Tensor, "instances features"]:
    """Elhage et al.'s dimensionality of each feature: ||W_i||^2 / sum over all j (unit(W_i) . W_j)^2,
    the share of a hidden dimension the feature has to itself (1 alone, 1/2 in an antipodal pair, 2/5 in
    a pentagon). 0 for a feature whose column is zero."""
    norms = W.norm(dim=1)
    unit = W / norms.clamp(min=1e-8)[:, None, :]
    overlaps = einops.einsum(unit, W, "instances hidden i, instances hidden j -> instances i j").pow(2)
    return norms.pow(2) / overlaps.sum(-1).clamp(min=1e-8)


def generate_paired_batch(
    n_batch: int, n_instances: int, n_pairs: int, pair_probability: float, correlated: bool, generator: torch.Generator
) -> Float[Tensor, "batch instances features"]:
    """Sparse features in pairs (features 2p and 2p + 1 are pair p). Each pair of each instance is active
    with probability pair_probability, independently of the other pairs. If correlated, an active pair has
    both its features nonzero; if not (anticorrelated), exactly one of the two, each with probability 1/2.
    A nonzero feature is uniform on [0, 1). All randomness comes from `generator`."""
    shape = (n_batch, n_instances, n_pairs)
    values = torch.rand((*shape, 2), generator=generator)
    active = torch.rand(shape, generator=generator) < pair_probability
    if correlated:
        on = einops.repeat(active, "batch instances pairs -> batch instances pairs two", two=2)
    else:
        first = torch.rand(shape, generator=generator) < 0.5
        on = active[..., None] & torch.stack([first, ~first], dim=-1)
    return einops.rearrange(
        torch.where(on, values, torch.zeros(())), "batch instances pairs two -> batch instances (pairs two)"
    )


def neuron_top_share(W: Float[Tensor, "instances hidden features"]) -> Float[Tensor, "instances hidden"]:
    """For each hidden neuron: the share of its squared input weights W[k, n, :] that goes to its largest
    feature (1 for a neuron that reads one feature: monosemantic). 0 for a neuron with no weights."""
    squared = W.pow(2)
    return squared.max(-1).values / squared.sum(-1).clamp(min=1e-12)


def sae_forward(
    W_enc: Float[Tensor, "d_in d_sae"],
    b_enc: Float[Tensor, " d_sae"],
    W_dec: Float[Tensor, "d_sae d_in"],
    b_dec: Float[Tensor, " d_in"],
    h: Float[Tensor, "batch d_in"],
) -> tuple[Float[Tensor, "batch d_sae"], Float[Tensor, "batch d_in"]]:
    """The latents ReLU((h - b_dec) @ W_enc + b_enc) and the reconstruction latents @ unit(W_dec) + b_dec,
    where unit(W_dec) rescales each decoder row to norm 1 (so the L1 penalty cannot be dodged by
    shrinking the latents and growing the decoder)."""
    latents = ((h - b_dec) @ W_enc + b_enc).relu()
    unit_decoder = W_dec / W_dec.norm(dim=-1, keepdim=True).clamp(min=1e-8)
    return latents, latents @ unit_decoder + b_dec


def sae_loss(
    h: Float[Tensor, "batch d_in"],
    latents: Float[Tensor, "batch d_sae"],
    reconstruction: Float[Tensor, "batch d_in"],
    l1_coefficient: float,
) -> Float[Tensor, " batch"]:
    """Each input's SAE loss: the squared reconstruction error summed over d_in, plus l1_coefficient
    times the L1 norm of its latents."""
    return (h - reconstruction).pow(2).sum(-1) + l1_coefficient * latents.abs().sum(-1)


def resample_dead_latents(
    W_enc: Float[Tensor, "d_in d_sae"],
    b_enc: Float[Tensor, " d_sae"],
    W_dec: Float[Tensor, "d_sae d_in"],
    b_dec: Float[Tensor, " d_in"],
    h: Float[Tensor, "batch d_in"],
    losses: Float[Tensor, " batch"],
    dead: Bool[Tensor, " d_sae"],
    generator: torch.Generator,
) -> tuple[Float[Tensor, "d_in d_sae"], Float[Tensor, " d_sae"], Float[Tensor, "d_sae d_in"]]:
    """New (W_enc, b_enc, W_dec) after Bricken et al.'s resampling of the dead latents; the live ones
    keep their weights, and the inputs are not changed. For the dead latents in order, draw inputs
    h[j] with torch.multinomial(losses ** 2, n_dead, replacement=True, generator=generator) (inputs the
    SAE reconstructs badly are likelier), and for each: its decoder row becomes unit(h[j] - b_dec); its
    encoder column the same direction, with norm 0.2 times the mean norm of the live latents' encoder
    columns (1 if none is live); its encoder bias 0."""
    W_enc, b_enc, W_dec = W_enc.clone(), b_enc.clone(), W_dec.clone()
    n_dead = int(dead.sum())
    if n_dead == 0:
        return W_enc, b_enc, W_dec
    chosen = torch.multinomial(losses.pow(2), n_dead, replacement=True, generator=generator)
    directions = h[chosen] - b_dec
    directions = directions / directions.norm(dim=-1, keepdim=True).clamp(min=1e-8)
    live_norm = W_enc[:, ~dead].norm(dim=0).mean() if (~dead).any() else torch.tensor(1.0)
    W_dec[dead] = directions
    W_enc[:, dead] = directions.T * 0.2 * live_norm
    b_enc[dead] = 0.0
    return W_enc, b_enc, W_dec


def topk_latents(pre_activations: Float[Tensor, "batch d_sae"], k: int) -> Float[Tensor, "batch d_sae"]:
    """TopK latents: each input keeps its k largest pre-activations, passed through a ReLU (a negative one
    among them becomes 0), and every other latent is 0."""
    top = pre_activations.topk(k, dim=-1)
    return torch.zeros_like(pre_activations).scatter(-1, top.indices, top.values.relu())


def feature_recovery(
    true_directions: Float[Tensor, "d_in features"], W_dec: Float[Tensor, "d_sae d_in"]
) -> Float[Tensor, " features"]:
    """For each true feature direction (a column), the largest cosine similarity it has with any decoder
    row. A sign counts: a decoder row pointing the opposite way does not recover the feature."""
    true_unit = true_directions / true_directions.norm(dim=0, keepdim=True).clamp(min=1e-8)
    decoder_unit = W_dec / W_dec.norm(dim=-1, keepdim=True).clamp(min=1e-8)
    return (decoder_unit @ true_unit).max(dim=0).values


def train_sae(
    sample_h: Callable[[int, torch.Generator], Float[Tensor, "batch d_in"]],
    d_in: int,
    d_sae: int,
    l1_coefficient: float,
    k: int | None,
    steps: int,
    batch_size: int,
    lr: float,
    resample_every: int | None,
    seed: int,
) -> dict[str, Tensor]:
    """Trains a sparse autoencoder on batches sample_h(batch_size, generator) and returns its weights
    {"W_enc", "b_enc", "W_dec", "b_dec"}, with the decoder rows rescaled to unit norm.

    All randomness comes from one torch.Generator seeded with seed. The decoder rows start as normalised
    normal draws, W_enc as W_dec's transpose, the biases at zero. Each step takes an Adam step (learning
    rate lr) on the batch mean of sae_loss, with the latents and reconstruction of sae_forward, or, if k
    is given, with topk_latents of the same pre-activations decoded the same way. If resample_every is
    given, then every resample_every steps in the first half of training, the latents that were not
    positive on any input since the last such check are resampled (resample_dead_latents, on the last
    batch and its losses) and Adam's state is reset; the record of which latents fired restarts."""
    generator = torch.Generator().manual_seed(seed)
    W_dec = torch.randn(d_sae, d_in, generator=generator)
    W_dec = W_dec / W_dec.norm(dim=-1, keepdim=True)
    params = {"W_enc": W_dec.T.clone(), "b_enc": torch.zeros(d_sae), "W_dec": W_dec, "b_dec": torch.zeros(d_in)}
    for param in params.values():
        param.requires_grad_()
    optimizer = torch.optim.Adam(params.values(), lr=lr)
    fired = torch.zeros(d_sae, dtype=torch.bool)
    with torch.enable_grad():  # the notebook may have gradients turned off
        for step in range(1, steps + 1):
            h = sample_h(batch_size, generator)
            if k is None:
                latents, reconstruction = sae_forward(**params, h=h)
            else:
                pre_activations = (h - params["b_dec"]) @ params["W_enc"] + params["b_enc"]
                latents = topk_latents(pre_activations, k)
                unit_decoder = params["W_dec"] / params["W_dec"].norm(dim=-1, keepdim=True)
                reconstruction = latents @ unit_decoder + params["b_dec"]
            losses = sae_loss(h, latents, reconstruction, l1_coefficient)
            optimizer.zero_grad()
            losses.mean().backward()
            optimizer.step()
            fired |= (latents > 0).any(0)
            if resample_every is not None and step % resample_every == 0:
                if step <= steps // 2 and not fired.all():
                    with torch.no_grad():
                        new = resample_dead_latents(
                            **params, h=h, losses=losses.detach(), dead=~fired, generator=generator
                        )
                        for name, value in zip(("W_enc", "b_enc", "W_dec"), new):
                            params[name].copy_(value)
                    optimizer = torch.optim.Adam(params.values(), lr=lr)
                fired = torch.zeros(d_sae, dtype=torch.bool)
    weights = {name: param.detach() for name, param in params.items()}
    weights["W_dec"] = weights["W_dec"] / weights["W_dec"].norm(dim=-1, keepdim=True)
    return weights
