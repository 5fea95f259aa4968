# %% [markdown]
# # 1.3.4 Probes vs SAEs: a head-to-head on detecting false statements
#
# Sparse autoencoders promise an unsupervised dictionary of a model's features: train once on plain
# text, then read off a "truth" latent, a "deception" latent, whatever you need, with no labelled data.
# When people finally ran that promise against the plain supervised baselines on concrete tasks, the
# baselines mostly won: k-sparse probes on SAE latents did not beat logistic regression on the raw
# activations across more than a hundred classification tasks, not even with few examples or under
# distribution shift (Kantamneni et al., *Are Sparse Autoencoders Useful? A Case Study in Sparse
# Probing*, 2025); probes on SAE latents generalised worse than linear probes at detecting harmful
# intent out of distribution (Smith et al., *Negative Results for SAEs on Downstream Tasks*, Google
# DeepMind, 2025); and steering with SAE latents trailed steering with difference-of-means vectors and
# prompting (Wu et al., *AxBench*, 2025).
#
# This section makes you run that comparison yourself, on a task whose ground truth we planted:
# **detecting false statements** in `gpt2-mini-truth`, which reads claims such as "Mary said that Paris
# is in Spain. That is" and answers " true" or " false" (1.3.1 found where it keeps the truth). Four
# detectors read the residual stream after block 2, where the zoo's two SAEs live (a TopK and a standard
# ReLU + L1 SAE, 1,024 latents each, trained with SAELens in 1.3.3's `zoo/saes/`):
#
# | detector | reads | fit on the labelled examples |
# |---|---|---|
# | logistic-regression probe | the 128-dim residual stream | a weight vector and bias (L2-regularised) |
# | difference of means | the residual stream | the mean of the true minus the mean of the false, and a midpoint |
# | the best single SAE latent | one of 1,024 latents | which latent, which sign, which threshold |
# | a sparse probe on SAE latents | k latents | which k latents, then a logistic probe on them |
#
# The rules of a fair fight: every detector gets **the same labelled examples** (a budget of n true and
# n false city claims, the same draw for all four, repeated over seeds), and every detector is tested on
# a **family of statements none of them was trained on**: periods of time ("The war lasted from 1789 to
# 1732." is false), and then negated city claims ("Paris is not in Spain."). The SAEs have one
# advantage the probes do not: they were trained, without labels, on 400,000 tokens of the model's own
# training text, which is full of judged claims. Then you turn each detector's
# direction into a **steering** vector, and ask which one changes the model's verdicts.
#
# You will:
#
# 1. cache the residual stream at the end of each judged claim, and encode it with both SAEs;
# 2. write the protocol's pieces: a balanced sample of a fixed budget, balanced accuracy, AUROC;
# 3. write the four detectors;
# 4. run the head-to-head over seeds and read the table (the solved notebook asserts its ordering, so
#    a retrain of the zoo that changes the conclusion fails CI instead of leaving prose that is false);
# 5. vary the budget from 1 to 16 examples per class;
# 6. steer the model's verdicts with each detector's direction;
# 7. find out what the best single latent fires on, against the corpus's concept labels.
#
# **Relation to ARENA.** ARENA has no section like this one (its 1.3.x teach probes, function vectors
# and SAEs separately); the issue that planned this course asked for it, after the papers above.
#
# **Prerequisites**: 1.3.1 (probes, the truth families) and 1.3.3 (SAEs). Each exercise is a function
# whose body raises `NotImplementedError`; a **finding** asks for what your analysis found, and the
# check grades it against the truth.

# %%

import plotly.graph_objects as go
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.hook_points import HookPoint  # noqa: F401 (for your hook's type annotation)

from tests.checks.chapter1_transformer_interp.probes_vs_saes import check  # noqa: F401 (used by the check cells the build adds)
from zoo import corpus, evaluate, load_model
from zoo.concepts import CONCEPTS, concept_labels, precision_recall
from zoo.saes import LAYER, SAES, load_sae

torch.manual_seed(0)
torch.set_grad_enabled(False)  # we only read the model; the probe's optimiser turns gradients on itself
torch.set_num_threads(1)  # a 128-wide model runs fastest on one thread

# %% [markdown]
# ## Part 1: the model, the SAEs and the statements
#
# Both SAEs read `blocks.2.hook_resid_post`, the residual stream after block 2 (`zoo.saes.LAYER`; their
# cards say why that layer). All four detectors read the same place, at the **last token** of the judged
# claim, " is" in "... That is", where the model must hold its verdict (1.3.1 sweeps the positions).

