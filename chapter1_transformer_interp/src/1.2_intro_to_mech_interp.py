# %% [markdown]
# # 1.2 Intro to mechanistic interpretability: TransformerLens and induction heads
#
# Mechanistic interpretability tries to explain a network's behaviour in terms of the
# computations inside it: which components move which information, and why the output follows.
# This section does that for one behaviour, **induction** (if `A B` appeared earlier, predict `B`
# after the next `A`), first in a two-layer attention-only transformer from the course's model zoo,
# `attn-only-2l`, trained on repeated random tokens (see `zoo/models/attn-only-2l/CARD.md`), then,
# on your own, in `gpt2-mini`, a four-layer model with MLPs trained on stories.
#
# You will:
#
# 1. load a model with TransformerLens, cache its activations, and learn the hook-point names;
# 2. look at attention patterns (circuitsvis and plotly) and write detectors for current-token,
#    previous-token and first-token heads;
# 3. measure induction on repeated random tokens: loss per position and an induction score per head,
#    first for the fixed probe, then for any sequence;
# 4. **test the interpretation** by ablating heads with hooks (zero and mean ablation) and measuring
#    what breaks, and what the choice of ablation does to the answer;
# 5. rewrite attention scores with a hook, to make a prediction of the story come true on demand;
# 6. attribute the logits directly to components (direct logit attribution);
# 7. read the circuit off the weights: QK, OV and positional circuits with `FactoredMatrix`, and Q-, K-
#    and V-composition scores against a random baseline;
# 8. reverse-engineer induction in `gpt2-mini` yourself: your findings are graded against the truth.
#
# Prerequisites: 1.1 (a transformer from scratch) or equivalent; einops and einsum (0.0).
# The induction circuit was described by Elhage et al., *A Mathematical Framework for
# Transformer Circuits* (2021) and Olsson et al., *In-context Learning and Induction Heads* (2022).
#
# **How the exercises work.** Each exercise is a function whose body raises
# `NotImplementedError`; replace it, run the cell and then the `check(...)` cell after it. A
# **finding** asks for what your analysis found (a head, a set of heads, a layer) instead of code:
# assign it to the named variable and the check grades it against the truth.

# %%
import json
import math
from functools import partial

import circuitsvis as cv
import einops
import plotly.express as px
import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import FactoredMatrix, HookedTransformer
from transformer_lens.hook_points import HookPoint

from course.plot import line
from tests.checks.chapter1_transformer_interp.intro_to_mech_interp import check  # noqa: F401 (used by the check cells the build adds)
from zoo import MODELS_DIR, corpus, load_model
from zoo.evaluate import word_token_ids

torch.manual_seed(0)
torch.set_grad_enabled(False)  # we only read the model in this section

# %% [markdown]
# ## Part 1: TransformerLens, caches and hook points
#
# `load_model` returns a `HookedTransformer`, TransformerLens' transformer in which every
# intermediate activation passes through a `HookPoint` (an identity module you can attach
# functions to). `run_with_cache` runs the model and records every activation in an
# `ActivationCache`, keyed by hook name.

# %%
model = load_model("attn-only-2l", device="cpu")
print(
    model.cfg.n_layers, "layers,", model.cfg.n_heads, "heads per layer, d_model", model.cfg.d_model,
    ", d_head", model.cfg.d_head, ", vocabulary", model.cfg.d_vocab,
)  # fmt: skip
assert (model.cfg.n_layers, model.cfg.n_heads, model.cfg.attn_only) == (2, 4, True)

# %% [markdown]
# Hook names are the module path of the hook point. Inside block `L` there are hooks on the block
# itself (`blocks.L.hook_resid_pre`, `blocks.L.hook_attn_out`, `blocks.L.hook_resid_post`), on its
# LayerNorm (`blocks.L.ln1.hook_scale`, ...) and on its attention (`blocks.L.attn.hook_q`, ...,
# `blocks.L.attn.hook_pattern`, `blocks.L.attn.hook_z`); outside the blocks there are `hook_embed`,
# `hook_pos_embed`, `ln_final.hook_scale` and a few more. The cache also accepts a short form,
# `cache["pattern", 0]` for `cache["blocks.0.attn.hook_pattern"]`. The ones used most here:
#
# | hook | shape | what |
# |---|---|---|
# | `hook_embed`, `hook_pos_embed` | (batch, pos, d_model) | token and position embeddings |
# | `blocks.L.attn.hook_attn_scores` | (batch, head, query, key) | scores before the softmax (scaled, masked) |
# | `blocks.L.attn.hook_pattern` | (batch, head, query, key) | attention probabilities |
# | `blocks.L.attn.hook_z` | (batch, pos, head, d_head) | each head's weighted values, before W_O |
# | `blocks.L.hook_resid_post` | (batch, pos, d_model) | the residual stream after layer L |

# %%
text = " Mary went to the store. Mary went to the"
tokens = model.to_tokens(text)
logits, cache = model.run_with_cache(tokens)
print(model.to_str_tokens(text))
assert "<unk>" not in model.to_str_tokens(text)  # every word is in the zoo's vocabulary
block_0_hooks = [name for name in cache.keys() if name.startswith("blocks.0.")]
print(block_0_hooks)
# Three places inside a block: the block's own hooks, its LayerNorm's and its attention's.
assert {name.split(".")[2] for name in block_0_hooks} == {
    "hook_resid_pre", "ln1", "attn", "hook_attn_out", "hook_resid_post"
}  # fmt: skip
assert "blocks.0.attn.hook_attn_scores" in block_0_hooks
assert torch.equal(cache["pattern", 0], cache["blocks.0.attn.hook_pattern"])
assert cache["pattern", 0].shape == (1, 4, tokens.shape[1], tokens.shape[1])

# %% [markdown]
# `run_with_hooks` runs the model with functions attached to hook points. A hook receives the
# activation and the `HookPoint`, and may return a replacement. This one only records a shape:

# %%
seen = {}


def record_shape(activation: Tensor, hook: HookPoint) -> None:
    seen[hook.name] = tuple(activation.shape)


model.run_with_hooks(tokens, fwd_hooks=[("blocks.1.attn.hook_z", record_shape)])
assert seen == {"blocks.1.attn.hook_z": (1, tokens.shape[1], 4, 16)}

# %% [markdown]
# ### Try it: a hook that returns nothing
#
# Each of the three hooks below tries to erase the position embeddings. The first rebinds its argument
# to a zeroed copy, the second zeroes the tensor it was given in place, and only the third returns
# something. Before you run the cell, predict which of them change the logits, and whether the model
# still has the hook attached once `run_with_hooks` has returned.


# %%
def rebind_to_zero(activation: Tensor, hook: HookPoint) -> None:
    activation = activation * 0  # noqa: F841 (the point: a new tensor that nobody sees)


def zero_in_place(activation: Tensor, hook: HookPoint) -> None:
    activation.mul_(0)


def return_zero(activation: Tensor, hook: HookPoint) -> Tensor:
    return activation * 0


changes_logits = {}
for hook_fn in (rebind_to_zero, zero_in_place, return_zero):
    hooked_logits = model.run_with_hooks(tokens, fwd_hooks=[("hook_pos_embed", hook_fn)])
    changes_logits[hook_fn.__name__] = not torch.equal(hooked_logits, logits)
print("changes the logits:", changes_logits)
assert changes_logits == {"rebind_to_zero": False, "zero_in_place": True, "return_zero": True}
assert torch.equal(model(tokens), logits)  # the hooks are gone once run_with_hooks returns

# %% [markdown]
# A hook's return value replaces the activation; returning `None` keeps the tensor the hook was given,
# including anything the hook did to it in place. Rebinding the name inside the hook changes nothing.
# `run_with_hooks` removes its hooks when it returns, so the next plain run is clean again.


# %% [markdown]
# ## Part 2: attention patterns and head detectors
#
# The probe for this model is a sequence of random tokens repeated once: BOS, then `half_len`
# random tokens, then the same tokens again. The first half is unpredictable; the second half
# is predictable only by looking back at the first copy. First, generate it.


# %% [exercise] generate_repeated_tokens difficulty=1 importance=3 minutes=8
def generate_repeated_tokens(
    token_ids: Int[Tensor, " n_ids"], n_sequences: int, half_len: int, bos_token_id: int, seed: int = 0
) -> Int[Tensor, "n_sequences 1+2*half_len"]:
    """BOS, then half_len tokens drawn uniformly at random from token_ids, then the same tokens again.

    Each sequence gets its own draw; the same seed gives the same sequences, whatever the global random state."""
    raise NotImplementedError()


# %% [hint]
# Draw *positions* in token_ids (not token values), so that every id is equally likely whatever its
# value. "Whatever the global random state" means a generator of your own, seeded with `seed`.

# %% [hint]
# Build three pieces and join them along the sequence axis: a column of the BOS id (the same dtype as
# token_ids), the drawn half, and the same half again. `torch.randint` takes a `generator=` argument.

# %%
HALF_LEN = 24
rep_tokens = generate_repeated_tokens(word_token_ids(model), 32, HALF_LEN, model.tokenizer.bos_token_id, seed=0)
rep_logits, rep_cache = model.run_with_cache(rep_tokens)
assert rep_tokens.shape == (32, 1 + 2 * HALF_LEN)
assert torch.equal(rep_tokens[:, 1 : 1 + HALF_LEN], rep_tokens[:, 1 + HALF_LEN :])

