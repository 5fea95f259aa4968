# %% [markdown]
# # 1.4.2 Attribution graphs with transcoders
#
# Which computation turns "Rome is in" into " Italy"? Ameisen et al., *Circuit Tracing: Revealing
# Computational Graphs in Language Models* (2025), answer questions like that with an **attribution graph**:
# a graph whose nodes are interpretable features at each token position, whose edges say how much each node
# directly pushed each other node, and whose sinks are the logits. Lindsey et al., *On the Biology of a
# Large Language Model* (2025), used such graphs to trace multi-hop reasoning, planning in poems and more in
# Claude 3.5 Haiku. The recipe has four steps:
#
# 1. **A replacement model.** Each MLP is replaced by a *transcoder*: a sparse dictionary that reads what
#    the MLP reads and predicts what it writes, through features that are (one hopes) interpretable. What the
#    transcoder gets wrong is kept as an **error node**, so for the prompt being explained the replacement
#    computes exactly what the model computes.
# 2. **Linearisation.** Freeze the attention patterns and the LayerNorm scales at their values on this
#    prompt. Then everything between one feature's output and another feature's input is linear, and the
#    direct effect of a source node on a target node is well defined: the source's activation times the
#    gradient of the target's pre-activation along the source's decoder direction. Those effects add up
#    exactly to the target's pre-activation (plus constant biases), which you will assert.
# 3. **Pruning.** A graph over every active feature at every position is far too big to read. Keep the nodes
#    and edges that carry most of the influence on the logit.
# 4. **Validation by intervention.** A graph is a hypothesis. Ablate the features it names, or swap them
#    for another prompt's, and check that the model's output moves as the graph predicts.
#
# You will do all four on the zoo's `gpt2-mini` (4 layers, d_model 128) with per-layer transcoders the
# zoo ships (`zoo/transcoders/gpt2-mini/CARD.md`), on fact recall, where we know the truth: the story world
# states "Rome is in Italy." for each of 24 cities (`zoo.corpus.CITY_COUNTRY`), so we know which token must
# carry the answer.
#
# **Why not circuit-tracer?** The paper's authors released `circuit-tracer`, a library that builds these
# graphs for Gemma, Llama and Qwen models with published transcoders. It pins `transformers <= 4.57.3` and
# `huggingface_hub < 1.0`, which this course's stack (TransformerLens 3.9, SAELens 6, transformers 5) cannot
# share, and its transcoders and models download from the hub. So you build the pieces yourself, which is
# also the best way to know what the library computes. Online, in an environment of its own, it runs like:
#
# ```python
# from circuit_tracer import ReplacementModel, attribute
# model = ReplacementModel.from_pretrained("google/gemma-2-2b", "gemma")  # downloads the model and transcoders
# graph = attribute("The capital of the state containing Dallas is", model)
# ```
#
# **Where this differs from the paper**, each measured below: per-layer transcoders rather than
# cross-layer ones; a model of 4 layers and prompts of a dozen tokens rather than Claude 3.5 Haiku; and
# what the error nodes carry here.
#
# **Prerequisites**: 1.2 (TransformerLens hooks and caches) and 1.3.3 (sparse dictionaries: SAEs).

# %%
import json
from collections.abc import Callable

import plotly.graph_objects as go
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens import ActivationCache, HookedTransformer
from transformer_lens.hook_points import HookPoint  # noqa: F401 (for your hooks' type annotations)

from tests.checks.chapter1_transformer_interp.attribution_graphs import check  # noqa: F401 (used by the check cells the build adds)
from zoo import corpus, load_model
from zoo.transcoders import TRANSCODERS_DIR, Transcoder, load_transcoders

torch.manual_seed(0)
torch.set_grad_enabled(False)  # we read the model; the gradient exercise turns gradients on itself
torch.set_num_threads(1)  # a 128-wide model runs fastest on one thread

Read = tuple[str, int, Float[Tensor, " d"]]  # (hook name, position, vector): act[hook][position] @ vector

# %% [markdown]
# ## Part 1: transcoders and the replacement model
#
# A transcoder for layer L reads the MLP's input (TransformerLens's `blocks.{L}.ln2.hook_normalized`) and
# predicts the MLP's output (`blocks.{L}.hook_mlp_out`):
#
# $$\text{features} = \mathrm{ReLU}(x W_{enc} + b_{enc}), \qquad \widehat{\text{mlp\_out}} = \text{features}\, W_{dec} + b_{dec}.$$
#
# Unlike an SAE, it reconstructs a different vector from the one it reads: it is a sparse stand-in for the
# MLP's *computation*. One detail of TransformerLens: `ln2.hook_normalized` is the residual stream centred
# and divided by its scale, *before* LayerNorm's weight and bias; the MLP reads that times the weight plus
# the bias, an affine map the transcoder's encoder absorbs.

# %%
model = load_model("gpt2-mini", device="cpu")
transcoders = load_transcoders("gpt2-mini")
card_metrics = json.loads((TRANSCODERS_DIR / "gpt2-mini" / "metrics.json").read_text())
print(transcoders[0])
for layer, measured in card_metrics["layers"].items():
    print(f"layer {layer}: explained variance of the MLP output {measured['explained_variance']['value']:.3f}, "
          f"L0 {measured['l0']['value']:.1f} active features per token (test split, BOS excluded)")  # fmt: skip
n_layers, d_model = model.cfg.n_layers, model.cfg.d_model
assert len(transcoders) == n_layers and all(
    tc.hook_in == f"blocks.{tc.layer}.ln2.hook_normalized" for tc in transcoders
)

# %% [markdown]
# The prompt: two cities, then the fact about the second. The answer depends on the token right before
# "is in", not on the first city.

# %%
PROMPT, ANSWER, OTHER_CITY_ANSWER = "Mary travelled from Paris to Rome. Rome is in", " Italy", " France"
tokens = model.to_tokens(PROMPT)[0]
str_tokens = model.to_str_tokens(PROMPT)
print(list(enumerate(str_tokens)))
logits, cache = model.run_with_cache(tokens[None])
answer, other_answer = model.to_single_token(ANSWER), model.to_single_token(OTHER_CITY_ANSWER)
probs = logits[0, -1].softmax(-1)
print(f"P({ANSWER!r}) = {probs[answer]:.3f}, P({OTHER_CITY_ANSWER!r}) = {probs[other_answer]:.3f}")
assert logits[0, -1].argmax() == answer and probs[answer] > 0.9