# %%
model = load_model("gpt2-mini-truth", device="cpu")
saes = {kind: load_sae(f"gpt2-mini-truth-L{LAYER}-{kind}") for kind in ("topk", "standard")}
for kind, sae in saes.items():
    print(kind, type(sae).__name__, sae.cfg.metadata.hook_name, sae.cfg.d_in, "->", sae.cfg.d_sae)
assert LAYER == 2 and all(sae.cfg.metadata.hook_name == f"blocks.{LAYER}.hook_resid_post" for sae in saes.values())
assert all(sae.cfg.d_sae == 1024 for sae in saes.values()) and all(s.training_tokens == 400_000 for s in SAES.values())

statements = {family: corpus.truth_statements(family, n_years=300) for family in corpus.TRUTH_FAMILIES}
labels = {family: torch.tensor([s.is_true for s in rows]) for family, rows in statements.items()}
verdict_accuracy = {family: evaluate.balanced_accuracy(model, rows) for family, rows in statements.items()}
for family, rows in statements.items():
    print(f"{family}: {len(rows)} statements, {labels[family].sum()} true; "
          f"the model's own verdicts: balanced accuracy {verdict_accuracy[family]:.2f}")  # fmt: skip
assert (
    verdict_accuracy["years"] > 0.95 and verdict_accuracy["cities"] > 0.85 and verdict_accuracy["negated_cities"] > 0.8
)

# %% [markdown]
# The model itself judges periods almost perfectly and city claims well (these include the six held-out
# cities, whose claims it never saw judged). The detectors are trained on **city claims about the 18
# cities whose claims were judged in training** (18 true, 126 false) and tested on the other families.
# First, the activations.


# %% [exercise] claim_activations difficulty=2 importance=4 minutes=10
def claim_activations(
    model: HookedTransformer, statements: list[str], layer: int, position: int, speaker: str = "Mary"
) -> Float[Tensor, "n d_model"]:
    """The residual stream after block `layer` at `position` (counted from the end: -1 is the last token)
    of each judged-claim prompt corpus.judged_claim(statement, speaker), run as one left-padded batch."""
    raise NotImplementedError()


# %% [hint]
# Prompts have different lengths. Where must the padding go so that "counted from the end" means the
# same token in every row? And the model needs to run only the blocks up to `layer`.

# %% [hint]
# `model.to_tokens(prompts, padding_side="left")`, then `run_with_cache` with `names_filter` set to the one
# hook you need (`blocks.{layer}.hook_resid_post`) and `stop_at_layer=layer + 1`.

# %%
POSITION = -1
activations = {
    family: claim_activations(model, [s.text for s in rows], LAYER, POSITION) for family, rows in statements.items()
}
latents = {kind: {family: sae.encode(x) for family, x in activations.items()} for kind, sae in saes.items()}
train_pool = torch.tensor([not s.held_out for s in statements["cities"]])
train = {kind: (activations["cities"][train_pool], latents[kind]["cities"][train_pool], labels["cities"][train_pool])
         for kind in saes}  # fmt: skip
tests = {family: {kind: (activations[family], latents[kind][family], labels[family]) for kind in saes}
         for family in ("years", "negated_cities")}  # fmt: skip
residual_norm = activations["cities"].norm(dim=-1).mean().item()
for kind in saes:
    active = (latents[kind]["cities"] > 0).sum(-1).float().mean().item()
    print(f"{kind} SAE: {active:.1f} latents active per claim (of {saes[kind].cfg.d_sae})")
print(f"training pool: {train_pool.sum()} city claims, {labels['cities'][train_pool].sum()} true; "
      f"mean residual norm {residual_norm:.1f}")  # fmt: skip
assert (train_pool.sum(), labels["cities"][train_pool].sum()) == (144, 18)

# %% [markdown]
# ## Part 2: the protocol
#
# A comparison is only as fair as its protocol. Three pieces:
#
# - **a fixed labelled budget**: n examples of each class, drawn at random from the training pool; every
#   detector sees the same draw, and we repeat over several draws (seeds) to see the spread;
# - **balanced accuracy** for a detector's hard decisions: the mean of its accuracy on true and on false
#   statements, so that "always false" scores 0.5 however unbalanced the test set;
# - **AUROC** for its scores, before any threshold: the probability that a true statement scores above a
#   false one. A detector can rank well (high AUROC) and still cut in the wrong place on a new family
#   (low balanced accuracy): the two together say which went wrong.


# %% [exercise] balanced_sample difficulty=1 importance=3 minutes=8
def balanced_sample(labels: Bool[Tensor, " n"], n_per_class: int, seed: int) -> Int[Tensor, " sample"]:
    """Indices of n_per_class examples labelled True and n_per_class labelled False, drawn without
    replacement, uniformly within each class, with a generator seeded by `seed` (True ones first)."""
    raise NotImplementedError()


