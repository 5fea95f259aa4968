# %% [markdown]
# # 1.3.2 Function vectors and steering with nnsight
#
# A few examples in a prompt (" hot: cold, big: small, fast:") tell a model which task to do. Where does
# the model keep that task while it reads the query? Todd et al., *Function Vectors in Large Language
# Models* (2023), found that a handful of attention heads carry it, and that the sum of their average
# outputs, a **function vector**, makes the model do the task on a prompt with no examples at all.
# Hendel et al., *In-Context Learning Creates Task Vectors* (2023), found the same in a whole hidden state.
# Turner et al., *Activation Addition* (2023), steer a model with the difference of its activations on a
# pair of contrasting prompts. All three are interventions on activations, and this section makes them
# with **nnsight**, the library built for such interventions on Hugging Face models, locally or on
# NDIF's servers.
#
# The model is the zoo's `gpt2-mini-truth` (`zoo/models/gpt2-mini-truth/CARD.md`; the architecture of
# `gpt2-mini`, trained on a corpus with more planted behaviours), exported to a Hugging Face
# `GPT2LMHeadModel` folder (`zoo.hf.export_hf`; the same logits as TransformerLens to 1e-4, checked below). Its training text plants four
# in-context tasks (`corpus.ICL_TASKS`): antonym, uppercase, successor and country. Antonym and uppercase
# share their inputs, so a prompt without examples (" fast:") is ambiguous, and only the examples say
# whether " slow" or " FAST" is meant. That is what makes a function vector measurable here: it must
# resolve the ambiguity.
#
# You will:
#
# 1. trace the model with nnsight: save and edit activations, batch prompts, compute attention
#    patterns, generate with an intervention; and see why the NDIF path (`remote=True`) fails offline;
# 2. extract a task-encoding hidden state from few-shot prompts, see why patching it into zero-shot prompts
#    fails in this model, and rescue them with a task vector instead;
# 3. measure every head's causal indirect effect on the task, find the function-vector head, build the
#    function vector and find where adding it rescues zero-shot prompts (your findings are graded against
#    the model);
# 4. steer fact recall with a vector from contrast pairs, and sweep its size against the damage it does
#    to the model's text (held-out loss).
#
# ARENA's version of this section runs GPT-J-6B on NDIF. Everything here runs on a laptop CPU: the same
# nnsight code, a model whose tasks we planted. Its bonus parts on large-model phenomena (function vectors
# that transfer across natural-language tasks, steering GPT-2-XL's sentiment) need a real pretrained model.
#
# Prerequisites: 1.2 (TransformerLens, hooks, activation patching ideas).

# %%
import json
import time
import warnings
from functools import partial  # noqa: F401 (the reference solutions use it, as may yours)

import einops  # noqa: F401 (the reference solutions use it, as may yours)
import plotly.express as px
import plotly.graph_objects as go
import torch
from jaxtyping import Float, Int
from nnsight import LanguageModel
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.hook_points import HookPoint  # noqa: F401 (the reference solutions use it)
from transformers import AutoModelForCausalLM

from course.plot import line
from solutions.chapter1_transformer_interp.function_vectors import (
    NDIFUnavailableError,
    ndif_reachable,
    remote_last_logits,
    shuffled_label_prompts,
)
from tests.checks.chapter1_transformer_interp.function_vectors import check  # noqa: F401 (used by the check cells the build adds)
from zoo import MODELS_DIR, corpus, load_model
from zoo.hf import export_hf

torch.manual_seed(0)
torch.set_grad_enabled(False)  # we only read and edit activations in this section
# The model is small (d_model 128): a second thread gains nothing, and on cores shared with other jobs it
# stalls (measured here: 13 s instead of 0.6 s for the TransformerLens comparison in Part 3).
torch.set_num_threads(1)
# nnsight 0.8 renamed LanguageModel to TransformersModel and warns on the old name, which NDIF's tutorials
# and most code online still use; both wrap the same Hugging Face model the same way.
warnings.filterwarnings("ignore", message="LanguageModel is deprecated")

# %% [markdown]
# ## Part 1: nnsight
#
# `LanguageModel` wraps a Hugging Face causal language model and its tokenizer. `dispatch=True` loads the
# weights now (without it they stay on PyTorch's "meta" device until the first trace, which is how NDIF
# users avoid downloading a 70B model they will only run remotely). Printing the model shows its module
# tree: every module in it can be read and edited.

# %%
model = LanguageModel(str(export_hf("gpt2-mini-truth")), dispatch=True)
tl_model = load_model("gpt2-mini-truth", device="cpu")  # the same weights in TransformerLens, to compare with
zoo_metrics = json.loads((MODELS_DIR / "gpt2-mini-truth" / "metrics.json").read_text())
metrics, metrics_heads = zoo_metrics["metrics"], zoo_metrics["heads"]
print(model)
n_layers, n_heads, d_model = model.config.n_layer, model.config.n_head, model.config.n_embd
d_head = d_model // n_heads
assert (n_layers, n_heads, d_model) == (4, 4, 128)

# %% [markdown]
# Where TransformerLens names hook points, nnsight names modules and reads their `.input` (the first
# argument) or `.output`. The ones used here, with their TransformerLens counterparts:
#
# | nnsight | TransformerLens | shape |
# |---|---|---|
# | `model.transformer.h[L].input` | `blocks.L.hook_resid_pre` | (batch, pos, d_model) |
# | `model.transformer.h[L].output` | `blocks.L.hook_resid_post` | (batch, pos, d_model) |
# | `model.transformer.h[L].attn.c_attn.output` | `hook_q`, `hook_k`, `hook_v` side by side | (batch, pos, 3 d_model) |
# | `model.transformer.h[L].attn.c_proj.input` | `blocks.L.attn.hook_z`, heads flattened | (batch, pos, n_heads d_head) |
# | `model.transformer.h[L].attn.output[0]` | `blocks.L.hook_attn_out` | (batch, pos, d_model) |
# | `model.lm_head.output` | the logits | (batch, pos, d_vocab) |
#
# Under transformers 5 a block's `.output` is a tensor; older versions returned a tuple, and code written
# for them indexes `.output[0]` (which here would be the first prompt). The attention module still
# returns a tuple (output, weights).
#
# Code inside `with model.trace(prompts):` runs while the model runs: each `.output` waits until the model
# gets there, and gives you the real tensor. What you want after the trace you mark with `.save()`; the
# rest is gone when the trace ends.

# %%
prompt = " hot: cold, big: small, fast:"
with model.trace(prompt):
    resid_1 = model.transformer.h[1].output.save()
    not_saved = model.transformer.h[3].output  # noqa: F841 (the point: no .save())
    scores = model.lm_head.output.save()
