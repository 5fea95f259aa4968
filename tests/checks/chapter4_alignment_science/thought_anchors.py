"""Checks for 4.3 Thought anchors.

Splitting and classifying are checked on hand-written sentences and on the generator's chains; the
model-based measures (forced answers, attention suppression) on chat-mini itself (loaded once, on the
CPU) against independent implementations (one unpadded text at a time; suppression by zeroing and
renormalising the attention pattern); the importance arithmetic, sentence attention, vertical scores,
kurtosis and the top-1 rate on hand-worked and random inputs. The finding's truth is measured with
the reference functions exactly as the notebook measures it.
"""

import functools
import random

import torch

import zoo
from solutions.chapter4_alignment_science import thought_anchors as ref
from tests.harness import Case, Checker, Exercise, Finding, exact, same_set
from zoo import chat as zc
from zoo import chat_corpus as cc


@functools.cache
def _model():
    torch.set_num_threads(1)
    return zoo.load_model("chat-mini", device="cpu")


def _seed(gen) -> int:
    return int(torch.randint(0, 2**31, (1,), generator=gen))


# ----------------------------------------------------------------------------- sentences

_HAND_REPLY = "think: Ok. I need the sum. 30 plus 42 is 82. No, wait. 30 plus 42 is 72. so the answer is 72."
_HAND_SPLIT = ["Ok.", "I need the sum.", "30 plus 42 is 82.", "No, wait.", "30 plus 42 is 72.", "so the answer is 72."]


def _split_cases(gen):
    yield Case((_HAND_REPLY,), "a backtracked sum (by hand)", expected=_HAND_SPLIT)
    yield Case(
        ("  think: I need the country of Nice. Nice is in France. so the answer is France.  ",),
        "spaces around the reply (by hand)",
        expected=["I need the country of Nice.", "Nice is in France.", "so the answer is France."],
    )
    yield Case(("so the answer is 38.",), "no think: and one sentence (by hand)", expected=["so the answer is 38."])
    rng = random.Random(_seed(gen))
    for _ in range(6):
        yield Case((cc.reasoning_turn(rng).messages[1]["content"],), "a generated chain")


def _split_keeps_think(reply):
    import re

    return [s.strip() for s in re.split(r"(?<=\.)\s+", reply.strip()) if s.strip()]


def _split_drops_stops(reply):
    text = reply.strip().removeprefix(cc.THINK).strip()
    return [s.strip() for s in text.split(". ") if s.strip()]


def _classify_cases(gen):
    hand = {
        "Ok.": "filler",
        "No, wait.": "backtrack",
        "I need the sum.": "plan",
        "I need the country of Nice.": "plan",
        "Nice is in France.": "lookup",
        "Nice is in Peru.": "error",
        "30 plus 42 is 72.": "compute",
        "30 plus 42 is 82.": "error",
        "so the answer is 72.": "answer",
        "Tina is in Peru.": "other",
        "Hello there.": "other",
    }
    for sentence, label in hand.items():
        yield Case((sentence,), f"{sentence!r} (by hand)", expected=label)
    rng = random.Random(_seed(gen))
    for _ in range(8):
        for _, sentence in cc.reasoning_turn(rng).chain:
            yield Case((sentence,), "a generated sentence")


def _classify_no_facts(sentence):
    label = ref.classify_sentence(sentence)
    if label == "error":
        return "lookup" if " is in " in sentence else "compute"
    return label


def _classify_lookups_only(sentence):
    label = ref.classify_sentence(sentence)
    return "compute" if label == "error" and " plus " in sentence else label


def _classify_sum_plan_only(sentence):
    return "other" if sentence.startswith("I need the country of") else ref.classify_sentence(sentence)


# ----------------------------------------------------------------------------- forced answers


def _forced_cases(gen):
    chains = ref.reasoning_chains(1, seed=_seed(gen) % 1000)
    for chain in chains:
        yield Case((chain,), f"a {chain.kind} chain of types {chain.types}")