# %% [hint]
# Treat the two classes separately: list the indices of each, shuffle them with your own generator, keep
# the first n_per_class.


# %% [exercise] balanced_accuracy difficulty=1 importance=3 minutes=5
def balanced_accuracy(predicted: Bool[Tensor, " n"], labels: Bool[Tensor, " n"]) -> float:
    """The mean of the accuracy on the examples labelled True and the accuracy on those labelled False
    (0.5 for a constant guess, whatever the share of each class)."""
    raise NotImplementedError()


# %% [hint]
# Two accuracies, each over one class only; then their mean. Return a Python float.


# %% [exercise] auroc difficulty=2 importance=4 minutes=10
def auroc(scores: Float[Tensor, " n"], labels: Bool[Tensor, " n"]) -> float:
    """Area under the ROC curve: the probability that an example labelled True scores higher than one
    labelled False, counting ties as half."""
    raise NotImplementedError()


# %% [hint]
# The docstring is the definition (the Mann-Whitney statistic): every (True, False) pair is one trial.
# With a few hundred examples, all pairs fit in memory at once.

# %% [hint]
# Broadcast the True examples' scores against the False examples' scores into a (n_true, n_false) table
# of comparisons; a strict win counts 1, a tie 0.5; average.


# %%
sample = balanced_sample(train["topk"][2], 4, seed=0)
print("a budget of 4 per class:", sample.tolist(), train["topk"][2][sample].tolist())
always_false = torch.zeros(len(labels["years"]), dtype=torch.bool)
print(f"'always false' on the periods: balanced accuracy {balanced_accuracy(always_false, labels['years']):.2f}")
assert (
    balanced_accuracy(always_false, labels["years"]) == 0.5
    and auroc(torch.zeros(5), torch.tensor([1, 0, 1, 0, 0]).bool()) == 0.5
)

# %% [markdown]
# ## Part 3: four detectors
#
# Two read the residual stream. A **logistic-regression probe** is the standard supervised baseline. A
# **difference-of-means** direction (the "mass-mean probe" of Marks & Tegmark, 2023) needs no optimiser
# at all, and is the direction most steering work adds (Turner et al., 2023; Rimsky et al., 2024).


# %% [exercise] fit_logistic_probe difficulty=2 importance=5 minutes=15
def fit_logistic_probe(
    x: Float[Tensor, "n d"], labels: Bool[Tensor, " n"], l2: float, n_steps: int = 100
) -> tuple[Float[Tensor, " d"], float]:
    """Weights w and bias b minimising mean binary cross-entropy of sigmoid(x @ w + b) against labels,
    plus l2 * ||w||^2 (the bias is not penalised), found by L-BFGS from zero for up to n_steps iterations."""
    raise NotImplementedError()


# %% [hint]
# The objective is convex, and with l2 > 0 it has a single minimum, so any optimiser that converges gives
# the same answer; L-BFGS gets there in a few dozen steps on full-batch data. It calls a *closure* that
# recomputes the loss and its gradients. This notebook turned gradients off: turn them back on locally.

# %% [hint]
# `torch.optim.LBFGS([w, b], max_iter=n_steps, line_search_fn="strong_wolfe")`. The closure zeroes the
# gradients, computes `binary_cross_entropy_with_logits(x @ w + b, labels.float()) + l2 * w.pow(2).sum()`,
# calls `backward()` and returns the loss; run `optimizer.step(closure)` inside `torch.enable_grad()`.


# %% [exercise] diff_of_means difficulty=1 importance=4 minutes=5
def diff_of_means(x: Float[Tensor, "n d"], labels: Bool[Tensor, " n"]) -> tuple[Float[Tensor, " d"], float]:
    """The mean of the True examples minus the mean of the False ones (not normalised), and the threshold
    halfway between the two means' projections on it: x @ direction > threshold predicts True."""
    raise NotImplementedError()


# %% [hint]
# Two class means. Where does their midpoint land when you project it on the direction between them?


# %% [markdown]
# Two read the SAE latents. The **best single latent** is what "the SAE found a truth feature" means in
# practice: search all 1,024 latents for the one whose threshold rule best separates the labelled
# examples. A latent may fire on the *false* statements instead, so the rule has a sign.


# %% [exercise] best_latent difficulty=3 importance=4 minutes=25
def best_latent(latents: Float[Tensor, "n d_sae"], labels: Bool[Tensor, " n"]) -> tuple[int, float, float]:
    """The single latent that best separates the labels as a threshold rule, on these examples:
    (index, sign, threshold) such that sign * (latents[:, index] - threshold) > 0 predicts True, chosen
    to maximise balanced accuracy over every latent, both signs and every threshold (ties: lowest index)."""
    raise NotImplementedError()


