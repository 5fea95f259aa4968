# %% [markdown]
# # 1.5.4 Superposition and toy SAEs
#
# A layer with 5 dimensions can hold 5 orthogonal directions. Elhage et al., *Toy Models of Superposition*
# (2022), showed that a network can represent far more features than it has dimensions, provided the features
# are **sparse** (rarely active at the same time): it gives each feature a direction, accepts that the
# directions overlap, and filters out the resulting interference with a ReLU. They called this
# **superposition**, and studied it in models small enough to see every weight. Bricken et al., *Towards
# Monosemanticity* (2023), then trained **sparse autoencoders** (SAEs) to undo it in a real transformer.
#
# This section rebuilds both studies at toy scale. Everything trains in seconds on a CPU, and the toy
# model's features are planted, so every claim below is checked against the truth: which features a model
# keeps, how it arranges them, and how many of them an SAE finds again.
#
# You will:
#
# 1. generate sparse features and train many toy models at once (one per **instance**), each with its own
#    feature sparsity, with an importance-weighted loss;
# 2. watch features go from "keep the most important, orthogonal" to antipodal pairs and pentagons as
#    sparsity rises, and measure it (norms, superposition, Elhage et al.'s feature dimensionality);
# 3. train on correlated and anticorrelated pairs of features, and see which arrangement each prefers;
# 4. give the hidden layer a ReLU and count how many neurons stay monosemantic as sparsity rises;
# 5. train SAEs on a toy model's hidden layer (L1 penalty, resampling of dead latents, TopK) and count the
#    true features each recovers.
#
# **Relation to ARENA's 1.5.4.** ARENA's section also covers feature geometry in higher dimensions and deep
# double descent. They are left out here: the budget of a notebook that runs in about a minute went to the SAE
# part instead, which checks recovery against the planted features. The phase diagram (importance against
# sparsity for 2 features in 1 dimension) is shown at the end of Part 2, three runs per cell.
#
# **Prerequisites**: 0.3 (optimisers) and the idea of an SAE from 1.3.3 (this section builds one from
# scratch). Each exercise is a function whose body raises `NotImplementedError`; a **finding** asks for what
# your analysis found, and the check grades it against the truth.

# %%
import math  # noqa: F401 (the solutions use it)
import time
from collections.abc import Callable

import einops  # noqa: F401 (the solutions use it)
import plotly.express as px
import plotly.graph_objects as go
import torch
from jaxtyping import Bool, Float
from plotly.subplots import make_subplots
from torch import Tensor
from tqdm.auto import tqdm

from tests.checks.chapter1_transformer_interp.superposition import check  # noqa: F401 (used by the check cells the build adds)

# These models are tiny: one thread is fastest, and leaves the other cores alone.
torch.set_num_threads(1)
torch.manual_seed(0)

# %% [markdown]
# ## Part 1: the toy model
#
# The data are vectors $x \in \mathbb{R}^n$ of $n$ **features**. Each feature is zero most of the time: it is
# nonzero with probability $p$ (the paper calls $S = 1 - p$ the *sparsity*; this notebook always speaks of
# the *feature probability* $p$, the chance of being **nonzero**), and when nonzero it is uniform on $[0, 1)$.
# The model squeezes $x$ through $m < n$ hidden dimensions and tries to get it back:
#
# $$h = W x, \qquad x' = \text{ReLU}(W^\top h + b),$$
#
# with $W \in \mathbb{R}^{m \times n}$: feature $i$ is written into the hidden space along **column** $W_i$ and
# read back along the same column. Features differ in **importance** $I_i$, the weight of their error in the
# loss $\sum_i I_i (x_i - x'_i)^2$.
#
# To compare settings we train many models at once, stacked along an **instances** axis: `W` has shape
# `[instances, hidden, features]`, and every instance may have its own feature probabilities and
# importances. One Adam step updates them all.


# %% [exercise] generate_feature_batch difficulty=2 importance=4 minutes=10
def generate_feature_batch(
    n_batch: int, feature_probability: Float[Tensor, "instances features"], generator: torch.Generator
) -> Float[Tensor, "batch instances features"]:
    """A batch of sparse feature vectors for every instance: feature i of instance k is nonzero with
    probability feature_probability[k, i] (independently of the others), and a nonzero feature is drawn
    uniformly from [0, 1). All randomness comes from `generator`."""
    raise NotImplementedError()


# %% [hint]
# Two independent draws per entry: one decides whether the feature is on, the other what value it takes. With
# probability p it should be *on*: which comparison of a uniform draw with p is true with probability p?

# %% [hint]
# `torch.rand(shape, generator=generator)` twice, with `shape = (n_batch, *feature_probability.shape)`; the
# probabilities broadcast against the batch axis. Keep a value where `draw < feature_probability`, else 0.

# %%
probe_generator = torch.Generator().manual_seed(0)
sample = generate_feature_batch(10_000, torch.tensor([[0.05, 0.5, 1.0]]), probe_generator)
print("share nonzero per feature:", (sample != 0).float().mean(0).tolist())
assert abs((sample[:, 0, 0] != 0).float().mean() - 0.05) < 0.01 and (sample[:, 0, 2] != 0).all()


# %% [exercise] toy_forward difficulty=1 importance=5 minutes=8
def toy_forward(
    W: Float[Tensor, "instances hidden features"],
    b: Float[Tensor, "instances features"],
    x: Float[Tensor, "batch instances features"],
    relu_hidden: bool = False,
) -> Float[Tensor, "batch instances features"]:
    """The toy model of every instance: h = W x (then ReLU(h) if relu_hidden), output ReLU(W^T h + b)."""
    raise NotImplementedError()


