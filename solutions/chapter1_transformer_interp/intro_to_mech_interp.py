"""Reference solutions for 1.2 Intro to mechanistic interpretability.

Head detectors, induction scores, an ablation hook, direct logit attribution, and the weight-based
QK/OV circuits with composition scores. Importing this module has no side effects.
"""

import einops
import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import FactoredMatrix
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
    """Names "L{layer}H{head}" of the heads whose score exceeds threshold, in layer then head order."""
    return [f"L{layer}H{head}" for layer, head in (scores > threshold).nonzero().tolist()]


def generate_repeated_tokens(
    token_ids: Int[Tensor, " n_ids"], n_sequences: int, half_len: int, bos_token_id: int, seed: int = 0
) -> Int[Tensor, "n_sequences 1+2*half_len"]:
    """BOS, then half_len tokens drawn uniformly from token_ids, then the same tokens again.

    The draw is `torch.randint(len(token_ids), (n_sequences, half_len), generator=g)` with
    `g = torch.Generator().manual_seed(seed)`, used as indices into token_ids."""
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


def ablate_head_hook(
    z: Float[Tensor, "batch pos head d_head"], hook: HookPoint, head_index: int
) -> Float[Tensor, "batch pos head d_head"]:
    """A hook on hook_z that zeroes one head's output at every position."""
    z[:, :, head_index] = 0.0
    return z


def direct_logit_attribution(
    components: Float[Tensor, "component pos d_model"],
    W_U: Float[Tensor, "d_model d_vocab"],
    next_tokens: Int[Tensor, " pos"],
) -> Float[Tensor, "component pos"]:
    """How much each (already layer-normed) component adds, at each position, to the logit of the
    token that comes next there: components[c, p] @ W_U[:, next_tokens[p]]."""
    return einops.einsum(components, W_U[:, next_tokens], "component pos d_model, d_model pos -> component pos")


def full_ov_circuit(
    W_E: Float[Tensor, "d_vocab d_model"],
    W_V: Float[Tensor, "d_model d_head"],
    W_O: Float[Tensor, "d_head d_model"],
    W_U: Float[Tensor, "d_model d_vocab"],
) -> FactoredMatrix:
    """W_E W_V W_O W_U as a FactoredMatrix (rank d_head, never formed in full):
    entry [s, d] is how much attending to token s raises the logit of token d."""
    return FactoredMatrix(W_E @ W_V, W_O @ W_U)


def full_qk_circuit(
    W_E: Float[Tensor, "d_vocab d_model"],
    W_Q: Float[Tensor, "d_model d_head"],
    W_K: Float[Tensor, "d_model d_head"],
) -> FactoredMatrix:
    """W_E W_Q (W_E W_K)^T as a FactoredMatrix: entry [q, k] is the attention score a query token q
    gives a key token k (token embeddings only, unscaled)."""
    return FactoredMatrix(W_E @ W_Q, (W_E @ W_K).T)


def composition_score(
    W_A: Float[Tensor, "d_model d_model"], W_B: Float[Tensor, "d_model d_model"]
) -> Float[Tensor, ""]:
    """||W_A W_B||_F / (||W_A||_F ||W_B||_F): how much of what W_A writes W_B reads."""
    return torch.linalg.matrix_norm(W_A @ W_B) / (torch.linalg.matrix_norm(W_A) * torch.linalg.matrix_norm(W_B))