# %% [hint]
# For one latent, only the cuts *between* its sorted values matter (n + 1 of them, fewer when values tie).
# At each cut, the balanced accuracy of "above predicts True" follows from how many True and False
# examples lie below the cut; the other sign's accuracy is one minus it. Loop over latents if you like
# (1,024 is few), but it vectorises.

# %% [hint]
# Sort each latent's column once (`latents.sort(dim=0)` also gives the order), reorder the labels with it,
# and take cumulative sums of True labels with a row of zeros in front, so that row i counts the i smallest
# values. Mask the cuts that fall inside a run of equal values. Take the `max` over cuts, then over latents;
# the threshold is the midpoint of the two values either side of the best cut.


# %% [markdown]
# The **sparse probe on SAE latents** (the k-sparse probe of Kantamneni et al., 2025, and Gurnee et al.,
# 2023) picks the k latents whose class means differ most and fits a logistic probe on them alone: a
# detector that is supposed to be both accurate and readable, because each of its inputs is a latent
# with a meaning.


# %% [exercise] sparse_latent_probe difficulty=2 importance=4 minutes=10
def sparse_latent_probe(
    latents: Float[Tensor, "n d_sae"], labels: Bool[Tensor, " n"], k: int, l2: float
) -> tuple[Int[Tensor, " k"], Float[Tensor, " k"], float]:
    """A logistic probe on k SAE latents: the k with the largest absolute difference between their mean
    on True and on False examples (largest first), then fit_logistic_probe on those columns.
    Returns (indices, weights, bias)."""
    raise NotImplementedError()


# %% [hint]
# A latent that fires *less* on True statements is as informative as one that fires more: rank by the size
# of the gap, whatever its sign. `Tensor.topk` returns the largest first.

# %%
L2, K = 0.01, 8
x16, z16, y16 = (part[balanced_sample(train["topk"][2], 16, seed=0)] for part in train["topk"])
w, b = fit_logistic_probe(x16, y16, L2)
direction, threshold = diff_of_means(x16, y16)
index, sign, cut = best_latent(z16, y16)
indices, latent_w, latent_b = sparse_latent_probe(z16, y16, K, L2)
print(f"on 16 + 16 city claims: probe training accuracy {balanced_accuracy(x16 @ w + b > 0, y16):.2f}, "
      f"diff of means {balanced_accuracy(x16 @ direction > threshold, y16):.2f}, "
      f"best latent {index} (sign {sign:+.0f}) {balanced_accuracy(sign * (z16[:, index] - cut) > 0, y16):.2f}")  # fmt: skip
print(f"cosine(probe weights, diff of means) = {torch.cosine_similarity(w, direction, dim=0):.2f}")
assert (
    balanced_accuracy(x16 @ w + b > 0, y16) == 1.0 and balanced_accuracy(sign * (z16[:, index] - cut) > 0, y16) == 1.0
)
assert torch.cosine_similarity(w, direction, dim=0) > 0.9

# %% [markdown]
# On their own training examples, the probe and the best latent are both perfect, and the probe's weights
# point almost exactly along the difference of means. Training accuracy says nothing about which detector
# has found *truth* rather than something that happens to separate city claims. The held-out family
# decides.

# %% [markdown]
# ## Part 4: the head-to-head
#
# `head_to_head` runs all four detectors on the same list of samples and scores each on a test set.
# Here `METHODS` names them in a fixed order.

# %%
METHODS = ["logistic probe", "diff of means", "best SAE latent", "SAE latent probe"]


# %% [exercise] head_to_head difficulty=3 importance=5 minutes=20
def head_to_head(
    train: tuple[Float[Tensor, "n_train d_model"], Float[Tensor, "n_train d_sae"], Bool[Tensor, " n_train"]],
    test: tuple[Float[Tensor, "n_test d_model"], Float[Tensor, "n_test d_sae"], Bool[Tensor, " n_test"]],
    samples: list[Int[Tensor, " sample"]],
    l2: float,
    k: int,
) -> dict[str, Float[Tensor, "n_samples 2"]]:
    """The four detectors on one data budget. `train` and `test` are (activations, SAE latents, labels).
    For each sample (indices into the training set), fit every detector on those examples alone (the probes
    with `l2`, the latent probe on k latents) and score it on the whole test set. Returns, for each name in
    METHODS, a tensor of (balanced accuracy, AUROC) per sample. Each detector's score for AUROC is what it
    thresholds: the logit, the projection on the direction, or the latent's activation times its sign."""
    raise NotImplementedError()


# %% [hint]
# One loop over samples; inside it, fit the four detectors on the sample, then for each one compute its
# scores on the test set and the boundary its decision uses. Be careful with the best latent: its rule
# "sign * (activation - threshold) > 0" is a threshold on sign * activation.

