# %% [markdown]
# # 1.3.3 Sparse autoencoders with SAELens
#
# A model with 128 residual dimensions can represent far more than 128 things by giving each a
# direction and tolerating some interference (*superposition*: Elhage et al., *Toy Models of
# Superposition*, 2022). A **sparse autoencoder** (SAE) tries to find those directions without being
# told what they are: it rewrites each activation as a sparse, non-negative combination of many more
# learned directions (*latents*) than the activation has dimensions, hoping that each latent means one
# thing (Cunningham et al., 2023; Bricken et al., *Towards Monosemanticity*, 2023).
#
# Whether a latent *means one thing* is usually judged by looking at the texts it fires on, or by an
# LLM asked to explain them. Our zoo text is generated, so we know what every token is: a name, a
# city, a country, half of a year, the end of a false claim (`zoo/concepts.py`). So here a claim
# "latent 123 detects countries" is **scored** by its precision and recall against those labels.
#
# You will work with two SAEs the zoo ships, trained with SAELens's own training runner on
# `gpt2-mini-truth`'s residual stream after layer 2 (a standard ReLU + L1 SAE and a TopK SAE, 1,024
# latents each; their cards are `zoo/saes/*/CARD.md`), and:
#
# 1. load SAEs with SAELens (the zoo's from disk, real releases with `from_pretrained` when online);
# 2. encode and decode by hand, and measure reconstruction, first as variance explained, then as the
#    loss of the model with the SAE spliced in (`HookedSAETransformer.run_with_saes`), against zeroing;
# 3. describe latents: how often they fire (density histograms), their max-activating examples, the
#    logits their decoder directions push, all in a dashboard drawn with plotly;
# 4. interpret latents against the ground truth (precision, recall, F1), and see what LLM
#    autointerp would do instead;
# 5. steer the model with a latent's decoder direction, and measure the effect against a random
#    direction;
# 6. ablate latents one by one and compare with attribution patching (gradient x activation), the
#    cheap estimate used to rank thousands of latents at once;
# 7. train SAEs of your own (ReLU + L1 and TopK) and draw the sparsity/reconstruction frontier.
#
# **Left out, from ARENA's version of this section**: Neuronpedia (its dashboards, feature search and
# API need the network; Part 3 builds the dashboard offline instead); autointerp by an LLM (shown for
# online users, replaced by ground-truth scoring); attention-output SAEs and direct feature attribution
# to heads, transcoders, meta-SAEs, and feature splitting or absorption across SAE widths (the zoo
# ships two residual SAEs of one width at one layer; the head-to-head in 1.3.4 compares them with
# probes instead); Gemma Scope and other real releases (too large for a CPU, and downloaded from the
# hub); latent-to-latent circuits across layers (one SAE layer); and the training runner itself
# (`zoo/saes.py` runs it, offline, in about a minute per SAE: read it once you have done Part 7).
#
# Prerequisites: 1.2 (TransformerLens, hooks, ablation). SAEs fall short of simple baselines on some
# concrete tasks (Kantamneni et al., 2025, on sparse probing; Wu et al., *AxBench*, 2025, on
# steering): section 1.3.4 runs that comparison on the zoo.

# %%
import json
import os
import re
import socket
import time
import urllib.request
from collections import Counter
from collections.abc import Callable

import plotly.express as px
import plotly.graph_objects as go
import torch
from jaxtyping import Bool, Float, Int
from plotly.subplots import make_subplots
from torch import Tensor, nn
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer
from transformer_lens.hook_points import HookPoint

from tests.checks.chapter1_transformer_interp.saes import check  # noqa: F401 (used by the check cells the build adds)
from zoo import ZooOfflineError, corpus
from zoo.concepts import CONCEPTS, concept_labels, precision_recall
from zoo.evaluate import story_tokens
from zoo.saes import SAES_DIR, list_saes, load_sae, load_sae_transformer

torch.manual_seed(0)
torch.set_grad_enabled(False)  # we read the model; the two parts that need gradients turn them on
torch.set_num_threads(1)  # a 128-wide model runs fastest on one thread

# %% [markdown]
# ## Part 1: loading SAEs
#
# SAELens keeps an SAE as a folder: `cfg.json` (architecture, sizes, the hook it reads) and
# `sae_weights.safetensors`. `SAE.load_from_disk(folder)` reads one; the zoo's `load_sae(name)` does
# that for the zoo's SAEs. The model is loaded as a `HookedSAETransformer`, TransformerLens'
# `HookedTransformer` with methods that splice SAEs in (`run_with_saes`, `run_with_cache_with_saes`).

# %%
model = load_sae_transformer("gpt2-mini-truth")
print(list_saes())
saes = {name.rsplit("-", 1)[1]: load_sae(name) for name in list_saes()}
sae = saes["standard"]
print(type(sae).__name__, sae.cfg.metadata.hook_name, sae.cfg.d_in, "->", sae.cfg.d_sae)
print(type(saes["topk"]).__name__, "k =", saes["topk"].cfg.k)
HOOK = sae.cfg.metadata.hook_name
sae_metrics = {
    kind: json.loads((SAES_DIR / name / "metrics.json").read_text()) for kind, name in zip(saes, list_saes())
}
assert set(saes) == {"standard", "topk"} and HOOK == "blocks.2.hook_resid_post"
assert all(s.cfg.d_sae == 1024 and s.cfg.d_in == model.cfg.d_model for s in saes.values())

# %% [markdown]
# SAELens does not force decoder rows to unit norm, so a latent's activation and its direction share
# one scale between them. `fold_W_dec_norm` moves each row's norm into the encoder: the SAE computes the
# same reconstruction, but every decoder row now has norm 1, so a latent's activation is the length of
# what it adds to the residual stream, comparable across latents.

# %%
decoder_norms = {kind: s.W_dec.norm(dim=-1) for kind, s in saes.items()}
print({kind: f"decoder row norms {n.min():.2f} to {n.max():.2f}" for kind, n in decoder_norms.items()})
probe = torch.randn(4, model.cfg.d_model) * 50
before = {kind: s(probe) for kind, s in saes.items()}
for kind, s in saes.items():
    s.fold_W_dec_norm()
    assert torch.allclose(s(probe), before[kind], atol=1e-3)  # the same function
    assert torch.allclose(s.W_dec.norm(dim=-1), torch.ones(s.cfg.d_sae), atol=1e-5)

# %% [markdown]
# **Online, with real SAEs.** SAELens lists published SAEs (releases) in its `pretrained_saes.yaml`,
# for instance `gpt2-small-res-jb` (Bloom's residual-stream SAEs for GPT-2 small, one per layer).
# With the network, one line loads any of them:
#
# ```python
# sae = SAE.from_pretrained(release="gpt2-small-res-jb", sae_id="blocks.7.hook_resid_pre", device="cpu")
# model = HookedSAETransformer.from_pretrained("gpt2-small")
# ```
#
# and Parts 2, 3, 5 and 6 work on it unchanged, with GPT-2's text in place of the zoo's (Part 4's
# ground truth exists only for the zoo's generated text). The zoo's
# `load_sae(release, sae_id=...)` passes such names to `SAE.from_pretrained` when the HuggingFace hub
# answers; offline it stops within seconds and names the zoo SAE to use instead:

# %%
started = time.perf_counter()
try:
    real_sae = load_sae("gpt2-small-res-jb", sae_id="blocks.7.hook_resid_pre")
    print("online: loaded", real_sae.cfg.metadata.hook_name)
except ZooOfflineError as error:
    print(f"{type(error).__name__} after {time.perf_counter() - started:.1f} s: {error}")
    assert "gpt2-mini-truth-L2-standard" in str(error)
