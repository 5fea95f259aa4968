"""Checks for 1.5.1 Balanced bracket classifier.

The bracket algorithm is checked on seeded strings of every failure type and on hand-worked ones.
Model functions run on the zoo classifier (zoo/brackets/classifier) and are pinned by oracles
written from zoo/brackets.py (its padding hooks and its own analysis). The findings are graded
against zoo/brackets/classifier/metrics.json.
"""

import functools

import torch

from solutions.chapter1_transformer_interp import brackets as ref
from tests.harness import Case, Checker, Exercise, Finding, exact
from zoo import brackets as zb

PAD, START, END, OPEN, CLOSE = ref.PAD, ref.START, ref.END, ref.OPEN, ref.CLOSE


@functools.cache
def _model():
    return zb.load_brackets_model()


def _metrics():
    return zb.load_metrics()


def _tokens(strings):
    return zb.tokenize(strings)


def _sample(seed, n=64):
    return zb.generate(n, seed)[0]


def _run_on_model(impl, case):
    with torch.no_grad():
        out = impl(_model(), *case.args)
    return tuple(o.detach() for o in out) if isinstance(out, tuple) else out.detach()


# ----------------------------------------------------------------------------- the algorithm


def _loop_cases(gen):
    for s, expected in [("", True), ("()", True), ("(()())", True), ("())(", False), ("(()", False), (")(", False)]:
        yield Case((s,), f"{s!r} (by hand)", expected=expected)
    for s in _sample(1, 40):
        yield Case((s,), repr(s), expected=zb.is_balanced(s))


def _loop_final_only(s):
    return s.count("(") == s.count(")")


def _loop_never_negative_only(s):
    e = zb.elevation(s)
    return not e or min(e) >= 0


def _loop_starts_and_ends(s):
    return s == "" or (s[0] == "(" and s[-1] == ")" and s.count("(") == s.count(")"))


def _token_cases(gen):
    # "()(" -> [START] ( ) ( [END] [PAD]: elevation 0 1 0 1 1 1
    yield Case((torch.tensor([[START, OPEN, CLOSE, OPEN, END, PAD]]),), "'()(' (by hand)",
               expected=torch.tensor([[0, 1, 0, 1, 1, 1]]))  # fmt: skip
    yield Case((_tokens([")", "(", "()", "(())"]),), "short strings")
    for seed in [2, 3]:
        yield Case((_tokens(_sample(seed)),), f"64 generated strings (seed {seed})")


def _elevation_no_cumsum(tokens):
    return (tokens == OPEN).long() - (tokens == CLOSE).long()


def _elevation_from_right(tokens):
    steps = (tokens == OPEN).long() - (tokens == CLOSE).long()
    return steps.flip(-1).cumsum(-1).flip(-1)


def _elevation_end_closes(tokens):
    steps = (tokens == OPEN).long() - ((tokens == CLOSE) | (tokens == END)).long()
    return steps.cumsum(-1)


def _balanced_cases(gen):
    yield Case((_tokens(["()", "())(", "(()", ")("]),), "hand-worked strings",
               expected=torch.tensor([True, False, False, False]))  # fmt: skip
    for seed in [4, 5]:
        yield Case((_tokens(_sample(seed)),), f"64 generated strings (seed {seed})")


def _balanced_final_only(tokens):
    return ref.elevation(tokens)[:, -1] == 0


def _balanced_never_negative_only(tokens):
    return ref.elevation(tokens).min(-1).values >= 0


def _balanced_strict(tokens):
    e = ref.elevation(tokens)
    return (e.min(-1).values > 0) & (e[:, -1] == 0)


def _flags_cases(gen):
    yield Case((_tokens(["()", "())(", "(()", ")(("]),), "one string of each type",
               expected=(torch.tensor([False, True, False, True]), torch.tensor([False, False, True, True])))  # fmt: skip
    for seed in [6, 7]:
        yield Case((_tokens(_sample(seed)),), f"64 generated strings (seed {seed})")


def _flags_positive_only(tokens):
    e = ref.elevation(tokens)
    return e.min(-1).values < 0, e[:, -1] > 0


def _flags_swapped(tokens):
    negative, nonzero = ref.failure_flags(tokens)
    return nonzero, negative


