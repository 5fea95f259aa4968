# %% [markdown]
# # 1.3.1 Linear probes: where does a model keep the truth?
#
# A **linear probe** is the simplest question you can ask of a model's activations: is there a direction
# in the residual stream along which true statements sit on one side and false ones on the other? Marks &
# Tegmark, *The Geometry of Truth* (2023), asked it of LLaMA-2 models on simple statements ("The city of
# Paris is in France.") and found such a direction: visible in a 2-D PCA, found by a probe as simple as the
# difference of the class means, shared across kinds of statement more than one might expect, and
# **causal**: adding it to the activations of a false statement makes the model call it true.
#
# This section repeats that study on the zoo's `gpt2-mini-truth`, whose training text plants the truth we
# need (see `zoo/corpus.py` and `zoo/models/gpt2-mini-truth/CARD.md`). People in its stories make claims,
# and the text says whether they were right: "Mary said that Paris is in Spain. That is false." There are
# three **families** of statement: cities ("Paris is in Spain."), the same negated ("Paris is not in
# Spain.") and periods of time, which must run forwards ("The war lasted from 1789 to 1732." is false).
# Every statement's truth is known, and some claims were **never judged in training** (the `held_out`
# flag: claims about six of the cities, and periods in the 1500s). On those the model can only be right by
# checking the claim against what it knows, and on those we test every probe.
#
# You will:
#
# 1. score the model's own true/false verdicts, with an accuracy that is fair to unequal classes;
# 2. cache residual-stream activations with TransformerLens at the end of each prompt;
# 3. look at true and false statements in their top principal components (plotly);
# 4. fit mass-mean probes, sweep them over layers and token positions, and find where truth becomes decodable;
# 5. fit the covariance-adjusted ("IID") mass-mean probe and a logistic-regression probe that you train in torch;
# 6. test whether a probe trained on one family works on the others, and find out what it actually reads;
# 7. run the causal test: add the truth direction to the residual stream and watch the verdicts flip,
#    against random directions of the same norm.
#
# **Relation to ARENA's 1.3.1.** ARENA's section is built on three papers: *The Geometry of Truth*, Apollo
# Research's deception probes (Goldowsky-Dill et al., 2025) and attention probes that flag high-stakes user
# requests (2025), each on a multi-billion-parameter chat model. The first is all here (extraction, PCA,
# mass-mean and logistic probes, layer sweeps, generalisation, causal interventions), on a model whose
# training data we wrote, so "true" is exactly defined and what the model was shown is exactly known. The
# other two need a model that can deceive or hold a conversation, and far more than a CPU, so they are left
# out.
#
# **Prerequisites**: 1.2 (TransformerLens, caches and hooks). Each exercise is a function whose body raises
# `NotImplementedError`; a **finding** asks for what your analysis found, and the check grades it against
# the truth.

# %%
import json
from collections.abc import Callable

import plotly.express as px
import torch
from jaxtyping import Bool, Float
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.hook_points import HookPoint  # noqa: F401 (for your hook's type annotation)

from tests.checks.chapter1_transformer_interp.linear_probes import check  # noqa: F401 (used by the check cells the build adds)
from zoo import MODELS_DIR, corpus, load_model
from zoo.evaluate import judged_true

# A model this small runs fastest on one thread; several threads mostly wait on each other.
torch.set_num_threads(1)
torch.manual_seed(0)
torch.set_grad_enabled(False)  # we read the model; the one probe that trains turns gradients on itself

# %% [markdown]
# ## Part 1: the statements and the model's verdicts

# %%
model = load_model("gpt2-mini-truth", device="cpu")
metrics = json.loads((MODELS_DIR / "gpt2-mini-truth" / "metrics.json").read_text())["metrics"]
statements = {family: corpus.truth_statements(family) for family in corpus.TRUTH_FAMILIES}
for family, rows in statements.items():
    n_true, n_held_out = sum(s.is_true for s in rows), sum(s.held_out for s in rows)
    print(f"{family:>15}: {len(rows)} statements, {n_true} true, {n_held_out} never judged in training")
    print(" " * 17, [s.text for s in rows[:2]])
print(corpus.judged_claim(statements["years"][0].text, "Mary"))

# %% [markdown]
# Every city is paired with every country, so only one cities statement in eight is true, and seven in eight
# negated ones are. A classifier that always says "false" is right on 88% of the cities statements and has
# learnt nothing. **Balanced accuracy**, the mean of the accuracy on the true statements and the accuracy on
# the false ones, gives that classifier 0.5 whatever the sizes of the classes.


# %% [exercise] balanced_accuracy difficulty=1 importance=4 minutes=5
def balanced_accuracy(predictions: Bool[Tensor, " batch"], labels: Bool[Tensor, " batch"]) -> float:
    """The mean of the accuracy on the true statements and the accuracy on the false ones.

    Always predicting one class scores 0.5, however unequal the classes are."""
    raise NotImplementedError()


# %% [hint]
# Split the statements by their label first: what share of each group did the predictions get right?

# %% [markdown]
# The model gives its verdict as the next token of a **judged-claim prompt** ("Mary said that Paris is in
# Spain. That is"): " true" or " false". The logit difference, logit(" true") - logit(" false"), is a
# graded verdict: positive means "true".