assert time.perf_counter() - started < 5 or "real_sae" in globals()

# %% [markdown]
# ## Part 2: inside an SAE
#
# An SAE with $d_{sae}$ latents reads an activation $x \in \mathbb{R}^{d_{in}}$ and writes a
# reconstruction $\hat{x}$:
#
# $$f(x) = \sigma\big((x - b_{dec}) W_{enc} + b_{enc}\big), \qquad \hat{x} = f(x) W_{dec} + b_{dec}$$
#
# where $f(x) \in \mathbb{R}^{d_{sae}}$ are the latent activations and row $i$ of $W_{dec}$ is latent
# $i$'s direction. The **standard** SAE uses $\sigma = \text{ReLU}$ and is trained with an L1 penalty
# on $f(x)$, which makes most latents zero on each input; the **TopK** SAE (Gao et al., 2024) keeps
# only the $k$ largest pre-activations of each input and needs no penalty. (SAELens' `JumpReLU`
# architecture, Rajamanoharan et al. 2024, is a third: a ReLU with a learned threshold per latent.)
#
# Write the two encoders with plain tensors. SAELens stores `W_enc` as (d_in, d_sae), `W_dec` as
# (d_sae, d_in).


# %% [exercise] standard_encode difficulty=1 importance=4 minutes=5
def standard_encode(
    x: Float[Tensor, "... d_in"],
    W_enc: Float[Tensor, "d_in d_sae"],
    b_enc: Float[Tensor, " d_sae"],
    b_dec: Float[Tensor, " d_in"],
) -> Float[Tensor, "... d_sae"]:
    """Latent activations of a ReLU SAE: ReLU((x - b_dec) @ W_enc + b_enc)."""
    raise NotImplementedError()


# %% [hint]
# Why would an SAE subtract its *decoder* bias before encoding? Think of b_dec as the activations'
# typical value: the encoder reads what is different about this input.


# %% [exercise] topk_encode difficulty=2 importance=4 minutes=10
def topk_encode(
    x: Float[Tensor, "... d_in"],
    W_enc: Float[Tensor, "d_in d_sae"],
    b_enc: Float[Tensor, " d_sae"],
    b_dec: Float[Tensor, " d_in"],
    k: int,
) -> Float[Tensor, "... d_sae"]:
    """Latent activations of a TopK SAE: of each input's pre-activations (x - b_dec) @ W_enc + b_enc, keep
    the k largest (passed through a ReLU, so a negative one among them becomes 0) and set the rest to 0."""
    raise NotImplementedError()


# %% [hint]
# "The k largest" is per input, along the last axis, whatever the leading axes are. You need both the
# values and where they were.

# %% [hint]
# `Tensor.topk(k, dim=-1)` gives values and indices; `torch.zeros_like(...).scatter(-1, indices, values)`
# puts values back at their positions.

# %% [markdown]
# Now read real activations: 128 documents of the story corpus's test split (the split the SAEs'
# `metrics.json` were measured on), 64 tokens each. The SAEs were trained without the BOS position
# (its residual is the same in every row and far from the rest: an attention sink), so we drop it.

# %%
tokens = story_tokens(model, "test", 128)
_, cache = model.run_with_cache(tokens, names_filter=[HOOK])
resid = cache[HOOK][:, 1:]  # (document, position after the BOS, d_model)
x = resid.flatten(0, 1)
print("activations:", tuple(x.shape), f"mean norm {x.norm(dim=-1).mean():.1f}, BOS norm {cache[HOOK][0, 0].norm():.1f}")
acts = {kind: s.encode(x) for kind, s in saes.items()}
assert torch.allclose(standard_encode(x, sae.W_enc, sae.b_enc, sae.b_dec), acts["standard"], atol=1e-4)
topk = saes["topk"]
assert torch.allclose(topk_encode(x, topk.W_enc, topk.b_enc, topk.b_dec, topk.cfg.k), acts["topk"], atol=1e-4)
for kind, s in saes.items():  # decoding is one line: acts @ W_dec + b_dec
    assert torch.allclose(acts[kind] @ s.W_dec + s.b_dec, s.decode(acts[kind]), atol=1e-4)
    assert torch.allclose(s(x), s.decode(acts[kind]), atol=1e-4)  # forward = encode, then decode

# %% [markdown]
# Your encoders match SAELens' `encode` on real activations. How good is the reconstruction? Three
# numbers are standard: the mean squared error, the **fraction of variance explained** (1 minus the
# error divided by the activations' variance), and **L0**, the mean number of active latents per input.


# %% [exercise] reconstruction_stats difficulty=2 importance=4 minutes=10
def reconstruction_stats(
    x: Float[Tensor, "n d_in"], x_hat: Float[Tensor, "n d_in"], acts: Float[Tensor, "n d_sae"]
) -> dict[str, float]:
    """How well an SAE reconstructs n inputs: "mse", the squared error summed over d_in and averaged over
    inputs; "explained_variance", 1 - that error over the inputs' total variance (squared distance from
    their mean, summed over d_in and averaged over inputs); "l0", the mean number of active latents (> 0)."""
    raise NotImplementedError()


# %% [hint]
# The variance is measured around the inputs' mean, not around zero: an SAE that only output the mean
# would explain 0% of it. Keep the error and the variance in the same units (both summed over d_in).

# %%
stats = {kind: reconstruction_stats(x, saes[kind].decode(acts[kind]), acts[kind]) for kind in saes}
for kind, values in stats.items():
    recorded = sae_metrics[kind]["metrics"]
    print(kind, {name: round(value, 3) for name, value in values.items()})
    assert abs(values["explained_variance"] - recorded["explained_variance"]["value"]) < 0.01
    assert abs(values["l0"] - recorded["l0"]["value"]) < 0.5
assert stats["topk"]["l0"] <= 16.0

# %% [markdown]
# Both agree with the `metrics.json` the zoo recorded (within 0.01 of variance explained and 0.5 of
# L0). TopK's L0 is at most its k = 16 (fewer when some of the top 16 are negative and zeroed).
#
# Variance explained says little about what matters: does the model still work when it reads the
# reconstruction instead of the real activation? Splice the SAE in with a hook, and compare the loss with
# the clean model's and with the loss when the activation is zeroed (the worst case).


# %% [exercise] spliced_losses difficulty=2 importance=5 minutes=15
def spliced_losses(model: HookedTransformer, sae: nn.Module, tokens: Int[Tensor, "batch pos"]) -> dict[str, float]:
    """The model's mean next-token loss on tokens: "clean"; "spliced", with the activation at the SAE's
    hook (sae.cfg.metadata.hook_name) replaced by the SAE's reconstruction sae(activation); "zero_ablated",
    with that activation replaced by zeros; and "loss_recovered", (zero_ablated - spliced) /
    (zero_ablated - clean): 1 when the reconstruction is as good as the real activation, 0 when it is
    no better than nothing. BOS positions keep their activation throughout (the SAE was not trained on
    them)."""
    raise NotImplementedError()


# %% [hint]
# A hook can return a different tensor of the same shape. Which positions hold the BOS? Compare the
# tokens with the tokenizer's BOS id, and keep the original activation there.

# %% [hint]
# `torch.where(is_bos[..., None], activation, replacement)` keeps the BOS rows; `model.run_with_hooks(tokens,
# return_type="loss", fwd_hooks=[(hook_name, hook)])` gives the mean loss.