# %% [markdown]
# circuitsvis draws interactive attention patterns (hover over a token to see where it looks).
# It renders offline from JavaScript bundled in the package, but each plot embeds about 1.4 MB,
# so we draw one. Here are layer 0's heads on the first sequence:

# %%
# NBVAL_IGNORE_OUTPUT
str_tokens = model.to_str_tokens(rep_tokens[0])
patterns_plot = cv.attention.attention_patterns(tokens=str_tokens, attention=rep_cache["pattern", 0][0])
assert 1.2e6 < len(patterns_plot._repr_html_()) < 1.6e6  # the notebook stores this much per plot
patterns_plot

# %% [markdown]
# The same patterns as a plotly heatmap, which works in every notebook viewer (rows are queries,
# columns keys). Before reading on, look for a head whose pattern is a line just below the diagonal.

# %%
fig = px.imshow(
    rep_cache["pattern", 0][0].numpy(), facet_col=0, color_continuous_scale="Blues",
    labels=dict(x="key position", y="query position"), title="layer 0 attention, sequence 0",
)  # fmt: skip
for i, annotation in enumerate(fig.layout.annotations):
    annotation.text = f"L0H{i}"
fig.show()

# %% [markdown]
# Looking at pictures does not scale, so we turn each kind of head into a score. For a pattern
# $A$ with axes (batch, head, query, key), averaged over the batch:
#
# - **current-token score**: mean over queries $q$ of $A[q, q]$;
# - **previous-token score**: mean over queries $q \geq 1$ of $A[q, q-1]$ (position 0 has no previous token);
# - **first-token score**: mean over queries $q$ of $A[q, 0]$ (many heads park attention on the BOS
#   when they have nothing to do).
#
# Each takes one layer's pattern and returns a score per head.


# %% [exercise] current_token_scores difficulty=1 importance=3 minutes=5
def current_token_scores(pattern: Float[Tensor, "batch head query key"]) -> Float[Tensor, " head"]:
    """Mean attention each head pays from a position to itself (over batch and every query)."""
    raise NotImplementedError()


# %% [hint]
# The entries [q, q] of each (query, key) matrix form its main diagonal. Which axes are left to average
# once you have it, and which one must survive?

# %% [hint]
# `Tensor.diagonal` takes `dim1` and `dim2` and puts the diagonal on the last axis.


# %% [exercise] previous_token_scores difficulty=1 importance=4 minutes=5
def previous_token_scores(pattern: Float[Tensor, "batch head query key"]) -> Float[Tensor, " head"]:
    """Mean attention from each position to the one before it (queries 1 onwards)."""
    raise NotImplementedError()


# %% [hint]
# The entries [q, q - 1] lie on a diagonal too, one step below the main one. How many of them are
# there in a (pos, pos) matrix, and so what do you divide by?

# %% [hint]
# `Tensor.diagonal` takes an `offset`; a negative offset moves below the main diagonal.


# %% [exercise] first_token_scores difficulty=1 importance=3 minutes=5
def first_token_scores(pattern: Float[Tensor, "batch head query key"]) -> Float[Tensor, " head"]:
    """Mean attention from each position to position 0 (the BOS), over batch and every query."""
    raise NotImplementedError()


# %% [hint]
# Position 0 is a *key*: which axis is that? Every query can see it, so every query counts.

# %% [markdown]
# To name heads, turn a (layer, head) table of scores into names `"L{layer}H{head}"`.


# %% [exercise] heads_above difficulty=1 importance=2 minutes=5
def heads_above(scores: Float[Tensor, "layer head"], threshold: float) -> list[str]:
    """Names "L{layer}H{head}" of the heads whose score is strictly above threshold, in layer then head order."""
    raise NotImplementedError()


# %% [hint]
# A head exactly at the threshold is not above it. Make sure the first index you read is the layer.

# %% [hint]
# `Tensor.nonzero` on a boolean table lists the (row, column) pairs where it is true, in row-major order.


# %%
def per_layer(score_fn, layer_cache=rep_cache, n_layers=model.cfg.n_layers) -> Float[Tensor, "layer head"]:
    return torch.stack([score_fn(layer_cache["pattern", layer]) for layer in range(n_layers)])


detectors = {"current": current_token_scores, "previous": previous_token_scores, "first": first_token_scores}
scores = {kind: per_layer(fn) for kind, fn in detectors.items()}
for kind, table in scores.items():
    print(f"{kind}-token scores:\n{table}\n  heads above 0.5: {heads_above(table, 0.5)}")
metrics = json.loads((MODELS_DIR / "attn-only-2l" / "metrics.json").read_text())
assert heads_above(scores["previous"], 0.5) == [metrics["heads"]["previous_token"]] == ["L0H3"]
assert scores["previous"][0, 3] > 0.9
assert heads_above(scores["current"], 0.5) == ["L0H2"]
assert heads_above(scores["first"], 0.5) == [] and (scores["first"][1] > 0.25).all()

# %% [markdown]
# One previous-token head, `L0H3`, with score above 0.9: the zoo's training script named the
# same head in `metrics.json`. One layer-0 head, `L0H2`, mostly attends to its own position (the only
# current-token score above 0.5). No head is mainly a first-token head, but every layer-1 head parks
# more than a quarter of its attention on the BOS.

# %% [markdown]
# ### Try it: take the repeat away
#
# Run the model on the first halves alone: the same random tokens, without the repeated half. Before
# you run the cell, predict `L0H3`'s previous-token score there, and where the layer-1 heads put their
# attention when there is no earlier copy to find.

# %%
_, no_repeat_cache = model.run_with_cache(
    rep_tokens[:, : 1 + HALF_LEN], names_filter=lambda name: name.endswith("hook_pattern")
)
no_repeat_previous = per_layer(previous_token_scores, no_repeat_cache)
no_repeat_first = per_layer(first_token_scores, no_repeat_cache)
print(f"L0H3's previous-token score: {no_repeat_previous[0, 3]:.2f} without the repeat, "
      f"{scores['previous'][0, 3]:.2f} with it")  # fmt: skip
print("layer-1 first-token scores without the repeat:", no_repeat_first[1], "with it:", scores["first"][1])
assert abs(no_repeat_previous[0, 3] - scores["previous"][0, 3]) < 0.05
assert (no_repeat_first[1] > 0.5).all() and (no_repeat_first[1] > scores["first"][1] + 0.2).all()

# %% [markdown]
# `L0H3` does not care what the tokens are: its previous-token score moves by under 0.05. The layer-1
# heads, with nothing to copy, put more than half of their attention on the BOS, each over 0.2 more than
# on the full probe: with nothing to copy, they park on the BOS.


# %% [markdown]
# ## Part 3: induction
#
# First the behaviour: the loss at each position. For this you need the log-probability the
# model gave each actual next token. Logits at position $p$ predict token $p+1$, so the output
# has one position fewer than the input.


# %% [exercise] token_log_probs difficulty=1 importance=4 minutes=8
def token_log_probs(
    logits: Float[Tensor, "batch pos d_vocab"], tokens: Int[Tensor, "batch pos"]
) -> Float[Tensor, "batch pos-1"]:
    """Log-probability the model gave to each actual next token: entry [b, p] is for tokens[b, p + 1]."""
    raise NotImplementedError()


# %% [hint]
# Two things to get right: which logits go with which token (the shift by one), and taking the log of a
# softmax without overflow when logits are large (there is a single function for that).

# %% [hint]
# Drop the last position of the logits and the first of the tokens; then pick, at each position, the
# entry of the token that actually came (`Tensor.gather` on the vocabulary axis).

# %%
n_words = len(word_token_ids(model))
uniform_loss = math.log(n_words)
loss_per_position = -token_log_probs(rep_logits, rep_tokens).mean(0)
first_half_loss = loss_per_position[:HALF_LEN].mean().item()
repeat_loss = loss_per_position[HALF_LEN:].mean().item()
print(f"loss on the first half {first_half_loss:.2f} (uniform guessing among {n_words} words: {uniform_loss:.2f})")
print(f"loss on the repeat {repeat_loss:.2f}")
line(
    {"loss": loss_per_position.tolist()}, title="loss per position on repeated random tokens",
    xaxis="position of the predicted token - 1", yaxis="loss",
).show()  # fmt: skip
assert 600 < n_words < 640 and abs(first_half_loss - uniform_loss) < 0.3 and repeat_loss < 0.7

# %% [markdown]
# The first half costs about as much as guessing uniformly among the ~620 words (within 0.3 nats of
# it); the repeat costs under 0.7 nats: the model copies. Which heads do it? An **induction head** at
# a token of the repeat attends to the token *after* that token's first copy, and copies it. In a
# sequence BOS + half + half, the query at position $p > $ `half_len` has its first copy at
# $p - $ `half_len`, so the target key is $p - $ `half_len` $+ 1$: a diagonal with offset
# $-($`half_len`$-1)$. The induction score is the mean attention on that diagonal over queries in
# the repeated half.


# %% [exercise] induction_scores difficulty=2 importance=5 minutes=12
def induction_scores(pattern: Float[Tensor, "batch head query key"], half_len: int) -> Float[Tensor, " head"]:
    """Mean attention from each token of the repeated half to the token just after its first copy.

    Sequences are BOS + half + half, so the query at position p (p > half_len) sees its token's
    first copy at p - half_len and the induction target at p - half_len + 1."""
    raise NotImplementedError()


