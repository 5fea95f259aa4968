"""Reference solutions for 1.5.1 Balanced bracket classifier (after Redwood Research's 2022 REMIX
analysis of a bidirectional transformer that classifies parenthesis strings).

The hand-written algorithm (a loop, then cumsum over token tensors), the failure-type flags, the
classifier run with a padding mask, the final LayerNorm fitted as a linear map and the "unbalanced"
direction pulled back through it, each head's and MLP's output at [START] and its attribution to
that direction, the open-bracket proportion a uniform head encodes, and per-neuron attributions.
Importing this module has no side effects.
"""

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from zoo.brackets import component_names  # noqa: F401 (named in component_outputs' docstring)

PAD, START, END, OPEN, CLOSE = 0, 1, 2, 3, 4


def is_balanced_loop(s: str) -> bool:
    """True when the string of "(" and ")" is balanced: the elevation (opens minus closes so far)
    never goes below zero and ends at zero. The empty string is balanced."""
    elevation = 0
    for c in s:
        elevation += 1 if c == "(" else -1
        if elevation < 0:
            return False
    return elevation == 0


def elevation(tokens: Int[Tensor, "batch seq"]) -> Int[Tensor, "batch seq"]:
    """Elevation after each position: +1 for each OPEN token, -1 for each CLOSE token, 0 for
    [START], [END] and [PAD], summed from the left."""
    steps = (tokens == OPEN).long() - (tokens == CLOSE).long()
    return steps.cumsum(-1)


def is_balanced_vectorized(tokens: Int[Tensor, "batch seq"]) -> Bool[Tensor, " batch"]:
    """is_balanced_loop for a batch of token rows ([START] brackets [END] [PAD]...), with no Python
    loop: the elevation never negative and zero at the end of the row."""
    e = elevation(tokens)
    return (e.min(-1).values >= 0) & (e[:, -1] == 0)


def failure_flags(tokens: Int[Tensor, "batch seq"]) -> tuple[Bool[Tensor, " batch"], Bool[Tensor, " batch"]]:
    """(negative, nonzero): whether the elevation goes below zero anywhere, and whether it ends
    away from zero. A string is balanced when both are False."""
    e = elevation(tokens)
    return e.min(-1).values < 0, e[:, -1] != 0


def classifier_logits(model: HookedTransformer, tokens: Int[Tensor, "batch seq"]) -> Float[Tensor, "batch 2"]:
    """The model's logits (0 unbalanced, 1 balanced) at position 0, with every attention score to a
    [PAD] key set to -inf in every layer (a hook on each hook_attn_scores)."""
    is_pad = (tokens == PAD)[:, None, None, :]

    def mask(scores, hook):
        return scores.masked_fill(is_pad, float("-inf"))

    logits = model.run_with_hooks(tokens, fwd_hooks=[(lambda name: name.endswith("hook_attn_scores"), mask)])
    return logits[:, 0]


def fit_final_layernorm(
    resid: Float[Tensor, "n d_model"], normalized: Float[Tensor, "n d_model"]
) -> tuple[Float[Tensor, "d_model d_model"], Float[Tensor, " d_model"]]:
    """Least-squares fit of the final LayerNorm's normalisation as an affine map:
    normalized ~= resid @ W + b. Return (W, b)."""
    ones = torch.ones(resid.shape[0], 1, dtype=resid.dtype)
    solution = torch.linalg.lstsq(torch.cat([resid, ones], dim=1), normalized).solution
    return solution[:-1], solution[-1]


def unbalanced_direction(model: HookedTransformer, W: Float[Tensor, "d_model d_model"]) -> Float[Tensor, " d_model"]:
    """The direction in the residual stream before the final LayerNorm along which the logit of
    "unbalanced" minus the logit of "balanced" grows, through the fitted map W and the LayerNorm's
    scale: W @ (ln_final.w * (W_U[:, 0] - W_U[:, 1]))."""
    logit_diff = model.W_U[:, 0] - model.W_U[:, 1]
    return W @ (model.ln_final.w * logit_diff)


