# %% [markdown]
# # 4.7 Capstone: estimating the probability of rare outputs
#
# A model that misbehaves on one input in a million passes every evaluation built from a few thousand
# samples, and distribution shift (or an adversary) can make that input common. The Alignment Research
# Center's *low probability estimation* agenda asks for the probability of a bad output under a stated input
# distribution even when it is far too small to see by sampling. Wu and Hilton (2024, *Estimating the
# probabilities of rare outputs in language models*) made the problem concrete: the input is a sequence of
# tokens drawn independently, the "bad output" is one chosen token being the argmax at the last position,
# and the true probability (between about 1e-9 and 1e-5 in their setting) is known from a huge amount of
# sampling. They compared two families of methods: **importance sampling**, which searches for the inputs
# that give the rare output and reweights them (their ITGIS, independent-token gradient importance sampling,
# and MHIS, a Metropolis-Hastings sampler), and **activation extrapolation**, which fits a distribution to
# the logits of ordinary inputs and reads off its tail (their QLD, quadratic logit decomposition, and GLD, a
# Gaussian fit to the logit difference). They found that importance sampling beat activation extrapolation,
# and both beat naive sampling.
#
# Here the input distribution is small enough to **enumerate**: every sequence of 3 tokens from a vocabulary
# of 32, 32,768 inputs, so the exact answer is one batched pass. You will
#
# 1. enumerate the inputs and compute the exact probability, and test the enumeration against a brute-force
#    loop on a tiny case;
# 2. estimate it by naive sampling and see why that fails at small budgets;
# 3. build ITGIS: gradients of the target's margin with respect to the input embeddings give each token a
#    score at each position, and a softmax of the scores is the proposal;
# 4. fit a Gaussian to the margin and read off its tail (GLD);
# 5. compare the three with the exact answer as error against compute budget;
# 6. explain the comparison with the exact variance of each estimator, which the enumeration makes
#    computable, and measure how far ITGIS is from the best an independent proposal could do.
#
# **Where this setting differs from the paper's.** The model is the zoo's `attn-only-1l` (one attention
# layer, d_model 64, a 626-token vocabulary, trained on random tokens with repeated spans), not their 1-, 2-
# and 4-layer models (d_model 512, trained on text and code); the inputs are 3 tokens from a 32-token slice
# of the vocabulary, enumerated exactly (theirs were longer sequences from eight independent-token
# distributions, with the truth estimated from 2^32 samples); the target is one token with probability about
# 4e-4 (theirs were 256 tokens with probabilities between 1e-9 and 1e-5, at a budget of 2^16 model calls);
# ITGIS here scores tokens with the gradient of the target's **margin** over the best other logit, from one
# batch of uniform inputs, where theirs used the target's logit and kept updating the scores on samples from
# the current proposal; the error measure is the mean relative error over 20 seeds, not their loss inspired
# by the Itakura-Saito divergence; and MHIS and QLD are left out. The numbers asserted below are this
# model's, not theirs.

# %%
import itertools
import math
from collections.abc import Callable

import plotly.graph_objects as go
import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

import zoo
from tests.checks.chapter4_alignment_science.rare_outputs import check  # noqa: F401 (used by the check cells)

torch.set_num_threads(1)
MarginFn = Callable[[Tensor], Tensor]
model = zoo.load_model("attn-only-1l", device="cpu")
VOCAB = torch.arange(200, 232)  # the 32 tokens each position is drawn from, uniformly
K = 3  # positions after the BOS token
TARGET = 429  # the rare output: this token as the argmax at the last position
print(f"{len(VOCAB) ** K:,} inputs; BOS token {model.tokenizer.bos_token_id}; vocabulary {model.cfg.d_vocab}")

# %% [markdown]
# ## Part 1: the exact answer
#
# With a distribution this small, enumeration is the ground truth: list every input once, score it, count.
# List them in a fixed order, so that input number i is i written in base 32 (the last position varying
# fastest); later you will look inputs up in that table by computing their index.


# %% [exercise] all_inputs difficulty=1 importance=3 minutes=5
def all_inputs(vocab: Int[Tensor, " v"], k: int) -> Int[Tensor, "n k"]:
    """Every sequence of k tokens from `vocab`, one a row, len(vocab) ** k rows in lexicographic order
    of positions in `vocab` (the last position varies fastest), so row i is i written in base len(vocab)."""
    raise NotImplementedError()