# %% [hint]
# The targets lie on one diagonal of the (query, key) matrix. Where does that diagonal start, and which
# of its first entries belong to queries that are not yet in the repeated half?

# %% [hint]
# The diagonal with offset -(half_len - 1) starts at query half_len - 1. Queries half_len - 1 and
# half_len are still in the first half: drop the diagonal's first two entries, then average.

# %%
induction = torch.stack([induction_scores(rep_cache["pattern", layer], HALF_LEN) for layer in range(2)])
print("induction scores:\n", induction)
strongest = f"L1H{induction[1].argmax().item()}"
assert strongest == metrics["heads"]["induction"] == "L1H1"
assert induction[1, 1] > 0.85 and induction[0].max() < 0.05
assert heads_above(induction, 0.7) == ["L1H0", "L1H1", "L1H2", "L1H3"]

# %% [markdown]
# All four layer-1 heads do induction (scores above 0.7); `L1H1` is the strongest (above 0.85),
# the head `metrics.json` names. No layer-0 head does (below 0.05): a single layer cannot,
# since the query must find a key by what came *before* it, which needs a previous-token head first.
#
# This score only works for the fixed probe, where every repeat is exactly `half_len` back. An
# induction head should do the same on any text: at a token that occurred before, attend to whatever
# followed the earlier occurrences. Write a score that finds those targets from the tokens themselves.
# It will measure `gpt2-mini` on data with repeats at random distances in Part 8.


# %% [exercise] induction_scores_by_token difficulty=3 importance=4 minutes=20
def induction_scores_by_token(
    pattern: Float[Tensor, "batch head query key"], tokens: Int[Tensor, "batch pos"]
) -> Float[Tensor, " head"]:
    """Induction scores for any sequences: the attention each query pays, in total, to the positions just
    after earlier occurrences of its own token, averaged over every query in the batch whose token occurred
    before. Every score is 0 when no token repeats."""
    raise NotImplementedError()


# %% [hint]
# Build a boolean (batch, query, key) mask of the targets first, then use it to pick out attention.
# Think about: a token that occurred twice before (both targets count), a token repeated right away
# ("a a": the target is the query's own position), queries whose token is new (they are left out of
# the average, not counted as zero), and a batch in which nothing repeats.

# %% [hint]
# Comparing tokens[:, :, None] with tokens[:, None, :] gives "same token" for every (query, position)
# pair; keep the positions strictly before the query. The target is one position after each of those:
# shift that mask by one along the key axis. Average over the (sequence, query) pairs that have a target,
# pooled over the batch, not per sequence.

# %%
span_tokens = corpus.repeated_span_tokens(
    32, 64, word_token_ids(model), model.tokenizer.bos_token_id, torch.Generator().manual_seed(0)
)
_, span_cache = model.run_with_cache(span_tokens, names_filter=lambda name: name.endswith("hook_pattern"))
induction_by_token = torch.stack(
    [induction_scores_by_token(span_cache["pattern", layer], span_tokens) for layer in range(2)]
)
print("induction scores on spans repeated at random distances:\n", induction_by_token)
assert (induction_by_token[1] > 0.8).all() and induction_by_token[0].max() < 0.05
by_token_on_probe = induction_scores_by_token(rep_cache["pattern", 1], rep_tokens)
assert torch.allclose(by_token_on_probe, induction[1], atol=0.02)  # the two scores agree on the probe

# %% [markdown]
# The layer-1 heads score above 0.8 on spans that repeat at a random distance in each row: they find
# the earlier copy by content, not by a fixed offset. On the fixed probe the two scores agree (within
# 0.02; they differ only where a random token happens to occur twice).

# %% [markdown]
# ### Try it: shift the repeat by one
#
# Insert one random token between the two halves, so that each token of the repeat comes `half_len + 1`
# positions after its first copy instead of `half_len`. Before you run the cell, predict three things:
# the loss on the repeat, `induction_scores` with `HALF_LEN`, and `induction_scores_by_token`. (The cell
# also runs `induction_scores` with `HALF_LEN + 1`: it then reads the inserted token as part of the first
# half.)

# %%
seam = word_token_ids(model)[
    torch.randint(n_words, (rep_tokens.shape[0], 1), generator=torch.Generator().manual_seed(1))
]
shifted_tokens = torch.cat([rep_tokens[:, : 1 + HALF_LEN], seam, rep_tokens[:, 1 + HALF_LEN :]], dim=1)
shifted_logits, shifted_cache = model.run_with_cache(
    shifted_tokens, names_filter=lambda name: name.endswith("hook_pattern")
)
# Both losses leave out the predictions that nothing can copy: the inserted token and the repeat's first.
shifted_repeat_loss = -token_log_probs(shifted_logits, shifted_tokens)[:, HALF_LEN + 2 :].mean().item()
unshifted_repeat_loss = loss_per_position[HALF_LEN + 1 :].mean().item()
shifted_fixed = {d: induction_scores(shifted_cache["pattern", 1], d) for d in (HALF_LEN, HALF_LEN + 1)}
shifted_by_token = induction_scores_by_token(shifted_cache["pattern", 1], shifted_tokens)
print(f"repeat loss: {shifted_repeat_loss:.2f} shifted, {unshifted_repeat_loss:.2f} not shifted")
print("induction_scores with HALF_LEN:", shifted_fixed[HALF_LEN], "with HALF_LEN + 1:", shifted_fixed[HALF_LEN + 1])
print("induction_scores_by_token:", shifted_by_token)
assert abs(shifted_repeat_loss - unshifted_repeat_loss) < 0.05
assert shifted_fixed[HALF_LEN].max() < 0.05 and shifted_fixed[HALF_LEN + 1].min() > 0.8
assert shifted_by_token.min() > 0.8

# %% [markdown]
# The model does not mind: the loss on the repeat stays within 0.05 nats of the unshifted one, and the
# score by token stays above 0.8. The fixed-offset score falls below 0.05, and recovers (above 0.8) only
# when told the new distance. It measured the probe's layout as much as the heads.


# %% [markdown]
# ## Part 4: an interpretation is a prediction, so test it
#
# So far we have *correlations*: heads that attend where an induction head would. The field has
# learned, more than once, that attention patterns and plausible stories can mislead: a head may
# attend somewhere without its output being used, or other heads may do the same job. The story
# "L0H3 feeds the induction heads, which copy" makes predictions. Ablating (zeroing) `L0H3`
# should break induction; ablating one induction head should hurt, but less if its siblings
# back it up. Measure them.
#
# Write a hook on `hook_z` (axes batch, pos, head, d_head) that zeroes one head's output. Extra
# arguments are bound with `functools.partial`, since a hook is called as `hook_fn(activation, hook)`.


# %% [exercise] ablate_head_hook difficulty=1 importance=5 minutes=8
def ablate_head_hook(
    z: Float[Tensor, "batch pos head d_head"], hook: HookPoint, head_index: int
) -> Float[Tensor, "batch pos head d_head"]:
    """A hook on hook_z that zeroes one head's output at every position."""
    raise NotImplementedError()


# %% [hint]
# Which of the four axes is the head axis? Every sequence and every position of that head is zeroed,
# and nothing else. Editing the activation in place inside a hook is fine, as long as you return it.

# %% [hint]
# Index the head axis with head_index, take every entry of the other axes, and assign 0.


# %%
def repeat_loss_with(hooks) -> float:
    logits = model.run_with_hooks(rep_tokens, fwd_hooks=hooks)
    return -token_log_probs(logits, rep_tokens)[:, HALF_LEN:].mean().item()


def zero_ablate(layer: int, head: int):
    return (f"blocks.{layer}.attn.hook_z", partial(ablate_head_hook, head_index=head))


zero_ablated = {f"L{l}H{h}": repeat_loss_with([zero_ablate(l, h)]) for l in range(2) for h in range(4)}
all_induction_zeroed = repeat_loss_with([zero_ablate(1, head) for head in range(4)])
print(f"repeat loss, nothing ablated: {repeat_loss:.2f}; uniform guessing: {uniform_loss:.2f}")
for name, value in zero_ablated.items():
    print(f"  {name} zeroed: {value:.2f} (+{value - repeat_loss:.2f})")
print(f"  all four layer-1 heads zeroed: {all_induction_zeroed:.2f}")
assert 0.15 < zero_ablated["L1H1"] - repeat_loss < 0.5  # the strongest induction head alone
assert zero_ablated["L0H3"] - repeat_loss > 4.0  # the previous-token head: induction collapses
assert max(zero_ablated[f"L0H{h}"] for h in range(3)) - repeat_loss < 1.0  # other layer-0 heads matter less
assert all_induction_zeroed > uniform_loss + 1.0  # worse than guessing: the overshoot
z_norms = rep_cache["z", 1].norm(dim=-1)  # (batch, pos, head)
assert z_norms.min() > 1.0 and 6 < z_norms.mean() < 10  # the induction heads' output is never near zero

