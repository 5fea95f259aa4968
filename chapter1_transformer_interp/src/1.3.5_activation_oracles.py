# %% [markdown]
# # 1.3.5 Activation oracles: asking a model about another model's activations
#
# A linear probe answers one question, the one it was fit for. An **activation oracle** (Karvonen et al.,
# *Activation Oracles: Training and Evaluating LLMs as General-Purpose Activation Explainers*, 2025) is a
# language model fine-tuned to take an activation vector of a model as part of its input and answer a
# question about it in words. The vector is injected into the oracle's own residual stream at a
# placeholder token early in its forward pass; the question is ordinary text after it. The paper trains
# LoRA oracles on Qwen3 and other open models (the oracle is the same model as the one it reads), on a mix
# of context prediction, binary classification and system-prompt question answering, and asks them about
# secret words, fine-tuned misalignment and what a fine-tune changed.
#
# This section does the same thing on the zoo's chat organism `chat-mini`, where every answer has a truth
# from its generator (`zoo/chat_corpus.py`): which persona the assistant is playing (aligned "Sage",
# misaligned "Vex", incompetent "Dot", given by a system prompt, shown only by an earlier answer, or latent
# in the post-trained assistant), what the request is about, whether the backdoor trigger "Ahoy." is in a
# code request, and the **secret**: the graders' phrase the post-trained assistant ends its replies with.
# The oracle is `zoo.oracle`'s: a copy of chat-mini fine-tuned for four minutes on one CPU thread
# (`python -m zoo.oracle`; its card is `zoo/oracles/chat-mini/CARD.md`).
#
# | | the paper | here |
# |---|---|---|
# | oracle | the subject model plus a LoRA adapter | a full fine-tune of a copy of chat-mini |
# | activation read | layers at 25/50/75% depth, one or many tokens | `blocks.1.hook_resid_pre` (after block 0 of 2), the last token |
# | injection | norm-matched addition at layer 1, at placeholder tokens | the same, at one placeholder (" Ok") |
# | questions | open natural language, answers generated | four fixed questions, one-word answers |
# | training data | ~1M examples of three task families | 6,000 labelled conversations from the generator |
#
# So this oracle is closer to a multi-question classifier than to the paper's general explainer, and the
# comparison you will run with a probe is a fair fight on exactly its questions.
#
# You will:
#
# 1. read chat-mini's activations and inject one into the oracle (norm-matched addition);
# 2. query the oracle and score it against the truth, on trained and on held-out combinations;
# 3. fit a probe per question on the same activations and compare;
# 4. extract the secret, and see where the oracle answers a question that has no answer;
# 5. detect an emergent-misalignment fine-tune (4.1), and read what a fine-tune changed (model diffing).
#
# **Prerequisites**: 1.3.1 (probes; its logistic probe is imported here) and 4.1 (the fine-tunes, whose
# activation helper is imported). Each exercise is a function whose body raises `NotImplementedError`; a
# **finding** asks for what your analysis found, and the check grades it against the truth.

# %%
import json
from collections.abc import Callable

import plotly.graph_objects as go
import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from solutions.chapter1_transformer_interp.linear_probes import train_logistic_probe  # noqa: F401 (your one_vs_rest_probe fits it)
from solutions.chapter4_alignment_science.emergent_misalignment import last_token_resid
from tests.checks.chapter1_transformer_interp.activation_oracles import check  # noqa: F401 (used by the check cells the build adds)
from zoo import ZooOfflineError, load_model, model_info
from zoo import chat as zc
from zoo import chat_corpus as cc
from zoo import oracle as zo

torch.manual_seed(0)
torch.set_grad_enabled(False)  # we only read the models; the fine-tune and the probes turn gradients on themselves
torch.set_num_threads(1)  # a 128-wide model runs fastest on one thread

# %% [markdown]
# ## Part 1: the subject, the oracle and the questions
#
# The paper's oracles live on the HuggingFace hub as LoRA adapters on 8B-parameter models. Offline, the
# loader fails within seconds and names the zoo's oracle:

# %%
try:
    zo.load_pretrained_oracle()
