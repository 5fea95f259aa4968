"""Checks for 1.2 Intro to mechanistic interpretability."""

import json
from functools import lru_cache, partial

import torch
from transformer_lens import FactoredMatrix

from solutions.chapter1_transformer_interp import intro_to_mech_interp as ref
from tests.harness import Case, Checker, Exercise, Finding, Mismatch, compare, describe, proportions_within

HALF_LEN = 6


@lru_cache(maxsize=1)
def _zoo():
    """attn-only-2l, a seeded repeated-token batch and its attention patterns (loaded once, on first use)."""
    from zoo import corpus, load_model
    from zoo.evaluate import word_token_ids

    model = load_model("attn-only-2l", device="cpu")
    tokens = corpus.repeated_random_tokens(4, HALF_LEN, word_token_ids(model), model.tokenizer.bos_token_id, seed=3)
    with torch.inference_mode():
        _, cache = model.run_with_cache(tokens, names_filter=lambda name: name.endswith("hook_pattern"))
    patterns = [cache["pattern", layer].clone() for layer in range(model.cfg.n_layers)]
    return model, tokens, patterns


@lru_cache(maxsize=1)
def _tiny_model():
    """An untrained 3-layer, 2-head model with MLPs: more layers than heads, so swapped axes show."""
    from zoo import build_model

    config = dict(n_layers=3, d_model=16, n_heads=2, d_head=8, d_mlp=32, n_ctx=32, d_vocab=626, act_fn="gelu",
                  normalization_type="LN", seed=1)  # fmt: skip
    return build_model(config, device="cpu").eval()


def _random_pattern(gen, batch, heads, seq):
    scores = torch.randn(batch, heads, seq, seq, generator=gen)
    mask = torch.ones(seq, seq, dtype=torch.bool).tril()
    return scores.masked_fill(~mask, float("-inf")).softmax(-1)


# A 1-sequence, 1-head pattern over 3 positions, rows [1, 0, 0], [0.25, 0.75, 0], [0.5, 0.3, 0.2].
_TINY = torch.tensor([[[[1.0, 0.0, 0.0], [0.25, 0.75, 0.0], [0.5, 0.3, 0.2]]]])


def _detector_cases(expected, expected_two_sequences):
    def cases(gen):
        yield Case((_TINY,), "one head, rows [1,0,0], [.25,.75,0], [.5,.3,.2]", expected=expected)
        # The second sequence is the identity pattern: averaging over heads or summing shows up.
        two = torch.cat([_TINY, torch.eye(3)[None, None]])
        yield Case((two,), "2 sequences, 1 head: the tiny pattern and the identity", expected=expected_two_sequences)
        yield Case((_random_pattern(gen, 3, 4, 7),), "random causal patterns, batch 3, 4 heads, 7 positions")
        yield Case((_random_pattern(gen, 1, 2, 12),), "random causal patterns, batch 1, 2 heads, 12 positions")
        yield Case((_random_pattern(gen, 2, 5, 3),), "random causal patterns, 5 heads, only 3 positions")
        _, _, patterns = _zoo()
        yield Case((patterns[0],), "attn-only-2l layer 0 on repeated random tokens")
        yield Case((patterns[1],), "attn-only-2l layer 1 on repeated random tokens")

    return cases


def _heads_above_cases(gen):
    yield Case(
        (torch.tensor([[0.1, 0.9], [0.95, 0.2]]), 0.5), "scores [[.1, .9], [.95, .2]], threshold .5",
        expected=["L0H1", "L1H0"],
    )  # fmt: skip
    yield Case((torch.tensor([[0.1, 0.2, 0.3]]), 0.5), "nothing above the threshold", expected=[])
    yield Case((torch.tensor([[0.5, 0.7], [0.2, 0.5]]), 0.5), "two scores exactly at the threshold .5",
               expected=["L0H1"])  # fmt: skip
    yield Case((torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 0.9]]), 0.5), "2 layers, 3 heads: only L1H2",
               expected=["L1H2"])  # fmt: skip
    yield Case((torch.rand(3, 5, generator=gen), 0.6), "random 3x5 scores, threshold .6")
    yield Case((torch.rand(4, 2, generator=gen), 0.3), "random 4x2 scores (more layers than heads), threshold .3")


# ----------------------------------------------------------------------------- generate_repeated_tokens


def _repeated_cases(gen):
    yield Case((torch.tensor([10, 20, 30]), 1, 2, 0, 0), "ids [10, 20, 30], 1 sequence, half_len 2, BOS 0, seed 0")
    yield Case((torch.arange(5, 50), 4, 6, 1, 7), "ids 5..49, 4 sequences, half_len 6, BOS 1, seed 7")
    yield Case((torch.randperm(100, generator=gen)[:30], 3, 10, 99, 2), "30 random ids, 3 sequences, half_len 10")
    yield Case((torch.tensor([4]), 2, 3, 9, 0), "a single id 4, 2 sequences, half_len 3, BOS 9")
    # Sparse, unevenly spaced ids and many draws: a draw of values between the smallest and largest id, or
    # of positions instead of ids, or an uneven one, shows up in the frequencies.
    yield Case((torch.tensor([3, 4, 100, 250]), 400, 10, 0, 5), "ids [3, 4, 100, 250], 400 sequences, half_len 10")


_SPARSE_IDS = (3, 4, 100, 250)


def _run_repeated(impl, case):
    """What the check looks at: the tokens, the drawn tokens that are not in token_ids, a second call with the
    same arguments (the seed must fix it) and, for the sparse ids, how often each id was drawn."""
    token_ids, half_len = case.args[0], case.args[2]
    tokens, again = impl(*case.args), impl(*case.args)
    if not isinstance(tokens, torch.Tensor) or tokens.dim() != 2:
        return {"tokens": tokens}
    half = tokens[:, 1 : 1 + half_len]
    outside = sorted(set(half.unique().tolist()) - set(token_ids.tolist()))
    frequencies = None
    if tuple(token_ids.tolist()) == _SPARSE_IDS:
        frequencies = torch.stack([(half == i).float().mean() for i in token_ids])
    return {"tokens": tokens, "outside": outside, "again": again, "frequencies": frequencies}


def _compare_repeated(expected, got):
    tokens, reference = got["tokens"], expected["tokens"]
    if not isinstance(tokens, torch.Tensor):
        compare(reference, tokens, atol=0.0, rtol=0.0, where="output")  # None, a list...: the usual message
    if tokens.shape != reference.shape or tokens.dtype != reference.dtype:
        raise Mismatch(f"output: expected {tuple(reference.shape)} {reference.dtype}, got {tuple(tokens.shape)} "
                       f"{tokens.dtype}")  # fmt: skip
    if not torch.equal(tokens[:, 0], reference[:, 0]):
        raise Mismatch(f"output: column 0 should be the BOS id {reference[0, 0].item()} in every sequence, "
                       f"got {describe(tokens[:, 0])}")  # fmt: skip
    half_len = (tokens.shape[1] - 1) // 2
    if not torch.equal(tokens[:, 1 : 1 + half_len], tokens[:, 1 + half_len :]):
        raise Mismatch("output: the second half is not a copy of the first half")
    if got["outside"]:
        raise Mismatch(f"output: drew {got['outside'][:5]}, which are not in token_ids")
    if len(tokens) > 1 and torch.equal(tokens[0], tokens[1]) and not torch.equal(reference[0], reference[1]):
        raise Mismatch("output: sequences 0 and 1 are identical: each sequence needs its own draw")
    if expected["frequencies"] is not None:
        draws = tokens[:, 1 : 1 + half_len].numel()
        proportions_within()(torch.full((len(_SPARSE_IDS),), 1 / len(_SPARSE_IDS)), (got["frequencies"], draws))
    if not torch.equal(got["again"], tokens):
        raise Mismatch("output: two calls with the same seed gave different tokens: seed a generator of your own")


