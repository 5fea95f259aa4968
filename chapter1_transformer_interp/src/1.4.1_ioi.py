# %% [markdown]
# # 1.4.1 Indirect object identification: finding a circuit, and testing it
#
# "When Mary and John went to the store, John gave a drink to" ... " Mary". To finish this sentence a model
# must find the two names, notice that one of them (the **subject**, S) is mentioned again, and predict the
# other (the **indirect object**, IO). Wang et al., *Interpretability in the Wild* (2022), reverse-engineered
# how GPT-2 small does it and found a circuit of 26 heads in seven roles: duplicate-token, induction and
# previous-token heads notice that S is repeated; S-inhibition heads carry that to the final position; name
# mover heads attend to IO there and copy it to the logits; negative name movers write against it; backup
# name movers take over when the name movers are ablated.
#
# This section does the same study on the zoo's `gpt2-mini` (4 layers of 4 heads, MLPs; see
# `zoo/models/gpt2-mini/CARD.md`), which was trained on stories in which IOI sentences are common. It
# solves IOI on templates it never saw in training. But it is not GPT-2 small, and we will **not** assume
# it uses the paper's circuit: we discover the roles its heads play, and every claim about them below is
# an assertion that the solved notebook checks.
#
# You will:
#
# 1. measure the task with the logit difference, and see what padding on the wrong side does to it;
# 2. attribute the logit difference to layers and heads directly (direct logit attribution);
# 3. build corrupted prompts and use **activation patching** to find where the information lives: the
#    residual stream by layer and position, attention and MLP outputs, each head's output, then its
#    queries, keys, values and patterns;
# 4. use **path patching** to separate a head's direct effect on the logits from its effect on other heads;
# 5. approximate activation patching with one backward pass (**attribution patching**), and measure how well
#    it agrees;
# 6. name the heads' roles, then test the circuit: is it **faithful** (does it alone keep the model's
#    logit difference when everything else is mean-ablated?) and **minimal** (is every head needed?).
#
# **Relation to ARENA's 1.4.1.** ARENA's section replicates the paper on GPT-2 small. The techniques here
# are the same (logit difference, DLA, activation, path and attribution patching, faithfulness); the model
# is small enough to patch every head in a second on a CPU, and its circuit is different, which is the
# point of the last part. Prerequisites: 1.2 (TransformerLens hooks, DLA, mean ablation).

# %%
import json
import random  # noqa: F401 (the reference abc_corrupt uses it, as may yours)
from collections.abc import Callable

import circuitsvis as cv
import einops  # noqa: F401 (the reference solutions use it, as may yours)
import plotly.express as px
import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import ActivationCache, HookedTransformer
from transformer_lens.hook_points import HookPoint  # noqa: F401 (the reference solutions use it, as may yours)

from course.plot import line
from solutions.chapter1_transformer_interp.ioi import one_shape_ioi_prompts
from tests.checks.chapter1_transformer_interp.ioi import check  # noqa: F401 (used by the check cells the build adds)
from zoo import MODELS_DIR, corpus, load_model
from zoo.evaluate import parse_head

# A model this small runs fastest on one thread; several threads mostly wait on each other.
torch.set_num_threads(1)
torch.manual_seed(0)
torch.set_grad_enabled(False)  # attribution patching turns gradients on for itself

HEADS = [f"L{layer}H{head}" for layer in range(4) for head in range(4)]

# %% [markdown]
# ## Part 1: the task and its metric
#
# The zoo's corpus has eight IOI intros ("When {A} and {B} went to the {place},") and eight actions
# ("{S} gave a {object} to"); sixteen (intro, action) pairs were held out of training and are used only
# for test prompts (`corpus.HELD_OUT_IOI_TEMPLATES`). Half the prompts are ABBA ("A and B ..., B gave ...
# to A") and half BABA. `one_shape_ioi_prompts` keeps the held-out prompts that share the most common
# length, so that position 10 is the second mention of the subject in every prompt and patching one
# position means the same thing across the batch.

# %%
model = load_model("gpt2-mini", device="cpu")
metrics = json.loads((MODELS_DIR / "gpt2-mini" / "metrics.json").read_text())
prompts = one_shape_ioi_prompts(model, 80)
tokens = model.to_tokens(prompts.prompts)
io_ids, s_ids = prompts.correct_token_ids, prompts.wrong_token_ids
str_tokens = [model.to_str_tokens(prompt) for prompt in prompts.prompts]
for prompt, io, s in list(zip(prompts.prompts, prompts.correct_names, prompts.wrong_names))[:3]:
    print(f"{prompt!r}: IO {io}, S {s}")

# Where each name is, per prompt: A and B at positions 2 and 4 (which one is IO varies), S2 at 10.
io_pos = torch.tensor([toks.index(" " + io) for toks, io in zip(str_tokens, prompts.correct_names)])
s1_pos = torch.tensor([toks.index(" " + s) for toks, s in zip(str_tokens, prompts.wrong_names)])
(S2,) = {max(i for i, t in enumerate(toks) if t == " " + s) for toks, s in zip(str_tokens, prompts.wrong_names)}
END = tokens.shape[1] - 1
assert (tokens != model.tokenizer.pad_token_id).all() and set(io_pos.tolist()) == set(s1_pos.tolist()) == {2, 4}
assert (S2, END) == (10, 14)
position_labels = [f"{i} {t}" for i, t in enumerate(str_tokens[0])]
for position, role in [(2, "A"), (4, "B"), (S2, "S2"), (S2 + 1, "verb"), (S2 + 2, "article"), (END, "END")]:
    position_labels[position] = f"{position} {role}"
print(position_labels)

# %% [markdown]
# The measure of success throughout is the **logit difference**: the logit of the IO minus the logit of
# S at the final position. Only the difference between the two names is compared, which removes
# everything the model does to all names alike. (The log-probabilities' difference is the same number:
# the softmax's normaliser cancels.)


# %% [exercise] logit_diff difficulty=1 importance=5 minutes=5
def logit_diff(
    logits: Float[Tensor, "batch pos d_vocab"], io_ids: Int[Tensor, " batch"], s_ids: Int[Tensor, " batch"]
) -> Float[Tensor, " batch"]:
    """Each prompt's logit of its indirect object minus its logit of the subject, at the final position
    (with left padding, every prompt ends there)."""
    raise NotImplementedError()


