# %% [markdown]
# # 1.2 Intro to mechanistic interpretability: TransformerLens and induction heads
#
# Mechanistic interpretability tries to explain a network's behaviour in terms of the
# computations inside it: which components move which information, and why the output follows.
# This section does that for one behaviour, **induction** (if `A B` appeared earlier, predict `B`
# after the next `A`), in a two-layer attention-only transformer from the course's model zoo,
# `attn-only-2l`, trained here on repeated random tokens (see `zoo/models/attn-only-2l/CARD.md`).
#
# You will:
#
# 1. load a model with TransformerLens, cache its activations, and learn the hook-point names;
# 2. look at attention patterns (circuitsvis and plotly) and write detectors for current-token,
#    previous-token and first-token heads;
# 3. measure induction on repeated random tokens: loss per position and an induction score per head;
# 4. **test the interpretation** by ablating heads with hooks and measuring what breaks;
# 5. attribute the logits directly to components (direct logit attribution);
# 6. read the circuit off the weights: QK and OV circuits with `FactoredMatrix`, and composition
#    scores between layer-0 and layer-1 heads.
#
# Prerequisites: 1.1 (a transformer from scratch) or equivalent; einops and einsum (0.0).
# The induction circuit was described by Elhage et al., *A Mathematical Framework for
# Transformer Circuits* (2021) and Olsson et al., *In-context Learning and Induction Heads* (2022).
#
# **How the exercises work.** Each exercise is a function whose body raises
# `NotImplementedError`; replace it, run the cell and then the `check(...)` cell after it.

# %%
import json
from functools import partial
from pathlib import Path

import circuitsvis as cv
import einops
import plotly.express as px
import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import FactoredMatrix
from transformer_lens.hook_points import HookPoint

from course.plot import line
from tests.checks.chapter1_transformer_interp.intro_to_mech_interp import check
from zoo import MODELS_DIR, load_model
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
metrics = json.loads((MODELS_DIR / "attn-only-2l" / "metrics.json").read_text())
print(
    model.cfg.n_layers,
    "layers,",
    model.cfg.n_heads,
    "heads per layer, d_model",
    model.cfg.d_model,
    ", d_head",
    model.cfg.d_head,
    ", vocabulary",
    model.cfg.d_vocab,
)
print("heads named by the zoo's training script:", metrics["heads"])
assert (model.cfg.n_layers, model.cfg.n_heads, model.cfg.attn_only) == (2, 4, True)

# %% [markdown]
# Hook names follow one pattern: `blocks.{layer}.attn.hook_{name}` inside layer blocks, plus
# `hook_embed`, `hook_pos_embed` and `ln_final.hook_scale` outside them. The cache also accepts
# a short form, `cache["pattern", 0]` for `cache["blocks.0.attn.hook_pattern"]`. The ones used here:
#
# | hook | shape | what |
# |---|---|---|
# | `hook_embed`, `hook_pos_embed` | (batch, pos, d_model) | token and position embeddings |
# | `blocks.L.attn.hook_pattern` | (batch, head, query, key) | attention probabilities |
# | `blocks.L.attn.hook_z` | (batch, pos, head, d_head) | each head's weighted values, before W_O |
# | `blocks.L.hook_resid_post` | (batch, pos, d_model) | the residual stream after layer L |

# %%
text = " Mary went to the store . Mary went to the"
tokens = model.to_tokens(text)
logits, cache = model.run_with_cache(tokens)
print(model.to_str_tokens(text))
print([name for name in cache.keys() if name.startswith("blocks.0")])
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
# ## Part 2: attention patterns and head detectors
#
# The probe for this model is a sequence of random tokens repeated once: BOS, then `half_len`
# random tokens, then the same tokens again. The first half is unpredictable; the second half
# is predictable only by looking back at the first copy. First, generate it.


# %% [exercise] generate_repeated_tokens difficulty=1 importance=3 minutes=8
def generate_repeated_tokens(
    token_ids: Int[Tensor, " n_ids"], n_sequences: int, half_len: int, bos_token_id: int, seed: int = 0
) -> Int[Tensor, "n_sequences 1+2*half_len"]:
    """BOS, then half_len tokens drawn uniformly from token_ids, then the same tokens again.

    The draw is `torch.randint(len(token_ids), (n_sequences, half_len), generator=g)` with
    `g = torch.Generator().manual_seed(seed)`, used as indices into token_ids."""
    raise NotImplementedError()


