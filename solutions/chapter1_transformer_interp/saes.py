"""Reference solutions for 1.3.3 Sparse autoencoders with SAELens.

Encoding and decoding by hand, reconstruction measured inside the model, latent densities, max-activating
examples, logit effects, ground-truth interpretation by precision and recall, steering with a latent,
ablation against attribution patching, and a small SAE (ReLU + L1 or TopK) trained by hand. Importing
this module has no side effects.
"""

from collections.abc import Callable

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor, nn
from transformer_lens import HookedTransformer
from transformer_lens.hook_points import HookPoint


def standard_encode(
    x: Float[Tensor, "... d_in"],
    W_enc: Float[Tensor, "d_in d_sae"],
    b_enc: Float[Tensor, " d_sae"],
    b_dec: Float[Tensor, " d_in"],
) -> Float[Tensor, "... d_sae"]:
    """Latent activations of a ReLU SAE: ReLU((x - b_dec) @ W_enc + b_enc)."""
    return torch.relu((x - b_dec) @ W_enc + b_enc)


def topk_encode(
    x: Float[Tensor, "... d_in"],
    W_enc: Float[Tensor, "d_in d_sae"],
    b_enc: Float[Tensor, " d_sae"],
    b_dec: Float[Tensor, " d_in"],
    k: int,
) -> Float[Tensor, "... d_sae"]:
    """Latent activations of a TopK SAE: of each input's pre-activations (x - b_dec) @ W_enc + b_enc, keep
    the k largest (passed through a ReLU, so a negative one among them becomes 0) and set the rest to 0."""
    pre = (x - b_dec) @ W_enc + b_enc
    top = pre.topk(k, dim=-1)
    return torch.zeros_like(pre).scatter(-1, top.indices, top.values.relu())


def reconstruction_stats(
    x: Float[Tensor, "n d_in"], x_hat: Float[Tensor, "n d_in"], acts: Float[Tensor, "n d_sae"]
) -> dict[str, float]:
    """How well an SAE reconstructs n inputs: "mse", the squared error summed over d_in and averaged over
    inputs; "explained_variance", 1 - that error over the inputs' total variance (squared distance from
    their mean, summed over d_in and averaged over inputs); "l0", the mean number of active latents (> 0)."""
    mse = (x - x_hat).pow(2).sum(-1).mean()
    variance = (x - x.mean(0)).pow(2).sum(-1).mean()
    return {
        "mse": mse.item(),
        "explained_variance": (1 - mse / variance).item(),
        "l0": (acts > 0).sum(-1).float().mean().item(),
    }


def spliced_losses(model: HookedTransformer, sae: nn.Module, tokens: Int[Tensor, "batch pos"]) -> dict[str, float]:
    """The model's mean next-token loss on tokens: "clean"; "spliced", with the activation at the SAE's
    hook (sae.cfg.metadata.hook_name) replaced by the SAE's reconstruction sae(activation); "zero_ablated",
    with that activation replaced by zeros; and "loss_recovered", (zero_ablated - spliced) /
    (zero_ablated - clean): 1 when the reconstruction is as good as the real activation, 0 when it is
    no better than nothing. BOS positions keep their activation throughout (the SAE was not trained on
    them)."""
    is_bos = (tokens == model.tokenizer.bos_token_id)[..., None]

    def loss_with(replace: Callable[[Tensor], Tensor]) -> float:
        hook = lambda activation, hook: torch.where(is_bos, activation, replace(activation))  # noqa: E731
        return model.run_with_hooks(tokens, return_type="loss", fwd_hooks=[(sae.cfg.metadata.hook_name, hook)]).item()

    clean = model(tokens, return_type="loss").item()
    spliced, zero_ablated = loss_with(sae), loss_with(torch.zeros_like)
    recovered = (zero_ablated - spliced) / (zero_ablated - clean)
    return {"clean": clean, "spliced": spliced, "zero_ablated": zero_ablated, "loss_recovered": recovered}


def latent_density(acts: Float[Tensor, "... d_sae"]) -> Float[Tensor, " d_sae"]:
    """The fraction of inputs (every position of every sequence) on which each latent is active (> 0)."""
    return (acts > 0).flatten(0, -2).float().mean(0)