# %% [hint]
# Each prompt has its own pair of names, so you need one entry per prompt, not a batch-by-batch table.

# %% [hint]
# Take the final position's logits, then index rows with `torch.arange(batch)` and columns with the ids.

# %%
clean_logits, clean_cache = model.run_with_cache(tokens)
clean_diffs = logit_diff(clean_logits, io_ids, s_ids)
clean_ld = clean_diffs.mean().item()
print(f"logit difference {clean_ld:.2f}; IO above S in {(clean_diffs > 0).float().mean():.0%} of prompts")
recorded = metrics["metrics"]["ioi_logit_diff"]
assert abs(clean_ld - recorded["value"]) < recorded["tolerance"] and (clean_diffs > 0).all()
assert 5.5 < clean_ld < 6.5

# %% [markdown]
# On these 80 prompts the IO beats S in every one, by about 6 logits on average (`metrics.json` records
# 5.7 on 400 held-out prompts of every length).
#
# ### Try it: pad on the wrong side
#
# Prompts of different lengths must be padded to one length. The zoo's tokenizer pads on the left, so
# that every prompt ends at position -1, and `logit_diff` reads position -1. Before you run the cell,
# predict the accuracy on prompts of every length when they are padded on the right.

# %%
mixed = corpus.ioi_prompts(model.tokenizer, 200, split="test", seed=1)
accuracy = {}
for side in ("left", "right"):
    padded = model.to_tokens(mixed.prompts, padding_side=side)
    accuracy[side] = (logit_diff(model(padded), mixed.correct_token_ids, mixed.wrong_token_ids) > 0).float().mean()
print(f"IO above S: {accuracy['left']:.0%} padded on the left, {accuracy['right']:.0%} on the right")
assert accuracy["left"] > 0.9 and accuracy["right"] < 0.7

# %% [markdown]
# Padded on the right, position -1 of a short prompt is a pad token, and what the model predicts after it
# is close to a coin flip between the names: accuracy falls below 70%, and nothing raises an error. Every
# batch of prompts of different lengths needs the padding side chosen on purpose (or a gather of each
# prompt's last real position).


# %% [markdown]
# ## Part 2: direct logit attribution
#
# In 1.2 you split the final residual stream into parts by hand. TransformerLens does it for you:
# `cache.accumulated_resid(layer=-1, pos_slice=-1)` stacks the residual stream after each layer,
# `cache.decompose_resid(...)` stacks what each attention layer and MLP writes, and
# `cache.stack_head_results(layer=-1, pos_slice=-1)` stacks each head's output. Each returns a stack
# `(component, batch, d_model)` (pass `return_labels=True` for names). To read a component's effect on the
# logit difference, scale it as the final LayerNorm scales the whole stream
# (`cache.apply_ln_to_stack(stack, layer=-1, pos_slice=-1)`: centre it, divide by the final scale of each
# prompt), then dot it with each prompt's **logit difference direction**. The zoo loads its models without
# folding the LayerNorm weights into the next matrices (`from_pretrained` folds them by default), so the final
# LayerNorm's weight $w$ belongs to the direction: $w \odot (W_U[:, IO] - W_U[:, S])$. Its bias and the
# unembedding bias add a constant that no component is responsible for.


# %% [exercise] residual_stack_to_logit_diff difficulty=2 importance=4 minutes=10
def residual_stack_to_logit_diff(
    residual_stack: Float[Tensor, "component batch d_model"],
    cache: ActivationCache,
    logit_diff_directions: Float[Tensor, "batch d_model"],
) -> Float[Tensor, " component"]:
    """Each component's direct contribution to the logit difference, averaged over the batch: the components
    (read at the final position) are scaled as the final LayerNorm scales the final residual stream, then
    dotted with each prompt's W_U[:, IO] - W_U[:, S]."""
    raise NotImplementedError()


# %% [hint]
# Two steps: the LayerNorm scaling (the cache has a method for it; which layer's scale, and at which
# position?), then one dot product per (component, prompt) with that prompt's own direction, averaged.

# %% [hint]
# `cache.apply_ln_to_stack(residual_stack, layer=-1, pos_slice=-1)`, then an einsum over `batch d_model` that
# keeps `component`, divided by the batch size.

# %%
ln_weight = model.ln_final.w
differences = (model.W_U[:, io_ids] - model.W_U[:, s_ids]).T  # (batch, d_model)
directions = differences * ln_weight
accumulated, accumulated_labels = clean_cache.accumulated_resid(
    layer=-1, pos_slice=-1, incl_mid=True, return_labels=True
)
accumulated_ld = residual_stack_to_logit_diff(accumulated, clean_cache, directions)
line(
    {"logit difference": accumulated_ld.tolist()},
    title="logit difference read from the residual stream after each part", xaxis="part", yaxis="logit difference",
).update_xaxes(tickvals=list(range(len(accumulated_labels))), ticktext=accumulated_labels).show()  # fmt: skip
# The whole final stream gives the logit difference, once the constant from the two biases is added.
constant = (differences @ model.ln_final.b + model.b_U[io_ids] - model.b_U[s_ids]).mean()
assert abs(accumulated_ld[-1] + constant - clean_ld) < 1e-3
assert accumulated_ld[accumulated_labels.index("1_pre")] < 0.5 < 2.0 < accumulated_ld[accumulated_labels.index("3_pre")]

# %% [markdown]
# The stream says almost nothing about IO versus S until layer 1 (below 0.5 entering it); by the time it
# enters layer 3 it already holds over 2 of the final ~6. Which parts write it?

# %%
per_layer, per_layer_labels = clean_cache.decompose_resid(layer=-1, pos_slice=-1, return_labels=True)
per_layer_ld = residual_stack_to_logit_diff(per_layer, clean_cache, directions)
px.bar(x=per_layer_labels, y=per_layer_ld.numpy(), title="direct effect of each part on the logit difference").show()
ld_of = dict(zip(per_layer_labels, per_layer_ld.tolist()))
print({label: round(value, 2) for label, value in ld_of.items()})
assert ld_of["1_attn_out"] > 1.0 and ld_of["2_attn_out"] > 0.7 and ld_of["3_attn_out"] < 0.5
assert ld_of["3_mlp_out"] > 1.0 and ld_of["0_mlp_out"] < -0.3