# %% [exercise] verdict_logit_diff difficulty=1 importance=4 minutes=8
def verdict_logit_diff(model: HookedTransformer, prompts: list[str]) -> Float[Tensor, " batch"]:
    """The logit of " true" minus the logit of " false" for the token after each prompt.

    Prompts of different lengths are padded on the left, so each one ends at position -1."""
    raise NotImplementedError()


# %% [hint]
# Which position's logits predict the token after the prompt, and what must padding do so that this position
# is the same for every prompt? The two words are tokens with their leading space.

# %% [hint]
# `model.to_tokens(prompts, padding_side="left")`, then the logits at `[:, -1]`; `model.to_single_token(" true")`
# gives a token's id.

# %%
prompts = {family: [corpus.judged_claim(s.text, "Mary") for s in rows] for family, rows in statements.items()}
labels = {family: torch.tensor([s.is_true for s in rows]) for family, rows in statements.items()}
held_out = {family: torch.tensor([s.held_out for s in rows]) for family, rows in statements.items()}
verdicts = {family: verdict_logit_diff(model, prompts[family]) > 0 for family in prompts}
verdict_accuracy = {}
for family in prompts:
    kept = held_out[family]
    verdict_accuracy[family] = balanced_accuracy(verdicts[family][kept], labels[family][kept])
    on_judged = balanced_accuracy(verdicts[family][~kept], labels[family][~kept])
    print(
        f"{family:>15}: balanced accuracy {verdict_accuracy[family]:.3f} on held-out claims, {on_judged:.3f} on judged ones"
    )
    # The zoo measured the same numbers when it trained the model, with zoo.evaluate.judged_true.
    assert abs(verdict_accuracy[family] - metrics[f"truth_{family}_heldout_accuracy"]["value"]) < 1e-3
    assert torch.equal(verdicts[family], judged_true(model, [s.text for s in statements[family]]))
    assert on_judged > 0.95
assert verdict_accuracy["years"] > 0.95
assert verdict_accuracy["cities"] < 0.7 and verdict_accuracy["negated_cities"] < 0.7
assert metrics["fact_recall_accuracy"]["value"] > 0.95  # "Lyon is in" -> " France", for every city

# %% [markdown]
# On claims like those it saw judged, the model is right more than 95% of the time in every family. On
# held-out claims the families part ways. Periods in the 1500s it judges correctly (balanced accuracy above
# 0.95): it compares the two years, whatever the century. Claims about the six held-out cities it judges
# barely better than chance (below 0.7, negated or not), although it knows where those cities are (the
# zoo's `fact_recall_accuracy`, "Lyon is in" -> " France", is above 0.95): it never learnt to check a claim
# against that knowledge for a city it had not seen judged. Keep this in mind; it decides what a probe
# can find.

# %% [markdown]
# ## Part 2: caching activations
#
# A probe reads the residual stream at one position. Marks & Tegmark read the last token of the
# statement (its period). Here the statement sits inside the judged-claim prompt, and four positions are
# candidates: the claim's last word (the country, or the end year's last two digits), its period, " That",
# and the final " is", where the model produces its verdict. Which one holds the truth, and from which layer
# on, is a question to measure, not to assume. So cache all four, for every statement and every layer, in
# one forward pass.


# %% [exercise] cache_activations difficulty=2 importance=5 minutes=12
def cache_activations(
    model: HookedTransformer, prompts: list[str], positions: list[int]
) -> Float[Tensor, "layer position batch d_model"]:
    """The residual stream after every block (hook_resid_post), at each of `positions` counted from the
    end of each prompt (-1 is its last token; prompts are left-padded), from one forward pass."""
    raise NotImplementedError()


# %% [hint]
# `run_with_cache` can keep only the hooks you name (its `names_filter` argument), which saves memory when
# hundreds of prompts run at once. With left padding, does "3 tokens from the end" mean the same token in
# every prompt?

# %% [hint]
# `cache["resid_post", layer]` is (batch, pos, d_model); index its position axis with the list of positions,
# stack the layers, and move the position axis in front of the batch axis.

# %%
POSITIONS = {"last word": -4, "period": -3, "That": -2, "is": -1}
# The cached position axis holds positions -4, -3, -2, -1 in that order, so a position counted from the end
# indexes it directly: acts[family][layer, POSITIONS["period"]] is the period.
IS = POSITIONS["is"]
all_prompts = [prompt for family in prompts for prompt in prompts[family]]
all_acts = cache_activations(model, all_prompts, list(POSITIONS.values()))  # one forward pass for everything
acts = dict(zip(prompts, all_acts.split([len(p) for p in prompts.values()], dim=2)))  # [layer, position, batch, d]
n_layers = model.cfg.n_layers
print({family: tuple(a.shape) for family, a in acts.items()})
assert all_acts.shape == (n_layers, len(POSITIONS), len(all_prompts), model.cfg.d_model)

# %% [markdown]
# ## Part 3: a first look, with PCA
#
# Before fitting anything, look. Project a family's activations onto their top two principal directions and
# colour them by truth. If truth is a main axis of variation, the colours separate.


# %% [exercise] pca_components difficulty=2 importance=3 minutes=10
def pca_components(acts: Float[Tensor, "batch d_model"], k: int) -> Float[Tensor, "k d_model"]:
    """The top k principal directions of acts (unit vectors, the direction of most variance first).

    Each direction's sign is arbitrary."""
    raise NotImplementedError()


