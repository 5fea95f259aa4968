# %% [markdown]
# # 4.3 Thought anchors: which sentences of a chain of thought matter
#
# Bogdan, Macar, Nanda and Conmy (2025, *Thought Anchors: Which LLM Reasoning Steps Matter?*) split a
# reasoning model's chain of thought into sentences and asked which ones the answer depends on. They
# used three families of method: **black-box resampling** (cut the chain before a sentence, sample many
# continuations with and without it, and see how the answer distribution moves; the *counterfactual*
# version only counts continuations where the resampled sentence says something different), **white-box
# attention** (sentence-to-sentence attention, and "receiver heads" whose attention concentrates on a few
# "broadcasting" sentences, found by the kurtosis of the attention each sentence receives), and **causal
# attention suppression** (stop every head attending to one sentence and measure the KL divergence this
# causes on later sentences). They found planning and backtracking sentences to be the anchors, and the
# methods to agree only partly. On a frontier model nobody knows which sentence really was decisive.
#
# The zoo's `chat-mini` was trained on chains whose decisive sentence is planted: `zoo/chat_corpus.py`'s
# `reasoning_turn` writes "think: [filler] plan lookup-or-compute so the answer is X.", where 30% of the
# lookups or sums are wrong and 75% of those are followed by "No, wait." and the right one. The answer
# always follows the **last** lookup or sum (the generator records its index as `decisive`), right or
# wrong. So every method can be graded: does it rank the decisive sentence first?
#
# You will:
#
# 1. split chains into sentences and classify them, graded against the generator's types;
# 2. score sentences by forced answers, by resampling (as a change in probability and as the paper's KL)
#    and by counterfactual resampling;
# 3. compute sentence-level attention, find receiver heads by kurtosis, and suppress attention to each
#    sentence to measure its effect (KL) on the later ones;
# 4. compare how often each method puts the decisive sentence first, on chains with no error, with a
#    backtracked error and with a standing error.
#
# **Where this model differs from the paper's.** chat-mini has 2 layers and 4 heads per layer (the paper
# used R1-distilled models of billions of parameters with dozens of layers) and its chains are templated,
# 2 to 5 sentences long (the paper's are far longer). The paper used 100 rollouts per sentence and measured the answer's
# change by a KL divergence between answer distributions; we use 8 rollouts and the change in the
# probability of the original answer, which is enough here because the answer is one token (the paper's KL
# measure is an exercise too, and ranks sentences differently). With so
# few sentences, no head is a sharp receiver head (asserted below): the kurtosis the paper found in its
# receiver heads needs long chains with a few broadcasting sentences among many. And the decisive
# sentence is always the last one before the answer, so a position baseline finds it every time.

# %%
import re  # noqa: F401 (for your sentence parsing)

import plotly.graph_objects as go
import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

import zoo
from solutions.chapter4_alignment_science.thought_anchors import (
    ANSWER_OPENING,  # noqa: F401 ("so the answer is", for your forced answers)
    Chain,
    load_reasoning_model,
    reasoning_chains,
    sample_rollouts,
    sentence_bounds,
)
from tests.checks.chapter4_alignment_science.thought_anchors import check  # noqa: F401 (used by the check cells the build adds)
from zoo import chat as zc
from zoo import chat_corpus as cc  # noqa: F401 (the chain templates: FILLERS, PLANS, BACKTRACK, THINK)
from zoo.corpus import CITY_COUNTRY  # noqa: F401 (the true country of each city)

torch.set_num_threads(1)  # a model this small runs fastest on one thread
model = zoo.load_model("chat-mini", device="cpu")
N_PER_GROUP = 6  # chains with no error, a backtracked error and a standing error
N_SAMPLES = 8  # rollouts per cut (the paper used 100; the rates below are asserted with wide margins)
chains = reasoning_chains(N_PER_GROUP, seed=0)
groups = ["right"] * N_PER_GROUP + ["backtracked"] * N_PER_GROUP + ["standing"] * N_PER_GROUP
decisive = [chain.decisive for chain in chains]
print(chains[N_PER_GROUP].text())
print(chains[N_PER_GROUP].types, "decisive:", chains[N_PER_GROUP].decisive)
assert model.cfg.n_layers == 2 and model.cfg.n_heads == 4
assert cc.ERROR_RATE == 0.3 and cc.BACKTRACK_SHARE == 0.75
assert {len(chain.sentences) for chain in chains} <= {2, 3, 4, 5}
assert all(chain.decisive == len(chain.sentences) - 1 for chain in chains)  # always the last sentence