# %% [markdown]
# The predictions hold, with a twist worth noticing. Zeroing `L1H1`, the strongest induction
# head, raises the loss on the repeat by between 0.15 and 0.5 nats: the other three layer-1 heads do
# the same job. Zeroing the single previous-token head `L0H3` they all depend on raises it by more
# than 4 nats. Had we named only `L1H1` and stopped at its attention pattern, we would have described
# the mechanism but mispredicted what removing it does.
#
# And zeroing all four layer-1 heads does something no explanation of induction predicts: the loss
# ends *more than a nat above uniform guessing*. The model without its induction heads should be at
# worst as ignorant as on the first half; instead it is confidently wrong. Zero is not "no
# information": these heads always attend somewhere (at least to the BOS) and write what they read, so
# their output is never near zero (on this batch no layer-1 head's `z` has a norm below 1 at any
# position; the mean is about 8, asserted in the cell above). A zero output is an input the rest of the
# model has never seen, and its response to it is arbitrary. **Mean ablation** replaces a head's output
# by its average instead, which keeps the residual stream on-distribution and removes only what varies
# from input to input. But "average over what?" is a real choice.


# %% [exercise] mean_ablate_head_hook difficulty=2 importance=5 minutes=10
def mean_ablate_head_hook(
    z: Float[Tensor, "batch pos head d_head"],
    hook: HookPoint,
    head_index: int,
    mean_z: Float[Tensor, "pos head d_head"],
) -> Float[Tensor, "batch pos head d_head"]:
    """A hook on hook_z that replaces one head's output, in every sequence, by its mean at that position
    (mean_z holds every head's mean output at each position, taken over a batch)."""
    raise NotImplementedError()


# %% [hint]
# mean_z has no batch axis: every sequence gets the same values, but each *position* gets its own. Only
# the one head changes.

# %% [hint]
# Select the head on both sides: z's head axis is the third, mean_z's the second. Broadcasting fills in
# the batch.

# %% [markdown]
# Now compare three ablations on three targets: zero; the mean over the batch *and* every position
# (one vector per head); and the mean over the batch at each position separately (one vector per head
# and position). The means are taken on the same repeated-token batch.


# %%
def mean_ablate(layer: int, heads: list[int], over_positions: bool) -> list:
    z = rep_cache["z", layer]
    mean_z = z.mean((0, 1)).expand_as(z[0]) if over_positions else z.mean(0)
    hook = lambda h: (f"blocks.{layer}.attn.hook_z", partial(mean_ablate_head_hook, head_index=h, mean_z=mean_z))
    return [hook(h) for h in heads]


targets = {"L1H1": (1, [1]), "all layer-1 heads": (1, [0, 1, 2, 3]), "L0H3": (0, [3])}
ablation_losses = {}
for target, (layer, heads) in targets.items():
    ablation_losses[target] = {
        "zero": repeat_loss_with([zero_ablate(layer, h) for h in heads]),
        "mean over batch and positions": repeat_loss_with(mean_ablate(layer, heads, over_positions=True)),
        "mean over batch, per position": repeat_loss_with(mean_ablate(layer, heads, over_positions=False)),
    }
    print(target, {kind: round(value, 2) for kind, value in ablation_losses[target].items()})
all_heads = ablation_losses["all layer-1 heads"]
assert all_heads["zero"] > uniform_loss + 1.0 and abs(all_heads["mean over batch, per position"] - uniform_loss) < 0.1
assert ablation_losses["L1H1"]["mean over batch and positions"] > 3.0
assert ablation_losses["L1H1"]["mean over batch, per position"] < ablation_losses["L1H1"]["zero"] < 1.0
assert all(value > uniform_loss - 0.5 for value in ablation_losses["L0H3"].values())

# %% [markdown]
# Read the table row by row.
#
# - **All layer-1 heads.** Mean ablation per position brings the repeat loss back to uniform guessing
#   (within 0.1 nats): exactly what "remove induction" should do. Zero ablation overshot by more than a nat.
# - **`L1H1` alone.** Zero and per-position mean ablation agree (both under 1 nat), but the mean over
#   batch *and positions* sends the loss above 3 nats, as if `L1H1` were essential. It is an artefact
#   of the average: in the first half the head has no earlier copy to attend to and parks on the BOS,
#   in the repeat it attends to a random earlier token, so the average over positions mixes in the first
#   half's BOS output, and pasting that into the repeat is as off-distribution as zero.
#   The printed first-token scores below show the two regimes.
# - **`L0H3`.** Every ablation breaks induction (each within half a nat of guessing or above): when the
#   effect is this large, the choice does not matter; when it is modest, it can decide the answer.
#
# From here on "mean ablation" means the mean over the batch at each position.

# %%
l1h1_pattern = rep_cache["pattern", 1][:, 1:2]
parks_first_half = first_token_scores(l1h1_pattern[:, :, 1 : HALF_LEN + 1]).item()
parks_repeat = first_token_scores(l1h1_pattern[:, :, HALF_LEN + 2 :]).item()
print(f"L1H1 attention to the BOS: {parks_first_half:.2f} from first-half queries, {parks_repeat:.2f} from the repeat")
assert parks_first_half > 0.5 > 0.1 > parks_repeat

# %% [markdown]
# Now make the sweep a function you can point at any model: the effect of mean-ablating each head
# in turn. You will use it on `gpt2-mini` in Part 8.


# %% [exercise] mean_ablation_effects difficulty=3 importance=4 minutes=20
def mean_ablation_effects(
    model: HookedTransformer, tokens: Int[Tensor, "batch 1+2*half_len"], half_len: int
) -> Float[Tensor, "layer head"]:
    """For every head: how much the mean loss on the repeated half of these sequences rises when that head
    alone is mean-ablated, with its mean output over this batch at each position."""
    raise NotImplementedError()


# %% [hint]
# Three ingredients: each layer's mean head output on *these* tokens (one cached run gives them all),
# the clean loss on the repeated half (the same slice of positions as in the cells above), and one
# hooked run per head. Return the rise, not the ablated loss; the layer count and head count come
# from model.cfg and need not be equal.

# %% [hint]
# `run_with_cache` can record only the hooks you need with `names_filter`. For each layer, average
# cache["z", layer] over the batch; for each head, bind head_index and mean_z into your
# mean_ablate_head_hook with partial, run `model.run_with_hooks`, and subtract the clean repeat loss.

# %%
effects = mean_ablation_effects(model, rep_tokens, HALF_LEN)
print("rise in repeat loss when each head is mean-ablated:\n", effects)
assert heads_above(effects, 1.0) == ["L0H3"] and (effects[1] < 0.5).all()

# %% [markdown]
# Only `L0H3` matters by itself (a rise above 1 nat); each induction head alone costs under half a nat,
# because the other three cover for it.

# %% [markdown]
# ### Try it: the heads outside the story, together
#
# The sweep ablates one head at a time. `L0H0`, `L0H1` and `L0H2` play no part in the story, and the table
# above gives the rise each causes alone. Before you run the cell, predict the rise when all three are
# mean-ablated at once: about the sum of their three rises, less, or more?

# %%
outside_story = repeat_loss_with(mean_ablate(0, [0, 1, 2], over_positions=False)) - repeat_loss
one_at_a_time = effects[0, :3].sum().item()
print(f"L0H0, L0H1, L0H2 mean-ablated together: +{outside_story:.2f}; the sum of their rises alone: "
      f"+{one_at_a_time:.2f}; L0H3 alone: +{effects[0, 3]:.2f}")  # fmt: skip
assert outside_story > 1.4 * one_at_a_time and outside_story < 0.25 * effects[0, 3]

# %% [markdown]
# More: together they raise the loss by over 1.4 times the sum of their separate rises, though still by
# under a quarter of what `L0H3` alone does. Ablation effects need not add up (the four induction heads
# showed the same: each alone costs under half a nat, all four together send the loss to guessing), so a
# sweep of one head at a time can understate what a group of heads does.


# %% [markdown]
# ## Part 5: rewriting attention with a hook
#
# Ablations remove. A sharper test of a story is to *edit* a component so that the story predicts a
# specific new behaviour, and see whether it appears. Hooks on `hook_attn_scores` can rewrite where a
# head looks: these are the scores after scaling and the causal mask (masked entries are `-inf`), just
# before the softmax.
#
# The story says the induction heads find "the position whose previous token is the current token",
# using `L0H3`'s output as the key's record of its previous token. So if we force `L0H3` to look **two**
# tokens back instead of one, the keys will record the token two back, the induction heads should attend
# one position further along (to the token two after the earlier copy), and the model should predict
# not the next token but the one after it. Write the hook that forces a head's attention to a fixed
# offset.


# %% [exercise] force_attention_hook difficulty=3 importance=4 minutes=15
def force_attention_hook(
    scores: Float[Tensor, "batch head query key"], hook: HookPoint, head_index: int, offset: int
) -> Float[Tensor, "batch head query key"]:
    """A hook on hook_attn_scores that makes one head attend only to the key `offset` positions before each
    query. Queries with no such key (the first `offset`) keep their scores, and other heads are untouched."""
    raise NotImplementedError()


# %% [hint]
# After the softmax, each forced query's row should be 1 at key q - offset and 0 elsewhere: which score
# makes a softmax weight exactly 0? And what does the softmax of a row that is entirely that value give?
# That is why the first `offset` queries keep their scores.

# %% [hint]
# Build a boolean (query, key) table of the entries to keep from two `torch.arange` columns: key equals
# query - offset, or the query is below offset. Fill the rest of that head's scores with -inf
# (`Tensor.masked_fill`).