# %% [exercise] features_and_error difficulty=1 importance=4 minutes=5
def features_and_error(
    transcoder: Transcoder, mlp_in: Float[Tensor, "pos d_model"], mlp_out: Float[Tensor, "pos d_model"]
) -> tuple[Float[Tensor, "pos d_tc"], Float[Tensor, "pos d_model"]]:
    """The transcoder's feature activations on the MLP's input, and the error term: what the MLP wrote
    minus what the transcoder writes (its decoder bias included), so that decode(features) + error is
    exactly the MLP's output."""
    raise NotImplementedError()


# %% [hint]
# The features are the transcoder's encoding of what the MLP read. What must be added to the transcoder's
# whole output, bias and all, to give back exactly what the MLP wrote?

# %%
found = [features_and_error(tc, cache[tc.hook_in][0], cache[tc.hook_out][0]) for tc in transcoders]
feature_acts = torch.stack([acts for acts, _ in found])  # [layer, pos, d_tc]
errors = torch.stack([error for _, error in found])  # [layer, pos, d_model]
mlp_outs = torch.stack([cache[tc.hook_out][0] for tc in transcoders])
l0 = (feature_acts > 0).sum(-1)
relative_error = errors.norm(dim=-1) / mlp_outs.norm(dim=-1)
print("active features per (layer, position):\n", l0)
print("|error| / |MLP output| per (layer, position):\n", relative_error.round(decimals=2))
assert torch.allclose(
    mlp_outs, torch.stack([tc.decode(a) for tc, a in zip(transcoders, feature_acts)]) + errors, atol=1e-5
)

# %% [markdown]
# The transcoders were trained without the BOS token (its MLP output is the same in every row and far from
# the rest; see the card), so at position 0 their features mean little, and the error there is larger than
# at any later position. Position 0 is the same in every prompt: whatever it contributes is a constant. So
# we leave its features out of the graph, and position 0's whole MLP output goes into its error node (the
# zoo's own splicing code, `zoo.transcoders.replaced_mlps`, keeps the real MLP output there for the same
# reason).

# %%
assert relative_error[:, 0].mean() > relative_error[:, 1:].mean(-1).max()
feature_acts[:, 0] = 0.0
errors = mlp_outs - torch.stack([tc.decode(a) for tc, a in zip(transcoders, feature_acts)])
print("|error| / |MLP output| at positions 1+, mean per layer:", relative_error[:, 1:].mean(-1).round(decimals=2))

# %% [markdown]
# **The replacement model** runs the model with each MLP's output replaced by its transcoder's output, the
# features computed from the replacement's own residual stream. Adding the errors of the clean run makes it
# exact on this prompt; without them it is the transcoders alone, and how far that drifts from the model says
# how much the error nodes will carry.


# %% [exercise] run_replacement difficulty=2 importance=4 minutes=15
def run_replacement(
    model: HookedTransformer,
    transcoders: list[Transcoder],
    tokens: Int[Tensor, " pos"],
    errors: Float[Tensor, "layer pos d_model"] | None,
) -> Float[Tensor, "pos d_vocab"]:
    """The logits of the replacement model: every MLP's output replaced by its transcoder's output on the
    MLP input of this run (features computed from the replacement's own residual stream), plus
    errors[layer] when errors is given (errors=None: the transcoders alone)."""
    raise NotImplementedError()


# %% [hint]
# A hook on the transcoder's hook_in sees the MLP's input of this run; the hook on its hook_out can return
# anything in place of the MLP's output. How does the second hook get what the first one saw?

# %% [hint]
# Keep the input in a dict keyed by layer from a hook that returns None; in the hook_out hook, return
# `tc.decode(tc.encode(stored[layer]))` plus `errors[layer]`. Bind loop variables with default arguments.

# %%
exact_errors = torch.stack([error for _, error in found])  # the errors with the BOS features left in
replaced = run_replacement(model, transcoders, tokens, exact_errors)
max_difference = (replaced - logits[0]).abs().max().item()
print(f"replacement model with error terms: max |logit difference| {max_difference:.1e}")
assert max_difference < 1e-4

# %% [markdown]
# Without the error terms, how often does the replacement still recall the fact? On every city's
# "X is in" prompt, and on two-city prompts like ours, scored as the zoo scores fact recall: is the right
# country the most likely of the eight?


# %%
def fact_prompts() -> list[tuple[str, str]]:
    """Each city's fact prompt, alone and after a sentence that names another city first."""
    cities = sorted(corpus.CITY_COUNTRY)
    rows = []
    for i, city in enumerate(cities):
        other = cities[(i + 5) % len(cities)]
        rows.append((f"{city} is in", f" {corpus.CITY_COUNTRY[city]}"))
        rows.append((f"Mary travelled from {other} to {city}. {city} is in", f" {corpus.CITY_COUNTRY[city]}"))
    return rows


COUNTRY_IDS = torch.tensor([model.to_single_token(f" {country}") for country in corpus.COUNTRIES])


def fact_recall(with_errors: bool) -> Tensor:
    """For each fact prompt, whether the right country has the largest logit of the eight countries (as
    zoo.evaluate scores fact recall); the BOS position keeps its real MLP output."""
    right = []
    for prompt, country in fact_prompts():
        prompt_tokens = model.to_tokens(prompt)[0]
        _, prompt_cache = model.run_with_cache(prompt_tokens[None])
        prompt_errors = torch.zeros(n_layers, len(prompt_tokens), d_model)
        for tc in transcoders:
            _, error = features_and_error(tc, prompt_cache[tc.hook_in][0], prompt_cache[tc.hook_out][0])
            prompt_errors[tc.layer] = error if with_errors else 0.0
            prompt_errors[tc.layer, 0] = error[0]  # the BOS position keeps its real MLP output
        final = run_replacement(model, transcoders, prompt_tokens, prompt_errors)[-1]
        right.append(COUNTRY_IDS[final[COUNTRY_IDS].argmax()].item() == model.to_single_token(country))
    return torch.tensor(right)


exact_recall, replacement_recall = fact_recall(with_errors=True), fact_recall(with_errors=False)
replacement_accuracy = replacement_recall.float().mean().item()
alone, two_cities = replacement_recall[0::2].float().mean().item(), replacement_recall[1::2].float().mean().item()
print(f"fact recall: with error terms {exact_recall.float().mean():.2f}; transcoders alone {replacement_accuracy:.2f} "
      f"({alone:.2f} on 'X is in', {two_cities:.2f} after another city)")  # fmt: skip