# %% [markdown]
# Online, `load_reasoning_model` loads a reasoning model from the hub (Qwen3, which thinks aloud like the
# paper's R1-distilled models; TransformerLens 3.9 does not load those). Offline it fails at once and names the
# organism to use.

# %%
try:
    load_reasoning_model()
except zoo.ZooOfflineError as error:
    print(error)
    assert "chat-mini" in str(error)

# %% [markdown]
# ## Sentences and their types
#
# Bogdan et al. split chains at sentence ends and labelled each sentence with one of eight functions
# (problem setup, plan generation, fact retrieval, active computation, uncertainty management, result
# consolidation, self checking, final answer) using an LLM. Our chains have six kinds of sentence, and the
# labels can be computed exactly, because the facts are known: a lookup "Nice is in Peru." is an *error*
# because Nice is in France (`zoo.corpus.CITY_COUNTRY`), and "30 plus 42 is 82." is an error because
# 30 + 42 = 72.


# %% [exercise] split_sentences difficulty=1 importance=3 minutes=5
def split_sentences(reply: str) -> list[str]:
    """The sentences of a reply "think: S1. S2. ... so the answer is X.": "think:" dropped, each
    sentence with its final ".", the answer sentence last; spaces around sentences removed."""
    raise NotImplementedError()


# %% [hint]
# Where does a sentence end, and what comes right after that end in every one of these chains?

# %% [hint]
# `re.split` with a look-behind for "." followed by whitespace keeps the full stop on each sentence.


# %% [exercise] classify_sentence difficulty=3 importance=4 minutes=15
def classify_sentence(sentence: str) -> str:
    """The type of one chain sentence: "filler", "plan", "backtrack", "answer" (starts "so the answer
    is"), "lookup" ("<city> is in <country>." with the true country), "compute" ("<a> plus <b> is
    <total>." with the true total), "error" (a lookup or compute that is false), else "other"."""
    raise NotImplementedError()


# %% [hint]
# Four types are fixed strings from `zoo.chat_corpus` (`FILLERS`, `PLANS`, `BACKTRACK`, `ANSWER`). For the other
# two, parse the sentence and check its claim against the truth.

# %% [hint]
# `re.fullmatch(r"(.+) is in (.+)\.", s)` and `re.fullmatch(r"(\d+) plus (\d+) is (\d+)\.", s)`; the
# city must be a key of `CITY_COUNTRY` (a plan "I need the country of X." is not a lookup).

# %% [markdown]
# Graded against the generator: every sentence of every chain gets its recorded type.

# %%
for chain in chains:
    parts = split_sentences(chain.reply())
    assert parts[:-1] == chain.sentences and classify_sentence(parts[-1]) == "answer"
    assert [classify_sentence(s) for s in chain.sentences] == chain.types
print("types agree with the generator on", sum(len(c.sentences) for c in chains), "sentences")

# %% [markdown]
# Every method below gives each sentence of a chain a score. A method is graded by how often its
# highest-scoring sentence is the decisive one.


# %% [exercise] top1_rate difficulty=1 importance=3 minutes=5
def top1_rate(scores: list[Float[Tensor, " n"]], decisive: list[int]) -> float:
    """The share of chains whose highest score (the first on ties) is at the decisive sentence."""
    raise NotImplementedError()


# %% [hint]
# A chain whose scores are all equal puts its first sentence first.

# %% [markdown]
# ## Forced answers
#
# The cheapest black-box measure: cut the chain after k sentences, append "so the answer is", and read
# the probability of the chain's final answer as the next token. A sentence matters by how much it
# moves that probability. (This is the "early answering" of Lanham et al. 2023.)