# %%
losses = {kind: spliced_losses(model, s, tokens) for kind, s in saes.items()}
for kind, s in saes.items():
    # SAELens does the same splice: run_with_saes attaches the SAE at its hook for one forward pass.
    library = model.run_with_saes(tokens, saes=[s], exclude_special_tokens=True, return_type="loss").item()
    print(kind, {name: round(value, 3) for name, value in losses[kind].items()}, "run_with_saes:", round(library, 3))
    assert abs(library - losses[kind]["spliced"]) < 1e-4
    assert abs(losses[kind]["loss_recovered"] - sae_metrics[kind]["metrics"]["ce_loss_recovered"]["value"]) < 0.01
RECOVERED = {kind: values["loss_recovered"] for kind, values in losses.items()}

# %% [markdown]
# Your splice and SAELens' agree to 1e-4, and match the recorded loss recovered. Both SAEs explain most
# of the variance, yet they differ sharply in what the model can do with their output: with the TopK
# SAE spliced in, the loss rises by under 0.1 nats (loss recovered above 0.98); with the
# standard SAE, by more than half a nat (recovered below 0.9), at twice the L0. A reconstruction can be
# close in squared error and still miss the directions the later layers read.

# %%
assert RECOVERED["topk"] > 0.98 and RECOVERED["standard"] < 0.9
assert losses["topk"]["spliced"] - losses["topk"]["clean"] < 0.1
assert losses["standard"]["spliced"] - losses["standard"]["clean"] > 0.5
assert stats["standard"]["l0"] > 1.8 * stats["topk"]["l0"]

# %% [markdown]
# ### Try it: the error term
#
# `run_with_saes(..., use_error_term=True)` splices in the reconstruction *plus* the SAE's error,
# $x - \hat{x}$, computed without gradients: numerically the model is unchanged, but the latents now sit in
# the forward pass, where hooks can edit them (`blocks.2.hook_resid_post.hook_sae_acts_post`). Before
# you run the cell, predict the loss.

# %%
with_error = model.run_with_saes(
    tokens, saes=[sae], use_error_term=True, exclude_special_tokens=True, return_type="loss"
).item()
print(f"clean {losses['standard']['clean']:.4f}, with the error term {with_error:.4f}")
assert abs(with_error - losses["standard"]["clean"]) < 1e-4

# %% [markdown]
# The clean loss, to 1e-4. Part 6 edits latents inside this splice, so that every change it measures
# comes from the edit, not from the SAE's imperfect reconstruction.


# %% [markdown]
# ## Part 3: what the latents do
#
# First, how often each latent fires. A latent that never fires is **dead** (wasted capacity); one that
# fires on a large share of tokens is **dense**, and rarely means one thing.


# %% [exercise] latent_density difficulty=1 importance=3 minutes=5
def latent_density(acts: Float[Tensor, "... d_sae"]) -> Float[Tensor, " d_sae"]:
    """The fraction of inputs (every position of every sequence) on which each latent is active (> 0)."""
    raise NotImplementedError()


# %% [hint]
# Every axis but the last counts as "inputs": flatten them into one before averaging.

# %%
density = {kind: latent_density(a) for kind, a in acts.items()}
log_density = torch.cat([d.clamp(min=1e-5).log10() for d in density.values()])
kind_of = [kind for kind, d in density.items() for _ in range(len(d))]
px.histogram(
    x=log_density.numpy(), color=kind_of, barmode="overlay", nbins=60,
    labels={"x": "log10 density (dead latents at -5)", "color": "SAE"},
    title=f"How often each latent fires, on {len(x):,} tokens",
).show()  # fmt: skip
for kind, d in density.items():
    print(f"{kind}: {(d == 0).sum()} dead, {(d > 0.1).sum()} fire on more than 10% of tokens, median {d.median():.4f}")

# %%
dead = {kind: int((d == 0).sum()) for kind, d in density.items()}
dense = {kind: int((d > 0.1).sum()) for kind, d in density.items()}
assert dead["topk"] > 300 and dead["standard"] < 20
assert all(5 <= n <= 30 for n in dense.values())
assert density["topk"].median() < density["standard"].median() / 3

# %% [markdown]
# The two SAEs spend their latents differently. On these 8,064 tokens, more than 300 of the TopK SAE's
# 1,024 latents never fire (TopK SAEs are known for dead latents), against fewer than 20 of the standard
# SAE's. Each has a handful of dense latents (between 5 and 30 fire on more than 10% of tokens), and the
# TopK SAE's median latent fires more than three times less often.
#
# Next, a latent's **max-activating examples**: the tokens, anywhere in the sample, where it is most
# active, each shown with a few tokens of context either side.


# %% [exercise] top_activations difficulty=2 importance=4 minutes=15
def top_activations(acts: Float[Tensor, "batch pos"], k: int, buffer: int) -> Int[Tensor, "k 2"]:
    """The (batch, position) pairs of the k largest activations, largest first, among the positions that
    have at least `buffer` positions before them and after them (so each has a full context window)."""
    raise NotImplementedError()


# %% [hint]
# Rank over the batch and the positions at once. What happens to a flat index when you turn it back into
# (row, column), and to the column when you had trimmed `buffer` positions from the start?

# %% [hint]
# Slice `acts[:, buffer : pos - buffer]`, flatten, `topk`; then row = index // width and column =
# index % width + buffer.

# %%
doc_acts = {kind: a.reshape(*resid.shape[:2], -1) for kind, a in acts.items()}  # (document, position, latent)
str_tokens = [model.to_str_tokens(row) for row in tokens[:, 1:]]


def context(document: int, position: int, buffer: int) -> str:
    """The tokens around one position, the position itself in bold."""
    pieces = str_tokens[document][position - buffer : position + buffer + 1]
    pieces[buffer] = f"<b>[{pieces[buffer]}]</b>"
    return "".join(pieces)


def top_examples(kind: str, latent: int, k: int = 8, buffer: int = 6) -> list[tuple[float, str]]:
    found = top_activations(doc_acts[kind][..., latent], k, buffer)
    return [(doc_acts[kind][d, p, latent].item(), context(d, p, buffer)) for d, p in found.tolist()]


# %% [markdown]
# The third view: what a latent *writes*. Its decoder direction, read through the unembedding, raises
# some logits and lowers others. This skips the two layers after it, and it folds the final LayerNorm
# into `W_U` as far as it is linear: the centring (subtracting the mean over d_model) and the scale
# weights; the division by the norm is left out, since it scales every logit alike.


# %% [exercise] latent_logit_effects difficulty=1 importance=3 minutes=8
def latent_logit_effects(
    W_dec: Float[Tensor, "d_sae d_model"], W_U: Float[Tensor, "d_model d_vocab"], latent: int, k: int
) -> tuple[Int[Tensor, " k"], Int[Tensor, " k"]]:
    """The ids of the k tokens whose logits the latent's decoder direction raises most, and of the k it
    lowers most, through W_U (each list ordered from the strongest effect)."""
    raise NotImplementedError()


# %% [hint]
# One latent's direction is one row of W_dec; multiplying it by W_U gives one number per vocabulary token.

# %%
W_U = model.ln_final.w[:, None] * model.W_U  # the final LayerNorm's scale weights, folded in
W_U = W_U - W_U.mean(0)  # and its centring: a direction's mean over d_model never reaches the logits