@torch.inference_mode()
def _forced_oracle(model, chain):
    answer_id = model.tokenizer.convert_tokens_to_ids(" " + chain.answer)
    p = []
    for k in range(len(chain.sentences) + 1):
        tokens, _ = zc.encode(model, [chain.prefix(k) + " " + ref.ANSWER_OPENING])
        p.append(model(tokens)[0, -1].softmax(-1)[answer_id])
    p = torch.stack(p)
    return p[1:] - p[:-1]


@torch.inference_mode()
def _forced_last_position(model, chain):
    texts = [chain.prefix(k) + " " + ref.ANSWER_OPENING for k in range(len(chain.sentences) + 1)]
    tokens, _ = zc.encode(model, texts)
    p = model(tokens)[:, -1].softmax(-1)[:, model.tokenizer.convert_tokens_to_ids(" " + chain.answer)]
    return p[1:] - p[:-1]


def _forced_reversed(model, chain):
    return -ref.forced_answer_importance(model, chain)


@torch.inference_mode()
def _forced_no_opening(model, chain):
    texts = [chain.prefix(k) for k in range(len(chain.sentences) + 1)]
    tokens, real = zc.encode(model, texts)
    logits = model(tokens)[torch.arange(len(texts)), real.sum(1) - 1]
    p = logits.softmax(-1)[:, model.tokenizer.convert_tokens_to_ids(" " + chain.answer)]
    return p[1:] - p[:-1]


# ----------------------------------------------------------------------------- resampling


def _answer_cases(gen):
    yield Case((" 30 plus 42 is 72. so the answer is 72.",), "one answer (by hand)", expected="72")
    yield Case(
        (" so the answer is France.<|user|> Where? so the answer is Peru.",), "two answers (by hand)", expected="France"
    )
    yield Case((" Nice is in France. No, wait.",), "no answer (by hand)", expected=None)
    yield Case(("",), "empty (by hand)", expected=None)
    rng = random.Random(_seed(gen))
    for _ in range(4):
        yield Case((rng.choice(["", " "]) + cc.reasoning_turn(rng).messages[1]["content"],), "a generated chain")


def _answer_last(continuation):
    import re

    found = re.findall(ref.ANSWER_OPENING + r" (\S+?)\.", continuation)
    return found[-1] if found else None


def _answer_with_stop(continuation):
    import re

    found = re.search(ref.ANSWER_OPENING + r" (\S+)", continuation)
    return found.group(1) if found else None


def _say(x):
    return f" so the answer is {x}."


def _random_rollouts(rng, n_cuts, n_samples, options=("7", "8")):
    def one():
        roll = rng.random()
        if roll < 0.15:
            return " No, wait."
        return " " + rng.choice(["Ok.", "I need the sum.", "1 plus 6 is 7."]) + _say(rng.choice(options))

    return [[one() for _ in range(n_samples)] for _ in range(n_cuts)]


def _resampling_cases(gen):
    yield Case(([[_say(5), _say(4)], [_say(5), _say(5)]], "5"), "one sentence (by hand)", expected=torch.tensor([0.5]))
    yield Case(
        ([[_say(4), " Ok."], [_say(4), _say(4)], [_say(5), _say(4)]], "5"),
        "a rollout with no answer (by hand)",
        expected=torch.tensor([0.0, 0.5]),
    )
    rng = random.Random(_seed(gen))
    for n_cuts in (2, 4, 6):
        yield Case((_random_rollouts(rng, n_cuts, 8), "7"), f"{n_cuts - 1} sentences, random rollouts")


def _resampling_reversed(rollouts, answer):
    return -ref.resampling_importance(rollouts, answer)


def _resampling_drops_none(rollouts, answer):
    a = []
    for rs in rollouts:
        answered = [r for r in rs if ref.answer_of(r) is not None]
        a.append(sum(ref.answer_of(r) == answer for r in answered) / max(len(answered), 1))
    a = torch.tensor(a)
    return a[1:] - a[:-1]