# %% [markdown]
# The attention layers that write the logit difference directly are layers 1 and 2 (over 1 and over 0.7);
# layer 3's attention writes under 0.5 of it. In GPT-2 small the name movers sit in the last layers; here
# the last attention layer does little. The MLPs write a lot too (layer 3's MLP over 1). Now each head:

# %%
head_results = clean_cache.stack_head_results(layer=-1, pos_slice=-1)
head_ld = residual_stack_to_logit_diff(head_results, clean_cache, directions).reshape(4, 4)
px.imshow(
    head_ld.numpy(), color_continuous_scale="RdBu", color_continuous_midpoint=0.0, text_auto=".2f",
    labels=dict(x="head", y="layer"), title="direct effect of each head on the logit difference",
).show()  # fmt: skip
print(head_ld)

# %% [markdown]
# A head that raises the logit difference may do it by raising the IO's logit (as the paper's name movers
# do) or by lowering S's. The same function separates the two: use the direction of one name alone,
# $W_U[:, \text{name}]$ minus the mean of the 50 names' columns (so that what a head does to every name alike
# does not count), times $w$ as before.

# %%
name_ids = torch.tensor([corpus.single_token_id(model.tokenizer, " " + name) for name in corpus.NAMES])
mean_name = model.W_U[:, name_ids].mean(-1)
head_on_io = residual_stack_to_logit_diff(
    head_results, clean_cache, (model.W_U[:, io_ids].T - mean_name) * ln_weight
).reshape(4, 4)
head_on_s = residual_stack_to_logit_diff(
    head_results, clean_cache, (model.W_U[:, s_ids].T - mean_name) * ln_weight
).reshape(4, 4)
px.imshow(
    torch.stack([head_on_io, head_on_s]).numpy(), facet_col=0, color_continuous_scale="RdBu",
    color_continuous_midpoint=0.0, text_auto=".2f", labels=dict(x="head", y="layer"),
    title="direct effect of each head on the IO's logit (left) and on S's logit (right), against the mean name",
).show()  # fmt: skip

# %% [finding] ioi_subject_suppression_heads difficulty=2 importance=5 minutes=10
# Which heads directly lower the subject's logit by more than 0.4 (against the mean name), while moving the
# IO's logit by less than 0.1 either way? Assign the set of their names, e.g. {"L3H0", "L3H1"}.
ioi_subject_suppression_heads = ...

# %% [hint]
# Read both tables above; a head qualifies by what it does to S and by what it does not do to the IO.

# %% [solution]
suppresses_s = (head_on_s < -0.4) & (head_on_io.abs() < 0.1)
ioi_subject_suppression_heads = {HEADS[i] for i in suppresses_s.flatten().nonzero()[:, 0].tolist()}

# %%
suppressors = sorted(ioi_subject_suppression_heads)
print("subject suppression heads:", suppressors)
assert suppressors == ["L1H0", "L1H3", "L2H1", "L2H2"]
assert metrics["heads"]["induction"] in suppressors  # the induction head doubles as one
top_four = {HEADS[i] for i in head_ld.flatten().topk(4).indices.tolist()}
assert top_four == set(suppressors) and head_on_io.max() < 0.3 and head_on_io.min() > -0.1

# %% [markdown]
# Four heads in layers 1 and 2 write the logit difference directly, and they are the four with the largest
# direct effects. **They write it by pushing the subject down, not the IO up**: each lowers S's logit by
# more than 0.4 and moves the IO's by less than 0.1. No head raises the IO's logit by even 0.3, and none
# lowers it by 0.1: there is no head here that writes the IO into the logits the way the paper's name movers
# do, and no negative name mover. One of the four is the induction head of `metrics.json`.
#
# Where do these heads look from the final position? In the paper, the name movers attend to the IO.

# %%
suppressor_attention = torch.stack(
    [clean_cache["pattern", parse_head(h)[0]][:, parse_head(h)[1], END].mean(0) for h in suppressors]
)
px.imshow(
    suppressor_attention.numpy(), x=position_labels, y=suppressors, color_continuous_scale="Blues",
    title="attention from END, mean over prompts", labels=dict(x="key position", y="head"),
).show()  # fmt: skip
rows = torch.arange(len(tokens))
for h in suppressors:
    layer, head = parse_head(h)
    pattern = clean_cache["pattern", layer][:, head, END]
    print(f"{h}: article {pattern[:, S2 + 2].mean():.2f}, S2 {pattern[:, S2].mean():.2f}, "
          f"IO {pattern[rows, io_pos].mean():.2f}, S1 {pattern[rows, s1_pos].mean():.2f}")  # fmt: skip
assert (suppressor_attention[:, S2 + 2] > 0.85).all() and suppressor_attention[:, [2, 4, S2]].max() < 0.05

# %% [markdown]
# None of them looks at a name: each puts over 85% of its attention on the **article** two tokens after S2
# ("Eva gave **a** apple to"), and under 5% on any name. Whatever they read about the subject must already
# be at that article when they read it. Part 3 finds out how it gets there.
#
# First, the paper's name movers. Could another head be one, even with a small direct effect?

# %% [finding] ioi_name_mover_heads difficulty=2 importance=4 minutes=10
# Which heads are name movers in the paper's sense: from END they attend to the IO more than to S1 (by
# more than 0.1, on average over the prompts), and they raise the IO's logit directly (by more than 0.1
# against the mean name)? Assign the set of their names (a set, even if it holds no head at all).
ioi_name_mover_heads = ...

# %% [hint]
# You need the attention from END to each prompt's IO and S1 position (they differ from prompt to prompt),
# for every head, and the direct-effect table on the IO's logit you already have.

# %% [solution]
end_attention = torch.stack([clean_cache["pattern", layer][:, :, END] for layer in range(4)])  # layer batch head key
to_io = end_attention[:, rows, :, io_pos].mean(0)  # (layer, head)
to_s1 = end_attention[:, rows, :, s1_pos].mean(0)
moves_io = (to_io - to_s1 > 0.1) & (head_on_io > 0.1)
ioi_name_mover_heads = {HEADS[i] for i in moves_io.flatten().nonzero()[:, 0].tolist()}