def latent_dashboard(kind: str, latent: int) -> go.Figure:
    """Density, activation histogram, top and bottom logits and max-activating examples of one latent."""
    a = doc_acts[kind][..., latent].flatten()
    up, down = latent_logit_effects(saes[kind].W_dec, W_U, latent, 8)
    effects = saes[kind].W_dec[latent] @ W_U
    fig = make_subplots(
        rows=2, cols=2, specs=[[{}, {}], [{"type": "table", "colspan": 2}, None]], row_heights=[0.4, 0.6],
        subplot_titles=["activations where it fires", "logit effects: top (green) and bottom (red)", ""],
    )  # fmt: skip
    fig.add_trace(go.Histogram(x=a[a > 0].numpy(), nbinsx=30, marker_color="grey", showlegend=False), 1, 1)
    ids = torch.cat([up, down.flip(0)])
    fig.add_trace(
        go.Bar(
            x=effects[ids].numpy(), y=[repr(t) for t in model.to_str_tokens(ids)], orientation="h",
            marker_color=["green"] * len(up) + ["red"] * len(down), showlegend=False,
        ), 1, 2,
    )  # fmt: skip
    examples = top_examples(kind, latent)
    fig.add_trace(
        go.Table(
            columnwidth=[1, 8], header=dict(values=["activation", "context (the token in bold)"]),
            cells=dict(values=[[f"{v:.2f}" for v, _ in examples], [c for _, c in examples]], align="left"),
        ), 2, 1,
    )  # fmt: skip
    title = f"{kind} SAE, latent {latent}: fires on {(a > 0).float().mean():.2%} of tokens"
    return fig.update_layout(title=title, height=600, margin=dict(l=10, r=10, t=60, b=10))


# %% [markdown]
# Which latents to look at? Pick them by a token: the TopK latent that fires on the largest share of
# the sample's " France" tokens, and the one for " 17", the first half of a year.


# %%
def latent_firing_most_on(kind: str, token: str) -> int:
    """The latent of one SAE that fires on the largest share of the sample's occurrences of `token`."""
    where = tokens[:, 1:].flatten() == model.to_single_token(token)
    return int((acts[kind][where] > 0).float().mean(0).argmax())


france_latent = latent_firing_most_on("topk", " France")
year_latent = latent_firing_most_on("topk", " 17")
print("for ' France':", france_latent, " for ' 17':", year_latent)
latent_dashboard("topk", year_latent).show()
year_up, _ = latent_logit_effects(saes["topk"].W_dec, W_U, year_latent, 8)
assert all(token.isdigit() and len(token) == 2 for token in model.to_str_tokens(year_up))
assert all(re.search(r"\[ \d\d\]", context) for _, context in top_examples("topk", year_latent))

# %% [markdown]
# The year latent reads cleanly. All of its top examples are the first half of a year, and all eight
# tokens it pushes most are two-digit numbers: it fires on " 17" and predicts the year's second half.
# (Its logit effects skip two layers, so they need not be this clean; here they are.)

# %%
latent_dashboard("topk", france_latent).show()
france_examples = top_examples("topk", france_latent, k=20)
assert all(any(f"[ {country}]" in context for country in corpus.COUNTRIES) for _, context in france_examples)

# %% [markdown]
# The latent for " France" has only countries among its 20 top examples: a country latent, it seems.
# But top examples show where a latent fires *most*; they say nothing of where else it fires, nor of
# where it fails to. Part 4 measures both.


# %% [markdown]
# ## Part 4: ground-truth interpretation
#
# The usual next step is **autointerp** (Bills et al., 2023): show an LLM a latent's top examples, ask it
# for an explanation ("fires on country names"), then score the explanation by how well the LLM, given
# only the explanation, predicts the latent's activations on new text. The code below asks OpenAI's chat
# API for the explanation. It needs an API key and the network; without them it stops at once and says so.

# %%
AUTOINTERP_ALTERNATIVE = (
    "offline, score your own claim against the zoo's ground truth instead: concept_precision_recall with "
    "zoo.concepts.concept_labels (Part 4)"
)


class AutointerpUnavailable(RuntimeError):
    """LLM autointerp cannot run here: no API key, or no network."""


def explain_latent_with_llm(examples: list[str], model_name: str = "gpt-4o-mini", timeout: float = 30.0) -> str:
    """A one-line explanation of a latent, from an LLM shown its max-activating contexts (token in bold)."""
    api_key = os.environ.get("OPENAI_API_KEY")
    if not api_key:
        raise AutointerpUnavailable(f"LLM autointerp needs OPENAI_API_KEY and the network; {AUTOINTERP_ALTERNATIVE}.")
    try:  # fail in seconds rather than wait on a request that cannot connect
        socket.create_connection(("api.openai.com", 443), timeout=3).close()
    except OSError as error:
        raise AutointerpUnavailable(f"api.openai.com is unreachable ({error}); {AUTOINTERP_ALTERNATIVE}.") from None
    prompt = (
        "These are contexts where one neuron-like feature of a language model fires most; the token where it "
        "fires is in <b>[brackets]</b>. In under 10 words, what does the feature detect?\n\n" + "\n".join(examples)
    )
    body = {"model": model_name, "messages": [{"role": "user", "content": prompt}], "max_tokens": 30}
    request = urllib.request.Request(
        "https://api.openai.com/v1/chat/completions", data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())["choices"][0]["message"]["content"].strip()


# %% [markdown]
# Below, the call runs as an offline machine would see it (no key), so it shows the failure everywhere.
# Online, with a key set, call `explain_latent_with_llm` on any latent's `top_examples`.

# %%
started = time.perf_counter()
saved_key = os.environ.pop("OPENAI_API_KEY", None)
try:
    explain_latent_with_llm([c for _, c in top_examples("standard", 0)])
    raise AssertionError("autointerp ran without an API key")
except AutointerpUnavailable as error:
    print(f"{type(error).__name__} after {time.perf_counter() - started:.2f} s: {error}")
finally:
    if saved_key is not None:
        os.environ["OPENAI_API_KEY"] = saved_key
assert time.perf_counter() - started < 5

# %% [markdown]
# Autointerp scores an explanation against an LLM's *simulation* of the latent. Here we can score it
# against the truth. `zoo.concepts.concept_labels(tokens, tokenizer)` says, for every token, which of
# these concepts it carries:

# %%
print(CONCEPTS)
labels = concept_labels(tokens[:, 1:], model.tokenizer).flatten(0, 1)  # (token, concept), aligned with x
assert labels.shape == (len(x), len(CONCEPTS))
print({concept: int(n) for concept, n in zip(CONCEPTS, labels.sum(0))})

# %% [markdown]
# A claim "latent $i$ detects concept $c$" has a **precision**, the share of the tokens where $i$ fires
# that carry $c$, and a **recall**, the share of the tokens carrying $c$ where $i$ fires. Max-activating
# examples only ever show you precision at the very top. Compute both for every latent at once.


# %% [exercise] concept_precision_recall difficulty=2 importance=5 minutes=10
def concept_precision_recall(
    acts: Float[Tensor, "n d_sae"], labels: Bool[Tensor, " n"]
) -> tuple[Float[Tensor, " d_sae"], Float[Tensor, " d_sae"]]:
    """Each latent read as the claim "this latent detects the concept": its precision (the share of the
    inputs where it fires, > 0, that carry the concept) and its recall (the share of the concept's inputs
    where it fires). A latent that never fires has precision 0."""
    raise NotImplementedError()


# %% [hint]
# Both share a numerator: the number of inputs where the latent fires *and* the concept is present. Only
# the denominators differ. What is the denominator of a latent that never fires?


# %% [exercise] best_latent_for_concept difficulty=2 importance=4 minutes=10
def best_latent_for_concept(acts: Float[Tensor, "n d_sae"], labels: Bool[Tensor, " n"]) -> tuple[int, float]:
    """The latent whose claim to detect the concept has the highest F1 score (the harmonic mean of its
    precision and recall; 0 where both are 0), and that score."""
    raise NotImplementedError()


# %% [hint]
# Ranking by precision alone rewards a latent that fires once, on the right token; by recall alone, one
# that fires everywhere. F1 needs both to be high.