# %% [hint]
# Index `token_ids` with the random indices to get the half, make a `(n_sequences, 1)` column of
# `bos_token_id` with `torch.full` (same dtype as token_ids), and `torch.cat` BOS, half, half on dim 1.

# %%
check("generate_repeated_tokens", generate_repeated_tokens)

# %%
HALF_LEN = 24
rep_tokens = generate_repeated_tokens(word_token_ids(model), 32, HALF_LEN, model.tokenizer.bos_token_id, seed=0)
rep_logits, rep_cache = model.run_with_cache(rep_tokens)
assert rep_tokens.shape == (32, 1 + 2 * HALF_LEN)
assert torch.equal(rep_tokens[:, 1 : 1 + HALF_LEN], rep_tokens[:, 1 + HALF_LEN :])

# %% [markdown]
# circuitsvis draws interactive attention patterns (hover over a token to see where it looks).
# It renders offline from JavaScript bundled in the package, but each plot embeds about 1.3 MB,
# so we draw one. Here are layer 0's heads on the first sequence (the first 16 tokens of each half
# would do as well; we show all 49):

# %%
# NBVAL_IGNORE_OUTPUT
str_tokens = model.to_str_tokens(rep_tokens[0])
cv.attention.attention_patterns(tokens=str_tokens, attention=rep_cache["pattern", 0][0])

# %% [markdown]
# The same patterns as a plotly heatmap, which works in every notebook viewer (rows are queries,
# columns keys). One head is a sharp sub-diagonal line: it attends to the previous token.

# %%
fig = px.imshow(
    rep_cache["pattern", 0][0].numpy(),
    facet_col=0,
    color_continuous_scale="Blues",
    labels=dict(x="key position", y="query position"),
    title="layer 0 attention, sequence 0",
)
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
# `pattern.diagonal(dim1=-2, dim2=-1)` has axes (batch, head, position); average axes 0 and -1.

# %%
check("current_token_scores", current_token_scores)


# %% [exercise] previous_token_scores difficulty=1 importance=4 minutes=5
def previous_token_scores(pattern: Float[Tensor, "batch head query key"]) -> Float[Tensor, " head"]:
    """Mean attention from each position to the one before it (queries 1 onwards)."""
    raise NotImplementedError()


# %% [hint]
# `diagonal(offset=-1, dim1=-2, dim2=-1)` holds the entries [q, q-1] for q = 1, 2, ...

# %%
check("previous_token_scores", previous_token_scores)


# %% [exercise] first_token_scores difficulty=1 importance=3 minutes=5
def first_token_scores(pattern: Float[Tensor, "batch head query key"]) -> Float[Tensor, " head"]:
    """Mean attention from each position to position 0 (the BOS), over batch and every query."""
    raise NotImplementedError()


# %% [hint]
# The key axis is last: `pattern[..., 0]`.

# %%
check("first_token_scores", first_token_scores)

# %% [markdown]
# To name heads, turn a (layer, head) table of scores into names `"L{layer}H{head}"`.


# %% [exercise] heads_above difficulty=1 importance=2 minutes=5
def heads_above(scores: Float[Tensor, "layer head"], threshold: float) -> list[str]:
    """Names "L{layer}H{head}" of the heads whose score exceeds threshold, in layer then head order."""
    raise NotImplementedError()


# %% [hint]
# `(scores > threshold).nonzero().tolist()` gives `[layer, head]` pairs in order.

# %%
check("heads_above", heads_above)


# %%
def per_layer(score_fn) -> Float[Tensor, "layer head"]:
    return torch.stack([score_fn(rep_cache["pattern", layer]) for layer in range(model.cfg.n_layers)])


detectors = {"current": current_token_scores, "previous": previous_token_scores, "first": first_token_scores}
scores = {kind: per_layer(fn) for kind, fn in detectors.items()}
for kind, table in scores.items():
    print(f"{kind}-token heads (score > 0.5):", heads_above(table, 0.5))