print(model.tokenizer.tokenize(prompt), "->", repr(model.tokenizer.decode(scores[0, -1].argmax())))
tl_logits, tl_cache = tl_model.run_with_cache(prompt)
assert resid_1.shape == (1, 11, d_model) and "not_saved" not in globals()
assert model.tokenizer.decode(scores[0, -1].argmax()) == " slow"
# The export is exact: nnsight on Hugging Face and TransformerLens agree.
assert torch.allclose(scores, tl_logits, atol=1e-4) and torch.allclose(resid_1, tl_cache["resid_post", 1], atol=1e-4)


# %% [exercise] last_position_states difficulty=1 importance=4 minutes=8
def last_position_states(
    model: LanguageModel, prompts: list[str], layer: int
) -> tuple[Float[Tensor, "batch d_model"], Float[Tensor, "batch d_vocab"]]:
    """The residual stream after block `layer` and the next-token logits, at each prompt's last
    position, from one trace."""
    raise NotImplementedError()


# %% [hint]
# Which module's output is the residual stream after a block, and which holds the logits? Prompts of
# different lengths are padded on the left, so where is every prompt's last token?

# %% [hint]
# Slice inside the trace and save the slices: `model.transformer.h[layer].output[:, -1].save()`.

# %% [markdown]
# ### Try it: ask in the wrong order
#
# Each `.output` waits for the model to reach that module. Before running the cell, predict what happens
# when a trace asks for block 2's output before block 1's.

# %%
try:
    with model.trace(prompt):
        later = model.transformer.h[2].output.save()
        earlier = model.transformer.h[1].output.save()
    error_name = None
except Exception as error:  # noqa: BLE001 - the point of the cell
    error_name = type(error).__name__
    print(error_name, str(error).splitlines()[0])
assert error_name == "OutOfOrderError"

# %% [markdown]
# The model had already run past block 1 when the trace asked for it, and nnsight cannot go back. Ask for
# modules in the order the model runs them; to read the same module twice, save it once.
#
# ### Batches and invokes
#
# A list of prompts is one batch. Prompts of different lengths are padded on the left, and nnsight 0.8
# passes position ids that start at each prompt's first real token. (Plain Hugging Face GPT-2 does not:
# left-padded prompts there get shifted positions unless you pass `position_ids`.) Several `tracer.invoke`
# blocks in one trace are also one batch, each seeing only its own rows.

# %%
mixed = [" fast:", " hot: cold, big: small, fast:", " Paris: France, Tokyo:"]
_, batch_logits = last_position_states(model, mixed, 0)
one_by_one = torch.cat([last_position_states(model, [p], 0)[1] for p in mixed])
plain_hf = AutoModelForCausalLM.from_pretrained(export_hf("gpt2-mini-truth"))
shifted = plain_hf(**model.tokenizer(mixed, return_tensors="pt", padding=True)).logits[:, -1]
with model.trace() as batch:
    with batch.invoke(mixed[:2]):
        first_rows = model.lm_head.output[:, -1].save()
    with batch.invoke(mixed[2:]):
        last_row = model.lm_head.output[:, -1].save()
print([model.tokenizer.decode(i) for i in batch_logits.argmax(-1)])
assert torch.allclose(batch_logits, one_by_one, atol=1e-4)
assert not torch.allclose(shifted[0], one_by_one[0], atol=1e-2)  # plain HF: " fast:" read at shifted positions
assert torch.allclose(torch.cat([first_rows, last_row]), one_by_one, atol=1e-4)

# %% [markdown]
# ### Editing
#
# Assigning to a slice of an `.output` (or `.input`) edits the tensor the model is about to use, so
# everything downstream sees the change. `c_proj.input` is the heads' z side by side, head 0 first: zeroing
# a slice of it removes heads from that layer's attention output. Before running the next cell, guess
# which layer's heads the antonym task needs most at the last position.

# %%
few_shot, few_shot_answers = corpus.icl_prompts("antonym", 64, 5, seed=0)
few_shot_ids = torch.tensor([corpus.single_token_id(model.tokenizer, a) for a in few_shot_answers])


def accuracy(logits: Float[Tensor, "batch d_vocab"], answer_ids: Int[Tensor, " batch"]) -> float:
    return (logits.argmax(-1) == answer_ids).float().mean().item()


ablated_accuracy = []
for layer in range(n_layers):
    with model.trace(few_shot):
        model.transformer.h[layer].attn.c_proj.input[:, -1] = 0  # every head of this layer, last position
        after_ablation = model.lm_head.output[:, -1].save()
    ablated_accuracy.append(accuracy(after_ablation, few_shot_ids))
clean_accuracy = accuracy(last_position_states(model, few_shot, 0)[1], few_shot_ids)
print(f"5-shot antonym accuracy {clean_accuracy:.2f}; with one layer's heads zeroed at the last position:",
      [round(a, 2) for a in ablated_accuracy])  # fmt: skip
assert abs(clean_accuracy - metrics["icl_antonym_5shot_accuracy"]["value"]) < 0.1
assert ablated_accuracy[0] < 0.1 and min(ablated_accuracy[1:]) > 0.85

# %% [markdown]
# At the last position only layer 0's heads matter: without them no prompt gets its antonym (under 10%),
# while without any one later layer's heads over 85% still do. Part 2 shows what layer 0 brings there.
#
# ### Attention patterns
#
# With sdpa attention (the default), Hugging Face GPT-2 never forms the attention probabilities, so there
# is no module whose output is the pattern. Compute it from what the block does write: `c_attn` projects
# each position to its query, key and value, side by side.


# %% [exercise] attention_patterns difficulty=3 importance=3 minutes=15
def attention_patterns(model: LanguageModel, prompts: list[str], layer: int) -> Float[Tensor, "batch head query key"]:
    """Attention probabilities of every head of block `layer`, computed from the queries and keys that
    its c_attn writes. The prompts have equal token lengths, so there is no padding to mask."""
    raise NotImplementedError()


# %% [hint]
# c_attn's output holds three d_model-wide blocks (queries, keys, values), each made of n_heads chunks of
# d_head. What scale does GPT-2 apply to the scores, and which keys may a query see?

# %% [hint]
# Split the last axis into three with `Tensor.split(d_model, dim=-1)`, then
# `einops.rearrange(x, "b pos (head d_head) -> b head pos d_head", head=n_heads)`; scores are
# `q @ k.transpose(-1, -2) / sqrt(d_head)`, masked above the diagonal with -inf before the softmax.