# %% [exercise] forced_answer_importance difficulty=2 importance=4 minutes=15
def forced_answer_importance(model: HookedTransformer, chain: Chain) -> Float[Tensor, " n_sentences"]:
    """Force the answer after each cut: p_k = P(" " + chain.answer | chain.prefix(k) + " so the answer
    is") for k = 0..n (next-token probability over the whole vocabulary). Sentence i's importance is
    p_{i+1} - p_i."""
    raise NotImplementedError()


# %% [hint]
# Each cut is one text; batch them (they have different lengths) and read the logits at each text's last real token.

# %% [hint]
# `zc.encode(model, texts)` pads on the right and returns the mask of real tokens; the answer is one token,
# `model.tokenizer.convert_tokens_to_ids(" " + chain.answer)`.

# %%
forced = [forced_answer_importance(model, chain) for chain in chains]
print("forced-answer importance of a backtracked chain:", forced[N_PER_GROUP].round(decimals=2).tolist())

# %% [markdown]
# ## Resampling
#
# Now let the model write the rest itself. From each cut k we sample continuations (temperature 1; all
# cuts of all chains in one batch) and read each one's answer. Comparing cut i (sentence i resampled) with
# cut i + 1 (sentence i kept) gives sentence i's **resampling importance**.


# %% [exercise] answer_of difficulty=1 importance=2 minutes=5
def answer_of(continuation: str) -> str | None:
    """The answer X of the first "so the answer is X." in a continuation; None if there is none."""
    raise NotImplementedError()


# %% [hint]
# A continuation may run on into another made-up dialogue with its own answer: only the first counts.


# %% [exercise] resampling_importance difficulty=2 importance=4 minutes=10
def resampling_importance(rollouts: list[list[str]], answer: str) -> Float[Tensor, " n_sentences"]:
    """rollouts[k]: continuations sampled from the chain cut after k sentences (k = 0..n). With a_k
    the share of cut k's rollouts whose answer (answer_of) is `answer`, sentence i's importance is
    a_{i+1} - a_i: how much keeping sentence i, rather than resampling it, moves the answer."""
    raise NotImplementedError()


# %% [hint]
# There is one more cut than there are sentences; a rollout without an answer counts as not giving `answer`.

# %% [markdown]
# In templated chains a resampled sentence is often the *same* sentence, and then resampling it can show
# nothing. Bogdan et al.'s **counterfactual importance** keeps only the rollouts whose first sentence
# differs in meaning from the original one (they compared sentence embeddings against a similarity
# threshold; with templated sentences, "differs" can simply mean a different text).


# %% [exercise] counterfactual_importance difficulty=3 importance=4 minutes=15
def counterfactual_importance(
    rollouts: list[list[str]], sentences: list[str], answer: str
) -> Float[Tensor, " n_sentences"]:
    """Like resampling_importance, but a_i (the resampled side) counts only the rollouts of cut i
    whose first sentence (split_sentences of the continuation) differs from sentences[i]: sentence
    i's importance is a_{i+1} over all of cut i+1's rollouts minus the answer rate among those
    counterfactual rollouts; 0.0 when cut i has none."""
    raise NotImplementedError()


# %% [hint]
# The two sides differ: the kept side uses every rollout of cut i + 1, the resampled side only the
# rollouts of cut i that wrote something else first.

# %% [hint]
# A continuation may be empty; treat its first sentence as "" (different from any real sentence).