# %% [hint]
# Think of row i as a k-digit number in base len(vocab): which digit belongs to which position?

# %% [hint]
# `torch.cartesian_prod` gives this order for k >= 2, but not the shape you need for k = 1; integer division
# and remainder by powers of len(vocab) work for every k.

# %% [markdown]
# The event is "the target is the argmax". Its soft version, the **margin** (the target's logit minus the
# largest other logit), is positive exactly on the event and says how far each input is from it: the
# extrapolation method fits a distribution to it, and importance sampling follows its gradient.


# %% [exercise] target_margin difficulty=1 importance=3 minutes=5
def target_margin(logits: Float[Tensor, "n d_vocab"], target: int) -> Float[Tensor, " n"]:
    """The target's logit minus the largest other logit, per row: positive exactly when the target is
    the strict argmax."""
    raise NotImplementedError()


# %% [hint]
# The largest *other* logit: what must happen to the target's own entry before you take the max?

# %% [hint]
# Clone the logits, set the target's column to -inf, and take the max over the last dimension.


# %% [exercise] logit_margins difficulty=2 importance=4 minutes=10
def logit_margins(
    model: HookedTransformer, inputs: Int[Tensor, "n k"], target: int, batch_size: int = 4096
) -> Float[Tensor, " n"]:
    """The target margin (`target_margin`) at the last position for each input, with the model's BOS
    token prepended, computed without gradients in batches of at most `batch_size` rows."""
    raise NotImplementedError()


# %% [hint]
# The model saw a BOS token before every training row. How do you add one to each input, and which position's
# logits predict the next token?

# %% [hint]
# `torch.full((len(batch), 1), model.tokenizer.bos_token_id)` concatenated in front; `model(tokens)[:, -1]`;
# `torch.no_grad()` around the loop and `torch.cat` of the batches at the end.

# %% [markdown]
# Enumeration is only as good as the enumerating code, so first test it against the most literal version
# possible: a Python loop over `itertools.product`, one input and one forward pass at a time, on 4 tokens
# and 3 positions (64 inputs, two of which give the target).

# %%
tiny_vocab = torch.tensor([5, 200, 202, 216])
brute = []
for sequence in itertools.product(tiny_vocab.tolist(), repeat=3):
    with torch.no_grad():
        logits = model(torch.tensor([[model.tokenizer.bos_token_id, *sequence]]))[0, -1]
    brute.append((sequence, logits[TARGET] - logits[torch.arange(model.cfg.d_vocab) != TARGET].max()))
tiny_margins = logit_margins(model, all_inputs(tiny_vocab, 3), TARGET, batch_size=5)
assert [tuple(row) for row in all_inputs(tiny_vocab, 3).tolist()] == [s for s, _ in brute]  # the same order
assert torch.allclose(tiny_margins, torch.stack([m for _, m in brute]), atol=1e-4)  # and the same margins
assert (tiny_margins > 0).sum() == sum(m > 0 for _, m in brute) == 2  # so the same count of target outputs
print(f"tiny case: {int((tiny_margins > 0).sum())} of 64 inputs give token {TARGET}")

# %% [markdown]
# Now the real distribution: 32,768 inputs, a second or two on the CPU. Their margins, cached once here, are
# the truth every estimator is graded against.

# %%
inputs = all_inputs(VOCAB, K)
margins = logit_margins(model, inputs, TARGET)
hits = int((margins > 0).sum())
p_exact = hits / len(inputs)
print(f"token {TARGET} is the argmax on {hits} of {len(inputs):,} inputs: p = {p_exact:.3e}")
assert hits == 13 and abs(p_exact - 3.97e-4) < 1e-6
print(f"margins: mean {margins.mean():.2f}, std {margins.std():.2f}, max {margins.max():.2f}")

# %% [finding] rare_probability difficulty=2 importance=4 minutes=5
# Assign the exact probability (a float) that token 429 is the strict argmax at the last position when the
# 3 input tokens are drawn uniformly from tokens 200-231.
rare_probability = ...

# %% [hint]
# Enumeration gives it directly: how many inputs give the target, out of how many equally likely ones?