def _oracle_repeated(token_ids, n_sequences, half_len, bos_token_id, seed=0):
    from zoo import corpus

    return corpus.repeated_random_tokens(n_sequences, half_len, token_ids, bos_token_id, seed=seed)


def _draw_values_in_range(ids, n, h, bos, seed=0):
    generator = torch.Generator().manual_seed(seed)
    half = torch.randint(int(ids.min()), int(ids.max()) + 1, (n, h), generator=generator)
    return torch.cat([torch.full((n, 1), bos), half, half], 1)


def _draw_positions(ids, n, h, bos, seed=0):
    half = torch.randint(len(ids), (n, h), generator=torch.Generator().manual_seed(seed))
    return torch.cat([torch.full((n, 1), bos), half, half], 1)


def _global_random_state(ids, n, h, bos, seed=0):
    half = ids[torch.randint(len(ids), (n, h))]
    return torch.cat([torch.full((n, 1), bos), half, half], 1)


def _never_the_last_id(ids, n, h, bos, seed=0):
    half = ids[torch.randint(max(len(ids) - 1, 1), (n, h), generator=torch.Generator().manual_seed(seed))]
    return torch.cat([torch.full((n, 1), bos), half, half], 1)


def _one_draw_for_all(ids, n, h, bos, seed=0):
    half = ids[torch.randint(len(ids), (1, h), generator=torch.Generator().manual_seed(seed))].expand(n, h)
    return torch.cat([torch.full((n, 1), bos), half, half], 1)


def _two_halves(ids, n, h, bos, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.cat([torch.full((n, 1), bos), ids[torch.randint(len(ids), (n, 2 * h), generator=generator)]], 1)


# ----------------------------------------------------------------------------- log-probs and induction


def _log_prob_cases(gen):
    # Uniform logits over 4 tokens: every log-prob is log(1/4).
    yield Case((torch.zeros(1, 3, 4), torch.tensor([[0, 1, 2]])), "uniform logits over 4 tokens",
               expected=torch.full((1, 2), -1.3862944))  # fmt: skip
    yield Case((torch.randn(2, 5, 7, generator=gen), torch.randint(0, 7, (2, 5), generator=gen)),
               "batch 2, 5 positions, 7 tokens")  # fmt: skip
    yield Case((torch.randn(3, 2, 11, generator=gen) * 5, torch.randint(0, 11, (3, 2), generator=gen)), "large logits")
    # exp(1000) overflows float32: a softmax followed by a log gives -inf or nan here.
    huge = torch.tensor([[[1000.0, 0.0, -1000.0], [0.0, 1000.0, 0.0], [5.0, 5.0, 5.0]]])
    yield Case((huge, torch.tensor([[0, 1, 2]])), "logits of ±1000 (softmax overflows; log_softmax does not)",
               expected=torch.tensor([[-1000.0, -1000.0]]))  # fmt: skip


def _oracle_log_probs(logits, tokens):
    losses = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), tokens[:, 1:], reduction="none")
    return -losses


def _induction_cases(gen):
    # half_len 1: BOS a a. The only repeated-half query is position 2, its target is position 2 itself.
    yield Case((torch.tensor([[[[1.0, 0, 0], [0.5, 0.5, 0], [0.1, 0.2, 0.7]]]]), 1), "BOS a a, half_len 1",
               expected=torch.tensor([0.7]))  # fmt: skip
    yield Case((_random_pattern(gen, 2, 3, 9), 4), "random patterns, half_len 4")
    yield Case((_random_pattern(gen, 3, 2, 11), 5), "random patterns, half_len 5")
    _, _, patterns = _zoo()
    yield Case((patterns[0], HALF_LEN), "attn-only-2l layer 0 on repeated random tokens")
    yield Case((patterns[1], HALF_LEN), "attn-only-2l layer 1 on repeated random tokens")


def _oracle_induction(pattern, half_len):
    scores = []
    for head in range(pattern.shape[1]):
        values = [pattern[:, head, q, q - half_len + 1] for q in range(half_len + 1, 2 * half_len + 1)]
        scores.append(torch.stack(values).mean())
    return torch.stack(scores)


def _by_token_cases(gen):
    # tokens [7, 5, 5, 6, 5]: query 2 (second 5) has target 2 itself; query 4 (third 5) has targets 2 and 3.
    pattern = torch.tensor([[[
        [1.0, 0, 0, 0, 0], [0.5, 0.5, 0, 0, 0], [0.2, 0.3, 0.5, 0, 0], [0.1, 0.1, 0.1, 0.7, 0],
        [0.1, 0.1, 0.2, 0.4, 0.2],
    ]]])  # fmt: skip
    tokens = torch.tensor([[7, 5, 5, 6, 5]])
    yield Case((pattern, tokens), "tokens [7, 5, 5, 6, 5]: a token repeated at once, and one seen twice before",
               expected=torch.tensor([(0.5 + 0.6) / 2]))  # fmt: skip
    yield Case((pattern, torch.tensor([[1, 2, 3, 4, 5]])), "no token repeats", expected=torch.tensor([0.0]))
    # Sequence 0 has one repeated query (target 2), sequence 1 three (targets 1; 2; 1 and 3): pooled over all four.
    two = torch.cat([pattern, pattern])
    yield Case((two, torch.tensor([[7, 5, 5, 6, 8], [1, 2, 1, 2, 1]])),
               "2 sequences with 1 and 3 repeated queries (pooled average)",
               expected=torch.tensor([(0.5 + 0.3 + 0.1 + (0.1 + 0.4)) / 4]))  # fmt: skip
    tokens = torch.randint(0, 4, (3, 10), generator=gen)
    yield Case((_random_pattern(gen, 3, 2, 10), tokens), "random patterns, random tokens from 4 values")
    _, rep, patterns = _zoo()
    yield Case((patterns[1], rep), "attn-only-2l layer 1 on repeated random tokens")


def _oracle_by_token(pattern, tokens):
    total, count = torch.zeros(pattern.shape[1]), 0
    for b in range(tokens.shape[0]):
        for q in range(tokens.shape[1]):
            targets = [j + 1 for j in range(q) if tokens[b, j] == tokens[b, q]]
            if targets:
                total += pattern[b, :, q, targets].sum(-1)
                count += 1
    return total / max(count, 1)


def _by_token_most_recent_only(pattern, tokens):
    n = tokens.shape[-1]
    earlier = (tokens[:, :, None] == tokens[:, None, :]) & torch.ones(n, n, dtype=torch.bool).tril(-1)
    last = torch.where(earlier, torch.arange(n), -1).max(-1).values  # the most recent earlier occurrence
    has = last >= 0
    target = (last + 1).clamp(max=n - 1)
    attention = pattern.gather(-1, target[:, None, :, None].expand(-1, pattern.shape[1], -1, 1))[..., 0]
    return (attention * has[:, None]).sum((0, -1)) / has.sum().clamp(min=1)


def _by_token_strict_target(pattern, tokens):
    n = tokens.shape[-1]
    earlier = (tokens[:, :, None] == tokens[:, None, :]) & torch.ones(n, n, dtype=torch.bool).tril(-1)
    targets = torch.zeros_like(earlier)
    targets[..., 1:] = earlier[..., :-1]
    targets &= torch.ones(n, n, dtype=torch.bool).tril(-1)  # wrongly excludes the query's own position
    has = earlier.any(-1)
    return ((pattern * targets[:, None]).sum(-1) * has[:, None]).sum((0, -1)) / has.sum().clamp(min=1)