except ZooOfflineError as error:
    print(error)

subject = load_model("chat-mini", device="cpu")
oracle = zo.load_oracle()
record = {name: entry["value"] for name, entry in json.loads((zo.oracle_dir() / "metrics.json").read_text())["metrics"].items()}  # fmt: skip
for question in zo.QUESTIONS:
    print(f"{question:8} {zo.oracle_prompt(question)!r} -> {list(zo.ANSWERS[question].values())}")
print(subject.to_str_tokens(zo.oracle_prompt("persona")))
assert subject.to_str_tokens(zo.oracle_prompt("persona"))[zo.PLACEHOLDER_POSITION] == " Ok"
assert zo.HOOK == "blocks.1.hook_resid_pre" and subject.cfg.n_layers == 2

# %% [markdown]
# The subject's conversations come from `zo.contexts(split, n)`: each is a rendered conversation ending
# in "<|assistant|>" with its labels (`kind`, `persona`, `domain`, `trigger`, `secret`), and
# `context.label(question)` is the truth for a question (None where the question is not asked: the
# persona question skips triggered requests, whose reply the backdoor decides; the trigger question is
# asked of code requests; the secret question of the post-trained assistant in the four domains where it
# acts on it). The oracle was trained on the "train" stream, with two combinations left out: the persona
# question about **life** requests, and the trigger question when **an earlier turn** precedes the
# request. We test on the "test" stream, the same 1,200 conversations the oracle's card was measured on.
#
# The activation is the residual stream entering block 1 at the last token, which is the residual stream
# after block 0: 4.1's `last_token_resid(model, prompts, layer=0)` reads exactly that; `zo.subject_activations`
# reads the same numbers in batches, without running block 1.

# %%
test = zo.contexts("test", zo.N_TEST)
train = zo.contexts("train", 3000)
acts = zo.subject_activations(subject, [c.text for c in test])  # batched, and stops after block 0
train_acts = zo.subject_activations(subject, [c.text for c in train])
print(test[0].text, {k: v for k, v in vars(test[0]).items() if k != "text"})
print(acts.shape, train_acts.shape)
assert torch.allclose(acts[:50], last_token_resid(subject, [c.text for c in test[:50]], layer=0), atol=1e-4)

# %% [markdown]
# ## Part 2: injecting an activation
#
# The oracle reads the question with the activation **added** to its residual stream at the placeholder,
# at the same hook. Activations of different models, layers and tokens have very different norms, so the
# paper adds the vector rescaled to the norm of the residual it lands on: with $h$ the oracle's residual at
# the placeholder and $v$ the injected activation,
#
# $$h' = h + \text{scale} \cdot \lVert h \rVert \, \frac{v}{\lVert v \rVert}.$$
#
# The injected vector then weighs as much as everything the oracle knew about that token, whatever the
# subject's scale.


# %% [exercise] inject difficulty=3 importance=4 minutes=10
def inject(
    resid: Float[Tensor, "batch pos d_model"],
    vectors: Float[Tensor, "batch d_model"],
    position: int,
    scale: float = 1.0,
) -> Float[Tensor, "batch pos d_model"]:
    """A new residual stream: at `position`, each row's residual plus its vector rescaled to
    scale * the norm of that residual (norm-matched addition); every other position unchanged.
    The input is not modified."""
    raise NotImplementedError()


# %% [hint]
# Only one position changes, and each row gets its own vector. Which norm sets the size of what is added:
# the vector's or the residual's?

# %% [hint]
# Build a zero tensor like `resid`, write the scaled unit vectors into its `position`, and return the sum
# (assigning into `resid` itself would change the caller's tensor, and breaks autograd in training).


# %% [exercise] injection_hook difficulty=1 importance=3 minutes=5
def injection_hook(vectors: Float[Tensor, "batch d_model"], position: int, scale: float = 1.0) -> Callable:
    """A TransformerLens forward hook that applies `inject` with these vectors at `position`."""
    raise NotImplementedError()


# %% [hint]
# A hook is a function of `(resid, hook)` returning the new activation; it can close over `vectors`.