assert exact_recall.all() and alone >= 0.9 and two_cities >= 0.9
# The zoo measured the first number when it trained the transcoders (with its own splicing code).
assert abs(alone - card_metrics["all_layers_behaviour"]["spliced"]["fact_recall_accuracy"]["value"]) < 0.05

# %% [markdown]
# With the error terms the replacement is the model, so it is right on every prompt. The transcoders alone
# are right on at least 90% of both kinds of prompt (the zoo measured the same on the one-city prompts when
# it trained them). So on this task they have kept the *answer*; whether they also keep the *way* the model
# reaches it is what the error nodes of the graph will tell (Part 4 measures their share of the influence).

# %% [markdown]
# ## Part 2: linearising the model
#
# Attention and LayerNorm are the two nonlinear parts left besides the MLPs. Attention is bilinear in the
# residual stream (the pattern depends on it through queries and keys); LayerNorm divides by the norm.
# Freeze both at their values on this prompt: the pattern becomes a fixed matrix that mixes positions, the
# LayerNorm a fixed affine map (centring, dividing by a fixed scale, weight and bias). Then the value the
# model computes at any later point is an affine function of what earlier components wrote into the
# residual stream. Ameisen et al. freeze the same two things: their graphs explain what attention *moves*
# (the OV circuit), not *why* it attends where it does (the QK circuit).


# %% [exercise] freeze_hooks difficulty=2 importance=4 minutes=10
def freeze_hooks(cache: ActivationCache) -> list[tuple[str, Callable]]:
    """Forward hooks that replace every attention pattern (hook_pattern) and every LayerNorm scale
    (hook_scale) with its value in `cache` (a run on one prompt), broadcast over the batch of the run
    they are used in. With them the model is linear in its residual-stream writes, apart from the MLPs."""
    raise NotImplementedError()


# %% [hint]
# Which cached activations hold the attention patterns and the LayerNorm scales? A hook that returns a tensor
# replaces the activation; the run may have a larger batch than the cache.

# %% [hint]
# Loop over `cache.items()`, keep the names ending in "hook_pattern" or "hook_scale", and return a function
# that ignores the live activation and returns `value.expand(act.shape)`. Bind `value` with a default argument
# or a small factory function.

# %%
frozen_logits = model.run_with_hooks(tokens[None], fwd_hooks=freeze_hooks(cache))
assert torch.allclose(frozen_logits, logits, atol=1e-5)  # on the cached prompt itself, nothing changes

# %% [markdown]
# Now the gradients. A node's **read** is a dot product of an activation with a vector at one position: a
# feature at layer L reads `blocks.{L}.ln2.hook_normalized` with its encoder column `W_enc[:, k]` (the
# pre-activation is that plus `b_enc[k]`); a logit reads `ln_final.hook_normalized`. The **writes** are what
# each MLP puts into the residual stream at each position (`hook_mlp_out`) and the embeddings
# (`blocks.0.hook_resid_pre`, token plus position embedding). In the linearised model, with every MLP's
# output held at its cached value (a path through an MLP goes through one of its feature
# or error nodes, and the graph holds it as that node's edges), the gradient of a read with
# respect to a write at (layer, position) is one vector per read. With hundreds of reads, compute them in
# one batched backward pass: row i of a batch of copies of the prompt computes read i, and each row's
# writes get their own zero tensor to differentiate with respect to.


# %% [exercise] linearised_gradients difficulty=4 importance=5 minutes=35
def linearised_gradients(
    model: HookedTransformer, tokens: Int[Tensor, " pos"], cache: ActivationCache, reads: list[Read]
) -> tuple[Float[Tensor, "target layer pos d_model"], Float[Tensor, "target pos d_model"]]:
    """For each read (hook name, position, vector), the gradient of act[hook][position] @ vector with respect
    to every MLP's output (hook_mlp_out) at every position and to the embeddings (blocks.0.hook_resid_pre),
    in the model linearised around `cache` (patterns and LayerNorm scales frozen) with every MLP output held
    at its cached value, so that no gradient flows through an MLP. One batched backward pass: row i of the
    batch computes read i."""
    raise NotImplementedError()


# %% [hint]
# Three kinds of hook: the frozen patterns and scales; hooks that replace each write (every hook_mlp_out and
# blocks.0.hook_resid_pre) with its cached value plus a zero tensor that requires gradients; hooks that store
# the activations the reads need. What must be on for backward to work, given the notebook turns it off?

# %% [hint]
# Make `mlp_writes = torch.zeros(n_reads, n_layers, pos, d_model, requires_grad=True)` and an embedding
# twin inside `torch.enable_grad()`; run `tokens.expand(n_reads, -1)`; stack
# `stored[name][i, pos] @ vector` over the reads, call `.sum().backward()`, and return the two `.grad`s.

# %% [markdown]
# The logit we explain is the difference between the answer and the first city's country, logit(" Italy") -
# logit(" France"): why the model says the second city's country, not the first's. A logit is read at
# `ln_final.hook_normalized` too, through the final LayerNorm's weight and the unembedding.


# %% [exercise] logit_read difficulty=2 importance=3 minutes=10
def logit_read(model: HookedTransformer, token: int, other: int | None, position: int) -> Read:
    """The read whose value is the logit of `token` at `position` (minus `other`'s logit when other is given),
    up to terms that do not depend on the residual stream: a vector read at ln_final.hook_normalized."""
    raise NotImplementedError()


# %% [hint]
# Write the logit as a function of the normalised residual x: (x * w + b) @ W_U[:, token] + b_U[token].
# Which part is a dot product of x with a vector, and which part does not depend on x?

# %% [markdown]
# ## Part 3: the attribution graph
#
# The nodes: every active feature (at positions 1 and later), an error node per (layer, position), an
# embedding node per position, and the logit difference. Each feature is a row (layer, position, index).

# %%
features = feature_acts.nonzero()  # [n_features, 3], ordered by layer, position, index
n_features, n_pos = len(features), len(tokens)
embeddings = cache["blocks.0.hook_resid_pre"][0]
W_enc = torch.stack([tc.W_enc for tc in transcoders])
W_dec = torch.stack([tc.W_dec for tc in transcoders])
b_enc = torch.stack([tc.b_enc for tc in transcoders])
b_dec = torch.stack([tc.b_dec for tc in transcoders])
feature_reads = [(transcoders[l].hook_in, p, W_enc[l, :, k]) for l, p, k in features.tolist()]
target_read = logit_read(model, answer, other_answer, -1)
reads = [*feature_reads, target_read]
mlp_grads, embed_grads = linearised_gradients(model, tokens, cache, reads)
print(f"{n_features} active features; gradients {tuple(mlp_grads.shape)} and {tuple(embed_grads.shape)}")
assert mlp_grads[:n_features][torch.arange(n_features), features[:, 0]].abs().max() == 0  # no edge within a layer