# %%
def ahead_log_prob(logits: Tensor, tokens: Tensor, ahead: int) -> float:
    """Mean log-probability, on the repeat, of the token `ahead` positions after each position."""
    log_probs = logits[:, : tokens.shape[1] - ahead].log_softmax(-1)
    return log_probs.gather(-1, tokens[:, ahead:, None])[..., 0][:, HALF_LEN + 1 :].mean().item()


forced = {}
for offset in (1, 2):
    seen_patterns = {}
    hooks = [
        ("blocks.0.attn.hook_attn_scores", partial(force_attention_hook, head_index=3, offset=offset)),
        ("blocks.1.attn.hook_pattern", lambda pattern, hook, seen=seen_patterns: seen.update(layer_1=pattern.clone())),
    ]
    logits = model.run_with_hooks(rep_tokens, fwd_hooks=hooks)
    # Where the induction heads look: the diagonal one further along is the token two after the copy.
    shifted = seen_patterns["layer_1"].diagonal(offset=-(HALF_LEN - 2), dim1=-2, dim2=-1)[..., 2:].mean((0, -1))
    forced[offset] = {
        "next token": ahead_log_prob(logits, rep_tokens, 1),
        "token after next": ahead_log_prob(logits, rep_tokens, 2),
        "induction heads on the shifted target": shifted,
    }
    print(
        f"L0H3 forced to offset {offset}:",
        {k: v if isinstance(v, Tensor) else round(v, 2) for k, v in forced[offset].items()},
    )
clean_next, clean_after_next = ahead_log_prob(rep_logits, rep_tokens, 1), ahead_log_prob(rep_logits, rep_tokens, 2)
print(f"clean: next token {clean_next:.2f}, token after next {clean_after_next:.2f}")
assert abs(forced[1]["next token"] - clean_next) < 0.1  # forcing what L0H3 already does changes little
assert forced[2]["token after next"] > -1.0 and forced[2]["next token"] < -8.0
assert (forced[2]["induction heads on the shifted target"] > 0.7).all()
assert clean_after_next < -8.0

# %% [markdown]
# The prediction comes true. Forcing `L0H3` to its own behaviour (offset 1) changes the log-probability of
# the next token by under 0.1. Forced
# to offset 2, every induction head moves its attention one position along (above 0.7 on the new
# target), and the model now puts most of its probability on the token *after* next (mean
# log-probability above -1, against below -8 when clean) and almost none on the next token (below
# -8). A story that predicts a behaviour the model never showed, and is right, is far stronger
# evidence than any attention pattern.

# %% [markdown]
# ### Try it: force `L0H3` onto the current token
#
# Run the same hook with offset 0. Follow the story before you run the cell: what does each key record
# now, where should the induction heads look, and which token should the model predict?

# %%
offset_0 = {}
offset_0_hooks = [
    ("blocks.0.attn.hook_attn_scores", partial(force_attention_hook, head_index=3, offset=0)),
    ("blocks.1.attn.hook_pattern", lambda pattern, hook: offset_0.update(layer_1=pattern.clone())),
]
offset_0_logits = model.run_with_hooks(rep_tokens, fwd_hooks=offset_0_hooks)
# The earlier copy of the query's own token lies exactly half_len back.
on_own_copy = offset_0["layer_1"].diagonal(offset=-HALF_LEN, dim1=-2, dim2=-1)[..., 1:].mean((0, -1))
current_forced, next_forced = (ahead_log_prob(offset_0_logits, rep_tokens, ahead) for ahead in (0, 1))
current_clean = ahead_log_prob(rep_logits, rep_tokens, 0)
print(f"log-probability of the current token: {current_forced:.2f} forced, {current_clean:.2f} clean; "
      f"of the next token: {next_forced:.2f} forced, {clean_next:.2f} clean")  # fmt: skip
print("induction heads' attention to the earlier copy of the query's own token:", on_own_copy)
assert current_forced > -1.0 and current_clean < -8.0 and next_forced < -8.0
assert (on_own_copy > 0.5).all()

# %% [markdown]
# Each key now records its own token, so the induction heads attend to the earlier copy of the query's
# token itself (over half their attention) and copy it: the model predicts the token it has just seen
# (mean log-probability above -1, against below -8 when clean) and gives the real next token almost
# nothing (below -8).


# %% [markdown]
# ## Part 6: direct logit attribution
#
# Without MLPs, the final residual stream is a sum of parts: token embedding, position embedding,
# each head's output (its `z` times its `W_O`), and each layer's output bias. The final LayerNorm
# subtracts the mean and divides by one scale per position (the same for every part), so after it
# the logits are still a sum over parts, each part's contribution read off by dotting it with
# the unembedding column of a token. Direct logit attribution (DLA) computes, for each part and
# position, how much it adds to the logit of the *correct* next token.


# %% [exercise] direct_logit_attribution difficulty=2 importance=4 minutes=10
def direct_logit_attribution(
    components: Float[Tensor, "component pos d_model"],
    W_U: Float[Tensor, "d_model d_vocab"],
    next_tokens: Int[Tensor, " pos"],
) -> Float[Tensor, "component pos"]:
    """How much each (already layer-normed) component adds, at each position, to the logit of the
    token that comes next at that position."""
    raise NotImplementedError()


# %% [hint]
# Each position has its own correct token, so each position uses a different column of W_U. There is no
# need to compute every logit: pick the columns first, then take one dot product per (component, position).

# %% [hint]
# Indexing W_U's columns with next_tokens gives a (d_model, pos) matrix; `einops.einsum` can then pair
# each position's vector with that position's column, for every component.

# %%
seq = 0
head_outputs = einops.einsum(
    torch.stack([rep_cache["z", layer][seq] for layer in range(2)]), model.W_O,
    "layer pos head d_head, layer head d_head d_model -> layer head pos d_model",
)  # fmt: skip
names = ["embed", "pos_embed", *[f"L{l}H{h}" for l in range(2) for h in range(4)], "b_O"]
parts = torch.cat([
    rep_cache["embed"][seq][None], rep_cache["pos_embed"][seq][None],
    head_outputs.flatten(0, 1), model.b_O.sum(0).expand(1, rep_tokens.shape[1], -1),
])  # fmt: skip
assert torch.allclose(parts.sum(0), rep_cache["resid_post", 1][seq], atol=1e-4)
# The final LayerNorm: centre each part, divide by the position's scale; its weight goes into W_U.
normed = (parts - parts.mean(-1, keepdim=True)) / rep_cache["ln_final.hook_scale"][seq]
W_U_eff = model.ln_final.w[:, None] * model.W_U
dla = direct_logit_attribution(normed[:, :-1], W_U_eff, rep_tokens[seq, 1:])
constant = (model.ln_final.b @ model.W_U + model.b_U)[rep_tokens[seq, 1:]]
correct_logits = rep_logits[seq, :-1].gather(-1, rep_tokens[seq, 1:, None])[:, 0]
assert torch.allclose(dla.sum(0) + constant, correct_logits, atol=1e-3)

repeat_dla = dla[:, HALF_LEN:].mean(-1)
fig = px.bar(x=names, y=repeat_dla.numpy(), title="direct logit attribution to the correct token, repeated half")
fig.show()
top = names[repeat_dla.argmax().item()]
print("largest direct contribution on the repeat:", top, {n: round(v, 2) for n, v in zip(names, repeat_dla.tolist())})
assert top.startswith("L1"), top
assert abs(repeat_dla[names.index("L0H3")]) < 0.1 * repeat_dla.max()

# %% [markdown]
# The parts sum exactly to the logits (asserted). On the repeated half, the largest direct push
# towards the correct token comes from a layer-1 head: induction heads write the answer directly.
# `L0H3` contributes under a tenth of that directly, even though ablating it was the most damaging
# ablation: it acts *through* the layer-1 heads. DLA sees only direct effects, which is why it must be
# read alongside ablations.

# %% [markdown]
# ### Try it: where there is nothing to copy
#
# The bar chart averages over the repeated half. Before you run the cell, predict the induction heads'
# direct contributions to the correct token's logit on the first half of the same sequence, where no token
# has an earlier copy.

# %%
first_half_dla = dla[:, :HALF_LEN].mean(-1)
layer_1_parts = [names.index(f"L1H{head}") for head in range(4)]
print(
    "layer-1 heads' DLA on the first half:", first_half_dla[layer_1_parts], "on the repeat:", repeat_dla[layer_1_parts]
)
assert (first_half_dla[layer_1_parts] < 0.1).all() and (repeat_dla[layer_1_parts] > 2.0).all()

# %% [markdown]
# None of them adds more than 0.1 to the correct logit on the first half, against more than 2 each on the
# repeat: what they write favours the correct token only where there is an earlier copy to read it from.


# %% [markdown]
# ## Part 7: the circuit in the weights
#
# A head does two things, described by two low-rank matrices (Elhage et al. 2021):
#
# - **OV circuit**, $W_E W_V W_O W_U$ (d_vocab × d_vocab): if the head attends fully to source
#   token $s$, how much it raises the logit of each token $d$. An induction head should *copy*:
#   large diagonal.
# - **QK circuit**, $W_E W_Q (W_E W_K)^\top$ (d_vocab × d_vocab): the attention score query token
#   $q$ gives key token $k$ (embeddings only).
#
# These have rank at most d_head = 16. TransformerLens' `FactoredMatrix(A, B)` represents $AB$
# without multiplying it out; `.AB` forms it, `.mdim` is the inner dimension, and it has `.T`,
# `.eigenvalues`, `.norm()` and more. (We leave out LayerNorm here, a common simplification.)