# %% [hint]
# Each instance has its own W and b: which axes does each product sum over, and which does it keep? Naming
# every axis (einops) makes a transposed W hard to write by accident.

# %% [hint]
# `einops.einsum(W, x, "instances hidden features, batch instances features -> batch instances hidden")`, then
# the same W the other way round to get back to features; add `b` before the last ReLU.


# %% [exercise] importance_weighted_loss difficulty=1 importance=4 minutes=5
def importance_weighted_loss(
    x: Float[Tensor, "batch instances features"],
    x_hat: Float[Tensor, "batch instances features"],
    importance: Float[Tensor, "instances features"],
) -> Float[Tensor, " instances"]:
    """Each instance's loss: the squared error of each feature times its importance, summed over the
    features and averaged over the batch."""
    raise NotImplementedError()


# %% [hint]
# One number per instance: which axes are summed and which averaged? An unimportant feature's error should
# count for little.

# %% [markdown]
# Now the training loop. A `sample_batch(batch_size, generator)` function supplies the data, so the same loop
# serves independent, correlated and anticorrelated features later on. The loss of all instances together is
# the **sum** of their losses: each instance's gradient then depends on its own loss only.


# %% [exercise] train_toy_models difficulty=3 importance=5 minutes=20
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
    raise NotImplementedError()


# %% [hint]
# The parameters are two plain tensors that require gradients. What must happen every step, and in which order?
# Is a fresh batch drawn each step, and is the optimizer made once or every step? The check trains your
# function and the reference on the same settings and compares their losses on held-out data.

# %% [hint]
# `W = (torch.randn(..., generator=generator) * std).requires_grad_()`, `b = torch.zeros(..., requires_grad=True)`,
# `torch.optim.Adam([W, b], lr=lr)`; in the loop: batch, `toy_forward`, `importance_weighted_loss(...).sum()`,
# `zero_grad`, `backward`, `step`. Return `W.detach(), b.detach()`.

# %% [markdown]
# ## Part 2: superposition appears as features get sparser
#
# Elhage et al.'s first experiment, at our scale: 5 features in 2 hidden dimensions, with importance decaying
# from feature to feature ($0.9^i$ here: feature 0 is the most important), and one instance per feature
# probability, from dense ($p = 1$) to very sparse ($p = 0.01$).
# Since $W$ has two rows, each feature's column $W_i$ is a point in the plane: we can simply draw them.

# %%
N_FEATURES, N_HIDDEN = 5, 2
SWEEP_PROBABILITIES = [1.0, 0.3, 0.1, 0.05, 0.03, 0.01]
sweep_probability = torch.tensor(SWEEP_PROBABILITIES)[:, None].expand(-1, N_FEATURES)
sweep_importance = (0.9 ** torch.arange(N_FEATURES)).expand(len(SWEEP_PROBABILITIES), -1)

start = time.perf_counter()
W_sweep, b_sweep = train_toy_models(
    lambda n, generator: generate_feature_batch(n, sweep_probability, generator),
    sweep_importance, N_HIDDEN, relu_hidden=False, steps=2000, batch_size=512, lr=1e-2, seed=0,
)  # fmt: skip
sweep_seconds = time.perf_counter() - start
print(f"{len(SWEEP_PROBABILITIES)} models, 2000 steps each, trained together in {sweep_seconds:.1f} s")


# %%
def plot_columns_2d(W: Float[Tensor, "instances 2 features"], titles: list[str], title: str) -> None:
    """Each instance's feature columns as arrows from the origin, coloured from the most important feature
    (dark) to the least (light)."""
    fig = make_subplots(rows=1, cols=len(W), subplot_titles=titles)
    colours = px.colors.sequential.Viridis
    for k, instance in enumerate(W):
        for i, (x, y) in enumerate(instance.T.tolist()):
            colour = colours[int(i / max(W.shape[-1] - 1, 1) * (len(colours) - 1))]
            fig.add_trace(
                go.Scatter(x=[0, x], y=[0, y], mode="lines+markers", line=dict(color=colour), name=f"feature {i}",
                           showlegend=k == 0),
                row=1, col=k + 1,
            )  # fmt: skip
    fig.update_xaxes(range=[-1.5, 1.5], showticklabels=False).update_yaxes(range=[-1.5, 1.5], showticklabels=False)
    fig.update_layout(title=title, height=280, width=190 * len(W) + 100).show()


plot_columns_2d(W_sweep, [f"p = {p}" for p in SWEEP_PROBABILITIES], "the columns of W (5 features, 2 dimensions)")

# %% [markdown]
# Two numbers per feature describe the picture: its **norm** $\lVert W_i \rVert$ (near 1: represented; near 0:
# dropped) and how much the other features overlap its direction, $\sum_{j \ne i} (\hat W_i \cdot W_j)^2$ with
# $\hat W_i = W_i / \lVert W_i \rVert$ (0: it has its direction to itself).


# %% [exercise] feature_geometry difficulty=2 importance=4 minutes=10
def feature_geometry(
    W: Float[Tensor, "instances hidden features"],
) -> tuple[Float[Tensor, "instances features"], Float[Tensor, "instances features"]]:
    """For every feature i of every instance: its norm ||W_i|| (W_i is column i), and how much other
    features share its direction, sum over j != i of (unit(W_i) . W_j)^2, where unit(W_i) = W_i / ||W_i||
    (0 for a feature whose column is zero)."""
    raise NotImplementedError()