def top_activations(acts: Float[Tensor, "batch pos"], k: int, buffer: int) -> Int[Tensor, "k 2"]:
    """The (batch, position) pairs of the k largest activations, largest first, among the positions that
    have at least `buffer` positions before them and after them (so each has a full context window)."""
    inner = acts[:, buffer : acts.shape[1] - buffer]
    flat = inner.flatten().topk(k).indices
    rows, columns = flat // inner.shape[1], flat % inner.shape[1]
    return torch.stack([rows, columns + buffer], dim=-1)


def latent_logit_effects(
    W_dec: Float[Tensor, "d_sae d_model"], W_U: Float[Tensor, "d_model d_vocab"], latent: int, k: int
) -> tuple[Int[Tensor, " k"], Int[Tensor, " k"]]:
    """The ids of the k tokens whose logits the latent's decoder direction raises most, and of the k it
    lowers most, through W_U (each list ordered from the strongest effect)."""
    effects = W_dec[latent] @ W_U
    return effects.topk(k).indices, (-effects).topk(k).indices


def concept_precision_recall(
    acts: Float[Tensor, "n d_sae"], labels: Bool[Tensor, " n"]
) -> tuple[Float[Tensor, " d_sae"], Float[Tensor, " d_sae"]]:
    """Each latent read as the claim "this latent detects the concept": its precision (the share of the
    inputs where it fires, > 0, that carry the concept) and its recall (the share of the concept's inputs
    where it fires). A latent that never fires has precision 0."""
    fires = (acts > 0).float()
    both = (fires * labels[:, None].float()).sum(0)
    precision = both / fires.sum(0).clamp(min=1)
    recall = both / labels.sum().clamp(min=1)
    return precision, recall


def best_latent_for_concept(acts: Float[Tensor, "n d_sae"], labels: Bool[Tensor, " n"]) -> tuple[int, float]:
    """The latent whose claim to detect the concept has the highest F1 score (the harmonic mean of its
    precision and recall; 0 where both are 0), and that score."""
    precision, recall = concept_precision_recall(acts, labels)
    f1 = 2 * precision * recall / (precision + recall).clamp(min=1e-12)
    best = int(f1.argmax())
    return best, f1[best].item()


def steering_hook(
    activation: Float[Tensor, "batch pos d_model"], hook: HookPoint, direction: Float[Tensor, " d_model"], scale: float
) -> Float[Tensor, "batch pos d_model"]:
    """The activation with scale * direction added at every position."""
    return activation + scale * direction


def steered_probability(
    model: HookedTransformer,
    prompts: list[str],
    hook_name: str,
    direction: Float[Tensor, " d_model"],
    scales: list[float],
    token_ids: Int[Tensor, " n_tokens"],
) -> Float[Tensor, " n_scales"]:
    """For each scale, the probability the model puts on token_ids (summed over them) as the next token
    after each prompt, averaged over prompts, with scale * direction added at hook_name at every position.
    Prompts are left-padded so that each ends at the last position."""
    tokens = model.to_tokens(prompts, padding_side="left")
    results = []
    for scale in scales:
        hook = lambda activation, hook, scale=scale: steering_hook(activation, hook, direction, scale)  # noqa: E731
        logits = model.run_with_hooks(tokens, fwd_hooks=[(hook_name, hook)])[:, -1]
        results.append(logits.softmax(-1)[:, token_ids].sum(-1).mean())
    return torch.stack(results)


def latent_ablation_effects(
    model: HookedTransformer,
    sae: nn.Module,
    tokens: Int[Tensor, "batch pos"],
    metric: Callable[[Float[Tensor, "batch pos d_vocab"]], Float[Tensor, ""]],
    latents: list[int],
) -> Float[Tensor, " n_latents"]:
    """For each latent, how much zeroing it at every position after the BOS (position 0) changes
    metric(logits): metric with the latent ablated minus metric without. The SAE is spliced in at its hook
    with its error term (the activation minus its reconstruction) added back, so that without an ablation
    the model is unchanged."""

    def splice(ablated: int | None) -> Callable:
        def hook(activation: Tensor, hook: HookPoint) -> Tensor:
            acts = sae.encode(activation)
            error = activation - sae.decode(acts)
            if ablated is not None:
                acts = acts.clone()
                acts[:, 1:, ablated] = 0.0
            return sae.decode(acts) + error

        return hook

    hook_name = sae.cfg.metadata.hook_name
    clean = metric(model.run_with_hooks(tokens, fwd_hooks=[(hook_name, splice(None))]))
    effects = [metric(model.run_with_hooks(tokens, fwd_hooks=[(hook_name, splice(latent))])) for latent in latents]
    return torch.stack(effects) - clean