# %%
to_names = torch.stack([
    torch.stack([clean_cache["pattern", layer][rows, :, END, positions].mean(0) for layer in range(4)])
    for positions in (io_pos, s1_pos)
])  # fmt: skip
print("attention from END to the IO:\n", to_names[0], "\nto S1:\n", to_names[1])
gatherers = {HEADS[i] for i in (to_names.sum(0) > 0.5).flatten().nonzero()[:, 0].tolist()}
assert ioi_name_mover_heads == set() and gatherers == {"L0H2", "L0H3"}
assert (to_names[0] - to_names[1]).abs().max() < 0.05

# %% [markdown]
# There are none. Two heads do attend from END to the names, `L0H2` and `L0H3` (over half their attention on
# IO and S1 together), but they are in layer 0 and attend to the two names **equally** (no head's attention
# to the IO and to S1 differs by 0.05): they gather both names, they cannot know yet which one to choose.
# We will call them the **name gatherers**. So far the picture is: something puts both names in play, and
# four heads push the subject down. The rest of the section tests this with causal interventions.


# %% [markdown]
# ## Part 3: activation patching
#
# Ablation (1.2) asks what breaks when a component is removed. **Activation patching** asks a sharper
# question with two runs that differ in one thing: a **clean** prompt and a **corrupted** one in which the
# information of interest is gone. Run the corrupted prompt, restore one activation to its clean value, and
# see how much of the clean behaviour comes back: the activations that restore it carry the information.
# (This is *denoising*; patching a corrupted activation into the clean run, *noising*, asks what is
# necessary rather than sufficient.)
#
# The corruption the paper uses is the **ABC** distribution: the second mention of the subject is replaced by
# a third name, "When Mary and John went to the store, **Tom** gave a drink to". Now nothing says which of
# Mary and John to prefer, so the logit difference for the clean answer should fall to about 0. Everything
# else (template, places, objects, IO, S1) is unchanged, so positions line up with the clean prompts.


# %% [exercise] abc_corrupt difficulty=2 importance=4 minutes=10
def abc_corrupt(prompts: list[str], s_names: list[str], seed: int = 0) -> list[str]:
    """Each prompt with the subject's second mention (the last occurrence of its s_name as a word) replaced by a
    name drawn at random from corpus.NAMES among those the prompt does not contain. Words are separated by
    single spaces; the same seed gives the same names."""
    raise NotImplementedError()


# %% [hint]
# Two things can go wrong quietly: replacing the first mention instead of the second, and drawing a name that
# is already in the prompt (the IO, say), which would make a different task. "The same seed gives the same
# names" means a random generator of your own.

# %% [hint]
# Split on spaces, find the largest index whose word is the subject, and draw with a `random.Random(seed)`
# from the names that are not among the words.

# %%
corrupted_prompts = abc_corrupt(prompts.prompts, prompts.wrong_names, seed=0)
corrupted_tokens = model.to_tokens(corrupted_prompts)
print(prompts.prompts[0], "->", corrupted_prompts[0])
corrupted_logits, corrupted_cache = model.run_with_cache(corrupted_tokens)
corrupted_ld = logit_diff(corrupted_logits, io_ids, s_ids).mean().item()
print(f"logit difference: clean {clean_ld:.2f}, corrupted {corrupted_ld:.2f}")
assert corrupted_tokens.shape == tokens.shape and (corrupted_tokens != tokens).sum(1).eq(1).all()
assert (corrupted_tokens != tokens).nonzero()[:, 1].eq(S2).all() and abs(corrupted_ld) < 0.5

# %% [markdown]
# Each corrupted prompt differs from its clean one at one token, S2, and the logit difference falls from
# about 6 to under 0.5 in size: the model's whole preference comes from the repeated name. Patching results
# are easier to compare when rescaled so that 0 means "as corrupted" and 1 means "as clean".


# %% [exercise] patching_metric difficulty=1 importance=4 minutes=5
def patching_metric(
    patched_logit_diff: Float[Tensor, "..."], clean_logit_diff: float, corrupted_logit_diff: float
) -> Float[Tensor, "..."]:
    """The patched logit difference rescaled so that the corrupted run's gives 0 and the clean run's gives 1."""
    raise NotImplementedError()


# %% [hint]
# It is a straight line through two points: where must the corrupted value land, and where the clean one?

# %%
Metric = Callable[[Float[Tensor, "batch pos d_vocab"]], Float[Tensor, ""]]


def ioi_metric(logits: Float[Tensor, "batch pos d_vocab"]) -> Float[Tensor, ""]:
    """Mean logit difference of a run on this section's prompts, 0 as corrupted and 1 as clean."""
    return patching_metric(logit_diff(logits, io_ids, s_ids).mean(), clean_ld, corrupted_ld)


assert abs(ioi_metric(clean_logits) - 1) < 1e-5 and abs(ioi_metric(corrupted_logits)) < 1e-5

# %% [markdown]
# ### Patching the residual stream
#
# Start with the residual stream entering each layer (`blocks.L.hook_resid_pre`), one position at a time.
# Each patch is one forward pass of the corrupted batch with a hook that overwrites one position of one
# activation with the clean cache's.


# %% [exercise] patch_residual_by_position difficulty=2 importance=5 minutes=15
def patch_residual_by_position(
    model: HookedTransformer, corrupted_tokens: Int[Tensor, "batch pos"], clean_cache: ActivationCache, metric: Metric
) -> Float[Tensor, "layer pos"]:
    """Entry [layer, pos]: the metric of the corrupted run in which the residual stream entering block `layer`
    (resid_pre) at position `pos` is replaced by the clean run's, for every prompt at once."""
    raise NotImplementedError()


# %% [hint]
# One forward pass per (layer, position). The hook must change only one position, for every prompt, and
# return the activation. Beware of loop variables captured by a function defined inside the loop.

# %% [hint]
# In the hook, assign `clean_cache[hook.name][:, position]` into `resid[:, position]`; bind the position as a
# default argument of the hook function (or with `functools.partial`).