# %% [hint]
# Principal directions describe variation around the mean, not around the origin. Which factorisation of the
# data gives unit directions ordered by the variance along them?

# %% [hint]
# `torch.linalg.svd(centred, full_matrices=False)` returns U, S, Vh: the rows of Vh are the directions, in
# order of decreasing singular value. (`torch.linalg.eigh` of the covariance works too, but sorts its
# eigenvalues in *increasing* order.)


# %%
def pca_scatter(family: str, position: str) -> None:
    """The family's statements in their top two principal directions at one position, a panel per layer."""
    points = []
    for layer in range(n_layers):
        layer_acts = acts[family][layer, POSITIONS[position]]
        centred = layer_acts - layer_acts.mean(0)
        for (x, y), is_true in zip((centred @ pca_components(layer_acts, 2).T).tolist(), labels[family].tolist()):
            points.append(dict(layer=f"after block {layer}", PC1=x, PC2=y, truth="true" if is_true else "false"))
    px.scatter(
        points, x="PC1", y="PC2", color="truth", facet_col="layer", height=320, opacity=0.6,
        title=f"{family}: the top two principal directions at the {position!r} token",
    ).update_xaxes(matches=None).update_yaxes(matches=None).show()  # fmt: skip


pca_scatter("years", "period")
pca_scatter("years", "is")


# %%
def pc1_separation(family: str, layer: int, position: str) -> float:
    """How well the first principal direction alone separates true from false: the balanced accuracy of
    thresholding the projection halfway between the class means (whichever side is "true")."""
    layer_acts = acts[family][layer, POSITIONS[position]]
    projection = layer_acts @ pca_components(layer_acts, 1)[0]
    midpoint = (projection[labels[family]].mean() + projection[~labels[family]].mean()) / 2
    accuracy = balanced_accuracy(projection > midpoint, labels[family])
    return max(accuracy, 1 - accuracy)


pc1_table = torch.tensor([[pc1_separation("years", layer, p) for p in POSITIONS] for layer in range(n_layers)])
print("years: balanced accuracy of PC1 alone (rows: after block 0..3, columns:", list(POSITIONS), ")\n", pc1_table)
assert pc1_table[2:, IS].min() > 0.9  # in the later blocks, truth is the main axis at " is"
assert pc1_table[:, POSITIONS["period"]].max() < 0.75 and pc1_table[0, IS] < 0.75

# %% [markdown]
# At the final " is", after the last two blocks, the first principal direction alone sorts the periods into
# true and false (balanced accuracy above 0.9): truth is the largest axis of variation there. At the period it
# is not, at any layer, and neither is it at " is" after block 0 (below 0.75). Where between the two does it
# appear? Part 4 measures that with a probe. Try `pca_scatter("cities", "is")` too: no such picture, for the
# reason Part 1 gave.

# %% [markdown]
# ## Part 4: mass-mean probes, and a sweep over layers and positions
#
# The simplest probe that can work: the **mass-mean** direction, from the mean of the false statements to
# the mean of the true ones, with the decision boundary halfway between the two means (a point x is called
# true when direction · x + bias > 0). Marks & Tegmark found it about as accurate as logistic regression, and
# more causal (Part 7 tests that here).


# %% [exercise] mass_mean_probe difficulty=2 importance=5 minutes=8
def mass_mean_probe(
    acts: Float[Tensor, "batch d_model"], labels: Bool[Tensor, " batch"]
) -> tuple[Float[Tensor, " d_model"], float]:
    """The mass-mean probe: the direction from the mean of the false statements to the mean of the true
    ones, and the bias that puts the decision boundary halfway between the two means."""
    raise NotImplementedError()


# %% [hint]
# A point exactly halfway between the two means should get a score of zero. What does that say about the bias?

# %% [hint]
# bias = -direction · (mean_true + mean_false) / 2. Return the bias as a Python float (`.item()`).

# %% [markdown]
# A probe is worth what it does on statements it was not fitted on. Fit on the claims the model saw judged
# in training, and score on the held-out ones, layer by layer.


# %% [exercise] layer_sweep difficulty=2 importance=4 minutes=10
def layer_sweep(
    acts: Float[Tensor, "layer batch d_model"],
    labels: Bool[Tensor, " batch"],
    train_mask: Bool[Tensor, " batch"],
    fit: Callable[[Tensor, Tensor], tuple[Tensor, float]],
) -> Float[Tensor, " layer"]:
    """For each layer: fit a probe with fit(acts, labels) on the statements in train_mask, and return
    its balanced accuracy on the others."""
    raise NotImplementedError()


# %% [hint]
# Three things decide whether the number means anything: which statements the probe is fitted on, which it is
# scored on, and how the score treats unequal classes.

# %%
sweeps = {
    family: torch.stack(
        [
            layer_sweep(acts[family][:, p], labels[family], ~held_out[family], mass_mean_probe)
            for p in range(len(POSITIONS))
        ]
    )
    for family in acts
}  # family -> [position, layer]
fig = px.imshow(
    torch.stack(list(sweeps.values())).numpy(), facet_col=0, zmin=0, zmax=1, text_auto=".2f",
    x=[f"after block {layer}" for layer in range(n_layers)], y=list(POSITIONS), color_continuous_scale="RdBu",
    title="mass-mean probe: balanced accuracy on held-out statements (fitted on the judged ones)",
)  # fmt: skip
for annotation, family in zip(fig.layout.annotations, sweeps):
    annotation.text = family