def latent_attributions(
    model: HookedTransformer,
    sae: nn.Module,
    tokens: Int[Tensor, "batch pos"],
    metric: Callable[[Float[Tensor, "batch pos d_vocab"]], Float[Tensor, ""]],
) -> Float[Tensor, " d_sae"]:
    """Attribution patching: a first-order estimate of every latent's ablation effect on metric(logits),
    from one forward and one backward pass. Zeroing a latent changes its activation by -activation, so the
    estimate is -(gradient of the metric with respect to the activation) * activation, summed over every
    position after the BOS (position 0) of every sequence. The SAE is spliced in with its error term, as
    for the real ablation."""
    saved = {}

    def splice(activation: Tensor, hook: HookPoint) -> Tensor:
        acts = sae.encode(activation)
        acts.retain_grad()
        saved["acts"] = acts
        return sae.decode(acts) + (activation - sae.decode(acts)).detach()

    with torch.enable_grad():
        metric(model.run_with_hooks(tokens, fwd_hooks=[(sae.cfg.metadata.hook_name, splice)])).backward()
    acts = saved["acts"]
    return -(acts.grad * acts)[:, 1:].sum((0, 1)).detach()


class SparseAutoencoder(nn.Module):
    """A sparse autoencoder with ReLU latents (k=None) or TopK latents (each input keeps its k largest)."""

    def __init__(self, d_in: int, d_sae: int, k: int | None = None):
        """Decoder rows W_dec[i] are random unit vectors, the encoder W_enc starts as the decoder's transpose,
        and both biases start at zero."""
        super().__init__()
        W_dec = torch.randn(d_sae, d_in)
        W_dec /= W_dec.norm(dim=-1, keepdim=True)
        self.W_dec = nn.Parameter(W_dec)
        self.W_enc = nn.Parameter(W_dec.T.clone())
        self.b_enc = nn.Parameter(torch.zeros(d_sae))
        self.b_dec = nn.Parameter(torch.zeros(d_in))
        self.k = k

    def forward(
        self, x: Float[Tensor, "batch d_in"]
    ) -> tuple[Float[Tensor, "batch d_in"], Float[Tensor, "batch d_sae"]]:
        """The reconstruction acts @ W_dec + b_dec, and the latent activations acts."""
        if self.k is None:
            acts = standard_encode(x, self.W_enc, self.b_enc, self.b_dec)
        else:
            acts = topk_encode(x, self.W_enc, self.b_enc, self.b_dec, self.k)
        return acts @ self.W_dec + self.b_dec, acts


def sae_loss(
    x: Float[Tensor, "batch d_in"],
    x_hat: Float[Tensor, "batch d_in"],
    acts: Float[Tensor, "batch d_sae"],
    l1_coefficient: float,
) -> Float[Tensor, ""]:
    """The training loss: squared reconstruction error (summed over d_in) plus l1_coefficient times the
    L1 norm of the latent activations, both averaged over the batch."""
    return (x - x_hat).pow(2).sum(-1).mean() + l1_coefficient * acts.abs().sum(-1).mean()


def train_sae(
    activations: Float[Tensor, "n d_in"],
    d_sae: int,
    k: int | None = None,
    l1_coefficient: float = 0.0,
    steps: int = 150,
    batch_size: int = 256,
    lr: float = 1e-2,
    seed: int = 0,
) -> SparseAutoencoder:
    """A SparseAutoencoder trained on activations with Adam for `steps` steps, each on batch_size rows drawn
    at random, minimising sae_loss. b_dec starts at the activations' mean. After every step the decoder
    rows are rescaled to unit norm: otherwise the L1 penalty is dodged by shrinking the latents while
    the decoder grows. Seeded: the same seed trains the same SAE."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    sae = SparseAutoencoder(activations.shape[1], d_sae, k)
    with torch.no_grad():
        sae.b_dec.copy_(activations.mean(0))
    optimizer = torch.optim.Adam(sae.parameters(), lr=lr)
    with torch.enable_grad():
        for _ in range(steps):
            batch = activations[torch.randint(len(activations), (batch_size,), generator=generator)]
            x_hat, acts = sae(batch)
            loss = sae_loss(batch, x_hat, acts, l1_coefficient)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                sae.W_dec /= sae.W_dec.norm(dim=-1, keepdim=True)
    return sae
