"""Checks for 4.7 Estimating the probability of rare outputs.

The enumeration, the margin, the proposal, the Gaussian tail and the error sweep are checked on
hand-worked cases and random ones; the model-facing pieces (margins in batches, embedding gradients)
on the zoo's attn-only-1l, loaded once on the CPU, against independent oracles (one input at a time;
`retain_grad` and `backward` instead of a leaf and `autograd.grad`). The samplers take a seed in their
cases and are replayed with the same random numbers; their margin functions are simple formulas, so
the hand-worked answers follow from the draws' structure (a proposal with all its mass on one token).
The findings' truths are measured here with the references on the enumerated distribution.
"""

import functools
import math

import torch

import zoo
from solutions.chapter4_alignment_science import rare_outputs as ref
from tests.harness import Case, Checker, Exercise, Finding, number_within

VOCAB = torch.arange(200, 232)
K, TARGET = 3, 429


@functools.cache
def _model():
    torch.set_num_threads(1)
    return zoo.load_model("attn-only-1l", device="cpu")


@functools.cache
def _margins():
    return ref.logit_margins(_model(), ref.all_inputs(VOCAB, K), TARGET)


def _random_inputs(gen, n):
    return VOCAB[torch.randint(len(VOCAB), (n, K), generator=gen)]


# ----------------------------------------------------------------------------- all_inputs and target_margin


def _all_inputs_cases(gen):
    yield Case((torch.tensor([3, 7]), 2), "2 tokens, 2 positions (by hand)", expected=torch.tensor([[3, 3], [3, 7], [7, 3], [7, 7]]))  # fmt: skip
    yield Case((torch.tensor([9, 4, 5]), 1), "one position (by hand)", expected=torch.tensor([[9], [4], [5]]))
    yield Case((torch.tensor([6]), 4), "one token, 4 positions (by hand)", expected=torch.tensor([[6, 6, 6, 6]]))
    yield Case((torch.randperm(50, generator=gen)[:5], 3), "5 shuffled tokens, 3 positions")
    yield Case((torch.arange(200, 232), 3), "the notebook's vocabulary")


def _all_inputs_first_fastest(vocab, k):
    return ref.all_inputs(vocab, k).flip(-1)


def _all_inputs_indices(vocab, k):
    return ref.all_inputs(torch.arange(len(vocab)), k)


def _margin_cases(gen):
    logits = torch.tensor([[1.0, 3.0, 2.0], [2.0, 2.0, 0.0], [-1.0, -4.0, -2.0]])
    # Target 1: row 0, 3 - 2 = +1; row 1, a tie, 2 - 2 = 0; row 2, -4 - (-1) = -3.
    # Target 0: row 0, 1 - 3 = -2; row 1, 2 - 2 = 0; row 2, -1 - (-2) = +1.
    yield Case((logits, 1), "3 rows (by hand), target 1", expected=torch.tensor([1.0, 0.0, -3.0]))
    yield Case((logits, 0), "3 rows (by hand), target 0", expected=torch.tensor([-2.0, 0.0, 1.0]))
    yield Case((torch.randn(40, 626, generator=gen), 429), "random logits")
    yield Case((torch.randn(5, 10, generator=gen) * 1e4, 9), "large logits, the last column")


def _margin_including_target(logits, target):
    return logits[:, target] - logits.max(-1).values


def _margin_flipped(logits, target):
    return -ref.target_margin(logits, target)


# ----------------------------------------------------------------------------- logit_margins


def _on_model(impl, case):
    return impl(_model(), *case.args)


def _logit_margins_cases(gen):
    yield Case((_random_inputs(gen, 10), TARGET, 3), "10 inputs in batches of 3")
    yield Case((_random_inputs(gen, 7), TARGET, 4096), "7 inputs, one batch")
    yield Case((_random_inputs(gen, 1), 5, 1), "1 input, another target")
    yield Case((torch.randint(1, 626, (9, 5), generator=gen), TARGET, 2), "9 inputs of 5 tokens from the whole vocabulary")  # fmt: skip


