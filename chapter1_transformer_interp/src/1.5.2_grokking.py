# %% [markdown]
# # 1.5.2 Grokking and modular arithmetic
#
# Power et al. (2022) trained small transformers on tables like $(a + b) \bmod p$ from a fraction of the
# pairs and saw something odd: the model fits its training pairs almost at once, stays at chance on the
# held-out pairs for a long time, then, thousands of steps later and with no change to the training set,
# **groks**: test accuracy jumps to 100%. Nanda et al. (2023), *Progress measures for grokking via
# mechanistic interpretability*, reverse-engineered a one-layer transformer that groks modular addition and
# found that it adds with **trigonometry**: it embeds each number as waves $\cos(w a), \sin(w a)$ for a few
# **key frequencies** $w$, multiplies the waves of $a$ and $b$ in its MLP to get $\cos(w(a + b))$ and
# $\sin(w(a + b))$, and reads off the answer $c$ with the identity
#
# $$\cos(w(a + b - c)) = \cos(w(a + b))\cos(w c) + \sin(w(a + b))\sin(w c),$$
#
# which is largest exactly when $c = a + b \bmod p$. Knowing the algorithm, they could measure its growth over
# training and split grokking into three phases: **memorisation**, **circuit formation** (the trig circuit
# grows while test loss stays high) and **cleanup** (weight decay removes the memorising parts; test loss
# falls).
#
# You will repeat that analysis on the zoo's grokking model, trained here (`zoo/grokking.py`, card in
# `zoo/grokking/mod-add/CARD.md`) with checkpoints every 200 steps:
#
# 1. build the Fourier basis over $\mathbb{Z}_p$ and find the key frequencies of the embedding;
# 2. read attention and neuron activations as functions of $(a, b)$ and take their 2-D Fourier transform;
# 3. group the neurons by frequency;
# 4. test the trig identity on the logits;
# 5. define the restricted and excluded losses and track them, with the weight norm, over the checkpoints to
#    locate the phases.
#
# **Where this model differs from the paper's.** Nanda et al. used $p = 113$, learning rate $10^{-3}$ and tens
# of thousands of full-batch steps. To train on one CPU thread in about two minutes, the zoo model uses
# $p = 59$ and learning rate $3 \times 10^{-3}$ (3,600 steps). The rest follows the paper: tokens `a b =`, 30%
# of the pairs for training, full-batch AdamW with weight decay 1.0 and betas (0.9, 0.98), one layer, 4 heads of
# 32 dimensions, 512 ReLU neurons, no LayerNorm; this model's biases are zero and untrained. The cell below
# asserts these. The phases come earlier and closer together than the paper's (memorisation is over within
# 100 steps).
#
# **Prerequisites**: 1.2 (TransformerLens, caches and hooks). Each exercise is a function whose body raises
# `NotImplementedError`; a **finding** asks for what your analysis found, and the check grades it.

# %%
import math

import plotly.express as px
import plotly.graph_objects as go
import torch
import torch.nn.functional as F  # noqa: F401 (the solutions use it)
from jaxtyping import Float, Int
from plotly.subplots import make_subplots
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from tests.checks.chapter1_transformer_interp.grokking import check  # noqa: F401 (used by the check cells the build adds)
from zoo.grokking import all_inputs, checkpoint_steps, load_grokking_model, load_history, load_metrics, load_split

# The model is tiny: one thread is fastest, and leaves the other cores alone.
torch.set_num_threads(1)
torch.manual_seed(0)
torch.set_grad_enabled(False)

# %%
metrics = load_metrics()
training = metrics["training"]
model = load_grokking_model()
p = model.cfg.d_vocab_out
tokens, labels = all_inputs()  # all p * p inputs `a b =`, in row-major order of (a, b)
train, test = load_split()  # indices into them
print(model.cfg.n_layers, model.cfg.n_heads, model.cfg.d_head, model.cfg.d_mlp, model.cfg.act_fn)
print(f"p = {p}; {len(train)} training pairs, {len(test)} test pairs; {training}")