# %% [hint]
# A feature is a column, so its norm runs over the hidden axis. The overlaps of every pair (i, j) form an
# instances x features x features table: which entries of it must not count?

# %% [hint]
# Divide W by its column norms (clamped away from 0), `einops.einsum(unit, W, "k h i, k h j -> k i j")`, square,
# zero the diagonal (multiply by `1 - torch.eye(n)`), sum over j.

# %%
norms, superposition = feature_geometry(W_sweep)
fig = make_subplots(rows=1, cols=2, subplot_titles=["norm ||W_i||", "superposition: sum over j != i of (Ŵ_i · W_j)²"])
fig.add_trace(go.Heatmap(z=norms.numpy(), y=[str(p) for p in SWEEP_PROBABILITIES], coloraxis="coloraxis"), 1, 1)
fig.add_trace(go.Heatmap(z=superposition.numpy(), y=[str(p) for p in SWEEP_PROBABILITIES], coloraxis="coloraxis"), 1, 2)
fig.update_layout(height=330, coloraxis=dict(colorscale="Blues"), title="per feature (x) and feature probability (y)")
fig.update_xaxes(title="feature").update_yaxes(title="feature probability", type="category").show()
print("norms\n", norms.numpy().round(2), "\nsuperposition\n", superposition.numpy().round(2))

# %% [finding] dense_represented difficulty=1 importance=4 minutes=5
# With dense features (p = 1, instance 0), which features does the model represent (norm above 0.5)? Assign a
# set of feature indices.
dense_represented = ...

# %% [hint]
# Read row 0 of the norms. Before you look: with two dimensions and every feature always on, is there any room
# to share?

# %% [solution]
dense_represented = set((norms[0] > 0.5).nonzero()[:, 0].tolist())

# %% [markdown]
# With dense features there is no superposition: the model keeps the two most important features in two
# orthogonal directions and drops the other three (norm below 0.1), as a linear model would (it keeps the top
# principal components). The two kept features have zero superposition. As features get sparser, more of
# them are kept at once, overlapping. At $p = 0.3$, four are kept in two **antipodal pairs** ($W_j = -W_i$), at
# $p \le 0.1$ all five. The interference an antipodal pair causes is negative ($\hat W_i \cdot W_j = -1$), and the
# output ReLU, with a bias a little below zero, removes it, as long as the two are rarely on together.
#
# One surprise in this run: at $p = 0.3$ the feature dropped is feature 0, the most important one. The loss
# landscape has several local minima, and one training run per instance need not find the best; Elhage et al.
# keep the best of several runs. (Try other seeds.)

# %%
assert dense_represented == {0, 1} and norms[0, 2:].max() < 0.1 and superposition[0, :2].max() < 0.01
assert (norms[1] > 0.5).sum() == 4 and norms[1, 0] < 0.1 and (norms[2:] > 0.5).all()
assert superposition[2:].min() > 0.5  # every feature shares its direction in the sparse instances
assert (b_sweep[2:] < 0).all()  # the bias sits below zero where interference must be filtered

# %% [markdown]
# How many features share a direction? Elhage et al. define a feature's **dimensionality**
#
# $$D_i = \frac{\lVert W_i \rVert^2}{\sum_j (\hat W_i \cdot W_j)^2},$$
#
# (the sum includes $j = i$): the fraction of a dimension feature $i$ has to itself. A feature alone in its
# direction has $D_i = 1$; each member of an antipodal pair $1/2$; the five features of a regular pentagon in
# a plane $2/5$ each (two dimensions shared by five).


# %% [exercise] feature_dimensionality difficulty=2 importance=3 minutes=10
def feature_dimensionality(W: Float[Tensor, "instances hidden features"]) -> Float[Tensor, "instances features"]:
    """Elhage et al.'s dimensionality of each feature: ||W_i||^2 / sum over all j (unit(W_i) . W_j)^2,
    the share of a hidden dimension the feature has to itself (1 alone, 1/2 in an antipodal pair, 2/5 in
    a pentagon). 0 for a feature whose column is zero."""
    raise NotImplementedError()


# %% [hint]
# The denominator differs from the superposition you computed by one term. What does that term equal? What
# keeps a dropped feature's 0 / 0 from becoming NaN?

# %%
dimensionality = feature_dimensionality(W_sweep)
print("dimensionality per feature\n", dimensionality.numpy().round(2))
px.scatter(
    [dict(p=str(p), feature=i, D=d) for p, row in zip(SWEEP_PROBABILITIES, dimensionality.tolist()) for i, d in enumerate(row)],
    x="p", y="D", color="feature", title="feature dimensionality: 1 alone, 1/2 antipodal, 2/5 pentagon",
).add_hline(y=0.5, line_dash="dot").add_hline(y=0.4, line_dash="dot").show()  # fmt: skip

# %% [finding] pentagon_instances difficulty=3 importance=4 minutes=10
# In which instances of the sweep (indices into SWEEP_PROBABILITIES) are all five features in a pentagon: each
# feature's dimensionality within 0.05 of 2/5? Assign a set of instance indices.
pentagon_instances = ...

# %% [hint]
# A pentagon means every feature of the instance is near 0.4, not just most of them. Remember which instance the
# antipodal pairs were in: what dimensionality does their dropped feature get?

# %% [solution]
pentagon_instances = set(((dimensionality - 0.4).abs() < 0.05).all(-1).nonzero()[:, 0].tolist())