# %% [solution]
rare_probability = p_exact

# %% [markdown]
# Every estimator below calls the model only through a **margin function** from a batch of inputs to their
# margins. On the model that is `logit_margins`; since the model is deterministic, looking the answer up in
# the enumerated table gives the same numbers far faster, which lets you repeat every estimator over many
# seeds and budgets. The cost of an estimator is still the number of inputs it asks about.

# %%
POWERS = len(VOCAB) ** torch.arange(K - 1, -1, -1)
position_of = torch.full((model.cfg.d_vocab,), -1)
position_of[VOCAB] = torch.arange(len(VOCAB))


def table_margins(x: Int[Tensor, "n k"]) -> Float[Tensor, " n"]:
    """The enumerated margin of each input: row i of `inputs` is i written in base 32."""
    return margins[(position_of[x] * POWERS).sum(-1)]


def model_margins(x: Int[Tensor, "n k"]) -> Float[Tensor, " n"]:
    return logit_margins(model, x, TARGET)


sample = VOCAB[torch.randint(len(VOCAB), (64, K), generator=torch.Generator().manual_seed(0))]
assert torch.allclose(table_margins(sample), model_margins(sample), atol=1e-4)

# %% [markdown]
# ## Part 2: naive sampling
#
# Draw n inputs from the distribution and count. The estimate is unbiased, but with p = 4e-4 a budget of
# n = 1,000 sees no hit at all with probability (1 - p)^1000, about 2 in 3, and then reports 0.


# %% [exercise] naive_estimate difficulty=1 importance=3 minutes=5
def naive_estimate(margin_fn: MarginFn, vocab: Int[Tensor, " v"], k: int, n: int, generator: torch.Generator) -> float:
    """The fraction of n inputs, drawn uniformly as `vocab[torch.randint(len(vocab), (n, k), generator=generator)]`,
    whose margin is positive."""
    raise NotImplementedError()


# %% [hint]
# Draw the inputs exactly as the docstring says (the check replays the same random numbers), then count.

# %% [hint]
# `(margin_fn(inputs) > 0).float().mean().item()`.

# %%
naive_1000 = [naive_estimate(table_margins, VOCAB, K, 1000, torch.Generator().manual_seed(s)) for s in range(40)]
zero_share = sum(e == 0 for e in naive_1000) / len(naive_1000)
print(f"n = 1000: {zero_share:.0%} of 40 seeds estimate 0 (expected {(1 - p_exact) ** 1000:.0%})")
assert abs((1 - p_exact) ** 1000 - 0.67) < 0.01 and 0.45 <= zero_share <= 0.9
assert naive_estimate(model_margins, VOCAB, K, 512, torch.Generator().manual_seed(1)) == naive_estimate(
    table_margins, VOCAB, K, 512, torch.Generator().manual_seed(1)
)  # the table stands in for the model exactly

# %% [markdown]
# ## Part 3: importance sampling with gradients (ITGIS)
#
# Importance sampling draws inputs from a proposal q that favours the event and corrects with the weight
# p(x) / q(x): the mean of 1[event] p(x) / q(x) over draws from q is still exactly P(event), and its variance
# is small when q is close to the distribution of inputs *given* the event. Wu and Hilton's ITGIS keeps the
# proposal independent across positions, so it can be written as one distribution over tokens per
# position, and scores the tokens by a first-order guess: if the gradient of the target's logit with respect
# to the embedding at position i is g_i, putting token t there changes it by about W_E[t] . g_i. A softmax of
# those scores over the allowed tokens, at a temperature, is the proposal.
#
# Take the gradient of the margin (the paper used the target's logit alone; the margin is what decides the
# event), through a hook on `hook_embed` (the token
# embeddings, before the positional ones are added), averaged over a batch of uniform inputs.


# %% [exercise] embedding_gradients difficulty=3 importance=4 minutes=20
def embedding_gradients(
    model: HookedTransformer, inputs: Int[Tensor, "n k"], target: int
) -> Float[Tensor, "k d_model"]:
    """The gradient of the target margin with respect to the token embedding (`hook_embed`) at each of
    the k input positions (BOS excluded), averaged over the inputs. The model's weights get no gradient."""
    raise NotImplementedError()