def _logit_margins_oracle(model, inputs, target, batch_size=4096):
    out = []
    with torch.no_grad():
        for row in inputs:
            logits = model(torch.cat([torch.tensor([model.tokenizer.bos_token_id]), row])[None])[0, -1]
            out.append(logits[target] - torch.cat([logits[:target], logits[target + 1 :]]).max())
    return torch.stack(out)


def _logit_margins_no_bos(model, inputs, target, batch_size=4096):
    with torch.no_grad():
        return ref.target_margin(model(inputs)[:, -1], target)


def _logit_margins_first_position(model, inputs, target, batch_size=4096):
    bos = torch.full((len(inputs), 1), model.tokenizer.bos_token_id)
    with torch.no_grad():
        return ref.target_margin(model(torch.cat([bos, inputs], 1))[:, 1], target)


# ----------------------------------------------------------------------------- naive_estimate

_MARGIN_FNS = {
    "sum minus 1.5": lambda x: x.sum(-1).float() - 1.5,
    "sum minus 3 (ties at 0)": lambda x: x.sum(-1).float() - 3.0,
    "first token is 2": lambda x: (x[:, 0] == 2).float() - 0.5,
    "all tokens equal 1": lambda x: (x == 1).all(-1).float() - 0.5,
}


def _naive_run(impl, case):
    name, vocab, k, n, seed = case.args
    return impl(_MARGIN_FNS[name], vocab, k, n, torch.Generator().manual_seed(seed))


def _naive_cases(gen):
    yield Case(("sum minus 1.5", torch.tensor([1]), 2, 50, 0), "one token, every input a hit (by hand)", expected=1.0)
    yield Case(("sum minus 1.5", torch.tensor([0]), 2, 50, 0), "one token, no input a hit (by hand)", expected=0.0)
    yield Case(("sum minus 3 (ties at 0)", torch.tensor([0, 1, 2]), 2, 500, 1), "ties at margin 0")
    yield Case(("first token is 2", torch.tensor([0, 1, 2, 3]), 3, 1000, 2), "first token is 2")
    seed = int(torch.randint(0, 2**31, (1,), generator=gen))
    yield Case(("sum minus 1.5", torch.tensor([0, 1]), 4, 3000, seed), "random seed")


def _naive_ties(margin_fn, vocab, k, n, generator):
    return (margin_fn(vocab[torch.randint(len(vocab), (n, k), generator=generator)]) >= 0).float().mean().item()


def _naive_count(margin_fn, vocab, k, n, generator):
    return float((margin_fn(vocab[torch.randint(len(vocab), (n, k), generator=generator)]) > 0).sum())


# ----------------------------------------------------------------------------- embedding_gradients


def _gradient_cases(gen):
    yield Case((_random_inputs(gen, 1), TARGET), "1 input")
    yield Case((_random_inputs(gen, 6), TARGET), "6 inputs")
    yield Case((_random_inputs(gen, 40), 5), "40 inputs, another target")
    yield Case((torch.randint(1, 626, (5, 2), generator=gen), 300), "2 positions, the whole vocabulary")


def _gradient_oracle(model, inputs, target):
    tokens = torch.cat([torch.full((len(inputs), 1), model.tokenizer.bos_token_id), inputs], 1)
    kept = []

    def keep(embed, hook):
        embed.retain_grad()
        kept.append(embed)

    with torch.enable_grad():
        logits = model.run_with_hooks(tokens, fwd_hooks=[("hook_embed", keep)])[:, -1]
        others = torch.cat([logits[:, :target], logits[:, target + 1 :]], 1)
        (logits[:, target] - others.max(-1).values).sum().backward()
    for parameter in model.parameters():
        parameter.grad = None
    return kept[0].grad[:, 1:].mean(0)


def _gradient_of_logit(model, inputs, target):
    """The gradient of the target's logit alone (the paper's choice), not of the margin."""
    tokens = torch.cat([torch.full((len(inputs), 1), model.tokenizer.bos_token_id), inputs], 1)
    store = {}

    def keep(embed, hook):
        store["embed"] = embed.detach().requires_grad_(True)
        return store["embed"]

    with torch.enable_grad():
        logits = model.run_with_hooks(tokens, fwd_hooks=[("hook_embed", keep)])[:, -1]
        (grad,) = torch.autograd.grad(logits[:, target].sum(), store["embed"])
    return grad[:, 1:].mean(0)