# %% [markdown]
# The dense instance has dimensionality 1 for its two features (and 0 for the dropped ones); the $p = 0.3$
# instance has four features at $1/2$; and from $p = 0.1$ on, all five sit at $2/5$: a pentagon. Elhage et
# al. found the same ladder (dimensionalities sticking at fractions like $1/2$ and $2/5$, with jumps between
# them as sparsity changes): the geometry of features comes in discrete configurations.

# %%
assert pentagon_instances == {2, 3, 4, 5}
assert ((dimensionality[0, :2] - 1).abs() < 0.05).all() and dimensionality[0, 2:].max() < 0.05
represented_at_03 = norms[1] > 0.5
assert ((dimensionality[1][represented_at_03] - 0.5).abs() < 0.05).all()

# %% [markdown]
# ### A phase diagram
#
# Elhage et al. also mapped where superposition happens with the smallest possible model: **2 features in 1
# dimension**, varying how sparse the features are and how important the second feature is relative to the
# first. One dimension leaves three choices: drop feature 1, give the dimension to feature 1 and drop feature 0,
# or keep both on opposite ends of the line (superposition: $W_0$ and $W_1$ of opposite signs). A single run can
# stick in a worse configuration, so, as in the paper, we train three models per cell and keep the one with the
# lowest loss on fresh data. All 84 models train together.

# %%
PHASE_RATIOS = [0.1, 0.3, 0.6, 1.0, 1.6, 3.0, 10.0]  # importance of feature 1 relative to feature 0
PHASE_PROBABILITIES = [1.0, 0.3, 0.1, 0.03]
PHASE_SEEDS = 3
phase_cells = [(p, r) for p in PHASE_PROBABILITIES for r in PHASE_RATIOS]
phase_importance = torch.tensor([[1.0, r] for _, r in phase_cells for _ in range(PHASE_SEEDS)])
phase_probability = torch.tensor([[p, p] for p, _ in phase_cells for _ in range(PHASE_SEEDS)])


def sample_phase(n: int, generator: torch.Generator) -> Float[Tensor, "batch instances 2"]:
    return generate_feature_batch(n, phase_probability, generator)


start = time.perf_counter()
W_phase, b_phase = train_toy_models(sample_phase, phase_importance, 1, False, 2000, 512, 1e-2, seed=0)
print(f"{len(phase_importance)} models trained together in {time.perf_counter() - start:.1f} s")

x_fresh = sample_phase(20_000, torch.Generator().manual_seed(1))
fresh_loss = importance_weighted_loss(x_fresh, toy_forward(W_phase, b_phase, x_fresh), phase_importance)
best_seed = fresh_loss.view(len(phase_cells), PHASE_SEEDS).argmin(1)
W_best = W_phase.view(len(phase_cells), PHASE_SEEDS, 2)[torch.arange(len(phase_cells)), best_seed]


def phase(w: Float[Tensor, " 2"]) -> str:
    """Which configuration a 1-dimensional model of 2 features chose (a column is kept if its norm is over 0.5)."""
    kept = w.abs() > 0.5
    if kept.all():
        return "superposition" if w[0] * w[1] < 0 else "both, same side"
    return "feature 1 only" if kept[1] else "feature 0 only" if kept[0] else "neither"


phases = [
    [phase(W_best[i * len(PHASE_RATIOS) + j]) for j in range(len(PHASE_RATIOS))]
    for i in range(len(PHASE_PROBABILITIES))
]
names = ["feature 0 only", "feature 1 only", "superposition", "both, same side", "neither"]
px.imshow(
    [[names.index(cell) for cell in row] for row in phases], text_auto=False, aspect="auto",
    x=[str(r) for r in PHASE_RATIOS], y=[str(p) for p in PHASE_PROBABILITIES], zmin=0, zmax=len(names) - 1,
    labels=dict(x="importance of feature 1 / feature 0", y="feature probability p", color="phase"),
    title="2 features in 1 dimension: 0 = feature 0 only, 1 = feature 1 only, 2 = superposition",
).show()  # fmt: skip
for p, row in zip(PHASE_PROBABILITIES, phases):
    print(f"p = {p:<5}", " | ".join(f"{cell:>14}" for cell in row))

# %% [markdown]
# Dense features ($p = 1$) never share the dimension: the more important feature takes it and the other is
# dropped. As features get sparser, superposition spreads from equal importances outwards, and at $p \le 0.1$
# it is what almost every cell chooses, even when one feature is ten times as important as the other. This is
# the shape of Elhage et al.'s diagram. Ours is noisier at the boundaries (three runs per cell, 2,000 steps),
# so the assertions below check the rows, not single cells.

# %%
superposed = [row.count("superposition") for row in phases]
assert superposed[0] == 0 and superposed[-2] >= 6 and superposed[-1] >= 6
assert superposed[0] < superposed[1] < min(superposed[2:])
assert all(cell == "feature 0 only" for cell in phases[0][:3]) and all(
    cell == "feature 1 only" for cell in phases[0][4:]
)


# %% [markdown]
# ## Part 3: correlated and anticorrelated features
#
# Real features are not independent: "the text is French" and "the text is about Paris" often occur
# together, "this token is a verb" and "this token is a noun" never. Elhage et al. found that models place
# **correlated** features orthogonally (their interference would show up exactly when both are on) and
# **anticorrelated** features antipodally (their interference never shows up at all). We test that with pairs
# of features: in a correlated pair, both features are on together or off together; in an anticorrelated pair,
# at most one is on.