# %%
patterns = attention_patterns(model, few_shot[:8], 1)
_, pattern_cache = tl_model.run_with_cache(few_shot[:8], names_filter="blocks.1.attn.hook_pattern")
assert torch.allclose(patterns, pattern_cache["pattern", 1], atol=1e-4)  # two libraries, one model
fig = px.imshow(patterns[0].numpy(), facet_col=0, color_continuous_scale="Blues",
                labels=dict(x="key position", y="query position"), title="layer 1 attention, one antonym prompt")  # fmt: skip
for head, annotation in enumerate(fig.layout.annotations):
    annotation.text = f"L1H{head}"
fig.show()

# %% [markdown]
# ### Generation
#
# `model.generate(...)` traces a whole generation. The model runs once per new token, so each module runs
# several times; `for step in tracer.iter[:n]` walks through the first `n` of those runs, and code in the
# loop applies at each. With the key-value cache, the first run sees the whole prompt and each later run
# only the newest token. `tracer.result` is the generated sequence, prompt included.

# %%
with model.generate(prompt, max_new_tokens=6, do_sample=False) as tracer:
    seen_lengths = [].save()
    for _ in tracer.iter[:6]:
        seen_lengths.append(model.transformer.h[0].output.shape[1])
    generated = tracer.result.save()
print(repr(model.tokenizer.decode(generated[0, 1:])), seen_lengths)
assert seen_lengths == [11, 1, 1, 1, 1, 1]
new_tokens = [model.tokenizer.decode(token) for token in generated[0, 11:]]
# It answers, then writes an example of its own: a word and its antonym.
assert new_tokens[:2] == [" slow", ","] and corpus.ANTONYMS[new_tokens[2].strip()] == new_tokens[4].strip()

# %% [markdown]
# ### NDIF: the same code on a remote model
#
# NDIF (the National Deep Inference Fabric) runs nnsight traces on large models hosted on its servers:
# `model.trace(prompt, remote=True)` sends your intervention code there, runs it next to the model, and
# sends back only what you saved. Online, that is how you would run this section on GPT-J-6B or a 70B
# Llama: create the model from its hub id without `dispatch=True` (only the config is downloaded; the
# weights stay on the meta device), set an NDIF API key once (`nnsight.CONFIG.set_default_api_key(key)`,
# or the `NDIF_API_KEY` environment variable; keys come from ndif.us), and add `remote=True`.
# `nnsight.ndif.status()` lists the models NDIF is serving. NDIF identifies models by their hub id, so a
# local folder can never run there.
#
# `remote_last_logits` wraps that path. Offline it fails within seconds (`ndif_reachable` checks that
# NDIF answers before anything is downloaded, instead of waiting out the hub's retries) with an error that
# names the local alternative: exactly what this section does.

# %%
print("NDIF reachable from here:", ndif_reachable())
start = time.perf_counter()
try:
    remote_logits = remote_last_logits("EleutherAI/gpt-j-6b", [" hot: cold, big: small, fast:"])
    print("ran on NDIF:", remote_logits.shape)
except NDIFUnavailableError as error:
    print(f"{type(error).__name__}: {error}")
    assert "export_hf('gpt2-mini-truth')" in str(error) and time.perf_counter() - start < 10
try:
    with model.trace(prompt, remote=True):  # a local folder has no hub id for NDIF to load
        model.lm_head.output.save()
    local_remote_error = None
except Exception as error:  # noqa: BLE001 - the point of the cell
    local_remote_error = type(error).__name__
print("remote=True on the local export:", local_remote_error)
assert local_remote_error is not None


# %% [markdown]
# ## Part 2: task-encoding hidden states
#
# The in-context tasks, with five examples each, and how often the model gets them right (the zoo's
# `metrics.json` records the same on 200 prompts):

# %%
icl_accuracy = {}
for task in corpus.ICL_TASKS:
    task_prompts, task_answers = corpus.icl_prompts(task, 64, 5, seed=0)
    task_ids = torch.tensor([corpus.single_token_id(model.tokenizer, a) for a in task_answers])
    icl_accuracy[task] = accuracy(last_position_states(model, task_prompts, 0)[1], task_ids)
    print(f"{task:10} {icl_accuracy[task]:.2f}  {task_prompts[0]!r} -> {task_answers[0]!r}")
assert all(abs(icl_accuracy[t] - metrics[f"icl_{t}_5shot_accuracy"]["value"]) < 0.1 for t in corpus.ICL_TASKS)
assert min(icl_accuracy.values()) > 0.9

# %% [markdown]
# Without examples, " fast:" could ask for " slow" or for " FAST". The zero-shot set below is every
# antonym word once; where do the model's guesses go?

# %%
words = sorted(corpus.ANTONYMS)
zero_shot = [f" {word}:" for word in words]
antonym_ids = torch.tensor([corpus.single_token_id(model.tokenizer, " " + corpus.ANTONYMS[w]) for w in words])
uppercase_ids = torch.tensor([corpus.single_token_id(model.tokenizer, " " + w.upper()) for w in words])
zero_shot_logits = last_position_states(model, zero_shot, 0)[1]
zero_shot_antonym = accuracy(zero_shot_logits, antonym_ids)
zero_shot_uppercase = accuracy(zero_shot_logits, uppercase_ids)
print(f"zero-shot: antonym {zero_shot_antonym:.2f}, uppercase {zero_shot_uppercase:.2f}")
guesses = [model.tokenizer.decode(i).strip() for i in zero_shot_logits.argmax(-1)]
print("some guesses:", guesses[:10])
assert abs(zero_shot_antonym - metrics["icl_antonym_0shot_accuracy"]["value"]) < 0.15
assert 0.3 < zero_shot_antonym < 0.7 and zero_shot_uppercase < 0.2 and zero_shot_antonym + zero_shot_uppercase < 0.8
assert any(g in corpus.COUNTRIES for g in guesses) and any(g.isdigit() for g in guesses)

# %% [markdown]
# About half the zero-shot prompts get their antonym, under a fifth their uppercase, and the rest
# something else (countries, numbers): without examples the model does not know which task is asked.
#
# Hendel et al. (2023) read the task off the residual stream at the last position of few-shot prompts:
# averaged over prompts of one task, that hidden state, patched into a zero-shot prompt at the same layer,
# made their models do the task. Everything later layers know about the examples passes through the
# residual stream at that position; the question is in what form.


# %% [exercise] task_hidden_state difficulty=1 importance=3 minutes=5
def task_hidden_state(model: LanguageModel, prompts: list[str], layer: int) -> Float[Tensor, " d_model"]:
    """The residual stream after block `layer` at the last position, averaged over the prompts."""
    raise NotImplementedError()