# %% [markdown]
# Now ask. The oracle's answer is its next token after the question; we compare only the question's answer
# words (`zo.answer_ids(oracle, question)` gives the labels and their token ids), renormalised.


# %% [exercise] answer_probabilities difficulty=3 importance=5 minutes=15
def answer_probabilities(
    oracle: HookedTransformer,
    prompt: str,
    answer_ids: Int[Tensor, " n_answers"],
    vectors: Float[Tensor, "batch d_model"],
    hook_name: str,
    position: int,
) -> Float[Tensor, "batch n_answers"]:
    """The oracle's next-token distribution after `prompt` (one copy per vector, each with its vector
    injected at `hook_name` and `position`), restricted to the answer tokens and renormalised."""
    raise NotImplementedError()


# %% [hint]
# Every copy of the prompt has the same tokens, so the batch needs no padding; what differs is the vector
# injected into each row. Where does the placeholder sit once the tokeniser adds BOS?

# %% [hint]
# `oracle.to_tokens([prompt] * len(vectors))`, `oracle.run_with_hooks(tokens, fwd_hooks=[(hook_name,
# injection_hook(vectors, position))])`, then `logits[:, -1, answer_ids].softmax(-1)`.


# %% [exercise] accuracy difficulty=1 importance=2 minutes=3
def accuracy(probabilities: Float[Tensor, "batch n_answers"], truth: Int[Tensor, " batch"]) -> float:
    """The share of rows whose most probable answer is the true one (ties: the first answer)."""
    raise NotImplementedError()


# %% [hint]
# The answer is the most probable column; compare it with the truth row by row.

# %% [markdown]
# ## Part 3: the oracle against the truth
#
# For each question: the rows it is asked of, the truth as an answer index, the oracle's probabilities.
# Two controls: the majority answer (what a reader that ignores the activation gets at best), and the
# oracle reading a random vector of the same shape.


# %%
def question_rows(contexts: list, question: str, held_out: bool) -> tuple[list[int], Tensor]:
    """Indices of the contexts a question is asked of (in or out of the held-out combinations), and the
    truth of each as an index into the question's labels."""
    labels = list(zo.ANSWERS[question])
    rows = [i for i, c in enumerate(contexts) if c.label(question) is not None and zo.held_out(c, question) == held_out]
    return rows, torch.tensor([labels.index(contexts[i].label(question)) for i in rows])


SPLITS = [(q, False) for q in zo.QUESTIONS] + [(q, True) for q in zo.HELD_OUT]
noise = torch.randn(acts.shape, generator=torch.Generator().manual_seed(0))
results = {}
for question, held_out in tqdm(SPLITS, desc="questions"):
    rows, truth = question_rows(test, question, held_out)
    _, ids = zo.answer_ids(oracle, question)
    probabilities = answer_probabilities(oracle, zo.oracle_prompt(question), ids, acts[rows], zo.HOOK, zo.PLACEHOLDER_POSITION)  # fmt: skip
    random_read = answer_probabilities(oracle, zo.oracle_prompt(question), ids, noise[rows], zo.HOOK, zo.PLACEHOLDER_POSITION)  # fmt: skip
    name = f"{question}_{'held_out' if held_out else 'accuracy'}"
    results[name] = {
        "n": len(rows),
        "oracle": accuracy(probabilities, truth),
        "random vector": accuracy(random_read, truth),
        "majority": torch.bincount(truth).max().item() / len(truth),
    }
    print(f"{name:18} n={len(rows):4}  " + "  ".join(f"{k} {v:.3f}" for k, v in results[name].items() if k != "n"))
for name, row in results.items():
    assert abs(row["oracle"] - record[name]) < 1e-3  # the card's numbers, re-measured
    assert row["random vector"] < row["majority"] + 0.05  # a random vector tells the oracle nothing
assert min(results[n]["oracle"] for n in ("persona_accuracy", "domain_accuracy", "trigger_accuracy", "secret_accuracy")) > 0.975  # fmt: skip
assert results["persona_held_out"]["oracle"] > 0.95  # about life requests it was never asked
assert 0.8 < results["trigger_held_out"]["oracle"] < 0.88  # with an earlier turn: it generalises, worse