# %%
precision, recall = concept_precision_recall(acts["standard"], labels[:, CONCEPTS.index("country")])
latent = int(recall.argmax())
assert (
    abs(precision[latent] - precision_recall(acts["standard"][:, latent] > 0, labels[:, CONCEPTS.index("country")])[0])
    < 1e-6
)
best = {
    kind: {concept: best_latent_for_concept(a, labels[:, CONCEPTS.index(concept)]) for concept in CONCEPTS}
    for kind, a in acts.items()
}  # fmt: skip
fig = go.Figure([go.Bar(name=kind, x=CONCEPTS, y=[best[kind][c][1] for c in CONCEPTS]) for kind in best])
fig.update_layout(title="The best single latent for each concept", yaxis_title="F1", barmode="group").show()
for kind in best:
    print(kind, {concept: f"latent {i}: F1 {f1:.2f}" for concept, (i, f1) in best[kind].items()})

# %%
f1 = {kind: torch.tensor([best[kind][c][1] for c in CONCEPTS]) for kind in best}
assert (f1["topk"] > f1["standard"]).sum() >= 12
assert max(f1[kind][CONCEPTS.index(c)] for kind in f1 for c in ("object", "adjective", "uppercase_word")) < 0.45
assert f1["topk"][CONCEPTS.index("negation")] > 0.85 and f1["topk"][CONCEPTS.index("truth_word")] > 0.8

# %% [markdown]
# TopK's best latent beats the standard SAE's for at least 12 of the 16 concepts. Some concepts have a
# latent of their own: " not" (negation, F1 above 0.85) and the words " true"/" false" (above 0.8). For
# objects, adjectives and uppercase words, no latent of either SAE reaches F1 0.45: whatever the SAEs
# learned about them, it is not one latent per concept.
#
# Now make claims of your own, and let the truth grade them.

# %% [finding] country_latent difficulty=2 importance=4 minutes=10
# Which latent of the TopK SAE (saes["topk"]) best detects country tokens (the concept "country")?
# Assign its index (an int).
country_latent = ...

# %% [hint]
# "Best" means F1 here, on the sample of tokens above. Is the latent you saw fire on " France" the best one?

# %% [solution]
country_latent, country_f1 = best_latent_for_concept(acts["topk"], labels[:, CONCEPTS.index("country")])
print(f"latent {country_latent}: F1 {country_f1:.2f}")

# %% [markdown]
# Compare your country latent with the latent that caught the eye in Part 3 (this cell gives the answer
# away: solve the finding first).

# %%
country_labels = labels[:, CONCEPTS.index("country")]
precision, recall = concept_precision_recall(acts["topk"], country_labels)
best_country, _ = best_latent_for_concept(acts["topk"], country_labels)
for name, latent in {"the ' France' latent": france_latent, "the best country latent": best_country}.items():
    print(f"{name}, {latent}: precision {precision[latent]:.2f}, recall {recall[latent]:.2f}")
france_fires_on = Counter(model.to_str_tokens(tokens[:, 1:].flatten()[acts["topk"][:, france_latent] > 0]))
print("the ' France' latent's most frequent tokens:", france_fires_on.most_common(4))
assert france_latent != best_country and precision[best_country] > 0.8 and recall[best_country] < 0.75
assert precision[france_latent] < 0.4 and recall[france_latent] > 0.85
assert {token for token, _ in france_fires_on.most_common(2)} == {" true", " false"}

# %% [markdown]
# The " France" latent catches more than 85% of country tokens, but fewer than 40% of its firings are
# countries: its two most frequent tokens are " true" and " false". It looks like a latent for the word
# that completes a claim (the country after "is in", the verdict after "That is"), and its top 20
# examples hid all of that. The best country latent trades some recall (under 0.75) for precision
# (above 0.8).

# %% [markdown]
# The year concept is harder. Look at the year latent's precision and recall:

# %%
year_labels = labels[:, CONCEPTS.index("year")]
precision, recall = concept_precision_recall(acts["topk"], year_labels)
print(f"year latent {year_latent}: precision {precision[year_latent]:.2f}, recall {recall[year_latent]:.2f}")
assert precision[year_latent] > 0.95 and 0.4 < recall[year_latent] < 0.6

# %% [markdown]
# Precision near 1, recall near a half: a year is two tokens (" 17", "89"), and this latent fires on the
# first half only. The concept is *split* across latents, as concepts are in larger SAEs too (Bricken et
# al. 2023 saw one feature split into many as the SAE grew). So score a set of latents: the set fires
# where any of its latents fires.

# %% [finding] year_latents difficulty=3 importance=4 minutes=20
# Find a set of at most 3 TopK latents that together detect the concept "year" with F1 of at least 0.8
# (the set fires on a token when any of its latents does). Assign the set of their indices.
year_latents = ...

# %% [hint]
# Start from the best single latent. Which latent, added to the set, raises the set's F1 most? The
# second half of a year need not be one latent either.

# %% [hint]
# Greedy search: keep a boolean "the set fires" column; for every candidate latent, compute the F1 of
# (set fires) | (candidate fires) with concept_precision_recall on a one-column input; add the best.

# %% [solution]
fires = acts["topk"] > 0
chosen, set_fires = [], torch.zeros(len(x), dtype=torch.bool)
for _ in range(3):
    union = (set_fires[:, None] | fires).float()  # (token, candidate): the set with each latent added
    p, r = concept_precision_recall(union, year_labels)
    f1_with = 2 * p * r / (p + r).clamp(min=1e-12)
    chosen.append(int(f1_with.argmax()))
    set_fires |= fires[:, chosen[-1]]
    print(f"{chosen}: F1 {f1_with.max():.3f}")
year_latents = set(chosen)

# %% [markdown]
# Last, truth itself. The concept `false_claim` marks the three tokens ". That is" after a false claim
# ("Mary said that Paris is in Spain. That is"), where the model must hold the verdict it is about to
# give; `true_claim` the same after a true claim.

# %% [finding] false_claim_f1 difficulty=3 importance=5 minutes=15
# Does the TopK SAE have a latent that tells false claims from true ones where the model gives its
# verdict? At the " is" that ends a judged claim, find the TopK latent with the best F1 for false_claim
# and assign that F1 (a float).
false_claim_f1 = ...

# %% [hint]
# Which tokens should this be scored on? The table above scored every token, so a latent that fires on
# one of the three tokens of ". That is" could reach a recall of a third at most. Restrict both the
# activations and the labels to the verdict position of every judged claim, true or false.

# %% [hint]
# Verdict positions: the token is " is" and the token carries true_claim or false_claim. Index acts and
# labels with that mask, then call best_latent_for_concept.

# %% [solution]
claim_end = labels[:, CONCEPTS.index("true_claim")] | labels[:, CONCEPTS.index("false_claim")]
verdict_position = claim_end & (tokens[:, 1:].flatten() == corpus.single_token_id(model.tokenizer, " is"))
latent_at_verdict, f1_at_verdict = best_latent_for_concept(
    acts["topk"][verdict_position], labels[verdict_position, CONCEPTS.index("false_claim")]
)
print(f"{int(verdict_position.sum())} verdict positions; latent {latent_at_verdict}: F1 {f1_at_verdict:.2f}")
false_claim_f1 = f1_at_verdict

# %% [markdown]
# Over every token, the best false-claim latent looked poor (F1 near 0.4, in the chart); scored where the
# concept lives, the same SAE has a latent with F1 above 0.8. How a concept is labelled decides whether
# an SAE "has" it. The rest of the notebook uses this latent (the next cell finds it the way the
# solution does: solve the finding first).