# %% [hint]
# A hook can hand the model a tensor of its own. Which tensor do you need a gradient for, and how do you make
# sure it is a leaf that autograd tracks (and that the weights are not)?

# %% [hint]
# In the hook, replace the embedding by `embed.detach().requires_grad_(True)` and keep it; then
# `torch.autograd.grad(target_margin(logits, target).sum(), kept)`; drop the BOS column and average over rows.
# Wrap it in `torch.enable_grad()` in case the caller turned gradients off.


# %% [exercise] itgis_proposal difficulty=2 importance=4 minutes=10
def itgis_proposal(
    grads: Float[Tensor, "k d_model"],
    W_E: Float[Tensor, "d_vocab d_model"],
    vocab: Int[Tensor, " v"],
    temperature: float,
) -> Float[Tensor, "k v"]:
    """Independent-token proposal: at position i, token vocab[j] gets probability proportional to
    exp(W_E[vocab[j]] . grads[i] / temperature), the first-order gain in margin from putting it there."""
    raise NotImplementedError()


# %% [hint]
# Which rows of W_E are the allowed tokens, and over which dimension does each position's distribution sum
# to 1?

# %% [hint]
# `grads @ W_E[vocab].T` is k x v; divide by the temperature and softmax over the last dimension.


# %% [exercise] importance_estimate difficulty=3 importance=5 minutes=20
def importance_estimate(
    margin_fn: MarginFn, vocab: Int[Tensor, " v"], proposal: Float[Tensor, "k v"], n: int, generator: torch.Generator
) -> float:
    """Importance-sampling estimate of P(margin > 0) under the uniform distribution on vocab ** k: draw
    positions `torch.multinomial(proposal, n, replacement=True, generator=generator).T` (n x k indices into
    vocab), and average 1[margin > 0] * p(x) / q(x), where p(x) = len(vocab) ** -k and q(x) is the product of
    the proposal's probabilities of the drawn indices."""
    raise NotImplementedError()


# %% [hint]
# Which distribution are the draws from, and which one do you want the probability under? The weight corrects
# one into the other; average it over *all* n draws, hits or not.

# %% [hint]
# `proposal.gather(1, idx.T)` is k x n: the probability of each drawn index at its position. Multiply over
# positions (or sum logs), and divide len(vocab) ** -k by it.

# %%
gradient_batch = VOCAB[torch.randint(len(VOCAB), (256, K), generator=torch.Generator().manual_seed(0))]
grads = embedding_gradients(model, gradient_batch, TARGET)
W_E = model.W_E.detach()
proposal = itgis_proposal(grads, W_E, VOCAB, temperature=0.3)
hit_inputs = inputs[margins > 0]
hit_q = proposal.gather(1, position_of[hit_inputs].T).prod(0)  # the proposal's probability of each hit
boost = (hit_q / len(VOCAB) ** -K).median().item()
print(f"the proposal makes a typical hit input {boost:.0f} times likelier than the uniform distribution does")
assert 8 < boost < 30  # about 15
estimate = importance_estimate(model_margins, VOCAB, proposal, 1024, torch.Generator().manual_seed(0))
print(f"ITGIS, 1024 model calls: {estimate:.3e} (exact {p_exact:.3e})")
assert abs(estimate - p_exact) / p_exact < 0.5

# %% [markdown]
# What did the linear guess find? Every one of the 13 hit inputs ends in token 216, with 202 or 228 in the
# middle. The proposal found the middle: 202 is its favourite there, at more than 5 times its uniform share
# of 1/32, and 228 is among its top 3. At the last position it missed: 216 gets only about twice its uniform
# share, behind several other tokens. The gradient at uniform inputs is a local guess, and the event here
# needs two tokens together; updating the proposal with gradients at its own samples (as the paper's ITGIS
# does) is the natural next step.

# %%
print("hits:", hit_inputs.tolist())
middle, last = position_of[202], position_of[216]
print(f"proposal: P(202 in the middle) = {proposal[1, middle]:.3f}, P(216 last) = {proposal[2, last]:.3f}")
assert (hit_inputs[:, 2] == 216).all() and set(hit_inputs[:, 1].tolist()) == {202, 228}
assert (
    proposal[1].argmax() == middle
    and proposal[1, middle] > 5 / 32
    and (proposal[1] > proposal[1, position_of[228]]).sum() <= 2
)
assert 1.5 / 32 < proposal[2, last] < 3 / 32 and (proposal[2] > proposal[2, last]).sum() >= 3