def _flags_at_most_zero(tokens):
    e = ref.elevation(tokens)
    return e[:, 1:].min(-1).values <= 0, e[:, -1] != 0


# ----------------------------------------------------------------------------- running the model


def _model_cases(gen):
    yield Case((_tokens(_sample(8, 48)),), "48 generated strings, padded to 42")
    yield Case((_tokens(["()", ")(", "(((", "(())()"]),), "four short strings (much padding)")


def _logits_unmasked(model, tokens):
    return model(tokens)[:, 0]


def _logits_zero_scores(model, tokens):
    is_pad = (tokens == PAD)[:, None, None, :]

    def mask(scores, hook):
        return scores.masked_fill(is_pad, 0.0)

    return model.run_with_hooks(tokens, fwd_hooks=[(lambda n: n.endswith("hook_attn_scores"), mask)])[:, 0]


def _logits_last_position(model, tokens):
    return model.run_with_hooks(tokens, fwd_hooks=zb.padding_hooks(tokens))[:, -1]


def _oracle_logits(model, tokens):
    return zb.run(model, tokens)


# ----------------------------------------------------------------------------- the direction


def _fit_cases(gen):
    # normalized = resid @ 2I + 1 exactly: W = 2I, b = 1.
    resid = torch.randn(50, 3, generator=gen)
    yield Case((resid, resid * 2 + 1), "an exact affine map (by hand)", expected=(2 * torch.eye(3), torch.ones(3)))
    A, c = torch.randn(6, 6, generator=gen), torch.randn(6, generator=gen)
    x = torch.randn(400, 6, generator=gen)
    yield Case((x, x @ A + c + 0.01 * torch.randn(400, 6, generator=gen)), "noisy affine data")
    x = torch.randn(300, 56, generator=gen) * 3 + 2
    y = (x - x.mean(-1, keepdim=True)) / x.std(-1, keepdim=True)
    yield Case((x, y), "a real LayerNorm of offset data")


def _fit_no_bias(resid, normalized):
    W = torch.linalg.lstsq(resid, normalized).solution
    return W, torch.zeros(normalized.shape[1])


def _fit_bias_is_mean(resid, normalized):
    W = torch.linalg.lstsq(resid, normalized).solution
    return W, normalized.mean(0)


def _fit_transposed(resid, normalized):
    W, b = ref.fit_final_layernorm(resid, normalized)
    return W.T, b


def _direction_cases(gen):
    yield Case((torch.eye(56),), "W = identity")
    yield Case((torch.randn(56, 56, generator=gen) / 7,), "a random W")


def _direction_flipped(model, W):
    return -ref.unbalanced_direction(model, W)


def _direction_no_ln_weight(model, W):
    return W @ (model.W_U[:, 0] - model.W_U[:, 1])


def _direction_W_transposed(model, W):
    return W.T @ (model.ln_final.w * (model.W_U[:, 0] - model.W_U[:, 1]))


def _oracle_direction(model, W):
    u = torch.zeros(2)
    u[0], u[1] = 1.0, -1.0
    return W @ torch.diag(model.ln_final.w) @ model.W_U @ u


def _unmasked_outputs(model, tokens):
    _, cache = model.run_with_cache(tokens)
    out = [cache["hook_embed"][:, 0] + cache["hook_pos_embed"][:, 0]]
    for layer in range(model.cfg.n_layers):
        z = cache[f"blocks.{layer}.attn.hook_z"][:, 0]
        out += list(torch.einsum("bhe,hed->hbd", z, model.W_O[layer])) + [cache[f"blocks.{layer}.hook_mlp_out"][:, 0]]
    return torch.stack(out)


def _outputs_with_bias(model, tokens):
    out = ref.component_outputs(model, tokens).clone()
    for layer in range(model.cfg.n_layers):
        for h in range(model.cfg.n_heads):
            out[1 + layer * (model.cfg.n_heads + 1) + h] += model.b_O[layer]
    return out


def _outputs_no_pos(model, tokens):
    out = ref.component_outputs(model, tokens).clone()
    out[0] = model.W_E[tokens[:, 0]]
    return out