# %%
resid_patching = patch_residual_by_position(model, corrupted_tokens, clean_cache, ioi_metric)
px.imshow(
    resid_patching.numpy(), x=position_labels, color_continuous_scale="RdBu", color_continuous_midpoint=0.0,
    labels=dict(x="position", y="layer (resid_pre)"), title="patching the residual stream: share of the clean logit difference",
).show()  # fmt: skip
print(resid_patching)
others = [p for p in range(END + 1) if p != S2]
assert resid_patching[0, S2] > 0.99 and resid_patching[0, others].abs().max() < 0.01
assert resid_patching[1, S2 + 2] > 1.0 and resid_patching[1, END] < 0.0
assert resid_patching[2, S2 + 2] > 0.3 and resid_patching[2, END] > 0.4 and resid_patching[3, END] > 0.85

# %% [markdown]
# Read it from top to bottom. Entering layer 0, the clean stream matters only at S2, the one token that
# differs (all of the effect there, none elsewhere). Entering layer 1, **S2 no longer matters at all: the
# article two tokens later carries everything** (over 100%: patching it alone overshoots), and the final
# position nothing yet. Entering layer 2 the information is split between the article and END (over 0.3 and
# over 0.4), and entering layer 3 it sits at END (over 0.85). So layer 0 moves the subject from S2 to the
# article, and layers 1 and 2 move it from the article to END: exactly where the suppression heads look.
#
# In the paper's GPT-2 small the same plot shows information staying at S2 until the middle layers and
# then moving straight to END (through S-inhibition heads). This model takes a detour through the article.
#
# ### Attention and MLP outputs
#
# Patch each layer's attention output and MLP output (all positions at once).


# %% [exercise] patch_layer_outputs difficulty=1 importance=3 minutes=8
def patch_layer_outputs(
    model: HookedTransformer, corrupted_tokens: Int[Tensor, "batch pos"], clean_cache: ActivationCache, metric: Metric
) -> Float[Tensor, "2 layer"]:
    """Row 0: for each layer, the metric of the corrupted run with that layer's attention output (attn_out)
    replaced by the clean run's at every position; row 1: the same for its MLP output (mlp_out)."""
    raise NotImplementedError()


# %% [hint]
# A hook may return any tensor of the right shape, such as the clean activation itself.

# %%
layer_patching = patch_layer_outputs(model, corrupted_tokens, clean_cache, ioi_metric)
px.imshow(
    layer_patching.numpy(), y=["attn_out", "mlp_out"], color_continuous_scale="RdBu", color_continuous_midpoint=0.0,
    text_auto=".2f", labels=dict(x="layer"), title="patching each layer's output at every position",
).show()  # fmt: skip
assert layer_patching[0, 0] > 0.95 and layer_patching[1, 0] > 0.9
assert layer_patching[0, 1] > 0.5 and layer_patching[0, 3] < 0.1

# %% [markdown]
# Layer 0's attention output alone restores over 95% (it is what moves S2 to the article), and so does
# layer 0's MLP (over 90%): at S2 it is part of the token's embedding, so patching it there restores the
# name, and the name is what matters. Of the later attention layers, layer 1 restores over half and layer 3
# under 10%.
#
# ### Each head, and what in each head
#
# Now patch one head at a time. A head's output is its `z` (`hook_z`, shape batch pos head d_head); its
# queries, keys and values (`hook_q`, `hook_k`, `hook_v`) have the same shape, and its attention pattern
# (`hook_pattern`) is (batch, head, query, key): a different axis for the head.


# %% [exercise] patch_head_vectors difficulty=3 importance=5 minutes=20
def patch_head_vectors(
    model: HookedTransformer,
    corrupted_tokens: Int[Tensor, "batch pos"],
    clean_cache: ActivationCache,
    metric: Metric,
    activation: str,
) -> Float[Tensor, "layer head"]:
    """Entry [layer, head]: the metric of the corrupted run with one head's activation replaced by the clean
    run's at every position. activation is "z", "q", "k", "v" (hooks blocks.L.attn.hook_<activation>, shaped
    batch pos head d_head) or "pattern" (batch head query key)."""
    raise NotImplementedError()


# %% [hint]
# One forward pass per head. Which axis of the activation is the head's depends on the activation; every
# other axis is patched in full.

# %% [hint]
# Build an index of `slice(None)` for every axis and put the head number at axis 1 for "pattern", axis 2
# otherwise; assign the clean cache's values at that index.

# %%
head_patching = {
    activation: patch_head_vectors(model, corrupted_tokens, clean_cache, ioi_metric, activation)
    for activation in ["z", "q", "k", "v", "pattern"]
}
fig = px.imshow(
    torch.stack(list(head_patching.values())).numpy(), facet_col=0, color_continuous_scale="RdBu",
    color_continuous_midpoint=0.0, labels=dict(x="head", y="layer"),
    title="patching each head's output (z), queries, keys, values and pattern",
)  # fmt: skip
for annotation, activation in zip(fig.layout.annotations, head_patching):
    annotation.text = activation
fig.show()
print("output (z):\n", head_patching["z"], "\nvalues:\n", head_patching["v"])
z_top = {HEADS[i] for i in head_patching["z"].flatten().topk(4).indices.tolist()}
assert z_top == {"L0H1", "L0H3", "L1H0", "L1H3"} and head_patching["z"][0, 1] > 0.5
assert metrics["heads"]["previous_token"] == "L0H1"
assert (head_patching["v"] - head_patching["z"]).abs().max() < 0.06
assert max(head_patching[kind].abs().max() for kind in ("q", "k", "pattern")) < 0.1
assert 0.1 < head_patching["z"][1, 0] < 0.3

# %% [markdown]
# Restoring one head's output recovers most with `L0H1` (over half on its own: the model's **previous-token
# head**, as `metrics.json` names it), then `L0H3`, then two of the suppression heads. And **every effect goes
# through values**: each head's value patch is within 0.06 of its output patch, while no query, key or
# pattern patch recovers even 0.1. The corruption changes *what* heads move, not *where* they look. In the
# paper, the S-inhibition heads work through the name movers' *queries* (they change where the name movers
# attend); nothing in this model works through a query.
#
# A patch of `L1H0`'s output restores only about 0.2, although it is one of the heads that write the logit
# difference: a head's effect can be shared with others, and activation patching a single head finds
# what is sufficient alone, not everything that is used.