# %% [exercise] attribution_rows difficulty=3 importance=5 minutes=20
def attribution_rows(
    features: Int[Tensor, "feature 3"],
    feature_acts: Float[Tensor, "layer pos d_tc"],
    W_dec: Float[Tensor, "layer d_tc d_model"],
    errors: Float[Tensor, "layer pos d_model"],
    embeddings: Float[Tensor, "pos d_model"],
    mlp_grads: Float[Tensor, "target layer pos d_model"],
    embed_grads: Float[Tensor, "target pos d_model"],
) -> Float[Tensor, "target source"]:
    """Direct attributions to each read from every source node: each feature in `features` (rows of
    layer, position, index; its activation times the gradient at its layer and position dotted with its
    decoder row), then every error node in (layer, position) order (error dotted with the gradient), then
    every position's embedding (embedding dotted with the embedding gradient)."""
    raise NotImplementedError()


# %% [hint]
# For one feature source (layer l, position p, index k) and one target t: what did it write, and how does the
# target change per unit written there? The same question for an error node and an embedding.

# %% [hint]
# Index the gradients with the features' layers and positions at once (`mlp_grads[:, layers, positions]`,
# shape [target, feature, d_model]), multiply by `W_dec[layers, indices]` and sum over d_model, then scale by
# the activations; errors and embeddings are einsums over d_model, flattened in (layer, position) order.

# %% [markdown]
# **Completeness.** The linearised model is affine in its writes, so each read is the sum of its
# attributions plus what it would be with every source removed: embeddings zero and each MLP writing only
# its decoder bias. That remainder comes from the biases of attention, the LayerNorms and the transcoders.


# %% [exercise] constant_terms difficulty=2 importance=4 minutes=10
def constant_terms(
    model: HookedTransformer,
    tokens: Int[Tensor, " pos"],
    cache: ActivationCache,
    b_dec: Float[Tensor, "layer d_model"],
    reads: list[Read],
) -> Float[Tensor, " target"]:
    """What each read is in the linearised model when every source node is removed: embeddings zero and
    each MLP's output only its transcoder's decoder bias. The part of each read that no node explains
    (the biases of attention, LayerNorms and decoders)."""
    raise NotImplementedError()


# %% [hint]
# The same hooks as for the gradients, but the writes are replaced by constants instead of cached values plus
# a tensor to differentiate. Which constant does each MLP write when its features and error are removed?

# %%
rows = attribution_rows(features, feature_acts, W_dec, errors, embeddings, mlp_grads, embed_grads)
constants = constant_terms(model, tokens, cache, b_dec, reads)
read_values = torch.stack([cache[name][0, pos] @ vector for name, pos, vector in reads])
pre_activations = read_values[:n_features] + b_enc[features[:, 0], features[:, 2]]
completeness_gap = (rows.sum(-1) + constants - read_values).abs().max().item()
print(f"max |read - (sum of attributions + constant)| over {len(reads)} reads: {completeness_gap:.1e}")
assert completeness_gap < 1e-3
# a feature is active exactly when its pre-activation is positive, and then equals it
assert torch.allclose(pre_activations.relu(), feature_acts[features.unbind(-1)], atol=1e-4)
logit_row = rows[-1]
print(
    f"logit difference read {read_values[-1]:.2f} = attributions {logit_row.sum():.2f} + constant {constants[-1]:.2f}"
)

# %% [markdown]
# Every attribution into every node adds up, with its constant, to that node's value: the graph is a complete
# account of the linearised model. Now the adjacency matrix, a square matrix over all nodes, ordered
# features, errors, embeddings, logit; entry [target, source]. Errors and embeddings have no inputs (their
# rows are zero); each feature's row holds the attributions into it, and the last row the logit's. Inactive
# features are not nodes: on this prompt they contribute nothing.

# %%
n_nodes = n_features + n_layers * n_pos + n_pos + 1
adjacency = torch.zeros(n_nodes, n_nodes)
adjacency[:n_features, : rows.shape[1]] = rows[:n_features]
adjacency[-1, : rows.shape[1]] = rows[-1]
ERRORS = slice(n_features, n_features + n_layers * n_pos)
EMBEDDINGS = slice(ERRORS.stop, ERRORS.stop + n_pos)
LOGIT = n_nodes - 1
node_layer = torch.cat([features[:, 0], torch.arange(n_layers).repeat_interleave(n_pos),
                        torch.full((n_pos,), -1), torch.tensor([n_layers])])  # fmt: skip
node_pos = torch.cat(
    [features[:, 1], torch.arange(n_pos).repeat(n_layers), torch.arange(n_pos), torch.tensor([n_pos - 1])]
)
node_kind = ["feature"] * n_features + ["error"] * (n_layers * n_pos) + ["embedding"] * n_pos + ["logit"]
node_activation = torch.cat([feature_acts[features.unbind(-1)], torch.ones(n_nodes - n_features)])
print(f"{n_nodes} nodes, {int((adjacency != 0).sum())} nonzero edges")
# No cycles, and no path longer than embedding -> a feature in every layer -> logit (n_layers + 1 edges).
assert torch.linalg.matrix_power((adjacency != 0).float(), n_layers + 2).count_nonzero() == 0

# %% [markdown]
# ## Part 4: pruning by influence
#
# A node matters for the logit through every path from it, not only through a direct edge. Ameisen et al.
# measure **indirect influence**: normalise the absolute edge weights so that each node's inputs sum to 1,
# and sum the products along every path. With W that normalised matrix, paths of length k are W^k, and
# since the graph has no cycles the series stops: the sum of all paths of length 1 or more is (I - W)^-1 - I.
# Because each row sums to 1, the influence of the *source* nodes (errors and embeddings, which have no
# inputs) on the logit sums to 1: every path ends at one of them.


# %% [exercise] indirect_influence difficulty=3 importance=4 minutes=15
def indirect_influence(adjacency: Float[Tensor, "node node"]) -> Float[Tensor, "node node"]:
    """Entry [t, s]: the summed influence of s on t over every path of length at least 1, where each edge
    weighs |adjacency[t, s]| divided by the sum of |adjacency[t, :]| (a row of zeros stays zero). The
    graph has no cycles, so the sum of the powers of that matrix is finite: (I - W)^-1 - I."""
    raise NotImplementedError()