# %% [hint]
# For each detector, (scores, boundary) is: the probe's logits and 0; the projection `test_x @ direction`
# and the threshold; `sign * test_latents[:, index]` and `sign * threshold`; the latent probe's logits and
# 0. Then `balanced_accuracy(scores > boundary, labels)` and `auroc(scores, labels)`; stack per method.

# %%
N_PER_CLASS, SEEDS = 16, range(20)
samples = [balanced_sample(train["topk"][2], N_PER_CLASS, seed) for seed in SEEDS]
results = {
    (family, kind): head_to_head(train[kind], tests[family][kind], samples, L2, K) for family in tests for kind in saes
}
rows = {method: ("topk", method) for method in METHODS[:2]}  # the residual detectors do not depend on the SAE
rows |= {f"{method} ({kind})": (kind, method) for kind in saes for method in METHODS[2:]}
table = {
    row: {family: results[family, kind][method].mean(0).tolist() + [results[family, kind][method][:, 0].std().item()]
          for family in tests}
    for row, (kind, method) in rows.items()
}  # fmt: skip
print(
    f"trained on {N_PER_CLASS} + {N_PER_CLASS} city claims, {len(SEEDS)} draws; balanced accuracy ± std over draws, AUROC"
)
print(f"{'detector':34} {'periods (years)':>24} {'negated city claims':>24}")
for row, by_family in table.items():
    print(f"{row:34}" + "".join(f"{a:>12.3f} ±{s:.2f} {r:6.3f}" for a, r, s in by_family.values()))
assert all(torch.equal(results[f, "topk"][m], results[f, "standard"][m]) for f in tests for m in METHODS[:2])

# %%
years = {row: by_family["years"] for row, by_family in table.items()}
baselines = min(years["logistic probe"][0], years["diff of means"][0])
sae_rows = [row for row in years if "(" in row]
assert baselines > 0.95 and years["logistic probe"][1] > 0.99 and years["diff of means"][1] > 0.99
assert all(years[row][0] < baselines - 0.01 for row in sae_rows)  # every SAE detector loses on the held-out family
assert years["SAE latent probe (topk)"][0] > years["best SAE latent (topk)"][0] + 0.1
assert years["best SAE latent (topk)"][1] > years["best SAE latent (topk)"][0] + 0.05  # ranks well, cuts badly
negated = {row: by_family["negated_cities"] for row, by_family in table.items()}
assert all(accuracy < 0.6 for accuracy, _, _ in negated.values())  # nobody detects false negations here
assert negated["logistic probe"][1] < 0.4 and negated["diff of means"][1] < 0.4

# %% [markdown]
# **What wins here: the two plain baselines.** Trained on 16 true and 16 false city claims, the
# logistic probe and the difference of means both judge *periods of time*, a family they never saw,
# with balanced accuracy above 0.95 and AUROC near 1: the residual stream after block 2 has one truth
# direction shared by cities and years, and 32 examples find it. Every SAE detector does worse on the same
# budget, by more than 0.01. The sparse probes on SAE latents come closest; the best single TopK latent is
# far behind (more than 0.1 below the sparse probe on the same SAE). Its AUROC is higher than its balanced
# accuracy by more than 0.05: the latent does rank true periods above false ones, but the threshold learned
# on cities sits in the wrong place for years. One latent chosen on one family is a brittle detector even
# when it means roughly the right thing.
#
# **Negations defeat everyone.** On "Paris is not in Spain." every detector is below 0.6, and the two
# baselines' AUROC is *below* 0.4: they call the negated claims true exactly when the un-negated claim
# would be. After block 2 the model has checked the city against the country but not yet applied the
# "not" (1.3.1 found negation resolved only in the last block), so nothing linear trained on city claims
# can read the truth of a negation there, and an SAE trained on the same activations cannot either. The
# SAE inherits its layer's limits: the layer matters more than the method.

# %% [markdown]
# ### Try it: one block later
#
# Before you run the next cell, predict the probes' balanced accuracy on negated claims when they read the
# residual stream after block 3 instead, on the same samples. (There is no zoo SAE at block 3, so the SAE
# detectors sit this one out.)

# %%
block_3 = {family: claim_activations(model, [s.text for s in statements[family]], 3, POSITION)
           for family in ("cities", "negated_cities")}  # fmt: skip