# %%
is_id = corpus.single_token_id(model.tokenizer, " is")
at_verdict = labels[:, CONCEPTS.index("false_claim")] | labels[:, CONCEPTS.index("true_claim")]
at_verdict &= tokens[:, 1:].flatten() == is_id
false_latent, verdict_f1 = best_latent_for_concept(
    acts["topk"][at_verdict], labels[at_verdict, CONCEPTS.index("false_claim")]
)
false_up, _ = latent_logit_effects(saes["topk"].W_dec, W_U, false_latent, 1)
print(f"false-claim latent {false_latent} (F1 {verdict_f1:.2f}); its top logit: {model.to_str_tokens(false_up)}")
assert verdict_f1 > 0.8 and f1["topk"][CONCEPTS.index("false_claim")] < 0.5
assert model.to_str_tokens(false_up) == [" false"]


# %% [markdown]
# ## Part 5: steering with a latent
#
# If a latent's decoder direction *is* how the model represents a concept, adding it to the residual
# stream should make the model act as if the concept were present (Templeton et al., *Scaling
# Monosemanticity*, 2024, made Claude believe it was the Golden Gate Bridge this way). Write the hook,
# then a measurement: how much probability the model puts on a set of tokens as the direction is added
# with growing scale.


# %% [exercise] steering_hook difficulty=1 importance=4 minutes=5
def steering_hook(
    activation: Float[Tensor, "batch pos d_model"], hook: HookPoint, direction: Float[Tensor, " d_model"], scale: float
) -> Float[Tensor, "batch pos d_model"]:
    """The activation with scale * direction added at every position."""
    raise NotImplementedError()


# %% [hint]
# Broadcasting adds a (d_model,) vector to every (batch, position) row.


# %% [exercise] steered_probability difficulty=2 importance=4 minutes=15
def steered_probability(
    model: HookedTransformer,
    prompts: list[str],
    hook_name: str,
    direction: Float[Tensor, " d_model"],
    scales: list[float],
    token_ids: Int[Tensor, " n_tokens"],
) -> Float[Tensor, " n_scales"]:
    """For each scale, the probability the model puts on token_ids (summed over them) as the next token
    after each prompt, averaged over prompts, with scale * direction added at hook_name at every position.
    Prompts are left-padded so that each ends at the last position."""
    raise NotImplementedError()


# %% [hint]
# Prompts of different lengths: where does each one end once padded? Bind the scale into the hook (a
# lambda with a default argument, or functools.partial) so that each run uses its own.

# %% [hint]
# `model.to_tokens(prompts, padding_side="left")`, then for each scale `run_with_hooks` with your
# steering_hook, softmax of the last position's logits, `[:, token_ids].sum(-1).mean()`.

# %% [markdown]
# Steer with the false-claim latent. The prompts are judged claims about held-out cities and the 1500s
# that are *true* (claims of the kind never judged in training); the measurement is the probability of
# " false" as the verdict. Scales are in units of the latent's largest activation on the sample, and the
# control is a random direction of the same norm.

# %%
held_out_true = [
    corpus.judged_claim(statement.text, "Mary")
    for family in ("cities", "years")
    for statement in corpus.truth_statements(family)
    if statement.held_out and statement.is_true
]  # fmt: skip
false_id = torch.tensor([corpus.single_token_id(model.tokenizer, " false")])
unit = acts["topk"][:, false_latent].max().item()
multiples = [0.0, 0.5, 1.0, 2.0, 4.0]
scales = [m * unit for m in multiples]
direction = saes["topk"].W_dec[false_latent]
random_direction = torch.randn(model.cfg.d_model, generator=torch.Generator().manual_seed(0))
random_direction *= direction.norm() / random_direction.norm()
steered = steered_probability(model, held_out_true, HOOK, direction, scales, false_id)
control = steered_probability(model, held_out_true, HOOK, random_direction, scales, false_id)
px.line(
    x=multiples * 2, y=torch.cat([steered, control]).numpy(), color=["latent"] * 5 + ["random direction"] * 5,
    markers=True, labels={"x": "scale (x the latent's largest activation)", "y": "P(' false')", "color": ""},
    title=f"Steering {len(held_out_true)} true held-out claims with the false-claim latent",
).show()  # fmt: skip
print("P(false) with the latent:", steered, "\nwith a random direction:", control)


def story_loss_with(direction: Tensor, scale: float) -> float:
    hook = lambda activation, hook: steering_hook(activation, hook, direction, scale)  # noqa: E731
    return model.run_with_hooks(tokens[:32], return_type="loss", fwd_hooks=[(HOOK, hook)]).item()


fluency = {m: story_loss_with(direction, m * unit) for m in (0.0, 2.0, 4.0)}
print("story loss while steering:", fluency)
assert steered[0] < 0.25 and steered[-1] > 0.7 and (steered.diff() > 0).all()
assert control.max() < 0.25
assert fluency[2.0] - fluency[0.0] < 0.1 and fluency[4.0] - fluency[0.0] < 0.5

# %% [markdown]
# The model calls these true claims false with probability under 0.25 unsteered; adding the latent's
# direction at four times its largest natural activation raises that above 0.7, and the rise is steady
# with the scale. A random direction of the same norm keeps it under 0.25. The cost to the rest of the
# model is small: at twice the largest activation the loss on ordinary story text rises by under 0.1
# nats, at four times by under 0.5. (Steering at every position is crude, which is why it costs anything:
# the latent is added to story tokens that have no verdict to give.)
#
# This is the causal half of an interpretation: the latent not only fires on false claims, its direction
# makes the model *treat* a claim as false. Whether an SAE latent is the best such direction is a
# different question: 1.3.4 puts it against a supervised probe and a difference of means.


# %% [markdown]
# ## Part 6: ablation and attribution patching
#
# Which latents does a behaviour depend on? Take fact recall: after "Paris is in" the model says
# " France". The metric is the logit of the right country minus the mean logit of the other seven,
# averaged over all 24 cities. The direct test ablates each latent in turn (zeroes it inside the
# error-term splice, so nothing else changes) and measures the metric's change: one forward pass per
# latent.


# %%
fact_cities = sorted(corpus.CITY_COUNTRY)
fact_tokens = model.to_tokens([f"{city} is in" for city in fact_cities])
country_ids = torch.tensor([corpus.single_token_id(model.tokenizer, " " + c) for c in corpus.COUNTRIES])
true_country = torch.tensor([corpus.COUNTRIES.index(corpus.CITY_COUNTRY[c]) for c in fact_cities])


def fact_metric(logits: Float[Tensor, "batch pos d_vocab"]) -> Float[Tensor, ""]:
    """Mean logit of each prompt's true country minus the mean logit of the other countries."""
    country_logits = logits[:, -1, country_ids]
    true = country_logits.gather(-1, true_country[:, None])[:, 0]
    return (true - (country_logits.sum(-1) - true) / (len(country_ids) - 1)).mean()


clean_metric = fact_metric(model(fact_tokens)).item()
print(f"fact-recall logit difference: {clean_metric:.2f}")


# %% [exercise] latent_ablation_effects difficulty=3 importance=5 minutes=20
def latent_ablation_effects(
    model: HookedTransformer,
    sae: nn.Module,
    tokens: Int[Tensor, "batch pos"],
    metric: Callable[[Float[Tensor, "batch pos d_vocab"]], Float[Tensor, ""]],
    latents: list[int],
) -> Float[Tensor, " n_latents"]:
    """For each latent, how much zeroing it at every position after the BOS (position 0) changes
    metric(logits): metric with the latent ablated minus metric without. The SAE is spliced in at its hook
    with its error term (the activation minus its reconstruction) added back, so that without an ablation
    the model is unchanged."""
    raise NotImplementedError()