fig.show()

# %% [finding] truth_layer difficulty=3 importance=5 minutes=10
# At the final " is" (position -1), after which block does a mass-mean probe first classify the held-out
# *years* statements with a balanced accuracy of at least 0.9? Assign the block's index (an int).
truth_layer = ...

# %% [hint]
# You have just computed this. Read the right row of the right family's sweep, and mind which axis is the
# position and which the layer.

# %% [solution]
truth_layer = int((sweeps["years"][IS] >= 0.9).nonzero()[0, 0])

# %% [markdown]
# What the sweep says (asserted below):
#
# - **Position.** For the periods, truth is decodable at the final " is" and nowhere else: there the probe
#   reaches above 0.9 from block 1 on, while at the other three positions it stays below 0.85 at every
#   layer, and at the period below 0.75. The model does not compute the truth of a claim where the claim
#   ends and carry it along; it computes it where it needs it, at the verdict. (The claim's last word gets
#   between 0.65 and 0.85 without any comparison: the best rule that looks only at the end year's last two
#   digits scores within 0.1 of it, since a period told backwards tends to end on smaller digits.) So from
#   here on every probe reads the final " is", the token whose next-token prediction is the verdict. Part 7
#   shows the period is not read for the verdict either.
# - **Layer.** Block 0 is not enough (below 0.75); after block 1 the probe is above 0.9.
# - **Cities.** On the held-out cities the probe never passes 0.7 at any position or layer, in either
#   city family. The model judges those claims at near chance (Part 1); a probe cannot read a truth the
#   model does not compute.

# %%
period, last_word = POSITIONS["period"], POSITIONS["last word"]
assert truth_layer == 1
assert sweeps["years"][IS, truth_layer:].min() > 0.9 and sweeps["years"][IS, :truth_layer].max() < 0.75
assert sweeps["years"][:IS].max() < 0.85 and sweeps["years"][period].max() < 0.75
assert 0.65 < sweeps["years"][last_word].max() < 0.85
# A rule that reads only the end year's last two digits ("... to 1487." -> 87), at its best threshold:
end_digits = torch.tensor([int(s.text.rstrip(".")[-2:]) for s in statements["years"]])
held_years = held_out["years"]
digit_rule = max(
    balanced_accuracy(end_digits[held_years] > threshold, labels["years"][held_years]) for threshold in range(100)
)
print(f"end digits alone: {digit_rule:.2f}; probe at the last word: {sweeps['years'][last_word].max():.2f}")
assert abs(digit_rule - sweeps["years"][last_word].max()) < 0.1
assert sweeps["cities"].max() < 0.7 and sweeps["negated_cities"].max() < 0.7

# %% [markdown]
# ### Try it: a leaky split
#
# Suppose you had split the cities statements at random instead of by held-out city: fit on half of the
# judged claims and score on the other half. Predict the score before you run the cell.

# %%
judged_cities = ~held_out["cities"]
random_half = torch.rand(int(judged_cities.sum()), generator=torch.Generator().manual_seed(0)) < 0.5
leaky = layer_sweep(acts["cities"][:, IS, judged_cities], labels["cities"][judged_cities], random_half, mass_mean_probe)
print("cities, random split of the judged claims:", leaky, "\nheld-out cities:", sweeps["cities"][IS])
assert leaky[2:].min() > 0.95 and sweeps["cities"][IS, 2:].max() < 0.7

# %% [markdown]
# Above 0.95 after blocks 2 and 3, against below 0.7 on held-out cities. Every city of the random split had
# its claims judged in training, so the probe only has to read a verdict the model learnt for that city.
# The split decides what a probe's accuracy means: "a probe finds truth with 98% accuracy" says nothing until
# you know what the test statements have in common with the training ones.

# %% [markdown]
# ## Part 5: other probes
#
# The mass-mean direction ignores how the activations spread. If some direction varies a lot within each
# class and also leans towards the difference of the means, the mass-mean direction picks up that
# variation. Marks & Tegmark's **IID** variant corrects for it: multiply the direction by the inverse of
# the within-class covariance Sigma (the covariance after subtracting each statement's class mean). It is
# the optimal linear classifier when both classes are Gaussians with one shared covariance. With 128
# dimensions and a few hundred statements Sigma is badly conditioned: add a small multiple of the identity
# (a ridge).


# %% [exercise] iid_mass_mean_probe difficulty=3 importance=3 minutes=15
def iid_mass_mean_probe(
    acts: Float[Tensor, "batch d_model"], labels: Bool[Tensor, " batch"], ridge: float = 0.1
) -> tuple[Float[Tensor, " d_model"], float]:
    """The covariance-adjusted ("IID") mass-mean probe: Sigma^-1 (mean_true - mean_false), where Sigma is
    the covariance of the activations after subtracting each statement's class mean (divided by the
    number of statements), plus ridge * (the mean of Sigma's diagonal) on the diagonal so it inverts.
    The bias puts the decision boundary halfway between the two class means."""
    raise NotImplementedError()