# %% [exercise] generate_paired_batch difficulty=3 importance=3 minutes=15
def generate_paired_batch(
    n_batch: int, n_instances: int, n_pairs: int, pair_probability: float, correlated: bool, generator: torch.Generator
) -> Float[Tensor, "batch instances features"]:
    """Sparse features in pairs (features 2p and 2p + 1 are pair p). Each pair of each instance is active
    with probability pair_probability, independently of the other pairs. If correlated, an active pair has
    both its features nonzero; if not (anticorrelated), exactly one of the two, each with probability 1/2.
    A nonzero feature is uniform on [0, 1). All randomness comes from `generator`."""
    raise NotImplementedError()


# %% [hint]
# Draw one "is the pair active" per pair, not per feature. For an anticorrelated pair you need one more draw:
# which of the two it is. Then lay the pairs out so that features 2p and 2p + 1 sit side by side.

# %% [hint]
# Work with a trailing axis of size 2 (`[batch, instances, pairs, 2]`) and flatten it at the end with
# `einops.rearrange(..., "b k pairs two -> b k (pairs two)")`.

# %% [markdown]
# Four features (two pairs) in two dimensions, uniform importance, each pair active with probability 0.15, eight
# instances (eight random initialisations) of each kind.

# %%
N_INSTANCES_PAIRED, PAIR_PROBABILITY = 8, 0.15
paired_importance = torch.ones(N_INSTANCES_PAIRED, 4)
paired_models, paired_losses, within_pair = {}, {}, {}
for correlated in (True, False):
    kind = "correlated" if correlated else "anticorrelated"

    def sample_pairs(n: int, generator: torch.Generator, correlated: bool = correlated) -> Tensor:
        return generate_paired_batch(n, N_INSTANCES_PAIRED, 2, PAIR_PROBABILITY, correlated, generator)

    W_pairs, b_pairs = train_toy_models(sample_pairs, paired_importance, 2, False, 1000, 512, 1e-2, seed=0)
    held_out = sample_pairs(20_000, torch.Generator().manual_seed(1))
    paired_models[kind] = W_pairs
    paired_losses[kind] = importance_weighted_loss(held_out, toy_forward(W_pairs, b_pairs, held_out), paired_importance)
    unit = W_pairs / W_pairs.norm(dim=1, keepdim=True)
    within_pair[kind] = torch.stack(
        [(unit[:, :, 0] * unit[:, :, 1]).sum(-1), (unit[:, :, 2] * unit[:, :, 3]).sum(-1)], -1
    )
    plot_columns_2d(W_pairs, [f"seed {k}" for k in range(N_INSTANCES_PAIRED)], f"{kind} pairs (0, 1) and (2, 3)")
    print(f"{kind}: cosine within each pair\n{within_pair[kind].numpy().round(2)}\nheld-out loss per instance "
          f"{paired_losses[kind].numpy().round(4)}")  # fmt: skip

# %% [markdown]
# What the eight instances of each kind show (asserted below):
#
# - **Correlated**: in every instance that keeps all four features, the two features of a pair are
#   orthogonal (cosine within 0.1 of zero). The space is shared *between* pairs instead: each feature has an
#   antipodal partner (cosine below -0.9) in the other pair, which costs little because different pairs are
#   rarely on together.
# - **Anticorrelated**: some instances put each pair antipodal (cosine -1), the others cross the pairs. The
#   antipodal arrangement is the better one: every instance that found it has a lower held-out loss (about 0,
#   since the two features of a pair never interfere) than every instance that did not. Whether training finds
#   it depends on the initialisation, which is why Elhage et al. compare the best of several runs.

# %%
correlated_kept = (paired_models["correlated"].norm(dim=1) > 0.5).all(-1)
assert correlated_kept.sum() >= 6 and within_pair["correlated"][correlated_kept].abs().max() < 0.1
correlated_unit = paired_models["correlated"] / paired_models["correlated"].norm(dim=1, keepdim=True)
across_pairs = einops.einsum(correlated_unit[:, :, :2], correlated_unit[:, :, 2:], "k h i, k h j -> k i j")
assert (across_pairs[correlated_kept].amin(dim=(-1, -2)) < -0.9).all()  # an antipodal partner across the pairs
assert (across_pairs[correlated_kept].amin(-1) < -0.9).all() and (across_pairs[correlated_kept].amin(-2) < -0.9).all()
antipodal = (within_pair["anticorrelated"] < -0.99).all(-1)
print(f"anticorrelated: {int(antipodal.sum())} of {N_INSTANCES_PAIRED} instances put both pairs antipodal")
assert 2 <= antipodal.sum() < N_INSTANCES_PAIRED
assert paired_losses["anticorrelated"][antipodal].max() < paired_losses["anticorrelated"][~antipodal].min()
assert paired_losses["anticorrelated"][antipodal].max() < 1e-3

# %% [markdown]
# ## Part 4: neurons, and when they stop being monosemantic
#
# In the model so far the hidden space has no preferred basis: rotate $W$ and nothing changes. A ReLU on the
# hidden layer, $h = \text{ReLU}(W x)$, makes each hidden dimension a **neuron** whose activation means
# something on its own. Is each neuron then one feature? Elhage et al. found that it is when features are
# dense, and that neurons become **polysemantic** (reading several features) as features get sparse.
#
# Measure it with a neuron's input weights $W_{n,:}$ (row $n$ of $W$): the share of their squared norm that goes
# to the neuron's largest feature. A neuron is **monosemantic** here when that share is above 0.9.


# %% [exercise] neuron_top_share difficulty=1 importance=3 minutes=5
def neuron_top_share(W: Float[Tensor, "instances hidden features"]) -> Float[Tensor, "instances hidden"]:
    """For each hidden neuron: the share of its squared input weights W[k, n, :] that goes to its largest
    feature (1 for a neuron that reads one feature: monosemantic). 0 for a neuron with no weights."""
    raise NotImplementedError()