def _by_token_per_sequence(pattern, tokens):
    per_sequence = [ref.induction_scores_by_token(pattern[b : b + 1], tokens[b : b + 1]) for b in range(len(tokens))]
    return torch.stack(per_sequence).mean(0)


def _by_token_unguarded(pattern, tokens):
    n = tokens.shape[-1]
    earlier = (tokens[:, :, None] == tokens[:, None, :]) & torch.ones(n, n, dtype=torch.bool).tril(-1)
    targets = torch.zeros_like(earlier)
    targets[..., 1:] = earlier[..., :-1]
    has = earlier.any(-1)
    return ((pattern * targets[:, None]).sum(-1) * has[:, None]).sum((0, -1)) / has.sum()


def _by_token_every_query(pattern, tokens):
    n = tokens.shape[-1]
    earlier = (tokens[:, :, None] == tokens[:, None, :]) & torch.ones(n, n, dtype=torch.bool).tril(-1)
    targets = torch.zeros_like(earlier)
    targets[..., 1:] = earlier[..., :-1]
    return (pattern * targets[:, None]).sum(-1).mean((0, -1))


# ----------------------------------------------------------------------------- ablation hooks


def _ablation_cases(gen):
    yield Case((torch.ones(1, 2, 3, 2), None, 1), "z of ones, batch 1, 2 positions, 3 heads, ablate head 1",
               expected=torch.tensor([[[[1.0, 1], [0, 0], [1, 1]], [[1, 1], [0, 0], [1, 1]]]]))  # fmt: skip
    yield Case((torch.randn(2, 4, 4, 3, generator=gen), None, 0), "random z, 4 heads, ablate head 0")
    yield Case((torch.randn(3, 4, 4, 3, generator=gen), None, 3), "random z, 4 heads, 4 positions, ablate head 3")
    yield Case((torch.randn(2, 6, 3, 4, generator=gen), None, 2), "random z, 6 positions, 3 heads, ablate head 2")
    yield Case(("model", 0, 3), "attn-only-2l: per-token loss with L0H3 ablated")
    yield Case(("model", 1, 1), "attn-only-2l: per-token loss with L1H1 ablated")


def _run_ablation(hook_fn, case):
    first, layer_or_hook, head = case.args
    if not isinstance(first, str):
        return hook_fn(first.clone(), layer_or_hook, head)
    model, tokens, _ = _zoo()
    with torch.inference_mode():
        hook = partial(hook_fn, head_index=head)
        logits = model.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{layer_or_hook}.attn.hook_z", hook)])
    return ref.token_log_probs(logits, tokens)


def _oracle_ablation(z, hook, head_index):
    keep = torch.ones(z.shape[2], 1)
    keep[head_index] = 0.0
    return z * keep


def _mean_ablation_cases(gen):
    # Head 1 takes the mean of its position: [[1, 2]] at position 0, [[3, 4]] at position 1, in both sequences.
    z = torch.zeros(2, 2, 2, 2)
    mean_z = torch.tensor([[[9.0, 9.0], [1.0, 2.0]], [[9.0, 9.0], [3.0, 4.0]]])
    expected = torch.tensor([[[[0.0, 0.0], [1.0, 2.0]], [[0.0, 0.0], [3.0, 4.0]]]] * 2)
    yield Case((z, None, 1, mean_z), "zeros, 2 sequences, 2 positions, 2 heads; head 1's means differ by position",
               expected=expected)  # fmt: skip
    yield Case((torch.randn(3, 5, 4, 2, generator=gen), None, 2, torch.randn(5, 4, 2, generator=gen)),
               "random z and means, 5 positions, 4 heads, head 2")  # fmt: skip
    yield Case((torch.randn(2, 3, 3, 4, generator=gen), None, 0, torch.randn(3, 3, 4, generator=gen)),
               "random z and means, 3 positions, 3 heads, head 0")  # fmt: skip
    yield Case(("model", 1, 1, None), "attn-only-2l: per-token loss with L1H1 mean-ablated")


def _run_mean_ablation(hook_fn, case):
    first, layer_or_hook, head, mean_z = case.args
    if not isinstance(first, str):
        return hook_fn(first.clone(), layer_or_hook, head, mean_z.clone())
    model, tokens, _ = _zoo()
    with torch.inference_mode():
        _, cache = model.run_with_cache(tokens, names_filter=lambda name: name.endswith("hook_z"))
        hook = partial(hook_fn, head_index=head, mean_z=cache["z", layer_or_hook].mean(0))
        logits = model.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{layer_or_hook}.attn.hook_z", hook)])
    return ref.token_log_probs(logits, tokens)


def _oracle_mean_ablation(z, hook, head_index, mean_z):
    out = z.clone()
    for b in range(z.shape[0]):
        for p in range(z.shape[1]):
            out[b, p, head_index] = mean_z[p, head_index]
    return out


def _mean_over_positions_too(z, hook, head_index, mean_z):
    z[:, :, head_index] = mean_z[:, head_index].mean(0)
    return z


def _every_head_replaced(z, hook, head_index, mean_z):
    return mean_z.expand_as(z).clone()


def _wrong_head_in_means(z, hook, head_index, mean_z):
    z[:, :, head_index] = mean_z[:, 0]
    return z


def _effects_cases(gen):
    # Named, not passed: a model is built once and looked up by name (a deep copy per case would be slow).
    yield Case(("attn-only-2l", 4, 6), "attn-only-2l, 4 repeated sequences, half_len 6")
    yield Case(("untrained", 3, 4), "an untrained model with 3 layers of 2 heads, 3 sequences, half_len 4")


@lru_cache(maxsize=2)
def _effects_inputs(name: str, n_sequences: int, half_len: int):
    from zoo.evaluate import word_token_ids

    model = _zoo()[0] if name == "attn-only-2l" else _tiny_model()
    ids = word_token_ids(model)
    tokens = ref.generate_repeated_tokens(ids, n_sequences, half_len, model.tokenizer.bos_token_id, seed=half_len)
    return model, tokens


def _run_effects(impl, case):
    model, tokens = _effects_inputs(*case.args)
    half_len = case.args[2]
    with torch.inference_mode():
        return impl(model, tokens.clone(), half_len)


def _oracle_effects(model, tokens, half_len):
    """Mean ablation written another way: blend the head's output towards its mean with a one-hot mask."""
    names = [f"blocks.{layer}.attn.hook_z" for layer in range(model.cfg.n_layers)]
    _, cache = model.run_with_cache(tokens, names_filter=lambda name: name in names)
    targets = tokens[:, half_len + 1 :]

    def loss(hooks):
        logits = model.run_with_hooks(tokens, fwd_hooks=hooks)[:, half_len:-1]
        return torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets)

    clean = loss([])
    rows = []
    for name in names:
        mean = cache[name].mean(0, keepdim=True)
        row = []
        for head in range(model.cfg.n_heads):
            only = torch.nn.functional.one_hot(torch.tensor(head), model.cfg.n_heads).float()[:, None]
            row.append(loss([(name, lambda z, hook, mean=mean, only=only: z + (mean - z) * only)]) - clean)
        rows.append(torch.stack(row))
    return torch.stack(rows)


