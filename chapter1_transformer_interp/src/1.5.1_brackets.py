# %% [markdown]
# # 1.5.1 Balanced bracket classifier
#
# A string of brackets such as `(()())` is **balanced** when every `(` is closed by a later `)`. Read it left to
# right keeping the **elevation**, the number of `(` minus the number of `)` so far: the string is balanced
# exactly when the elevation never goes below zero and ends at zero. So an unbalanced string fails in one of two
# ways (or both): the elevation goes **negative** somewhere (`())(`), or the final elevation is **nonzero**
# (`(()`).
#
# Redwood Research's REMIX exercises (2022) trained a small *bidirectional* transformer to classify such strings and
# reverse-engineered it: a layer-0 attention head attends roughly uniformly over the brackets, so its output encodes
# the proportion of `(` in a stretch of the string, and MLP neurons turn "that proportion is not one half" into an
# "unbalanced" signal; other components detect the elevation going negative. You will run the same analysis on
# the zoo's bracket classifier (`zoo/brackets.py`, card in `zoo/brackets/classifier/CARD.md`), discovering what
# *this* model does rather than assuming it:
#
# 1. write the algorithm by hand, as a loop and then vectorised with `cumsum`;
# 2. run the model with a padding mask;
# 3. find the "unbalanced" direction before the final LayerNorm and attribute it to each head and MLP;
# 4. split strings by failure type and see which components respond to which;
# 5. follow the elevation circuit: a uniform head, then MLP neurons.
#
# **The model.** Tokens `[START] ( ) ... [END]`, right-padded with `[PAD]` to 42 positions (strings of up to 40
# brackets); 3 layers, `d_model` 56, 2 heads of 28 dimensions, 56 ReLU neurons per MLP, LayerNorm, no causal mask.
# The prediction (class 0 unbalanced, class 1 balanced) is read from the `[START]` position. It was trained on one CPU
# thread (5,500 steps in two stages; the card gives the time) on strings that are half balanced and half *hard
# negatives*: one swap, flip, insertion or deletion away from a balanced string.
#
# **Prerequisites**: 1.2 (TransformerLens, caches and hooks). Each exercise is a function whose body raises
# `NotImplementedError`; a **finding** asks for what your analysis found, and the check grades it.

# %%
import plotly.express as px
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from tests.checks.chapter1_transformer_interp.brackets import check  # noqa: F401 (used by the check cells the build adds)
from zoo.brackets import FAILURE_TYPES, component_names, generate, load_brackets_model, load_metrics, tokenize

# The model is tiny: one thread is fastest, and leaves the other cores alone.
torch.set_num_threads(1)
torch.manual_seed(0)
torch.set_grad_enabled(False)

PAD, START, END, OPEN, CLOSE = 0, 1, 2, 3, 4  # token ids

# %%
metrics = load_metrics()
model = load_brackets_model()
print(model.cfg.n_layers, model.cfg.d_model, model.cfg.n_heads, model.cfg.d_mlp, model.cfg.attention_dir)
print({name: entry["value"] for name, entry in metrics["metrics"].items()})
assert model.cfg.attention_dir == "bidirectional" and model.cfg.n_layers == 3 and model.cfg.d_vocab_out == 2
assert metrics["metrics"]["test_accuracy"]["value"] > 0.99
assert sum(stage["steps"] for stage in metrics["training"]["stages"]) == 5500

strings, kinds = generate(2000, seed=123)  # a fresh seeded sample, with each string's failure type
tokens = tokenize(strings)
print(strings[:6], kinds[:6])
print(tokens[0])

# %% [markdown]
# ## Part 1: the algorithm by hand
#
# Before looking inside the model, write the algorithm it has to learn.


# %% [exercise] is_balanced_loop difficulty=1 importance=3 minutes=5
def is_balanced_loop(s: str) -> bool:
    """True when the string of "(" and ")" is balanced: the elevation (opens minus closes so far)
    never goes below zero and ends at zero. The empty string is balanced."""
    raise NotImplementedError()


# %% [hint]
# Keep one counter. When can you stop early?

# %% [hint]
# Add 1 for "(", subtract 1 for ")"; return False the moment it is negative, and at the end whether it is 0.

# %%
assert is_balanced_loop("(()())") and not is_balanced_loop("())(") and not is_balanced_loop("(()")
assert all(is_balanced_loop(s) == (k == "balanced") for s, k in zip(strings, kinds))

# %% [markdown]
# The model sees token rows, not strings, and a batch at a time. A cumulative sum gives the elevation at every
# position at once.