def _oracle_outputs(model, tokens):
    """From TransformerLens's per-head result hook (with b_O removed), under zoo's padding hooks."""
    model.cfg.use_attn_result = True
    try:
        with model.hooks(fwd_hooks=zb.padding_hooks(tokens)):
            _, cache = model.run_with_cache(tokens)
    finally:
        model.cfg.use_attn_result = False
    out = [cache["hook_embed"][:, 0] + cache["hook_pos_embed"][:, 0]]
    for layer in range(model.cfg.n_layers):
        out += list(cache[f"blocks.{layer}.attn.hook_result"][:, 0].transpose(0, 1))
        out += [cache[f"blocks.{layer}.hook_mlp_out"][:, 0]]
    return torch.stack(out)


def _attribution_cases(gen):
    outputs = torch.tensor([[[1.0, 0.0], [0.0, 2.0]], [[3.0, 4.0], [1.0, 1.0]]])  # component batch d
    yield Case((outputs, torch.tensor([2.0, 1.0])), "by hand", expected=torch.tensor([[2.0, 2.0], [10.0, 3.0]]))
    yield Case((torch.randn(10, 30, 56, generator=gen), torch.randn(56, generator=gen)), "random")


def _attribution_normalised(outputs, direction):
    return outputs @ (direction / direction.norm())


def _attribution_summed(outputs, direction):
    return (outputs @ direction).sum(0, keepdim=True).expand(outputs.shape[0], -1)


# ----------------------------------------------------------------------------- failure types


def _by_type_cases(gen):
    dla = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0]])
    negative = torch.tensor([False, True, False, True, True])
    nonzero = torch.tensor([False, False, True, True, False])
    # balanced: {1}; negative only: {2, 5}; nonzero only: {3}; both: {4}
    yield Case((dla, negative, nonzero), "by hand", expected=torch.tensor([[1.0, 3.5, 3.0, 4.0]]))
    tokens = _tokens(_sample(9, 200))
    yield Case((torch.randn(10, 200, generator=gen), *ref.failure_flags(tokens)), "random values, generated flags")


def _by_type_no_exclusion(dla, negative, nonzero):
    groups = [~negative & ~nonzero, negative, nonzero, negative & nonzero]
    return torch.stack([dla[:, g].mean(-1) for g in groups], dim=-1)


def _by_type_order_swapped(dla, negative, nonzero):
    return ref.mean_attribution_by_type(dla, negative, nonzero)[:, [0, 2, 1, 3]]


def _by_type_sums(dla, negative, nonzero):
    groups = [~negative & ~nonzero, negative & ~nonzero, ~negative & nonzero, negative & nonzero]
    return torch.stack([dla[:, g].sum(-1) for g in groups], dim=-1)


# ----------------------------------------------------------------------------- the elevation circuit


def _proportion_cases(gen):
    # "(()" -> [START] ( ( ) [END]: from position 0 and 1, 2/3; from 2, 1/2; from 3, 0; [END] has none after.
    tokens = torch.tensor([[START, OPEN, OPEN, CLOSE, END, PAD]])
    yield Case((tokens,), "'(()' (by hand)", expected=torch.tensor([[2 / 3, 2 / 3, 0.5, 0.0, 0.0, 0.0]]))
    yield Case((_tokens(_sample(10)),), "64 generated strings")


def _proportion_prefix(tokens):
    return ref.open_proportion_after(tokens.flip(-1)).flip(-1)


def _proportion_all_tokens(tokens):
    opens = (tokens == OPEN).float().flip(-1).cumsum(-1).flip(-1)
    count = torch.arange(tokens.shape[1], 0, -1).float().expand_as(opens)
    return opens / count


def _proportion_strictly_after(tokens):
    shifted = torch.cat([tokens[:, 1:], torch.full_like(tokens[:, :1], PAD)], dim=1)
    return ref.open_proportion_after(shifted)


def _tv_cases(gen):
    # "()": [START] ( ) [END]; attention 0.5 on START, 0.25 on each bracket -> uniform over brackets: 0.
    tokens = torch.tensor([[START, OPEN, CLOSE, END], [START, OPEN, CLOSE, END]])
    pattern = torch.tensor([[0.5, 0.25, 0.25, 0.0], [0.0, 0.9, 0.1, 0.0]])
    # Second row: (0.9, 0.1) vs (0.5, 0.5): TV = 0.4.
    yield Case((pattern, tokens), "by hand", expected=torch.tensor([0.0, 0.4]))
    tokens = _tokens(_sample(11))
    pattern = (torch.randn(tokens.shape, generator=gen) * 2).masked_fill(tokens == PAD, float("-inf")).softmax(-1)
    yield Case((pattern, tokens), "random patterns over generated strings")