x_train_3 = block_3["cities"][train_pool]
late = {"logistic probe": [], "diff of means": []}
for picked in samples:
    w3, b3 = fit_logistic_probe(x_train_3[picked], train["topk"][2][picked], L2)
    direction_3, threshold_3 = diff_of_means(x_train_3[picked], train["topk"][2][picked])
    late["logistic probe"].append(balanced_accuracy(block_3["negated_cities"] @ w3 + b3 > 0, labels["negated_cities"]))
    late["diff of means"].append(
        balanced_accuracy(block_3["negated_cities"] @ direction_3 > threshold_3, labels["negated_cities"])
    )
late = {method: sum(values) / len(values) for method, values in late.items()}
print("after block 3, on negated city claims:", {m: round(a, 3) for m, a in late.items()})
assert all(accuracy > 0.8 for accuracy in late.values())

# %% [markdown]
# After block 3 the same 32 city claims give probes that judge negations correctly (balanced accuracy above
# 0.8): the verdict, negation applied, is linear there. A detector can only find what its layer holds.

# %% [markdown]
# ## Part 5: the data budget
#
# The hope for SAE-based detectors is data efficiency: with a dictionary learned without labels, a handful
# of labelled examples should be enough to pick the right latent. Here is the same comparison on the
# periods, from 1 to 16 examples per class.

# %%
BUDGETS = [1, 2, 4, 8, 16]
curves = {}
for n_per_class in BUDGETS:
    budget_samples = [balanced_sample(train["topk"][2], n_per_class, seed) for seed in SEEDS]
    for kind in saes:
        scores = head_to_head(train[kind], tests["years"][kind], budget_samples, L2, min(K, 2 * n_per_class))
        for method in METHODS if kind == "topk" else METHODS[2:]:
            name = method if method in METHODS[:2] else f"{method} ({kind})"
            curves.setdefault(name, []).append(scores[method][:, 0].mean().item())
fig = go.Figure(
    [go.Scatter(x=BUDGETS, y=accuracy, name=name, mode="lines+markers") for name, accuracy in curves.items()]
)
fig.update_layout(title="trained on city claims, tested on periods", xaxis_title="labelled examples per class",
                  yaxis_title="balanced accuracy (mean of 20 draws)", xaxis_type="log")  # fmt: skip
fig.show()
best_baseline = [max(a, b) for a, b in zip(curves["logistic probe"], curves["diff of means"])]
sae_curves = [name for name in curves if "(" in name]
for name in sae_curves:
    print(
        f"{name:28}", " ".join(f"{a - b:+.3f}" for a, b in zip(curves[name], best_baseline)), "vs the better baseline"
    )
one_each, from_4 = BUDGETS.index(1), BUDGETS.index(4)
assert curves["SAE latent probe (standard)"][one_each] > best_baseline[one_each] + 0.02
two_each = BUDGETS.index(2)
assert abs(curves["SAE latent probe (standard)"][two_each] - best_baseline[two_each]) < 0.02
assert all(curves[name][i] < best_baseline[i] for name in sae_curves for i in range(from_4, len(BUDGETS)))
assert all(
    curves[name][i] < best_baseline[i] - 0.03 for name in sae_curves if "topk" in name for i in range(len(BUDGETS))
)
assert min(curves["diff of means"]) > 0.85

# %% [markdown]
# One exception, and it is real: with a **single** example of each class, the sparse probe on the
# *standard* SAE's latents beats both baselines (by more than 0.02 on average over the draws). One pair of
# claims gives a noisy difference of means; the standard SAE's latents, learned from 400,000 unlabelled
# tokens, restrict the probe to a few directions that already mean something, and that is worth more than
# the second labelled example. By two examples per class the baselines have caught up, and from four on
# both lead every SAE detector. The TopK SAE's detectors never win, at any budget. So: an SAE *can* buy data
# efficiency at the very smallest budgets, depending on the SAE, and the advantage is gone after a handful
# of labels, which is about what Kantamneni et al. (2025) report at scale.


# %% [markdown]
# ## Part 6: from detecting to steering
#
# A detector's direction is also a hypothesis about how the model *represents* truth. If the model reads
# its verdict along that direction, adding the direction should change the verdict. Each detector gives a
# direction in the residual stream: the probe's weights, the difference of means, the best latent's
# decoder row (times its sign), and the sparse probe's weights mapped through the decoder rows of its
# latents. We add each, at a fixed norm, at the last position of false period claims (do they become
# "true"?) and subtract it from true ones (do they become "false"?), against a random direction.


# %% [exercise] steered_verdicts difficulty=3 importance=4 minutes=15
def steered_verdicts(
    model: HookedTransformer,
    statements: list[str],
    direction: Float[Tensor, " d_model"],
    layer: int,
    scale: float,
    speaker: str = "Mary",
) -> Bool[Tensor, " n"]:
    """Whether the model judges each statement true (the logit of " true" above that of " false" at the
    last position of corpus.judged_claim(statement, speaker)) when scale * direction / ||direction|| is
    added to the residual stream after block `layer` at the last position only (one left-padded batch)."""
    raise NotImplementedError()