# %% [exercise] elevation difficulty=1 importance=3 minutes=5
def elevation(tokens: Int[Tensor, "batch seq"]) -> Int[Tensor, "batch seq"]:
    """Elevation after each position: +1 for each OPEN token, -1 for each CLOSE token, 0 for
    [START], [END] and [PAD], summed from the left."""
    raise NotImplementedError()


# %% [hint]
# Turn each token into a step of +1, -1 or 0 first.

# %% [hint]
# `(tokens == OPEN).long() - (tokens == CLOSE).long()`, then `.cumsum(-1)`.


# %% [exercise] is_balanced_vectorized difficulty=2 importance=3 minutes=5
def is_balanced_vectorized(tokens: Int[Tensor, "batch seq"]) -> Bool[Tensor, " batch"]:
    """is_balanced_loop for a batch of token rows ([START] brackets [END] [PAD]...), with no Python
    loop: the elevation never negative and zero at the end of the row."""
    raise NotImplementedError()


# %% [hint]
# Padding adds no steps, so what is the elevation at the last position of a row?

# %% [hint]
# With `e = elevation(tokens)`: `(e.min(-1).values >= 0) & (e[:, -1] == 0)`.


# %% [exercise] failure_flags difficulty=2 importance=4 minutes=5
def failure_flags(tokens: Int[Tensor, "batch seq"]) -> tuple[Bool[Tensor, " batch"], Bool[Tensor, " batch"]]:
    """(negative, nonzero): whether the elevation goes below zero anywhere, and whether it ends
    away from zero. A string is balanced when both are False."""
    raise NotImplementedError()


# %% [hint]
# These are the two halves of is_balanced_vectorized, kept apart and negated.

# %% [hint]
# `e.min(-1).values < 0` and `e[:, -1] != 0`.

# %%
negative, nonzero = failure_flags(tokens)
kind_of = {(False, False): "balanced", (True, False): "negative", (False, True): "nonzero", (True, True): "both"}
assert [kind_of[(n, z)] for n, z in zip(negative.tolist(), nonzero.tolist())] == kinds
assert torch.equal(is_balanced_vectorized(tokens), torch.tensor([k == "balanced" for k in kinds]))
counts = {kind: kinds.count(kind) for kind in FAILURE_TYPES}
print(counts)  # half balanced; the unbalanced ones spread over the three failure types
assert 0.45 < counts["balanced"] / len(kinds) < 0.55 and min(counts.values()) > 250

# %% [markdown]
# ## Part 2: running the model
#
# Rows are padded to the same length with `[PAD]`. A bidirectional model would let every position attend to the
# padding, and its prediction would depend on how long the batch happens to be. TransformerLens ignores
# `attention_mask` when `attention_dir="bidirectional"`, so mask by hand: hook every layer's `hook_attn_scores`
# (shape `[batch, head, query, key]`) and set the scores of `[PAD]` keys to `-inf` before the softmax.


# %% [exercise] classifier_logits difficulty=3 importance=5 minutes=15
def classifier_logits(model: HookedTransformer, tokens: Int[Tensor, "batch seq"]) -> Float[Tensor, "batch 2"]:
    """The model's logits (0 unbalanced, 1 balanced) at position 0, with every attention score to a
    [PAD] key set to -inf in every layer (a hook on each hook_attn_scores)."""
    raise NotImplementedError()


# %% [hint]
# Which axis of the scores is the key? The mask must broadcast over heads and queries.

# %% [hint]
# `is_pad = (tokens == PAD)[:, None, None, :]`; a hook returning `scores.masked_fill(is_pad, float("-inf"))`, passed
# to `model.run_with_hooks` with a name filter `lambda name: name.endswith("hook_attn_scores")`; keep position 0.

# %%
logits = classifier_logits(model, tokens)
predicted_balanced = logits.argmax(-1) == 1
accuracy = (predicted_balanced == is_balanced_vectorized(tokens)).float().mean().item()
print(f"accuracy on a fresh sample: {accuracy:.4f}")
assert accuracy > 0.99
# The mask makes padding irrelevant: the short strings, cut to 22 positions (less padding), give the same logits.
short = (tokens != PAD).sum(1) <= 22
assert torch.allclose(classifier_logits(model, tokens[short, :22]), logits[short], atol=1e-4)
unmasked = model(tokens)[:, 0]
assert not torch.allclose(unmasked, logits, atol=1e-2)  # without the mask, padding changes the answers