# The differences from Nanda et al. (p = 113, lr 1e-3), and what is the same.
assert p == 59 and training["lr"] == 3e-3 and training["steps"] == 3600
assert training["train_fraction"] == 0.3 and training["weight_decay"] == 1.0 and training["betas"] == [0.9, 0.98]
assert model.cfg.normalization_type is None and model.cfg.n_layers == 1 and model.cfg.d_mlp == 512
assert all(param.abs().max() == 0 for name, param in model.named_parameters() if ".b_" in name)  # no biases
assert abs(len(train) / p**2 - 0.3) < 0.001 and tokens[0].tolist() == [0, 0, p] and labels[p + 3] == 4

# %% [markdown]
# ## Part 0: grokking, as the training run recorded it
#
# `history.json` logged losses, accuracies and the weight norm every 50 steps. Look at the loss curves on a
# log scale before anything else.

# %%
history = load_history()
steps = [h["step"] for h in history]
fig = go.Figure()
for key in ["train_loss", "test_loss"]:
    fig.add_scatter(x=steps, y=[max(h[key], 1e-6) for h in history], name=key)
fig.update_layout(title="Grokking: loss over training", xaxis_title="step", yaxis_title="loss", yaxis_type="log")
fig.show()

at = {h["step"]: h for h in history}
chance = math.log(p)
# Memorisation: within 100 steps the training loss is near 0 and the test loss far above chance.
assert at[100]["train_loss"] < 0.01 and at[100]["test_loss"] > 3 * chance
# It stays there for over a thousand steps, then test accuracy climbs to 1.
assert all(at[s]["test_loss"] > 3 * chance and at[s]["test_accuracy"] < 0.25 for s in range(100, 1301, 100))
assert at[2400]["test_accuracy"] == 1.0

# %% [markdown]
# ## Part 1: the Fourier basis and the embedding
#
# A function of one number $x \in \{0, \dots, p - 1\}$ is a vector of length $p$. The **Fourier basis** of
# $\mathbb{Z}_p$ ($p$ odd) is $p$ orthonormal such vectors: the constant, then for each frequency
# $k = 1, \dots, (p - 1)/2$ the pair $\cos(2\pi k x / p)$, $\sin(2\pi k x / p)$, each scaled to norm 1. Any
# function of $x$ is a unique combination of them, and a function that only "uses" frequency $k$ has weight
# only on rows $2k - 1$ and $2k$.


# %% [exercise] fourier_basis difficulty=2 importance=4 minutes=10
def fourier_basis(p: int) -> Float[Tensor, "p p"]:
    """Orthonormal rows: the constant, then cos(2 pi k x / p) and sin(2 pi k x / p) for k = 1 .. p // 2
    (cos before sin), each divided by its norm. Row i evaluated at x = 0 .. p - 1. p is odd."""
    raise NotImplementedError()


# %% [hint]
# How many rows does each frequency contribute, and in what order? What makes a row have norm 1?

# %% [hint]
# Build the rows in float64 from `torch.arange(p)`, stack them, divide each by its `.norm()`, return float32.

# %%
basis = fourier_basis(p)
assert torch.allclose(basis @ basis.T, torch.eye(p), atol=1e-5)  # orthonormal, as claimed
px.imshow(basis[:9], aspect="auto", color_continuous_scale="RdBu", title="The first 9 Fourier basis vectors",
          labels={"x": "x", "y": "basis row"}).show()  # fmt: skip

# %% [markdown]
# The number embeddings are the rows `model.W_E[:p]` (row $p$ is "="). Write them in the Fourier basis,
# `basis @ W_E[:p]`: row $i$ is how much of basis vector $i$ each embedding dimension holds. If the model
# embeds numbers as waves, a few frequencies should hold most of the embedding's norm.