def _gradient_summed(model, inputs, target):
    return ref.embedding_gradients(model, inputs, target) * len(inputs)


def _no_weight_gradients(impl):
    model = _model()
    for parameter in model.parameters():
        parameter.grad = None
    impl(model, VOCAB[:4].reshape(2, 2), TARGET)
    touched = [name for name, parameter in model.named_parameters() if parameter.grad is not None]
    for parameter in model.parameters():
        parameter.grad = None
    assert not touched, f"the model's weights got gradients ({', '.join(touched[:3])}...): only the embeddings should."


# ----------------------------------------------------------------------------- itgis_proposal


def _proposal_cases(gen):
    W_E = torch.tensor([[0.0, 0.0], [1.0, 0.0], [2.0, 5.0]])
    # Scores: token 0 gets 0, token 2 gets 2 (only the first coordinate of grads is nonzero); softmax([0, 2]).
    e2 = math.exp(2)
    yield Case((torch.tensor([[1.0, 0.0]]), W_E, torch.tensor([0, 2]), 1.0), "2 tokens (by hand)",
               expected=torch.tensor([[1 / (1 + e2), e2 / (1 + e2)]]))  # fmt: skip
    # Temperature 2 halves the scores: softmax([0, 1]) at the first position; the second position scores 0, 5.
    e1, e5 = math.exp(1), math.exp(2.5)
    yield Case((torch.tensor([[1.0, 0.0], [0.0, 1.0]]), W_E, torch.tensor([0, 2]), 2.0), "2 positions, T = 2 (by hand)",
               expected=torch.tensor([[1 / (1 + e1), e1 / (1 + e1)], [1 / (1 + e5), e5 / (1 + e5)]]))  # fmt: skip
    W = torch.randn(50, 8, generator=gen)
    yield Case((torch.randn(3, 8, generator=gen), W, torch.randperm(50, generator=gen)[:12], 0.3), "random, T = 0.3")
    yield Case((torch.randn(4, 8, generator=gen), W, torch.arange(50), 5.0), "random, the whole vocabulary, T = 5")


def _proposal_times_temperature(grads, W_E, vocab, temperature):
    return torch.softmax(grads @ W_E[vocab].T * temperature, -1)


def _proposal_over_positions(grads, W_E, vocab, temperature):
    return torch.softmax(grads @ W_E[vocab].T / temperature, 0)


# ----------------------------------------------------------------------------- importance_estimate


def _is_run(impl, case):
    name, vocab, proposal, n, seed = case.args
    return impl(_MARGIN_FNS[name], vocab, proposal, n, torch.Generator().manual_seed(seed))


def _is_cases(gen):
    # All the proposal's mass on token 2 (vocab index 1): every draw is (2,), a hit with p = 1/2, q = 1: 0.5.
    yield Case(("first token is 2", torch.tensor([1, 2]), torch.tensor([[0.0, 1.0]]), 20, 0), "a certain draw (by hand)", expected=0.5)  # fmt: skip
    # Every draw is (1, 1): a hit with p = 1/4, q = 1.
    yield Case(("all tokens equal 1", torch.tensor([0, 1]), torch.tensor([[0.0, 1.0], [0.0, 1.0]]), 30, 1),
               "2 positions, a certain draw (by hand)", expected=0.25)  # fmt: skip
    # Every draw is (0, 0), never a hit: 0.
    yield Case(("all tokens equal 1", torch.tensor([0, 1]), torch.tensor([[1.0, 0.0], [1.0, 0.0]]), 30, 1),
               "a proposal that misses (by hand)", expected=0.0)  # fmt: skip
    for k, v, n in [(1, 4, 400), (3, 3, 2000), (4, 2, 1000)]:
        proposal = torch.softmax(torch.randn(k, v, generator=gen), -1)
        seed = int(torch.randint(0, 2**31, (1,), generator=gen))
        yield Case(("all tokens equal 1", torch.arange(v), proposal, n, seed), f"random proposal, {k} positions")
        yield Case(("sum minus 3 (ties at 0)", torch.arange(v), proposal, n, seed), f"sums, {k} positions")