assert heads_above(scores["previous"], 0.5) == [metrics["heads"]["previous_token"]] == ["L0H3"]
assert scores["previous"][0, 3] > 0.9

# %% [markdown]
# One previous-token head, `L0H3`, with score above 0.9: the zoo's training script named the
# same head in `metrics.json`. Layer 0 also has heads that mostly attend to the current token.

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
# `logits[:, :-1].log_softmax(-1)`, then `.gather(-1, tokens[:, 1:, None])` and drop the last axis.

# %%
check("token_log_probs", token_log_probs)

# %%
loss_per_position = -token_log_probs(rep_logits, rep_tokens).mean(0)
first_half_loss = loss_per_position[:HALF_LEN].mean().item()
repeat_loss = loss_per_position[HALF_LEN:].mean().item()
print(
    f"loss on the first half {first_half_loss:.2f} (uniform guessing: {torch.log(torch.tensor(len(word_token_ids(model)))):.2f}), "
    f"on the repeat {repeat_loss:.2f}"
)
line(
    {"loss": loss_per_position.tolist()},
    title="loss per position on repeated random tokens",
    xaxis="position of the predicted token - 1",
    yaxis="loss",
).show()
assert first_half_loss > 5.5 and repeat_loss < 1.0

# %% [markdown]
# The first half costs about 6.4 nats (close to guessing among the ~620 words), the repeat about
# 0.6: the model copies. Which heads do it? An **induction head** at a token of the repeat attends
# to the token *after* that token's first copy, and copies it. In a sequence BOS + half + half,
# the query at position $p > $ `half_len` has its first copy at $p - $ `half_len`, so the target key
# is $p - $ `half_len` $+ 1$: a diagonal with offset $-($`half_len`$-1)$. The induction score is
# the mean attention on that diagonal over queries in the repeated half.


# %% [exercise] induction_scores difficulty=2 importance=5 minutes=12
def induction_scores(pattern: Float[Tensor, "batch head query key"], half_len: int) -> Float[Tensor, " head"]:
    """Mean attention from each token of the repeated half to the token just after its first copy.

    Sequences are BOS + half + half, so the query at position p (p > half_len) sees its token's
    first copy at p - half_len and the induction target at p - half_len + 1."""
    raise NotImplementedError()


# %% [hint]
# `pattern.diagonal(offset=-(half_len - 1), dim1=-2, dim2=-1)` starts at query half_len - 1.

# %% [hint]
# Queries half_len - 1 and half_len are still in the first half: drop the diagonal's first two entries.

# %%
check("induction_scores", induction_scores)

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
# `z[:, :, head_index] = 0.0`, then return z (editing the activation in a hook is fine).

# %%
check("ablate_head_hook", ablate_head_hook)


# %%
def repeat_loss_with(hooks) -> float:
    logits = model.run_with_hooks(rep_tokens, fwd_hooks=hooks)
    return -token_log_probs(logits, rep_tokens)[:, HALF_LEN:].mean().item()


def ablate(layer: int, head: int):
    return (f"blocks.{layer}.attn.hook_z", partial(ablate_head_hook, head_index=head))


ablated = {f"L{layer}H{head}": repeat_loss_with([ablate(layer, head)]) for layer in range(2) for head in range(4)}
all_induction = repeat_loss_with([ablate(1, head) for head in range(4)])
print(f"repeat loss, nothing ablated: {repeat_loss:.2f}")
for name, value in ablated.items():
    print(f"  {name} ablated: {value:.2f} (+{value - repeat_loss:.2f})")
print(f"  all four layer-1 heads ablated: {all_induction:.2f}")
assert ablated["L1H1"] - repeat_loss > 0.15  # the strongest induction head alone
assert ablated["L0H3"] - repeat_loss > 4.0  # the previous-token head: induction collapses
assert all_induction - repeat_loss > 3.0  # every induction head at once
assert max(ablated[f"L0H{h}"] for h in range(3)) - repeat_loss < 1.0  # other layer-0 heads matter less