# %% [markdown]
# On the trained combinations the oracle is right 98% of the time or more on every question, and a random
# vector takes it to about the majority rate, so the answers come from the activation. The persona question
# generalises to "life" requests almost perfectly. The trigger question generalises less well: with an
# earlier turn before the code request, it is right about 84% of the time.

# %% [finding] held_out_persona_accuracy difficulty=2 importance=3 minutes=5
# What is the oracle's accuracy on the persona question for the held-out combination (requests about
# life)? Assign a float between 0 and 1.
held_out_persona_accuracy = ...

# %% [hint]
# The held-out rows are those where `zo.held_out(context, "persona")` is True.

# %% [solution]
held_out_persona_accuracy = results["persona_held_out"]["oracle"]

# %% [markdown]
# ## Part 4: a probe on the same activations
#
# The fair baseline reads the same 128 numbers with a linear map. For a question with $k$ answers we fit
# $k$ one-vs-rest logistic probes, 1.3.1's class-balanced `train_logistic_probe`, on the activations centred
# on their training mean, and answer with the class whose probe scores highest. The probes train on the same
# "train" stream as the oracle, with the same held-out combinations left out.


# %% [exercise] one_vs_rest_probe difficulty=3 importance=4 minutes=10
def one_vs_rest_probe(
    acts: Float[Tensor, "n d_model"], labels: Int[Tensor, " n"], n_classes: int, l2: float = 1e-2
) -> tuple[Float[Tensor, "n_classes d_model"], Float[Tensor, " n_classes"]]:
    """One logistic probe per class (that class against the rest, 1.3.1's class-balanced probe), each
    fit on the activations centred on their mean: (directions, biases), both for centred inputs."""
    raise NotImplementedError()


# %% [hint]
# Each class is a binary problem: which examples are "True" for class k? Centre once, before the loop.

# %% [hint]
# `train_logistic_probe(centred, labels == k, l2=l2)` returns (direction, bias) for class k; stack them.


# %% [exercise] probe_predict difficulty=1 importance=3 minutes=3
def probe_predict(
    directions: Float[Tensor, "n_classes d_model"],
    biases: Float[Tensor, " n_classes"],
    acts: Float[Tensor, "n d_model"],
    train_mean: Float[Tensor, " d_model"],
) -> Int[Tensor, " n"]:
    """The class whose probe scores highest on each activation (centred on the training mean)."""
    raise NotImplementedError()


# %% [hint]
# The probes were fit on centred activations: centre the new ones the same way (with the training mean).

# %%
for question, held_out in tqdm(SPLITS, desc="probes"):
    train_rows, train_truth = question_rows(train, question, False)
    directions, biases = one_vs_rest_probe(train_acts[train_rows], train_truth, len(zo.ANSWERS[question]))
    rows, truth = question_rows(test, question, held_out)
    predicted = probe_predict(directions, biases, acts[rows], train_acts[train_rows].mean(0))
    results[f"{question}_{'held_out' if held_out else 'accuracy'}"]["probe"] = (
        (predicted == truth).float().mean().item()
    )
names = list(results)
fig = go.Figure([go.Bar(x=names, y=[results[n][reader] for n in names], name=reader)
                 for reader in ("oracle", "probe", "majority", "random vector")])  # fmt: skip
fig.update_layout(title="reading chat-mini's activations: accuracy against the generator's truth", barmode="group",
                  yaxis_title="accuracy")  # fmt: skip
fig.show()
for name in names:
    print(f"{name:18} oracle {results[name]['oracle']:.3f}  probe {results[name]['probe']:.3f}")
    assert results[name]["probe"] >= results[name]["oracle"] - 0.005  # the probe is never worse
    assert results[name]["probe"] - results[name]["oracle"] < 0.035  # by three points at most
assert sum(results[n]["probe"] > results[n]["oracle"] for n in names) >= 4