# %% [hint]
# One trace, one slice, one mean: over which axis?


# %% [exercise] patched_logits difficulty=2 importance=4 minutes=8
def patched_logits(
    model: LanguageModel, prompts: list[str], hidden: Float[Tensor, " d_model"], layer: int
) -> Float[Tensor, "batch d_vocab"]:
    """Next-token logits when the residual stream after block `layer` at the last position is replaced
    by `hidden`."""
    raise NotImplementedError()


# %% [hint]
# Replace, don't add, and only at the last position.

# %% [hint]
# Assign to `model.transformer.h[layer].output[:, -1]` inside the trace, then save the last position's logits.

# %%
hidden_antonym = {layer: task_hidden_state(model, few_shot, layer) for layer in range(n_layers)}
replaced = [accuracy(patched_logits(model, zero_shot, hidden_antonym[l], l), antonym_ids) for l in range(n_layers)]
print("zero-shot antonym accuracy with the antonym state patched in after each block:", replaced)
# Where the previous-token head looks from the last position (the ":"): at the query word before it.
on_query = attention_patterns(model, few_shot, 0)[:, 2, -1, -2].mean().item()
print(f"L0H2's attention from the last position to the query word: {on_query:.2f}")
assert max(replaced) < 0.1 and metrics_heads["previous_token"] == "L0H2" and on_query > 0.9

# %% [markdown]
# Replacing the hidden state destroys the zero-shot prompts, after every block (under 10% right). The
# ablation in Part 1 pointed at why: layer 0's heads at the last position are needed, and one of them,
# `L0H2` (the model's previous-token head), puts over 90% of its attention there on the query word. The last
# position holds the query as well as the task, and a mean over 64 few-shot prompts holds the task and an
# average of 64 queries: patching it in replaces " fast" by that average. The models Hendel et al. studied
# survived the swap; this one does not.
#
# So keep the prompt's own state and *add* only what the examples change: the **task vector** is the
# few-shot prompts' mean state minus the zero-shot prompts' mean state, at the same layer.


# %% [exercise] logits_with_added_vector difficulty=2 importance=4 minutes=10
def logits_with_added_vector(
    model: LanguageModel,
    prompts: list[str],
    vector: Float[Tensor, " d_model"],
    layer: int,
    position: int | None = -1,
) -> Float[Tensor, "batch d_vocab"]:
    """Next-token logits when `vector` is added to the residual stream after block `layer`, at one
    position (by default the last) or, with position=None, at every position."""
    raise NotImplementedError()


# %% [hint]
# Add in place to the block's output; the logits you return are always the last position's.

# %% [hint]
# `model.transformer.h[layer].output[:, position] += vector`, or `[:]` for every position.

# %%
uppercase_few_shot, _ = corpus.icl_prompts("uppercase", 64, 5, seed=0)
task_vectors = {l: hidden_antonym[l] - task_hidden_state(model, zero_shot, l) for l in range(n_layers)}
with_task_vector = [
    accuracy(logits_with_added_vector(model, zero_shot, task_vectors[l], l), antonym_ids) for l in range(n_layers)
]
line({"antonym task vector": with_task_vector, "no vector": [zero_shot_antonym] * n_layers},
     title="zero-shot antonym accuracy with the task vector added after each block", xaxis="layer",
     yaxis="accuracy").show()  # fmt: skip
print("zero-shot antonym accuracy with the task vector after each block:", [round(a, 2) for a in with_task_vector])

# %% [finding] best_task_vector_layer difficulty=2 importance=4 minutes=5
# After which block (0 to 3) does adding the antonym task vector rescue the most zero-shot prompts?
best_task_vector_layer = ...

# %% [hint]
# Read it off the sweep above: the layer with the highest accuracy, not the first one above the baseline.

# %% [solution]
best_task_vector_layer = int(torch.tensor(with_task_vector).argmax())

# %%
ranked_layers = sorted(with_task_vector, reverse=True)
assert with_task_vector[best_task_vector_layer] > 0.9 and ranked_layers[0] > ranked_layers[1] + 0.05
assert with_task_vector[0] < zero_shot_antonym + 0.15
assert int(torch.tensor(with_task_vector).argmax()) == 2 and with_task_vector[3] < with_task_vector[2]

# %% [markdown]
# The task vector turns about half right into over 90% right after block 2; after block 0 it barely helps
# (less than 0.15 above no vector; Part 3 comes back to this), and after block 3 it helps less than after
# block 2.
#
# Two traces per experiment is fine, but nnsight can do both in one: two invokes, one of which reads
# what the other writes. Invokes run as one batch and each resumes when the model reaches what it asked
# for, so nothing says the read happens before the write: `tracer.barrier(2)` is a meeting point that
# both invokes call, and neither goes past it until both have arrived.


# %% [exercise] task_vector_in_one_trace difficulty=3 importance=3 minutes=15
def task_vector_in_one_trace(
    model: LanguageModel, few_shot_prompts: list[str], zero_shot_prompts: list[str], layer: int
) -> tuple[Float[Tensor, "n_few d_vocab"], Float[Tensor, "n_zero d_vocab"]]:
    """One trace, two invokes: the few-shot prompts' next-token logits, and the zero-shot prompts' with
    the task vector added after block `layer` at the last position. The task vector is the few-shot
    prompts' mean hidden state there minus the zero-shot prompts' own mean."""
    raise NotImplementedError()


# %% [hint]
# Which invoke must read first, and where must each invoke wait for the other? Inside an invoke,
# `.output` holds only that invoke's rows, so each mean is over one set of prompts.

# %% [hint]
# Create `barrier = tracer.barrier(2)` before the invokes. Few-shot invoke: compute the mean hidden state,
# call `barrier()`, save the logits. Zero-shot invoke: call `barrier()`, then add the few-shot mean minus
# this invoke's own mean to the block's output at the last position, and save the logits.

# %%
few_logits, zero_logits = task_vector_in_one_trace(model, few_shot, zero_shot, best_task_vector_layer)
assert accuracy(few_logits, few_shot_ids) == clean_accuracy
assert accuracy(zero_logits, antonym_ids) == with_task_vector[best_task_vector_layer]


# %% [markdown]
# ## Part 3: function vectors
#
# A task vector is a whole hidden state's worth of difference. Todd et al. (2023) asked which components
# put the *task* there, with a **causal indirect effect** (CIE) per head:
#
# 1. run clean few-shot prompts and average each head's output at the last position (`mean_z`);
# 2. corrupt other few-shot prompts so that they no longer show the task, and check the model now fails;
# 3. for each head alone, patch its clean mean into the corrupted run at the last position, and measure how
#    much the correct answer's probability rises.
#
# A head whose mean output alone restores the answer carries the task. The **function vector** is the sum
# of the top heads' mean outputs (their z times their slice of W_O), added to the residual stream.
#
# Todd et al. corrupt a prompt by shuffling its example answers among the inputs (" hot: small, big: cold,
# fast:"). Try it here first:

# %%
N_CLEAN, N_CORRUPTED = 48, 32  # the graded findings use these prompts
clean_prompts, _ = corpus.icl_prompts("antonym", N_CLEAN, 5, seed=1)
fv_prompts, fv_answers = corpus.icl_prompts("antonym", N_CORRUPTED, 5, seed=2)
fv_answer_ids = torch.tensor([corpus.single_token_id(model.tokenizer, a) for a in fv_answers])
shuffled = shuffled_label_prompts(fv_prompts, seed=1)
print(repr(fv_prompts[0]), "->", repr(shuffled[0]))
shuffled_accuracy = accuracy(last_position_states(model, shuffled, 0)[1], fv_answer_ids)
print(f"antonym accuracy with shuffled labels: {shuffled_accuracy:.2f}")
assert shuffled_accuracy > 0.9

# %% [markdown]
# The shuffle does not corrupt anything here: the model still gives the antonym over 90% of the time. In
# this world the answers' *kind* is enough to name the task (lowercase words can only mean antonyms,
# capitals uppercase, numbers successor, countries country), and the model knows the antonyms themselves,
# so wrong pairs change nothing. A corruption must remove the task, not the pairs: here, the same queries after examples
# of the *other* task on the same inputs (" hot: HOT, big: BIG, fast:"). The model then answers " FAST",
# and we measure how much each head restores " slow".

# %%
corrupted_prompts, _ = corpus.icl_prompts("uppercase", N_CORRUPTED, 5, seed=2)
queries = [p.split(",")[-1].strip(" :") for p in corrupted_prompts]
corrupted_ids = torch.tensor([corpus.single_token_id(model.tokenizer, " " + corpus.ANTONYMS[q]) for q in queries])
corrupted_accuracy = accuracy(last_position_states(model, corrupted_prompts, 0)[1], corrupted_ids)
uppercase_answer_ids = torch.tensor([corpus.single_token_id(model.tokenizer, " " + q.upper()) for q in queries])
corrupted_uppercase = accuracy(last_position_states(model, corrupted_prompts, 0)[1], uppercase_answer_ids)
print(repr(corrupted_prompts[0]), f"antonym accuracy {corrupted_accuracy:.2f}, uppercase {corrupted_uppercase:.2f}")
assert corrupted_accuracy < 0.05 and corrupted_uppercase > 0.9


# %% [exercise] mean_head_z difficulty=2 importance=4 minutes=10
def mean_head_z(model: LanguageModel, prompts: list[str]) -> Float[Tensor, "layer head d_head"]:
    """Each head's z (its part of c_proj's input, before W_O) at the last position, averaged over the
    prompts."""
    raise NotImplementedError()


# %% [hint]
# Read every layer in one trace, in the order the model runs them. How is c_proj's input laid out among
# the heads?

# %% [hint]
# Stack `block.attn.c_proj.input[:, -1].mean(0)` over `model.transformer.h` inside the trace and save the
# stack; after the trace, `einops.rearrange(z, "layer (head d_head) -> layer head d_head", head=n_heads)`.


# %% [exercise] head_indirect_effects difficulty=3 importance=5 minutes=25
def head_indirect_effects(
    model: LanguageModel,
    corrupted_prompts: list[str],
    answer_ids: Int[Tensor, " batch"],
    mean_z: Float[Tensor, "layer head d_head"],
) -> Float[Tensor, "layer head"]:
    """For every head, one at a time: the mean rise in the answer's probability when the head's z at
    the last position of the corrupted prompts is replaced by its clean mean (mean_z)."""
    raise NotImplementedError()


# %% [hint]
# A forward pass per head works (17 traces here), but one trace can do it all: how could a single batch
# hold the unpatched run and one patched copy of the prompts for every head?

# %% [hint]
# Repeat the prompts 1 + n_layers * n_heads times. Copy 0 stays unpatched; in copy 1 + layer * n_heads +
# head, assign `mean_z[layer, head]` to rows of that copy, position -1, columns head * d_head to
# (head + 1) * d_head of `c_proj.input`. Save the softmax of the last logits; pick each row's answer.

# %%
mean_z = mean_head_z(model, clean_prompts)
start = time.perf_counter()
effects = head_indirect_effects(model, corrupted_prompts, corrupted_ids, mean_z)
print(f"{time.perf_counter() - start:.2f} s for {n_layers * n_heads + 1} runs of {N_CORRUPTED} prompts")
fig = px.imshow(effects.numpy(), color_continuous_scale="RdBu", color_continuous_midpoint=0.0,
                labels=dict(x="head", y="layer", color="CIE"),
                title="causal indirect effect of each head: uppercase examples -> antonym answer")  # fmt: skip
fig.show()

# %% [markdown]
# The same measurement in TransformerLens is a hook on `hook_z`, whose head axis is explicit. Two
# libraries, one set of weights: the effects must agree.


# %% [exercise] head_indirect_effects_tl difficulty=2 importance=2 minutes=10
def head_indirect_effects_tl(
    model: HookedTransformer,
    corrupted_prompts: list[str],
    answer_ids: Int[Tensor, " batch"],
    mean_z: Float[Tensor, "layer head d_head"],
) -> Float[Tensor, "layer head"]:
    """head_indirect_effects computed with TransformerLens hooks on hook_z instead of nnsight."""
    raise NotImplementedError()


# %% [hint]
# A hook on a layer's `hook_z` receives z as (batch, pos, head, d_head): what do you overwrite,
# and what do you return? The baseline is a run without hooks.

# %% [hint]
# `functools.partial(patch, layer=layer, head=head)` with `def patch(z, hook, layer, head)` that sets
# `z[:, -1, head] = mean_z[layer, head]` and returns z; `model.run_with_hooks(tokens, fwd_hooks=[...])`.

# %%
tl_effects = head_indirect_effects_tl(tl_model, corrupted_prompts, corrupted_ids, mean_z)
print(f"largest difference between the libraries: {(tl_effects - effects).abs().max():.1e}")
assert torch.allclose(tl_effects, effects, atol=1e-5)

# %% [finding] fv_heads difficulty=3 importance=5 minutes=10
# The heads whose causal indirect effect is above 0.1 (the antonym's probability rises by more than 0.1
# when that head alone is patched), as a set of names "L{layer}H{head}".
fv_heads = ...