# %% [hint]
# Three things to get right: every prompt must end at the same position (where does the padding go?), the
# hook must change only that position, and the verdict compares two logits, not the top token.

# %% [hint]
# A hook on `blocks.{layer}.hook_resid_post` that does `resid[:, -1] += push` and returns `resid`, run with
# `model.run_with_hooks(tokens, fwd_hooks=[(name, hook)])`; token ids from
# `corpus.single_token_id(model.tokenizer, " true")`.

# %%
SCALE = 40.0  # about the norm of the residual stream at these positions
sae_topk, sae_standard = saes["topk"], saes["standard"]
z16_standard = latents["standard"]["cities"][train_pool][balanced_sample(train["topk"][2], 16, seed=0)]
index_standard, sign_standard, _ = best_latent(z16_standard, y16)
indices_standard, latent_w_standard, _ = sparse_latent_probe(z16_standard, y16, K, L2)
directions = {
    "logistic probe": w,
    "diff of means": direction,
    "best SAE latent (topk)": sign * sae_topk.W_dec[index],
    "SAE latent probe (topk)": latent_w @ sae_topk.W_dec[indices],
    "best SAE latent (standard)": sign_standard * sae_standard.W_dec[index_standard],
    "SAE latent probe (standard)": latent_w_standard @ sae_standard.W_dec[indices_standard],
    "random": torch.randn(model.cfg.d_model, generator=torch.Generator().manual_seed(0)),
}
false_periods = [s.text for s in statements["years"] if not s.is_true]
true_periods = [s.text for s in statements["years"] if s.is_true]
unsteered = (
    steered_verdicts(model, false_periods, w, LAYER, 0.0),
    steered_verdicts(model, true_periods, w, LAYER, 0.0),
)
print(
    f"unsteered: {unsteered[0].float().mean():.2f} of false periods judged true, {unsteered[1].float().mean():.2f} of true ones"
)
flips = {}
for name, vector in directions.items():
    to_true = steered_verdicts(model, false_periods, vector, LAYER, SCALE).float().mean().item()
    to_false = (~steered_verdicts(model, true_periods, vector, LAYER, -SCALE)).float().mean().item()
    flips[name] = (to_true, to_false)
    cosine = torch.cosine_similarity(vector, direction, dim=0).item()
    print(
        f"{name:28} false -> true {to_true:.2f}   true -> false {to_false:.2f}   cosine with diff of means {cosine:+.2f}"
    )
single_latents = [name for name in directions if name.startswith("best SAE latent")]
assert 25 < residual_norm < 55 and unsteered[0].float().mean() < 0.05 and unsteered[1].float().mean() > 0.95
assert all(min(flips[m]) > 0.9 for m in ("logistic probe", "diff of means", "SAE latent probe (topk)"))
assert all(min(flips[name]) < 0.5 for name in single_latents + ["SAE latent probe (standard)"])
assert all(flips[name][0] > flips["random"][0] + 0.15 for name in single_latents)
assert max(flips["random"]) < 0.5

# %% [markdown]
# Steering separates the detectors differently from detecting. At a push about as long as the residual
# stream itself, the probe and difference-of-means directions flip more than nine in ten verdicts either
# way, and so does the direction of the sparse probe on the TopK SAE's latents (it sums eight decoder rows
# with weights *fit to labels*; its cosine with the difference of means is printed above); the standard
# SAE's sparse probe steers no better than its single best latent. A **single**
# latent's decoder direction flips fewer than half of the verdicts one way or the other: more false
# verdicts to true than a random direction does, so it is part of how the model represents truth, but not
# the direction the model reads its verdict from. A latent is a direction the SAE chose to reconstruct the
# activations sparsely, and nothing forced it to line up with the readout; the difference of means lines
# up with it almost by construction.


# %% [markdown]
# ## Part 7: what is the best latent about?
#
# Chosen on all 144 city claims of the training pool, the TopK SAE's best single latent separates them
# perfectly. Below are its firing rates on each family. To know what it *is*, look at where it fires on
# ordinary text: `zoo.concepts` labels every token of the corpus with what it is (a name, a country, the
# end of a true or false judged claim, ...), so a claim about a latent can be scored by precision and
# recall, as in 1.3.3.

# %%
truth_latent, truth_sign, truth_cut = best_latent(train["topk"][1], train["topk"][2])
print(f"latent {truth_latent}, sign {truth_sign:+.0f}: training balanced accuracy "
      f"{balanced_accuracy(truth_sign * (train['topk'][1][:, truth_latent] - truth_cut) > 0, train['topk'][2]):.2f}")  # fmt: skip