def _effects_with(model, tokens, half_len, ablation="mean", loss_slice=None, rise=True):
    """A configurable sweep for the wrong implementations."""
    _, cache = model.run_with_cache(tokens, names_filter=lambda name: name.endswith("hook_z"))
    loss_slice = loss_slice or slice(half_len, None)

    def loss(hooks):
        logits = model.run_with_hooks(tokens, fwd_hooks=hooks)
        return -ref.token_log_probs(logits, tokens)[:, loss_slice].mean().item()

    clean = loss([]) if rise else 0.0
    effects = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    for layer in range(model.cfg.n_layers):
        z = cache["z", layer]
        mean_z = z.mean((0, 1)).expand_as(z[0]) if ablation == "mean over positions" else z.mean(0)
        for head in range(model.cfg.n_heads):
            if ablation == "zero":
                hook = partial(ref.ablate_head_hook, head_index=head)
            else:
                hook = partial(ref.mean_ablate_head_hook, head_index=head, mean_z=mean_z)
            effects[layer, head] = loss([(f"blocks.{layer}.attn.hook_z", hook)]) - clean
    return effects


def _effects_heads_by_layers(model, tokens, half_len):
    return ref.mean_ablation_effects(model, tokens, half_len).T.reshape(model.cfg.n_layers, model.cfg.n_heads)


# ----------------------------------------------------------------------------- the score-rewriting hook


def _causal_scores(gen, batch, heads, seq):
    scores = torch.randn(batch, heads, seq, seq, generator=gen) * 3
    return scores.masked_fill(~torch.ones(seq, seq, dtype=torch.bool).tril(), float("-inf"))


def _force_cases(gen):
    scores = torch.zeros(1, 1, 3, 3).masked_fill(~torch.ones(3, 3, dtype=torch.bool).tril(), float("-inf"))
    yield Case((scores, None, 0, 1), "equal scores, 3 positions, 1 head, offset 1",
               expected=torch.tensor([[[[1.0, 0, 0], [1, 0, 0], [0, 1, 0]]]]))  # fmt: skip
    yield Case((_causal_scores(gen, 2, 3, 6), None, 1, 1), "random scores, 3 heads, head 1, offset 1")
    yield Case((_causal_scores(gen, 2, 2, 7), None, 0, 0), "random scores, head 0, offset 0 (the current token)")
    yield Case((_causal_scores(gen, 1, 4, 8), None, 3, 3), "random scores, 4 heads, head 3, offset 3")
    yield Case((_causal_scores(gen, 1, 2, 4), None, 1, 6), "offset 6 in 4 positions: no query has such a key")
    yield Case(("model", 3, 2), "attn-only-2l: per-token log-probs with L0H3 forced to offset 2")


def _run_force(hook_fn, case):
    """The attention pattern the edited scores give (so -inf and a large negative number agree)."""
    first, head, offset = case.args[0], case.args[-2], case.args[-1]
    if not isinstance(first, str):
        return hook_fn(first.clone(), None, head, offset).softmax(-1)
    model, tokens, _ = _zoo()
    with torch.inference_mode():
        hook = partial(hook_fn, head_index=head, offset=offset)
        logits = model.run_with_hooks(tokens, fwd_hooks=[("blocks.0.attn.hook_attn_scores", hook)])
    return ref.token_log_probs(logits, tokens)


def _force_every_query(scores, hook, head_index, offset):
    query, key = torch.arange(scores.shape[-2])[:, None], torch.arange(scores.shape[-1])
    scores[:, head_index] = scores[:, head_index].masked_fill(key != query - offset, float("-inf"))
    return scores


def _force_every_head(scores, hook, head_index, offset):
    query, key = torch.arange(scores.shape[-2])[:, None], torch.arange(scores.shape[-1])
    return scores.masked_fill(~((key == query - offset) | (query < offset)), float("-inf"))


def _force_one_too_far(scores, hook, head_index, offset):
    return ref.force_attention_hook(scores, hook, head_index, offset + 1)


def _force_diagonal_bonus(scores, hook, head_index, offset):
    query, key = torch.arange(scores.shape[-2])[:, None], torch.arange(scores.shape[-1])
    scores[:, head_index] = scores[:, head_index] + 5.0 * (key == query - offset)  # a nudge, not a mask
    return scores


# ----------------------------------------------------------------------------- DLA and circuits


def _dla_cases(gen):
    # Two components, two positions, d_model 2, vocab 3.
    W_U = torch.tensor([[1.0, 0.0, 2.0], [0.0, 1.0, -1.0]])
    components = torch.tensor([[[1.0, 2.0], [3.0, 4.0]], [[0.0, 1.0], [1.0, 0.0]]])
    yield Case((components, W_U, torch.tensor([2, 1])), "2 components, 2 positions, next tokens [2, 1]",
               expected=torch.tensor([[0.0, 4.0], [-1.0, 0.0]]))  # fmt: skip
    yield Case(
        (torch.randn(5, 6, 8, generator=gen), torch.randn(8, 20, generator=gen),
         torch.randint(0, 20, (6,), generator=gen)), "5 components, 6 positions, d_model 8, vocab 20",
    )  # fmt: skip
    yield Case(
        (torch.randn(3, 4, 4, generator=gen), torch.randn(4, 4, generator=gen), torch.tensor([0, 0, 3, 3])),
        "square W_U (d_model = d_vocab = 4)",
    )  # fmt: skip


def _oracle_dla(components, W_U, next_tokens):
    return (components @ W_U)[:, torch.arange(len(next_tokens)), next_tokens]


def _randn_each(gen, *shapes):
    """One standard normal tensor per shape, drawn in order."""
    return tuple(torch.randn(shape, generator=gen) for shape in shapes)


def _ov_cases(gen):
    yield Case((torch.eye(2), torch.tensor([[1.0], [0.0]]), torch.tensor([[0.0, 1.0]]), torch.eye(2)),
               "identity embeddings, V reads dim 0, O writes dim 1",
               expected={"AB": torch.tensor([[0.0, 1.0], [0.0, 0.0]]), "inner dimension": 1})  # fmt: skip
    yield Case(_randn_each(gen, (10, 6), (6, 3), (3, 6), (6, 10)), "vocab 10, d_model 6, d_head 3")
    yield Case(_randn_each(gen, (7, 4), (4, 2), (2, 4), (4, 9)), "embedding vocab 7, unembedding vocab 9 (not square)")


def _qk_cases(gen):
    yield Case((torch.eye(2), torch.tensor([[1.0], [0.0]]), torch.tensor([[0.0], [1.0]])),
               "identity embeddings, Q reads dim 0, K reads dim 1",
               expected={"AB": torch.tensor([[0.0, 1.0], [0.0, 0.0]]), "inner dimension": 1})  # fmt: skip
    yield Case(_randn_each(gen, (10, 6), (6, 3), (6, 3)), "vocab 10, d_model 6, d_head 3")
    yield Case(_randn_each(gen, (5, 4), (4, 2), (4, 2)), "vocab 5, d_model 4, d_head 2")


def _run_factored(impl, case):
    """The product and where it is split: a FactoredMatrix cut at the wrong place has the right product."""
    result = impl(*case.args)
    if not isinstance(result, FactoredMatrix):
        raise Mismatch(f"expected a FactoredMatrix, got {describe(result)}")
    return {"AB": result.AB, "inner dimension": result.mdim}