# %% [markdown]
# ## Part 4: path patching
#
# Patching a head's output changes everything downstream of it: the logits directly, and every later head
# and MLP that reads it. **Path patching** (Wang et al. 2022; Goldowsky-Dill et al. 2023) patches one path
# at a time. We use it in the noising direction, as the paper does: run the clean prompts, replace the
# head's contribution *along one path* by its corrupted value, and see how much of the clean logit
# difference is lost (a metric of 1 is no loss, 0 is all of it).
#
# The first path is from a head straight to the logits. Nothing reads the residual stream after the last
# block except the final LayerNorm and the unembedding, so it is enough to change the final residual stream
# by the difference between what the head writes on the corrupted and on the clean prompts.


# %% [exercise] path_patch_head_to_logits difficulty=3 importance=4 minutes=15
def path_patch_head_to_logits(
    model: HookedTransformer,
    clean_tokens: Int[Tensor, "batch pos"],
    clean_cache: ActivationCache,
    corrupted_cache: ActivationCache,
    metric: Metric,
) -> Float[Tensor, "layer head"]:
    """Entry [layer, head]: the metric of the clean run in which that head's output, only where the final
    LayerNorm and the unembedding read it, is its output on the corrupted prompts: every later component
    still reads the head's clean output."""
    raise NotImplementedError()


# %% [hint]
# Which single hook point is read only by the final LayerNorm? What must you add there so that the head seems
# to have written its corrupted output instead of its clean one?

# %% [hint]
# Add `(corrupted z - clean z)[:, :, head] @ model.W_O[layer, head]` to `blocks.{n_layers - 1}.hook_resid_post`.

# %%
to_logits = path_patch_head_to_logits(model, tokens, clean_cache, corrupted_cache, ioi_metric)
px.imshow(
    to_logits.numpy(), color_continuous_scale="RdBu", color_continuous_midpoint=1.0, text_auto=".2f",
    labels=dict(x="head", y="layer"), title="path patching head -> logits (1: nothing lost)",
).show()  # fmt: skip
direct = {HEADS[i] for i in (to_logits < 0.93).flatten().nonzero()[:, 0].tolist()}
assert (
    direct == set(suppressors) and to_logits.flatten()[[HEADS.index(h) for h in HEADS if h not in direct]].min() > 0.94
)

# %% [markdown]
# The heads whose direct path to the logits carries the corruption are exactly the four subject-suppression
# heads (each loses over 7%; every other head under 6%). Direct logit attribution said they write the logit
# difference; path patching says they write the part that depends on the repeated name.
#
# Now from one head to others. The paper's recipe, for a **sender** head and a set of **receivers**:
#
# 1. run the clean prompts with the sender's output taken from the corrupted run and **every other head's
#    output frozen** at its clean value (so the change reaches the receivers only directly from the sender,
#    and through MLPs, which recompute), and record the receivers' inputs (their queries, keys or values);
# 2. run the clean prompts again with only the receivers' inputs replaced by the recorded ones, and measure.


# %% [exercise] path_patch_head_to_heads difficulty=4 importance=5 minutes=30
def path_patch_head_to_heads(
    model: HookedTransformer,
    clean_tokens: Int[Tensor, "batch pos"],
    clean_cache: ActivationCache,
    corrupted_cache: ActivationCache,
    sender: str,
    receivers: list[str],
    receiver_input: str,
    metric: Metric,
) -> Float[Tensor, ""]:
    """The metric after patching the path from the sender head to the receivers' receiver_input ("q", "k" or
    "v"), in two runs on the clean prompts. First: the sender's z is its corrupted one and every other head's z
    is frozen at its clean value (MLPs recompute), and the receivers' receiver_input is recorded. Second: only
    the receivers' receiver_input is replaced by the recorded one (the other heads of their layers keep theirs)."""
    raise NotImplementedError()


# %% [hint]
# Step 1 needs a hook on every layer's z and one on each receiver layer's q, k or v; step 2 only the latter.
# `zoo.evaluate.parse_head` turns "L1H3" into (1, 3), and a hook point's `layer` method says which layer it is in.

# %% [hint]
# In step 1 return a clone of the clean z with the sender's head slice taken from the corrupted cache (only in
# the sender's layer), and record clones of the receivers' activations; in step 2 copy just the receivers'
# head slices back in, layer by layer, and return the metric of the logits.

# %%
senders = {
    (sender, kind): path_patch_head_to_heads(
        model, tokens, clean_cache, corrupted_cache, sender, suppressors, kind, ioi_metric
    ).item()
    for sender in HEADS[:4] for kind in "qkv"
}  # fmt: skip
sender_table = torch.tensor([[senders[h, kind] for h in HEADS[:4]] for kind in "qkv"])
px.imshow(
    sender_table.numpy(), x=HEADS[:4], y=["queries", "keys", "values"], color_continuous_scale="RdBu",
    color_continuous_midpoint=1.0, text_auto=".2f", title="path patching layer-0 heads -> the suppression heads",
).show()  # fmt: skip
later_senders = {
    h: path_patch_head_to_heads(model, tokens, clean_cache, corrupted_cache, h, ["L2H1", "L2H2"], "v", ioi_metric)
    for h in HEADS[4:8]
}
print("layer-1 heads -> layer-2 suppression heads' values:", {h: round(v.item(), 3) for h, v in later_senders.items()})
assert sender_table[:2].min() > 0.98 and min(v.item() for v in later_senders.values()) > 0.95

# %% [finding] ioi_subject_mover_heads difficulty=3 importance=5 minutes=15
# Which heads send the suppression heads what they read? Assign the set of heads whose path to the suppression
# heads' values alone loses more than 20% of the clean logit difference (a metric below 0.8).
ioi_subject_mover_heads = ...

# %% [hint]
# The table above has the answer for one layer of senders; make sure no later layer has any (the cell after it
# checked layer 1 against the layer-2 receivers).

# %% [solution]
ioi_subject_mover_heads = {h for h in HEADS[:4] if senders[h, "v"] < 0.8}