def _counterfactual_cases(gen):
    sentences = ["I need the sum.", "1 plus 6 is 7."]
    rollouts = [
        [" I need the sum. 1 plus 6 is 8." + _say(8), " Ok. 1 plus 6 is 7." + _say(7), " Ok." + _say(8)],
        [" 1 plus 6 is 7." + _say(7), " 1 plus 6 is 8." + _say(8)],
        [_say(7), _say(7)],
    ]
    # sentence 0: kept 1/2; counterfactual rollouts of cut 0 are the 2nd and 3rd (answers 7, 8): 1/2 -> 0.
    # sentence 1: kept 2/2; counterfactual rollouts of cut 1: the 2nd (answer 8): 0 -> 1.
    yield Case((rollouts, sentences, "7"), "two sentences (by hand)", expected=torch.tensor([0.0, 1.0]))
    same = [[" A." + _say(7)] * 2, [" B." + _say(8)] * 2]
    yield Case((same, ["A."], "7"), "no counterfactual rollout (by hand)", expected=torch.tensor([0.0]))
    yield Case(([["", _say(7)], [_say(8)]], ["A."], "8"), "an empty rollout (by hand)", expected=torch.tensor([1.0]))
    later = [[" Ok. 1 plus 6 is 7." + _say(8), " 1 plus 6 is 7." + _say(7)], [_say(7)]]
    # only the first rollout of cut 0 starts differently (answer 8): 1 - 0.
    yield Case((later, ["1 plus 6 is 7."], "7"), "the sentence comes later (by hand)", expected=torch.tensor([1.0]))
    rng = random.Random(_seed(gen))
    for n in (2, 3, 5):
        sentences = [rng.choice(["Ok.", "I need the sum.", "1 plus 6 is 7."]) for _ in range(n)]
        yield Case((_random_rollouts(rng, n + 1, 8), sentences, "7"), f"{n} sentences, random rollouts")


def _counterfactual_all_rollouts(rollouts, sentences, answer):
    return ref.resampling_importance(rollouts, answer)


def _counterfactual_whole_text(rollouts, sentences, answer):
    out = torch.zeros(len(sentences))
    for i, sentence in enumerate(sentences):
        kept = sum(ref.answer_of(r) == answer for r in rollouts[i + 1]) / len(rollouts[i + 1])
        different = [r for r in rollouts[i] if sentence not in r]
        if different:
            out[i] = kept - sum(ref.answer_of(r) == answer for r in different) / len(different)
    return out


def _counterfactual_both_sides(rollouts, sentences, answer):
    out = torch.zeros(len(sentences))
    for i, sentence in enumerate(sentences):
        kept = [r for r in rollouts[i] if (ref.split_sentences(r) or [""])[0] == sentence]
        different = [r for r in rollouts[i] if (ref.split_sentences(r) or [""])[0] != sentence]
        if kept and different:
            out[i] = sum(ref.answer_of(r) == answer for r in kept) / len(kept) - sum(
                ref.answer_of(r) == answer for r in different
            ) / len(different)
    return out


def _kl_cases(gen):
    # cut 0: 5, 4; cut 1: 5, 5; seen {4, 5}, K = 2. kept p = (3/4, 1/4), resampled q = (1/2, 1/2):
    # 3/4 ln(3/2) + 1/4 ln(1/2) = 0.130812.
    yield Case(([[_say(5), _say(4)], [_say(5), _say(5)]],), "one sentence (by hand)", expected=torch.tensor([0.130812]))
    # cut 0: 4, no answer; cut 1: 4, 4; seen {4, None}: p = (3/4, 1/4), q = (1/2, 1/2), the same value.
    # cut 1 -> cut 2 (5, 5): seen {4, 5}: p = (1/4, 3/4), q = (3/4, 1/4): 1/4 ln(1/3) + 3/4 ln 3 = ln(3) / 2.
    yield Case(
        ([[_say(4), " Ok."], [_say(4), _say(4)], [_say(5), _say(5)]],),
        "no answer is an outcome (by hand)",
        expected=torch.tensor([0.130812, 0.549306]),
    )
    yield Case(([[_say(7)] * 3, [_say(7)] * 3],), "the same answers (by hand)", expected=torch.tensor([0.0]))
    rng = random.Random(_seed(gen))
    for n_cuts in (2, 4, 6):
        yield Case(
            (_random_rollouts(rng, n_cuts, 8, options=("7", "8", "9")),), f"{n_cuts - 1} sentences, random rollouts"
        )