def component_outputs(
    model: HookedTransformer, tokens: Int[Tensor, "batch seq"]
) -> Float[Tensor, "component batch d_model"]:
    """What each component writes into the residual stream at position 0, in component_names order:
    the token plus position embedding, each head's z @ W_O (its bias b_O left out) and each MLP's
    output, with padding masked as in classifier_logits."""
    is_pad = (tokens == PAD)[:, None, None, :]

    def mask(scores, hook):
        return scores.masked_fill(is_pad, float("-inf"))

    with model.hooks(fwd_hooks=[(lambda name: name.endswith("hook_attn_scores"), mask)]):
        _, cache = model.run_with_cache(tokens)
    outputs = [cache["hook_embed"][:, 0] + cache["hook_pos_embed"][:, 0]]
    for layer in range(model.cfg.n_layers):
        z = cache[f"blocks.{layer}.attn.hook_z"][:, 0]  # batch head d_head
        heads = torch.einsum("bhe,hed->hbd", z, model.W_O[layer])
        outputs += list(heads) + [cache[f"blocks.{layer}.hook_mlp_out"][:, 0]]
    return torch.stack(outputs)


def direct_attribution(
    outputs: Float[Tensor, "component batch d_model"], direction: Float[Tensor, " d_model"]
) -> Float[Tensor, "component batch"]:
    """Each component's output projected on the (unnormalised) direction: its direct contribution
    to the unbalanced-minus-balanced logit through the linearised final LayerNorm."""
    return outputs @ direction


def open_proportion_after(tokens: Int[Tensor, "batch seq"]) -> Float[Tensor, "batch seq"]:
    """For each position i, the share of OPEN among the bracket tokens at positions >= i (0 where
    there are none)."""
    opens = (tokens == OPEN).float().flip(-1).cumsum(-1).flip(-1)
    brackets = ((tokens == OPEN) | (tokens == CLOSE)).float().flip(-1).cumsum(-1).flip(-1)
    return torch.where(brackets > 0, opens / brackets.clamp(min=1), torch.zeros_like(opens))


def mean_attribution_by_type(
    dla: Float[Tensor, "component batch"], negative: Bool[Tensor, " batch"], nonzero: Bool[Tensor, " batch"]
) -> Float[Tensor, "component 4"]:
    """Mean attribution of each component over the strings of each type, in the order balanced
    (neither flag), negative (only `negative`), nonzero (only `nonzero`), both."""
    groups = [~negative & ~nonzero, negative & ~nonzero, ~negative & nonzero, negative & nonzero]
    return torch.stack([dla[:, group].mean(-1) for group in groups], dim=-1)


def tv_from_uniform(pattern: Float[Tensor, "batch seq"], tokens: Int[Tensor, "batch seq"]) -> Float[Tensor, " batch"]:
    """How far one query's attention is from uniform over the bracket tokens: renormalise the
    pattern over the OPEN and CLOSE keys only, then take the total variation distance (half the
    sum of absolute differences) from the uniform distribution over those keys."""
    is_bracket = ((tokens == OPEN) | (tokens == CLOSE)).float()
    on_brackets = pattern * is_bracket
    on_brackets = on_brackets / on_brackets.sum(-1, keepdim=True)
    uniform = is_bracket / is_bracket.sum(-1, keepdim=True)
    return 0.5 * (on_brackets - uniform).abs().sum(-1)


def neuron_correlations(
    acts: Float[Tensor, "batch neuron"], target: Float[Tensor, " batch"]
) -> Float[Tensor, " neuron"]:
    """Pearson correlation of each neuron's activation with the target over the batch (0 for a
    neuron that never changes)."""
    a = acts - acts.mean(0)
    t = target - target.mean()
    denominator = a.norm(dim=0) * t.norm()
    return torch.where(
        denominator > 0, (a * t[:, None]).sum(0) / denominator.clamp(min=1e-12), torch.zeros_like(denominator)
    )