def _is_parts(margin_fn, vocab, proposal, n, generator):
    idx = torch.multinomial(proposal, n, replacement=True, generator=generator).T
    q = proposal.gather(1, idx.T).prod(0)
    p = len(vocab) ** -proposal.shape[0]
    return margin_fn(vocab[idx]) > 0, p, q


def _is_inverted(margin_fn, vocab, proposal, n, generator):
    hits, p, q = _is_parts(margin_fn, vocab, proposal, n, generator)
    return (hits * q / p).mean().item()


def _is_hits_only(margin_fn, vocab, proposal, n, generator):
    hits, p, q = _is_parts(margin_fn, vocab, proposal, n, generator)
    return (p / q)[hits].mean().item() if hits.any() else 0.0


def _is_unweighted(margin_fn, vocab, proposal, n, generator):
    hits, p, q = _is_parts(margin_fn, vocab, proposal, n, generator)
    return hits.float().mean().item()


# ----------------------------------------------------------------------------- gaussian_tail_estimate


def _gauss_cases(gen):
    yield Case((torch.tensor([-1.0, 1.0]),), "mean 0 (by hand)", expected=0.5)
    # mean -2, unbiased std sqrt(2): P(Z > 2 / sqrt(2)) = erfc(1) / 2.
    yield Case((torch.tensor([-3.0, -1.0]),), "mean -2, std sqrt 2 (by hand)", expected=0.5 * math.erfc(1.0))
    yield Case((torch.randn(1000, generator=gen) * 2 - 9,), "far in the tail")
    yield Case((torch.randn(50, generator=gen) + 0.5,), "mostly positive")


def _gauss_wrong_side(margins):
    return 1 - ref.gaussian_tail_estimate(margins)


def _gauss_population_std(margins):
    mean, std = margins.mean().item(), margins.std(unbiased=False).item()
    return 0.5 * math.erfc(-mean / (std * math.sqrt(2)))


def _gauss_variance(margins):
    mean, var = margins.mean().item(), margins.var().item()
    return 0.5 * math.erfc(-mean / (var * math.sqrt(2)))


# ----------------------------------------------------------------------------- error_by_budget

_ESTIMATORS = {
    "n / 1000": lambda n, gen: n / 1000,
    "uniform draw": lambda n, gen: torch.rand(n, generator=gen).mean().item() * 2,
    "one draw": lambda n, gen: torch.rand(1, generator=gen).item(),
}


def _error_run(impl, case):
    name, budgets, seeds, truth = case.args
    return impl(_ESTIMATORS[name], budgets, seeds, truth)


def _error_cases(gen):
    # Estimates 1, 3 and 0.5 against truth 1: relative errors 0, 2 and 0.5 (the same for every seed).
    yield Case(("n / 1000", [1000, 3000, 500], [0, 1], 1.0), "a deterministic estimator (by hand)", expected=torch.tensor([0.0, 2.0, 0.5]))  # fmt: skip
    # Against truth 2: |1 - 2| / 2 = 0.5.
    yield Case(("n / 1000", [1000], [5], 2.0), "one seed, truth 2 (by hand)", expected=torch.tensor([0.5]))
    yield Case(("one draw", [1, 2], list(range(30)), 0.5), "one draw, 30 seeds")
    yield Case(("uniform draw", [10, 100, 1000], [3, 9, 4], 1.0), "means of draws, 3 seeds")
    yield Case(("one draw", [7], [int(torch.randint(0, 1000, (1,), generator=gen))], 0.1), "a random seed")


def _error_signed(estimator, budgets, seeds, truth):
    return torch.tensor(
        [
            sum((estimator(n, torch.Generator().manual_seed(s)) - truth) / truth for s in seeds) / len(seeds)
            for n in budgets
        ]
    )


def _error_one_generator(estimator, budgets, seeds, truth):
    means = []
    for n in budgets:
        gen = torch.Generator().manual_seed(seeds[0])
        means.append(sum(abs(estimator(n, gen) - truth) / truth for _ in seeds) / len(seeds))
    return torch.tensor(means)