# %% [hint]
# Look at all 16 effects in the table, not each layer's best, and mind the sign: a head whose patch
# lowers the answer's probability does not carry the task.

# %% [hint]
# `(effects > 0.1).nonzero()` lists (layer, head) pairs.

# %% [solution]
fv_heads = {f"L{layer}H{head}" for layer, head in (effects > 0.1).nonzero().tolist()}

# %%
# From the table itself, so that this cell does not depend on your answer.
ranked = effects.flatten().sort(descending=True)
fv_head = f"L{ranked.indices[0] // n_heads}H{ranked.indices[0] % n_heads}"
print(f"{fv_head}: {ranked.values[0]:.3f}; the next largest effect: {ranked.values[1]:.4f}")
assert fv_head == "L0H3" and ranked.values[0] > 0.9 and ranked.values[1] < 0.05
assert metrics_heads["previous_token"] == "L0H2"

# %% [markdown]
# One head carries the task. Patching `L0H3`'s clean mean alone raises the antonym's probability by more
# than 0.9; no other head reaches 0.05. It is a layer-0 head, and not the previous-token head (`L0H2`, which
# brings the query word to the last position): one layer of attention over the examples can tell antonym
# prompts from uppercase ones here, since the answers' kind shows in the tokens themselves.


# %% [exercise] function_vector difficulty=2 importance=5 minutes=10
def function_vector(
    model: LanguageModel, mean_z: Float[Tensor, "layer head d_head"], heads: list[str]
) -> Float[Tensor, " d_model"]:
    """The sum over `heads` (names "L{layer}H{head}") of each head's mean output in the residual
    stream: its mean z times its rows of c_proj's weight (c_proj's bias belongs to no head)."""
    raise NotImplementedError()


# %% [hint]
# c_proj is a Hugging Face Conv1D: its weight is (in, out), used as x @ W. Which of its rows does head h's
# z meet? Weights can be read outside a trace.

# %% [hint]
# `model.transformer.h[layer].attn.c_proj.weight[head * d_head : (head + 1) * d_head]` is head h's W_O;
# add up `mean_z[layer, head] @ W_O` over the heads.

# %%
fv = function_vector(model, mean_z, [fv_head])
uppercase_fv = function_vector(model, mean_head_z(model, uppercase_few_shot), [fv_head])
fv_cosine = torch.cosine_similarity(fv, uppercase_fv, dim=0).item()
print(f"the function vector's norm: {fv.norm():.2f}; cosine with the same head's mean output on uppercase "
      f"prompts: {fv_cosine:.2f}")  # fmt: skip
assert abs(fv_cosine) < 0.3  # the head writes nearly orthogonal things for the two tasks

# %% [markdown]
# Where should the function vector go? `logits_with_added_vector` adds after a whole block. A head writes
# into the residual stream *inside* its block, before the block's MLP reads it: that place is the
# attention module's output, `model.transformer.h[L].attn.output[0]` (the module returns a tuple).

# %% [finding] best_fv_site difficulty=3 importance=4 minutes=15
# Add the function vector `fv` (coefficient 1) at the last position of the zero-shot prompts, at each of
# eight places: after block L's attention ("attn0" ... "attn3") and after the whole block ("block0" ...
# "block3"). Where does it rescue the most zero-shot antonym prompts? Assign the place's name.
best_fv_site = ...

# %% [hint]
# Write the attention-output version of logits_with_added_vector yourself; remember that the attention
# module returns a tuple, and that the logits to read are still the last position's.

# %% [hint]
# `model.transformer.h[layer].attn.output[0][:, -1] += fv` inside a trace; compare all eight accuracies.

# %% [solution]
fv_sites = {}
for layer in range(n_layers):
    with model.trace(zero_shot):
        model.transformer.h[layer].attn.output[0][:, -1] += fv
        at_attention = model.lm_head.output[:, -1].save()
    fv_sites[f"attn{layer}"] = accuracy(at_attention, antonym_ids)
    fv_sites[f"block{layer}"] = accuracy(logits_with_added_vector(model, zero_shot, fv, layer), antonym_ids)
best_fv_site = max(fv_sites, key=fv_sites.get)


# %%
# Re-measured here, so that this cell does not depend on how you found the answer.
def zero_shot_accuracy_with(vector: Float[Tensor, " d_model"], site: str) -> float:
    """Zero-shot antonym accuracy with `vector` added at the last position, after block L's attention
    ("attn{L}") or after the whole block ("block{L}")."""
    block = model.transformer.h[int(site[-1])]
    with model.trace(zero_shot):
        stream = block.attn.output[0] if site.startswith("attn") else block.output
        stream[:, -1] += vector
        next_token = model.lm_head.output[:, -1].save()
    return accuracy(next_token, antonym_ids)


sites = [f"{kind}{layer}" for layer in range(n_layers) for kind in ("attn", "block")]
site_accuracy = {site: zero_shot_accuracy_with(fv, site) for site in sites}
random_vector = torch.randn(d_model)
random_vector = random_vector / random_vector.norm() * fv.norm()
random_accuracy = zero_shot_accuracy_with(random_vector, "attn0")
print({site: round(a, 2) for site, a in site_accuracy.items()})
print(f"zero-shot antonym accuracy {zero_shot_antonym:.2f} -> {site_accuracy['attn0']:.2f} with the function vector "
      f"after block 0's attention; a random vector of the same norm there: {random_accuracy:.2f}")  # fmt: skip
head_site = f"attn{fv_head[1]}"  # where the head writes
assert site_accuracy[head_site] > max(zero_shot_antonym + 0.1, 0.6)
assert max(a for site, a in site_accuracy.items() if site != head_site) < zero_shot_antonym + 0.05
assert random_accuracy < zero_shot_antonym + 0.05 and site_accuracy[head_site] < max(with_task_vector) - 0.15

# %% [markdown]
# The function vector works only where its head writes. Added after block 0's attention, it raises the
# zero-shot antonym accuracy by more than 0.1 (from about half to over 0.6); added anywhere else, even
# right after block 0's MLP, it changes the accuracy by less than 0.05, and so does a random vector of the
# same norm at the head's own place. "attn0" and "block0" differ only in whether block 0's MLP sees the
# vector, so the whole effect goes through that MLP: later layers use the MLP's reading of `L0H3`'s output,
# not the output itself (which is also why Part 2's task vector did little after block 0). The single
# head's vector rescues fewer prompts than the whole-state task vector (by more than 0.15): in a model this
# small, the function vector is where the task enters, not the form later layers read it in.
#
# ### Generating with a task vector
#
# Todd et al. add their vector once, at the prompt's last position, and let the model generate. In a
# generation trace that is the first step only: later steps run one new token each, and the prompt's
# positions come from the cache, already changed. The vector that works best here is Part 2's task vector;
# pointed from uppercase to antonym (the antonym prompts' mean state minus the uppercase prompts'), can it
# make the model answer uppercase examples with antonyms, and what does it write next?