# %% [markdown]
# ## Part 4: activation extrapolation (a Gaussian tail)
#
# Wu and Hilton's GLD baseline fits a Gaussian to the difference between the target's logit and the largest
# logit on ordinary samples, and reports the Gaussian's probability of that difference being positive. It
# needs no hit at all, which is its appeal: the tail is inferred from the bulk.


# %% [exercise] gaussian_tail_estimate difficulty=2 importance=4 minutes=10
def gaussian_tail_estimate(margins: Float[Tensor, " n"]) -> float:
    """P(X > 0) for X normal with the sample mean and (unbiased) standard deviation of `margins`."""
    raise NotImplementedError()


# %% [hint]
# Standardise: X > 0 is the same event as Z > -mean / std for a standard normal Z.

# %% [hint]
# P(Z > z) = erfc(z / sqrt(2)) / 2 (`math.erfc`), which stays accurate far out in the tail, where 1 - Phi does
# not.

# %%
gaussian_all = gaussian_tail_estimate(margins)
print(f"Gaussian tail from all {len(margins):,} margins: {gaussian_all:.3e}, {gaussian_all / p_exact:.0f}x the truth")
skew = (((margins - margins.mean()) / margins.std()) ** 3).mean().item()
two_sigma = (margins > margins.mean() + 2 * margins.std()).float().mean().item()
print(f"skewness of the margin: {skew:.2f}; above mean + 2 std: {two_sigma:.2%} (a Gaussian: 2.28%)")
assert 30 < gaussian_all / p_exact < 40 and skew < -0.2 and two_sigma < 0.01

# %% [markdown]
# The extrapolation is **biased**, and no budget fixes it: even fitted to all 32,768 margins (no sampling
# error at all), it puts about 34 times too much probability on the target. The margin's distribution is
# skewed to the left and its upper tail is light: under 1% of inputs lie more than 2 standard deviations
# above the mean, where a Gaussian puts 2.3% (both asserted above). The fit, dominated by the bulk, cannot
# know that. Wu and Hilton fitted a correction to each method's outputs on tokens of known probability before
# comparing them; without one, a method like this is off by a roughly fixed factor.

# %% [finding] gaussian_log10_ratio difficulty=3 importance=4 minutes=10
# Assign log10 of (the Gaussian-tail estimate fitted to all 32,768 margins) / (the exact probability): how
# many orders of magnitude the extrapolation is off, and in which direction (a float).
gaussian_log10_ratio = ...

# %% [hint]
# Fit to every margin (no sampling), then compare with the enumeration. Positive means an overestimate.

# %% [solution]
gaussian_log10_ratio = math.log10(gaussian_tail_estimate(margins) / p_exact)

# %% [markdown]
# ## Part 5: error against compute budget
#
# Compare the three at equal cost. Naive sampling and the Gaussian fit spend their whole budget on margins of
# uniform inputs. ITGIS first spends 256 forward and backward passes on the gradient; counting a backward pass
# as two forwards, that is 768 forward passes, so at a budget of B it draws B - 768 samples.


# %% [exercise] error_by_budget difficulty=2 importance=3 minutes=10
def error_by_budget(
    estimator: Callable[[int, torch.Generator], float], budgets: list[int], seeds: list[int], truth: float
) -> Float[Tensor, " b"]:
    """For each budget n, the mean over seeds s of the relative error |estimate - truth| / truth, where
    estimate = estimator(n, torch.Generator().manual_seed(s)); a float32 tensor, one entry a budget."""
    raise NotImplementedError()


# %% [hint]
# An average of signed errors would let over- and underestimates cancel. What should each seed contribute?

# %% [hint]
# Two loops (budgets outside, seeds inside), `abs(estimate - truth) / truth`, then `torch.tensor` of the means.