# %% [exercise] full_ov_circuit difficulty=1 importance=4 minutes=8
def full_ov_circuit(
    W_E: Float[Tensor, "d_vocab d_model"],
    W_V: Float[Tensor, "d_model d_head"],
    W_O: Float[Tensor, "d_head d_model"],
    W_U: Float[Tensor, "d_model d_vocab"],
) -> FactoredMatrix:
    """A head's OV circuit from token embeddings to logits, as a FactoredMatrix whose inner dimension is
    d_head (never formed in full): entry [s, d] is how much attending to token s raises the logit of token d."""
    raise NotImplementedError()


# %% [hint]
# A FactoredMatrix is a product of two factors; the inner dimension is where you cut the chain of four
# matrices. Cut it where the chain is narrowest.

# %% [hint]
# The left factor is (d_vocab, d_head) and holds the first two matrices; the right factor holds the other two.


# %% [exercise] full_qk_circuit difficulty=1 importance=3 minutes=8
def full_qk_circuit(
    W_E: Float[Tensor, "d_vocab d_model"],
    W_Q: Float[Tensor, "d_model d_head"],
    W_K: Float[Tensor, "d_model d_head"],
) -> FactoredMatrix:
    """A head's QK circuit on token embeddings, as a FactoredMatrix whose inner dimension is d_head:
    entry [q, k] is the (unscaled) attention score a query token q gives a key token k."""
    raise NotImplementedError()


# %% [hint]
# Rows index queries, columns keys. The right factor must be (d_head, d_vocab): what do you transpose?

# %% [hint]
# The left factor is the queries of every token, (d_vocab, d_head); the right factor is the keys of every
# token, transposed.

# %%
words = word_token_ids(model)
ov = full_ov_circuit(model.W_E, model.W_V[1, 1], model.W_O[1, 1], model.W_U).AB[words][:, words]
copy_accuracy = (ov.argmax(-1) == torch.arange(len(words))).float().mean().item()
top5 = (ov.topk(5, dim=-1).indices == torch.arange(len(words))[:, None]).any(-1).float().mean().item()
print(
    f"L1H1's OV circuit: the token it raises most is the attended token itself for {copy_accuracy:.0%} of "
    f"tokens, and is among its top 5 for {top5:.0%} (chance: {5 / len(words):.1%})"
)
assert copy_accuracy > 0.4 and top5 > 0.75 and 5 / len(words) < 0.01
qk0 = full_qk_circuit(model.W_E, model.W_Q[0, 3], model.W_K[0, 3])
assert qk0.AB.shape == (model.cfg.d_vocab, model.cfg.d_vocab) and qk0.mdim == model.cfg.d_head

# %% [markdown]
# The induction head's OV circuit copies: for over 40% of tokens, attending to a token raises that same
# token's logit more than any other of the ~620, and for over 75% the token is in its top 5, against
# under 1% by chance. (It is one of four heads sharing the job, and LayerNorm is left out, so it need
# not copy perfectly on its own.)
#
# **The positional QK circuit.** `L0H3`'s token QK circuit cannot explain a previous-token head: which
# token came before is not a property of the token. Its key must be found by *position*. Replace the
# token embeddings by the position embeddings and you get the positional QK circuit,
# $W_{pos} W_Q (W_{pos} W_K)^\top$: the score query position $q$ gives key position $k$ from positions
# alone. Only keys up to the query are visible, so mask the rest.


# %% [exercise] positional_qk_circuit difficulty=2 importance=4 minutes=10
def positional_qk_circuit(
    W_pos: Float[Tensor, "pos d_model"], W_Q: Float[Tensor, "d_model d_head"], W_K: Float[Tensor, "d_model d_head"]
) -> Float[Tensor, "query_pos key_pos"]:
    """The (unscaled) attention score a head gives each key position from each query position when its
    queries and keys see only the position embeddings; keys after the query are masked to -inf."""
    raise NotImplementedError()


# %% [hint]
# This is the QK circuit with positions in place of tokens, formed in full (it is only pos × pos). Which
# entries of a (query, key) matrix are in the future of their query?

# %% [hint]
# `torch.ones(n, n, dtype=torch.bool).tril()` marks the visible entries; fill the others with -inf.

# %%
n_pos = rep_tokens.shape[1]
pos_scores = torch.stack(
    [positional_qk_circuit(model.W_pos[:n_pos], model.W_Q[0, h], model.W_K[0, h]) for h in range(4)]
)
prefers_previous = (pos_scores[:, 1:].argmax(-1) == torch.arange(n_pos - 1)).float().mean(-1)
print(
    "share of query positions whose best key by position alone is the previous one, per layer-0 head:", prefers_previous
)
assert prefers_previous[3] > 0.9 and prefers_previous[:3].max() < 0.1
# The model sees positions through LayerNorm, which divides the residual by its scale (about 0.18 here):
# centre W_pos, divide by the mean scale and apply ln1's weight to get the scores' real size.
ln_scale = rep_cache["blocks.0.ln1.hook_scale"].mean()
pos_normed = (model.W_pos[:n_pos] - model.W_pos[:n_pos].mean(-1, keepdim=True)) / ln_scale * model.blocks[0].ln1.w
positional_pattern = (
    positional_qk_circuit(pos_normed, model.W_Q[0, 3], model.W_K[0, 3]) / model.cfg.d_head**0.5
).softmax(-1)
positional_previous = previous_token_scores(positional_pattern[None, None]).item()
print(
    f"L0H3's previous-token score from positions alone: {positional_previous:.2f} "
    f"(on real inputs: {scores['previous'][0, 3]:.2f})"
)
assert 0.15 < ln_scale < 0.22 and positional_previous > 0.85

# %% [markdown]
# By position alone, `L0H3` scores the previous position highest for over 90% of query positions; no
# other layer-0 head does so for even 10%. Scaled as LayerNorm scales the real input, its
# position-only pattern already has a previous-token score above 0.85, close to the score it has on
# real tokens: `L0H3` finds its key by position.
#
# **Composition.** A layer-1 head reads the residual stream, which contains layer-0 heads'
# outputs; it can use them in its queries (Q-composition), keys (K-composition) or values
# (V-composition). An induction head needs K-composition with a previous-token head: its keys
# must say "the token before me was X". The composition score of a writing matrix $W_A$ and a
# reading matrix $W_B$ (both d_model × d_model, in TransformerLens' convention $x W$) is
#
# $$\frac{\|W_A W_B\|_F}{\|W_A\|_F\,\|W_B\|_F}$$
#
# The writer is always the earlier head's $W_V W_O$. The reader is the matrix through which the later
# head's queries, keys or values take in what was written. Work it out from the score
# $x_q W_Q W_K^\top x_k^\top$ and the value $x W_V W_O$: in each case, add the earlier head's output
# $x W_V W_O$ to the input on that side, and see which matrix it is multiplied by from the right.


# %% [exercise] composition_score difficulty=1 importance=4 minutes=8
def composition_score(
    W_A: Float[Tensor, "d_model d_model"], W_B: Float[Tensor, "d_model d_model"]
) -> Float[Tensor, ""]:
    """How much of what W_A writes W_B reads: the Frobenius norm of their product, relative to the norms
    of the two."""
    raise NotImplementedError()


# %% [hint]
# Order matters: W_A writes first (x W_A), then W_B reads. Which product is that?

# %% [hint]
# `torch.linalg.matrix_norm` is the Frobenius norm by default.


# %% [exercise] composition_scores difficulty=3 importance=4 minutes=20
def composition_scores(
    W_OV_first: Float[Tensor, "head_first d_model d_model"],
    W_QK_second: Float[Tensor, "head_second d_model d_model"],
    W_OV_second: Float[Tensor, "head_second d_model d_model"],
) -> dict[str, Float[Tensor, "head_first head_second"]]:
    """Q-, K- and V-composition scores (keys "Q", "K", "V") of every head of an earlier layer, given its
    W_V W_O, with every head of a later layer, given its W_Q W_K^T and W_V W_O."""
    raise NotImplementedError()


# %% [hint]
# Write the later head's attention score with the earlier head's output added to the query input, then to
# the key input: in which of the two does it meet W_Q W_K^T from the right, and in which does it need a
# transpose? For values it meets the later head's own W_V W_O. Rows of each table are earlier heads.

# %% [hint]
# The readers are W_QK_second for "Q", its transpose over the last two axes for "K", and W_OV_second for
# "V". Score every (earlier head, later head) pair with your composition_score.

# %% [markdown]
# To tell which scores are large, compare them with scores of random matrices of the same structure:
# each a product of a (d_model, d_head) and a (d_head, d_model) matrix with independent standard normal
# entries, as an untrained head's $W_V W_O$ would roughly be.


# %% [exercise] random_composition_scores difficulty=2 importance=3 minutes=10
def random_composition_scores(d_model: int, d_head: int, n_samples: int, seed: int = 0) -> Float[Tensor, " n_samples"]:
    """Composition scores of n_samples independent pairs of random matrices built like a head's W_V W_O: each
    the product of a (d_model, d_head) and a (d_head, d_model) matrix of independent standard normal entries."""
    raise NotImplementedError()