# %%
cuts = [(c, k) for c in range(len(chains)) for k in range(len(chains[c].sentences) + 1)]
samples = sample_rollouts(model, [chains[c].prefix(k) for c, k in cuts], N_SAMPLES, seed=0)
rollouts = [[samples[i] for i, (c, _) in enumerate(cuts) if c == index] for index in range(len(chains))]
resampled = [resampling_importance(r, chain.answer) for r, chain in zip(rollouts, chains)]
counterfactual = [counterfactual_importance(r, chain.sentences, chain.answer) for r, chain in zip(rollouts, chains)]
example = chains[N_PER_GROUP]
print(example.types)
print("resampling:    ", resampled[N_PER_GROUP].round(decimals=2).tolist())
print("counterfactual:", counterfactual[N_PER_GROUP].round(decimals=2).tolist())
print("a rollout from the plan:", rollouts[N_PER_GROUP][example.types.index("plan") + 1][0])
# %% [markdown]
# Bogdan et al. did not score a sentence by the change in the probability of the original answer. Their
# resampling importance is a **KL divergence** between two answer distributions: the answers of the
# rollouts from cut i + 1 (sentence i kept) against those from cut i (sentence i resampled), each estimated
# from answer counts with Laplace smoothing, so that an answer seen on only one side does not make the
# divergence infinite. It needs no "original answer" at all.


# %% [exercise] kl_importance difficulty=3 importance=4 minutes=15
def kl_importance(rollouts: list[list[str]]) -> Float[Tensor, " n_sentences"]:
    """The paper's resampling importance: sentence i's importance is KL(kept || resampled) between the
    answer distributions of cut i + 1 (sentence i kept) and of cut i (sentence i resampled). Each
    distribution comes from answer counts (answer_of; no answer, None, is an outcome too) with Laplace
    smoothing over the answers seen in the two cuts together: p(x) = (count(x) + 1) / (n + K), with n
    the cut's rollouts and K the number of distinct answers in both cuts. Natural log."""
    raise NotImplementedError()


# %% [hint]
# Both distributions must live on the same set of outcomes, or the divergence is undefined where one side
# never saw an answer. Which set is that, and which side is the "p" of KL(p || q)?

# %% [hint]
# Take the union of the two cuts' answers (None included) as the support; add 1 to every count on both
# sides; then sum p * log(p / q) with p from cut i + 1 and q from cut i.

# %% [markdown]
# Computed from the same rollouts as above, and ranked the same way:

# %%
kl = [kl_importance(r) for r in rollouts]
print("KL importance: ", kl[N_PER_GROUP].round(decimals=2).tolist())
for name, scores in (("resampling (change in P)", resampled), ("resampling (KL)", kl)):
    by_group = {
        group: round(
            top1_rate(
                [scores[i] for i, g in enumerate(groups) if g == group],
                [decisive[i] for i, g in enumerate(groups) if g == group],
            ),
            2,
        )
        for group in ("right", "backtracked", "standing")
    }
    print(f"{name:25s} all {top1_rate(scores, decisive):.2f}", by_group)
backtracked_rows = [i for i, g in enumerate(groups) if g == "backtracked"]
kl_top = [chains[i].types[int((kl[i] == kl[i].max()).nonzero()[0, 0])] for i in backtracked_rows]
change_top = [chains[i].types[int((resampled[i] == resampled[i].max()).nonzero()[0, 0])] for i in backtracked_rows]
print("top sentence in backtracked chains, KL:", kl_top)
print("top sentence in backtracked chains, change in P:", change_top)
assert all((k >= 0).all() for k in kl)
assert top1_rate(kl, decisive) <= top1_rate(resampled, decisive) and 0.3 <= top1_rate(kl, decisive) <= 0.7
assert kl_top.count("error") >= N_PER_GROUP // 2 and change_top.count("error") == 0

# %% [markdown]
# The KL measure ranks the decisive sentence first no more often than the change in probability does (about
# half the chains), and in at least half of the backtracked chains it ranks the **error** first, a sentence the change
# in probability never ranks first. The reason is the sign: keeping a wrong lookup moves the answers *away*
# from the final answer (a negative change in probability), and a divergence counts a move away as much as
# a move toward. The paper's measure asks "does this sentence change what the model answers?", which the
# error does; ours asks "does it push toward the answer the chain ended with?". Being unsigned, the KL
# also turns sampling noise into importance: with 8 rollouts per cut, one rollout changing its answer
# already gives a positive divergence, one reason the paper used 100 rollouts.