def _error_over_estimate(estimator, budgets, seeds, truth):
    means = []
    for n in budgets:
        estimates = [estimator(n, torch.Generator().manual_seed(s)) for s in seeds]
        means.append(sum(abs(e - truth) / max(e, 1e-12) for e in estimates) / len(seeds))
    return torch.tensor(means)


# ----------------------------------------------------------------------------- importance_relative_std


def _std_cases(gen):
    # v = 2, k = 1, uniform, hit {1}: P = 1/2, second moment (1/4) / (1/2) = 1/2, variance 1/4, std 1/2: 1.
    yield Case((torch.tensor([[0.5, 0.5]]), torch.tensor([[1]]), 1), "naive, one coin (by hand)", expected=1.0)
    # All the proposal's mass on the hit: second moment (1/4) / 1 = P^2, zero variance.
    yield Case((torch.tensor([[0.0, 1.0]]), torch.tensor([[1]]), 4), "a zero-variance proposal (by hand)", expected=0.0)
    # v = 2, k = 2, uniform, hit {(1, 1)}: P = 1/4, second moment (1/16) / (1/4) = 1/4, variance 3/16 / 3
    # = 1/16, std 1/4, over P: 1.
    yield Case((torch.full((2, 2), 0.5), torch.tensor([[1, 1]]), 3), "naive, two coins, n = 3 (by hand)", expected=1.0)
    for k, v, h, n in [(2, 5, 3, 100), (3, 4, 10, 2048), (1, 30, 1, 7)]:
        proposal = torch.softmax(torch.randn(k, v, generator=gen), -1)
        rows = torch.randperm(v**k, generator=gen)[:h]
        hits = rows[:, None] // v ** torch.arange(k - 1, -1, -1) % v
        yield Case((proposal, hits, n), f"random proposal, {k} positions, {h} hits")
    yield Case((torch.full((3, 32), 1 / 32), torch.randint(0, 32, (1, 3), generator=gen), 10**6), "one hit in 32,768")


def _std_unweighted(proposal, hit_positions, n):
    k, v = proposal.shape
    p = float(v) ** -k
    q = proposal.double().gather(1, hit_positions.T).prod(0)
    P = len(hit_positions) * p
    second = ((p / q) ** 2).sum().item()
    return math.sqrt(max(second - P**2, 0.0) / n) / P


def _std_no_mean(proposal, hit_positions, n):
    k, v = proposal.shape
    p = float(v) ** -k
    q = proposal.double().gather(1, hit_positions.T).prod(0)
    return math.sqrt((p**2 / q).sum().item() / n) / (len(hit_positions) * p)


def _std_one_draw(proposal, hit_positions, n):
    return ref.importance_relative_std(proposal, hit_positions, 1)


def _std_absolute(proposal, hit_positions, n):
    k, v = proposal.shape
    return ref.importance_relative_std(proposal, hit_positions, n) * len(hit_positions) * float(v) ** -k


# ----------------------------------------------------------------------------- defensive_relative_std


def _defensive_cases(gen):
    # v = 2, k = 2, all the proposal's mass on (1, 1), the one hit, lam = 1/2, n = 1: p = 1/4, q = 1,
    # q_lam = 1/8 + 1/2 = 5/8, second moment (1/16) / (5/8) = 1/10, variance 1/10 - 1/16 = 3/80,
    # std sqrt(3/80), over P = 1/4: sqrt(3/5).
    one_token = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    yield Case((one_token, torch.tensor([[1, 1]]), 0.5, 1), "two coins, mass on the hit (by hand)", expected=math.sqrt(0.6))  # fmt: skip
    # lam = 1 is naive sampling, whatever the proposal: one coin, hit {1}, relative std 1 (as above).
    yield Case((torch.tensor([[0.9, 0.1]]), torch.tensor([[1]]), 1.0, 1), "lam = 1, naive (by hand)", expected=1.0)
    for k, v, h, n, lam in [(2, 5, 3, 100, 0.2), (3, 4, 10, 2048, 0.05), (2, 6, 1, 7, 0.5), (3, 4, 5, 64, 0.0)]:
        proposal = torch.softmax(2 * torch.randn(k, v, generator=gen), -1)
        rows = torch.randperm(v**k, generator=gen)[:h]
        hits = rows[:, None] // v ** torch.arange(k - 1, -1, -1) % v
        yield Case((proposal, hits, lam, n), f"random proposal, {k} positions, {h} hits, lam = {lam}")