# %% [hint]
# Inside one hook: encode, compute the error from the *unablated* latents, zero the latent (on a copy),
# decode, add the error back. A hook that ablates nothing gives the baseline.

# %% [hint]
# Write a function `splice(ablated)` returning a hook; in the hook, `acts = sae.encode(activation)`,
# `error = activation - sae.decode(acts)`, then `acts[:, 1:, ablated] = 0` on a clone, and return
# `sae.decode(acts) + error`.

# %% [markdown]
# With 1,024 latents that is 1,024 forward passes here, and millions on a real model with many SAEs.
# **Attribution patching** (Nanda, 2023; Syed et al., 2023) estimates every ablation at once from one
# forward and one backward pass: to first order, changing a latent's activation from $a$ to $0$ changes
# the metric by $\frac{\partial m}{\partial a} (0 - a)$.


# %% [exercise] latent_attributions difficulty=3 importance=5 minutes=20
def latent_attributions(
    model: HookedTransformer,
    sae: nn.Module,
    tokens: Int[Tensor, "batch pos"],
    metric: Callable[[Float[Tensor, "batch pos d_vocab"]], Float[Tensor, ""]],
) -> Float[Tensor, " d_sae"]:
    """Attribution patching: a first-order estimate of every latent's ablation effect on metric(logits),
    from one forward and one backward pass. Zeroing a latent changes its activation by -activation, so the
    estimate is -(gradient of the metric with respect to the activation) * activation, summed over every
    position after the BOS (position 0) of every sequence. The SAE is spliced in with its error term, as
    for the real ablation."""
    raise NotImplementedError()


# %% [hint]
# The notebook turned gradients off, so turn them back on for this one pass. The latent activations are
# an intermediate tensor: how do you keep the gradient of a tensor that is not a leaf?

# %% [hint]
# In the hook, `acts = sae.encode(activation)`, `acts.retain_grad()`, keep `acts` in a dict, and return
# `sae.decode(acts) + (activation - sae.decode(acts)).detach()`. After `metric(logits).backward()`,
# `acts.grad` is there.

# %% [markdown]
# Compare the two on every latent active on the fact prompts, for both SAEs.

# %%
comparison = {}
for kind, s in saes.items():
    _, fact_cache = model.run_with_cache(fact_tokens, names_filter=[HOOK])
    active = (s.encode(fact_cache[HOOK])[:, 1:] > 0).flatten(0, 1).any(0).nonzero()[:, 0].tolist()
    ablated = latent_ablation_effects(model, s, fact_tokens, fact_metric, active)
    estimated = latent_attributions(model, s, fact_tokens, fact_metric)[active]
    comparison[kind] = (active, ablated, estimated)
    print(
        f"{kind}: {len(active)} active latents, correlation {torch.corrcoef(torch.stack([ablated, estimated]))[0, 1]:.3f}"
    )
px.scatter(
    x=torch.cat([c[1] for c in comparison.values()]).numpy(), y=torch.cat([c[2] for c in comparison.values()]).numpy(),
    color=[kind for kind, c in comparison.items() for _ in c[0]],
    labels={"x": "ablation effect (one forward pass each)", "y": "attribution patching estimate", "color": "SAE"},
    title="Change in the fact-recall logit difference when one latent is zeroed",
).show()  # fmt: skip

# %%
spliced_metric = {
    kind: fact_metric(model.run_with_saes(fact_tokens, saes=[s], exclude_special_tokens=True)).item()
    for kind, s in saes.items()
}
print(f"fact-recall logit difference: clean {clean_metric:.2f}, spliced {spliced_metric}")
for _, ablated, estimated in comparison.values():
    assert torch.corrcoef(torch.stack([ablated, estimated]))[0, 1] > 0.9
    assert ablated.min() > -0.1 * clean_metric  # no single latent carries fact recall
top_five = comparison["topk"][1].argsort()[:5]
assert (comparison["topk"][2][top_five].abs() < comparison["topk"][1][top_five].abs()).all()
assert (
    abs(spliced_metric["topk"] - clean_metric) < 0.1 * clean_metric and spliced_metric["standard"] < 0.5 * clean_metric
)

# %% [markdown]
# Attribution patching tracks the real ablations closely: correlation above 0.9 for both SAEs, from one
# backward pass instead of one forward pass per latent. It is a first-order estimate, and it errs in a
# consistent direction here: for the TopK SAE's five latents with the largest effects, it underestimates
# every one. Use it to rank latents, then ablate the top of the ranking to measure them (the recipe of
# Marks et al., *Sparse Feature Circuits*, 2024).
#
# Two more things the numbers say. No single latent carries fact recall: the largest ablation moves the
# logit difference by under a tenth of its value. And the loss recovered hid something: with the
# standard SAE spliced in (no error term), the model loses more than half of its fact-recall logit
# difference, while with the TopK SAE it keeps it within 10%.


# %% [markdown]
# ## Part 7: train your own SAE
#
# Now build the thing. The zoo's SAEs were trained with SAELens' runner for a minute each; a few hundred
# steps of plain torch on cached activations is enough to see how the two architectures trade sparsity
# against reconstruction.


# %% [exercise] SparseAutoencoder difficulty=3 importance=4 minutes=20
class SparseAutoencoder(nn.Module):
    """A sparse autoencoder with ReLU latents (k=None) or TopK latents (each input keeps its k largest)."""

    def __init__(self, d_in: int, d_sae: int, k: int | None = None):
        """Decoder rows W_dec[i] are random unit vectors, the encoder W_enc starts as the decoder's transpose,
        and both biases start at zero."""
        super().__init__()
        raise NotImplementedError()

    def forward(
        self, x: Float[Tensor, "batch d_in"]
    ) -> tuple[Float[Tensor, "batch d_in"], Float[Tensor, "batch d_sae"]]:
        """The reconstruction acts @ W_dec + b_dec, and the latent activations acts."""
        raise NotImplementedError()


# %% [hint]
# Four `nn.Parameter`s named as in SAELens (W_enc, b_enc, W_dec, b_dec). Why start the encoder as the
# decoder's transpose? At the start, each latent then reads along the direction it writes.

# %% [hint]
# Normalise a `torch.randn(d_sae, d_in)` row-wise for W_dec; W_enc is `W_dec.T.clone()`. In forward, call your
# standard_encode or topk_encode depending on k.


# %% [exercise] sae_loss difficulty=2 importance=4 minutes=5
def sae_loss(
    x: Float[Tensor, "batch d_in"],
    x_hat: Float[Tensor, "batch d_in"],
    acts: Float[Tensor, "batch d_sae"],
    l1_coefficient: float,
) -> Float[Tensor, ""]:
    """The training loss: squared reconstruction error (summed over d_in) plus l1_coefficient times the
    L1 norm of the latent activations, both averaged over the batch."""
    raise NotImplementedError()


# %% [hint]
# Both terms are per input first (a sum over a feature axis), then averaged over the batch.


# %% [exercise] train_sae difficulty=3 importance=5 minutes=20
def train_sae(
    activations: Float[Tensor, "n d_in"],
    d_sae: int,
    k: int | None = None,
    l1_coefficient: float = 0.0,
    steps: int = 150,
    batch_size: int = 256,
    lr: float = 1e-2,
    seed: int = 0,
) -> SparseAutoencoder:
    """A SparseAutoencoder trained on activations with Adam for `steps` steps, each on batch_size rows drawn
    at random, minimising sae_loss. b_dec starts at the activations' mean. After every step the decoder
    rows are rescaled to unit norm: otherwise the L1 penalty is dodged by shrinking the latents while
    the decoder grows. Seeded: the same seed trains the same SAE."""
    raise NotImplementedError()