def _positional_cases(gen):
    W_pos = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    inf = float("-inf")
    yield Case((W_pos, torch.tensor([[1.0], [0.0]]), torch.tensor([[1.0], [2.0]])),
               "3 positions, d_model 2, d_head 1",
               expected=torch.tensor([[1.0, inf, inf], [0.0, 0.0, inf], [1.0, 2.0, 3.0]]))  # fmt: skip
    yield Case(_randn_each(gen, (7, 6), (6, 3), (6, 3)), "7 positions, d_model 6, d_head 3")
    yield Case(_randn_each(gen, (4, 8), (8, 2), (8, 2)), "4 positions, d_model 8, d_head 2")


def _composition_cases(gen):
    # ||I I|| / (||I|| ||I||) = sqrt(2) / 2 for the 2x2 identity.
    yield Case((torch.eye(2), torch.eye(2)), "both the 2x2 identity", expected=torch.tensor(0.70710678))
    yield Case((torch.tensor([[1.0, 0.0], [0.0, 0.0]]), torch.tensor([[0.0, 0.0], [0.0, 1.0]])),
               "A writes dim 0 only, B reads dim 1 only", expected=torch.tensor(0.0))  # fmt: skip
    # x A moves dim 0 to dim 1 and x B moves dim 1 to dim 2: A then B composes fully, B then A not at all.
    A = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])  # writes dim 1 from dim 0
    B = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]])  # reads dim 1 into dim 2
    yield Case((A, B), "A moves dim 0 to dim 1, B moves dim 1 to dim 2 (B A is zero)", expected=torch.tensor(1.0))
    yield Case((torch.randn(6, 6, generator=gen), torch.randn(6, 6, generator=gen)), "random 6x6")
    yield Case((torch.randn(4, 4, generator=gen), torch.randn(4, 4, generator=gen) * 10), "random 4x4, B scaled by 10")


def _composition_scores_cases(gen):
    # One earlier head that copies dim 0 to dim 1; two later heads.
    ov_first = torch.zeros(1, 2, 2)
    ov_first[0, 0, 1] = 1.0
    qk = torch.zeros(2, 2, 2)
    qk[0, 1, 0] = 1.0  # head 0's W_QK reads dim 1 on the query side
    qk[1, 0, 1] = 1.0  # head 1's W_QK reads dim 1 on the key side
    ov_second = torch.zeros(2, 2, 2)
    ov_second[0, 0, 0] = 1.0  # head 0's values read dim 0 only
    ov_second[1, 1, 1] = 1.0  # head 1's values read dim 1
    yield Case((ov_first, qk, ov_second), "1 earlier head writing dim 1; later heads reading it by query, key, value",
               expected={"Q": torch.tensor([[1.0, 0.0]]), "K": torch.tensor([[0.0, 1.0]]),
                         "V": torch.tensor([[0.0, 1.0]])})  # fmt: skip
    yield Case(_randn_each(gen, (3, 5, 5), (2, 5, 5), (2, 5, 5)), "3 earlier heads, 2 later heads, d_model 5")
    yield Case(_randn_each(gen, (2, 4, 4), (4, 4, 4), (4, 4, 4)), "2 earlier heads, 4 later heads, d_model 4")


def _comp_k_untransposed(ov, qk, ov2):
    scores = ref.composition_scores(ov, qk, ov2)
    return {**scores, "K": scores["Q"]}


def _comp_q_k_swapped(ov, qk, ov2):
    scores = ref.composition_scores(ov, qk, ov2)
    return {**scores, "Q": scores["K"], "K": scores["Q"]}


def _comp_heads_swapped(ov, qk, ov2):
    n_first, n_second = len(ov), len(qk)
    return {k: v.T.reshape(n_first, n_second) for k, v in ref.composition_scores(ov, qk, ov2).items()}


def _comp_reader_first(ov, qk, ov2):
    def score(a, b):
        return ref.composition_score(b, a)

    readers = {"Q": qk, "K": qk.transpose(-1, -2), "V": ov2}
    return {k: torch.stack([torch.stack([score(w, r) for r in R]) for w in ov]) for k, R in readers.items()}


def _random_cases(gen):
    yield Case((64, 16, 100, 0), "d_model 64, d_head 16, 100 samples")
    yield Case((8, 2, 300, 1), "d_model 8, d_head 2, 300 samples")
    yield Case((16, 16, 100, 2), "d_model 16, d_head 16 (full rank), 100 samples")


def _compare_random(expected, got):
    """Shape and dtype, then the mean within 6 standard errors of the reference's (different draws are fine)."""
    compare(expected, got, atol=float("inf"), rtol=0.0)
    n = len(expected)
    allowed = 6 * expected.std().item() * (2 / n) ** 0.5 + 1e-3
    if abs(got.mean().item() - expected.mean().item()) > allowed:
        raise Mismatch(f"output: the mean score of your random pairs is {got.mean().item():.4f}; for matrices built "
                       f"as the docstring says it should be about {expected.mean().item():.4f} "
                       f"(allowed: ±{allowed:.4f})")  # fmt: skip
    if got.unique().numel() < len(got) // 2:
        raise Mismatch(f"output: only {got.unique().numel()} distinct scores in {len(got)} samples: draw fresh "
                       "matrices for each sample")  # fmt: skip