# %% [markdown]
# ## Sentence-level attention and receiver heads
#
# Averaging a head's token-to-token attention over sentences gives a sentence-to-sentence matrix. The
# attention a sentence *receives* from the later ones (its column below the diagonal) is its "vertical
# score". Bogdan et al. found heads whose vertical scores are concentrated on a few sentences (high
# kurtosis across sentences): receiver heads. A sentence's receiver-head score is its vertical score
# averaged over the top heads.


# %% [exercise] sentence_attention difficulty=2 importance=4 minutes=10
def sentence_attention(
    pattern: Float[Tensor, "query key"], bounds: list[tuple[int, int]]
) -> Float[Tensor, "n_sentences n_sentences"]:
    """Sentence-to-sentence attention: entry [i, j] is the attention that the tokens of sentence i
    pay to the tokens of sentence j (summed over j's tokens), averaged over i's tokens."""
    raise NotImplementedError()


# %% [hint]
# Two reductions in a fixed order: over the key tokens of j first (a share of attention), then over the query tokens of i.


# %% [exercise] vertical_scores difficulty=1 importance=3 minutes=5
def vertical_scores(matrix: Float[Tensor, "n_sentences n_sentences"], min_gap: int = 1) -> Float[Tensor, " n"]:
    """How much attention each sentence j receives from later sentences: the mean of column j over
    the rows i >= j + min_gap (0.0 where there are none)."""
    raise NotImplementedError()


# %% [hint]
# Column j, rows from j + min_gap on; the last sentences have no such rows.


# %% [exercise] kurtosis difficulty=2 importance=3 minutes=5
def kurtosis(x: Float[Tensor, "... n"]) -> Float[Tensor, "..."]:
    """Kurtosis over the last dimension: the mean fourth power of the deviations from the mean over
    the squared (population) variance. A normal sample gives about 3; one large outlier, much more."""
    raise NotImplementedError()


# %% [hint]
# Not the "excess" kurtosis (no - 3), and the variance divides by n, not n - 1.

# %% [markdown]
# One forward pass over all chains (right-padded; causal attention never sees the padding) gives every
# head's pattern. The vertical scores of each head are pooled over the sentences of all chains (the
# answer sentence, which nothing follows, left out), and the kurtosis is taken over that pool.

# %%
HEADS = [f"L{layer}H{head}" for layer in range(model.cfg.n_layers) for head in range(model.cfg.n_heads)]


@torch.inference_mode()
def head_vertical_scores(chains: list[Chain]) -> list[Float[Tensor, "head sentence"]]:
    """Each chain's vertical scores per head (layers then heads), the answer sentence left out."""
    tokens, _ = zc.encode(model, [chain.text() for chain in chains])
    _, cache = model.run_with_cache(tokens, names_filter=lambda name: name.endswith("hook_pattern"))
    patterns = torch.stack([cache["pattern", layer] for layer in range(model.cfg.n_layers)], 1)  # chain layer head q k
    out = []
    for c, chain in enumerate(chains):
        b = sentence_bounds(model, chain)
        out.append(torch.stack([vertical_scores(sentence_attention(h, b))[:-1] for h in patterns[c].flatten(0, 1)]))
    return out


vertical = head_vertical_scores(chains)
head_kurtosis = kurtosis(torch.cat(vertical, 1))
receivers = head_kurtosis.topk(2).indices
receiver_scores = [v[receivers].mean(0) for v in vertical]
print("kurtosis per head:", dict(zip(HEADS, head_kurtosis.round(decimals=2).tolist())))
print("receiver heads:", [HEADS[i] for i in receivers])
assert 1.5 <= head_kurtosis.min() and head_kurtosis.max() <= 3.2  # no head stands out in chains this short
assert [HEADS[i] for i in receivers] == ["L0H0", "L0H2"]

# %% [markdown]
# The kurtosis values lie close together (1.6 to 3.0), so which heads come out on top is fragile: drawing
# twice as many chains changes the pick. Each head can also be used alone, as a ranking of sentences by
# their vertical score; how often does that put the decisive sentence first?