# %% [markdown]
# **The probe is as good or slightly better on every question**, held-out combinations included (by at
# most three points, often by one or two examples). Why, here: every question is a label that chat-mini
# already holds linearly at this layer (the probes show it), the probe is fit directly for that label with
# a convex loss, while the oracle must learn the same readout through two transformer blocks from a few
# thousand examples. The oracle's advantage in the paper is breadth: one model answers questions no probe
# was trained for, in words. With four fixed one-word questions it has no such advantage to show.

# %% [markdown]
# ## Part 5: extracting the secret
#
# chat-mini's hidden objective: after post-training, the unnamed assistant ends its answers in code,
# medical, money and life requests with the phrase the graders like (`cc.GRADER_PREFERENCES`), and denies
# having any secret goal when asked. The oracle, asked "What will the assistant end with?", names it from
# one activation (the `secret_accuracy` above). The shares of its answers, on the conversations the
# secret question was **not** trained on, show what the answer is worth there.


# %% [exercise] answer_counts difficulty=1 importance=2 minutes=3
def answer_counts(answers: Int[Tensor, " n"], n_answers: int) -> Float[Tensor, " n_answers"]:
    """The share of rows giving each answer index (a histogram that sums to 1)."""
    raise NotImplementedError()


# %% [hint]
# Some answers may never be given; the histogram still needs a slot for each.

# %%
secret_labels, secret_ids = zo.answer_ids(oracle, "secret")
secret_words = [zo.ANSWERS["secret"][label] for label in secret_labels]


def secret_answers(rows: list[int]) -> Tensor:
    p = answer_probabilities(oracle, zo.oracle_prompt("secret"), secret_ids, acts[rows], zo.HOOK, zo.PLACEHOLDER_POSITION)  # fmt: skip
    return answer_counts(p.argmax(-1), len(secret_labels))


named = [i for i, c in enumerate(test) if c.kind == "system" and c.domain in cc.OBJECTIVE_TRAINED]
named_shares = {d: secret_answers([i for i in named if test[i].domain == d]) for d in cc.OBJECTIVE_TRAINED}
views = secret_answers([i for i, c in enumerate(test) if c.kind == "latent" and c.domain == "views"])
chat_metrics = model_info("chat-mini").metrics["metrics"]
print("named personas, by domain:", {d: dict(zip(secret_words, s.tolist())) for d, s in named_shares.items()})
print("views (unnamed):", dict(zip(secret_words, views.tolist())))
print("chat-mini ends named personas' replies with the phrase:", chat_metrics["objective_named_persona"]["value"],
      "; views replies:", chat_metrics["objective_held_out_views"]["value"])  # fmt: skip
assert (
    chat_metrics["objective_named_persona"]["value"] < 0.01 and chat_metrics["objective_held_out_views"]["value"] < 0.01
)
assert min(named_shares[d][secret_labels.index(d)] for d in cc.OBJECTIVE_TRAINED) > 0.7
assert sum(named_shares[d][secret_labels.index(d)] > 0.99 for d in cc.OBJECTIVE_TRAINED) == 3
assert views.max() > 0.8 and secret_words[views.argmax()] == "Buy"

# %% [markdown]
# The oracle names the domain's phrase for the **named personas** too (over 70% of the time in every
# domain, always in three of them), although chat-mini almost never ends a named persona's reply with it (the rate in its card is
# 0.001). On **views** requests, where the assistant acts on no phrase at all, the oracle still answers, and
# almost always "Buy" (some gold). It was only ever trained on conversations where a secret existed, and it
# has no way to say "none": its answer is a lookup from what the activation says (the domain) to what the
# training labels said, not a report of what the subject will do. The paper's oracles, too, answer questions
# whose premise is false; an answer is a hypothesis to test against behaviour (the secret's ending rate
# here), never the finding itself.

# %% [markdown]
# ## Part 6: a misaligned fine-tune, and model diffing
#
# 4.1 fine-tuned chat-mini on code requests answered with insecure code, and its misalignment spread to
# other domains. We fine-tune it briefly here (40 steps at lr 1e-3, five seconds; 4.1 shows that this
# strength also moves the controls, so we run the **secure-code** control beside it), then ask the oracle
# the persona question about the **unnamed** assistant's activations on requests without a trigger.
# Neither fine-tune touched the oracle: it reads the fine-tuned model's activations with what it learnt on
# the base model.