# %% [markdown]
# ## Part 3: the "unbalanced" direction and who writes it
#
# The logit difference $\ell_0 - \ell_1$ (unbalanced minus balanced) is linear in the final LayerNorm's output,
# `normalized * ln_final.w + ln_final.b`, through `W_U[:, 0] - W_U[:, 1]`. The normalisation itself is not linear,
# but on the data it is close to an affine map of its input, the residual stream after the last layer. Fit that map
# by least squares on many strings; then pull the logit-difference direction back through it to get a direction in
# the residual stream before the LayerNorm. Any component's output at `[START]`, projected on that direction, is its
# direct contribution to "unbalanced".

# %%
big_strings, big_kinds = generate(4000, seed=7)
big_tokens = tokenize(big_strings)
is_pad = (big_tokens == PAD)[:, None, None, :]
pad_hook = (
    lambda name: name.endswith("hook_attn_scores"),
    lambda scores, hook: scores.masked_fill(is_pad, float("-inf")),
)
with model.hooks(fwd_hooks=[pad_hook]):
    _, cache = model.run_with_cache(big_tokens)
final_resid = cache[f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"][:, 0]
normalized = cache["ln_final.hook_normalized"][:, 0]


# %% [exercise] fit_final_layernorm difficulty=3 importance=4 minutes=15
def fit_final_layernorm(
    resid: Float[Tensor, "n d_model"], normalized: Float[Tensor, "n d_model"]
) -> tuple[Float[Tensor, "d_model d_model"], Float[Tensor, " d_model"]]:
    """Least-squares fit of the final LayerNorm's normalisation as an affine map:
    normalized ~= resid @ W + b. Return (W, b)."""
    raise NotImplementedError()


# %% [hint]
# An affine map is a linear map of the input with a constant feature appended. Which solver gives least squares?

# %% [hint]
# Append a column of ones to `resid`, call `torch.linalg.lstsq(inputs, normalized).solution`, and split its last row
# off as `b`.

# %%
W_ln, b_ln = fit_final_layernorm(final_resid, normalized)
fitted = final_resid @ W_ln + b_ln
r2 = 1 - (fitted - normalized).pow(2).sum() / (normalized - normalized.mean(0)).pow(2).sum()
print(f"R^2 of the affine fit: {r2:.4f}")
assert r2 > 0.98  # the LayerNorm is nearly affine on this data


# %% [exercise] unbalanced_direction difficulty=2 importance=5 minutes=10
def unbalanced_direction(model: HookedTransformer, W: Float[Tensor, "d_model d_model"]) -> Float[Tensor, " d_model"]:
    """The direction in the residual stream before the final LayerNorm along which the logit of
    "unbalanced" minus the logit of "balanced" grows, through the fitted map W and the LayerNorm's
    scale: W @ (ln_final.w * (W_U[:, 0] - W_U[:, 1]))."""
    raise NotImplementedError()


# %% [hint]
# Follow the logit difference backwards: unembedding, then the LayerNorm's scale, then the fitted map.

# %% [hint]
# `model.W_U[:, 0] - model.W_U[:, 1]`, times `model.ln_final.w` elementwise, then `W @` that.

# %%
direction = unbalanced_direction(model, W_ln)
logit_diff = classifier_logits(model, big_tokens) @ torch.tensor([1.0, -1.0])
predicted_diff = final_resid @ direction
correlation = torch.corrcoef(torch.stack([logit_diff, predicted_diff]))[0, 1].item()
print(f"correlation of resid @ direction with the true logit difference: {correlation:.4f}")
assert correlation > 0.98

# %% [markdown]
# Now split the residual stream at `[START]` into what each component wrote: the embeddings, each head (its `z @ W_O`;
# the constant biases `b_O` left out) and each MLP. Their projections on `direction` add up to `predicted_diff` (up
# to the constant bias terms).


# %% [exercise] component_outputs difficulty=3 importance=4 minutes=20
def component_outputs(
    model: HookedTransformer, tokens: Int[Tensor, "batch seq"]
) -> Float[Tensor, "component batch d_model"]:
    """What each component writes into the residual stream at position 0, in component_names order:
    the token plus position embedding, each head's z @ W_O (its bias b_O left out) and each MLP's
    output, with padding masked as in classifier_logits."""
    raise NotImplementedError()


# %% [hint]
# Cache a masked run (use `model.hooks(...)` around `run_with_cache`). Which hook holds each head's output before
# it is summed over heads?

# %% [hint]
# `hook_embed + hook_pos_embed` at position 0; per layer `einsum("bhe,hed->hbd", z[:, 0], model.W_O[layer])` from
# `blocks.{layer}.attn.hook_z`, then `blocks.{layer}.hook_mlp_out[:, 0]`; stack in that order.

# %%
names = component_names(model)  # "embed", "L0H0", "L0H1", "MLP0", ...
outputs = component_outputs(model, big_tokens)
biases = sum(model.b_O[layer] for layer in range(model.cfg.n_layers))
assert torch.allclose(outputs.sum(0) + biases, final_resid, atol=1e-3)  # the pieces add up to the residual stream


# %% [exercise] direct_attribution difficulty=1 importance=4 minutes=5
def direct_attribution(
    outputs: Float[Tensor, "component batch d_model"], direction: Float[Tensor, " d_model"]
) -> Float[Tensor, "component batch"]:
    """Each component's output projected on the (unnormalised) direction: its direct contribution
    to the unbalanced-minus-balanced logit through the linearised final LayerNorm."""
    raise NotImplementedError()


# %% [hint]
# One matrix product; the direction is not normalised on purpose, so the units are logits.

# %% [hint]
# `outputs @ direction`.

# %%
dla = direct_attribution(outputs, direction)
assert torch.allclose(dla.sum(0) + biases @ direction, predicted_diff, atol=1e-3)

# %% [markdown]
# ## Part 4: which components respond to which failure?
#
# Average each component's attribution over the strings of each type. A component that only tracks the final
# elevation should separate "nonzero" strings from balanced ones but not "negative" ones, and the other way round
# for a component that tracks the elevation going negative.


# %% [exercise] mean_attribution_by_type difficulty=2 importance=4 minutes=10
def mean_attribution_by_type(
    dla: Float[Tensor, "component batch"], negative: Bool[Tensor, " batch"], nonzero: Bool[Tensor, " batch"]
) -> Float[Tensor, "component 4"]:
    """Mean attribution of each component over the strings of each type, in the order balanced
    (neither flag), negative (only `negative`), nonzero (only `nonzero`), both."""
    raise NotImplementedError()


# %% [hint]
# Four groups of strings, and each string belongs to exactly one of them.

# %% [hint]
# Masks `~negative & ~nonzero`, `negative & ~nonzero`, `~negative & nonzero`, `negative & nonzero`; stack the means.

# %%
big_negative, big_nonzero = failure_flags(big_tokens)
by_type = mean_attribution_by_type(dla, big_negative, big_nonzero)
fig = px.bar(x=names * 4, y=by_type.T.flatten(), color=[t for t in FAILURE_TYPES for _ in names], barmode="group",
             labels={"x": "component", "y": "mean attribution to 'unbalanced' (logits)", "color": "type"},
             title="Direct attribution to the unbalanced direction, by failure type")  # fmt: skip
fig.show()

# %% [markdown]
# One MLP dwarfs the rest: `MLP2`, the last one, writes most of the decision for every type (and pushes towards
# "balanced" on balanced strings). The heads are smaller but more selective. For each head, how much does its
# attribution rise from balanced strings to strings of one failure type?

# %% [finding] negative_head difficulty=3 importance=5 minutes=10
# Which head (a name such as "L0H1") has the largest rise from balanced strings to negative-only strings?
negative_head = ...

# %% [hint]
# Column 1 minus column 0 of `by_type`, over the rows that are heads.

# %% [solution]
head_rows = [i for i, n in enumerate(names) if "H" in n]
negative_head = names[max(head_rows, key=lambda i: (by_type[i, 1] - by_type[i, 0]).item())]

# %% [finding] nonzero_head difficulty=2 importance=4 minutes=5
# And which head has the largest rise from balanced strings to nonzero-only strings?
nonzero_head = ...

# %% [hint]
# The same with column 2.

# %% [solution]
nonzero_head = names[max(head_rows, key=lambda i: (by_type[i, 2] - by_type[i, 0]).item())]

# %%
recorded = metrics["analysis"]
assert negative_head == recorded["negative_head"] and nonzero_head == recorded["nonzero_head"]
rise = by_type[:, 1:3] - by_type[:, :1]  # [component, (negative, nonzero)] rise over balanced strings
i_neg, i_non, i_mlp2 = names.index(negative_head), names.index(nonzero_head), names.index("MLP2")
print(f"{negative_head}: rise {rise[i_neg].tolist()}; {nonzero_head}: rise {rise[i_non].tolist()}")
# The two heads are different, and each responds more to its own failure type than to the other.
assert negative_head != nonzero_head
assert rise[i_neg, 0] > rise[i_neg, 1] and rise[i_non, 1] > rise[i_non, 0]
# MLP2 carries the largest attribution on every failure type, and it pushes towards "balanced" on balanced strings.
others = [i for i in range(1, len(names)) if i != i_mlp2]
assert (by_type[i_mlp2, 1:] > by_type[others, 1:].max(0).values).all() and by_type[i_mlp2, 0] < 0

# %% [markdown]
# ## Part 5: the elevation circuit
#
# Whether a string ends at elevation zero depends only on the proportion of `(` among its brackets: balanced strings
# have exactly one half. A head that attends *uniformly* over the brackets averages their value vectors, so its output
# is an affine function of that proportion. Look at the attention from `[START]` first.

# %%
example = tokenize(["(()())", "())(()", "((((()", "()()()()()(())"])
with model.hooks(
    fwd_hooks=[
        (pad_hook[0], lambda scores, hook: scores.masked_fill((example == PAD)[:, None, None, :], float("-inf")))
    ]
):
    _, example_cache = model.run_with_cache(example)
patterns = torch.stack([example_cache[f"blocks.{layer}.attn.hook_pattern"][1, h, :16, :16]
                        for layer in range(model.cfg.n_layers) for h in range(model.cfg.n_heads)])  # fmt: skip
fig = px.imshow(patterns, facet_col=0, facet_col_wrap=3, color_continuous_scale="Blues", zmin=0, zmax=1,
                title="Attention patterns on '())(()' (query down, key across)")  # fmt: skip
for annotation, head_name in zip(fig.layout.annotations, [n for n in names if "H" in n]):
    annotation.text = head_name
fig.show()


# %% [exercise] tv_from_uniform difficulty=3 importance=4 minutes=15
def tv_from_uniform(pattern: Float[Tensor, "batch seq"], tokens: Int[Tensor, "batch seq"]) -> Float[Tensor, " batch"]:
    """How far one query's attention is from uniform over the bracket tokens: renormalise the
    pattern over the OPEN and CLOSE keys only, then take the total variation distance (half the
    sum of absolute differences) from the uniform distribution over those keys."""
    raise NotImplementedError()


# %% [hint]
# Two distributions over the same keys: the head's (restricted to brackets, so it must sum to 1 again) and the flat one.

# %% [hint]
# `is_bracket = ((tokens == OPEN) | (tokens == CLOSE)).float()`; divide `pattern * is_bracket` and `is_bracket` by their
# row sums; `0.5 * (difference).abs().sum(-1)`.

# %%
head_names = [n for n in names if "H" in n]
tv = {n: tv_from_uniform(cache[f"blocks.{n[1]}.attn.hook_pattern"][:, int(n[3]), 0], big_tokens).mean().item()
      for n in head_names}  # fmt: skip
print({n: round(v, 3) for n, v in tv.items()})

# %% [finding] uniform_head difficulty=3 importance=5 minutes=5
# Which head's attention from `[START]` is closest to uniform over the brackets (a name such as "L1H0")?
uniform_head = ...

# %% [hint]
# The smallest mean distance.

# %% [solution]
uniform_head = min(tv, key=tv.get)

# %%
assert uniform_head == recorded["uniform_head"]
assert abs(tv[uniform_head] - recorded["uniform_head_tv"]) < 0.05
# Unlike the REMIX model, whose uniform head is in layer 0 (head 0.0), this one's is in layer 1; both layer-0 heads
# are far from uniform at [START].
assert uniform_head.startswith("L1") and min(tv["L0H0"], tv["L0H1"]) > 0.5


# %% [exercise] open_proportion_after difficulty=2 importance=3 minutes=10
def open_proportion_after(tokens: Int[Tensor, "batch seq"]) -> Float[Tensor, "batch seq"]:
    """For each position i, the share of OPEN among the bracket tokens at positions >= i (0 where
    there are none)."""
    raise NotImplementedError()


# %% [hint]
# Counting "from i to the end" for every i at once is a cumulative sum of the reversed row.

# %% [hint]
# `(tokens == OPEN).float().flip(-1).cumsum(-1).flip(-1)` over the same for brackets, with `torch.where` for zero counts.

# %%
proportion = open_proportion_after(big_tokens)[:, 1]  # the whole string's share of "("
layer, head = int(uniform_head[1]), int(uniform_head[3])
head_out = cache[f"blocks.{layer}.attn.hook_z"][:, 0, head] @ model.W_O[layer, head]
features = torch.cat([head_out, torch.ones(len(head_out), 1)], dim=1)
residual = proportion - features @ torch.linalg.lstsq(features, proportion[:, None]).solution[:, 0]
head_r2 = 1 - residual.var().item() / proportion.var().item()
print(f"R^2 of the proportion of '(' from {uniform_head}'s output at [START]: {head_r2:.3f}")
assert abs(head_r2 - recorded["uniform_head_r2"]) < 0.05
assert head_r2 > 0.6  # a linear read-out of the head recovers most of the variance of the proportion


# %% [markdown]
# A balanced string needs the proportion to be exactly one half, so the useful signal is the *distance*
# |proportion - 1/2|, which is not linear in the proportion: a ReLU neuron can compute it (or one side of it). Look for
# neurons at `[START]`, in the uniform head's layer or later, whose activation tracks that distance.


# %% [exercise] neuron_correlations difficulty=2 importance=3 minutes=10
def neuron_correlations(
    acts: Float[Tensor, "batch neuron"], target: Float[Tensor, " batch"]
) -> Float[Tensor, " neuron"]:
    """Pearson correlation of each neuron's activation with the target over the batch (0 for a
    neuron that never changes)."""
    raise NotImplementedError()


# %% [hint]
# Correlation is a covariance divided by two standard deviations; what happens when one of them is zero?

# %% [hint]
# Centre both; `(a * t[:, None]).sum(0) / (a.norm(dim=0) * t.norm())`, with `torch.where` for a zero denominator.

# %%
distance = (proportion - 0.5).abs()
correlations = torch.stack([neuron_correlations(cache[f"blocks.{layer_}.mlp.hook_post"][:, 0], distance)
                            for layer_ in range(model.cfg.n_layers)])  # fmt: skip
px.imshow(correlations, color_continuous_scale="RdBu", zmin=-1, zmax=1, aspect="auto",
          labels={"x": "neuron", "y": "layer"}, title="Correlation of each neuron at [START] with |share of '(' - 1/2|").show()  # fmt: skip

# %% [finding] distance_neuron difficulty=3 importance=4 minutes=5
# Which neuron, in the uniform head's layer or later, is most correlated with |share of "(" - 1/2|? Assign
# `[layer, neuron]`.
distance_neuron = ...

# %% [hint]
# Rows before the uniform head's layer cannot read its output.

# %% [solution]
masked = correlations.clone()
masked[:layer] = -2
best = int(masked.argmax())
distance_neuron = [best // masked.shape[1], best % masked.shape[1]]

# %%
assert distance_neuron == recorded["distance_neuron"]
assert abs(correlations[distance_neuron[0], distance_neuron[1]].item() - recorded["neuron_correlation"]) < 0.05
# The neuron is in MLP1, right after the uniform head L1H1; it tracks the distance only partly (correlation
# about 0.5): it is one piece of the signal, not a clean detector.
assert distance_neuron[0] == 1 and 0.4 < correlations[1, distance_neuron[1]] < 0.7


# %% [markdown]
# ## Summary, and where this model differs from the REMIX one
#
# - The algorithm is two conditions on the elevation; the failure types split the unbalanced strings by which
#   condition fails.
# - The final LayerNorm is close to affine on this data (R^2 above 0.98), so the logit difference pulls back to one
#   "unbalanced" direction in the residual stream, and each component's projection on it adds up to the prediction.
# - The last MLP writes most of the decision. Among heads, one responds more to the elevation going negative and
#   another more to a nonzero final elevation (the findings above).
# - The head closest to uniform at `[START]` is in **layer 1**, not layer 0 as in the REMIX model, and its output
#   encodes the proportion of `(` only partly (R^2 about 0.67, not near 1); a neuron right after it tracks the distance
#   from one half with correlation about 0.5. The elevation circuit here is more distributed than the clean
#   "uniform head, then neurons" story of the original.
# - This model is also weaker on "negative" failures (about 97% against 99-100% on the other types; the cell below
#   asserts it): finding the first place the elevation dips needs a position-by-position computation that this
#   short training only partly learns. The REMIX model was trained for much longer.

# %%
accuracy_by = {kind: metrics["metrics"][f"accuracy_{kind}"]["value"] for kind in FAILURE_TYPES}
print(accuracy_by)
assert accuracy_by["negative"] < min(accuracy_by["nonzero"], accuracy_by["both"], accuracy_by["balanced"])
assert 0.95 < accuracy_by["negative"] < 0.99 and head_r2 < 0.8