# %% [hint]
# Normalise |A| by its rows, not its columns: a row is everything that flows into one target. Which power
# series does (I - W)^-1 sum, and which of its terms are not paths?

# %%
influence = indirect_influence(adjacency)
logit_influence = influence[LOGIT]
source_share = {
    kind: logit_influence[part].sum().item() for kind, part in [("errors", ERRORS), ("embeddings", EMBEDDINGS)]
}
print(
    "share of the logit's influence ending at each kind of source:", {k: round(v, 3) for k, v in source_share.items()}
)
assert abs(sum(source_share.values()) - 1) < 1e-4

# %% [markdown]
# Now keep the nodes that carry most of it. Rank the features by their influence on the logit and keep the
# fewest whose influence adds up to 80% of all the features' influence; errors, embeddings and the logit are
# always kept. Then score each surviving edge by its normalised weight times its target's influence on the
# logit (the logit's own edges count in full) and keep the edges that carry 98% of that score. This is a
# simplified form of circuit-tracer's pruning, with its default thresholds (0.8 for nodes, 0.98 for edges);
# it weighs several target logits by their probabilities, where we have one logit difference.


# %% [exercise] prune_nodes difficulty=2 importance=4 minutes=10
def prune_nodes(
    scores: Float[Tensor, " node"], threshold: float, always_keep: Bool[Tensor, " node"]
) -> Bool[Tensor, " node"]:
    """The nodes to keep: the fewest highest-scoring nodes whose scores sum to at least `threshold` of the
    total (the node that crosses the threshold is kept; ties in score keep the earlier node first), plus
    every node in always_keep."""
    raise NotImplementedError()


# %% [hint]
# Sort, then take the cumulative share of the total. Which node is the first one you may stop at?


# %% [exercise] prune_edges difficulty=2 importance=3 minutes=15
def prune_edges(
    adjacency: Float[Tensor, "node node"],
    keep_nodes: Bool[Tensor, " node"],
    node_scores: Float[Tensor, " node"],
    threshold: float,
) -> Bool[Tensor, "node node"]:
    """The edges to keep among the kept nodes. An edge t <- s scores |adjacency[t, s]| / (the sum of |row t|
    over kept sources) times node_scores[t]; keep the fewest highest-scoring edges whose scores sum to at
    least `threshold` of the total (ties keep the earlier edge in row-major order first)."""
    raise NotImplementedError()


# %% [hint]
# Edges touching a pruned node are gone before anything is normalised, so a row's weights are shares of what
# its kept sources send. Then it is prune_nodes again, on the flattened edge scores.

# %%
is_feature = torch.arange(n_nodes) < n_features
node_scores = torch.where(is_feature, logit_influence, 0.0)
keep_nodes = prune_nodes(node_scores, 0.8, always_keep=~is_feature)
edge_node_scores = logit_influence.clone()
edge_node_scores[LOGIT] = 1.0
keep_edges = prune_edges(adjacency, keep_nodes, edge_node_scores, 0.98)
n_kept = int(keep_nodes[:n_features].sum())
print(f"kept {n_kept} of {n_features} features and {int(keep_edges.sum())} of {int((adjacency != 0).sum())} edges")
assert n_kept < n_features / 4


# %% [markdown]
# A rendering, features placed by (position, layer); an edge's width is its weight, blue for positive, red
# for negative. To label the features we use the corpus: run every fact prompt of Part 1, and record each
# feature's mean activation at the last position for each answer country. A feature is labelled with the
# country it fires for most, and the share of its activation that country gets (1/8 would be no preference).
# Hover over a node for its label, activation and influence.

# %%
fact_rows = fact_prompts()
country_activation = torch.zeros(n_layers, len(corpus.COUNTRIES), transcoders[0].d_transcoder)
for prompt, country in fact_rows:
    _, fact_cache = model.run_with_cache(
        model.to_tokens(prompt), names_filter=lambda name: "ln2.hook_normalized" in name
    )
    for tc in transcoders:
        country_activation[tc.layer, corpus.COUNTRIES.index(country.strip())] += tc.encode(
            fact_cache[tc.hook_in][0, -1]
        )
country_activation /= len(fact_rows) / len(corpus.COUNTRIES)


def feature_label(layer: int, index: int) -> str:
    """The answer country whose fact prompts activate the feature most at the last position, with its share."""
    by_country = country_activation[layer, :, index]
    if by_country.sum() == 0:
        return "silent on facts"
    return f"{corpus.COUNTRIES[by_country.argmax()]} {by_country.max() / by_country.sum():.0%}"


def draw_graph(keep_nodes: Tensor, keep_edges: Tensor, title: str) -> go.Figure:
    """The pruned graph: x = position (features of one cell spread out), y = layer (embeddings below, logit above)."""
    xs, ys = node_pos.float().clone(), node_layer.float().clone()
    for cell in {(int(l), int(p)) for l, p in zip(node_layer, node_pos)}:
        members = [i for i in range(n_nodes) if keep_nodes[i] and (node_layer[i], node_pos[i]) == cell]
        for rank, i in enumerate(members):
            xs[i] += 0.7 * (rank + 0.5) / len(members) - 0.35
    fig = go.Figure()
    weights = adjacency * keep_edges
    scale = weights.abs().max()
    for sign, colour in [(1, "royalblue"), (-1, "crimson")]:
        for low, high, width in [(0.0, 0.1, 0.5), (0.1, 0.4, 2.0), (0.4, 1.01, 5.0)]:
            segments_x, segments_y = [], []
            strength = (weights * sign).clamp(min=0) / scale
            for t, s in ((strength > low) & (strength <= high)).nonzero().tolist():
                segments_x += [xs[s].item(), xs[t].item(), None]
                segments_y += [ys[s].item(), ys[t].item(), None]
            fig.add_trace(go.Scatter(x=segments_x, y=segments_y, mode="lines", hoverinfo="skip", showlegend=False,
                                     line=dict(color=colour, width=width), opacity=0.5))  # fmt: skip
    shown = keep_nodes.nonzero()[:, 0].tolist()
    text = []
    for i in shown:
        if node_kind[i] == "feature":
            layer, pos, index = features[i].tolist()
            text.append(f"L{layer}#{index} → {feature_label(layer, index)!r}<br>act {node_activation[i]:.2f}")
        else:
            text.append(f"{node_kind[i]} L{int(node_layer[i])} P{int(node_pos[i])}")
        text[-1] += f", influence {logit_influence[i]:.3f}"
    fig.add_trace(go.Scatter(
        x=xs[shown], y=ys[shown], mode="markers", hovertext=text, hoverinfo="text", showlegend=False,
        marker=dict(size=[14 if node_kind[i] == "feature" else 9 for i in shown],
                    color=[dict(feature="orange", error="grey", embedding="green", logit="black")[node_kind[i]]
                           for i in shown]),
    ))  # fmt: skip
    fig.update_layout(
        title=title, height=500, xaxis=dict(tickvals=list(range(n_pos)), ticktext=[repr(t) for t in str_tokens]),
        yaxis=dict(tickvals=[-1, *range(n_layers), n_layers], ticktext=["embed", *[f"L{l}" for l in range(n_layers)], "logit"]),
    )  # fmt: skip
    return fig