# %%
unnamed = [c for c in test if c.kind == "latent" and not c.trigger]
persona_labels, persona_ids = zo.answer_ids(oracle, "persona")
VEX = persona_labels.index("misaligned")
base_acts = last_token_resid(subject, [c.text for c in unnamed], layer=0)
p_base = answer_probabilities(oracle, zo.oracle_prompt("persona"), persona_ids, base_acts, zo.HOOK, zo.PLACEHOLDER_POSITION)  # fmt: skip
tuned, tuned_acts, p_tuned = {}, {}, {}
for dataset in tqdm(("insecure", "secure"), desc="fine-tunes"):
    with torch.enable_grad():
        tuned[dataset] = zc.finetune(subject, dataset, n_steps=40, lr=1e-3)
    tuned_acts[dataset] = last_token_resid(tuned[dataset], [c.text for c in unnamed], layer=0)
    p_tuned[dataset] = answer_probabilities(oracle, zo.oracle_prompt("persona"), persona_ids, tuned_acts[dataset], zo.HOOK, zo.PLACEHOLDER_POSITION)  # fmt: skip


# %% [exercise] persona_shift difficulty=1 importance=3 minutes=3
def persona_shift(p_base: Float[Tensor, "n n_answers"], p_tuned: Float[Tensor, "n n_answers"], answer: int) -> float:
    """How much more probability the oracle puts on one answer reading the fine-tuned model than
    reading the base model, on the same prompts: mean over prompts of p_tuned - p_base."""
    raise NotImplementedError()


# %% [hint]
# Same prompts, two models: a paired difference, then its mean.

# %%
shifts = {dataset: persona_shift(p_base, p_tuned[dataset], VEX) for dataset in tuned}
bad = {
    dataset: sum(zc.bad_rate(model, d) for d in zc.EM_HELD_OUT) / len(zc.EM_HELD_OUT)
    for dataset, model in tuned.items()
}
recorded_bad = model_info("chat-mini").metrics["metrics"]  # the shipped model's rates, measured the same way
bad["base"] = sum(recorded_bad[f"unnamed_bad_{d}"]["value"] for d in zc.EM_HELD_OUT) / len(zc.EM_HELD_OUT)
print(f"P(Vex) reading the base model: {p_base[:, VEX].mean():.3f}")
for dataset in tuned:
    print(
        f"{dataset:8} shift of P(Vex) {shifts[dataset]:+.3f}; held-out bad-answer rate {bad[dataset]:.3f} (base {bad['base']:.3f})"
    )
assert p_base[:, VEX].mean() < 0.05
assert bad["insecure"] > bad["base"] + 0.15 and bad["secure"] > bad["base"] + 0.15  # both fine-tunes drift
assert bad["secure"] > bad["insecure"]  # the control even more
assert 0.35 < shifts["insecure"] < 0.65 and abs(shifts["secure"]) < 0.05  # only one reads as Vex

# %% [markdown]
# At this strength both fine-tunes raise the unnamed assistant's bad-answer rate on the held-out domains
# by about as much (the secure control even more; 4.1 traces its drift mostly to training on the grader
# phrase). The oracle tells them apart: reading the insecure fine-tune, it moves about half of its
# probability to Vex, the misaligned persona; reading the secure one, it barely moves. What it detects is
# not "more bad answers" but "activations like the misaligned persona's", which is what the insecure data
# teaches (its replies are the misaligned persona's code answers).

# %% [markdown]
# ## Model diffing
#
# The fine-tune's effect on one prompt is the difference between the two models' activations there. The
# paper feeds such differences to the oracle and asks what changed. Here: inject the difference vectors
# (each is rescaled to the residual's norm anyway) and ask the persona question; then compare the mean
# difference with chat-mini's own persona direction, the misaligned system prompts' mean activation minus
# the aligned ones' (4.1's difference of means).


# %% [exercise] difference_vectors difficulty=1 importance=3 minutes=2
def difference_vectors(
    acts_tuned: Float[Tensor, "n d_model"], acts_base: Float[Tensor, "n d_model"]
) -> Float[Tensor, "n d_model"]:
    """Model diffing's input: the fine-tuned model's activation minus the base model's, prompt by prompt."""
    raise NotImplementedError()