# %% [hint]
# Each sample needs two fresh low-rank matrices, so four fresh normal factors. Standard normal, not
# uniform: entries with a non-zero mean all point one way and compose strongly.

# %% [hint]
# With a `torch.Generator` seeded by seed, draw the factors with `torch.randn(..., generator=...)`, multiply
# each pair, and score the two products with your composition_score; stack the n_samples scores.

# %%
W_OV0 = FactoredMatrix(model.W_V[0], model.W_O[0]).AB  # (head, d_model, d_model)
W_QK1 = FactoredMatrix(model.W_Q[1], model.W_K[1].transpose(-1, -2)).AB
W_OV1 = FactoredMatrix(model.W_V[1], model.W_O[1]).AB
comp = composition_scores(W_OV0, W_QK1, W_OV1)
baseline = random_composition_scores(model.cfg.d_model, model.cfg.d_head, 200, seed=0)
print(f"random baseline: mean {baseline.mean():.3f}, largest of 200 {baseline.max():.3f}; "
      f"1/sqrt(d_model) = {model.cfg.d_model**-0.5:.3f}")  # fmt: skip
fig = px.imshow(
    torch.stack([comp[kind] for kind in "QKV"]).numpy(), facet_col=0, color_continuous_scale="Blues", text_auto=".2f",
    labels=dict(x="layer-1 head", y="layer-0 head"), title="Q-, K- and V-composition scores",
)  # fmt: skip
for i, annotation in enumerate(fig.layout.annotations):
    annotation.text = "QKV"[i] + "-composition"
fig.show()
full_rank = random_composition_scores(model.cfg.d_model, model.cfg.d_model, 50, seed=1)
assert abs(baseline.mean() - model.cfg.d_model**-0.5) < 0.005
assert abs(full_rank.mean() - model.cfg.d_model**-0.5) < 0.005
assert comp["K"].argmax(0).tolist() == [3, 3, 3, 3]  # every layer-1 head's keys read L0H3 most
assert comp["K"][3].min() > baseline.max()  # above every one of 200 random pairs
assert comp["Q"][3].max() < baseline.mean() and comp["V"][3].max() < baseline.mean()

# %% [markdown]
# Random pairs score close to $1/\sqrt{d_\text{model}}$: the mean of 200 is within 0.005 of it, and so is
# the mean for full-rank (d_model × d_model) random matrices; why the rank cancels out is worth a minute
# with pen and paper. Against that baseline: for every
# layer-1 head, the layer-0 head its keys read most is `L0H3`, the previous-token head, with scores above
# all 200 random pairs; `L0H3`'s Q- and V-composition scores are all *below* the random mean. Its output
# is read by the induction heads' keys, not their queries or values, as the story requires.
#
# A composition score says *that* a key reads `L0H3`, not *what* it matches. Compose the whole path:
# a query token $q$ through the later head's $W_Q$; a key position whose previous token is $k$, seen
# through `L0H3`'s OV circuit (attending fully to $k$) and then the later head's $W_K$. If this is an
# induction circuit, the score should be highest when $k = q$.


# %% [exercise] k_composition_circuit difficulty=3 importance=4 minutes=15
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
    raise NotImplementedError()


# %% [hint]
# Follow each side from a one-hot token to the later head's d_head space: the query side is short, the key
# side passes through the earlier head first. Then it is a QK circuit with a longer key side.

# %% [hint]
# The right factor must be (d_head, d_vocab): the transpose of the keys every token k would produce after
# the earlier head's W_V and W_O.

# %%
k_circuit_top1 = torch.zeros(4, 4)
for h1 in range(4):
    for h0 in range(4):
        full = k_composition_circuit(model.W_E, model.W_Q[1, h1], model.W_K[1, h1], model.W_V[0, h0], model.W_O[0, h0])
        matrix = full.AB[words][:, words]
        k_circuit_top1[h0, h1] = (matrix.argmax(-1) == torch.arange(len(words))).float().mean()
print(
    "share of query tokens whose highest-scoring previous token is themselves (rows: layer-0 head):\n", k_circuit_top1
)
assert (k_circuit_top1[3] > 0.95).all() and k_circuit_top1[:3].max() < 0.2

# %% [markdown]
# Through `L0H3`, every layer-1 head gives its highest score to the key whose previous token equals the
# query token for over 95% of query tokens; through any other layer-0 head, for under 20%. The weights
# alone contain the induction algorithm: "attend to where my token came just before".

# %% [markdown]
# ### Try it: scramble `L0H3`'s output
#
# Two ways to scramble `L0H3`'s $W_O$ (d_head × d_model): permute its 16 rows, so that each d_head
# direction writes another's vector, or permute its d_model columns, so that it writes into shuffled
# residual directions. Before you run the cell, predict for each whether `L0H3`'s K-composition scores
# with the layer-1 heads stay above the random baseline, and for the row permutation, whether the
# K-composition circuit still matches the query's token.

# %%
scramble = torch.Generator().manual_seed(0)
W_O_scrambled = {
    "rows": model.W_O[0, 3][torch.randperm(model.cfg.d_head, generator=scramble)],
    "columns": model.W_O[0, 3][:, torch.randperm(model.cfg.d_model, generator=scramble)],
}
scrambled_k = {
    kind: composition_scores((model.W_V[0, 3] @ W_O)[None], W_QK1, W_OV1)["K"][0] for kind, W_O in W_O_scrambled.items()
}
rows_top1 = torch.tensor([
    (k_composition_circuit(model.W_E, model.W_Q[1, h], model.W_K[1, h], model.W_V[0, 3], W_O_scrambled["rows"])
     .AB[words][:, words].argmax(-1) == torch.arange(len(words))).float().mean().item()
    for h in range(4)
])  # fmt: skip
print(f"K-composition of L0H3 with each layer-1 head: {comp['K'][3]} intact, {scrambled_k['rows']} rows permuted, "
      f"{scrambled_k['columns']} columns permuted; random pairs: mean {baseline.mean():.3f}, largest {baseline.max():.3f}")  # fmt: skip
print("share of query tokens matched to themselves, rows permuted:", rows_top1)
assert scrambled_k["rows"].min() > baseline.max() and rows_top1.max() < 0.01
assert scrambled_k["columns"].max() < baseline.max() and abs(scrambled_k["columns"].mean() - baseline.mean()) < 0.01

# %% [markdown]
# The composition score hardly notices the row permutation: every score stays above all 200 random pairs,
# because the rows of $W_O$ still span the same subspace of the residual stream. But the circuit no longer
# matches tokens: through the scrambled head, the key whose previous token equals the query token scores
# highest for under 1% of query tokens, against over 95% intact. Permuting the columns moves that subspace,
# and the scores fall to the random baseline (their mean within 0.01 of it). A composition score says that
# two heads share a subspace, not that what one writes means what the other expects.


# %% [markdown]
# ## Part 8: your turn: induction in `gpt2-mini`
#
# `gpt2-mini` has four layers of four heads, MLPs, and was trained on stories (with some repeated random
# spans). Nobody tells you here which heads do what: find out with the tools you wrote. Each **finding**
# below asks for an answer; the check grades it against the truth recorded for the model, and a wrong
# answer gets a message about what your answer actually is.

# %%
gpt2 = load_model("gpt2-mini", device="cpu")
# 16 sequences: each of the sweeps below runs the model once per head.
gpt2_tokens = generate_repeated_tokens(word_token_ids(gpt2), 16, HALF_LEN, gpt2.tokenizer.bos_token_id, seed=0)
gpt2_logits, gpt2_cache = gpt2.run_with_cache(gpt2_tokens)
gpt2_loss = -token_log_probs(gpt2_logits, gpt2_tokens).mean(0)
print(f"gpt2-mini: {gpt2.cfg.n_layers} layers, {gpt2.cfg.n_heads} heads; loss on the first half "
      f"{gpt2_loss[:HALF_LEN].mean():.2f}, on the repeat {gpt2_loss[HALF_LEN:].mean():.2f}")  # fmt: skip
assert gpt2_loss[HALF_LEN:].mean() < gpt2_loss[:HALF_LEN].mean() - 3.0  # it does induction

# %% [markdown]
# It does induction: the repeat costs over 3 nats less than the first half. Now, which heads?

# %% [finding] gpt2_mini_previous_token_head difficulty=2 importance=4 minutes=10
# Which head of gpt2-mini is its previous-token head? Assign its name as "L{layer}H{head}".
gpt2_mini_previous_token_head = ...

# %% [hint]
# Your detectors take one layer's pattern; gpt2-mini has four layers and a cache like the one above. Its
# heads are less clean than attn-only-2l's: a threshold chosen for that model may find nothing here.

# %% [solution]
gpt2_scores = {kind: per_layer(fn, gpt2_cache, gpt2.cfg.n_layers) for kind, fn in detectors.items()}
for kind, table in gpt2_scores.items():
    print(f"{kind}-token scores:\n{table}")
layer, head = divmod(gpt2_scores["previous"].argmax().item(), gpt2.cfg.n_heads)
gpt2_mini_previous_token_head = f"L{layer}H{head}"

