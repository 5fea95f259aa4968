"""Checks for 1.5.2 Grokking and modular arithmetic.

Pure functions (the Fourier basis, transforms, frequency shares, the trig fit, projections, phase
boundaries) are checked on random inputs and on small hand-built ones whose answers are worked out in
the comments. Functions of the model are pinned by independent oracles: a forward pass written from
the weights (zoo/grokking.py's `fast_logits` and its algebra), and least-squares fits. The findings
are graded against zoo/grokking/mod-add/metrics.json.
"""

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

from solutions.chapter1_transformer_interp import grokking as ref
from tests.harness import Case, Checker, Exercise, Finding, number_within, same_set
from zoo import grokking as zg


@functools.cache
def _data():
    tokens, labels = zg.all_inputs()
    train, test = zg.load_split()
    return tokens, labels, train, test


@functools.cache
def _model(step=None):
    return zg.load_grokking_model(step)


def _no_grad(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with torch.no_grad():
            return fn(*args, **kwargs)

    return wrapper


# ----------------------------------------------------------------------------- the Fourier basis


def _basis_cases(gen):
    # p = 3: constant 1/sqrt(3); cos(2 pi x / 3) = [1, -1/2, -1/2] has norm sqrt(3/2); sin = [0, r3/2, -r3/2]
    # has norm sqrt(3/2).
    c, s = 1 / math.sqrt(1.5), (math.sqrt(3) / 2) / math.sqrt(1.5)
    expected = torch.tensor([[1 / math.sqrt(3)] * 3, [c, -0.5 * c, -0.5 * c], [0.0, s, -s]])
    yield Case((3,), "p = 3 (worked by hand)", expected=expected)
    for p in [5, 7, 59, 113]:
        yield Case((p,), f"p = {p}")


def _basis_unnormalised(p):
    x = torch.arange(p, dtype=torch.float32)
    rows = [torch.ones(p)]
    for k in range(1, p // 2 + 1):
        rows += [torch.cos(2 * math.pi * k * x / p), torch.sin(2 * math.pi * k * x / p)]
    return torch.stack(rows)


def _basis_sin_first(p):
    basis = ref.fourier_basis(p)
    order = [0] + [i for k in range(1, p // 2 + 1) for i in (2 * k, 2 * k - 1)]
    return basis[order]


def _basis_no_two_pi(p):
    x = torch.arange(p, dtype=torch.float32)
    rows = [torch.ones(p)]
    for k in range(1, p // 2 + 1):
        rows += [torch.cos(k * x / p), torch.sin(k * x / p)]
    basis = torch.stack(rows)
    return basis / basis.norm(dim=1, keepdim=True)


def _basis_divided_by_sqrt_p(p):
    return _basis_unnormalised(p) / math.sqrt(p)


# ----------------------------------------------------------------------------- frequency shares


def _shares_cases(gen):
    basis = ref.fourier_basis(5)
    # Column 0 is 3 * (cos 1) plus 5 * (constant), which does not count; column 1 is 4 * (sin 2):
    # frequency 1 holds 9 of the squared norm 25, frequency 2 holds 16.
    W_E = torch.stack([3 * basis[1] + 5 * basis[0], 4 * basis[4]], dim=1)
    yield Case(
        (W_E,), "p = 5, cos 1 and sin 2 with a constant offset (worked by hand)", expected=torch.tensor([0.36, 0.64])
    )
    yield Case((torch.randn(7, 4, generator=gen),), "p = 7, random embeddings")
    yield Case((torch.randn(59, 128, generator=gen),), "p = 59, random embeddings")
    yield Case((_model().W_E[:59].detach(),), "the grokked model's number embeddings")


def _shares_with_constant(W_E):
    per_row = (ref.fourier_basis(W_E.shape[0]) @ W_E).pow(2).sum(-1)
    return (per_row[1::2] + per_row[2::2]) / per_row.sum()


def _shares_not_squared(W_E):
    per_row = (ref.fourier_basis(W_E.shape[0]) @ W_E).norm(dim=-1)
    per_frequency = per_row[1::2] + per_row[2::2]
    return per_frequency / per_frequency.sum()


def _shares_transposed_basis(W_E):
    per_row = (ref.fourier_basis(W_E.shape[0]).T @ W_E).pow(2).sum(-1)
    per_frequency = per_row[1::2] + per_row[2::2]
    return per_frequency / per_frequency.sum()


def _shares_cos_only(W_E):
    per_row = (ref.fourier_basis(W_E.shape[0]) @ W_E).pow(2).sum(-1)
    return per_row[1::2] / per_row[1::2].sum()


# ----------------------------------------------------------------------------- activations over (a, b)


def _grid_cases(gen):
    tokens = _data()[0]
    yield Case(("final", tokens), "the grokked model, all inputs")
    yield Case((400, tokens), "the checkpoint at step 400, all inputs")


def _embed(weights, tokens):
    return weights["embed.W_E"][tokens] + weights["pos_embed.W_pos"]


def _oracle_neuron_grid(model, tokens):
    """The MLP input at "=" written out from the weights (no biases; no LayerNorm)."""
    w = {name: param.detach() for name, param in model.named_parameters()}
    x = _embed(w, tokens)
    pattern = _oracle_pattern(w, x)
    z = torch.einsum("bhp,bhpe->bhe", pattern, torch.einsum("bpd,hde->bhpe", x, w["blocks.0.attn.W_V"]))
    resid = x[:, -1] + torch.einsum("bhe,hed->bd", z, w["blocks.0.attn.W_O"])
    return torch.relu(resid @ w["blocks.0.mlp.W_in"]).reshape(59, 59, -1)


def _oracle_pattern(w, x):
    q = torch.einsum("bd,hde->bhe", x[:, -1], w["blocks.0.attn.W_Q"])
    k = torch.einsum("bpd,hde->bhpe", x, w["blocks.0.attn.W_K"])
    return (torch.einsum("bhe,bhpe->bhp", q, k) / math.sqrt(q.shape[-1])).softmax(-1)


def _oracle_attention_grid(model, tokens):
    w = {name: param.detach() for name, param in model.named_parameters()}
    return _oracle_pattern(w, _embed(w, tokens))[:, :, 0].T.reshape(-1, 59, 59)


def _resolve(name):
    """Cases name their model (a deep copy of a model per case would be slow, and a copy is not equal to
    its original): "final", a checkpoint's step, or "linear" (a hand-made nn.Linear)."""
    if name == "linear":
        return _linear()
    return _model(None if name == "final" else name)


def _run_on_model(impl, case):
    model, *rest = case.args
    with torch.no_grad():
        out = impl(_resolve(model), *rest)
    return out.detach() if isinstance(out, torch.Tensor) else out


def _neuron_grid_pre_relu(model, tokens):
    _, cache = model.run_with_cache(tokens, names_filter="blocks.0.mlp.hook_pre")
    return cache["blocks.0.mlp.hook_pre"][:, -1].reshape(59, 59, -1)


def _neuron_grid_first_position(model, tokens):
    _, cache = model.run_with_cache(tokens, names_filter="blocks.0.mlp.hook_post")
    return cache["blocks.0.mlp.hook_post"][:, 0].reshape(59, 59, -1)


def _neuron_grid_b_then_a(model, tokens):
    return ref.neuron_grid(model, tokens).transpose(0, 1)


def _attention_to_b(model, tokens):
    _, cache = model.run_with_cache(tokens, names_filter="blocks.0.attn.hook_pattern")
    return cache["blocks.0.attn.hook_pattern"][:, :, -1, 1].T.reshape(-1, 59, 59)


def _attention_reshaped_without_transpose(model, tokens):
    _, cache = model.run_with_cache(tokens, names_filter="blocks.0.attn.hook_pattern")
    return cache["blocks.0.attn.hook_pattern"][:, :, -1, 0].reshape(-1, 59, 59)


def _attention_query_is_a(model, tokens):
    _, cache = model.run_with_cache(tokens, names_filter="blocks.0.attn.hook_pattern")
    return cache["blocks.0.attn.hook_pattern"][:, :, 0, 0].T.reshape(-1, 59, 59)


# ----------------------------------------------------------------------------- the 2-D transform


def _fourier_2d_cases(gen):
    basis3 = ref.fourier_basis(3)
    # The grid is (cos 1 over a) times (constant over b): exactly the basis element [1, 0].
    grid = torch.outer(basis3[1], basis3[0])
    expected = torch.zeros(3, 3)
    expected[1, 0] = 1.0
    yield Case((grid, basis3), "p = 3, one basis element (worked by hand)", expected=expected)
    # (sin 1 over a) times (cos 1 over b), twice over a trailing dimension with weights 2 and -1.
    grid = torch.stack([2 * torch.outer(basis3[2], basis3[1]), -torch.outer(basis3[2], basis3[1])], dim=-1)
    expected = torch.zeros(3, 3, 2)
    expected[2, 1] = torch.tensor([2.0, -1.0])
    yield Case((grid, basis3), "p = 3, a trailing dimension (worked by hand)", expected=expected)
    basis = ref.fourier_basis(7)
    yield Case((torch.randn(7, 7, generator=gen), basis), "p = 7, a random grid")
    yield Case((torch.randn(7, 7, 5, generator=gen), basis), "p = 7, five random grids")


def _fourier_2d_first_axis_only(grid, basis):
    return torch.einsum("ia,ab...->ib...", basis, grid)


def _fourier_2d_transposed(grid, basis):
    return torch.einsum("ai,bj,ab...->ij...", basis, basis, grid)


def _fourier_2d_matmul_without_transpose(grid, basis):
    return torch.einsum("ia,bj,ab...->ij...", basis, basis, grid)


# ----------------------------------------------------------------------------- neuron frequencies


def _fractions_cases(gen):
    acts = torch.zeros(5, 5, 2)
    # Neuron 0: [1, 0] = 2 (cos 1 of a), [2, 2] = 1 (sin 1 x sin 1), [3, 1] = 1 (cos 2 x cos 1, in no
    # single frequency), [0, 0] = 7 (the constant, left out). Total 4 + 1 + 1 = 6; frequency 1 holds 5.
    acts[1, 0, 0], acts[2, 2, 0], acts[3, 1, 0], acts[0, 0, 0] = 2.0, 1.0, 1.0, 7.0
    # Neuron 1: [3, 4] and [4, 0], both frequency 2.
    acts[3, 4, 1], acts[4, 0, 1] = 1.0, 1.0
    yield Case((acts,), "p = 5, two neurons (worked by hand)", expected=torch.tensor([[5 / 6, 0.0], [0.0, 1.0]]))
    yield Case((torch.randn(7, 7, 10, generator=gen),), "p = 7, ten random neurons")
    acts = ref.fourier_2d(ref.neuron_grid(_model(), _data()[0]).detach()[..., :64], ref.fourier_basis(59))
    yield Case((acts,), "64 neurons of the grokked model")


def _fractions_with_constant(fourier_acts):
    p = fourier_acts.shape[0]
    energy = fourier_acts.pow(2)
    total = energy.sum((0, 1))
    fractions = []
    for k in range(1, p // 2 + 1):
        index = torch.tensor([0, 2 * k - 1, 2 * k])
        block = energy[index][:, index].sum((0, 1)) - energy[0, 0]
        fractions.append(block / total)
    return torch.stack(fractions, dim=1)


def _fractions_without_linear_terms(fourier_acts):
    p = fourier_acts.shape[0]
    energy = fourier_acts.pow(2)
    energy[0, 0] = 0
    total = energy.sum((0, 1))
    fractions = [energy[2 * k - 1 : 2 * k + 1, 2 * k - 1 : 2 * k + 1].sum((0, 1)) / total for k in range(1, p // 2 + 1)]
    return torch.stack(fractions, dim=1)


def _fractions_off_by_one(fourier_acts):
    p = fourier_acts.shape[0]
    energy = fourier_acts.pow(2)
    energy[0, 0] = 0
    total = energy.sum((0, 1))
    fractions = []
    for k in range(1, p // 2 + 1):
        index = torch.tensor([0, 2 * k, min(2 * k + 1, p - 1)]).unique()
        fractions.append(energy[index][:, index].sum((0, 1)) / total)
    return torch.stack(fractions, dim=1)


# ----------------------------------------------------------------------------- the trig identity


def _cos_grid(p, w, sign=-1):
    x = torch.arange(p, dtype=torch.float32)
    return torch.cos(2 * math.pi * w * (x[:, None, None] + x[None, :, None] + sign * x[None, None, :]) / p)


def _trig_cases(gen):
    yield Case((_cos_grid(5, 1), [1]), "p = 5, exactly cos(w(a + b - c)), w = 1 (worked by hand)", expected=1.0)
    yield Case((_cos_grid(5, 1), [2]), "p = 5, cos(w(a + b - c)) for w = 1, fitted with w = 2", expected=0.0)
    # Two orthogonal terms of equal norm: each explains half; a per-output offset changes nothing.
    offsets = torch.arange(5, dtype=torch.float32)[None, None, :]
    logits = _cos_grid(5, 1) + _cos_grid(5, 2) + offsets
    yield Case((logits, [1]), "p = 5, two terms and an offset for each output (worked by hand)", expected=0.5)
    logits = 3 * _cos_grid(7, 2) + torch.randn(7, 7, 7, generator=gen)
    yield Case((logits, [2, 3]), "p = 7, one term plus noise")
    with torch.no_grad():
        final = _model()(_data()[0])[:, -1].reshape(59, 59, 59)
    yield Case((final, zg.load_metrics()["key_frequencies"]), "the grokked model's logits, key frequencies")


def _trig_not_centred(logits, frequencies):
    p = logits.shape[-1]
    explained = sum(((logits * _cos_grid(p, w)).sum() ** 2 / _cos_grid(p, w).pow(2).sum()) for w in frequencies)
    return float(explained / logits.pow(2).sum())


def _trig_plus_c(logits, frequencies):
    p = logits.shape[-1]
    centred = logits - logits.mean((0, 1), keepdim=True)
    explained = sum(((centred * _cos_grid(p, w, 1)).sum() ** 2 / _cos_grid(p, w, 1).pow(2).sum()) for w in frequencies)
    return float(explained / centred.pow(2).sum())


def _trig_global_mean(logits, frequencies):
    p = logits.shape[-1]
    centred = logits - logits.mean()
    explained = sum(((centred * _cos_grid(p, w)).sum() ** 2 / _cos_grid(p, w).pow(2).sum()) for w in frequencies)
    return float(explained / centred.pow(2).sum())


def _trig_unnormalised_term(logits, frequencies):
    p = logits.shape[-1]
    centred = logits - logits.mean((0, 1), keepdim=True)
    explained = sum((centred * _cos_grid(p, w)).sum() ** 2 for w in frequencies)
    return float(explained / centred.pow(2).sum())


# ----------------------------------------------------------------------------- key projection and losses


def _sum_grid(p, w, fn):
    a = torch.arange(p).repeat_interleave(p).float()
    b = torch.arange(p).repeat(p).float()
    return fn(2 * math.pi * w * (a + b) / p)


def _projection_cases(gen):
    column = _sum_grid(5, 1, torch.cos)[:, None] * torch.tensor([[1.0, -2.0, 0.0, 0.5, 3.0]])
    yield Case((column, [1]), "p = 5, logits along cos(w(a + b)), w = 1: kept whole (worked by hand)", expected=column)
    yield Case((column, [2]), "p = 5, the same logits, projected on w = 2: nothing left (worked by hand)",
               expected=torch.zeros(25, 5))  # fmt: skip
    yield Case((torch.randn(49, 7, generator=gen), [1, 3]), "p = 7, random logits, w = 1 and 3")
    with torch.no_grad():
        final = _model()(_data()[0])[:, -1]
    yield Case((final, zg.load_metrics()["key_frequencies"]), "the grokked model's logits, key frequencies")


def _oracle_projection(logits, frequencies):
    """Least squares on the (unnormalised) directions: the same orthogonal projection."""
    p = logits.shape[-1]
    design = torch.stack([_sum_grid(p, w, fn) for w in frequencies for fn in (torch.cos, torch.sin)], dim=1)
    coefficients = torch.linalg.lstsq(design.double(), logits.double()).solution
    return (design.double() @ coefficients).float()


def _projection_unnormalised(logits, frequencies):
    p = logits.shape[-1]
    u = torch.stack([_sum_grid(p, w, fn) for w in frequencies for fn in (torch.cos, torch.sin)])
    return u.T @ (u @ logits)


def _projection_cos_only(logits, frequencies):
    p = logits.shape[-1]
    u = torch.stack([_sum_grid(p, w, torch.cos) for w in frequencies])
    u = u / u.norm(dim=1, keepdim=True)
    return u.T @ (u @ logits)


def _projection_over_outputs(logits, frequencies):
    p = logits.shape[-1]
    c = torch.arange(p).float()
    v = torch.stack([fn(2 * math.pi * w * c / p) for w in frequencies for fn in (torch.cos, torch.sin)])
    v = v / v.norm(dim=1, keepdim=True)
    return logits @ v.T @ v


def _losses_cases(gen):
    labels = torch.randint(0, 7, (49,), generator=gen)
    train = torch.randperm(49, generator=gen)[:15].sort().values
    yield Case((torch.randn(49, 7, generator=gen), labels, train, [1, 2]), "p = 7, random logits")
    tokens, labels, train, _ = _data()
    keys = zg.load_metrics()["key_frequencies"]
    for step in [None, 1000]:
        with torch.no_grad():
            logits = _model(step)(tokens)[:, -1]
        yield Case(
            (logits, labels, train, keys), f"the {'grokked model' if step is None else f'step {step} checkpoint'}"
        )


def _oracle_losses(logits, labels, train, frequencies):
    projection = _oracle_projection(logits, frequencies)
    restricted = logits.mean(0) + projection
    return (
        F.cross_entropy(restricted, labels).item(),
        F.cross_entropy(logits[train] - projection[train], labels[train]).item(),
    )


def _losses_no_mean(logits, labels, train, frequencies):
    projection = ref.key_projection(logits, frequencies)
    return F.cross_entropy(projection, labels).item(), F.cross_entropy(
        (logits - projection)[train], labels[train]
    ).item()


def _losses_excluded_on_all(logits, labels, train, frequencies):
    projection = ref.key_projection(logits, frequencies)
    restricted = logits.mean(0, keepdim=True) + projection
    return F.cross_entropy(restricted, labels).item(), F.cross_entropy(logits - projection, labels).item()


def _losses_swapped(logits, labels, train, frequencies):
    return tuple(reversed(ref.restricted_and_excluded_loss(logits, labels, train, frequencies)))


def _losses_restricted_on_train(logits, labels, train, frequencies):
    projection = ref.key_projection(logits, frequencies)
    restricted = (logits.mean(0, keepdim=True) + projection)[train]
    return F.cross_entropy(restricted, labels[train]).item(), ref.restricted_and_excluded_loss(
        logits, labels, train, frequencies
    )[1]


# ----------------------------------------------------------------------------- weight norm


def _norm_cases(gen):
    yield Case(("linear",), "weights 3, 4 and bias 12: sqrt(9 + 16 + 144) = 13 (worked by hand)", expected=13.0)
    yield Case(("final",), "the grokked model")
    yield Case((200,), "the checkpoint at step 200")


@functools.cache
def _linear():
    linear = nn.Linear(2, 1)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[3.0, 4.0]]))
        linear.bias.fill_(12.0)
    return linear


def _norm_sum_of_norms(model):
    return sum(param.detach().norm().item() for param in model.parameters())


def _norm_squared(model):
    return sum(param.detach().pow(2).sum().item() for param in model.parameters())


def _norm_weights_only(model):
    named = [param for name, param in model.named_parameters() if "bias" not in name and ".b_" not in name]
    return math.sqrt(sum(param.detach().pow(2).sum().item() for param in named))


def _norm_embeddings_only(model):
    return math.sqrt(sum(p.detach().pow(2).sum().item() for n, p in model.named_parameters() if "embed" in n))


# ----------------------------------------------------------------------------- progress measures


def _measures_cases(gen):
    tokens, labels, train, test = _data()
    keys = zg.load_metrics()["key_frequencies"]
    models = {1800: 1800, 0: 0, 600: 600}  # out of order on purpose
    yield Case((models, tokens, labels, train, test, keys), "checkpoints 1800, 0 and 600 (given out of order)")
    yield Case(({3600: "final"}, tokens, labels, train, test, keys), "the final model alone")


def _oracle_measures(models, tokens, labels, train, test, frequencies):
    """zoo/grokking.py's own forward pass and progress measures."""
    out = {key: [] for key in ["step", "train_loss", "test_loss", "train_accuracy", "test_accuracy",
                               "restricted_loss", "excluded_loss", "weight_norm"]}  # fmt: skip
    for step in sorted(models):
        weights = {name: param.detach() for name, param in models[step].named_parameters()}
        logits = zg.fast_logits(weights, tokens)
        out["step"].append(step)
        for split, idx in [("train", train), ("test", test)]:
            out[f"{split}_loss"].append(F.cross_entropy(logits[idx], labels[idx]).item())
            out[f"{split}_accuracy"].append((logits[idx].argmax(-1) == labels[idx]).float().mean().item())
        restricted, excluded = zg.restricted_and_excluded_loss(logits, labels, train, frequencies)
        out["restricted_loss"].append(restricted)
        out["excluded_loss"].append(excluded)
        out["weight_norm"].append(zg.weight_norm(weights))
    return out


def _run_measures(impl, case):
    names, *rest = case.args
    with torch.no_grad():
        return impl({step: _resolve(name) for step, name in names.items()}, *rest)


def _measures_in_given_order(models, tokens, labels, train, test, frequencies):
    out = None
    for step, model in models.items():
        one = ref.progress_measures({step: model}, tokens, labels, train, test, frequencies)
        out = one if out is None else {k: out[k] + one[k] for k in out}
    return out


def _measures_first_position(models, tokens, labels, train, test, frequencies):
    out = ref.progress_measures(models, tokens, labels, train, test, frequencies)
    for i, step in enumerate(sorted(models)):
        logits = models[step](tokens)[:, 0]
        for split, idx in [("train", train), ("test", test)]:
            out[f"{split}_loss"][i] = F.cross_entropy(logits[idx], labels[idx]).item()
            out[f"{split}_accuracy"][i] = (logits[idx].argmax(-1) == labels[idx]).float().mean().item()
    return out


def _measures_losses_over_all_inputs(models, tokens, labels, train, test, frequencies):
    out = ref.progress_measures(models, tokens, labels, train, test, frequencies)
    for i, step in enumerate(sorted(models)):
        logits = models[step](tokens)[:, -1]
        out["test_loss"][i] = F.cross_entropy(logits, labels).item()
    return out


def _measures_swapped_losses(models, tokens, labels, train, test, frequencies):
    out = ref.progress_measures(models, tokens, labels, train, test, frequencies)
    out["restricted_loss"], out["excluded_loss"] = out["excluded_loss"], out["restricted_loss"]
    return out


# ----------------------------------------------------------------------------- phase boundaries


def _measures(steps, train_accuracy, test_loss, test_accuracy):
    return {"step": steps, "train_accuracy": train_accuracy, "test_loss": test_loss, "test_accuracy": test_accuracy}


def _phase_cases(gen):
    # Memorised at 20 (train accuracy first 1.0); test loss first below its step-0 value 4.0 after that at 50
    # (at 10 it dips to 3.9, but that is before memorisation); test accuracy first reaches 0.99 (exactly) at 60.
    measures = _measures(
        [0, 10, 20, 30, 40, 50, 60, 70],
        [0.1, 0.9, 1.0, 1.0, 0.99, 1.0, 1.0, 1.0],
        [4.0, 3.9, 9.0, 12.0, 4.0, 2.0, 0.1, 0.01],
        [0.0, 0.02, 0.05, 0.1, 0.2, 0.9, 0.99, 1.0],
    )
    yield Case(
        (measures,),
        "hand-made measures with ties and an early dip",
        expected={"memorised": 20, "cleanup_start": 50, "grokked": 60},
    )
    history = zg.load_history()
    measures = {key: [h[key] for h in history] for key in ["step", "train_accuracy", "test_loss", "test_accuracy"]}
    yield Case(
        (measures,),
        "the shipped training history",
        expected={k: zg.load_metrics()["phases"][k] for k in ["memorised", "cleanup_start", "grokked"]},
    )


def _phases_train_loss(measures):
    out = ref.phase_boundaries(measures)
    steps = measures["step"]
    out["memorised"] = next(s for s, acc in zip(steps, measures["train_accuracy"]) if acc > 0.5)
    return out


def _phases_cleanup_from_start(measures):
    out = ref.phase_boundaries(measures)
    chance = measures["test_loss"][0]
    out["cleanup_start"] = next(s for s, loss in zip(measures["step"], measures["test_loss"]) if loss < chance)
    return out


def _phases_strictly_above(measures):
    out = ref.phase_boundaries(measures)
    out["grokked"] = next(s for s, acc in zip(measures["step"], measures["test_accuracy"]) if acc > 0.99)
    return out


def _phases_at_most_chance(measures):
    out = ref.phase_boundaries(measures)
    chance, memorised = measures["test_loss"][0], out["memorised"]
    out["cleanup_start"] = next(
        s for s, loss in zip(measures["step"], measures["test_loss"]) if s > memorised and loss <= chance
    )
    return out


# ----------------------------------------------------------------------------- the check


def _metrics():
    return zg.load_metrics()


def _circuit_formed_step():
    """From the training history (every 50 steps): the first step whose restricted loss is below 1."""
    return next(h["step"] for h in zg.load_history() if h["restricted_loss"] < 1.0)


check = Checker("1.5.2", [
    Exercise(
        ref.fourier_basis, _basis_cases,
        hint="Row 0 is constant; rows 2k - 1 and 2k are cos and sin of 2 pi k x / p; divide each row by its own norm.",
        wrong={"rows not normalised": _basis_unnormalised, "sin before cos": _basis_sin_first,
               "angles without the 2 pi": _basis_no_two_pi, "every row divided by sqrt(p)": _basis_divided_by_sqrt_p},
    ),
    Exercise(
        ref.frequency_shares, _shares_cases,
        hint="Coefficients = basis @ W_E; square and sum them over d_model; add the cos and sin rows of each "
             "frequency; leave the constant row out of both the shares and the total.",
        wrong={"the constant counted in the total": _shares_with_constant, "norms, not squared norms": _shares_not_squared,
               "the basis transposed": _shares_transposed_basis, "cos rows only": _shares_cos_only},
    ),
    Finding(
        "key_frequencies", truth=lambda: _metrics()["key_frequencies"], grade=same_set("the key frequencies"),
        hint="Plot frequency_shares of the number embeddings and keep the frequencies that stand far above the "
             "rest (the threshold in the text); frequency k is at index k - 1.",
        wrong={"indices, not frequencies": [k - 1 for k in _metrics()["key_frequencies"]],
               "only the three largest": [12, 18, 28], "basis rows, not frequencies": [23, 24, 35, 36, 45, 46, 55, 56],
               "frequencies of a random embedding": [3, 6, 24]},
    ),
    Exercise(
        ref.attention_grid, _grid_cases, run=_run_on_model, oracle=_no_grad(_oracle_attention_grid), atol=1e-5,
        hint="Cache blocks.0.attn.hook_pattern; take query position -1 and key position 0; put heads first, then "
             "reshape the p * p inputs to [p, p].",
        wrong={"attention to b, not a": _attention_to_b, "reshaped without moving heads first": _attention_reshaped_without_transpose,
               "the query at position 0": _attention_query_is_a},
    ),
    Exercise(
        ref.neuron_grid, _grid_cases, run=_run_on_model, oracle=_no_grad(_oracle_neuron_grid), atol=1e-4,
        hint="Cache blocks.0.mlp.hook_post (after the ReLU) at position -1 and reshape the p * p rows to [p, p, d_mlp].",
        wrong={"before the ReLU (hook_pre)": _neuron_grid_pre_relu, "at position 0": _neuron_grid_first_position,
               "indexed [b, a]": _neuron_grid_b_then_a},
    ),
    Exercise(
        ref.fourier_2d, _fourier_2d_cases,
        hint="Transform both axes: out = basis @ grid @ basis.T for a 2-D grid; einsum carries trailing dimensions.",
        wrong={"only the first axis": _fourier_2d_first_axis_only, "the basis transposed": _fourier_2d_transposed,
               "the second axis multiplied by basis, not basis.T": _fourier_2d_matmul_without_transpose},
    ),
    Exercise(
        ref.neuron_frequency_fractions, _fractions_cases,
        hint="Square the coefficients, zero [0, 0], and for frequency k sum the 3 x 3 block at indices "
             "{0, 2k - 1, 2k} in both axes, divided by the neuron's total.",
        wrong={"the constant [0, 0] left in the total": _fractions_with_constant,
               "only the 2 x 2 product block (no terms of a or b alone)": _fractions_without_linear_terms,
               "indices 2k and 2k + 1": _fractions_off_by_one},
    ),
    Exercise(
        ref.trig_fraction_explained, _trig_cases, atol=1e-4,
        hint="Remove each output's mean over (a, b); for each w the least-squares share is "
             "(sum of logits * term)^2 / (sum of term^2), over the variance of the centred logits.",
        wrong={"no centring": _trig_not_centred, "cos(w(a + b + c))": _trig_plus_c,
               "one global mean removed": _trig_global_mean, "the term not normalised": _trig_unnormalised_term},
    ),
    Exercise(
        ref.key_projection, _projection_cases, oracle=_oracle_projection, atol=1e-4, rtol=1e-3,
        hint="Build 2 unit vectors over the p * p inputs for each w (cos and sin of 2 pi w (a + b) / p); they are "
             "orthogonal, so the projection is U.T @ (U @ logits).",
        wrong={"directions not normalised": _projection_unnormalised, "cos directions only": _projection_cos_only,
               "projected over the outputs c, not the inputs": _projection_over_outputs},
    ),
    Exercise(
        ref.restricted_and_excluded_loss, _losses_cases, oracle=_oracle_losses, atol=1e-4, rtol=1e-3,
        hint="Restricted: cross-entropy on all inputs of (each output's mean logit + key_projection). Excluded: "
             "cross-entropy on the training inputs of (logits - key_projection).",
        wrong={"the restricted logits without each output's mean": _losses_no_mean,
               "the excluded loss over all inputs": _losses_excluded_on_all,
               "returned in the other order": _losses_swapped,
               "the restricted loss on the training inputs only": _losses_restricted_on_train},
    ),
    Exercise(
        ref.weight_norm, _norm_cases, run=_run_on_model, atol=1e-3,
        hint="Square every entry of every parameter, add them all, then take one square root.",
        wrong={"a sum of per-parameter norms": _norm_sum_of_norms, "squared, no square root": _norm_squared,
               "biases left out": _norm_weights_only, "embeddings only": _norm_embeddings_only},
    ),
    Exercise(
        ref.progress_measures, _measures_cases, run=_run_measures, oracle=_oracle_measures, atol=2e-3, rtol=1e-3,
        hint="Loop over sorted(models): logits at position -1 for all inputs once, then index them by the split "
             "for losses and accuracies, and pass all of them to restricted_and_excluded_loss.",
        wrong={"steps in the order given": _measures_in_given_order, "logits at position 0": _measures_first_position,
               "test loss over all inputs": _measures_losses_over_all_inputs,
               "restricted and excluded swapped": _measures_swapped_losses},
    ),
    Exercise(
        ref.phase_boundaries, _phase_cases,
        hint="Three scans over the steps: train accuracy == 1; after that, test loss below the step-0 test loss; "
             "test accuracy >= 0.99.",
        wrong={"memorised when train accuracy passes 0.5": _phases_train_loss,
               "cleanup searched from step 0": _phases_cleanup_from_start,
               "grokked only above 0.99": _phases_strictly_above, "test loss at most chance": _phases_at_most_chance},
    ),
    Finding(
        "circuit_formed_step", truth=_circuit_formed_step, grade=number_within(100, "circuit formation step"),
        hint="Plot the restricted loss (on all pairs, only the key directions kept) over the checkpoints and take the "
             "first checkpoint where it is below 1; the test loss is still high there.",
        wrong={"the start of cleanup (test loss below chance)": 1800, "the end of memorisation": 200,
               "the grokking step": 2200, "where the excluded loss first passes 1": 1400},
    ),
])  # fmt: skip