def _tv_no_renormalise(pattern, tokens):
    is_bracket = ((tokens == OPEN) | (tokens == CLOSE)).float()
    uniform = is_bracket / is_bracket.sum(-1, keepdim=True)
    return 0.5 * (pattern * is_bracket - uniform).abs().sum(-1)


def _tv_no_half(pattern, tokens):
    return 2 * ref.tv_from_uniform(pattern, tokens)


def _tv_uniform_over_all(pattern, tokens):
    real = (tokens != PAD).float()
    return 0.5 * (pattern - real / real.sum(-1, keepdim=True)).abs().sum(-1)


def _corr_cases(gen):
    acts = torch.tensor([[1.0, 0.0, 2.0], [2.0, 0.0, 1.0], [3.0, 0.0, 0.0]])
    yield Case((acts, torch.tensor([1.0, 2.0, 3.0])), "by hand (a constant neuron gets 0)",
               expected=torch.tensor([1.0, 0.0, -1.0]))  # fmt: skip
    acts = torch.relu(torch.randn(500, 56, generator=gen))
    yield Case((acts, acts[:, 3] * 2 + torch.randn(500, generator=gen)), "random, one neuron related")


def _corr_covariance(acts, target):
    a, t = acts - acts.mean(0), target - target.mean()
    return (a * t[:, None]).mean(0)


def _corr_not_centred(acts, target):
    denominator = acts.norm(dim=0) * target.norm()
    return torch.where(denominator > 0, (acts * target[:, None]).sum(0) / denominator.clamp(min=1e-12), 0.0)


def _corr_nan(acts, target):
    a, t = acts - acts.mean(0), target - target.mean()
    return (a * t[:, None]).sum(0) / (a.norm(dim=0) * t.norm())


def _analysis(key):
    return lambda: _metrics()["analysis"][key]


def _other_heads(key):
    heads = ["L0H0", "L0H1", "L1H0", "L1H1", "L2H0", "L2H1"]
    truth = _metrics()["analysis"][key]
    return {f"another head ({n})": n for n in heads if n != truth}