# %% [finding] gpt2_mini_induction_heads difficulty=3 importance=5 minutes=15
# Which heads of gpt2-mini are induction heads? Assign the set of their names, e.g. {"L3H0", "L3H1"}.
gpt2_mini_induction_heads = ...

# %% [hint]
# Score every head on the probe, and on data where the repeat distance varies (so that a head that merely
# attends a fixed distance back cannot pass). Then look for a clear gap between the heads that do it and
# those that do not, rather than a threshold taken from another model.

# %% [hint]
# `corpus.repeated_span_tokens` makes sequences whose repeats start at random positions with random
# periods; your induction_scores_by_token scores them.

# %% [solution]
gpt2_induction = torch.stack([induction_scores(gpt2_cache["pattern", layer], HALF_LEN) for layer in range(4)])
gpt2_span_tokens = corpus.repeated_span_tokens(
    16, 64, word_token_ids(gpt2), gpt2.tokenizer.bos_token_id, torch.Generator().manual_seed(0)
)
_, gpt2_span_cache = gpt2.run_with_cache(gpt2_span_tokens, names_filter=lambda name: name.endswith("hook_pattern"))
gpt2_by_token = torch.stack(
    [induction_scores_by_token(gpt2_span_cache["pattern", l], gpt2_span_tokens) for l in range(4)]
)
print("induction scores on the probe:\n", gpt2_induction, "\non random spans:\n", gpt2_by_token)
# The scores fall into two groups; cut in the middle of the widest gap between sorted scores.
ranked = gpt2_induction.flatten().sort(descending=True).values
gap = (ranked[:-1] - ranked[1:]).argmax()
gpt2_mini_induction_heads = set(heads_above(gpt2_induction, (ranked[gap] + ranked[gap + 1]).item() / 2))
assert gpt2_mini_induction_heads == set(heads_above(gpt2_by_token, (ranked[gap] + ranked[gap + 1]).item() / 2))

# %% [markdown]
# Attention says which heads *look* like induction heads. Which heads does the behaviour depend on?

# %% [finding] gpt2_mini_induction_circuit difficulty=3 importance=5 minutes=15
# Which heads of gpt2-mini raise its loss on the repeated half by more than 0.75 nats when mean-ablated
# one at a time? Assign the set of their names.
gpt2_mini_induction_circuit = ...

# %% [hint]
# You wrote the tool for this in Part 4. Before you run it, predict: will it be exactly the induction
# heads and the previous-token head? Compare its answer with your two findings above.

# %% [solution]
gpt2_effects = mean_ablation_effects(gpt2, gpt2_tokens, HALF_LEN)
print("rise in gpt2-mini's repeat loss when each head is mean-ablated:\n", gpt2_effects)
gpt2_mini_induction_circuit = set(heads_above(gpt2_effects, 0.75))

# %% [markdown]
# `gpt2-mini` also has MLPs. An MLP can be part of a circuit too: in GPT-2-style models the first MLP is
# often described as an extension of the token embedding.

# %% [finding] gpt2_mini_mlp difficulty=3 importance=4 minutes=15
# Mean-ablate each MLP's output in turn (its mean over the batch at each position). Which MLP does
# gpt2-mini's loss on the repeated half depend on most? Assign its name as "MLP{layer}".
gpt2_mini_mlp = ...

# %% [hint]
# Each block has a hook on its MLP's output, named like the attention output's hook; find it among the
# cache's names. The hook here replaces the whole activation, not one head's slice.

# %% [hint]
# For layer L, take the cached blocks.L.hook_mlp_out, average it over the batch, and return that mean
# (expanded to the activation's shape) from a hook on the same name; compare the repeat loss with the clean one.

# %% [solution]
gpt2_clean_repeat = gpt2_loss[HALF_LEN:].mean().item()
mlp_effects = []
for layer in range(gpt2.cfg.n_layers):
    mean_out = gpt2_cache[f"blocks.{layer}.hook_mlp_out"].mean(0)
    logits = gpt2.run_with_hooks(
        gpt2_tokens, fwd_hooks=[(f"blocks.{layer}.hook_mlp_out", lambda out, hook, mean=mean_out: mean.expand_as(out))]
    )
    mlp_effects.append(-token_log_probs(logits, gpt2_tokens)[:, HALF_LEN:].mean().item() - gpt2_clean_repeat)
print("rise in repeat loss when each MLP is mean-ablated:", [round(e, 2) for e in mlp_effects])
gpt2_mini_mlp = f"MLP{max(range(gpt2.cfg.n_layers), key=lambda layer: mlp_effects[layer])}"

# %% [markdown]
# What the findings say, once you have them (the solved notebook asserts each statement below):
#
# - `gpt2-mini` has one previous-token head, which `metrics.json` also names, though far less sharp than
#   `attn-only-2l`'s: its score is under 0.5, and a second layer-0 head reaches above 0.2.
# - Three layer-1 heads do induction, on the fixed probe and on spans repeated at random distances alike;
#   `metrics.json` names the strongest.
# - The heads the behaviour depends on are not the same list. One of the three induction heads costs
#   under half a nat when ablated alone, and a layer-0 head with a *current*-token pattern, neither an
#   induction nor a previous-token head, costs more than a nat: attention patterns alone would have missed it.
# - The first MLP matters more for induction than any single head, in line with reading it as part of
#   the embedding.

# %%
# Re-measured with your own functions, so that this cell does not depend on how you found the answers.
gpt2_metrics = json.loads((MODELS_DIR / "gpt2-mini" / "metrics.json").read_text())
gpt2_previous = per_layer(previous_token_scores, gpt2_cache, gpt2.cfg.n_layers)
gpt2_current = per_layer(current_token_scores, gpt2_cache, gpt2.cfg.n_layers)
gpt2_probe = torch.stack([induction_scores(gpt2_cache["pattern", layer], HALF_LEN) for layer in range(4)])
gpt2_clean = gpt2_loss[HALF_LEN:].mean().item()


def gpt2_rise_with(hook_name: str, hook_fn) -> float:
    logits = gpt2.run_with_hooks(gpt2_tokens, fwd_hooks=[(hook_name, hook_fn)])
    return -token_log_probs(logits, gpt2_tokens)[:, HALF_LEN:].mean().item() - gpt2_clean


def gpt2_head_rise(name: str) -> float:
    layer, head = int(name[1]), int(name[3])
    hook = partial(mean_ablate_head_hook, head_index=head, mean_z=gpt2_cache["z", layer].mean(0))
    return gpt2_rise_with(f"blocks.{layer}.attn.hook_z", hook)


mlp_0_mean = gpt2_cache["blocks.0.hook_mlp_out"].mean(0)
mlp_0_rise = gpt2_rise_with("blocks.0.hook_mlp_out", lambda out, hook: mlp_0_mean.expand_as(out))
circuit_rises = {name: gpt2_head_rise(name) for name in gpt2_mini_induction_circuit}
print("rise in the repeat loss, heads of the circuit:", circuit_rises, "MLP0:", mlp_0_rise)

assert gpt2_mini_previous_token_head == gpt2_metrics["heads"]["previous_token"]
assert gpt2_previous.max() < 0.5 and (gpt2_previous[0] > 0.2).sum() == 2
assert len(gpt2_mini_induction_heads) == 3 and {head[:2] for head in gpt2_mini_induction_heads} == {"L1"}
assert gpt2_metrics["heads"]["induction"] == f"L1H{gpt2_probe[1].argmax().item()}"
weak = gpt2_mini_induction_heads - gpt2_mini_induction_circuit
assert len(weak) == 1 and gpt2_head_rise(next(iter(weak))) < 0.5
others = gpt2_mini_induction_circuit - gpt2_mini_induction_heads - {gpt2_mini_previous_token_head}
assert len(others) == 1 and gpt2_current[0, int(next(iter(others))[-1])] > 0.5 and circuit_rises[next(iter(others))] > 1
# The circuit holds every head above 0.75 nats, so beating its heads means beating every head.
assert gpt2_mini_mlp == "MLP0" and mlp_0_rise > max(circuit_rises.values())

# %% [markdown]
# ## Summary
#
# - TransformerLens exposes every activation at a named hook point; `run_with_cache` records them
#   and `run_with_hooks` edits them, including attention scores before the softmax.
# - Head detectors turn attention patterns into scores: in `attn-only-2l`, `L0H3` is a previous-token head
#   and all layer-1 heads are induction heads, `L1H1` the strongest; an induction score computed from the
#   tokens themselves works on any sequence.
# - The model's loss on the repeated half drops to under 0.7 nats. Ablation tested the story: removing `L0H3`
#   destroys induction; removing `L1H1` alone costs under half a nat, because its siblings are redundant.
#   Zero ablation overshoots (worse than guessing); mean ablation, over the batch at each position, removes
#   induction and lands on guessing, while a mean over positions too invents an effect. Say what your
#   ablation averages over.
# - Editing `L0H3`'s attention made the model predict the token after next, as the circuit predicts.
# - DLA splits the logits exactly into components' direct effects, and misses indirect ones.
# - The weights show the same circuit: the induction head's OV circuit copies, `L0H3` attends by
#   position, and its output is read by the induction heads' keys (K-composition above a random baseline)
#   and matched against the query's token.
# - In `gpt2-mini` you found the circuit yourself, and saw attention and importance disagree.