# %% [exercise] generate_with_vector difficulty=3 importance=3 minutes=15
def generate_with_vector(
    model: LanguageModel, prompts: list[str], vector: Float[Tensor, " d_model"], layer: int, max_new_tokens: int
) -> Int[Tensor, "batch max_new_tokens"]:
    """Greedy continuations of the prompts, `max_new_tokens` long, with `vector` added to the residual
    stream after block `layer` at each prompt's last position only (the first step of generation)."""
    raise NotImplementedError()


# %% [hint]
# What does each step of a generation trace see, and at which step is the prompt's last position there
# to edit? Make sure the model generates exactly max_new_tokens, and return only those.

# %% [hint]
# `model.generate(prompts, max_new_tokens=n, min_new_tokens=n, do_sample=False)`; loop
# `for step in tracer.iter[:n]` and edit only when `step == 0`; save `tracer.result` and keep its last n
# columns.

# %%
to_antonym = hidden_antonym[best_task_vector_layer] - task_hidden_state(
    model, uppercase_few_shot, best_task_vector_layer
)
demo = corrupted_prompts[:3]
plain = generate_with_vector(model, demo, torch.zeros(d_model), best_task_vector_layer, 6)
steered = generate_with_vector(model, demo, to_antonym, best_task_vector_layer, 6)
for p, a, b in zip(demo, plain, steered):
    print(
        f"{p[-30:]!r}\n   without: {model.tokenizer.decode(a)!r}\n   with the task vector: {model.tokenizer.decode(b)!r}"
    )
all_plain = generate_with_vector(model, corrupted_prompts, torch.zeros(d_model), best_task_vector_layer, 6)
all_steered = generate_with_vector(model, corrupted_prompts, to_antonym, best_task_vector_layer, 6)


def invented_example_kind(tokens: Int[Tensor, " 6"]) -> str:
    """Whether the example the model writes after its answer (answer, word: target,) is an antonym pair."""
    word, target = (model.tokenizer.decode(tokens[i]).strip() for i in (2, 4))
    return "antonym" if corpus.ANTONYMS.get(word) == target else "uppercase" if word.upper() == target else "other"


steered_kinds = [invented_example_kind(row) for row in all_steered]
first_antonym = (all_steered[:, 0] == corrupted_ids).float().mean().item()
print(f"first token the antonym: {first_antonym:.2f} with the vector, "
      f"{(all_plain[:, 0] == corrupted_ids).float().mean():.2f} without; the model's next example with the "
      f"vector: {steered_kinds.count('antonym')} antonym, {steered_kinds.count('uppercase')} uppercase pairs")  # fmt: skip
assert (all_plain[:, 0] == uppercase_answer_ids).float().mean() > 0.9 and first_antonym > 0.9
assert steered_kinds.count("uppercase") > steered_kinds.count("antonym") > 0

# %% [markdown]
# Added once, the vector overrides five uppercase examples: over 90% of the prompts now answer with the
# antonym. What the model writes next is another example pair, and there the examples win again: more of
# its invented pairs are uppercase than antonym (though some are antonym pairs). The vector changed the
# answer at one position; the examples are still in the context for every later token to read.


# %% [markdown]
# ## Part 4: steering with contrast pairs
#
# Turner et al. (2023) steer a model by adding the difference of its activations on two contrasting
# prompts ("Love" minus "Hate") to the residual stream of a new prompt, scaled by a coefficient; averaging
# the difference over many pairs (Rimsky et al. 2023, contrastive activation addition) makes the vector
# less noisy. Here the target is a planted fact: "Paris is in" -> " France". Contrast pairs of a Japanese
# and a non-Japanese city give a "Japan" direction; added at every position, it should move the model's
# answer to " Japan". The price is fluency: the same vector is added to every other text too, so we track
# the held-out loss on the test split of the story corpus as the coefficient grows.


# %% [exercise] contrast_vector difficulty=1 importance=4 minutes=8
def contrast_vector(
    model: LanguageModel, positive_prompts: list[str], negative_prompts: list[str], layer: int
) -> Float[Tensor, " d_model"]:
    """The mean over contrast pairs (positive_prompts[i], negative_prompts[i]) of the difference of
    their residual streams after block `layer`, at the last position."""
    raise NotImplementedError()


# %% [hint]
# One hidden state per prompt at the last position, positive minus negative pair by pair, then the mean.


# %% [exercise] steered_loss difficulty=2 importance=4 minutes=10
def steered_loss(
    model: LanguageModel,
    tokens: Int[Tensor, "batch pos"],
    vector: Float[Tensor, " d_model"],
    layer: int,
    coefficient: float,
) -> float:
    """Mean next-token loss on `tokens` when coefficient * vector is added to the residual stream after
    block `layer` at every position."""
    raise NotImplementedError()


# %% [hint]
# nnsight takes a tensor of token ids as well as strings. Which logits predict which token?

# %% [hint]
# Add `coefficient * vector` to `model.transformer.h[layer].output[:]`, save the logits, then
# `cross_entropy(logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten())`.

# %%
cities = sorted(corpus.CITY_COUNTRY)
japanese = [c for c in cities if corpus.CITY_COUNTRY[c] == "Japan"]
others = [c for c in cities if corpus.CITY_COUNTRY[c] != "Japan"]
# Every Japanese city against every other city: 3 x 21 pairs.
positive = [f"{j} is in" for j in japanese for _ in others]
negative = [f"{o} is in" for _ in japanese for o in others]
STEER_LAYER = 2
japan = contrast_vector(model, positive, negative, STEER_LAYER)
country_ids = torch.tensor([corpus.single_token_id(model.tokenizer, " " + c) for c in corpus.COUNTRIES])
japan_index = corpus.COUNTRIES.index("Japan")
recall_prompts = [f"{o} is in" for o in others]
story = corpus.story_documents("test", 32, min_pieces=64)
story_tokens = model.tokenizer(story, truncation=True, max_length=64, return_tensors="pt")["input_ids"]
assert story_tokens.shape == (32, 64)


def steering_effect(vector: Float[Tensor, " d_model"], coefficient: float) -> tuple[float, float]:
    """Share of the non-Japanese cities whose top country becomes Japan, and Japan's mean probability."""
    logits = logits_with_added_vector(model, recall_prompts, coefficient * vector, STEER_LAYER, position=None)
    probs = logits.softmax(-1)
    top_country = probs[:, country_ids].argmax(-1)
    return (top_country == japan_index).float().mean().item(), probs[:, country_ids[japan_index]].mean().item()