check = Checker("1.5.1", [
    Exercise(
        ref.is_balanced_loop, _loop_cases,
        hint="Keep the elevation; stop as soon as it is negative; at the end it must be exactly zero.",
        wrong={"only the final elevation checked": _loop_final_only,
               "only the never-negative condition checked": _loop_never_negative_only,
               "checked the first and last characters and the counts": _loop_starts_and_ends},
    ),
    Exercise(
        ref.elevation, _token_cases,
        hint="+1 for OPEN, -1 for CLOSE, 0 for everything else, then a cumulative sum from the left.",
        wrong={"the steps, without the cumulative sum": _elevation_no_cumsum,
               "summed from the right": _elevation_from_right, "[END] counted as a close": _elevation_end_closes},
    ),
    Exercise(
        ref.is_balanced_vectorized, _balanced_cases,
        hint="Both conditions: the minimum elevation over the row at least 0, and the last elevation exactly 0.",
        wrong={"only the final elevation checked": _balanced_final_only,
               "only the never-negative condition checked": _balanced_never_negative_only,
               "minimum strictly above zero ([START] has elevation 0)": _balanced_strict},
    ),
    Exercise(
        ref.failure_flags, _flags_cases,
        hint="negative: minimum elevation below 0; nonzero: last elevation different from 0 (either sign).",
        wrong={"nonzero only when the end is above zero": _flags_positive_only,
               "returned in the other order": _flags_swapped,
               "negative when the elevation touches zero": _flags_at_most_zero},
    ),
    Exercise(
        ref.classifier_logits, _model_cases, run=_run_on_model, oracle=_oracle_logits, atol=1e-4,
        hint="Hook every hook_attn_scores and fill the [PAD] key columns with -inf; read position 0.",
        wrong={"no padding mask": _logits_unmasked, "pad scores set to 0, not -inf": _logits_zero_scores,
               "logits at the last position": _logits_last_position},
    ),
    Exercise(
        ref.fit_final_layernorm, _fit_cases, atol=1e-3, rtol=1e-3,
        hint="Append a ones column to resid and solve least squares for normalized; the last row is the bias.",
        wrong={"no bias term": _fit_no_bias, "bias set to the mean output": _fit_bias_is_mean,
               "W transposed": _fit_transposed},
    ),
    Exercise(
        ref.unbalanced_direction, _direction_cases, run=_run_on_model, oracle=_oracle_direction, atol=1e-4,
        hint="Unbalanced minus balanced columns of W_U, scaled elementwise by ln_final.w, mapped back by W @.",
        wrong={"balanced minus unbalanced": _direction_flipped, "ln_final.w left out": _direction_no_ln_weight,
               "W transposed": _direction_W_transposed},
    ),
    Exercise(
        ref.component_outputs, _model_cases, run=_run_on_model, oracle=_oracle_outputs, atol=1e-4,
        hint="Embeddings (token + position), then per layer each head's z @ W_O and the MLP output, all at "
             "position 0 of a masked run.",
        wrong={"no padding mask": _unmasked_outputs, "b_O added to each head": _outputs_with_bias,
               "position embedding left out": _outputs_no_pos},
    ),
    Exercise(
        ref.direct_attribution, _attribution_cases,
        hint="Project each output on the direction as it is (not normalised).",
        wrong={"direction normalised": _attribution_normalised, "summed over components": _attribution_summed},
    ),
    Exercise(
        ref.mean_attribution_by_type, _by_type_cases,
        hint="Four boolean masks from the two flags (each type excludes the others), one mean per mask.",
        wrong={"negative and nonzero groups include the 'both' strings": _by_type_no_exclusion,
               "negative and nonzero columns swapped": _by_type_order_swapped, "sums, not means": _by_type_sums},
    ),
    Finding(
        "negative_head", truth=_analysis("negative_head"), grade=exact("the head"),
        hint="For each head, its mean attribution on negative-only strings minus that on balanced strings; take "
             "the largest.",
        wrong=_other_heads("negative_head"),
    ),
    Finding(
        "nonzero_head", truth=_analysis("nonzero_head"), grade=exact("the head"),
        hint="The same with nonzero-only strings in place of negative-only ones.",
        wrong=_other_heads("nonzero_head"),
    ),
    Finding(
        "uniform_head", truth=_analysis("uniform_head"), grade=exact("the head"),
        hint="tv_from_uniform of each head's attention from position 0, averaged over strings; take the smallest.",
        wrong=_other_heads("uniform_head"),
    ),
    Exercise(
        ref.open_proportion_after, _proportion_cases,
        hint="Reverse cumulative sums (flip, cumsum, flip) of the OPEN indicator and of the bracket indicator; "
             "guard the positions with no brackets left.",
        wrong={"positions before i, not after": _proportion_prefix,
               "divided by all tokens, not brackets": _proportion_all_tokens,
               "positions strictly after i": _proportion_strictly_after},
    ),
    Exercise(
        ref.tv_from_uniform, _tv_cases,
        hint="Keep only the bracket keys, rescale to sum 1, compare with 1 / (number of brackets) on each.",
        wrong={"not renormalised over the brackets": _tv_no_renormalise, "without the factor 1/2": _tv_no_half,
               "uniform over every non-pad token": _tv_uniform_over_all},
    ),
    Exercise(
        ref.neuron_correlations, _corr_cases, atol=1e-4,
        hint="Centre both, divide the summed product by the product of norms; a constant neuron gets 0.",
        wrong={"covariance, not correlation": _corr_covariance, "not centred": _corr_not_centred,
               "nan for a constant neuron": _corr_nan},
    ),
    Finding(
        "distance_neuron", truth=_analysis("distance_neuron"), grade=exact("the (layer, neuron) pair"),
        hint="At position 0, correlate every neuron in the layers from the uniform head's on with "
             "|proportion of '(' - 1/2|; give [layer, neuron] of the largest.",
        wrong={"the neuron index without the layer": _metrics()["analysis"]["distance_neuron"][1],
               "the layer and neuron swapped": list(reversed(_metrics()["analysis"]["distance_neuron"])),
               "the right neuron index in another layer": [(_metrics()["analysis"]["distance_neuron"][0] + 1) % 3,
                                                          _metrics()["analysis"]["distance_neuron"][1]]},
    ),
])  # fmt: skip