def _kl_reversed(rollouts):
    return ref.kl_importance(rollouts[::-1]).flip(0)


def _kl_own_support(rollouts):
    """Laplace smoothing over each cut's own answers, with an epsilon for the answers it never saw."""
    out = torch.zeros(len(rollouts) - 1)
    answers = [[ref.answer_of(r) for r in rs] for rs in rollouts]
    for i in range(len(rollouts) - 1):
        resampled, kept = answers[i], answers[i + 1]
        p = {x: (kept.count(x) + 1) / (len(kept) + len(set(kept))) for x in set(kept)}
        q = {x: (resampled.count(x) + 1) / (len(resampled) + len(set(resampled))) for x in set(resampled)}
        out[i] = sum(px * torch.log(torch.tensor(px / q.get(x, 1e-6))) for x, px in p.items())
    return out


def _kl_drops_none(rollouts):
    return ref.kl_importance([[r for r in rs if ref.answer_of(r) is not None] or [""] for rs in rollouts])


# ----------------------------------------------------------------------------- attention


def _causal_pattern(gen, n):
    scores = torch.randn(n, n, generator=gen) * 2
    return scores.masked_fill(torch.ones(n, n).triu(1).bool(), float("-inf")).softmax(-1)


def _random_bounds(gen, n_tokens, n_sentences):
    cuts = sorted(torch.randperm(n_tokens - 2, generator=gen)[: n_sentences - 1].add(2).tolist())
    edges = [1, *cuts, n_tokens]
    return list(zip(edges[:-1], edges[1:]))


_HAND_PATTERN = torch.tensor(
    [
        [1.0, 0.0, 0.0, 0.0],
        [0.5, 0.5, 0.0, 0.0],
        [0.2, 0.4, 0.4, 0.0],
        [0.1, 0.3, 0.2, 0.4],
    ]
)


def _attention_cases(gen):
    # sentences [1, 2) and [2, 4): row 1 gives 0.5 to sentence 0; rows 2-3 give (0.4 + 0.3) / 2 to
    # sentence 0 and (0.4 + 0.0 + 0.2 + 0.4) / 2 to sentence 1.
    yield Case(
        (_HAND_PATTERN, [(1, 2), (2, 4)]),
        "two sentences (by hand)",
        expected=torch.tensor([[0.5, 0.0], [0.35, 0.5]]),
    )
    for n_tokens, n_sentences in ((12, 3), (30, 6), (8, 1), (40, 12)):
        pattern = _causal_pattern(gen, n_tokens)
        yield Case(
            (pattern, _random_bounds(gen, n_tokens, n_sentences)), f"{n_sentences} sentences of {n_tokens} tokens"
        )


def _attention_mean_keys(pattern, bounds):
    n = len(bounds)
    out = torch.zeros(n, n)
    for i, (qs, qe) in enumerate(bounds):
        for j, (ks, ke) in enumerate(bounds):
            out[i, j] = pattern[qs:qe, ks:ke].mean()
    return out


def _attention_transposed(pattern, bounds):
    return ref.sentence_attention(pattern, bounds).T.contiguous()


def _attention_sum_queries(pattern, bounds):
    n = len(bounds)
    out = torch.zeros(n, n)
    for i, (qs, qe) in enumerate(bounds):
        for j, (ks, ke) in enumerate(bounds):
            out[i, j] = pattern[qs:qe, ks:ke].sum()
    return out


