"""Reference solutions for 1.2 Intro to mechanistic interpretability.

Head detectors, induction scores, zero- and mean-ablation hooks, a hook that rewrites attention scores,
direct logit attribution, and the weight-based QK, OV, positional and composition circuits. Importing this
module has no side effects.
"""

from functools import partial

import einops
import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import FactoredMatrix, HookedTransformer
from transformer_lens.hook_points import HookPoint


def current_token_scores(pattern: Float[Tensor, "batch head query key"]) -> Float[Tensor, " head"]:
    """Mean attention each head pays from a position to itself (over batch and every query)."""
    return pattern.diagonal(dim1=-2, dim2=-1).mean((0, -1))


def previous_token_scores(pattern: Float[Tensor, "batch head query key"]) -> Float[Tensor, " head"]:
    """Mean attention from each position to the one before it (queries 1 onwards)."""
    return pattern.diagonal(offset=-1, dim1=-2, dim2=-1).mean((0, -1))


def first_token_scores(pattern: Float[Tensor, "batch head query key"]) -> Float[Tensor, " head"]:
    """Mean attention from each position to position 0 (the BOS), over batch and every query."""
    return pattern[..., 0].mean((0, -1))


def heads_above(scores: Float[Tensor, "layer head"], threshold: float) -> list[str]:
    """Names "L{layer}H{head}" of the heads whose score is strictly above threshold, in layer then head order."""
    return [f"L{layer}H{head}" for layer, head in (scores > threshold).nonzero().tolist()]


def generate_repeated_tokens(
    token_ids: Int[Tensor, " n_ids"], n_sequences: int, half_len: int, bos_token_id: int, seed: int = 0
) -> Int[Tensor, "n_sequences 1+2*half_len"]:
    """BOS, then half_len tokens drawn uniformly at random from token_ids, then the same tokens again.

    Each sequence gets its own draw; the same seed gives the same sequences, whatever the global random state."""
    generator = torch.Generator().manual_seed(seed)
    half = token_ids[torch.randint(len(token_ids), (n_sequences, half_len), generator=generator)]
    bos = torch.full((n_sequences, 1), bos_token_id, dtype=token_ids.dtype)
    return torch.cat([bos, half, half], dim=1)


def token_log_probs(
    logits: Float[Tensor, "batch pos d_vocab"], tokens: Int[Tensor, "batch pos"]
) -> Float[Tensor, "batch pos-1"]:
    """Log-probability the model gave to each actual next token: entry [b, p] is for tokens[b, p + 1]."""
    log_probs = logits[:, :-1].log_softmax(dim=-1)
    return log_probs.gather(-1, tokens[:, 1:, None])[..., 0]


def induction_scores(pattern: Float[Tensor, "batch head query key"], half_len: int) -> Float[Tensor, " head"]:
    """Mean attention from each token of the repeated half to the token just after its first copy.

    Sequences are BOS + half + half, so the query at position p (p > half_len) sees its token's
    first copy at p - half_len and the induction target at p - half_len + 1."""
    diagonal = pattern.diagonal(offset=-(half_len - 1), dim1=-2, dim2=-1)  # queries half_len - 1 onwards
    return diagonal[..., 2:].mean((0, -1))


def induction_scores_by_token(
    pattern: Float[Tensor, "batch head query key"], tokens: Int[Tensor, "batch pos"]
) -> Float[Tensor, " head"]:
    """Induction scores for any sequences: the attention each query pays, in total, to the positions just
    after earlier occurrences of its own token, averaged over every query in the batch whose token occurred
    before. Every score is 0 when no token repeats."""
    n = tokens.shape[-1]
    same = tokens[:, :, None] == tokens[:, None, :]  # [batch, query, position]
    earlier = same & torch.ones(n, n, dtype=torch.bool, device=tokens.device).tril(-1)
    targets = torch.zeros_like(earlier)
    targets[..., 1:] = earlier[..., :-1]  # the key after an earlier occurrence (it may be the query itself)
    has_earlier = earlier.any(-1)  # [batch, query]
    attention = (pattern * targets[:, None]).sum(-1)  # [batch, head, query]
    return (attention * has_earlier[:, None]).sum((0, -1)) / has_earlier.sum().clamp(min=1)


def ablate_head_hook(
    z: Float[Tensor, "batch pos head d_head"], hook: HookPoint, head_index: int
) -> Float[Tensor, "batch pos head d_head"]:
    """A hook on hook_z that zeroes one head's output at every position."""
    z[:, :, head_index] = 0.0
    return z


def mean_ablate_head_hook(
    z: Float[Tensor, "batch pos head d_head"],
    hook: HookPoint,
    head_index: int,
    mean_z: Float[Tensor, "pos head d_head"],
) -> Float[Tensor, "batch pos head d_head"]:
    """A hook on hook_z that replaces one head's output, in every sequence, by its mean at that position
    (mean_z holds every head's mean output at each position, taken over a batch)."""
    z[:, :, head_index] = mean_z[:, head_index]
    return z


def mean_ablation_effects(
    model: HookedTransformer, tokens: Int[Tensor, "batch 1+2*half_len"], half_len: int
) -> Float[Tensor, "layer head"]:
    """For every head: how much the mean loss on the repeated half of these sequences rises when that head
    alone is mean-ablated, with its mean output over this batch at each position."""
    _, cache = model.run_with_cache(tokens, names_filter=lambda name: name.endswith("hook_z"))

    def repeat_loss(hooks) -> float:
        logits = model.run_with_hooks(tokens, fwd_hooks=hooks)
        return -token_log_probs(logits, tokens)[:, half_len:].mean().item()

    clean = repeat_loss([])
    effects = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    for layer in range(model.cfg.n_layers):
        mean_z = cache["z", layer].mean(0)
        for head in range(model.cfg.n_heads):
            hook = partial(mean_ablate_head_hook, head_index=head, mean_z=mean_z)
            effects[layer, head] = repeat_loss([(f"blocks.{layer}.attn.hook_z", hook)]) - clean
    return effects