# %% [hint]
# The notebook turned gradients off globally: turn them on while training. Seed both the initialisation
# and the batches (a generator of your own).

# %% [hint]
# Each step: `batch = activations[torch.randint(n, (batch_size,), generator=generator)]`, forward,
# `sae_loss`, `zero_grad`, `backward`, `step`, then under `torch.no_grad()` divide W_dec by its row norms.

# %% [markdown]
# Train on the residual stream at the zoo SAEs' hook, read from 256 documents of the *train* split, and
# measure on the test sample `x` from Part 2. As SAELens does (`normalize_activations=
# "expected_average_only_in"`), divide the activations by one constant so their mean norm is
# $\sqrt{d_{in}}$: the same L1 coefficient then means the same thing whatever the model's scale.

# %%
_, train_cache = model.run_with_cache(story_tokens(model, "train", 256), names_filter=[HOOK])
train_x = train_cache[HOOK][:, 1:].flatten(0, 1)
norm_scale = train_x.norm(dim=-1).mean() / model.cfg.d_model**0.5
train_x, test_x = train_x / norm_scale, x / norm_scale
D_SAE = 256
L1_GRID, K_GRID = [0.5, 1.0, 2.0, 4.0], [4, 8, 16]


def frontier_point(k: int | None, l1_coefficient: float) -> tuple[SparseAutoencoder, dict[str, float]]:
    my_sae = train_sae(train_x, D_SAE, k=k, l1_coefficient=l1_coefficient)
    return my_sae, reconstruction_stats(test_x, *my_sae(test_x))


started = time.perf_counter()
trained = {("relu", c): frontier_point(None, c) for c in tqdm(L1_GRID, desc="ReLU + L1")}
trained |= {("topk", k): frontier_point(k, 0.0) for k in tqdm(K_GRID, desc="TopK")}
frontier = {key: point for key, (_, point) in trained.items()}
print(f"{len(frontier)} SAEs trained in {time.perf_counter() - started:.1f} s")
px.line(
    x=[v["l0"] for v in frontier.values()], y=[v["explained_variance"] for v in frontier.values()],
    color=[kind for kind, _ in frontier], markers=True, log_x=True,
    text=[f"L1 {p}" if kind == "relu" else f"k {p}" for kind, p in frontier],
    labels={"x": "L0 (active latents per token)", "y": "variance explained (test tokens)", "color": ""},
    title=f"Sparsity against reconstruction, {D_SAE} latents, 150 steps",
).show()  # fmt: skip

# %% [finding] relu_l0_to_match_topk difficulty=3 importance=4 minutes=15
# How many active latents per token (L0) does the ReLU + L1 SAE need to explain as much variance as the
# TopK SAE with k = 8? Interpolate between the two ReLU points around that level, linearly in log L0.
# Assign the L0 (a float).
relu_l0_to_match_topk = ...

# %% [hint]
# Read TopK k = 8's explained variance off `frontier`, then find the two ReLU points whose explained
# variances bracket it. On the plot's log axis the segment between them is a straight line.

# %% [solution]
target = frontier[("topk", 8)]["explained_variance"]
relu = sorted((v["explained_variance"], v["l0"]) for (kind, _), v in frontier.items() if kind == "relu")
(ev_low, l0_low), (ev_high, l0_high) = next((a, b) for a, b in zip(relu, relu[1:]) if a[0] <= target <= b[0])
fraction = (target - ev_low) / (ev_high - ev_low)
relu_l0_to_match_topk = float(torch.tensor(l0_low).log().lerp(torch.tensor(l0_high).log(), fraction).exp())
print(f"TopK k=8 explains {target:.3f}; the ReLU SAE needs L0 of about {relu_l0_to_match_topk:.1f}")

# %% [markdown]
# TopK wins the trade at every sparsity here, as Gao et al. (2024) found at scale: at each k, TopK
# explains at least 0.01 more of the variance than the ReLU curve at the same L0 (interpolated in log L0),
# and to explain what TopK explains with 8 latents, the ReLU + L1 SAE needs between 2.5 and 8 times as
# many. One reason is **shrinkage**: the L1 penalty pushes every active latent towards zero, so the
# reconstruction comes out too short, a cost TopK never pays (it penalises nothing but the count).
# Measure it: the factor that would best rescale each SAE's reconstruction.

# %%
relu_points = sorted((v["l0"], v["explained_variance"]) for (kind, _), v in frontier.items() if kind == "relu")
relu_l0s, relu_evs = (torch.tensor(column) for column in zip(*relu_points))
for k in K_GRID:
    high = int(torch.searchsorted(relu_l0s, torch.tensor(float(k))))  # the ReLU points around L0 = k
    low = high - 1
    assert 0 <= low and high < len(relu_l0s), f"no ReLU point on each side of L0 = {k}"
    fraction = (torch.tensor(float(k)).log() - relu_l0s[low].log()) / (relu_l0s[high].log() - relu_l0s[low].log())
    relu_at_k = relu_evs[low] + fraction * (relu_evs[high] - relu_evs[low])
    assert frontier[("topk", k)]["explained_variance"] > relu_at_k + 0.01, k
assert 2.5 * 8 < relu_l0_to_match_topk < 8 * 8


def best_rescale(my_sae: SparseAutoencoder) -> float:
    """The factor c minimising ||x - c (x_hat - b_dec) - b_dec||: 1 when the latents are not shrunk."""
    centred_hat, centred = my_sae(test_x)[0] - my_sae.b_dec, test_x - my_sae.b_dec
    return ((centred_hat * centred).sum() / centred_hat.pow(2).sum()).item()


rescale = {f"{kind} {parameter}": best_rescale(my_sae) for (kind, parameter), (my_sae, _) in trained.items()}
print("best rescaling of each reconstruction:", {key: round(value, 3) for key, value in rescale.items()})
relu_rescale = [rescale[f"relu {c}"] for c in L1_GRID]
assert all(r > 1.03 for r in relu_rescale) and relu_rescale == sorted(relu_rescale) and relu_rescale[-1] > 1.1
assert all(abs(rescale[f"topk {k}"] - 1) < 0.01 for k in K_GRID)

# %% [markdown]
# Every ReLU SAE's reconstruction would be better more than 3% longer, and the stronger the penalty, the
# more it shrinks (more than 10% at the largest coefficient); TopK's are within 1% of the right length.
# Fixes for shrinkage include the gated SAE and JumpReLU's learned threshold (both Rajamanoharan et al.,
# 2024), both in SAELens.
#
# ## Summary
#
# - An SAE is an encoder, a sparsifying nonlinearity and a decoder; SAELens loads, splices and edits them.
# - Judge reconstruction by the model's loss with the SAE spliced in, and by the behaviour you care about,
#   not by variance explained: the standard SAE explains most of the variance and still costs the model
#   half a nat and half its fact recall.
# - Max-activating examples show the top of a latent's range; only labels show its precision and recall
#   over all tokens. Against the zoo's ground truth, some concepts have a latent of their own, some are
#   split across latents (years), some are found only where they are labelled precisely (false claims),
#   and some have no good latent at all (objects, adjectives).
# - A latent's decoder direction can steer: the false-claim latent flips true claims to " false".
# - Attribution patching ranks latents by estimated ablation effect from one backward pass; check the top
#   of the ranking with real ablations.
# - TopK beats ReLU + L1 on the sparsity/reconstruction frontier here, partly because L1 shrinks.
#
# Next, 1.3.4 asks whether any of this beats a plain linear probe.