def _random_uniform(d_model, d_head, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    pair = [torch.rand(d_model, d_head, generator=g) @ torch.rand(d_head, d_model, generator=g) for _ in range(2 * n)]
    return torch.stack([ref.composition_score(pair[2 * i], pair[2 * i + 1]) for i in range(n)])


def _random_one_pair(d_model, d_head, n, seed=0):
    return ref.random_composition_scores(d_model, d_head, 1, seed).expand(n).clone()


def _oracle_random(d_model, d_head, n, seed=0):
    """The same distribution drawn in one batch, with the Frobenius norms written as traces."""
    g = torch.Generator().manual_seed(seed + 1000)
    factors = [torch.randn(n, *shape, generator=g) for shape in [(d_model, d_head), (d_head, d_model)] * 2]
    A, B = factors[0] @ factors[1], factors[2] @ factors[3]
    AB = A @ B

    def frobenius(M):
        return torch.einsum("nij,nij->n", M, M).sqrt()

    return frobenius(AB) / (frobenius(A) * frobenius(B))


def _random_one_factor(d_model, d_head, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    scores = []
    for _ in range(n):
        a, b = torch.randn(d_model, d_head, generator=g), torch.randn(d_head, d_model, generator=g)
        scores.append(ref.composition_score(a @ b, b.T @ a.T))  # the second "random" matrix reuses the first's factors
    return torch.stack(scores)


def _k_circuit_cases(gen):
    yield Case((torch.eye(2), torch.tensor([[1.0], [0.0]]), torch.tensor([[0.0], [1.0]]),
                torch.tensor([[1.0], [0.0]]), torch.tensor([[0.0, 1.0]])),
               "identity embeddings; the earlier head moves dim 0 to dim 1, which the key reads",
               expected={"AB": torch.tensor([[1.0, 0.0], [0.0, 0.0]]), "inner dimension": 1})  # fmt: skip
    yield Case(
        _randn_each(gen, (9, 6), (6, 3), (6, 3), (6, 2), (2, 6)), "vocab 9, d_model 6, later d_head 3, earlier d_head 2"
    )


def _k_circuit_no_earlier_head(E, Q, K, V, O):
    return FactoredMatrix(E @ Q, (E @ K).T)


def _k_circuit_on_query_side(E, Q, K, V, O):
    return FactoredMatrix(E @ V @ O @ Q, (E @ K).T)


def _k_circuit_split_at_earlier_head(E, Q, K, V, O):
    return FactoredMatrix(E @ Q @ K.T @ O.T, (E @ V).T)


# ----------------------------------------------------------------------------- findings on gpt2-mini


GPT2_HALF_LEN = 24


@lru_cache(maxsize=1)
def _gpt2():
    """gpt2-mini, a seeded batch of 16 repeated-token sequences, and its cache (loaded once, on first use)."""
    from zoo import load_model
    from zoo.evaluate import word_token_ids

    model = load_model("gpt2-mini", device="cpu")
    ids = word_token_ids(model)
    tokens = ref.generate_repeated_tokens(ids, 16, GPT2_HALF_LEN, model.tokenizer.bos_token_id, seed=0)
    with torch.inference_mode():
        logits, cache = model.run_with_cache(tokens)
    return model, tokens, logits, cache


@lru_cache(maxsize=1)
def _gpt2_scores() -> dict:
    """Every head's detector scores on the batch, by kind."""
    model, _, _, cache = _gpt2()
    patterns = [cache["pattern", layer] for layer in range(model.cfg.n_layers)]
    return {
        "previous-token": torch.stack([ref.previous_token_scores(p) for p in patterns]),
        "current-token": torch.stack([ref.current_token_scores(p) for p in patterns]),
        "first-token": torch.stack([ref.first_token_scores(p) for p in patterns]),
        "induction": torch.stack([ref.induction_scores(p, GPT2_HALF_LEN) for p in patterns]),
    }


@lru_cache(maxsize=1)
def _gpt2_head_effects():
    model, tokens, _, _ = _gpt2()
    with torch.inference_mode():
        return ref.mean_ablation_effects(model, tokens, GPT2_HALF_LEN)


@lru_cache(maxsize=1)
def _gpt2_mlp_effects() -> list[float]:
    """The rise in the repeat loss when each MLP's output is replaced by its mean over the batch, per position."""
    model, tokens, logits, cache = _gpt2()
    clean = -ref.token_log_probs(logits, tokens)[:, GPT2_HALF_LEN:].mean().item()
    effects = []
    with torch.inference_mode():
        for layer in range(model.cfg.n_layers):
            mean_out = cache[f"blocks.{layer}.hook_mlp_out"].mean(0)
            hook = (f"blocks.{layer}.hook_mlp_out", lambda out, hook, mean=mean_out: mean.expand_as(out))
            ablated = model.run_with_hooks(tokens, fwd_hooks=[hook])
            effects.append(-ref.token_log_probs(ablated, tokens)[:, GPT2_HALF_LEN:].mean().item() - clean)
    return effects


def _gpt2_metrics_heads() -> dict:
    from zoo import MODELS_DIR

    return json.loads((MODELS_DIR / "gpt2-mini" / "metrics.json").read_text())["heads"]


def _parse_head(answer) -> tuple[int, int] | str:
    """(layer, head) for a valid head name of gpt2-mini, or a message saying what is wrong with it."""
    model = _gpt2()[0]
    if not isinstance(answer, str):
        return f'expected a head name as a string like "L{{layer}}H{{head}}", got {describe(answer)}.'
    try:
        layer, head = (int(part) for part in answer.strip().upper().removeprefix("L").split("H"))
    except ValueError:
        return f'{answer!r} is not a head name: write it as "L{{layer}}H{{head}}".'
    if not (0 <= layer < model.cfg.n_layers and 0 <= head < model.cfg.n_heads):
        last_layer, last_head = model.cfg.n_layers - 1, model.cfg.n_heads - 1
        return f"{answer!r} does not exist: gpt2-mini has layers 0-{last_layer}, heads 0-{last_head}."
    return layer, head


def _profile(layer: int, head: int) -> str:
    """What a head mostly does, from its scores on repeated random tokens."""
    values = {kind: table[layer, head].item() for kind, table in _gpt2_scores().items()}
    kind = max(values, key=values.get)
    listed = ", ".join(f"{k} {v:.2f}" for k, v in values.items())
    article = "an" if kind[0] in "aeiou" else "a"
    return f"L{layer}H{head}'s scores are {listed}: it is mostly {article} {kind} head"


def _grade_previous_token_head(answer, truth) -> str | None:
    parsed = _parse_head(answer)
    if isinstance(parsed, str):
        return parsed
    if f"L{parsed[0]}H{parsed[1]}" == truth:
        return None
    return f"{_profile(*parsed)}, and another head has a higher previous-token score."


def _induction_heads_truth() -> set[str]:
    """The heads whose induction score stands clearly above the rest (metrics.json records the strongest)."""
    heads = set(ref.heads_above(_gpt2_scores()["induction"], 0.3))
    assert _gpt2_metrics_heads()["induction"] in heads
    return heads


def _as_head_set(answer) -> set | str:
    if isinstance(answer, str):
        answer = {answer}
    if not isinstance(answer, (set, list, tuple, frozenset)):
        return f"expected a set of head names, got {describe(answer)}."
    for item in answer:
        parsed = _parse_head(item)
        if isinstance(parsed, str):
            return parsed
    return {"L{}H{}".format(*_parse_head(item)) for item in answer}


def _grade_head_set(answer, truth, why_not, which_heads: str) -> str | None:
    """Grade a set of head names: why_not(head) for each head that should not be there, then how many were missed."""
    heads = _as_head_set(answer)
    if isinstance(heads, str):
        return heads
    if heads == truth:
        return None
    problems = [why_not(head) for head in sorted(heads - truth)]
    if missed := len(truth - heads):
        problems.append(f"you missed {missed} of the {len(truth)} heads {which_heads}")
    return "; ".join(problems) + "."


def _grade_induction_heads(answer, truth) -> str | None:
    return _grade_head_set(
        answer,
        truth,
        lambda head: f"{_profile(*_parse_head(head))}, not an induction head",
        "whose induction score stands clearly above the rest",
    )


def _circuit_truth() -> set[str]:
    return set(ref.heads_above(_gpt2_head_effects(), 0.75))


def _grade_circuit(answer, truth) -> str | None:
    def why_not(head):
        layer, index = _parse_head(head)
        effect = _gpt2_head_effects()[layer, index].item()
        return f"mean-ablating {head} raises the repeat loss by only {effect:.2f} nats"

    return _grade_head_set(answer, truth, why_not, "that raise it by more than 0.75 nats")


def _mlp_truth() -> str:
    mlp_effects = _gpt2_mlp_effects()
    return f"MLP{max(range(len(mlp_effects)), key=mlp_effects.__getitem__)}"


def _grade_mlp(answer, truth) -> str | None:
    mlp_effects = _gpt2_mlp_effects()
    if not isinstance(answer, str) or not answer.upper().startswith("MLP") or not answer[3:].isdigit():
        return f'expected an MLP\'s name as a string like "MLP{{layer}}", got {describe(answer)}.'
    layer = int(answer[3:])
    if layer >= len(mlp_effects):
        return f"gpt2-mini has {len(mlp_effects)} layers; {answer!r} does not exist."
    if f"MLP{layer}" == truth:
        return None
    return (f"mean-ablating {answer} raises the repeat loss by {mlp_effects[layer]:.2f} nats; "
            "another layer's MLP matters more.")  # fmt: skip


check = Checker("1.2", [
    Exercise(
        ref.current_token_scores,
        _detector_cases(torch.tensor([(1.0 + 0.75 + 0.2) / 3]), torch.tensor([((1.0 + 0.75 + 0.2) / 3 + 1.0) / 2])),
        hint="Which entries of each (query, key) matrix are 'a position attending to itself'? Average them over "
             "the batch and the queries, keeping one number per head.",
        wrong={"averages over heads instead of the batch":
                   lambda p: p.diagonal(dim1=-2, dim2=-1).mean((1, -1))[:1].expand(p.shape[1]).clone(),
               "sums over positions instead of averaging": lambda p: p.diagonal(dim1=-2, dim2=-1).sum(-1).mean(0),
               "averages only the first sequence": lambda p: p[0].diagonal(dim1=-2, dim2=-1).mean(-1)},
    ),  # fmt: skip
    Exercise(
        ref.previous_token_scores,
        _detector_cases(torch.tensor([(0.25 + 0.3) / 2]), torch.tensor([(0.25 + 0.3) / 4])),
        hint="The entries [q, q-1] lie one step below the main diagonal. Query 0 has no previous token: average "
             "over the queries that have one.",
        wrong={"reads the entries above the diagonal (always 0 in a causal pattern)":
                   lambda p: p.diagonal(offset=1, dim1=-2, dim2=-1).mean((0, -1)),
               "divides by every position, not positions 1 onwards":
                   lambda p: p.diagonal(offset=-1, dim1=-2, dim2=-1).sum(-1).mean(0) / p.shape[-1]},
    ),  # fmt: skip
    Exercise(
        ref.first_token_scores,
        _detector_cases(torch.tensor([(1.0 + 0.25 + 0.5) / 3]), torch.tensor([((1.0 + 0.25 + 0.5) / 3 + 1 / 3) / 2])),
        hint="Position 0 is a key, the last axis. Every query sees it, so every query counts in the average.",
        wrong={"reads query 0 instead of key 0": lambda p: p[..., 0, :].mean((0, -1)),
               "leaves out query 0 (which can only attend to the BOS)": lambda p: p[..., 1:, 0].mean((0, -1))},
    ),  # fmt: skip
    Exercise(
        ref.heads_above, _heads_above_cases,
        hint="A score equal to the threshold is not above it. Read the layer from the row, the head from the column.",
        wrong={"layer and head swapped": lambda s, t: [f"L{h}H{l}" for l, h in (s > t).nonzero().tolist()],
               "includes scores equal to the threshold":
                   lambda s, t: [f"L{l}H{h}" for l, h in (s >= t).nonzero().tolist()],
               "lists heads column by column": lambda s, t: [f"L{l}H{h}" for h, l in (s.T > t).nonzero().tolist()]},
    ),  # fmt: skip
    Exercise(
        ref.generate_repeated_tokens, _repeated_cases, run=_run_repeated, compare=_compare_repeated,
        oracle=_oracle_repeated,
        hint="Check the structure: the BOS column, the second half equal to the first, every token taken from "
             "token_ids with equal chances, a separate draw per sequence, and the same output for the same seed.",
        wrong={"draws the two halves independently": _two_halves,
               "no BOS": lambda ids, n, h, bos, seed=0: ref.generate_repeated_tokens(ids, n, h, bos, seed)[:, 1:],
               "draws values between the smallest and largest id, not ids from the list": _draw_values_in_range,
               "returns the drawn positions, not the ids at them": _draw_positions,
               "uses the global random state instead of a generator seeded with seed": _global_random_state,
               "one draw shared by every sequence": _one_draw_for_all,
               "never draws the last id (upper bound one too low)": _never_the_last_id},
    ),  # fmt: skip
    Exercise(
        ref.token_log_probs, _log_prob_cases, oracle=_oracle_log_probs,
        hint="Logits at position p are the prediction for the token at p + 1. With logits as large as ±1000, a "
             "softmax followed by a log overflows; there is a single function that does both stably.",
        wrong={"not shifted (logits at p scored against the token at p + 1 of the logits after)":
                   lambda lg, t: lg[:, 1:].log_softmax(-1).gather(-1, t[:, 1:, None])[..., 0],
               "logits, not log-probabilities": lambda lg, t: lg[:, :-1].gather(-1, t[:, 1:, None])[..., 0],
               "log of a softmax (overflows for large logits)":
                   lambda lg, t: lg[:, :-1].softmax(-1).log().gather(-1, t[:, 1:, None])[..., 0]},
    ),  # fmt: skip
    Exercise(
        ref.induction_scores, _induction_cases, oracle=_oracle_induction,
        hint="The target of query p is the key one after its token's first copy, p - half_len + 1: one diagonal. "
             "Only queries in the repeated half (after position half_len) count.",
        wrong={"attends to the first copy itself (offset -half_len)":
                   lambda p, h: p.diagonal(offset=-h, dim1=-2, dim2=-1).mean((0, -1)),
               "keeps the query at position half_len (still the first half)":
                   lambda p, h: p.diagonal(offset=-(h - 1), dim1=-2, dim2=-1)[..., 1:].mean((0, -1))},
    ),  # fmt: skip
    Exercise(
        ref.induction_scores_by_token, _by_token_cases, oracle=_oracle_by_token,
        hint="For each query, the targets are the positions right after every earlier occurrence of its token "
             "(possibly the query itself); sum the attention on all of them; average over the queries that have "
             "any target, pooled over the batch; and return 0 when nothing repeats.",
        wrong={"only the most recent earlier occurrence counts": _by_token_most_recent_only,
               "a target at the query's own position is left out": _by_token_strict_target,
               "averages per sequence, then over sequences": _by_token_per_sequence,
               "divides by zero when nothing repeats (NaN)": _by_token_unguarded,
               "averages over every query, including those with no earlier occurrence": _by_token_every_query},
    ),  # fmt: skip
    Exercise(
        ref.ablate_head_hook, _ablation_cases, run=_run_ablation, oracle=_oracle_ablation,
        hint="hook_z has axes (batch, pos, head, d_head): zero one head, at every sequence and position, and "
             "return the activation.",
        wrong={"zeroes a position instead of a head": lambda z, hook, head_index: z.index_fill(
                   1, torch.tensor([head_index]), 0.0) if head_index < z.shape[1] else z,
               "keeps only that head": lambda z, hook, head_index: z * torch.nn.functional.one_hot(
                   torch.tensor(head_index), z.shape[2]).to(z.dtype)[:, None]},
    ),  # fmt: skip
    Exercise(
        ref.mean_ablate_head_hook, _mean_ablation_cases, run=_run_mean_ablation, oracle=_oracle_mean_ablation,
        hint="Only the one head changes; each position gets that head's mean at that position (mean_z has no "
             "batch axis, and its head axis is its second).",
        wrong={"averages the means over positions too": _mean_over_positions_too,
               "replaces every head, not one": _every_head_replaced,
               "takes head 0's means whatever the head": _wrong_head_in_means},
    ),  # fmt: skip
    Exercise(
        ref.mean_ablation_effects, _effects_cases, run=_run_effects, oracle=_oracle_effects, atol=1e-4,
        hint="One number per (layer, head): the repeat-half loss with that head mean-ablated (its mean over this "
             "batch, per position) minus the clean repeat-half loss. The model's layer and head counts can differ.",
        wrong={"zero-ablates instead of mean-ablating": partial(_effects_with, ablation="zero"),
               "means over positions as well as the batch": partial(_effects_with, ablation="mean over positions"),
               "measures the loss at every position, not the repeated half":
                   lambda m, t, h: _effects_with(m, t, h, loss_slice=slice(None)),
               "returns the ablated loss, not its rise": partial(_effects_with, rise=False),
               "fills the table head-major (layers and heads transposed)": _effects_heads_by_layers},
    ),  # fmt: skip
    Exercise(
        ref.force_attention_hook, _force_cases, run=_run_force,
        hint="After the softmax, each forced query's row must be 1 at key q - offset and 0 elsewhere; a row "
             "whose scores are all -inf becomes NaN, so the first `offset` queries keep their scores. Other heads "
             "are untouched.",
        wrong={"masks the first offset queries too (rows of -inf give NaN)": _force_every_query,
               "rewrites every head, not one": _force_every_head,
               "one position too far back": _force_one_too_far,
               "adds a bonus to the target instead of masking the rest": _force_diagonal_bonus},
    ),  # fmt: skip
    Exercise(
        ref.direct_logit_attribution, _dla_cases, oracle=_oracle_dla,
        hint="Each position has its own correct next token, so each position is dotted with a different column "
             "of W_U; the result has one number per (component, position).",
        wrong={"every position uses the first next token": lambda c, W, t: (c @ W)[:, :, t[0]],
               "sums over positions": lambda c, W, t: torch.einsum("cpd,dq->cq", c, W[:, t])},
    ),  # fmt: skip
    Exercise(
        ref.full_ov_circuit, _ov_cases, run=_run_factored,
        hint="Check both the product (rows are the attended token, columns the logit) and where the factors "
             "meet: the inner dimension should be d_head, the narrowest point of the chain.",
        wrong={"W_U missing": lambda E, V, O, U: FactoredMatrix(E @ V, O @ E.T)
                   if E.shape[0] == U.shape[1] else FactoredMatrix(E @ V, O),
               "V and O swapped (transposed)": lambda E, V, O, U: FactoredMatrix(E @ O.T, V.T @ U),
               "split at d_model instead of d_head": lambda E, V, O, U: FactoredMatrix(E, V @ O @ U)},
    ),  # fmt: skip
    Exercise(
        ref.full_qk_circuit, _qk_cases, run=_run_factored,
        hint="Rows are query tokens and columns key tokens; the factors should meet at d_head.",
        wrong={"queries and keys swapped": lambda E, Q, K: FactoredMatrix(E @ K, (E @ Q).T),
               "split at d_model instead of d_head": lambda E, Q, K: FactoredMatrix(E, Q @ (E @ K).T)},
    ),  # fmt: skip
    Exercise(
        ref.positional_qk_circuit, _positional_cases,
        hint="Rows are query positions, columns key positions; entries with the key after the query are -inf, "
             "the diagonal itself is visible. No 1/sqrt(d_head) scale here.",
        wrong={"masks the diagonal too": lambda P, Q, K: ((P @ Q) @ (P @ K).T).masked_fill(
                   ~torch.ones(len(P), len(P), dtype=torch.bool).tril(-1), float("-inf")),
               "masks the past instead of the future": lambda P, Q, K: ((P @ Q) @ (P @ K).T).masked_fill(
                   ~torch.ones(len(P), len(P), dtype=torch.bool).triu(), float("-inf")),
               "scaled by 1/sqrt(d_head)": lambda P, Q, K: ref.positional_qk_circuit(P, Q, K) / Q.shape[1] ** 0.5},
    ),  # fmt: skip
    Exercise(
        ref.composition_score, _composition_cases,
        hint="W_A writes first and W_B reads what it wrote, so the order of the product matters; divide by both "
             "matrices' Frobenius norms.",
        wrong={"not normalised by W_B": lambda A, B: torch.linalg.matrix_norm(A @ B) / torch.linalg.matrix_norm(A),
               "product in the wrong order (W_B first)": lambda A, B: torch.linalg.matrix_norm(B @ A)
                   / (torch.linalg.matrix_norm(A) * torch.linalg.matrix_norm(B))},
    ),  # fmt: skip
    Exercise(
        ref.composition_scores, _composition_scores_cases,
        hint="For each kind, which matrix takes in the earlier head's output x W_V W_O, multiplying it from the "
             "right? Queries and keys meet W_Q W_K^T from opposite sides. Rows are earlier heads, columns later ones.",
        wrong={"K-composition reads through W_QK untransposed (the same as Q)": _comp_k_untransposed,
               "Q and K swapped": _comp_q_k_swapped,
               "rows and columns swapped (later heads first)": _comp_heads_swapped,
               "the reader multiplied first": _comp_reader_first},
    ),  # fmt: skip
    Exercise(
        ref.random_composition_scores, _random_cases, compare=_compare_random, oracle=_oracle_random,
        hint="Each sample scores two fresh matrices, each a product of a (d_model, d_head) and a (d_head, d_model) "
             "factor with standard normal entries (mean 0); the check compares the mean score with the expected one.",
        wrong={"uniform entries (mean 0.5), not standard normal": _random_uniform,
               "one pair of matrices scored n_samples times": _random_one_pair,
               "the second matrix reuses the first's factors": _random_one_factor},
    ),  # fmt: skip
    Exercise(
        ref.k_composition_circuit, _k_circuit_cases, run=_run_factored,
        hint="The query side is the later head's queries of each token; the key side is the later head's keys of "
             "what the earlier head writes when it attends to each token. The factors meet at the later head's d_head.",
        wrong={"the key side skips the earlier head (the plain QK circuit)": _k_circuit_no_earlier_head,
               "the earlier head on the query side": _k_circuit_on_query_side,
               "split inside the earlier head": _k_circuit_split_at_earlier_head},
    ),  # fmt: skip
    Finding(
        "gpt2_mini_previous_token_head", truth=lambda: _gpt2_metrics_heads()["previous_token"],
        grade=_grade_previous_token_head,
        hint="Compute the previous-token score of every head in every layer of gpt2-mini and take the highest; a "
             "threshold chosen for attn-only-2l may find nothing here.",
        wrong={"the current-token head of layer 0": "L0H3", "the strongest induction head": "L1H3",
               "the runner-up previous-token head": "L0H0", "a layer-1 head": "L1H1",
               "a head that does not exist": "L4H0", "not a head name": 1},
    ),  # fmt: skip
    Finding(
        "gpt2_mini_induction_heads", truth=_induction_heads_truth, grade=_grade_induction_heads,
        hint="Score every head of every layer for induction, and look for a wide gap between the heads that do it "
             "and those that do not; check your answer on spans repeated at random distances.",
        wrong={"only the strongest": "L1H3", "only the strongest, as a set": {"L1H3"},
               "the top two": {"L1H2", "L1H3"}, "every layer-1 head": {"L1H0", "L1H1", "L1H2", "L1H3"},
               "the previous-token head": {"L0H1"}, "a list with a misspelt name": ["L1H3", "layer 1 head 2"]},
    ),  # fmt: skip
    Finding(
        "gpt2_mini_induction_circuit", truth=_circuit_truth, grade=_grade_circuit,
        hint="Run your mean_ablation_effects on gpt2-mini's repeated tokens and keep the heads whose effect is "
             "above 0.75 nats; the answer need not match the heads' attention patterns.",
        wrong={"the induction heads and the previous-token head": {"L1H1", "L1H2", "L1H3", "L0H1"},
               "only the induction heads": {"L1H1", "L1H2", "L1H3"},
               "zero ablation's list (with the runner-up previous-token head)":
                   {"L0H0", "L0H1", "L0H3", "L1H2", "L1H3"}},
    ),  # fmt: skip
    Finding(
        "gpt2_mini_mlp", truth=_mlp_truth, grade=_grade_mlp,
        hint="Replace each block's MLP output by its mean over the batch at each position, one layer at a time, and "
             "compare the rise in the loss on the repeated half.",
        wrong={"the last MLP, where the prediction is written": "MLP3", "the induction heads' layer": "MLP1",
               "a layer that does not exist": "MLP4", "a layer index instead of a name": 1,
               "a head name instead of an MLP": "L0H1"},
    ),  # fmt: skip
])  # fmt: skip