def force_attention_hook(
    scores: Float[Tensor, "batch head query key"], hook: HookPoint, head_index: int, offset: int
) -> Float[Tensor, "batch head query key"]:
    """A hook on hook_attn_scores that makes one head attend only to the key `offset` positions before each
    query. Queries with no such key (the first `offset`) keep their scores, and other heads are untouched."""
    query = torch.arange(scores.shape[-2], device=scores.device)[:, None]
    key = torch.arange(scores.shape[-1], device=scores.device)
    keep = (key == query - offset) | (query < offset)
    scores[:, head_index] = scores[:, head_index].masked_fill(~keep, float("-inf"))
    return scores


def direct_logit_attribution(
    components: Float[Tensor, "component pos d_model"],
    W_U: Float[Tensor, "d_model d_vocab"],
    next_tokens: Int[Tensor, " pos"],
) -> Float[Tensor, "component pos"]:
    """How much each (already layer-normed) component adds, at each position, to the logit of the
    token that comes next at that position."""
    return einops.einsum(components, W_U[:, next_tokens], "component pos d_model, d_model pos -> component pos")


def full_ov_circuit(
    W_E: Float[Tensor, "d_vocab d_model"],
    W_V: Float[Tensor, "d_model d_head"],
    W_O: Float[Tensor, "d_head d_model"],
    W_U: Float[Tensor, "d_model d_vocab"],
) -> FactoredMatrix:
    """A head's OV circuit from token embeddings to logits, as a FactoredMatrix whose inner dimension is
    d_head (never formed in full): entry [s, d] is how much attending to token s raises the logit of token d."""
    return FactoredMatrix(W_E @ W_V, W_O @ W_U)


def full_qk_circuit(
    W_E: Float[Tensor, "d_vocab d_model"],
    W_Q: Float[Tensor, "d_model d_head"],
    W_K: Float[Tensor, "d_model d_head"],
) -> FactoredMatrix:
    """A head's QK circuit on token embeddings, as a FactoredMatrix whose inner dimension is d_head:
    entry [q, k] is the (unscaled) attention score a query token q gives a key token k."""
    return FactoredMatrix(W_E @ W_Q, (W_E @ W_K).T)


def positional_qk_circuit(
    W_pos: Float[Tensor, "pos d_model"], W_Q: Float[Tensor, "d_model d_head"], W_K: Float[Tensor, "d_model d_head"]
) -> Float[Tensor, "query_pos key_pos"]:
    """The (unscaled) attention score a head gives each key position from each query position when its
    queries and keys see only the position embeddings; keys after the query are masked to -inf."""
    scores = (W_pos @ W_Q) @ (W_pos @ W_K).T
    n = W_pos.shape[0]
    future = ~torch.ones(n, n, dtype=torch.bool, device=W_pos.device).tril()
    return scores.masked_fill(future, float("-inf"))


def composition_score(
    W_A: Float[Tensor, "d_model d_model"], W_B: Float[Tensor, "d_model d_model"]
) -> Float[Tensor, ""]:
    """How much of what W_A writes W_B reads: the Frobenius norm of their product, relative to the norms
    of the two."""
    return torch.linalg.matrix_norm(W_A @ W_B) / (torch.linalg.matrix_norm(W_A) * torch.linalg.matrix_norm(W_B))


def composition_scores(
    W_OV_first: Float[Tensor, "head_first d_model d_model"],
    W_QK_second: Float[Tensor, "head_second d_model d_model"],
    W_OV_second: Float[Tensor, "head_second d_model d_model"],
) -> dict[str, Float[Tensor, "head_first head_second"]]:
    """Q-, K- and V-composition scores (keys "Q", "K", "V") of every head of an earlier layer, given its
    W_V W_O, with every head of a later layer, given its W_Q W_K^T and W_V W_O."""
    readers = {"Q": W_QK_second, "K": W_QK_second.transpose(-1, -2), "V": W_OV_second}
    return {
        kind: torch.stack([torch.stack([composition_score(writer, reader) for reader in W_B]) for writer in W_OV_first])
        for kind, W_B in readers.items()
    }


def random_composition_scores(d_model: int, d_head: int, n_samples: int, seed: int = 0) -> Float[Tensor, " n_samples"]:
    """Composition scores of n_samples independent pairs of random matrices built like a head's W_V W_O: each
    the product of a (d_model, d_head) and a (d_head, d_model) matrix of independent standard normal entries."""
    generator = torch.Generator().manual_seed(seed)

    def low_rank() -> Tensor:
        return torch.randn(d_model, d_head, generator=generator) @ torch.randn(d_head, d_model, generator=generator)

    return torch.stack([composition_score(low_rank(), low_rank()) for _ in range(n_samples)])


def k_composition_circuit(
    W_E: Float[Tensor, "d_vocab d_model"],
    W_Q: Float[Tensor, "d_model d_head"],
    W_K: Float[Tensor, "d_model d_head"],
    W_V_earlier: Float[Tensor, "d_model d_head_earlier"],
    W_O_earlier: Float[Tensor, "d_head_earlier d_model"],
) -> FactoredMatrix:
    """The attention score (unscaled) a later head gives from a query token q to a key that sees token k only
    through an earlier head's OV circuit (the earlier head attending fully to k), as a FactoredMatrix whose
    inner dimension is the later head's d_head: entry [q, k]."""
    return FactoredMatrix(W_E @ W_Q, (W_E @ W_V_earlier @ W_O_earlier @ W_K).T)