# %% [hint]
# A neuron is a row of W here (the features are its inputs). Square first, then compare the largest square with
# their sum.

# %%
NEURON_PROBABILITIES = [1.0, 0.3, 0.1, 0.03, 0.01]
n_neuron_features, n_neurons = 10, 5
neuron_probability = torch.tensor(NEURON_PROBABILITIES)[:, None].expand(-1, n_neuron_features)
neuron_importance = (0.75 ** torch.arange(n_neuron_features)).expand(len(NEURON_PROBABILITIES), -1)
start = time.perf_counter()
W_neurons, b_neurons = train_toy_models(
    lambda n, generator: generate_feature_batch(n, neuron_probability, generator),
    neuron_importance, n_neurons, relu_hidden=True, steps=3000, batch_size=512, lr=1e-2, seed=0,
)  # fmt: skip
print(f"neuron models trained in {time.perf_counter() - start:.1f} s")
top_share = neuron_top_share(W_neurons)
px.imshow(
    W_neurons.numpy(), facet_col=0, color_continuous_scale="RdBu", zmin=-1.5, zmax=1.5, height=280,
    labels=dict(x="feature", y="neuron"), title="each neuron's input weights (rows), per feature probability",
).show()  # fmt: skip
print("share of each neuron's squared weights on its top feature\n", top_share.numpy().round(2))

# %% [finding] monosemantic_counts difficulty=2 importance=4 minutes=10
# For each instance, in the order of NEURON_PROBABILITIES: how many of its 5 neurons are monosemantic (top share
# above 0.9)? Assign a list of 5 ints.
monosemantic_counts = ...

# %% [hint]
# One count per instance, from the shares you just printed; mind the threshold and the order.

# %% [solution]
monosemantic_counts = (top_share > 0.9).sum(-1).tolist()

# %% [markdown]
# With dense features all five neurons are monosemantic, and they are the five most important features: each
# neuron reads one feature, and the other five features are dropped. At $p = 0.3$ only two neurons remain
# monosemantic; from $p = 0.1$ on none does, and the models now keep more features than they have neurons,
# spread across polysemantic neurons. Sparsity, not the number of neurons, decides whether a neuron is
# interpretable alone. That is the problem SAEs set out to solve.

# %%
assert monosemantic_counts[0] == 5 and monosemantic_counts[1] == 2 and max(monosemantic_counts[2:]) == 0
assert set(W_neurons[0].pow(2).argmax(-1).tolist()) == {0, 1, 2, 3, 4}  # the five most important features
assert ((W_neurons.norm(dim=1) > 0.5).sum(-1)[2:] > n_neurons).all()  # more features kept than neurons

# %% [markdown]
# ## Part 5: sparse autoencoders on the toy model's hidden layer
#
# Now the inverse problem. Take a toy model with 20 sparse features in 5 hidden dimensions. Its hidden vector
# $h = W x$ is a sparse nonnegative combination of the 20 columns $W_i$. Given only samples of $h$, can we
# find those 20 directions? A **sparse autoencoder** (Bricken et al., 2023) learns an overcomplete dictionary:
#
# $$z = \text{ReLU}\big((h - b_\text{dec}) W_\text{enc} + b_\text{enc}\big), \qquad \hat h = z\, \hat W_\text{dec} + b_\text{dec},$$
#
# trained to reconstruct $h$ while keeping the latents $z$ sparse with an L1 penalty $\lambda \lVert z \rVert_1$.
# The rows of the decoder are used at unit norm ($\hat W_\text{dec}$): otherwise the SAE could shrink every
# latent and grow its decoder row, lowering the penalty without being any sparser. Here we know the answer, so
# we can count how many true features the SAE's decoder rows recover.
#
# One change makes the toy more like a real model: real activations are not centred (a transformer's residual
# stream has a large mean), so we add a fixed offset of norm 1 to every $h$. It changes nothing about the true
# feature directions; $b_\text{dec}$ can learn it.

# %%
N_SAE_FEATURES, N_SAE_HIDDEN, SAE_FEATURE_PROBABILITY = 20, 5, 0.025
sae_feature_probability = torch.full((1, N_SAE_FEATURES), SAE_FEATURE_PROBABILITY)
start = time.perf_counter()
W_toy, _ = train_toy_models(
    lambda n, generator: generate_feature_batch(n, sae_feature_probability, generator),
    torch.ones(1, N_SAE_FEATURES), N_SAE_HIDDEN, relu_hidden=False, steps=1500, batch_size=512, lr=1e-2, seed=0,
)  # fmt: skip
true_directions = W_toy[0]  # [hidden, features]: feature i is written along column i
offset = torch.randn(N_SAE_HIDDEN, generator=torch.Generator().manual_seed(3))
offset = offset / offset.norm()
print(
    f"toy model trained in {time.perf_counter() - start:.1f} s; feature norms {true_directions.norm(dim=0).numpy().round(2)}"
)
assert (true_directions.norm(dim=0) > 0.9).all()  # all 20 features are represented, in 5 dimensions


def sample_hidden(n: int, generator: torch.Generator) -> Float[Tensor, "n hidden"]:
    """Hidden activations h = W x of the toy model on fresh sparse features, plus the fixed offset."""
    return generate_feature_batch(n, sae_feature_probability, generator)[:, 0] @ true_directions.T + offset


# %% [exercise] sae_forward difficulty=2 importance=5 minutes=10
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
    raise NotImplementedError()