# %%
movers = sorted(ioi_subject_mover_heads)
from_article = torch.stack([clean_cache["pattern", 0][:, head, S2 + 2, S2].mean() for head in range(4)])
print("subject movers:", movers, "; layer-0 attention from the article to S2:", from_article)
assert movers == ["L0H1", "L0H3"] and (from_article[[1, 3]] > 0.4).all() and from_article[[0, 2]].max() < 0.2
assert senders["L0H1", "v"] < 0.45 and senders["L0H3", "v"] < 0.55
assert clean_cache["pattern", 0][:, 1, S2 + 1, S2].mean() > 0.4  # L0H1, from the verb to S2

# %% [markdown]
# The suppression heads' **values** read from two layer-0 heads, `L0H1` and `L0H3`, and their queries and keys
# from nothing that the corruption touches (every query and key path keeps over 98%). Each of the two senders
# alone loses about half of the logit difference through this path, and from the article each puts over 40% of
# its attention on S2, two tokens back. We call them the **subject movers**. `L0H1` is the previous-token head
# of `metrics.json`: from the verb it looks one token back at S2, and from the article two tokens back, at the
# same name. `L0H3` also gathers the names from END (Part 2): one head, two jobs.
#
# Here are the named heads on one prompt (hover over a token to see where it looks):

# %%
# NBVAL_IGNORE_OUTPUT
named = ["L0H1", "L0H3", "L0H2", *suppressors]
cv.attention.attention_heads(
    attention=torch.stack([clean_cache["pattern", parse_head(h)[0]][0, parse_head(h)[1]] for h in named]),
    tokens=str_tokens[0], attention_head_names=named,
)  # fmt: skip

# %% [markdown]
# ## Part 5: attribution patching
#
# Activation patching costs one forward pass per patch. **Attribution patching** (Nanda 2023; Syed et al.
# 2023) estimates all of them from one clean forward pass and one corrupted forward and backward pass, with a
# first-order Taylor expansion around the corrupted run: patching activation $a$ from $a_{corr}$ to
# $a_{clean}$ changes the metric by about
# $$(a_{clean} - a_{corr}) \cdot \frac{\partial\,\text{metric}}{\partial a}\Big|_{corr}.$$


# %% [exercise] attribution_patch_heads difficulty=3 importance=4 minutes=20
def attribution_patch_heads(
    model: HookedTransformer,
    clean_tokens: Int[Tensor, "batch pos"],
    corrupted_tokens: Int[Tensor, "batch pos"],
    metric: Metric,
) -> Float[Tensor, "layer head"]:
    """The linear estimate of how much patching each head's clean z into the corrupted run changes the metric,
    from one clean forward pass and one corrupted forward and backward pass: the sum over batch, positions and
    d_head of (clean z - corrupted z) times the gradient of the metric with respect to the corrupted z. Leaves
    no gradients on the model's parameters."""
    raise NotImplementedError()


# %% [hint]
# Gradients are off in this notebook, so turn them on inside the function. An activation inside the model is
# not a leaf: ask it to keep its gradient from a hook, then call backward on the metric.

# %% [hint]
# In a hook on every hook_z of the corrupted run, call `z.retain_grad()` and keep `z`; after
# `metric(logits).backward()`, combine `(clean z - z.detach()) * z.grad` per head, and `model.zero_grad(set_to_none=True)`.

# %%
attribution = attribution_patch_heads(model, tokens, corrupted_tokens, ioi_metric)
activation = head_patching["z"]  # the exact effects (the corrupted run's metric is 0)
agreement = torch.corrcoef(torch.stack([attribution.flatten(), activation.flatten()]))[0, 1].item()
px.scatter(
    x=activation.flatten().numpy(), y=attribution.flatten().numpy(), text=HEADS,
    labels=dict(x="activation patching", y="attribution patching"),
    title=f"each head's output: attribution vs activation patching (correlation {agreement:.2f})",
).update_traces(textposition="top center").show()  # fmt: skip
assert agreement > 0.95 and (attribution[0, 1] - activation[0, 1]) < -0.1
assert {HEADS[i] for i in attribution.flatten().topk(4).indices.tolist()} == z_top

# %% [markdown]
# Over the 16 heads the estimate correlates with the exact patching above 0.95, and it ranks the same four heads
# on top. It is not exact: it underestimates `L0H1`, the largest effect, by more than 0.1, because the metric is
# not linear in a change that large (its effect passes through the later heads' attention softmax and the
# LayerNorms). On a model with thousands of heads, where one pass per head is too slow, this is how you find
# the candidates, and activation patching is how you confirm them.


# %% [markdown]
# ## Part 6: is it the circuit? Faithfulness and minimality
#
# The picture so far: `L0H1` and `L0H3` move the subject from S2 to the article; four heads in layers 1 and 2
# read it there and push the subject's logit down at END. The paper tests a circuit $C$ by **mean-ablating
# every head outside it**: each such head's output is replaced by its mean over the ABC distribution (the
# same templates with three different names, so the mean says nothing about which name is which), at each
# position. The circuit alone should recover the model's logit difference:
# **faithfulness** $F(C) / F(M)$, with $F$ the mean logit difference and $M$ the whole model.


# %% [exercise] mean_ablate_outside_circuit difficulty=3 importance=5 minutes=15
def mean_ablate_outside_circuit(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    abc_tokens: Int[Tensor, "abc_batch pos"],
    circuit: set[str],
) -> Float[Tensor, "batch pos d_vocab"]:
    """Logits on tokens with every head outside the circuit (a set of names "L{layer}H{head}") mean-ablated:
    its z replaced, at each position, by its mean over the abc_tokens prompts at that position. MLPs, embeddings
    and the circuit's heads run as usual."""
    raise NotImplementedError()


# %% [hint]
# Two runs: one on the ABC prompts to get each layer's mean z per position, and one on the real prompts with a
# hook on every layer's z that keeps the circuit's heads and replaces the rest.

# %% [hint]
# In the hook, start from a clone of the mean expanded to z's shape, copy in `z[:, :, head]` for each circuit
# head of `hook.layer()`, and return it.


# %%
def faithfulness(circuit: set[str]) -> float:
    ablated = mean_ablate_outside_circuit(model, tokens, corrupted_tokens, circuit)
    return logit_diff(ablated, io_ids, s_ids).mean().item() / clean_ld