# %% [hint]
# Which mean does each statement get centred on, its own class's or the overall one? And why scale the ridge
# by the size of Sigma rather than use a fixed number?

# %% [hint]
# `torch.where(labels[:, None], mean_true, mean_false)` gives each row its class mean; `centred.T @ centred /
# len(acts)` is Sigma; `torch.linalg.solve(sigma, difference)` applies its inverse without forming it.

# %% [markdown]
# The third probe is **logistic regression**: the direction and bias that minimise the cross-entropy of
# sigmoid(direction · x + bias) against the labels. With unequal classes a plain mean of the cross-entropy
# lets the larger class dominate, so weight the two classes equally; a small L2 penalty keeps the minimum
# unique when the classes can be separated exactly (as they often can in 128 dimensions). First the loss:


# %% [exercise] logistic_probe_loss difficulty=2 importance=3 minutes=10
def logistic_probe_loss(
    acts: Float[Tensor, "batch d_model"],
    labels: Bool[Tensor, " batch"],
    direction: Float[Tensor, " d_model"],
    bias: Float[Tensor, ""],
    l2: float,
) -> Float[Tensor, ""]:
    """Class-balanced logistic loss of the probe sigmoid(acts @ direction + bias): the mean binary
    cross-entropy over the true statements and the mean over the false ones, averaged, plus
    l2 / 2 * |direction|^2 (the bias is not penalised)."""
    raise NotImplementedError()


# %% [hint]
# Compute one cross-entropy per statement first (a numerically stable function takes the scores before the
# sigmoid), and only then average within each class.

# %% [hint]
# `torch.nn.functional.binary_cross_entropy_with_logits(scores, labels.float(), reduction="none")`.

# %% [markdown]
# Now train it. The loss is convex, so it has one minimum, and the check compares yours with it: any
# optimiser works if you run it until the loss stops falling. The notebook has gradients turned off, so turn
# them on inside your function.


# %% [exercise] train_logistic_probe difficulty=3 importance=4 minutes=15
def train_logistic_probe(
    acts: Float[Tensor, "batch d_model"], labels: Bool[Tensor, " batch"], l2: float = 1e-2
) -> tuple[Float[Tensor, " d_model"], float]:
    """The logistic-regression probe that minimises logistic_probe_loss (a convex loss with one
    minimum), trained in torch from zero weights."""
    raise NotImplementedError()


# %% [hint]
# The parameters are a direction and a bias that require gradients; the data is small, so use the whole batch
# at every step. How will you know that the optimiser has reached the minimum?

# %% [hint]
# `torch.optim.LBFGS([direction, bias], max_iter=500, line_search_fn="strong_wolfe")` needs a closure that zeroes
# the gradients, computes the loss, calls backward and returns the loss; wrap the step in `torch.enable_grad()`.
# Adam also works, with a few thousand full-batch steps.

# %%
FITS = {"mass-mean": mass_mean_probe, "IID mass-mean": iid_mass_mean_probe, "logistic": train_logistic_probe}
probe_sweeps = {
    name: torch.stack([layer_sweep(acts[family][:, IS], labels[family], ~held_out[family], fit) for family in acts])
    for name, fit in FITS.items()
}  # probe -> [family, layer], at " is"
for name, table in probe_sweeps.items():
    print(f"{name:>14}, held-out statements at ' is' (rows {list(acts)}, columns layers):\n{table.numpy().round(2)}")
years_judged = acts["years"][:, IS, ~held_out["years"]], labels["years"][~held_out["years"]]
directions = {name: fit(years_judged[0][truth_layer], years_judged[1])[0] for name, fit in FITS.items()}
cosines = {
    f"{a} vs {b}": torch.cosine_similarity(directions[a], directions[b], dim=0).item()
    for a, b in [("mass-mean", "IID mass-mean"), ("mass-mean", "logistic"), ("IID mass-mean", "logistic")]
}
print(f"cosine similarities of the years directions after block {truth_layer}:", cosines)

# %%
years_row = {name: table[list(acts).index("years")] for name, table in probe_sweeps.items()}
assert all(row[truth_layer:].min() > 0.9 and row[0] < 0.8 for row in years_row.values())
assert all(table[:2].max() < 0.75 for table in probe_sweeps.values())  # no probe finds held-out city truth
assert cosines["mass-mean vs IID mass-mean"] < 0.5 and cosines["mass-mean vs logistic"] < 0.8

# %% [markdown]
# The three probes agree on what matters: above 0.9 on the held-out periods from block 1 on, below 0.8 after
# block 0, and below 0.75 on held-out cities, plain or negated, at every layer. A better classifier does not
# find what the model does not compute. They disagree on the direction: the mass-mean and IID directions have
# cosine similarity below 0.5, the mass-mean and logistic ones below 0.8. Many directions separate the
# classes in 128 dimensions; which of them the *model* uses is a different question, answered in Part 7.

# %% [markdown]
# ## Part 6: does a probe generalise, and what does it read?
#
# A probe fitted on cities statements has found *some* direction that separates true from false judged
# cities claims. Is it a direction for truth, for cities, or for something else? Test it on the other
# families, on their held-out statements as always.