# %% [exercise] frequency_shares difficulty=2 importance=4 minutes=10
def frequency_shares(W_E: Float[Tensor, "p d_model"]) -> Float[Tensor, " n_freq"]:
    """For each frequency k = 1 .. p // 2 (index k - 1), the squared norm of the number embeddings
    W_E (one row per number 0 .. p - 1) along cos k and sin k together, as a share of the total
    squared norm over all frequencies (the constant direction left out). The shares sum to 1."""
    raise NotImplementedError()


# %% [hint]
# Which rows of the transformed embedding belong to frequency k? Which row must not count, in the shares or in
# the total?

# %% [hint]
# `per_row = (fourier_basis(p) @ W_E).pow(2).sum(-1)`; frequency k is `per_row[2k - 1] + per_row[2k]`.

# %%
shares = frequency_shares(model.W_E[:p])
px.bar(x=list(range(1, p // 2 + 1)), y=shares, labels={"x": "frequency k", "y": "share of squared norm"},
       title="The embedding in the Fourier basis").show()  # fmt: skip

# %% [finding] key_frequencies difficulty=2 importance=5 minutes=5
# Which frequencies stand out? Assign the list of key frequencies: those whose share is above 0.06 (a uniform
# share would be 1 / 29, about 0.034).
key_frequencies = ...

# %% [hint]
# The shares are indexed from 0, the frequencies from 1.

# %% [solution]
key_frequencies = [k + 1 for k, share in enumerate(shares.tolist()) if share > 0.06]

# %%
keys = load_metrics()["key_frequencies"]  # the recorded key frequencies, used from here on
assert shares[[k - 1 for k in keys]].sum() > 0.9  # a few frequencies hold over 90% of the embedding
assert shares.sort(descending=True).values[len(keys)] < 0.01  # every other frequency holds under 1%
print("key frequencies:", keys)

# %% [markdown]
# ## Part 2: activations as functions of (a, b)
#
# Every input is a pair $(a, b)$, so any activation at the "=" position is a function on a $p \times p$ grid,
# and we can look at it as an image. `tokens` holds the $p^2$ inputs in row-major order, so reshaping a batch
# dimension to `[p, p]` gives `[a, b]`.


# %% [exercise] attention_grid difficulty=1 importance=3 minutes=8
def attention_grid(model: HookedTransformer, tokens: Int[Tensor, "batch 3"]) -> Float[Tensor, "head p p"]:
    """For each head, the attention the "=" position pays to the `a` token (position 0), as a grid
    [head, a, b]. `tokens` holds all p * p inputs in row-major order of (a, b)."""
    raise NotImplementedError()


# %% [hint]
# Which cached activation holds attention probabilities, and which of its axes are the query and the key?

# %% [hint]
# `cache["blocks.0.attn.hook_pattern"]` is `[batch, head, query, key]`; take query -1 and key 0, then move the
# head axis first before reshaping.


# %% [exercise] neuron_grid difficulty=2 importance=4 minutes=8
def neuron_grid(model: HookedTransformer, tokens: Int[Tensor, "batch 3"]) -> Float[Tensor, "p p d_mlp"]:
    """The MLP neuron activations (after the ReLU) at the "=" position for every input, as a grid
    [a, b, neuron]. `tokens` holds all p * p inputs in row-major order of (a, b)."""
    raise NotImplementedError()


# %% [hint]
# Which hook point is after the nonlinearity, and which position predicts the answer?

# %% [hint]
# `model.run_with_cache(tokens, names_filter="blocks.0.mlp.hook_post")`, position -1, reshape to `[p, p, -1]`.

# %%
attention = attention_grid(model, tokens)
neurons = neuron_grid(model, tokens)
fig = make_subplots(rows=1, cols=4, subplot_titles=["head 0: attention to a", "neuron 0", "neuron 1", "neuron 2"])
for col, image in enumerate([attention[0], neurons[..., 0], neurons[..., 1], neurons[..., 2]], start=1):
    fig.add_trace(go.Heatmap(z=image, coloraxis="coloraxis"), row=1, col=col)
fig.update_layout(title="Activations over (a, b) (rows a, columns b)", height=330, width=1100).show()
assert attention.shape == (4, p, p) and neurons.shape == (p, p, 512)

# %% [markdown]
# The pictures are periodic. To see which waves they are made of, transform both axes: the **2-D Fourier
# transform** of a function $f(a, b)$ is `basis @ f @ basis.T`, whose entry $[i, j]$ is the weight of
# (basis vector $i$ over $a$) times (basis vector $j$ over $b$). Entry $[2k - 1, 0]$ is $\cos(k a)$ alone;
# $[2k - 1, 2k - 1]$ is $\cos(k a)\cos(k b)$, a product of the two inputs.


# %% [exercise] fourier_2d difficulty=2 importance=4 minutes=10
def fourier_2d(grid: Float[Tensor, "p p *rest"], basis: Float[Tensor, "p p"]) -> Float[Tensor, "p p *rest"]:
    """The 2-D Fourier transform of a function of (a, b): out[i, j] = sum over a, b of
    basis[i, a] * basis[j, b] * grid[a, b] (any trailing dimensions carried along)."""
    raise NotImplementedError()


# %% [hint]
# Each axis of the grid is transformed like a 1-D function. With trailing dimensions, a matrix product gets
# awkward: what can name every axis?

# %% [hint]
# `torch.einsum("ia,jb,ab...->ij...", basis, basis, grid)`.

# %%
attention_fourier = fourier_2d(attention.permute(1, 2, 0), basis)  # [i, j, head]
neurons_fourier = fourier_2d(neurons, basis)  # [i, j, neuron]
energy = attention_fourier.pow(2)
energy[0, 0] = 0
for head in range(4):
    top = energy[..., head].flatten().topk(4).indices
    rows, cols = (top // p).tolist(), (top % p).tolist()
    print(f"head {head}: top components", list(zip(rows, cols)))
    # Each head's attention is a sum of waves of a alone and of b alone ([i, 0] and [0, j]) at key frequencies.
    assert all(min(r, c) == 0 and (max(r, c) + 1) // 2 in keys for r, c in zip(rows, cols))
    assert energy[..., head].flatten()[top].sum() > 0.75 * energy[..., head].sum()
px.imshow(neurons_fourier[..., 0].abs(), color_continuous_scale="Blues", labels={"x": "basis row over b",
          "y": "basis row over a"}, title="Neuron 0 in the 2-D Fourier basis (|coefficient|)").show()  # fmt: skip

# %% [markdown]
# Neuron 0 lives on a handful of entries, all at one frequency: terms of $a$ alone, of $b$ alone, and products
# of the two. So each neuron can be labelled with the frequency that explains most of its variance.


# %% [exercise] neuron_frequency_fractions difficulty=3 importance=4 minutes=15
def neuron_frequency_fractions(fourier_acts: Float[Tensor, "p p d_mlp"]) -> Float[Tensor, "d_mlp n_freq"]:
    """For each neuron (2-D Fourier coefficients over (a, b) in the basis of `fourier_basis`) and
    frequency k = 1 .. p // 2 (column k - 1): the share of the neuron's variance (its squared
    coefficients, the constant term [0, 0] left out) in the coefficients whose two indices are both
    among {constant, cos k, sin k}."""
    raise NotImplementedError()


# %% [hint]
# The variance of a function is the sum of its squared Fourier coefficients except the constant one. Which
# 3 x 3 block of entries involves only frequency k (and the constant)?

# %% [hint]
# Zero the `[0, 0]` entry of the squared coefficients (on a copy), then for each k index rows and columns with
# `torch.tensor([0, 2 * k - 1, 2 * k])`.

# %%
fractions = neuron_frequency_fractions(neurons_fourier)
best_fraction, best_index = fractions.max(dim=1)
neuron_frequency = best_index + 1
clustered = best_fraction > 0.8
counts = torch.bincount(neuron_frequency[clustered], minlength=p // 2 + 1)
print(f"{clustered.float().mean():.0%} of neurons have over 80% of their variance in one frequency:")
print({k: int(counts[k]) for k in range(1, p // 2 + 1) if counts[k]})
px.histogram(x=best_fraction, nbins=40, title="Share of each neuron's variance in its best frequency",
             labels={"x": "share"}).show()  # fmt: skip
assert best_fraction[0] > 0.9  # neuron 0, pictured above, has over 90% of its variance in one frequency
# Most neurons are clustered, and every cluster is at a key frequency.
assert clustered.float().mean() > 0.7
assert set(neuron_frequency[clustered].tolist()) <= set(keys)
# Unlike the embedding, not every key frequency gets a neuron cluster here: the weakest one gets none.
weakest = min(keys, key=lambda k: shares[k - 1])
assert counts[weakest] == 0 and all(counts[k] > 50 for k in keys if k != weakest)

# %% [markdown]
# ## Part 3: the trig identity in the logits
#
# If the model computes $\cos(w(a + b - c))$ for its key frequencies and adds them up, the logits, as a function
# of $(a, b, c)$, should be close to $\sum_w \alpha_w \cos(w(a + b - c))$ plus a constant for each output $c$.
# These terms are orthogonal over the $p^3$ grid, so each $\alpha_w$ can be fitted on its own by least squares,
# and the shares of variance they explain add up.


# %% [exercise] trig_fraction_explained difficulty=3 importance=5 minutes=15
def trig_fraction_explained(logits: Float[Tensor, "p p p"], frequencies: list[int]) -> float:
    """The share of the variance of logits [a, b, c] (each output c's mean over (a, b) removed first)
    explained by one term alpha_w * cos(2 pi w (a + b - c) / p) per frequency w, each fitted by least
    squares (the terms are orthogonal, so the shares add up)."""
    raise NotImplementedError()


# %% [hint]
# Fitting one coefficient alpha to data y along a vector u gives alpha = <y, u> / <u, u>: how much of
# ||y||^2 does alpha * u explain?

# %% [hint]
# Broadcast `x[:, None, None] + x[None, :, None] - x[None, None, :]` to get a + b - c on the grid; the explained
# sum of squares of one term is `(centred * term).sum() ** 2 / term.pow(2).sum()`.

# %%
logits = model(tokens)[:, -1]  # [p * p, p]
logit_grid = logits.reshape(p, p, p)
explained = trig_fraction_explained(logit_grid, keys)
others = [k for k in range(1, p // 2 + 1) if k not in keys][: len(keys)]
print(f"key frequencies explain {explained:.1%} of the logits' variance; {len(keys)} others explain "
      f"{trig_fraction_explained(logit_grid, others):.2%}")  # fmt: skip
assert abs(explained - metrics["metrics"]["fraction_of_logit_variance_explained"]["value"]) < 0.01
assert explained > 0.85 and trig_fraction_explained(logit_grid, others) < 0.001

# %% [markdown]
# About 88% of the logits' variance is the trig identity at the key frequencies, the form Nanda et al. found in
# their $p = 113$ model; frequencies the model does not use explain nothing.
#
# ## Part 4: progress measures over training
#
# Knowing the algorithm, we can ask how much of it the model uses at each checkpoint. Nanda et al. defined two
# measures from the key directions of the logits: over the $p^2$ inputs, the functions $\cos(w(a + b))$ and
# $\sin(w(a + b))$ for each key $w$ (the trig identity reads $c$ off these).
#
# - **Restricted loss**: keep only the logits' component along these directions (plus each output's mean) and
#   measure the loss on all pairs. It is low when the trig circuit alone gets the answers right.
# - **Excluded loss**: remove that component and measure the loss on the training pairs. It rises when the
#   model needs the circuit to fit its training data, instead of memorising them.


# %% [exercise] key_projection difficulty=3 importance=4 minutes=15
def key_projection(logits: Float[Tensor, "batch p"], frequencies: list[int]) -> Float[Tensor, "batch p"]:
    """The part of the logits (one row per input, all p * p inputs in row-major order of (a, b)) along
    the directions cos(2 pi w (a + b) / p) and sin(2 pi w (a + b) / p) over the inputs, for each
    frequency w given: the orthogonal projection, done separately for each output column."""
    raise NotImplementedError()


# %% [hint]
# The directions live in the space of inputs (length p * p), not outputs. Are they orthogonal to each other?
# Then what does projecting onto their span take?

# %% [hint]
# Stack the unit directions as rows of `U` (`[2 * len(frequencies), p * p]`); the projection is
# `U.T @ (U @ logits)`.


# %% [exercise] restricted_and_excluded_loss difficulty=3 importance=5 minutes=12
def restricted_and_excluded_loss(
    logits: Float[Tensor, "batch p"],
    labels: Int[Tensor, " batch"],
    train: Int[Tensor, " n_train"],
    frequencies: list[int],
) -> tuple[float, float]:
    """Restricted loss: cross-entropy over all inputs of each output's mean logit plus the logits'
    key_projection (only the key directions kept). Excluded loss: cross-entropy over the training
    inputs of the logits minus their key_projection (the key directions removed)."""
    raise NotImplementedError()


# %% [hint]
# Two different sets of logits, two different sets of inputs: which loss is measured where?

# %% [hint]
# `restricted = logits.mean(0, keepdim=True) + projection`; `excluded = (logits - projection)[train]`.

# %%
restricted, excluded = restricted_and_excluded_loss(logits, labels, train, keys)
print(f"final model: restricted loss {restricted:.2e}, excluded loss {excluded:.2f}, chance {chance:.2f}")
assert restricted < 1e-3 and excluded > 2 * chance  # the trig circuit is all it needs, and it cannot do without it

# %% [markdown]
# Weight decay is what drives cleanup, so track the size of the weights too.


# %% [exercise] weight_norm difficulty=1 importance=3 minutes=5
def weight_norm(model: HookedTransformer) -> float:
    """The L2 norm of all the model's parameters together (as one long vector)."""
    raise NotImplementedError()


# %% [hint]
# The norm of one long vector made of every parameter: not a sum of norms.


# %% [exercise] progress_measures difficulty=2 importance=5 minutes=12
def progress_measures(
    models: dict[int, HookedTransformer],
    tokens: Int[Tensor, "batch 3"],
    labels: Int[Tensor, " batch"],
    train: Int[Tensor, " n_train"],
    test: Int[Tensor, " n_test"],
    frequencies: list[int],
) -> dict[str, list[float]]:
    """For each checkpoint (by step, in increasing order): train and test loss and accuracy at the
    "=" position, restricted and excluded loss (restricted_and_excluded_loss) and weight norm.
    Keys: "step", "train_loss", "test_loss", "train_accuracy", "test_accuracy", "restricted_loss",
    "excluded_loss", "weight_norm"; each a list with one entry per checkpoint."""
    raise NotImplementedError()


# %% [hint]
# One forward pass per checkpoint is enough: which position's logits, and how do the splits index them?

# %% [hint]
# Loop over `sorted(models)`; take each checkpoint's logits at position -1 once, then e.g.
# `F.cross_entropy(logits[train], labels[train])`.

# %%
checkpoints = {step: load_grokking_model(step) for step in tqdm(checkpoint_steps(), desc="checkpoints")}
measures = progress_measures(checkpoints, tokens, labels, train, test, keys)
fig = make_subplots(rows=1, cols=2, subplot_titles=["losses", "weight norm"])
for key in ["train_loss", "test_loss", "restricted_loss", "excluded_loss"]:
    fig.add_scatter(x=measures["step"], y=[max(v, 1e-6) for v in measures[key]], name=key, row=1, col=1)
fig.add_scatter(x=measures["step"], y=measures["weight_norm"], name="weight norm", row=1, col=2)
fig.update_yaxes(type="log", row=1, col=1).update_xaxes(title="step")
fig.update_layout(title="Progress measures over the checkpoints", height=380, width=1000).show()


# %% [markdown]
# Read the phases off the measures. Define their boundaries from the curves: memorisation ends when the
# training accuracy first reaches 1; cleanup starts when the test loss, after that, first falls back below its
# value at step 0 (chance); the model has grokked when test accuracy first reaches 0.99.


# %% [exercise] phase_boundaries difficulty=2 importance=4 minutes=10
def phase_boundaries(measures: dict[str, list[float]]) -> dict[str, int]:
    """The steps that end each phase, from progress_measures' output (the first entry is step 0):
    "memorised": the first step with train accuracy 1;
    "cleanup_start": the first step after "memorised" whose test loss is below the test loss at step 0;
    "grokked": the first step with test accuracy at least 0.99."""
    raise NotImplementedError()


# %% [hint]
# Three scans along the steps; the second starts only after the first boundary. Watch `>` against `>=`.

# %% [hint]
# `next(s for s, acc in zip(measures["step"], measures["test_accuracy"]) if acc >= 0.99)`, and likewise.

# %%
phases = phase_boundaries(measures)
print(phases)
at = {key: dict(zip(measures["step"], values)) for key, values in measures.items()}
# The phases, within 200-step checkpoints: memorised by 200, cleanup from 1600-2000, grokked by 2000-2400.
assert phases["memorised"] <= 200 and 1600 <= phases["cleanup_start"] <= 2000 and 2000 <= phases["grokked"] <= 2400

# %% [finding] circuit_formed_step difficulty=3 importance=5 minutes=10
# The circuit forms on the plateau, before the test loss moves. At which checkpoint can the trig circuit alone
# classify well: the first whose restricted loss is below 1? Assign an int (a step).
circuit_formed_step = ...

# %% [hint]
# Which of the four loss curves measures what the key directions alone can do, on all pairs?

# %% [solution]
circuit_formed_step = next(s for s, loss in zip(measures["step"], measures["restricted_loss"]) if loss < 1.0)

# %%
# Circuit formation: the restricted loss falls below 1 while test loss is still far above chance...
assert circuit_formed_step < phases["cleanup_start"] and at["test_loss"][circuit_formed_step] > 3 * chance
# ...and the excluded loss rises from near 0 (memorised without the circuit) to above 1 before cleanup starts.
before_cleanup = phases["cleanup_start"] - 200
assert at["excluded_loss"][200] < 0.1 and at["excluded_loss"][before_cleanup] > 1.0
# Weight decay shrinks the weights: by the time the model has grokked the norm is over 20% below its peak.
assert at["weight_norm"][phases["grokked"]] < 0.8 * max(measures["weight_norm"])
print(f"circuit formed by step {circuit_formed_step}; cleanup from {phases['cleanup_start']}; "
      f"grokked at {phases['grokked']}")  # fmt: skip

# %% [markdown]
# ## Summary
#
# - The embedding uses a few key frequencies; most MLP neurons are clustered at one of them, and the attention
#   heads are sums of waves of $a$ and of $b$ at those frequencies.
# - The logits are mostly $\sum_w \alpha_w \cos(w(a + b - c))$: the trig identity of Nanda et al.
# - The restricted loss falls and the excluded loss rises long before test loss moves: the generalising circuit
#   forms *during* the plateau (circuit formation), and test loss only falls when weight decay cleans up the
#   memorisation (cleanup), which the falling weight norm shows.
#
# **Further**: Nanda et al. also show that the MLP multiplies with products like $\cos(wa)\cos(wb)$ (the
# quadratic terms of the 2-D transform) and that the unembedding reads $\cos(wc), \sin(wc)$; Power et al. vary
# the training fraction and operation. Retrain with `python -m zoo.grokking` after changing `TRAIN_FRACTION`,
# `WEIGHT_DECAY` or `P` in `zoo/grokking.py` (into a copy of the directory) and see how the phases move.