def _vertical_cases(gen):
    matrix = torch.tensor([[1.0, 0.0, 0.0], [0.6, 0.4, 0.0], [0.2, 0.5, 0.3]])
    yield Case((matrix,), "3 sentences, gap 1 (by hand)", expected=torch.tensor([0.4, 0.5, 0.0]))
    yield Case((matrix, 2), "3 sentences, gap 2 (by hand)", expected=torch.tensor([0.2, 0.0, 0.0]))
    yield Case((torch.ones(1, 1),), "one sentence (by hand)", expected=torch.tensor([0.0]))
    for n in (4, 7, 15):
        matrix = torch.rand(n, n, generator=gen).tril()
        yield Case((matrix, 1 + n % 3), f"{n} sentences")


def _vertical_with_diagonal(matrix, min_gap=1):
    return ref.vertical_scores(matrix, min_gap - 1)


def _vertical_sum(matrix, min_gap=1):
    n = matrix.shape[0]
    return torch.stack([matrix[j + min_gap :, j].sum() for j in range(n)])


def _vertical_rows(matrix, min_gap=1):
    return ref.vertical_scores(matrix.T.contiguous(), min_gap)


def _kurtosis_cases(gen):
    # [0, 0, 0, 4]: mean 1, deviations (-1, -1, -1, 3): (1 + 1 + 1 + 81) / 4 = 21 over ((1 + 1 + 1 + 9) / 4)^2 = 9.
    yield Case((torch.tensor([0.0, 0.0, 0.0, 4.0]),), "one outlier (by hand)", expected=torch.tensor(7.0 / 3.0))
    yield Case((torch.tensor([[1.0, -1.0], [2.0, 4.0]]),), "two values per row (by hand)", expected=torch.ones(2))
    yield Case((torch.randn(8, 50, generator=gen),), "normal rows")
    yield Case((torch.rand(2, 4, 30, generator=gen) ** 4,), "skewed, 3 dimensions")
    yield Case((torch.randn(5, generator=gen) * 1e3 + 1e4,), "large scale and offset")


def _kurtosis_excess(x):
    return ref.kurtosis(x) - 3


def _kurtosis_unbiased(x):
    deviations = x - x.mean(-1, keepdim=True)
    return (deviations**4).mean(-1) / x.var(-1) ** 2


# ----------------------------------------------------------------------------- suppression


def _suppression_cases(gen):
    model = _model()
    chains = ref.reasoning_chains(1, seed=_seed(gen) % 1000)
    for chain in chains:
        bounds = ref.sentence_bounds(model, chain)
        tokens = zc.encode(model, [chain.text()])[0][0]
        yield Case((tokens, bounds), f"a chain of types {chain.types}")
    chain = chains[0]
    tokens = zc.encode(model, [chain.text()])[0][0]
    yield Case((tokens, ref.sentence_bounds(model, chain)[-1:]), "the answer sentence alone")


def _suppression_by_pattern(model, tokens, bounds, layers=None, reverse=False):
    """Zero the suppressed entries of each head's pattern and renormalise each row."""
    layers = range(model.cfg.n_layers) if layers is None else layers
    n = len(bounds)
    with torch.inference_mode():
        logp = model(tokens[None]).log_softmax(-1)[0]
        out = torch.zeros(n, n)
        for j, (start, end) in enumerate(bounds):
            keep = torch.ones(len(tokens), len(tokens))
            keep[end:, start:end] = 0

            def zero(pattern, hook, keep=keep):
                pattern = pattern * keep
                return pattern / pattern.sum(-1, keepdim=True)

            hooks = [(f"blocks.{layer}.attn.hook_pattern", zero) for layer in layers]
            logq = model.run_with_hooks(tokens[None], fwd_hooks=hooks).log_softmax(-1)[0]
            p, q = (logq, logp) if reverse else (logp, logq)
            kl = (p.exp() * (p - q)).sum(-1)
            for i in range(j + 1, n):
                out[i, j] = kl[bounds[i][0] : bounds[i][1]].mean()
    return out


def _suppression_oracle(model, tokens, bounds):
    return _suppression_by_pattern(model, tokens, bounds)