draw_graph(keep_nodes, keep_edges, f"{PROMPT!r} → logit({ANSWER!r}) - logit({OTHER_CITY_ANSWER!r})").show()

# %% [markdown]
# Read it from the logit down: which positions hold the kept features, and which layers? Where do the widest
# edges into the logit come from? Three findings ask what the graph says; the truth they are graded against
# is measured on the same graph, and the first is also known from the corpus.

# %% [finding] answer_position difficulty=2 importance=4 minutes=10
# Add up the logit difference's influence on every node at each position (features, error nodes and the
# embedding), for every position but the last. Which position (an index into str_tokens, counted from 0)
# carries the most? Assign an int.
answer_position = ...

# %% [hint]
# `logit_influence` per node and `node_pos` per node: sum one by the other, leave out the last position, and
# take the largest. Before you look: which of the three city tokens must it be, if the model reads the fact
# it is asked about?

# %% [solution]
influence_by_position = torch.zeros(n_pos).index_add_(0, node_pos, logit_influence)
answer_position = int(influence_by_position[:-1].argmax())

# %% [finding] top_writing_layer difficulty=2 importance=4 minutes=10
# Which layer's features, together, have the largest direct attribution to the logit difference (the sum of
# the logit's adjacency row over that layer's feature nodes)? Assign an int.
top_writing_layer = ...

# %% [hint]
# The logit's row of the adjacency matrix, restricted to feature nodes, summed by `node_layer`.

# %% [solution]
direct_by_layer = torch.zeros(n_layers).index_add_(0, features[:, 0], adjacency[LOGIT, :n_features])
top_writing_layer = int(direct_by_layer.argmax())

# %% [finding] error_share difficulty=2 importance=5 minutes=5
# What share of the logit difference's influence ends at error nodes rather than at token embeddings?
# Assign a float between 0 and 1.
error_share = ...

# %% [hint]
# Influence on the logit summed over the error nodes; the sources' shares sum to 1.

# %% [solution]
error_share = logit_influence[ERRORS].sum().item()

# %% [markdown]
# What the graph says, measured below. The last position (" in") carries more than three times the
# influence of any other: the country is assembled there, not at the city token. Of the earlier positions the second " Rome", the
# city the fact is about, carries the most, and most of its influence is its *embedding*: attention brings
# the token itself to the last position, and the MLPs there (mostly layer 0's kept features, and the error
# nodes) turn it into a country. The first " Rome" and " Paris" carry less (by more than a third). The layer whose features write
# most directly to the logit difference is layer 0, not the last layer: the first MLP at the last position
# looks the country up and writes it straight into the residual stream, where the unembedding reads it three
# layers later. And the corpus labels agree: the graph's most influential feature is a layer-0 feature at the
# last position that gives more than half of its activation on fact prompts to Italian cities. A lookup done
# by the first MLP at the last position, from a token that attention moved there, is what one might expect
# of a model this shallow.

# %%
influence_at = torch.zeros(n_pos).index_add_(0, node_pos, logit_influence)
embedding_influence = logit_influence[EMBEDDINGS]
print(
    "influence on the logit by position:", [f"{str_tokens[p]!r} {v:.2f}" for p, v in enumerate(influence_at.tolist())]
)
print("of which at the embeddings:", [f"{v:.2f}" for v in embedding_influence.tolist()])
kept_at_last = keep_nodes[:n_features] & (features[:, 1] == n_pos - 1)
assert influence_at[-1] > 3 * influence_at[:-1].max()
assert influence_at[8] == influence_at[1:-1].max() and str_tokens[8] == " Rome"
assert embedding_influence[8] > 0.5 * influence_at[8]
assert influence_at[8] > 1.5 * max(influence_at[4], influence_at[6])  # " Paris" and the first " Rome"
kept_by_layer = torch.bincount(features[kept_at_last, 0], minlength=n_layers)
print(f"kept features at the last position by layer: {kept_by_layer.tolist()}")
assert kept_at_last.sum() > 0.3 * keep_nodes[:n_features].sum() and kept_by_layer[0] > kept_by_layer.sum() / 2
direct_at = torch.zeros(n_layers).index_add_(0, features[:, 0], adjacency[LOGIT, :n_features])
print("direct attribution to the logit difference by layer:", [round(v, 2) for v in direct_at.tolist()])
assert direct_at.argmax() == 0 and direct_at[0] > 2 * direct_at[1:].max()
top_layer, top_pos, top_index = features[logit_influence[:n_features].argmax()].tolist()
top_profile = country_activation[top_layer, :, top_index] / country_activation[top_layer, :, top_index].sum()
print(f"the most influential feature: L{top_layer} P{top_pos} #{top_index}, {feature_label(top_layer, top_index)}")
assert (top_layer, top_pos) == (0, n_pos - 1) and corpus.COUNTRIES[top_profile.argmax()] == "Italy"
assert top_profile.max() > 0.5

# %% [markdown]
# ## Part 5: testing the graph by intervention
#
# The graph claims to explain the linearised model. Does it predict what happens in the *real* one, where
# attention patterns and LayerNorm scales move and features downstream respond? First, what the graph
# predicts: removing a source lowers each node that it feeds by the edge weight; a feature that loses input
# loses activation one for one while it stays active, and passes that loss on in proportion to its edges
# per unit of its activation. Summed over all paths this is one linear solve.


# %% [exercise] ablation_effects difficulty=3 importance=4 minutes=20
def ablation_effects(
    adjacency: Float[Tensor, "node node"], activations: Float[Tensor, " node"]
) -> Float[Tensor, "node node"]:
    """Entry [t, s]: how much node t's value drops when source s is removed, predicted by the graph with
    every feature linear while it stays active. A node's loss of input passes on to a feature downstream
    in proportion to the edge per unit of activation, adjacency[u, v] / activations[v] (0 where the
    activation is 0): the direct drops A[:, s], propagated through (I - J)^-1."""
    raise NotImplementedError()