# %% [hint]
# Three things are easy to miss: the decoder bias is taken off before encoding and added back after decoding;
# the latents go through a ReLU; and each decoder *row* (one latent's direction) is normalised, not each column.

# %% [hint]
# `W_dec / W_dec.norm(dim=-1, keepdim=True)` normalises the rows (clamp the norm away from 0).


# %% [exercise] sae_loss difficulty=1 importance=4 minutes=5
def sae_loss(
    h: Float[Tensor, "batch d_in"],
    latents: Float[Tensor, "batch d_sae"],
    reconstruction: Float[Tensor, "batch d_in"],
    l1_coefficient: float,
) -> Float[Tensor, " batch"]:
    """Each input's SAE loss: the squared reconstruction error summed over d_in, plus l1_coefficient
    times the L1 norm of its latents."""
    raise NotImplementedError()


# %% [hint]
# One number per input. Which tensor does the L1 penalty apply to: the reconstruction, or the latents?

# %% [markdown]
# ### Dead latents, and resampling them
#
# A latent whose pre-activation is negative on every input gets no gradient from the reconstruction, and the
# L1 penalty has nothing to push against: it is **dead** and stays dead. Bricken et al. revive dead latents by
# **resampling**: every so often, find the latents that did not fire for a while, pick inputs the SAE
# reconstructs badly (with probability proportional to the square of their loss), and point each dead latent
# at one of them. Its decoder row becomes that input's direction (minus $b_\text{dec}$, at unit norm); its
# encoder column the same direction at a small norm (0.2 times the average live encoder norm, so the new
# latent does not take over at once); its encoder bias zero. They also reset the optimiser's state for the
# resampled weights; we reset all of Adam's state, which is simpler.


# %% [exercise] resample_dead_latents difficulty=4 importance=4 minutes=25
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
    raise NotImplementedError()


# %% [hint]
# Work on copies, so the caller's weights change only when they choose to copy yours in. Which
# axis of W_enc is a latent, and which of W_dec? Compute the live latents' mean encoder norm *before* you
# overwrite anything.

# %% [hint]
# Index with the boolean mask: `W_dec[dead] = directions` (one row per dead latent, in order) and
# `W_enc[:, dead] = directions.T * scale`. With no dead latent, return the copies unchanged.

# %% [markdown]
# The variant: a **TopK** SAE (Gao et al., 2024) drops the L1 penalty and keeps, for each input, only the $k$
# largest pre-activations. Sparsity is then set exactly, and no latent is shrunk towards zero by a penalty.


# %% [exercise] topk_latents difficulty=2 importance=3 minutes=8
def topk_latents(pre_activations: Float[Tensor, "batch d_sae"], k: int) -> Float[Tensor, "batch d_sae"]:
    """TopK latents: each input keeps its k largest pre-activations, passed through a ReLU (a negative one
    among them becomes 0), and every other latent is 0."""
    raise NotImplementedError()


# %% [hint]
# `Tensor.topk` returns values and indices; how do you put k values back at their places in a tensor of zeros?

# %% [hint]
# `torch.zeros_like(pre_activations).scatter(-1, top.indices, top.values.relu())`.

# %% [markdown]
# Now the training loop, with resampling and TopK as options.


# %% [exercise] train_sae difficulty=3 importance=5 minutes=25
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
    raise NotImplementedError()


# %% [hint]
# Keep a boolean "fired since the last check" per latent, updated every step. At a check: resample (in the
# first half of training only), copy the new weights into your parameters without recording gradients, make a
# fresh Adam, and clear the record. The check compares the loss and the recovered features of your SAE with
# the reference's on held-out inputs.

# %% [hint]
# Copy with `with torch.no_grad(): W_enc.copy_(new_W_enc)` (and the same for b_enc, W_dec), so the tensors
# Adam holds stay the same objects; pass `losses.detach()` to the resampler.

# %% [markdown]
# How do we score an SAE against the truth? For each true feature direction, find the decoder row closest to it
# in angle. A feature counts as **recovered** when that cosine similarity is above 0.9.


# %% [exercise] feature_recovery difficulty=2 importance=5 minutes=8
def feature_recovery(
    true_directions: Float[Tensor, "d_in features"], W_dec: Float[Tensor, "d_sae d_in"]
) -> Float[Tensor, " features"]:
    """For each true feature direction (a column), the largest cosine similarity it has with any decoder
    row. A sign counts: a decoder row pointing the opposite way does not recover the feature."""
    raise NotImplementedError()


# %% [hint]
# Normalise both sides (columns of one, rows of the other), form the table of cosines, and take the maximum
# along the axis of latents, not of features.

# %% [markdown]
# Three SAEs, each with 30 latents for the 20 true features, trained for 1,000 steps from the same seed: an L1
# penalty of 0.5 without and with resampling (every 50 steps in the first 500), and a TopK SAE with $k = 1$ (on
# average half a feature is active per input: 20 x 0.025). A feature counts as recovered by a **live** latent
# only: one that fires on at least one of 8,192 held-out inputs.

# %%
SAE_RUNS = {
    "L1": dict(l1_coefficient=0.5, k=None, resample_every=None),
    "L1, resampling": dict(l1_coefficient=0.5, k=None, resample_every=50),
    "TopK, k = 1": dict(l1_coefficient=0.0, k=1, resample_every=None),
}
held_out_h = sample_hidden(8192, torch.Generator().manual_seed(1))
saes, recovery, alive, dead_offset_cosines = {}, {}, {}, {}
start = time.perf_counter()
for name, options in tqdm(SAE_RUNS.items(), desc="SAEs"):
    sae = saes[name] = train_sae(
        sample_hidden, N_SAE_HIDDEN, 30, steps=1000, batch_size=256, lr=1e-2, seed=0, **options
    )
    live = ((held_out_h - sae["b_dec"]) @ sae["W_enc"] + sae["b_enc"] > 0).any(0)
    recovery[name], alive[name] = feature_recovery(true_directions, sae["W_dec"][live]), int(live.sum())
    dead_offset_cosines[name] = sae["W_dec"][~live] @ offset  # where the dead latents' decoder rows point