def _suppression_reverse_kl(model, tokens, bounds):
    return _suppression_by_pattern(model, tokens, bounds, reverse=True)


def _suppression_layer0(model, tokens, bounds):
    return _suppression_by_pattern(model, tokens, bounds, layers=[0])


def _suppression_scores_zeroed(model, tokens, bounds):
    n = len(bounds)
    with torch.inference_mode():
        logp = model(tokens[None]).log_softmax(-1)[0]
        out = torch.zeros(n, n)
        for j, (start, end) in enumerate(bounds):

            def zero(scores, hook, start=start, end=end):
                scores = scores.clone()
                scores[..., end:, start:end] = 0.0
                return scores

            hooks = [(f"blocks.{layer}.attn.hook_attn_scores", zero) for layer in range(model.cfg.n_layers)]
            logq = model.run_with_hooks(tokens[None], fwd_hooks=hooks).log_softmax(-1)[0]
            kl = (logp.exp() * (logp - logq)).sum(-1)
            for i in range(j + 1, n):
                out[i, j] = kl[bounds[i][0] : bounds[i][1]].mean()
    return out


def _with_model(impl, case):
    """The model is not a case argument (the harness would compare it before and after)."""
    return impl(_model(), *case.args)


# ----------------------------------------------------------------------------- ranking


def _top1_cases(gen):
    yield Case(([torch.tensor([0.1, 0.5]), torch.tensor([0.3, 0.3])], [1, 1]), "a tie (by hand)", expected=0.5)
    yield Case(([torch.tensor([0.0, 0.0, 0.0])], [0]), "all equal (by hand)", expected=1.0)
    yield Case(([torch.tensor([-2.0, -1.0, -3.0])], [1]), "negative scores (by hand)", expected=1.0)
    for n in (3, 20):
        scores = [torch.randn(int(torch.randint(2, 6, (1,), generator=gen)), generator=gen) for _ in range(n)]
        yield Case((scores, [int(torch.randint(0, len(s), (1,), generator=gen)) for s in scores]), f"{n} chains")
    ties = [torch.tensor([1.0, 1.0, 0.0]) for _ in range(4)]
    yield Case((ties, [1, 1, 0, 2]), "ties everywhere")


def _top1_last_on_ties(scores, decisive):
    return sum(len(s) - 1 - int(s.flip(0).argmax()) == d for s, d in zip(scores, decisive)) / len(scores)


def _top1_argmin(scores, decisive):
    return sum(int((s == s.min()).nonzero()[0, 0]) == d for s, d in zip(scores, decisive)) / len(scores)


def _top1_absolute(scores, decisive):
    return sum(int((s.abs() == s.abs().max()).nonzero()[0, 0]) == d for s, d in zip(scores, decisive)) / len(scores)


# ----------------------------------------------------------------------------- the finding


@functools.cache
def _rates():
    """Top-1 rates over all chains, measured as the notebook measures them (same chains and seeds)."""
    model = _model()
    chains = ref.reasoning_chains(6, seed=0)
    decisive = [chain.decisive for chain in chains]
    forced = [ref.forced_answer_importance(model, chain) for chain in chains]
    cuts = [(c, k) for c in range(len(chains)) for k in range(len(chains[c].sentences) + 1)]
    samples = ref.sample_rollouts(model, [chains[c].prefix(k) for c, k in cuts], 8, seed=0)
    rollouts = [[samples[i] for i, (c, _) in enumerate(cuts) if c == index] for index in range(len(chains))]
    resampled = [ref.resampling_importance(r, ch.answer) for r, ch in zip(rollouts, chains)]
    counterfactual = [ref.counterfactual_importance(r, ch.sentences, ch.answer) for r, ch in zip(rollouts, chains)]
    bounds = [ref.sentence_bounds(model, chain) for chain in chains]
    tokens, _ = zc.encode(model, [chain.text() for chain in chains])
    with torch.inference_mode():
        _, cache = model.run_with_cache(tokens, names_filter=lambda name: name.endswith("hook_pattern"))
    patterns = torch.stack([cache["pattern", layer] for layer in range(model.cfg.n_layers)], 1)
    vertical = [
        torch.stack([ref.vertical_scores(ref.sentence_attention(h, b))[:-1] for h in patterns[c].flatten(0, 1)])
        for c, b in enumerate(bounds)
    ]
    receivers = ref.kurtosis(torch.cat(vertical, 1)).topk(2).indices
    receiver = [v[receivers].mean(0) for v in vertical]
    suppressed = [ref.suppression_kl(model, tokens[c, : b[-1][1]], b)[-1, :-1] for c, b in enumerate(bounds)]
    methods = {
        "forced": forced,
        "resampling": resampled,
        "counterfactual": counterfactual,
        "receiver": receiver,
        "suppression": suppressed,
    }
    return {name: ref.top1_rate(scores, decisive) for name, scores in methods.items()}