full_model, no_heads = faithfulness(set(HEADS)), faithfulness(set())
movers_and_suppressors = faithfulness(set(movers) | set(suppressors))
print(f"faithfulness: every head {full_model:.2f}, no head {no_heads:.2f}, "
      f"movers and suppressors {movers_and_suppressors:.2f}")  # fmt: skip
assert abs(full_model - 1) < 1e-4 and no_heads < 0.15 and 0.8 < movers_and_suppressors < 0.9

# %% [markdown]
# Keeping every head is the whole model (1.00); mean-ablating every head leaves under 15%. The six heads found
# above keep between 80% and 90% of the logit difference. Is each of them needed, and is anything missing?
# Look at what removing each head from the circuit, or adding each other head to it, does.

# %%
six = set(movers) | set(suppressors)
removing = {h: faithfulness(six - {h}) for h in sorted(six)}
adding = {h: faithfulness(six | {h}) for h in HEADS if h not in six}
print("remove one:", {h: round(v, 2) for h, v in removing.items()})
print("add one:", {h: round(v, 2) for h, v in adding.items()})
assert removing["L0H3"] > 0.95 and all(v < movers_and_suppressors - 0.15 for h, v in removing.items() if h != "L0H3")

# %% [finding] ioi_circuit difficulty=3 importance=5 minutes=20
# Find a circuit for the logit difference: a set of heads that, with every other head mean-ablated over the ABC
# prompts, keeps at least 90% of the clean logit difference (faithful), and from which removing any one head
# loses at least 5% of it (minimal). Assign the set of head names.
ioi_circuit = ...

# %% [hint]
# Start from what the patching and path patching found, and look at what removing each head did: one of the
# six does not behave like the others.

# %% [solution]
ioi_circuit = {h for h in six if removing[h] < movers_and_suppressors}

# %%
# Re-derived here from the six heads, so that what follows does not depend on which valid circuit you submitted.
five = {h for h in six if removing[h] < movers_and_suppressors}
circuit_faithfulness = faithfulness(five)
minimality = {h: circuit_faithfulness - faithfulness(five - {h}) for h in sorted(five)}
print(f"circuit {sorted(five)}: faithfulness {circuit_faithfulness:.2f}; loss when removing each head:",
      {h: round(v, 2) for h, v in minimality.items()})  # fmt: skip
assert five == {"L0H1", "L1H0", "L1H3", "L2H1", "L2H2"}
assert circuit_faithfulness > 0.95 and min(minimality.values()) > 0.08 and minimality["L0H1"] > 0.8

# %% [markdown]
# Five heads (`L0H1` and the four suppression heads) keep over 95% of the logit difference with the other
# eleven mean-ablated, and removing any one of them loses over 8% of it (removing `L0H1` over 80%). Removing
# `L0H3` *raised* the faithfulness of the six-head circuit: mean-ablated, it does less harm to the logit
# difference than it does running, although path patching showed it carries the subject too.
#
# ### Try it: what the logit difference does not measure
#
# The logit difference compares the IO with S and nothing else. Before you run the cell, predict how often the
# five-head circuit, with everything else mean-ablated, makes the IO the most likely of the 50 names, and what
# adding the two name gatherers `L0H2` and `L0H3` does to that and to the faithfulness.


# %%
def top_name_accuracy(logits: Float[Tensor, "batch pos d_vocab"]) -> float:
    """How often the IO has the highest final logit among all the names."""
    return (name_ids[logits[:, -1, name_ids].argmax(-1)] == io_ids).float().mean().item()


with_gatherers = five | gatherers
accuracy_of = {
    "whole model": top_name_accuracy(clean_logits),
    "circuit": top_name_accuracy(mean_ablate_outside_circuit(model, tokens, corrupted_tokens, five)),
    "circuit + gatherers": top_name_accuracy(mean_ablate_outside_circuit(model, tokens, corrupted_tokens, with_gatherers)),
}  # fmt: skip
print("IO is the top name:", accuracy_of, f"; faithfulness with the gatherers {faithfulness(with_gatherers):.2f}")
assert accuracy_of["whole model"] == 1.0 and accuracy_of["circuit"] < 0.1
assert accuracy_of["circuit + gatherers"] > 0.95 and faithfulness(with_gatherers) < 0.75

# %% [markdown]
# The five-head circuit keeps the logit difference but almost never picks the IO among the 50 names (under 10%
# of prompts): pushing S down does not say which name to say instead. With the gatherers added, the IO is the
# top name in over 95% of prompts, while the logit-difference faithfulness *falls* below 75%. Both statements are
# true: the circuit you find is the circuit **for your metric**. The logit difference isolates "IO, not S";
# "say a name from the context" is another job, done by the gatherers, and a metric
# that compares the IO with every name would find them.


# %% [markdown]
# ## Summary: gpt2-mini's IOI circuit, and how it differs from GPT-2 small's
#
# - **The algorithm.** Layer 0 puts both names in play at END (the name gatherers `L0H2`, `L0H3`, attending to
#   the IO and S1 equally). Layer 0 also moves the subject from its second mention to the article two tokens
#   later (the subject movers `L0H1`, the previous-token head, and `L0H3`). Four heads in layers 1 and 2
#   (`L1H0`, `L1H3` the induction head, `L2H1`, `L2H2`) read the subject from the article through their values
#   and write it **negatively** into the logits. The IO wins because S is pushed down.
# - **Against the paper** (all asserted above): there are no name movers (no head attends from END to the IO
#   more than to S1, and no head raises the IO's logit by 0.3) and no negative name movers (no head lowers it by
#   0.1). The heads that write the answer suppress the subject, which the paper's S-inhibition heads do only
#   indirectly, through the name movers' queries; here no query, key or pattern patch matters, only values. The
#   subject is detected as "the name just before the verb" by a previous-token head rather than by duplicate-token
#   and induction heads (the induction head is one of the suppressors instead). The last layer's attention does
#   almost nothing for the logit difference.
# - **Methods.** Activation patching by position traced the subject from S2 to the article to END; head
#   patching and path patching separated movers from writers; attribution patching agreed with activation
#   patching (correlation above 0.95) at the cost of one backward pass; mean ablation over the ABC distribution
#   gave a five-head circuit that is faithful (over 95%) and minimal (each head over 8%), for the logit
#   difference. Another metric would give another circuit.