# %% [exercise] generalisation_matrix difficulty=2 importance=4 minutes=10
def generalisation_matrix(
    acts: dict[str, Float[Tensor, "batch d_model"]],
    labels: dict[str, Bool[Tensor, " batch"]],
    train_masks: dict[str, Bool[Tensor, " batch"]],
    fit: Callable[[Tensor, Tensor], tuple[Tensor, float]],
) -> Float[Tensor, "train_family test_family"]:
    """Entry [i, j]: the balanced accuracy on family j's statements outside its train mask, of a probe
    fitted with fit(acts, labels) on family i's statements in its train mask (families in dict order)."""
    raise NotImplementedError()


# %% [hint]
# Fit once per training family, then score that one probe on every family's held-out statements. Which axis of
# the matrix is which?

# %% [markdown]
# Two matrices per layer. The first scores against the truth. The second scores against the model's own
# verdicts: on the held-out statements the label is what the model said, not what is true. (On the judged
# statements the probes are fitted on, the two agree more than 95% of the time, Part 1.)

# %%
final_acts = {family: acts[family][:, IS] for family in acts}  # [layer, batch, d_model] at " is"
train_masks = {family: ~held_out[family] for family in acts}
verdict_labels = {family: torch.where(held_out[family], verdicts[family], labels[family]) for family in acts}
matrices = {
    against: torch.stack([
        generalisation_matrix({f: a[layer] for f, a in final_acts.items()}, test_labels, train_masks, mass_mean_probe)
        for layer in range(n_layers)
    ])
    for against, test_labels in [("truth", labels), ("the model's verdicts", verdict_labels)]
}  # fmt: skip
for against, per_layer in matrices.items():
    fig = px.imshow(
        per_layer.numpy(), facet_col=0, zmin=0, zmax=1, text_auto=".2f", color_continuous_scale="RdBu",
        x=list(acts), y=list(acts), labels=dict(x="tested on", y="fitted on"), height=330,
        title=f"mass-mean probes at ' is', held-out statements scored against {against}",
    )  # fmt: skip
    for annotation, layer in zip(fig.layout.annotations, range(n_layers)):
        annotation.text = f"after block {layer}"
    fig.show()

# %% [finding] fails_against_truth difficulty=3 importance=5 minutes=10
# Take the mass-mean probe fitted on the judged cities statements at " is" after the last block (3). Scored
# against the truth, on which families' held-out statements is its balanced accuracy below 0.75? Assign a
# set of family names (from corpus.TRUTH_FAMILIES).
fails_against_truth = ...

# %% [hint]
# Row "cities" of the last layer's matrix against the truth. Before you look: in Marks & Tegmark, probes trained on
# cities alone generalised poorly to negated cities. Is that the whole story here?

# %% [solution]
last_truth = matrices["truth"][n_layers - 1][list(acts).index("cities")]
fails_against_truth = {family for family, accuracy in zip(acts, last_truth.tolist()) if accuracy < 0.75}

# %% [finding] agrees_with_verdicts difficulty=3 importance=5 minutes=10
# The same probe, scored against the model's own verdicts: on which families' held-out statements is its
# balanced accuracy at least 0.9? Assign a set of family names.
agrees_with_verdicts = ...

# %% [hint]
# The matrix against the model's verdicts, the same row and layer. Compare with your previous answer: what
# does the probe read?

# %% [solution]
last_verdicts = matrices["the model's verdicts"][n_layers - 1][list(acts).index("cities")]
agrees_with_verdicts = {family for family, accuracy in zip(acts, last_verdicts.tolist()) if accuracy >= 0.9}

# %% [markdown]
# What the matrices say (asserted below):
#
# - A probe fitted on cities claims classifies held-out **periods** almost perfectly (above 0.95 after block 3,
#   above 0.9 from block 1), a family it never saw. At " is" the two families share a direction: the cities and
#   years mass-mean directions have cosine similarity above 0.7 from block 1 on.
# - Against the truth the same probe fails on held-out **cities** and **negated cities** (below 0.75): on its
#   own family as much as on the negations Marks & Tegmark saw fail.
# - Against the model's **verdicts**, the last-layer cities probe is right on all three families (at least
#   0.9). It reads what the model is about to say, not what is true: where the model's verdict is wrong the
#   probe is mostly wrong with it. That is the honest name for most "truth probes" read at the answer position:
#   probes of the model's belief, which equal truth only where the model knows it.
# - The negated-cities probe is the odd one out: after block 1 it is *worse* than chance on the periods
#   (below 0.35). Its direction there points nearly opposite to the cities direction (cosine below -0.5),
#   which suggests that what separates true from false negated claims after block 1 is still whether the
#   named country is the city's, a feature that runs the other way for a negation. By the last block, where
#   the verdict is formed, the two directions have a positive cosine.

# %%
cities_row, negated_row = list(acts).index("cities"), list(acts).index("negated_cities")
years_col = list(acts).index("years")
assert matrices["truth"][truth_layer:, cities_row, years_col].min() > 0.9
assert matrices["truth"][n_layers - 1, cities_row, years_col] > 0.95
assert last_truth[:2].max() < 0.75 and last_verdicts.min() >= 0.9
assert matrices["truth"][truth_layer, negated_row, years_col] < 0.35


def family_direction(family: str, layer: int) -> Tensor:
    judged = ~held_out[family]
    return mass_mean_probe(final_acts[family][layer][judged], labels[family][judged])[0]