# %% [hint]
# Write the drop of every node when source s is removed as d = A[:, s] + J d, where J holds each edge per
# unit of its source's activation. Which matrix equation gives every source's d at once?

# %% [markdown]
# And the measurement: the replacement model, with the clean run's error terms held fixed, where you may
# overwrite the features at some (layer, position) and let everything downstream, attention included,
# respond.


# %% [exercise] run_with_feature_edits difficulty=3 importance=5 minutes=20
def run_with_feature_edits(
    model: HookedTransformer,
    transcoders: list[Transcoder],
    tokens: Int[Tensor, " pos"],
    errors: Float[Tensor, "layer pos d_model"],
    edits: dict[tuple[int, int], Float[Tensor, " d_tc"]],
) -> Float[Tensor, "pos d_vocab"]:
    """The replacement model's logits (each MLP replaced by its transcoder plus errors[layer], the error
    terms of the clean run) with the feature activations at each (layer, position) in `edits` replaced by
    the given vector. Every other feature is recomputed from this run's residual stream, so an edit's
    effects flow on through attention, LayerNorm and later features."""
    raise NotImplementedError()


# %% [hint]
# It is run_replacement with one more step between encoding and decoding. Why must the error terms be the
# clean run's, not recomputed in the edited run?

# %% [hint]
# In the hook_out hook: `acts = tc.encode(stored[layer]).clone()`, then `acts[:, position] = new` for each
# edit at this layer, then `tc.decode(acts) + errors[layer]`.

# %%
effects = ablation_effects(adjacency, node_activation)
full_acts = torch.stack([acts for acts, _ in found])  # the clean run's features, position 0's included
clean_final = run_with_feature_edits(model, transcoders, tokens, exact_errors, {})[-1]
assert torch.allclose(clean_final, logits[0, -1], atol=1e-4)


def logit_difference(final: Tensor) -> float:
    return (final[answer] - final[other_answer]).item()


def ablated_difference(nodes: list[int]) -> float:
    """The logit difference with the given feature nodes' activations set to 0 (everything else responding)."""
    edits: dict[tuple[int, int], Tensor] = {}
    for i in nodes:
        layer, pos, index = features[i].tolist()
        edits.setdefault((layer, pos), full_acts[layer, pos].clone())[index] = 0.0
    return logit_difference(run_with_feature_edits(model, transcoders, tokens, exact_errors, edits)[-1])


def rank_correlation(a: Tensor, b: Tensor) -> float:
    """Spearman's correlation: the correlation of the ranks."""
    ranks = torch.stack([a.argsort().argsort(), b.argsort().argsort()]).float()
    return torch.corrcoef(ranks)[0, 1].item()


clean_difference = logit_difference(clean_final)
named = logit_influence[:n_features].argsort(descending=True)[:12].tolist()  # the graph's 12 most influential
predicted = effects[LOGIT, named]
measured = torch.tensor([clean_difference - ablated_difference([i]) for i in named])
with model.hooks(fwd_hooks=freeze_hooks(cache)):  # the same ablations with patterns and LayerNorm scales frozen
    measured_frozen = torch.tensor([clean_difference - ablated_difference([i]) for i in named])
for i, p, f, m in zip(named, predicted.tolist(), measured_frozen.tolist(), measured.tolist()):
    layer, pos, index = features[i].tolist()
    print(f"L{layer} P{pos:<2} #{index:<4} ({feature_label(layer, index)!r:>10}): predicted drop {p:+.2f}, "
          f"measured {f:+.2f} frozen, {m:+.2f} in the real model")  # fmt: skip
frozen_correlation = torch.corrcoef(torch.stack([predicted, measured_frozen]))[0, 1].item()
live_correlation = torch.corrcoef(torch.stack([predicted, measured]))[0, 1].item()
live_rank_correlation = rank_correlation(predicted, measured)
same_sign = int((predicted.sign() == measured.sign()).sum())
print(f"predicted vs measured: correlation {frozen_correlation:.3f} frozen; in the real model {live_correlation:.2f} "
      f"(rank correlation {live_rank_correlation:.2f}, the same sign for {same_sign} of {len(named)})")  # fmt: skip
fig = go.Figure()
for values, name in [(measured_frozen, "patterns and scales frozen"), (measured, "the real model")]:
    fig.add_trace(go.Scatter(x=predicted, y=values, mode="markers", name=name))
fig.add_trace(go.Scatter(x=[predicted.min(), predicted.max()], y=[predicted.min(), predicted.max()], mode="lines",
                         line=dict(dash="dot", color="grey"), name="y = x"))  # fmt: skip
fig.update_layout(title="Ablating one feature: the graph's prediction against the measured drop", height=420,
                  xaxis_title="predicted drop in the logit difference", yaxis_title="measured drop")  # fmt: skip
fig.show()
assert frozen_correlation > 0.95
assert live_correlation > 0.85 and live_rank_correlation > 0.85 and same_sign >= 11
worst = int((measured - predicted).abs().argmax())  # the graph's largest miss in the real model
print(
    f"largest miss: {feature_label(*features[named[worst]][[0, 2]].tolist())!r} feature, L{features[named[worst], 0]}"
)
assert (measured_frozen[worst] - predicted[worst]).abs() < 0.2 * (measured[worst] - predicted[worst]).abs()

# %% [markdown]
# With the patterns and LayerNorm scales frozen, the graph's predictions and the measured drops agree almost
# exactly (correlation above 0.95): the only nonlinearity left is features downstream crossing zero (turning
# off, or on: inactive features are not in the graph), which a single ablation rarely causes. In the real
# model they still agree well (correlation and rank correlation above 0.85, the same sign for at least 11 of
# the 12), but sizes differ. The graph's largest miss is a feature whose drop the frozen run reproduces (within a fifth of
# the miss): what the graph leaves out there is how removing the feature changes the LayerNorm scales and
# attention patterns it holds fixed. A graph is a first-order account of the model around one prompt.

# %% [markdown]
# The graph also says *where* the answer is assembled. Ablate all the kept features at one position at once,
# position by position:

# %%
kept_features = keep_nodes[:n_features].nonzero()[:, 0].tolist()
by_position = {}
for pos in range(1, n_pos):
    nodes = [i for i in kept_features if features[i, 1] == pos]
    if nodes:
        by_position[pos] = (effects[LOGIT, nodes].sum().item(), clean_difference - ablated_difference(nodes))
        print(f"position {pos:>2} {str_tokens[pos]!r:>11}: {len(nodes):>2} kept features; predicted drop "
              f"{by_position[pos][0]:+.2f} (summed singly), measured {by_position[pos][1]:+.2f}")  # fmt: skip