# %%
per_head = {name: top1_rate([v[h] for v in vertical], decisive) for h, name in enumerate(HEADS)}
print("decisive sentence first, per head:", {name: round(rate, 2) for name, rate in per_head.items()})
more = reasoning_chains(2 * N_PER_GROUP, seed=0)
vertical_more = head_vertical_scores(more)
receivers_more = kurtosis(torch.cat(vertical_more, 1)).topk(2).indices
rate_more = top1_rate([v[receivers_more].mean(0) for v in vertical_more], [c.decisive for c in more])
print(
    f"with {2 * N_PER_GROUP} chains per group: receiver heads {[HEADS[i] for i in receivers_more]}, rate {rate_more:.2f}"
)
assert per_head["L0H0"] >= 0.9 and per_head["L1H3"] <= 0.2
assert "L1H3" in [HEADS[i] for i in receivers_more] and rate_more <= 0.7


# %% [finding] best_head difficulty=2 importance=3 minutes=5
# Assign the name ("L<layer>H<head>") of the head whose vertical scores, used alone, put the decisive
# sentence first most often on the chains of this notebook.
best_head = ...

# %% [hint]
# You measured one rate per head just above; take the largest.

# %% [solution]
best_head = max(per_head, key=per_head.get)

# %% [markdown]
# L0H0 ranks the decisive sentence first in nearly every chain (L1H3 almost never), but look at what that means. The decisive
# sentence is always the **last** sentence before the answer, and its vertical score is the attention
# from the answer sentence alone, the nearest one: any head that looks back a short way ranks it first.
# Bogdan et al. excluded nearby sentences from vertical scores for this reason; here that would leave the
# last sentences with no score at all. The position of the sentence is a baseline every method must be
# compared with (it is in the table below).

# %% [markdown]
# ## Attention suppression
#
# The causal white-box test: in every head of every layer, stop the tokens after sentence j attending to
# sentence j's tokens (set their attention scores to minus infinity before the softmax), and measure on
# each later sentence i the mean KL divergence between the original and the suppressed next-token
# distributions. A sentence's suppression score is the KL it causes on the answer sentence.


# %% [exercise] suppression_kl difficulty=3 importance=5 minutes=20
def suppression_kl(
    model: HookedTransformer, tokens: Int[Tensor, " pos"], bounds: list[tuple[int, int]]
) -> Float[Tensor, "n_sentences n_sentences"]:
    """Entry [i, j] (i > j): the mean over sentence i's tokens of KL(original || suppressed) between
    the next-token distributions of one forward pass and of one in which no token after sentence j
    may attend to sentence j's tokens (in every head of every layer); zero for i <= j."""
    raise NotImplementedError()


# %% [hint]
# One suppressed forward pass per sentence j: batch them, each row with its own mask. Which hook sees the
# scores before the softmax?

# %% [hint]
# `blocks.{layer}.attn.hook_attn_scores` has shape [batch, head, query, key]; mask queries >= end of j and
# keys in [start, end) with `masked_fill(..., -inf)`. KL(p || q) = sum p (log p - log q) over the vocabulary.

# %%
bounds = [sentence_bounds(model, chain) for chain in chains]
suppression = [suppression_kl(model, zc.encode(model, [c.text()])[0][0], b) for c, b in zip(chains, bounds)]
suppressed = [matrix[-1, :-1] for matrix in suppression]  # effect of each sentence on the answer sentence
matrix = suppression[N_PER_GROUP]
labels = [*example.types, "answer"]
fig = go.Figure(go.Heatmap(z=matrix.tolist(), x=labels, y=labels, colorscale="Blues"))
fig.update_layout(
    title="KL on sentence i (rows) when sentence j (columns) is suppressed",
    yaxis_autorange="reversed",
    height=380,
).show()
assert int(matrix[-1, :-1].argmax()) == example.decisive  # the answer depends most on the correction

# %% [markdown]
# ## Which method finds the decisive sentence?