def direction_cosines(family_a: str, family_b: str) -> list[float]:
    """Per layer, the cosine similarity of the two families' mass-mean directions at " is"."""
    pairs = [(family_direction(family_a, layer), family_direction(family_b, layer)) for layer in range(n_layers)]
    return [torch.cosine_similarity(a, b, dim=0).item() for a, b in pairs]


cities_vs_years, negated_vs_cities = direction_cosines("cities", "years"), direction_cosines("negated_cities", "cities")
print("cosines per layer: cities vs years", [round(c, 2) for c in cities_vs_years],
      "; negated cities vs cities", [round(c, 2) for c in negated_vs_cities])  # fmt: skip
assert min(cities_vs_years[truth_layer:]) > 0.7
assert negated_vs_cities[truth_layer] < -0.5 and negated_vs_cities[-1] > 0

# %% [markdown]
# ## Part 7: the causal test
#
# A probe shows that something can be read from the activations; it does not show that the model reads it.
# The causal test: add the truth direction to the residual stream of a judged-claim prompt, at the layer and
# position the probe was fitted on, and see whether the model's verdict changes. Adding the mass-mean
# direction itself (the difference of the class means) moves a false statement's activation, on average,
# onto the true statements' mean; subtracting it moves a true one onto the false mean.


# %% [exercise] steered_logit_diff difficulty=3 importance=5 minutes=15
def steered_logit_diff(
    model: HookedTransformer,
    prompts: list[str],
    direction: Float[Tensor, " d_model"],
    layer: int,
    position: int,
) -> Float[Tensor, " batch"]:
    """verdict_logit_diff with `direction` added to the residual stream after block `layer`
    (hook_resid_post) at `position`, counted from the end of each (left-padded) prompt."""
    raise NotImplementedError()


# %% [hint]
# A hook on one hook point sees every position of every prompt: where exactly must the direction go, and what
# must the hook return for the change to take effect?

# %% [hint]
# The hook name is `f"blocks.{layer}.hook_resid_post"`; in the hook, add the direction to `resid[:, position]`
# of a copy and return it; run with `model.run_with_hooks(tokens, fwd_hooks=[(name, hook)])`.

# %% [markdown]
# An effect means little without a control: a large enough push in any direction changes the output. The
# control is a random direction with the same norm.


# %% [exercise] random_direction_like difficulty=1 importance=3 minutes=5
def random_direction_like(direction: Float[Tensor, " d_model"], seed: int) -> Float[Tensor, " d_model"]:
    """A direction drawn uniformly at random (a seeded standard normal draw, rescaled) with the same norm
    as `direction`: the control for a causal test. The same seed gives the same direction."""
    raise NotImplementedError()


# %% [hint]
# A vector of independent standard normal coordinates points in a uniformly random direction; what is left is its
# length, and the seed.

# %% [markdown]
# The test runs on the held-out periods, where the model knows the truth: push each false statement along
# the direction and each true one against it, at " is" after block `truth_layer`, and count how often the
# verdict becomes the opposite of the truth.

# %%
years_prompts = [p for p, kept in zip(prompts["years"], held_years.tolist()) if kept]
years_truth = labels["years"][held_years]
false_prompts = [p for p, is_true in zip(years_prompts, years_truth.tolist()) if not is_true]
true_prompts = [p for p, is_true in zip(years_prompts, years_truth.tolist()) if is_true]


def flipped_shares(direction: Tensor, layer: int, position: int) -> tuple[float, float]:
    """The share of false held-out periods called true with the direction added, and the share of true ones
    called false with it subtracted."""
    made_true = steered_logit_diff(model, false_prompts, direction, layer, position) > 0
    made_false = steered_logit_diff(model, true_prompts, -direction, layer, position) <= 0
    return made_true.float().mean().item(), made_false.float().mean().item()


truth_direction = directions["mass-mean"]  # fitted on the judged periods, at " is" after block truth_layer
before = flipped_shares(torch.zeros_like(truth_direction), truth_layer, -1)
after = flipped_shares(truth_direction, truth_layer, -1)
random_shares = torch.tensor(
    [flipped_shares(random_direction_like(truth_direction, seed), truth_layer, -1) for seed in range(10)]
)
print(f"|direction| = {truth_direction.norm():.1f}; mean residual norm there "
      f"{acts['years'][truth_layer, IS].norm(dim=-1).mean():.1f}")  # fmt: skip
print(f"without intervention: {before}; with the truth direction: {after}")
print(
    f"10 random directions of the same norm: mean {random_shares.mean(0).tolist()}, max {random_shares.max(0).values.tolist()}"
)
assert max(before) < 0.05 and min(after) > 0.85
assert 0.5 < truth_direction.norm() / acts["years"][truth_layer, IS].norm(dim=-1).mean() < 1.2
assert random_shares.mean(0).max() < 0.2 and random_shares[:, 0].max() < 0.35

# The same in logits: the mean change of logit(" true") - logit(" false") on the false held-out periods.
unsteered = steered_logit_diff(model, false_prompts, torch.zeros_like(truth_direction), truth_layer, -1)
truth_shift = (steered_logit_diff(model, false_prompts, truth_direction, truth_layer, -1) - unsteered).mean().item()
random_shifts = torch.tensor([
    (steered_logit_diff(model, false_prompts, random_direction_like(truth_direction, seed), truth_layer, -1) - unsteered)
    .abs().mean() for seed in range(10)
])  # fmt: skip
print(f"logit difference: {unsteered.mean():.1f} before, {truth_shift:+.1f} with the truth direction; "
      f"random directions move it by {random_shifts.mean():.1f} on average (either way)")  # fmt: skip