print(f"the clean logit difference is {clean_difference:.2f}")
assert by_position[n_pos - 1][1] > 0.3 * clean_difference
assert all(
    abs(measured_drop) < 0.1 * clean_difference for pos, (_, measured_drop) in by_position.items() if pos < n_pos - 1
)

# %% [markdown]
# **Swapping the city.** So the country is looked up at the last position, by its MLPs, from the city that
# attention brings there. Then writing in another prompt's MLP nodes there should change the answer. Take
# the same sentence with Tokyo in place of Rome and write its layer-0 features at the last position into our
# run; then its features *and* its error node there (everything that MLP wrote); and, as the control, all of
# the second Rome's MLP nodes at every layer.

# %%
SWAP_PROMPT = "Mary travelled from Paris to Tokyo. Tokyo is in"
swap_tokens = model.to_tokens(SWAP_PROMPT)[0]
_, swap_cache = model.run_with_cache(swap_tokens[None])
swap_found = [features_and_error(tc, swap_cache[tc.hook_in][0], swap_cache[tc.hook_out][0]) for tc in transcoders]
swap_acts = torch.stack([acts for acts, _ in swap_found])
swap_errors = torch.stack([error for _, error in swap_found])
japan = model.to_single_token(" Japan")
assert len(swap_tokens) == n_pos


def swapped_probs(cells: list[tuple[int, int]], with_errors: bool) -> Tensor:
    """Next-token probabilities with the swap prompt's features (and error terms) written at the given
    (layer, position) cells."""
    swapped_errors = exact_errors.clone()
    for layer, pos in cells:
        if with_errors:
            swapped_errors[layer, pos] = swap_errors[layer, pos]
    edits = {(layer, pos): swap_acts[layer, pos] for layer, pos in cells}
    return run_with_feature_edits(model, transcoders, tokens, swapped_errors, edits)[-1].softmax(-1)


SECOND_CITY = 8
assert str_tokens[SECOND_CITY] == " Rome" and str_tokens[SECOND_CITY + 1 :] == [" is", " in"]
last, city = n_pos - 1, SECOND_CITY
swaps = {
    "layer 0 at the last position, features only": swapped_probs([(0, last)], with_errors=False),
    "layer 0 at the last position, features and error": swapped_probs([(0, last)], with_errors=True),
    "every layer at the last position, features and errors": swapped_probs([(l, last) for l in range(n_layers)], True),
    "every layer at the second Rome, features and errors": swapped_probs([(l, city) for l in range(n_layers)], True),
}
for name, swapped in swaps.items():
    print(f"{name:>54}: P(' Italy') {swapped[answer]:.2f}, P(' Japan') {swapped[japan]:.2f}, "
          f"top {model.to_string(swapped.argmax())!r}")  # fmt: skip
features_only, with_error, every_layer, control = swaps.values()
assert probs[answer] > 0.9 and features_only.argmax() == japan and features_only[japan] > 0.5
assert with_error[japan] > features_only[japan] and every_layer[japan] > 0.9
assert control.argmax() == answer and control[answer] > 0.9

# %% [markdown]
# The graph's account holds. Writing Tokyo's layer-0 features at the last position, and nothing else, makes
# the model answer " Japan" (above 0.5, from " Italy" above 0.9); adding that MLP's error node (everything the
# layer-0 MLP wrote there) makes it surer, and doing so at every layer makes it near certain (above 0.9). The
# same swap at the second " Rome", every layer, changes nothing (" Italy" stays above 0.9): the MLPs at the
# city token do not hold its country; the token itself is what attention moves. The lookup is in the layer-0
# features at the last position, as the graph said.

# %% [markdown]
# ## Where this differs from Ameisen et al.
#
# - **Per-layer, not cross-layer, transcoders.** Ameisen et al. train *cross-layer* transcoders: a feature
#   reads the residual stream at one layer and writes to the outputs of every later layer's MLP, so a
#   computation that several MLPs share becomes one feature, and paths in the graph are shorter. Ours are
#   per-layer (one transcoder per MLP, as in Dunefsky et al. 2024), the baseline Ameisen et al. compare
#   against: a computation spread over several MLPs becomes a chain of features, one per layer.
# - **A model of 4 layers and a prompt of 11 tokens**, against an 18-layer model and Claude 3.5 Haiku with
#   transcoders of millions of features. Here a graph has about a thousand feature nodes and no path longer
#   than 5 edges (asserted above), so every gradient fits in one batched backward pass; for a large model
#   circuit-tracer computes the rows batch by batch and caps how many feature nodes it attributes.
# - **What the error nodes carry.** The zoo's transcoders keep the answers (Part 1: with every MLP
#   replaced, the facts are still recalled), yet the error nodes end between a fifth and a half of the logit's
#   influence on this prompt (below): they carry part of how the answer is reached, not the answer itself.
#   Ameisen et al. report a larger gap for their replacement models (their largest matched the model's next
#   token on about half of a set of pretraining prompts), which is why they keep error nodes in every graph;
#   a tiny model on a small planted world is easier to replace, but not completely.

# %%
error_influence = logit_influence[ERRORS].sum().item()
print(f"errors: {error_influence:.2f} of the logit's influence; 'X is in' recalled without them: {alone:.2f}")
print(f"{n_features} feature nodes, {n_kept} kept; d_transcoder {transcoders[0].d_transcoder} per layer")
assert 0.2 < error_influence < 0.5 and alone >= 0.9
assert n_features < 1500

# %% [markdown]
# ## Summary
#
# - A transcoder replaces an MLP with sparse features; an error node per (layer, position) makes the
#   replacement exact on the prompt being explained (asserted to 1e-4).
# - Freezing attention patterns and LayerNorm scales makes the rest linear, so a feature's direct effect on
#   another node is its activation times a gradient along its decoder row, and the effects into a node add
#   up, with a constant from the biases, to its value (asserted for every node).
# - Indirect influence, (I - W)^-1 - I over the normalised graph, ranks nodes by everything they feed; an 80%
#   node threshold and a 98% edge threshold leave a graph you can read.
# - The graph is a hypothesis about the real model. Its predictions hold where it is linear, and ablations
#   and swaps in the real model test the rest: here they confirm where the country is looked up.
#
# Next, section 1.5 turns to toy models of superposition: why a model has more features than dimensions,
# which is why a sparse dictionary is needed to read them at all.