# %%
GRADIENT_COST = 3 * len(gradient_batch)
BUDGETS = [1024, 2048, 4096, 8192, 16384]
SEEDS = list(range(20))
estimators = {
    "naive sampling": lambda n, gen: naive_estimate(table_margins, VOCAB, K, n, gen),
    "ITGIS (T = 0.3)": lambda n, gen: importance_estimate(table_margins, VOCAB, proposal, n - GRADIENT_COST, gen),
    "Gaussian tail": lambda n, gen: gaussian_tail_estimate(
        table_margins(VOCAB[torch.randint(len(VOCAB), (n, K), generator=gen)])
    ),
}
errors = {name: error_by_budget(f, BUDGETS, SEEDS, p_exact) for name, f in tqdm(estimators.items())}
fig = go.Figure([go.Scatter(x=BUDGETS, y=e, name=name, mode="lines+markers") for name, e in errors.items()])
fig.update_layout(
    title=f"Estimating P(argmax = {TARGET}) = {p_exact:.1e}: mean relative error over 20 seeds",
    xaxis_title="budget (forward passes)",
    yaxis_title="|estimate - p| / p",
    xaxis_type="log",
    yaxis_type="log",
    height=400,
).show()
naive_err, itgis_err, gauss_err = (errors[name][BUDGETS.index(2048)].item() for name in estimators)
print(f"at 2048 forward passes: naive {naive_err:.2f}, ITGIS {itgis_err:.2f}, Gaussian {gauss_err:.1f}")
print(f"naive / ITGIS error ratio: {naive_err / itgis_err:.1f}")
assert 2.5 < naive_err / itgis_err < 5 and 0.2 < itgis_err < 0.35 and 0.8 < naive_err < 1.1
assert (errors["ITGIS (T = 0.3)"] < errors["naive sampling"]).all()
assert ((28 < errors["Gaussian tail"]) & (errors["Gaussian tail"] < 40)).all()  # a bias that no budget shrinks
assert abs(1 / p_exact - 2520) < 1

# %% [markdown]
# At every budget, ITGIS's error is below naive sampling's; at 2048 forward passes (gradient included) it is
# about 3.4 times smaller (0.27 against 0.93; the ratio is asserted to lie between 2.5 and 5). Naive sampling
# needs about 1 / p = 2,520 samples to expect a single hit, so below that it mostly says 0. The Gaussian tail
# is the other way round: it is wrong by the same factor of about 34 at every budget, which is why its curve
# is flat. This matches the order Wu and Hilton report for importance sampling against naive
# sampling; against their finding that activation extrapolation also beats naive sampling, an uncalibrated
# Gaussian here does not.

# %% [markdown]
# ## Part 6: why, from the exact variance
#
# With n draws, the importance-sampling estimate has variance (E_q[w(x)^2] - P^2) / n, where w(x) = 1[hit]
# p(x) / q(x), and E_q[w^2] is the sum over the hit inputs of p(x)^2 / q(x). Outside a toy that sum is
# unknowable (it needs the hits); here the enumeration lists them, so you can compute every estimator's
# standard error exactly instead of sampling it. Naive sampling is the special case q = p.


# %% [exercise] importance_relative_std difficulty=3 importance=4 minutes=15
def importance_relative_std(proposal: Float[Tensor, "k v"], hit_positions: Int[Tensor, "h k"], n: int) -> float:
    """The exact relative standard error (standard deviation / P) of the importance-sampling estimate with
    n draws from the independent proposal, when the inputs with the event are the rows of `hit_positions`
    (indices into the vocabulary, one row each, no repeats) and p is uniform: one draw's estimate
    1[hit] p(x) / q(x) has mean P = h * v ** -k and second moment, the sum over hits of p(x) ** 2 / q(x)."""
    raise NotImplementedError()


# %% [hint]
# The second moment of one draw is an expectation under q of a quantity that is zero off the hits. Write it
# as a sum over inputs: what does the factor q(x) do to one of the two p(x) / q(x) factors?

# %% [hint]
# q(x) for each hit is `proposal.gather(1, hit_positions.T).prod(0)`; the variance of the mean of n draws is
# (second - P ** 2) / n; divide its square root by P. Work in float64: p(x) ** 2 is tiny.