for family in statements:
    fires = latents["topk"][family][:, truth_latent] > 0
    print(f"  {family}: fires on {fires[labels[family]].float().mean():.2f} of true, "
          f"{fires[~labels[family]].float().mean():.2f} of false statements")  # fmt: skip
fires_years = latents["topk"]["years"][:, truth_latent] > 0
assert fires_years[labels["years"]].float().mean() > fires_years[~labels["years"]].float().mean() + 0.3
print(f"{len(CONCEPTS)} concepts:", CONCEPTS)


# %% [finding] best_latent_concept difficulty=3 importance=4 minutes=20
# Which concept of CONCEPTS is `truth_latent` most selective for on ordinary text? Run the model on the
# test split of the story corpus (`evaluate.story_tokens(model, "test", 128)`), encode the residual stream
# after block 2 with the TopK SAE, and score "the latent fires (> 0)" against each concept's labels by F1,
# the harmonic mean of precision and recall. Assign the concept's name.
best_latent_concept = ...

# %% [hint]
# Precision alone rewards a latent that fires rarely; recall alone rewards one that fires everywhere. F1 asks
# for both. `concept_labels(tokens, model.tokenizer)` labels a whole batch of token ids at once.

# %% [hint]
# Cache `blocks.2.hook_resid_post` for the 128 documents, `sae_topk.encode` it, take `[..., truth_latent] > 0`,
# then `precision_recall(fires, labels[..., i])` for each concept i.

# %% [solution]
story = evaluate.story_tokens(model, "test", 128)
_, story_cache = model.run_with_cache(story, names_filter=[sae_topk.cfg.metadata.hook_name])
fires_in_story = sae_topk.encode(story_cache[sae_topk.cfg.metadata.hook_name])[..., truth_latent] > 0
story_labels = concept_labels(story, model.tokenizer)
concept_f1 = {}
for i, concept in enumerate(CONCEPTS):
    precision, recall = precision_recall(fires_in_story, story_labels[..., i])
    concept_f1[concept] = 2 * precision * recall / max(precision + recall, 1e-9)
for concept, f1 in sorted(concept_f1.items(), key=lambda item: -item[1])[:4]:
    print(f"{concept:12} F1 {f1:.2f}")
best_latent_concept = max(concept_f1, key=concept_f1.get)
runner_up = sorted(concept_f1.values())[-2]
print(f"{best_latent_concept}: F1 {concept_f1[best_latent_concept]:.2f}; next best {runner_up:.2f}")
assert best_latent_concept == "true_claim" and concept_f1["true_claim"] > runner_up + 0.15
assert concept_f1["true_claim"] < 0.6  # selective, but far from a perfect "true claim" detector

# %% [markdown]
# The SAE did learn something close to the truth: on ordinary text its best truth latent is most selective
# for the tokens right after a **true** judged claim (". That is"), far ahead of any other concept. Its F1
# is modest, though: it fires on only some true claims, and on some false ones. A real, interpretable
# feature, learned without labels, and still a worse detector than a direction fit to 32 labelled
# examples. Both things are true, and only the second one matters if detecting is the job.

# %% [markdown]
# ## Summary
#
# On this model and this task, with the same labelled budget:
#
# - **The baselines win.** A logistic probe and a difference-of-means direction on the residual stream
#   generalise from city claims to periods better than any SAE-based detector at 16 examples per class,
#   and from 4 examples per class up.
# - **The one exception is the scarcest budget**: with a single example per class, a sparse probe on the
#   standard SAE's latents beats both; the TopK SAE never does.
# - **A probe on SAE latents is the best SAE detector, the single best latent the worst**: the single
#   latent's ranking transfers to the new family better than its threshold does.
# - **Steering**: the baselines' directions flip nearly every verdict; a single latent's decoder direction
#   flips fewer than half, though more than chance; a labelled combination of TopK latents steers as well
#   as the baselines.
# - **The layer limits everyone.** After block 2 no detector can read the truth of negations, SAE or not;
#   one block later a plain probe can.
# - **The SAE's latent is interpretable**: its best truth latent is about true judged claims. Being about
#   the right thing did not make it the best detector.
#
# The caveats are the usual ones for a small, planted world: a 4-layer model, a residual stream of 128
# dimensions where a probe has little room to overfit, SAEs of 1,024 latents trained on 400,000 tokens,
# and a truth that is cleanly linear by construction. The papers in the introduction found the same
# ordering at scale. The habit to take away is not "SAEs are bad" but **run the baseline**: a claim that
# an unsupervised tool finds a concept is only worth what it adds over the supervised direction that
# costs a few dozen labels.