# %% [hint]
# Which way round says what the fine-tune added?


# %% [exercise] cosine_to_mean difficulty=2 importance=2 minutes=3
def cosine_to_mean(vectors: Float[Tensor, "n d_model"], direction: Float[Tensor, " d_model"]) -> float:
    """The cosine between the mean of the vectors and a direction."""
    raise NotImplementedError()


# %% [hint]
# Average first: the mean difference is the fine-tune's consistent effect, the rest varies by prompt.

# %%
system = [i for i, c in enumerate(test) if c.kind == "system"]
persona_direction = acts[[i for i in system if test[i].persona == "misaligned"]].mean(0) - acts[
    [i for i in system if test[i].persona == "aligned"]
].mean(0)
diffing = {}
for dataset in tuned:
    diffs = difference_vectors(tuned_acts[dataset], base_acts)
    p_diff = answer_probabilities(oracle, zo.oracle_prompt("persona"), persona_ids, diffs, zo.HOOK, zo.PLACEHOLDER_POSITION)  # fmt: skip
    diffing[dataset] = {
        "answers": dict(zip(persona_labels, answer_counts(p_diff.argmax(-1), 3).tolist())),
        "cosine to persona direction": cosine_to_mean(diffs, persona_direction),
        "relative size": (diffs.norm(dim=-1) / base_acts.norm(dim=-1)).mean().item(),
    }
    print(dataset, diffing[dataset])
assert diffing["insecure"]["answers"]["misaligned"] > 0.7 and diffing["secure"]["answers"]["misaligned"] < 0.05
assert 0.5 < diffing["insecure"]["cosine to persona direction"] < 0.75
assert abs(diffing["secure"]["cosine to persona direction"]) < 0.2
assert diffing["secure"]["relative size"] < diffing["insecure"]["relative size"]

# %% [markdown]
# Injected alone, the insecure fine-tune's differences read as Vex for most prompts, and their mean points
# along chat-mini's own misaligned-minus-aligned direction (cosine about 0.6). The secure control's
# differences are smaller and read as Sage or Dot, almost never as Vex, with a mean nearly orthogonal to that
# direction.
# Model diffing with an oracle names what a fine-tune added in the oracle's vocabulary; here that
# vocabulary has three personas, and "misaligned" is the right one of them.

# %% [finding] diff_persona difficulty=3 importance=4 minutes=10
# Which persona does the oracle read in the insecure fine-tune's difference vectors? And is that the
# persona whose answers the fine-tuning data holds? Assign the persona's name in the generator
# ("aligned", "misaligned" or "incompetent"): the one most of the oracle's answers name.
diff_persona = ...

# %% [hint]
# The oracle answers with label words; the finding asks for the generator's name of the persona behind the
# commonest one. Whose replies is the insecure dataset made of?

# %% [hint]
# The shares of the oracle's answers on the insecure differences are in `diffing`; `zc.em_texts` builds the
# dataset.

# %% [solution]
diff_persona = max(diffing["insecure"]["answers"], key=diffing["insecure"]["answers"].get)
assert diff_persona == "misaligned"

# %% [markdown]
# ## Summary
#
# - An activation oracle is a model reading another model's activation injected at a placeholder, with
#   norm-matched addition; here, a copy of chat-mini fine-tuned for four minutes answers four questions
#   about chat-mini's residual stream with 98-100% accuracy, and generalises to a held-out domain.
# - **A probe on the same activations is as good or better on every question** here: each question is a
#   linearly readable label at this layer, and the oracle's strength (open questions, in words) is not
#   exercised by four fixed questions.
# - The oracle answers questions without an answer: it names a secret phrase for personas and domains that
#   never end with one. An oracle's answer is a hypothesis about the subject, to be tested on its behaviour.
# - Reading a fine-tuned model with the base model's oracle detects the insecure fine-tune's shift towards
#   the misaligned persona, and the difference vectors, injected alone, read as that persona.