sae_seconds = time.perf_counter() - start
recovered = {name: int((r > 0.9).sum()) for name, r in recovery.items()}
print(f"{len(SAE_RUNS)} SAEs in {sae_seconds:.1f} s")
for name in SAE_RUNS:
    print(
        f"{name:>15}: {recovered[name]:2d} of {N_SAE_FEATURES} features recovered, {alive[name]:2d} of 30 latents alive"
    )
px.strip(
    [dict(sae=name, cosine=c) for name, r in recovery.items() for c in r.tolist()], x="sae", y="cosine",
    title="each true feature's best cosine with a live latent's decoder row (recovered above 0.9)",
).add_hline(y=0.9, line_dash="dot").show()  # fmt: skip

# %% [finding] recovered_with_resampling difficulty=3 importance=5 minutes=10
# How many of the 20 true features does the L1 SAE with resampling recover (best cosine with a live latent's
# decoder row above 0.9)? Assign an int.
recovered_with_resampling = ...

# %% [hint]
# Count the features, not the latents, whose best cosine passes 0.9, for that one SAE.

# %% [solution]
recovered_with_resampling = int((recovery["L1, resampling"] > 0.9).sum())

# %% [markdown]
# What the three SAEs show (asserted below):
#
# - Without resampling, the L1 SAE recovers at most 16 of the 20 features, and ends with between 4 and 10 dead
#   latents, every one with its decoder row pointing away from the offset (cosine with it below -0.3). None was
#   dead at the start: they die during training, and a dead latent gets no gradient to come back with.
# - With resampling, the same SAE from the same seed recovers at least 19: each dead latent found in the first
#   500 steps is pointed at an input the SAE reconstructs badly, which is where a feature no latent covers yet
#   shows up. The number of live latents at the end hardly differs (within 4); what differs is where they point.
# - TopK with $k = 1$ also recovers at least 19, with no penalty to tune: sparsity is imposed, not bought.
# - Random dictionaries of 30 unit vectors recover fewer than 6 features on average (30 directions in 5
#   dimensions do land near a few features by chance): the counts above are far from luck.
#
# Bricken et al. resampled at a few fixed steps of a long run on a transformer's MLP layer (512 neurons, up to
# 131,072 latents), where nobody knows the true features, and started $b_\text{dec}$ at the geometric median
# of the data. Here the input has 5 dimensions and 20 known features, $b_\text{dec}$ starts at zero (so the SAE
# must learn the offset), we resample every 50 steps in the first half of 1,000, and "recovered" is measured,
# not judged.

# %%
assert recovered["L1"] <= 16 and recovered_with_resampling >= 19 and recovered["TopK, k = 1"] >= 19
assert recovered_with_resampling >= recovered["L1"] + 3
assert abs(alive["L1"] - alive["L1, resampling"]) <= 4
assert saes["L1"]["W_dec"].shape == (30, N_SAE_HIDDEN)  # 30 latents on a 5-dimensional input, not Bricken et al.'s 512
assert 4 <= 30 - alive["L1"] <= 10 and dead_offset_cosines["L1"].max() < -0.3
# At initialisation (W_dec's first draw in train_sae, W_enc its transpose, zero biases) no latent is dead:
initial_decoder = torch.randn(30, N_SAE_HIDDEN, generator=torch.Generator().manual_seed(0))
initial_decoder = initial_decoder / initial_decoder.norm(dim=-1, keepdim=True)
assert ((held_out_h @ initial_decoder.T) > 0).any(0).all()
random_recovered = torch.tensor([
    (feature_recovery(true_directions, torch.randn(30, N_SAE_HIDDEN, generator=torch.Generator().manual_seed(seed))) > 0.9).sum()
    for seed in range(20)
]).float()  # fmt: skip
print(f"random dictionaries of 30 directions recover {random_recovered.mean():.1f} features on average")
assert random_recovered.mean() < 6
print(f"training time: sweep {sweep_seconds:.1f} s, SAEs {sae_seconds:.1f} s")

# %% [markdown]
# ## Summary
#
# - A toy model of superposition is a few lines: sparse features with importances, $\text{ReLU}(W^\top W x + b)$,
#   an importance-weighted squared error, and many instances trained at once.
# - Dense features: the model keeps the most important ones, orthogonally. Sparse features: it keeps more than
#   it has dimensions, in antipodal pairs and pentagons, and its negative bias filters the interference; the
#   feature dimensionality sticks at 1, 1/2 and 2/5.
# - With 2 features in 1 dimension, the phase diagram shows superposition taking over as features get sparser,
#   from equal importances outwards.
# - Correlated features are placed orthogonally, anticorrelated ones antipodally when training finds it,
#   which is the lowest-loss arrangement.
# - With a ReLU on the hidden layer, neurons are monosemantic for dense features and polysemantic for sparse ones.
# - An SAE on the hidden layer recovers the planted feature directions when its latents are put to use: without
#   resampling, latents that start dead stay dead; resampling points them at badly reconstructed inputs; TopK
#   recovers the features without a penalty to tune.