def _defensive_per_position(proposal, hit_positions, lam, n):
    k, v = proposal.shape
    return ref.importance_relative_std(lam / v + (1 - lam) * proposal, hit_positions, n)


def _defensive_lam_unscaled(proposal, hit_positions, lam, n):
    k, v = proposal.shape
    p = float(v) ** -k
    q = proposal.double().gather(1, hit_positions.T).prod(0)
    P = len(hit_positions) * p
    second = (p**2 / (lam + (1 - lam) * q)).sum().item()
    return math.sqrt(max(second - P**2, 0.0) / n) / P


def _defensive_proposal_weights(proposal, hit_positions, lam, n):
    k, v = proposal.shape
    p = float(v) ** -k
    q = proposal.double().gather(1, hit_positions.T).prod(0)
    P = len(hit_positions) * p
    second = ((lam * p + (1 - lam) * q) * (p / q) ** 2).sum().item()
    return math.sqrt(max(second - P**2, 0.0) / n) / P


# ----------------------------------------------------------------------------- hit_marginal_proposal


def _marginal_cases(gen):
    yield Case((torch.tensor([[0, 1], [1, 1]]), 3), "2 hits (by hand)", expected=torch.tensor([[0.5, 0.5, 0.0], [0.0, 1.0, 0.0]]))  # fmt: skip
    yield Case((torch.tensor([[2, 0, 1]]), 3), "one hit (by hand)", expected=torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))  # fmt: skip
    yield Case((torch.randint(0, 7, (20, 4), generator=gen), 7), "20 random hits")
    yield Case((torch.randint(0, 3, (200, 2), generator=gen), 32), "indices below 3 in a vocabulary of 32")


def _marginal_counts(hit_positions, v):
    return ref.hit_marginal_proposal(hit_positions, v) * len(hit_positions)


def _marginal_pooled(hit_positions, v):
    k = hit_positions.shape[1]
    pooled = torch.bincount(hit_positions.flatten(), minlength=v).float() / hit_positions.numel()
    return pooled.expand(k, v).clone()


# ----------------------------------------------------------------------------- findings


def _rare_truth():
    return (_margins() > 0).float().mean().item()


def _log_ratio_truth():
    return math.log10(ref.gaussian_tail_estimate(_margins()) / _rare_truth())