# %% [markdown]
# The predictions hold, with a twist worth noticing. Ablating `L1H1`, the strongest induction
# head, raises the loss on the repeat by more than 0.15 nats (about 0.3) but not more: the other
# three layer-1 heads do the same job. Ablating all four, or the single previous-token head
# `L0H3` they all depend on, raises it by more than 3 nats, most of the way back to guessing.
# Had we named only `L1H1` and stopped at its attention pattern, we would have described the
# mechanism but mispredicted what removing it does. Zero ablation is crude (zero may be an
# input the model never sees; mean ablation replaces a head's output by its average instead),
# but here the effect is large enough that the conclusion does not hinge on that choice.

# %% [markdown]
# ## Part 5: direct logit attribution
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
    token that comes next there: components[c, p] @ W_U[:, next_tokens[p]]."""
    raise NotImplementedError()


# %% [hint]
# `W_U[:, next_tokens]` has axes (d_model, pos). Then `einops.einsum(components, that, "c p d, d p -> c p")`.

# %%
check("direct_logit_attribution", direct_logit_attribution)

# %%
seq = 0
head_outputs = einops.einsum(
    torch.stack([rep_cache["z", layer][seq] for layer in range(2)]),
    model.W_O,
    "layer pos head d_head, layer head d_head d_model -> layer head pos d_model",
)
names = ["embed", "pos_embed", *[f"L{l}H{h}" for l in range(2) for h in range(4)], "b_O"]
parts = torch.cat(
    [
        rep_cache["embed"][seq][None],
        rep_cache["pos_embed"][seq][None],
        head_outputs.flatten(0, 1),
        model.b_O.sum(0).expand(1, rep_tokens.shape[1], -1),
    ]
)
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
print("largest direct contribution on the repeat:", top)
assert top.startswith("L1"), top

# %% [markdown]
# The parts sum exactly to the logits (asserted). On the repeated half, the largest direct push
# towards the correct token comes from a layer-1 head: induction heads write the answer directly.
# `L0H3` contributes little directly, even though ablating it was the most damaging ablation: it
# acts *through* the layer-1 heads. DLA sees only direct effects, which is why it must be read
# alongside ablations.

# %% [markdown]
# ## Part 6: the circuit in the weights
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
# without multiplying it out; `.AB` forms it, and it has `.T`, `.eigenvalues`, `.norm()` and
# more. (We leave out LayerNorm here, a common simplification.)


# %% [exercise] full_ov_circuit difficulty=1 importance=4 minutes=8
def full_ov_circuit(
    W_E: Float[Tensor, "d_vocab d_model"],
    W_V: Float[Tensor, "d_model d_head"],
    W_O: Float[Tensor, "d_head d_model"],
    W_U: Float[Tensor, "d_model d_vocab"],
) -> FactoredMatrix:
    """W_E W_V W_O W_U as a FactoredMatrix (rank d_head, never formed in full):
    entry [s, d] is how much attending to token s raises the logit of token d."""
    raise NotImplementedError()


# %% [hint]
# Split the product at the head dimension: `FactoredMatrix(W_E @ W_V, W_O @ W_U)`.

# %%
check("full_ov_circuit", full_ov_circuit)


# %% [exercise] full_qk_circuit difficulty=1 importance=3 minutes=8
def full_qk_circuit(
    W_E: Float[Tensor, "d_vocab d_model"],
    W_Q: Float[Tensor, "d_model d_head"],
    W_K: Float[Tensor, "d_model d_head"],
) -> FactoredMatrix:
    """W_E W_Q (W_E W_K)^T as a FactoredMatrix: entry [q, k] is the attention score a query token q
    gives a key token k (token embeddings only, unscaled)."""
    raise NotImplementedError()


# %% [hint]
# Rows index queries, columns keys: `FactoredMatrix(W_E @ W_Q, (W_E @ W_K).T)`.

# %%
check("full_qk_circuit", full_qk_circuit)

# %%
words = word_token_ids(model)
ov = full_ov_circuit(model.W_E, model.W_V[1, 1], model.W_O[1, 1], model.W_U).AB[words][:, words]
copy_accuracy = (ov.argmax(-1) == torch.arange(len(words))).float().mean().item()
top5 = (ov.topk(5, dim=-1).indices == torch.arange(len(words))[:, None]).any(-1).float().mean().item()
print(
    f"L1H1's OV circuit: the token it raises most is the attended token itself for {copy_accuracy:.0%} of "
    f"tokens, and is among its top 5 for {top5:.0%} (chance: {5 / len(words):.1%})"
)
assert copy_accuracy > 0.4 and top5 > 0.75
qk0 = full_qk_circuit(model.W_E, model.W_Q[0, 3], model.W_K[0, 3])
assert qk0.AB.shape == (model.cfg.d_vocab, model.cfg.d_vocab) and qk0.mdim == model.cfg.d_head

# %% [markdown]
# The induction head's OV circuit copies: for over 40% of tokens (about half), attending to a
# token raises that same token's logit more than any other of the ~620, and for over 75% the
# token is in its top 5, against under 1% by chance. (It is one of four heads sharing the job,
# and LayerNorm is left out, so it need not copy perfectly on its own.) (L0H3's embedding-only QK circuit tells us little: a
# previous-token head finds its key by *position*, not by token.)
#
# **Composition.** A layer-1 head reads the residual stream, which contains layer-0 heads'
# outputs; it can use them in its queries (Q-composition), keys (K-composition) or values
# (V-composition). An induction head needs K-composition with a previous-token head: its keys
# must say "the token before me was X". The composition score of a writing matrix $W_A$ and a
# reading matrix $W_B$ (both d_model × d_model, in TransformerLens' convention $x W$) is
#
# $$\frac{\|W_A W_B\|_F}{\|W_A\|_F\,\|W_B\|_F}$$
#
# For K-composition, $W_A$ is the layer-0 head's $W_V W_O$ and $W_B$ is the layer-1 head's
# $(W_Q W_K^\top)^\top$ (the key side reads through $W_K W_Q^\top$).


# %% [exercise] composition_score difficulty=1 importance=4 minutes=8
def composition_score(
    W_A: Float[Tensor, "d_model d_model"], W_B: Float[Tensor, "d_model d_model"]
) -> Float[Tensor, ""]:
    """||W_A W_B||_F / (||W_A||_F ||W_B||_F): how much of what W_A writes W_B reads."""
    raise NotImplementedError()


# %% [hint]
# `torch.linalg.matrix_norm` is the Frobenius norm by default.

# %%
check("composition_score", composition_score)

# %%
W_OV0 = FactoredMatrix(model.W_V[0], model.W_O[0]).AB  # (head, d_model, d_model)
W_QK1 = FactoredMatrix(model.W_Q[1], model.W_K[1].transpose(-1, -2)).AB
k_comp = torch.tensor([[composition_score(W_OV0[h0], W_QK1[h1].T).item() for h1 in range(4)] for h0 in range(4)])
fig = px.imshow(
    k_comp.numpy(),
    labels=dict(x="layer-1 head", y="layer-0 head"),
    color_continuous_scale="Blues",
    title="K-composition scores",
    text_auto=".2f",
)
fig.show()
assert k_comp.argmax(0).tolist() == [3, 3, 3, 3]  # every layer-1 head's keys read L0H3 most

# %% [markdown]
# For every layer-1 head, the layer-0 head whose output its keys read most is `L0H3`, the
# previous-token head: the circuit the attention patterns suggested and the ablations confirmed
# is also visible in the weights alone. (Random matrices give composition scores of order
# $1/\sqrt{d_\text{model}}$; interpret the sizes relative to that baseline.)
#
# ## Summary
#
# - TransformerLens exposes every activation at a named hook point; `run_with_cache` records them
#   and `run_with_hooks` edits them.
# - Head detectors turn attention patterns into scores: `L0H3` is a previous-token head, and all
#   layer-1 heads are induction heads, `L1H1` the strongest.
# - The model's loss drops from ~6.4 to ~0.6 nats on the repeated half. Ablation tested the story:
#   removing `L0H3` or all induction heads destroys that; removing `L1H1` alone costs ~0.3 nats,
#   because its siblings are redundant with it. Interpretations are predictions; test them.
# - DLA splits the logits exactly into components' direct effects, and misses indirect ones.
# - The weights show the same circuit: the induction head's OV circuit copies, and its keys
#   K-compose with the previous-token head.