@functools.cache
def _best_head_truth():
    """The head whose vertical scores alone rank the decisive sentence first most often (6 chains per group)."""
    model = _model()
    chains = ref.reasoning_chains(6, seed=0)
    tokens, _ = zc.encode(model, [chain.text() for chain in chains])
    with torch.inference_mode():
        _, cache = model.run_with_cache(tokens, names_filter=lambda name: name.endswith("hook_pattern"))
    patterns = torch.stack([cache["pattern", layer] for layer in range(model.cfg.n_layers)], 1)
    scores = [
        [ref.vertical_scores(ref.sentence_attention(h, ref.sentence_bounds(model, chain)))[:-1] for h in heads]
        for chain, heads in zip(chains, patterns.flatten(1, 2))
    ]
    names = [f"L{layer}H{head}" for layer in range(model.cfg.n_layers) for head in range(model.cfg.n_heads)]
    rates = [ref.top1_rate([row[h] for row in scores], [c.decisive for c in chains]) for h in range(len(names))]
    return names[max(range(len(names)), key=rates.__getitem__)]


def _reliable_truth():
    return {name for name, rate in _rates().items() if rate >= 0.85}


check = Checker(
    "4.3",
    [
        Exercise(
            ref.split_sentences,
            _split_cases,
            hint='Drop "think:" first; split after each full stop that is followed by a space, and keep the stop.',
            wrong={
                '"think:" was kept as part of the first sentence': _split_keeps_think,
                "the full stops were dropped by splitting on '. '": _split_drops_stops,
            },
        ),
        Exercise(
            ref.classify_sentence,
            _classify_cases,
            hint="Lookups and sums can be false: check the country against CITY_COUNTRY and the total against a + b.",
            wrong={
                "false lookups and sums were not checked against the facts": _classify_no_facts,
                "false sums were not called errors (only lookups were checked)": _classify_lookups_only,
                'the "hop" plan ("I need the country of ...") was not recognised': _classify_sum_plan_only,
            },
        ),
        Exercise(
            ref.forced_answer_importance,
            _forced_cases,
            run=_with_model,
            oracle=_forced_oracle,
            atol=1e-4,
            hint="Read each text's logits at its own last real token (the batch is padded), after the answer's opening words.",
            wrong={
                "the logits were read at the last padded position": _forced_last_position,
                "the importance is p_i - p_{i+1}, not p_{i+1} - p_i": _forced_reversed,
                '"so the answer is" was not appended before reading the answer': _forced_no_opening,
            },
        ),
        Exercise(
            ref.answer_of,
            _answer_cases,
            hint="Search for the opening words and the answer up to its full stop; the first match only.",
            wrong={
                "the last answer was taken, not the first": _answer_last,
                "the full stop was kept in the answer": _answer_with_stop,
            },
        ),
        Exercise(
            ref.resampling_importance,
            _resampling_cases,
            hint="One rate per cut, over all of its rollouts; a sentence's importance is the next cut's rate minus its own cut's.",
            wrong={
                "the importance is a_i - a_{i+1}, not a_{i+1} - a_i": _resampling_reversed,
                "rollouts without an answer were left out of the denominator": _resampling_drops_none,
            },
        ),
        Exercise(
            ref.counterfactual_importance,
            _counterfactual_cases,
            hint="Only the resampled side is filtered, by the continuation's first sentence; the kept side is every rollout of the next cut.",
            wrong={
                "no filter: this is plain resampling importance": _counterfactual_all_rollouts,
                "rollouts were filtered by whether the sentence appears anywhere in them": _counterfactual_whole_text,
                "both sides were taken from the same cut's rollouts": _counterfactual_both_sides,
            },
        ),
        Exercise(
            ref.kl_importance,
            _kl_cases,
            atol=1e-5,
            hint="One support for both cuts (the union of their answers, None included), +1 on every count; KL(kept || resampled).",
            wrong={
                "KL(resampled || kept), the other direction": _kl_reversed,
                "each cut smoothed over its own answers only (an epsilon for the rest)": _kl_own_support,
                "rollouts without an answer were dropped": _kl_drops_none,
            },
        ),
        Exercise(
            ref.sentence_attention,
            _attention_cases,
            hint="Entry [i, j]: the share of attention a token of i gives to all of j, averaged over i's tokens.",
            wrong={
                "the mean over j's key tokens, not their sum": _attention_mean_keys,
                "rows and columns swapped (keys as rows)": _attention_transposed,
                "summed over i's query tokens, not averaged": _attention_sum_queries,
            },
        ),
        Exercise(
            ref.vertical_scores,
            _vertical_cases,
            hint="Column j below the diagonal, starting min_gap rows down; a mean, and 0.0 where the column is empty.",
            wrong={
                "the rows from j + min_gap - 1 (the diagonal counted)": _vertical_with_diagonal,
                "a sum, not a mean": _vertical_sum,
                "rows, not columns: attention given, not received": _vertical_rows,
            },
        ),
        Exercise(
            ref.kurtosis,
            _kurtosis_cases,
            atol=1e-4,
            hint="The fourth central moment over the square of the second, both means over n.",
            wrong={
                "the excess kurtosis (3 subtracted)": _kurtosis_excess,
                "the variance divided by n - 1": _kurtosis_unbiased,
            },
        ),
        Exercise(
            ref.suppression_kl,
            _suppression_cases,
            run=_with_model,
            oracle=_suppression_oracle,
            atol=1e-4,
            hint="Mask before the softmax, in every layer, only for queries after sentence j; KL(original || suppressed).",
            wrong={
                "KL(suppressed || original), the other direction": _suppression_reverse_kl,
                "suppressed in layer 0 only": _suppression_layer0,
                "the attention scores were set to 0, not to minus infinity": _suppression_scores_zeroed,
            },
        ),
        Exercise(
            ref.top1_rate,
            _top1_cases,
            hint="The position of the largest score, the first one on ties, against the decisive index.",
            wrong={
                "the last position on ties": _top1_last_on_ties,
                "the smallest score, not the largest": _top1_argmin,
                "the largest absolute score": _top1_absolute,
            },
        ),
        Finding(
            "best_head",
            _best_head_truth,
            exact("the head that ranks the decisive sentence first most often"),
            hint="Score sentences with one head's vertical scores at a time, and compare the heads' top-1 rates.",
            wrong={
                "the top-kurtosis head on twice as many chains": "L1H3",
                "the runner-up": "L0H1",
                "the best head of layer 1 (the last layer)": "L1H0",
            },
        ),
        Finding(
            "reliable_methods",
            _reliable_truth,
            same_set("a method that reaches 85% here"),
            hint="Compare the 'all' rates with 0.85, one method at a time.",
            wrong={
                "the single best method only": {"suppression"},
                "receiver heads re-selected on more chains (they fall below 85%)": {"forced", "suppression"},
                "every black-box method": {"forced", "resampling", "counterfactual"},
                "the position baseline included": {"forced", "receiver", "suppression", "last sentence (baseline)"},
            },
        ),
    ],
)