assert unsteered.mean() < -5 and truth_shift > 10 and truth_shift > 2.5 * random_shifts.mean()

# %% [markdown]
# Without the intervention the model calls under 5% of the held-out periods the wrong way. Adding the
# mass-mean direction after block 1 makes it call more than 85% of the false ones true, and subtracting it
# more than 85% of the true ones false. Random directions of the same norm flip under 20% on average, and no
# single one of ten turns more than 35% of the false statements true. In logits: on the false periods the
# verdict's logit difference starts below -5 and the truth direction raises it by more than 10, over 2.5
# times the mean change a random direction makes (up or down). The direction is large (its norm is between
# half and 1.2 times the residual stream's mean norm there), which is why the control matters: a push that
# size moves some verdicts whatever its direction, but only the truth direction moves them systematically.
#
# How does that depend on the strength of the push, and on what is pushed? Scale the direction, and compare
# with the other probes' directions and with the cities direction, each rescaled to the mass-mean norm.

# %%
scales = [0.25, 0.5, 1.0, 2.0]
norm = truth_direction.norm()
candidates = {name: d / d.norm() * norm for name, d in directions.items()}
cities_direction = family_direction("cities", truth_layer)
candidates["cities mass-mean"] = cities_direction / cities_direction.norm() * norm
candidates["random (seed 0)"] = random_direction_like(truth_direction, 0)
curves = {  # the share of false held-out periods called true (the first of flipped_shares, computed alone)
    name: [
        (steered_logit_diff(model, false_prompts, scale * d, truth_layer, -1) > 0).float().mean().item()
        for scale in scales
    ]
    for name, d in candidates.items()
}
px.line(
    [dict(direction=name, scale=scale, share=share) for name, curve in curves.items() for scale, share in zip(scales, curve)],
    x="scale", y="share", color="direction", markers=True, labels=dict(scale="scale (x the mass-mean norm)"),
    title=f"false held-out periods called true, direction added at ' is' after block {truth_layer}",
).show()  # fmt: skip
at_one = {name: curve[scales.index(1.0)] for name, curve in curves.items()}
print("at scale 1:", {name: round(share, 2) for name, share in at_one.items()})
assert at_one["mass-mean"] > at_one["logistic"] + 0.1 and at_one["mass-mean"] > at_one["IID mass-mean"] + 0.3
assert at_one["cities mass-mean"] > 0.85 and at_one["random (seed 0)"] < 0.35
assert all(a <= b + 1e-6 for a, b in zip(curves["mass-mean"], curves["mass-mean"][1:]))

# %% [markdown]
# At the same norm the mass-mean direction is the most causal: it turns more than 10 points more of the false
# statements true than the logistic direction, and more than 30 points more than the IID one. The IID probe,
# a classifier as good as the others, is the least causal: a direction that classifies well need not be the
# one the model uses (Marks & Tegmark also found mass-mean directions more causal than logistic ones). The
# direction fitted on **cities** claims flips the periods' verdicts as well as the periods' own direction
# does (above 0.85): the direction Part 6 found shared between families is shared causally too.
#
# Last, the period. Fit a mass-mean probe at the period and add it there, or add the " is" direction at the
# period: does anything flip?

# %%
period_direction = mass_mean_probe(acts["years"][truth_layer, period][~held_years], labels["years"][~held_years])[0]
at_period = {
    "period's own direction": flipped_shares(period_direction, truth_layer, POSITIONS["period"]),
    "the ' is' direction, at the period": flipped_shares(truth_direction, truth_layer, POSITIONS["period"]),
}
print(at_period)
assert all(max(shares) < 0.05 for shares in at_period.values())

# %% [markdown]
# Nothing flips (under 5% either way, the same as without an intervention). Whatever the model needs to
# judge a period, it reads from the years themselves when it reaches " is"; the residual stream at the period
# is not on that path. A probe at the period of Marks & Tegmark's kind would have found little here and, had
# it found something, it would not have been causal.

# %% [markdown]
# ## Summary
#
# - Balanced accuracy, because truth families are unbalanced; test statements that share no city or century
#   with the training ones, because a leaky split reads memorised verdicts.
# - In `gpt2-mini-truth`, truth is linearly decodable at the token where the verdict is produced (" is"),
#   from block 1 on, for the statements the model knows the truth of (periods); not at the period, and not
#   for claims about cities it never saw judged.
# - Mass-mean, IID and logistic probes classify about equally well but point in different directions; the
#   mass-mean direction is the most causal of the three.
# - A probe fitted on one family works on another when both share the model's verdict; scored against the
#   model's verdicts rather than the truth, the last-layer cities probe agrees with them on every family. A
#   truth probe at the answer position is a probe of what the model is about to say.
# - Adding the direction at the probed layer and position flips the verdicts; random directions of the same
#   norm do not, and the same direction added at the period does nothing.
#
# Next, 1.3.2 builds function vectors and steering vectors with nnsight, and 1.3.3 trains sparse autoencoders
# and sets them against probes on the same task.