COEFFICIENTS = [0.0, 0.5, 1.0, 1.5, 2.0, 4.0, 8.0]
random_direction = torch.randn(d_model)
random_direction = random_direction / random_direction.norm() * japan.norm()
sweep = {"moved to Japan": [], "P(Japan)": [], "held-out loss": [], "random: moved": [], "random: loss": []}
for coefficient in COEFFICIENTS:
    moved, p_japan = steering_effect(japan, coefficient)
    sweep["moved to Japan"].append(moved)
    sweep["P(Japan)"].append(p_japan)
    sweep["held-out loss"].append(steered_loss(model, story_tokens, japan, STEER_LAYER, coefficient))
    sweep["random: moved"].append(steering_effect(random_direction, coefficient)[0])
    sweep["random: loss"].append(steered_loss(model, story_tokens, random_direction, STEER_LAYER, coefficient))
fig = go.Figure()
for name in ("moved to Japan", "P(Japan)", "random: moved"):
    fig.add_trace(go.Scatter(x=COEFFICIENTS, y=sweep[name], name=name, mode="lines+markers"))
for name in ("held-out loss", "random: loss"):
    fig.add_trace(go.Scatter(x=COEFFICIENTS, y=sweep[name], name=name, mode="lines+markers", yaxis="y2",
                             line=dict(dash="dash")))  # fmt: skip
fig.update_layout(title="steering fact recall towards Japan: effect and fluency", xaxis_title="coefficient",
                  yaxis=dict(title="effect"), yaxis2=dict(title="held-out loss (nats)", overlaying="y", side="right"))  # fmt: skip
fig.show()
print({name: [round(v, 3) for v in values] for name, values in sweep.items()})
moved, p_japan, loss = sweep["moved to Japan"], sweep["P(Japan)"], sweep["held-out loss"]
at = {c: i for i, c in enumerate(COEFFICIENTS)}
assert moved[0] == 0 and all(a <= b for a, b in zip(moved, moved[1:])) and moved[at[1.5]] == 1.0
assert all(a < b for a, b in zip(loss, loss[1:]))  # every step up costs fluency
assert moved[at[1.0]] > 0.4 and loss[at[1.0]] - loss[0] < 0.1
assert loss[at[2.0]] - loss[0] < 0.6 and loss[-1] - loss[0] > 3
assert p_japan[-1] < max(p_japan) - 0.1  # too much steering loses even the effect
assert max(sweep["random: moved"][: at[2.0] + 1]) == 0
assert all(ours > theirs for ours, theirs in zip(loss[at[2.0] :], sweep["random: loss"][at[2.0] :]))

# %% [markdown]
# The trade-off in numbers:
#
# - at coefficient 1, over 40% of the other cities' answers move to " Japan" while the held-out loss rises by
#   under 0.1 nats; from 1.5 on, every one of them does;
# - the loss rises with every step up the coefficient: under 0.6 nats at 2, over 3 nats at 8;
# - past a point, more steering loses even the effect: P(Japan) falls again at 8 (by more than 0.1 from its
#   peak), presumably as the pushed residual stream leaves anything the later layers saw in training;
# - a random direction of the same norm moves no answer up to coefficient 2, and from 2 on it costs *less*
#   fluency than the Japan vector: the steering vector's damage is specific (it pushes " Japan" everywhere),
#   not just the size of the push.
#
# Greedy continuations show both effects, with the vector added at every position and every step:


# %%
def steered_text(prompt: str, coefficient: float, n_tokens: int = 5) -> str:
    """A greedy continuation with coefficient * japan added after block STEER_LAYER at every position and
    every step of generation."""
    with model.generate(prompt, max_new_tokens=n_tokens, min_new_tokens=n_tokens, do_sample=False) as tracer:
        for _ in tracer.iter[:n_tokens]:
            model.transformer.h[STEER_LAYER].output[:] += coefficient * japan
        continuation = tracer.result.save()
    return model.tokenizer.decode(continuation[0, -n_tokens:])


steered_texts = {}
for text in ["Paris is in", "Anna travelled from Rome to", "Mary walked to the"]:
    steered_texts[text] = {c: steered_text(text, c) for c in (0.0, 1.0, 2.0, 8.0)}
    print(text, steered_texts[text])
japanese_cities = {" " + city for city in japanese}
paris, anna = steered_texts["Paris is in"], steered_texts["Anna travelled from Rome to"]
assert paris[0.0].startswith(" France") and paris[2.0].startswith(" Japan")
assert paris[2.0].removeprefix(" Japan") == paris[0.0].removeprefix(" France")  # the rest is unchanged
assert not any(city in text for text in anna.values() for city in japanese_cities)
assert all(texts[8.0].count(" Japan") >= 2 and "Japan" not in texts[0.0] for texts in steered_texts.values())

# %% [markdown]
# At 2, "Paris is in" continues " Japan." and the rest of the text is unchanged; at 8, every prompt
# collapses into " Japan" repeated. The vector moves the model towards the *word* " Japan" more than towards
# the concept: after "Anna travelled from Rome to", the model never names a Japanese city (Tokyo, Osaka,
# Kyoto) at any coefficient; at 8 it writes " Japan" where a city belongs.

# %% [markdown]
# ## Summary
#
# - nnsight traces a Hugging Face model in place: `.output`/`.input` of any module, `.save()` what you keep,
#   assign or add to edit, ask for modules in the order they run. Batches, invokes (with a barrier when one
#   reads what another writes) and generation (`tracer.iter`, the first step holding the whole prompt) use
#   the same code. `remote=True` sends it to NDIF for models too big to run yourself; offline, it fails at
#   once and the local model is the alternative.
# - Hendel et al.'s replacement of the last hidden state fails in this model, because its last position
#   also holds the query; the task vector (few-shot mean state minus zero-shot mean state) turns about half
#   right into over 90% right after block 2.
# - Todd et al.'s shuffled labels do not corrupt this world's prompts (the answers' kind names the task);
#   swapping in the other task's examples does. Then one head, `L0H3`, restores the antonym alone, and its
#   function vector helps only where the head writes, less than the task vector.
# - Steering by activation addition moves a planted fact (Paris to Japan) with a vector from contrast
#   pairs; a coefficient sweep shows the effect saturate while the held-out loss keeps rising, and the
#   vector pushes the word more than the concept.
# - Per-head effects agree between nnsight and TransformerLens (to 1e-5): one model, two libraries.