# %%
hit_positions = position_of[hit_inputs]
uniform = torch.full((K, len(VOCAB)), 1 / len(VOCAB))
std_naive = importance_relative_std(uniform, hit_positions, 2048)
std_itgis = importance_relative_std(proposal, hit_positions, 2048 - GRADIENT_COST)
print(f"exact relative std at 2048 forward passes: naive {std_naive:.2f}, ITGIS {std_itgis:.2f}")
print(f"measured mean relative error:              naive {naive_err:.2f}, ITGIS {itgis_err:.2f}")
assert abs(std_naive - math.sqrt((1 - p_exact) / (2048 * p_exact))) < 1e-9  # the binomial formula
assert 2 < std_naive / std_itgis < 4 and 0.35 < std_itgis < 0.45
assert itgis_err < std_itgis and naive_err < std_naive  # a mean absolute error sits below the std

# %% [markdown]
# The exact standard errors put the two in the same order, by a similar factor (2.7 against the measured
# 3.4), and both mean absolute errors sit below their standard deviations, as they must. The exact variance
# also answers the temperature question without sampling. Too hot and the proposal is nearly uniform (naive
# sampling again); too cold and it concentrates on the few tokens the linear guess likes, so the hit inputs it
# underrates come back rarely and with huge weights.

# %%
temperatures = [0.1, 0.2, 0.3, 1.0, 3.0]
temperature_std = {
    t: importance_relative_std(itgis_proposal(grads, W_E, VOCAB, t), hit_positions, 2048 - GRADIENT_COST)
    for t in temperatures
}
print({t: round(e, 2) for t, e in temperature_std.items()})
assert min(temperature_std, key=temperature_std.get) == 0.2
assert temperature_std[0.3] < min(temperature_std[0.1], temperature_std[1.0], temperature_std[3.0])
assert temperature_std[3.0] > 0.9 * std_naive  # nearly naive sampling

# %% [markdown]
# The 0.3 used above (picked by a sampled sweep over a few temperatures) is close to the exact best, 0.2.
#
# The cold side is the dangerous one. A hit input the proposal underrates gets weight p(x) / q(x), with no
# upper limit: a rare draw of it can swamp the estimate, and the variance can be far worse than naive
# sampling's. **Defensive importance sampling** (Hesterberg 1995) buys insurance: draw a uniform input with
# probability lam and a proposal draw otherwise, and weight by p(x) / q_lam(x) for the mixture q_lam. Since
# q_lam(x) >= lam p(x), no weight exceeds 1 / lam, whatever the proposal got wrong.


# %% [exercise] defensive_relative_std difficulty=3 importance=3 minutes=15
def defensive_relative_std(
    proposal: Float[Tensor, "k v"], hit_positions: Int[Tensor, "h k"], lam: float, n: int
) -> float:
    """The exact relative standard error (standard deviation / P) of the importance-sampling estimate with
    n draws from the defensive mixture q_lam(x) = lam * p(x) + (1 - lam) * q(x): each draw is a uniform input
    with probability lam, else a draw from the independent `proposal` q, and is weighted by p(x) / q_lam(x),
    which is at most 1 / lam. The hits are the rows of `hit_positions` and p is uniform, as in
    `importance_relative_std`."""
    raise NotImplementedError()


# %% [hint]
# A mixture draw can come from either component: what is the probability of one whole input under it? Is the
# mixture of two independent-token distributions still independent across positions?

# %% [hint]
# q(x) of each hit as in `importance_relative_std`; q_lam = lam * v ** -k + (1 - lam) * q(x) per hit, and the
# second moment is the sum over hits of p ** 2 / q_lam. Mixing each position's row with 1 / v instead gives a
# different (product) distribution, with other weights.