# %%
methods = {
    "forced": forced,
    "resampling": resampled,
    "counterfactual": counterfactual,
    "receiver": receiver_scores,
    "suppression": suppressed,
    "last sentence (baseline)": [torch.arange(len(chain.sentences)).float() for chain in chains],
}
rates = {}
for name, scores in methods.items():
    for group in ("right", "backtracked", "standing", "all"):
        rows = [i for i, g in enumerate(groups) if group in (g, "all")]
        rates[name, group] = top1_rate([scores[i] for i in rows], [decisive[i] for i in rows])
fig = go.Figure(
    [
        go.Bar(name=group, x=list(methods), y=[rates[name, group] for name in methods])
        for group in ("right", "backtracked", "standing", "all")
    ]
)
fig.update_layout(title="Decisive sentence ranked first", yaxis_title="share of chains", height=380).show()
for name in methods:
    print(f"{name:25s}", {group: round(rates[name, group], 2) for group in ("right", "backtracked", "standing", "all")})

# %% [markdown]
# Attention suppression and forced answers put the decisive sentence first in nearly every chain (at
# least 85%), as often as the position baseline does; so do the receiver heads picked on these chains,
# for the positional reason above. Counterfactual resampling does worse (between 55% and 85%), plain
# resampling worse again, and both do worst on backtracked chains (at most half). Which sentence do they
# pick there instead?

# %%
assert rates["forced", "all"] >= 0.85 and rates["suppression", "all"] >= 0.85 and rates["receiver", "all"] >= 0.85
assert rates["last sentence (baseline)", "all"] == 1.0
assert 0.55 <= rates["counterfactual", "all"] <= 0.85
assert rates["resampling", "all"] <= rates["counterfactual", "all"] - 0.05
assert rates["resampling", "backtracked"] <= 0.5 and rates["counterfactual", "backtracked"] <= 0.5
backtracked = [i for i, g in enumerate(groups) if g == "backtracked"]
picked = [chains[i].types[int((counterfactual[i] == counterfactual[i].max()).nonzero()[0, 0])] for i in backtracked]
print("counterfactual resampling's top sentence in backtracked chains:", picked)
assert picked.count("backtrack") >= N_PER_GROUP // 2

# %% [markdown]
# "No, wait." In at least half of the backtracked chains, counterfactual resampling ranks the backtrack
# first, as Bogdan et al. found backtracking sentences to be anchors. Both answers are right, to different
# questions: the generator's label says which sentence the answer *copies* (the correction), while
# resampling asks which sentence, replaced by something else, changes the answer. Without "No, wait." the
# model often lets the error stand (chat-mini backtracks after a wrong lookup only about 60% of the time,
# measured below with `zoo.chat.chain_metrics`), while after "No, wait." it tends to write a correction of
# its own, so replacing the correction changes the answer less. Grading a method against planted truth
# tests the question you planted, too.

# %%
backtrack_rate = zc.chain_metrics(model)["cot_backtrack_after_error"]
print(f"P(backtrack | wrong lookup) = {backtrack_rate:.2f}")
assert 0.45 <= backtrack_rate <= 0.75


# %% [finding] reliable_methods difficulty=3 importance=5 minutes=10
# Assign the set of method names (keys of `methods`, the baseline left out) that rank the decisive
# sentence first in at least 85% of all chains here.
reliable_methods = ...

# %% [hint]
# Read the "all" column of the rates you just measured.

# %% [solution]
reliable_methods = {name for name in methods if rates[name, "all"] >= 0.85 and "baseline" not in name}

# %% [markdown]
# ## Where this differs from the paper
#
# In Bogdan et al.'s long chains, resampling and counterfactual importance singled out planning and
# backtracking sentences, and receiver heads were a useful white-box proxy. Here the planted answer
# follows one sentence, always the last lookup or sum before the answer, so position alone finds it and
# the simplest method (forcing the answer) nearly does; resampling is blunted by how predictable the next
# sentence is in a templated chain; and two layers of four heads over at most five sentences give
# kurtosis little to separate, so the receiver heads it picks change with the sample. Before trusting a
# method where nobody knows the truth, test it where you planted the answer, next to the dumbest baseline
# you can think of.