check = Checker(
    "4.7",
    [
        Exercise(
            ref.all_inputs,
            _all_inputs_cases,
            hint="Row i is i in base len(vocab), most significant digit first; map the digits through vocab.",
            wrong={
                "the first position varies fastest (the order is reversed)": _all_inputs_first_fastest,
                "positions in vocab, not the tokens themselves": _all_inputs_indices,
            },
        ),
        Exercise(
            ref.target_margin,
            _margin_cases,
            hint="Exclude the target's own column before taking the max over the other logits.",
            wrong={
                "the max includes the target's own logit": _margin_including_target,
                "the other logit minus the target's (sign flipped)": _margin_flipped,
            },
        ),
        Exercise(
            ref.logit_margins,
            _logit_margins_cases,
            run=_on_model,
            oracle=_logit_margins_oracle,
            atol=1e-4,
            hint="Prepend the BOS token to every row and read the logits at the last position.",
            wrong={
                "no BOS token prepended": _logit_margins_no_bos,
                "the logits after the first input token, not the last": _logit_margins_first_position,
            },
        ),
        Exercise(
            ref.naive_estimate,
            _naive_cases,
            run=_naive_run,
            hint="Draw with the exact torch.randint call of the docstring; count strictly positive margins.",
            wrong={
                "a margin of exactly 0 counted as a hit": _naive_ties,
                "the number of hits, not the fraction": _naive_count,
            },
        ),
        Exercise(
            ref.embedding_gradients,
            _gradient_cases,
            run=_on_model,
            oracle=_gradient_oracle,
            extra=_no_weight_gradients,
            atol=1e-5,
            rtol=1e-3,
            hint="Differentiate the summed margin with respect to the output of hook_embed; drop BOS, average rows.",
            wrong={
                "the gradient of the target's logit, not of its margin": _gradient_of_logit,
                "summed over the inputs, not averaged": _gradient_summed,
            },
        ),
        Exercise(
            ref.itgis_proposal,
            _proposal_cases,
            hint="Scores are dot products of the allowed tokens' embeddings with each position's gradient.",
            wrong={
                "scores multiplied by the temperature instead of divided": _proposal_times_temperature,
                "softmax over positions instead of over tokens": _proposal_over_positions,
            },
        ),
        Exercise(
            ref.importance_estimate,
            _is_cases,
            run=_is_run,
            rtol=1e-4,
            hint="Weight each draw by p(x) / q(x) and average over every draw, the misses counting as 0.",
            wrong={
                "weights q(x) / p(x), upside down": _is_inverted,
                "averaged over the hits only": _is_hits_only,
                "the fraction of hits under the proposal, unweighted": _is_unweighted,
            },
        ),
        Exercise(
            ref.gaussian_tail_estimate,
            _gauss_cases,
            rtol=1e-4,
            atol=1e-12,
            hint="Standardise 0 with the fitted mean and std; the tail above it is erfc(z / sqrt 2) / 2.",
            wrong={
                "the probability below 0, not above": _gauss_wrong_side,
                "the population standard deviation (dividing by n)": _gauss_population_std,
                "the variance in place of the standard deviation": _gauss_variance,
            },
        ),
        Exercise(
            ref.error_by_budget,
            _error_cases,
            run=_error_run,
            hint="A fresh generator seeded with each seed, the absolute error over the truth, averaged over seeds.",
            wrong={
                "signed errors, which cancel": _error_signed,
                "one generator reused across the seeds": _error_one_generator,
                "the error relative to the estimate, not the truth": _error_over_estimate,
            },
        ),
        Exercise(
            ref.importance_relative_std,
            _std_cases,
            rtol=1e-4,
            atol=1e-9,
            hint="One draw's second moment is the sum over hits of p(x)^2 / q(x); subtract P^2, divide by n, root, over P.",
            wrong={
                "the second moment as a sum of (p(x) / q(x)) ** 2, without the weight q(x)": _std_unweighted,
                "P^2 not subtracted (a second moment, not a variance)": _std_no_mean,
                "the standard deviation of one draw, not of the mean of n": _std_one_draw,
                "the absolute standard error, not divided by P": _std_absolute,
            },
        ),
        Exercise(
            ref.defensive_relative_std,
            _defensive_cases,
            rtol=1e-4,
            atol=1e-9,
            hint="The mixture's probability of a whole input is lam p(x) + (1 - lam) q(x); weight each hit by p / that.",
            wrong={
                "each position's row mixed with the uniform, then multiplied (a different distribution)": _defensive_per_position,
                "lam added as a probability, not lam * p(x)": _defensive_lam_unscaled,
                "the proposal's own weights p(x) / q(x) on the mixture's draws": _defensive_proposal_weights,
            },
        ),
        Exercise(
            ref.hit_marginal_proposal,
            _marginal_cases,
            hint="Count each index's appearances position by position and divide by the number of hits.",
            wrong={
                "counts, not fractions": _marginal_counts,
                "the positions pooled into one distribution": _marginal_pooled,
            },
        ),
        Finding(
            "rare_probability",
            _rare_truth,
            number_within(2e-5, "probability"),
            hint="Count the enumerated inputs with a positive margin and divide by the number of inputs.",
            wrong={
                "a count of inputs, not a probability": 13.0,
                "the Gaussian tail's estimate, not the enumeration": 0.01356,
                "a naive-sampling estimate of 0": 0.0,
            },
        ),
        Finding(
            "gaussian_log10_ratio",
            _log_ratio_truth,
            number_within(0.1, "log10 ratio"),
            hint="Fit the Gaussian to every enumerated margin, divide by the exact probability, take log10.",
            wrong={
                "the ratio upside down (exact over Gaussian)": -1.53,
                "the ratio itself, not its log10": 34.2,
                "the natural log of the ratio": 3.53,
            },
        ),
    ],
)