# %%
LAM = 0.1
draws = 2048 - GRADIENT_COST
cold = itgis_proposal(grads, W_E, VOCAB, temperature=0.05)
p_input = float(len(VOCAB)) ** -K
q_cold = cold.double().gather(1, hit_positions.T).prod(0)
weight_cold = (p_input / q_cold).max().item()
weight_defended = (p_input / (LAM * p_input + (1 - LAM) * q_cold)).max().item()
std_cold = importance_relative_std(cold, hit_positions, draws)
std_cold_defended = defensive_relative_std(cold, hit_positions, LAM, draws)
std_itgis_defended = defensive_relative_std(proposal, hit_positions, LAM, draws)
print(f"T = 0.05: largest weight on a hit {weight_cold:.0f}, defended (lam = {LAM}) {weight_defended:.1f}")
print(f"exact relative std at 2048 forward passes: naive {std_naive:.2f}")
print(f"  T = 0.05: pure {std_cold:.1f}, defended {std_cold_defended:.2f}")
print(f"  T = 0.3:  pure {std_itgis:.3f}, defended {std_itgis_defended:.3f}")
assert abs(defensive_relative_std(proposal, hit_positions, 1.0, 2048) - std_naive) < 1e-9  # lam = 1 is naive
assert weight_cold > 100 and weight_defended <= 1 / LAM
assert std_cold > 5 * std_naive and std_cold_defended < std_cold / 4 and std_cold_defended > std_naive
assert std_cold_defended**2 <= (1 / (LAM * p_exact) - 1) / draws  # the bound from weights of at most 1 / lam
assert std_itgis < std_itgis_defended < 1.1 * std_itgis and std_itgis_defended < std_naive / 2

# %% [markdown]
# Defence is insurance, with a premium and a payout. At T = 0.05 the proposal starves a hit input of
# probability, giving it a weight above 100 (about 460), and its standard error is more than 5 times naive
# sampling's (about 12.5 against 1.1); mixing in 10% uniform draws caps every weight at 10 and cuts the
# error by more than 4 times (to about 2.4), though not below naive sampling's: the cap bounds the damage,
# it does not repair the proposal. At the good temperature, 0.3, the premium is small: the defended error is
# less than 10% above pure ITGIS's (about 0.43 against 0.41) and still under half of naive sampling's. Outside
# a toy you cannot compute these variances, so you cannot tell which case you are in, which is the argument
# for paying the premium.

# %% [markdown]
# How good could *any* independent proposal be? The distribution of inputs given the event is the ideal
# proposal (zero variance); the independent one closest to it in KL divergence is the product of its
# marginals: at each position, the share of hit inputs with each token there. It needs the hits, so it is a
# yardstick, not an estimator.


# %% [exercise] hit_marginal_proposal difficulty=2 importance=3 minutes=10
def hit_marginal_proposal(hit_positions: Int[Tensor, "h k"], v: int) -> Float[Tensor, "k v"]:
    """At each position, the fraction of the hit inputs (rows of indices into a vocabulary of size v) that
    have each token there: the independent proposal closest in KL divergence to the inputs given the event."""
    raise NotImplementedError()


# %% [hint]
# Count, position by position, how often each index appears among the hits; what makes each row a
# distribution?

# %% [hint]
# `torch.zeros(k, v).scatter_add_(1, hit_positions.T, torch.ones(k, h))`, then divide by h.

# %%
best_independent = hit_marginal_proposal(hit_positions, len(VOCAB))
std_best = importance_relative_std(best_independent, hit_positions, 2048)
err_best = error_by_budget(
    lambda n, gen: importance_estimate(table_margins, VOCAB, best_independent, n, gen), [2048], SEEDS, p_exact
).item()
print(f"closest independent proposal, 2048 draws: exact relative std {std_best:.3f}, measured error {err_best:.3f}")
assert std_best < 0.03 and err_best < 0.03 and std_itgis / std_best > 10
assert (best_independent > 0).sum(-1).tolist() == [12, 2, 1]

# %% [markdown]
# An independent proposal could do more than 10 times better than ITGIS here: the event's inputs fill half of
# a small product set (12 first tokens, 202 or 228, then 216: 24 inputs, 13 of them hits), a shape an
# independent proposal expresses well. ITGIS's one linear look from uniform inputs found the middle token but not the last; the gap
# between the two is the room that better search (adaptive scores, Metropolis-Hastings) has to close.

# %% [markdown]
# ## Where to go next
#
# - Update the proposal: take the gradient on samples from the current proposal, reweighted, and repeat (the
#   paper's ITGIS does this over several rounds).
# - Replace the independent proposal with a Metropolis-Hastings chain over whole inputs (the paper's MHIS,
#   their best method on the larger models).
# - Calibrate the Gaussian tail on a few tokens whose probability you know, as the paper did, and test it on
#   others; or fit the margin's tail with a skewed distribution.
# - Lower the probability: a target with a single hit input in 32,768, or longer inputs, where enumeration
#   stops being possible and these estimators are all you have.
