"""Checks for 1.3.4 Probes vs SAEs: a head-to-head on detecting false statements."""

from functools import lru_cache

import torch

from solutions.chapter1_transformer_interp import probes_vs_saes as ref
from tests.harness import Case, Checker, Exercise, Finding, Mismatch, compare, describe, exact

# ----------------------------------------------------------------------------- shared inputs


@lru_cache(maxsize=1)
def _model():
    from zoo import load_model

    return load_model("gpt2-mini-truth", device="cpu")


def _labels(gen, n: int, share_true: float = 0.5) -> torch.Tensor:
    """n labels with round(n * share_true) True ones, in random order (both classes present)."""
    n_true = min(max(round(n * share_true), 1), n - 1)
    labels = torch.zeros(n, dtype=torch.bool)
    labels[:n_true] = True
    return labels[torch.randperm(n, generator=gen)]


def _separable(gen, n: int, d: int, share_true: float = 0.5, shift: float = 1.5):
    """Gaussian features whose first coordinate is shifted by the label: (x, labels)."""
    labels = _labels(gen, n, share_true)
    x = torch.randn(n, d, generator=gen)
    x[:, 0] += shift * (labels.float() * 2 - 1)
    return x, labels


def _sparse_latents(gen, n: int, d_sae: int, informative: dict[int, float], share_true: float = 0.5):
    """Non-negative, mostly-zero latents like an SAE's; latent i fires more on True examples by
    informative[i] (negative: more on False ones)."""
    labels = _labels(gen, n, share_true)
    fires = torch.rand(n, d_sae, generator=gen) < 0.1
    latents = torch.rand(n, d_sae, generator=gen) * fires
    for index, effect in informative.items():
        on = labels if effect > 0 else ~labels
        latents[:, index] = torch.rand(n, generator=gen) * 0.5 + abs(effect) * on.float()
    return latents, labels


# ----------------------------------------------------------------------------- claim_activations

_STATEMENTS = [
    "Paris is in Spain.",
    "The war lasted from 1789 to 1732.",
    "Lima is not in Peru.",
    "Cusco is in Peru.",
    "Mary lived in Tokyo from 1501 to 1588.",
]


def _claim_cases(gen):
    # "zoo" stands for gpt2-mini-truth (run() passes the model): a model in the args would be copied
    # for every case and compared for in-place changes.
    model = "zoo"
    yield Case((model, _STATEMENTS[:1], 1, -1), "one statement, layer 1, last position")
    yield Case((model, _STATEMENTS, 2, -1), "5 statements of different lengths, layer 2, last position")
    yield Case((model, _STATEMENTS, 3, -3), "5 statements, layer 3, position -3 (the statement's full stop)")
    yield Case((model, _STATEMENTS[1:4], 0, -2), "3 statements, layer 0, position -2", kwargs={"speaker": "John"})


def _oracle_claims(model, statements, layer, position, speaker="Mary"):
    """One prompt at a time: no padding at all."""
    from zoo import corpus

    rows = []
    for statement in statements:
        _, cache = model.run_with_cache(corpus.judged_claim(statement, speaker))
        rows.append(cache["resid_post", layer][0, position])
    return torch.stack(rows)


def _run_claim(impl, case):
    with torch.inference_mode():
        return impl(_model(), *case.args[1:], **case.kwargs)


def _claims_right_padded(model, statements, layer, position, speaker="Mary"):
    from zoo import corpus

    tokens = model.to_tokens([corpus.judged_claim(s, speaker) for s in statements], padding_side="right")
    _, cache = model.run_with_cache(tokens)
    return cache["resid_post", layer][:, position]


def _claims_resid_pre(model, statements, layer, position, speaker="Mary"):
    from zoo import corpus

    tokens = model.to_tokens([corpus.judged_claim(s, speaker) for s in statements], padding_side="left")
    _, cache = model.run_with_cache(tokens)
    return cache["resid_pre", layer][:, position]


def _claims_bare_statements(model, statements, layer, position, speaker="Mary"):
    _, cache = model.run_with_cache(model.to_tokens(statements, padding_side="left"))
    return cache["resid_post", layer][:, position]


def _claims_no_bos(model, statements, layer, position, speaker="Mary"):
    from zoo import corpus

    prompts = [corpus.judged_claim(s, speaker) for s in statements]
    _, cache = model.run_with_cache(model.to_tokens(prompts, padding_side="left", prepend_bos=False))
    return cache["resid_post", layer][:, position]


# ----------------------------------------------------------------------------- balanced_sample


def _sample_cases(gen):
    yield Case((torch.tensor([True, False, True, False, False]), 1, 0), "5 labels, 1 per class, seed 0")
    yield Case((_labels(gen, 40, 0.25), 5, 3), "40 labels (10 True), 5 per class, seed 3")
    yield Case((_labels(gen, 30, 0.5), 15, 1), "30 labels (15 True), all 15 per class, seed 1")
    yield Case((_labels(gen, 200, 0.1), 8, 7), "200 labels (20 True), 8 per class, seed 7")


def _run_sample(impl, case):
    """What the check looks at: the classes of the picks in order, repeated picks, picks out of range, a
    second call (the seed must fix it), another seed, and how often each True example is picked over
    many seeds (uniform within a class)."""
    labels, n_per_class, seed = case.args
    picked = impl(labels, n_per_class, seed)
    if not isinstance(picked, torch.Tensor) or picked.dtype not in (torch.int64, torch.int32) or picked.dim() != 1:
        return {"picked": picked}
    valid = bool(((picked >= 0) & (picked < len(labels))).all())
    result = {
        "picked": picked,
        "valid": valid,
        "classes": labels[picked].tolist() if valid else None,
        "distinct": len(set(picked.tolist())) == len(picked),
        "reproducible": torch.equal(impl(labels, n_per_class, seed), picked),
        "seed_matters": any(not torch.equal(impl(labels, n_per_class, s), picked) for s in range(seed + 1, seed + 6)),
    }
    n_true = int(labels.sum())
    if n_per_class < n_true:
        counts = torch.zeros(len(labels))
        for s in range(300):
            counts[impl(labels, n_per_class, 1000 + s)] += 1
        result["true_pick_frequencies"] = counts[labels] / 300
    return result


def _compare_sample(expected, got):
    picked = got["picked"]
    if not isinstance(picked, torch.Tensor) or picked.dtype not in (torch.int64, torch.int32) or picked.dim() != 1:
        raise Mismatch(f"output: expected a 1-D tensor of int64 indices, got {describe(picked)}")
    if len(picked) != len(expected["picked"]):
        raise Mismatch(
            f"output: expected {len(expected['picked'])} indices (n_per_class of each class), got {len(picked)}"
        )
    if not got["valid"]:
        raise Mismatch("output: some indices are outside 0..len(labels)-1")
    if got["classes"] != expected["classes"]:
        raise Mismatch(
            f"output: the labels of your picks, in order, are {got['classes']}; expected n_per_class True "
            "ones, then n_per_class False ones"
        )
    if not got["distinct"]:
        raise Mismatch("output: an example is picked twice: draw without replacement")
    if not got["reproducible"]:
        raise Mismatch("output: two calls with the same seed picked different examples: seed a generator of your own")
    if not got["seed_matters"] and expected["seed_matters"]:
        raise Mismatch("output: other seeds pick the same examples: the draw must be random")
    if "true_pick_frequencies" in expected:
        share = len(expected["picked"]) / 2 / int(len(got["true_pick_frequencies"]))
        frequencies = got["true_pick_frequencies"]
        # Over 300 seeds each True example is picked with probability `share`: 5 standard errors.
        if ((frequencies - share).abs() > 5 * (share * (1 - share) / 300) ** 0.5).any():
            raise Mismatch(
                f"output: over 300 seeds, True examples are picked with frequencies from {frequencies.min():.2f} "
                f"to {frequencies.max():.2f}, but each should be picked with probability {share:.2f}"
            )


def _oracle_sample(labels, n_per_class, seed):
    generator = torch.Generator().manual_seed(seed)
    true_ones, false_ones = labels.nonzero().flatten(), (~labels).nonzero().flatten()
    keys = torch.rand(len(labels), generator=generator)  # a random order by sorting random keys
    return torch.cat(
        [true_ones[keys[true_ones].argsort()[:n_per_class]], false_ones[keys[false_ones].argsort()[:n_per_class]]]
    )


def _sample_with_replacement(labels, n_per_class, seed):
    generator = torch.Generator().manual_seed(seed)
    picked = []
    for value in (True, False):
        members = (labels == value).nonzero().flatten()
        picked.append(members[torch.randint(len(members), (n_per_class,), generator=generator)])
    return torch.cat(picked)


def _sample_first_of_each_class(labels, n_per_class, seed):
    return torch.cat([(labels == v).nonzero().flatten()[:n_per_class] for v in (True, False)])


def _sample_global_random_state(labels, n_per_class, seed):
    picked = []
    for value in (True, False):
        members = (labels == value).nonzero().flatten()
        picked.append(members[torch.randperm(len(members))[:n_per_class]])
    return torch.cat(picked)


def _sample_ignoring_classes(labels, n_per_class, seed):
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(len(labels), generator=generator)[: 2 * n_per_class]


# ----------------------------------------------------------------------------- balanced_accuracy and auroc


def _accuracy_cases(gen):
    labels = torch.tensor([True, True, True, False])
    yield Case((torch.tensor([True, True, True, True]), labels), "always True on 3 True, 1 False", expected=0.5)
    yield Case((torch.tensor([True, False, True, False]), labels), "2 of 3 True right, the False right",
               expected=5 / 6)  # fmt: skip
    yield Case((torch.tensor([False, False, False, True]), labels), "every prediction wrong", expected=0.0)
    for n, share in ((50, 0.2), (31, 0.7)):
        truth = _labels(gen, n, share)
        yield Case((torch.rand(n, generator=gen) < 0.5, truth), f"random guesses, {n} labels, {share:.0%} True")


def _plain_accuracy(predicted, labels):
    return (predicted == labels).float().mean().item()


def _accuracy_on_true_only(predicted, labels):
    return predicted[labels].float().mean().item()


def _auroc_cases(gen):
    labels = torch.tensor([True, False, True, False])
    yield Case((torch.tensor([0.9, 0.1, 0.8, 0.2]), labels), "perfectly separated", expected=1.0)
    yield Case((torch.tensor([0.1, 0.9, 0.2, 0.8]), labels), "perfectly reversed", expected=0.0)
    yield Case((torch.tensor([0.5, 0.5, 0.5, 0.5]), labels), "every score tied", expected=0.5)
    yield Case((torch.tensor([1.0, 0.0, 0.0, 0.0]), labels), "one True above all, one tied with the Falses",
               expected=0.75)  # fmt: skip
    truth = _labels(gen, 60, 0.3)
    yield Case((torch.randn(60, generator=gen) + truth.float(), truth), "60 noisy scores, 30% True")
    truth = _labels(gen, 40, 0.5)
    yield Case((torch.randint(0, 3, (40,), generator=gen).float(), truth), "40 scores in {0, 1, 2}: many ties")


def _oracle_auroc(scores, labels):
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels.numpy(), scores.numpy()))


def _auroc_ties_lost(scores, labels):
    return (scores[labels][:, None] > scores[~labels][None, :]).float().mean().item()


def _auroc_ties_won(scores, labels):
    return (scores[labels][:, None] >= scores[~labels][None, :]).float().mean().item()


def _auroc_reversed(scores, labels):
    return 1 - ref.auroc(scores, labels)


def _auroc_as_accuracy(scores, labels):
    return ref.balanced_accuracy(scores > scores.median(), labels)


# ----------------------------------------------------------------------------- fit_logistic_probe


def _probe_cases(gen):
    yield Case((*_separable(gen, 40, 3), 0.01), "40 examples, 3 features, l2 0.01")
    yield Case((*_separable(gen, 60, 8, share_true=0.25), 0.1), "60 examples, 8 features, 25% True, l2 0.1")
    x, labels = _separable(gen, 30, 5, shift=0.5)
    yield Case((x + 4.0, labels, 0.05), "30 examples, features offset by +4 (the bias matters), l2 0.05")
    yield Case((*_separable(gen, 24, 40), 1.0), "24 examples, 40 features (more than examples), l2 1.0")


def _objective(x, labels, l2, w, b):
    logits = x @ w + b
    return (torch.nn.functional.binary_cross_entropy_with_logits(logits, labels.float()) + l2 * w.pow(2).sum()).item()


def _run_probe(impl, case):
    """The objective the weights reach on the training data, and the probabilities they give."""
    x, labels, l2 = case.args
    fitted = impl(*case.args, **case.kwargs)
    if not (isinstance(fitted, tuple) and len(fitted) == 2 and isinstance(fitted[0], torch.Tensor)):
        return {"fitted": fitted}
    w, b = fitted[0].detach().float(), float(fitted[1])
    if w.shape != (x.shape[1],):
        return {"fitted": fitted, "shape": tuple(w.shape)}
    return {"objective": _objective(x, labels, l2, w, b), "probabilities": torch.sigmoid(x @ w + b)}


def _compare_probe(expected, got):
    if "objective" not in got:
        shape = f"w of shape {got['shape']}" if "shape" in got else describe(got["fitted"])
        raise Mismatch(f"output: expected (w, b) with w of shape (d,) and b a float, got {shape}")
    if got["objective"] > expected["objective"] + 1e-4:
        raise Mismatch(
            f"output: your (w, b) reach {got['objective']:.5f} on the objective (mean cross-entropy + l2 * ||w||^2), "
            f"but its minimum is {expected['objective']:.5f}"
        )
    compare(expected["probabilities"], got["probabilities"], atol=2e-2, rtol=0.0, where="sigmoid(x @ w + b)")


def _oracle_probe(x, labels, l2, n_steps=100):
    """scikit-learn minimises ||w||^2 / 2 + C * (summed cross-entropy): C = 1 / (2 * n * l2) is the same objective."""
    from sklearn.linear_model import LogisticRegression

    fitted = LogisticRegression(C=1 / (2 * len(x) * l2), tol=1e-10, max_iter=10_000).fit(
        x.double().numpy(), labels.numpy()
    )
    return torch.tensor(fitted.coef_[0], dtype=torch.float32), float(fitted.intercept_[0])


def _probe_without_penalty(x, labels, l2, n_steps=100):
    return ref.fit_logistic_probe(x, labels, 0.0, n_steps)


def _probe_penalising_bias(x, labels, l2, n_steps=100):
    w = torch.zeros(x.shape[1] + 1, requires_grad=True)
    xb = torch.cat([x, torch.ones(len(x), 1)], 1)
    optimizer = torch.optim.LBFGS([w], max_iter=n_steps, line_search_fn="strong_wolfe")

    def objective():
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(xb @ w, labels.float()) + l2 * w.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(objective)
    return w[:-1].detach(), w[-1].item()


def _probe_without_bias(x, labels, l2, n_steps=100):
    w = torch.zeros(x.shape[1], requires_grad=True)
    optimizer = torch.optim.LBFGS([w], max_iter=n_steps, line_search_fn="strong_wolfe")

    def objective():
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(x @ w, labels.float()) + l2 * w.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(objective)
    return w.detach(), 0.0


def _probe_summed_loss(x, labels, l2, n_steps=100):
    """Cross-entropy summed over examples: the penalty is then n times weaker."""
    return ref.fit_logistic_probe(x, labels, l2 / len(x), n_steps)


# ----------------------------------------------------------------------------- diff_of_means


def _means_cases(gen):
    x = torch.tensor([[2.0, 0.0], [4.0, 2.0], [0.0, 0.0]])
    yield Case((x, torch.tensor([True, True, False])), "True at (2,0) and (4,2), False at (0,0)",
               expected=(torch.tensor([3.0, 1.0]), 5.0))  # fmt: skip
    yield Case(_separable(gen, 40, 4), "40 examples, 4 features, half True")
    yield Case(_separable(gen, 50, 6, share_true=0.2), "50 examples, 6 features, 20% True")
    x, labels = _separable(gen, 30, 3, share_true=0.7)
    yield Case((x + 3.0, labels), "30 examples offset by +3, 70% True")


def _means_reversed(x, labels):
    direction = x[~labels].mean(0) - x[labels].mean(0)
    return direction, (0.5 * (x[labels].mean(0) + x[~labels].mean(0)) @ direction).item()


def _means_normalised(x, labels):
    direction, _ = ref.diff_of_means(x, labels)
    direction = direction / direction.norm()
    return direction, (0.5 * (x[labels].mean(0) + x[~labels].mean(0)) @ direction).item()


def _means_threshold_zero(x, labels):
    return ref.diff_of_means(x, labels)[0], 0.0


def _means_threshold_at_overall_mean(x, labels):
    direction = ref.diff_of_means(x, labels)[0]
    return direction, (x.mean(0) @ direction).item()


# ----------------------------------------------------------------------------- best_latent


def _latent_cases(gen):
    latents = torch.tensor([[0.0, 1.0], [0.0, 3.0], [2.0, 0.0], [0.0, 0.0]])
    yield Case((latents, torch.tensor([True, True, False, False])), "latent 1 fires on the True examples only",
               expected={"rule": (1, 1.0, 0.5), "accuracy": 1.0})  # fmt: skip
    yield Case(_sparse_latents(gen, 40, 16, {5: 1.0}), "16 latents, latent 5 fires more on True")
    yield Case(_sparse_latents(gen, 40, 16, {9: -1.0}), "16 latents, latent 9 fires more on False")
    yield Case(
        _sparse_latents(gen, 60, 32, {3: 0.4, 20: -1.2}, share_true=0.2), "32 latents, 20% True, two informative"
    )
    yield Case(_sparse_latents(gen, 30, 64, {}, share_true=0.5), "64 uninformative latents")
    # 10% True and a latent that only partly separates: the best plain accuracy is "always False".
    yield Case(
        _sparse_latents(gen, 50, 8, {3: 0.3}, share_true=0.1), "8 latents, 10% True, latent 3 weakly informative"
    )


def _rule_accuracy(latents, labels, rule):
    index, sign, threshold = rule
    return ref.balanced_accuracy(sign * (latents[:, index] - threshold) > 0, labels)


def _run_latent(impl, case):
    """The training balanced accuracy of the returned rule, and the rule itself."""
    latents, labels = case.args
    rule = impl(latents, labels)
    if not (isinstance(rule, tuple) and len(rule) == 3):
        return {"rule": rule}
    index, sign, threshold = rule
    if not (isinstance(index, int) and 0 <= index < latents.shape[1] and sign in (1.0, -1.0)):
        return {"rule": rule}
    return {"rule": rule, "accuracy": _rule_accuracy(latents, labels, (index, sign, float(threshold)))}


def _compare_latent(expected, got):
    if "accuracy" not in got:
        raise Mismatch(
            f"output: expected (index, sign, threshold) with index an int latent index and sign 1.0 or -1.0, "
            f"got {describe(got['rule'])}"
        )
    if got["accuracy"] < expected["accuracy"] - 1e-6:
        raise Mismatch(
            f"output: your rule (latent {got['rule'][0]}, sign {got['rule'][1]}, threshold {float(got['rule'][2]):.4g}) "
            f"has balanced accuracy {got['accuracy']:.4f} on these examples; the best single-latent rule reaches "
            f"{expected['accuracy']:.4f}"
        )


def _oracle_latent(latents, labels):
    """Every latent, sign and threshold between distinct values, one at a time."""
    best = (-1.0, 0, 1.0, 0.0)
    for index in range(latents.shape[1]):
        values = latents[:, index].unique()
        cuts = torch.cat([values[:1] - 1, (values[1:] + values[:-1]) / 2, values[-1:] + 1])
        for threshold in cuts.tolist():
            for sign in (1.0, -1.0):
                accuracy = ref.balanced_accuracy(sign * (latents[:, index] - threshold) > 0, labels)
                best = max(best, (accuracy, -index, sign, threshold))
    return -best[1], best[2], best[3]


def _latent_positive_only(latents, labels):
    best = (-1.0, 0, 0.0)
    for index in range(latents.shape[1]):
        for threshold in latents[:, index].unique():
            accuracy = ref.balanced_accuracy(latents[:, index] > threshold - 1e-6, labels)
            best = max(best, (accuracy, -index, threshold.item() - 1e-6))
    return -best[1], 1.0, best[2]


def _latent_by_mean_difference(latents, labels):
    difference = latents[labels].mean(0) - latents[~labels].mean(0)
    index = int(difference.abs().argmax())
    column = latents[:, index]
    return index, float(torch.sign(difference[index])), (0.5 * (column[labels].mean() + column[~labels].mean())).item()


def _latent_plain_accuracy(latents, labels):
    best = (-1.0, 0, 1.0, 0.0)
    for index in range(latents.shape[1]):
        for threshold in latents[:, index].unique():
            for sign in (1.0, -1.0):
                predicted = sign * (latents[:, index] - threshold + 1e-6 * sign) > 0
                accuracy = (predicted == labels).float().mean().item()
                best = max(best, (accuracy, -index, sign, threshold.item() - 1e-6 * sign))
    return -best[1], best[2], best[3]


# ----------------------------------------------------------------------------- sparse_latent_probe


def _sparse_probe_cases(gen):
    yield Case((*_sparse_latents(gen, 40, 16, {2: 1.0, 7: -0.8}), 2, 0.01), "16 latents, k=2, two informative")
    yield Case((*_sparse_latents(gen, 60, 32, {1: 0.5, 4: -1.5, 30: 1.0}, 0.3), 3, 0.05), "32 latents, k=3, 30% True")
    yield Case((*_sparse_latents(gen, 50, 24, {10: 1.0}), 5, 0.1), "24 latents, k=5, one informative")


def _run_sparse_probe(impl, case):
    latents, labels, k, l2 = case.args
    out = impl(*case.args)
    if not (isinstance(out, tuple) and len(out) == 3 and isinstance(out[0], torch.Tensor)):
        return {"out": out}
    indices, w, b = out
    result = {"out": out, "indices": indices.tolist()}
    if isinstance(w, torch.Tensor) and w.shape == (len(indices),):
        result["objective"] = _objective(latents[:, indices], labels, l2, w.detach().float(), float(b))
    return result


def _compare_sparse_probe(expected, got):
    if "indices" not in got:
        raise Mismatch(f"output: expected (indices, weights, bias), got {describe(got['out'])}")
    if got["indices"] != expected["indices"]:
        raise Mismatch(f"output: selected latents {got['indices']}, expected {expected['indices']} (in that order)")
    if "objective" not in got:
        raise Mismatch(f"output: weights should have one entry per selected latent, got {describe(got['out'][1])}")
    if got["objective"] > expected["objective"] + 1e-4:
        raise Mismatch(
            f"output: the probe on the selected latents reaches {got['objective']:.5f} on the objective, but its "
            f"minimum is {expected['objective']:.5f}"
        )


def _oracle_sparse_probe(latents, labels, k, l2):
    gaps = [abs(latents[labels, i].mean().item() - latents[~labels, i].mean().item()) for i in range(latents.shape[1])]
    indices = torch.tensor(sorted(range(len(gaps)), key=lambda i: -gaps[i])[:k])
    return (indices, *_oracle_probe(latents[:, indices], labels, l2))


def _sparse_probe_signed(latents, labels, k, l2):
    indices = (latents[labels].mean(0) - latents[~labels].mean(0)).topk(k).indices
    return (indices, *ref.fit_logistic_probe(latents[:, indices], labels, l2))


def _sparse_probe_most_active(latents, labels, k, l2):
    indices = latents.mean(0).topk(k).indices
    return (indices, *ref.fit_logistic_probe(latents[:, indices], labels, l2))


def _sparse_probe_unpenalised(latents, labels, k, l2):
    difference = (latents[labels].mean(0) - latents[~labels].mean(0)).abs()
    indices = difference.topk(k).indices
    return (indices, *ref.fit_logistic_probe(latents[:, indices], labels, 0.0))


# ----------------------------------------------------------------------------- head_to_head


def _shifted_task(gen, n: int, share_true: float, offset: float):
    """Residual-like features (label on coordinate 0) and SAE-like latents (latent 4 fires on False
    examples, latent 9 on True ones), shifted by `offset` (a test family sits elsewhere)."""
    x, labels = _separable(gen, n, 6, share_true, shift=1.0)
    latents = torch.rand(n, 12, generator=gen) * (torch.rand(n, 12, generator=gen) < 0.2)
    latents[:, 4] = torch.rand(n, generator=gen) + 1.2 * (~labels).float()
    latents[:, 9] = torch.rand(n, generator=gen) + 0.6 * labels.float()
    return x + offset, latents + 0.1 * offset, labels


def _h2h_cases(gen):
    train, test = _shifted_task(gen, 60, 0.3, 0.0), _shifted_task(gen, 80, 0.5, 0.3)
    samples = [ref.balanced_sample(train[2], 5, seed) for seed in range(3)]
    yield Case((train, test, samples, 0.05, 2), "60 training examples (30% True), 80 test, 3 samples of 5 per class")
    train, test = _shifted_task(gen, 40, 0.5, 0.0), _shifted_task(gen, 50, 0.4, -0.5)
    samples = [ref.balanced_sample(train[2], 3, seed) for seed in (7, 8)]
    yield Case((train, test, samples, 0.1, 1), "40 training, 50 test shifted, 2 samples of 3 per class, k=1")


def _oracle_h2h(train, test, samples, l2, k):
    """The same protocol from the oracles above (scikit-learn probes, brute-force latent search)."""
    (train_x, train_latents, train_labels), (test_x, test_latents, test_labels) = train, test
    from sklearn.metrics import balanced_accuracy_score

    def metrics(scores, predicted):
        return torch.tensor([balanced_accuracy_score(test_labels, predicted), _oracle_auroc(scores, test_labels)])

    results = {method: [] for method in ref.METHODS}
    for picked in samples:
        x, latents, labels = train_x[picked], train_latents[picked], train_labels[picked]
        w, b = _oracle_probe(x, labels, l2)
        results["logistic probe"].append(metrics(test_x @ w + b, test_x @ w + b > 0))
        true_mean, false_mean = x[labels].mean(0), x[~labels].mean(0)
        projection = test_x @ (true_mean - false_mean)
        midpoint = (true_mean + false_mean) / 2 @ (true_mean - false_mean)
        results["diff of means"].append(metrics(projection, projection > midpoint))
        index, sign, cut = _oracle_latent(latents, labels)
        results["best SAE latent"].append(
            metrics(sign * test_latents[:, index], sign * (test_latents[:, index] - cut) > 0)
        )
        indices, latent_w, latent_b = _oracle_sparse_probe(latents, labels, k, l2)
        logits = test_latents[:, indices] @ latent_w + latent_b
        results["SAE latent probe"].append(metrics(logits, logits > 0))
    return {method: torch.stack(rows).float() for method, rows in results.items()}


def _h2h_whole_training_set(train, test, samples, l2, k):
    return ref.head_to_head(train, test, [torch.arange(len(train[2]))] * len(samples), l2, k)


def _h2h_scored_on_training(train, test, samples, l2, k):
    return ref.head_to_head(train, train, samples, l2, k)


def _h2h_one_sample(train, test, samples, l2, k):
    return ref.head_to_head(train, test, [samples[0]] * len(samples), l2, k)


def _h2h_latent_without_sign(train, test, samples, l2, k):
    rows = []
    for picked in samples:
        index, _, cut = ref.best_latent(train[1][picked], train[2][picked])
        scores = test[1][:, index]
        rows.append(torch.tensor([ref.balanced_accuracy(scores > cut, test[2]), ref.auroc(scores, test[2])]))
    results = ref.head_to_head(train, test, samples, l2, k)
    return results | {"best SAE latent": torch.stack(rows)}


def _h2h_means_threshold_zero(train, test, samples, l2, k):
    rows = []
    for picked in samples:
        direction, _ = ref.diff_of_means(train[0][picked], train[2][picked])
        scores = test[0] @ direction
        rows.append(torch.tensor([ref.balanced_accuracy(scores > 0, test[2]), ref.auroc(scores, test[2])]))
    results = ref.head_to_head(train, test, samples, l2, k)
    return results | {"diff of means": torch.stack(rows)}


# ----------------------------------------------------------------------------- steered_verdicts


def _truth_direction():
    """A diff-of-means truth direction of gpt2-mini-truth after block 2 (from a few city claims)."""
    from zoo import corpus

    statements = [s for s in corpus.truth_statements("cities") if not s.held_out][::3]
    with torch.inference_mode():
        x = ref.claim_activations(_model(), [s.text for s in statements], 2, -1)
    return ref.diff_of_means(x, torch.tensor([s.is_true for s in statements]))[0]


def _steer_cases(gen):
    model, truth = "zoo", _truth_direction()  # "zoo": gpt2-mini-truth, passed by _run_steer
    yield Case((model, _STATEMENTS, truth, 2, 0.0), "5 statements, scale 0: the plain verdicts")
    yield Case((model, _STATEMENTS, truth, 2, 25.0), "5 statements, a truth direction after block 2, scale 25")
    yield Case((model, _STATEMENTS, truth, 2, -25.0), "5 statements, the same direction, scale -25")
    # Pushed at every position, this direction also flips "Lima is not in Peru." (measured).
    random_direction = torch.randn(128, generator=torch.Generator().manual_seed(0)) * 3
    yield Case((model, _STATEMENTS, random_direction, 0, 20.0), "a random direction after block 0, scale 20")


def _run_steer(impl, case):
    with torch.inference_mode():
        return impl(_model(), *case.args[1:], **case.kwargs)


def _oracle_steer(model, statements, direction, layer, scale, speaker="Mary"):
    """One prompt at a time (no padding), pushing at the next block's input (layer < n_layers - 1)."""
    from zoo import corpus

    push = scale * direction / direction.norm()
    false_id, true_id = (corpus.single_token_id(model.tokenizer, word) for word in (" false", " true"))
    verdicts = []
    for statement in statements:
        tokens = model.to_tokens(corpus.judged_claim(statement, speaker))

        def hook(resid, hook):
            resid[:, -1] = resid[:, -1] + push
            return resid

        name = f"blocks.{layer + 1}.hook_resid_pre"  # the same stream as blocks.{layer}.hook_resid_post
        logits = model.run_with_hooks(tokens, fwd_hooks=[(name, hook)])[0, -1]
        verdicts.append(bool(logits[true_id] > logits[false_id]))
    return torch.tensor(verdicts)


def _steer_variant(model, statements, direction, layer, scale, speaker="Mary", padding="left", hook_name=None,
                   normalise=True, positions=slice(-1, None)):  # fmt: skip
    from zoo import corpus

    tokens = model.to_tokens([corpus.judged_claim(s, speaker) for s in statements], padding_side=padding)
    push = scale * direction / (direction.norm() if normalise else 1.0)

    def hook(resid, hook):
        resid[:, positions] += push
        return resid

    logits = model.run_with_hooks(tokens, fwd_hooks=[(hook_name or f"blocks.{layer}.hook_resid_post", hook)])
    false_id, true_id = (corpus.single_token_id(model.tokenizer, word) for word in (" false", " true"))
    return logits[:, -1, true_id] > logits[:, -1, false_id]


def _steer_unnormalised(model, statements, direction, layer, scale, speaker="Mary"):
    return _steer_variant(model, statements, direction, layer, scale, speaker, normalise=False)


def _steer_every_position(model, statements, direction, layer, scale, speaker="Mary"):
    return _steer_variant(model, statements, direction, layer, scale, speaker, positions=slice(None))


def _steer_right_padded(model, statements, direction, layer, scale, speaker="Mary"):
    return _steer_variant(model, statements, direction, layer, scale, speaker, padding="right")


def _steer_before_block(model, statements, direction, layer, scale, speaker="Mary"):
    return _steer_variant(
        model, statements, direction, layer, scale, speaker, hook_name=f"blocks.{layer}.hook_resid_pre"
    )


# ----------------------------------------------------------------------------- the finding


@lru_cache(maxsize=1)
def _best_latent_concept() -> str:
    """The concept of zoo.concepts.CONCEPTS with the highest F1 for "the TopK SAE's best truth latent
    fires" over the test split's tokens; the latent is the best single latent on every city claim about
    the cities judged in training, after block 2 at the last position."""
    from zoo import corpus, evaluate
    from zoo.concepts import CONCEPTS, concept_labels, precision_recall
    from zoo.saes import LAYER, load_sae

    model, sae = _model(), load_sae(f"gpt2-mini-truth-L{LAYER}-topk")
    statements = [s for s in corpus.truth_statements("cities") if not s.held_out]
    with torch.inference_mode():
        latents = sae.encode(ref.claim_activations(model, [s.text for s in statements], LAYER, -1))
        index, _, _ = ref.best_latent(latents, torch.tensor([s.is_true for s in statements]))
        tokens = evaluate.story_tokens(model, "test", 128)
        _, cache = model.run_with_cache(tokens, names_filter=[sae.cfg.metadata.hook_name])
        fires = sae.encode(cache[sae.cfg.metadata.hook_name])[..., index] > 0
    labels = concept_labels(tokens, model.tokenizer)
    f1 = []
    for i in range(len(CONCEPTS)):
        precision, recall = precision_recall(fires, labels[..., i])
        f1.append(2 * precision * recall / max(precision + recall, 1e-9))
    return CONCEPTS[max(range(len(CONCEPTS)), key=f1.__getitem__)]


check = Checker(
    "1.3.4",
    [
        Exercise(
            reference=ref.claim_activations,
            cases=_claim_cases,
            run=_run_claim,
            oracle=_oracle_claims,
            hint="pad on the left so every prompt ends at position -1, and read blocks.{layer}.hook_resid_post.",
            wrong={
                "the prompts are padded on the right, so the last positions of short prompts are padding": _claims_right_padded,
                "this is the residual stream before the block (hook_resid_pre), not after it": _claims_resid_pre,
                "these are the bare statements, not the judged-claim prompts": _claims_bare_statements,
                "the prompts have no BOS token in front": _claims_no_bos,
            },
            atol=1e-4,
        ),
        Exercise(
            reference=ref.balanced_sample,
            cases=_sample_cases,
            run=_run_sample,
            compare=_compare_sample,
            oracle=_oracle_sample,
            hint="draw within each class with torch.randperm and your own seeded generator; True ones first.",
            wrong={
                "the draw is with replacement": _sample_with_replacement,
                "this takes the first n_per_class of each class, whatever the seed": _sample_first_of_each_class,
                "the draw uses the global random state, not a generator seeded with `seed`": _sample_global_random_state,
                "the draw ignores the classes": _sample_ignoring_classes,
            },
        ),
        Exercise(
            reference=ref.balanced_accuracy,
            cases=_accuracy_cases,
            hint="average two accuracies: one over the True examples, one over the False ones.",
            wrong={
                "this is plain accuracy, which the larger class dominates": _plain_accuracy,
                "this is only the accuracy on the True examples": _accuracy_on_true_only,
            },
        ),
        Exercise(
            reference=ref.auroc,
            cases=_auroc_cases,
            oracle=_oracle_auroc,
            hint="compare every True example's score with every False example's; a tie counts half.",
            wrong={
                "ties count as losses": _auroc_ties_lost,
                "ties count as wins": _auroc_ties_won,
                "this is 1 - AUROC: False examples scoring higher counted as success": _auroc_reversed,
                "this is a balanced accuracy at one threshold, not an area": _auroc_as_accuracy,
            },
        ),
        Exercise(
            reference=ref.fit_logistic_probe,
            cases=_probe_cases,
            run=_run_probe,
            compare=_compare_probe,
            oracle=_oracle_probe,
            hint="minimise mean cross-entropy + l2 * ||w||^2 (bias unpenalised) with L-BFGS from zero.",
            wrong={
                "the L2 penalty is missing": _probe_without_penalty,
                "the bias is penalised too": _probe_penalising_bias,
                "the probe has no bias": _probe_without_bias,
                "the cross-entropy is summed, not averaged, so the penalty is n times too weak": _probe_summed_loss,
            },
        ),
        Exercise(
            reference=ref.diff_of_means,
            cases=_means_cases,
            hint="direction = mean of True minus mean of False; threshold = the midpoint of the two means, projected.",
            wrong={
                "the direction points from True to False": _means_reversed,
                "the direction is normalised (the docstring asks for the raw difference)": _means_normalised,
                "the threshold is 0, not the midpoint of the two class means": _means_threshold_zero,
                "the threshold is the projection of the mean of all examples, which the larger class pulls towards itself": _means_threshold_at_overall_mean,
            },
        ),
        Exercise(
            reference=ref.best_latent,
            cases=_latent_cases,
            run=_run_latent,
            compare=_compare_latent,
            oracle=_oracle_latent,
            hint="for every latent, try both signs and every cut between sorted values; keep the best balanced accuracy.",
            wrong={
                "only the positive sign is tried: a latent that fires on False examples is missed": _latent_positive_only,
                "the latent is chosen by its mean difference, not by the accuracy of its best rule": _latent_by_mean_difference,
                "rules are scored by plain accuracy, which the larger class dominates": _latent_plain_accuracy,
            },
        ),
        Exercise(
            reference=ref.sparse_latent_probe,
            cases=_sparse_probe_cases,
            run=_run_sparse_probe,
            compare=_compare_sparse_probe,
            oracle=_oracle_sparse_probe,
            hint="rank latents by |mean on True - mean on False|, keep the top k in that order, fit the probe on them.",
            wrong={
                "latents are ranked by the signed difference, so those that fire on False are missed": _sparse_probe_signed,
                "latents are ranked by how active they are, not by how they differ between the classes": _sparse_probe_most_active,
                "the probe on the selected latents ignores l2": _sparse_probe_unpenalised,
            },
        ),
        Exercise(
            reference=ref.head_to_head,
            cases=_h2h_cases,
            oracle=_oracle_h2h,
            atol=0.02,
            rtol=0.0,
            hint="for each sample: the four detectors fit on those examples alone, each scored on the whole test set.",
            wrong={
                "the detectors are fit on the whole training set, not on the n_per_class budget": _h2h_whole_training_set,
                "the detectors are scored on the training set, not on the test set": _h2h_scored_on_training,
                "every fit uses the first sample": _h2h_one_sample,
                "the best latent's scores and threshold ignore its sign": _h2h_latent_without_sign,
                "the diff-of-means projection is thresholded at 0, not at its midpoint": _h2h_means_threshold_zero,
            },
        ),
        Exercise(
            reference=ref.steered_verdicts,
            cases=_steer_cases,
            run=_run_steer,
            oracle=_oracle_steer,
            hint="normalise the direction, add scale times it at position -1 of blocks.{layer}.hook_resid_post, compare the two verdict logits.",
            wrong={
                "the direction is not normalised, so scale multiplies its own norm": _steer_unnormalised,
                "the push is added at every position, not only the last": _steer_every_position,
                "the prompts are padded on the right, so short prompts are pushed (and read) at a padding token": _steer_right_padded,
                "the push is added before block `layer` (hook_resid_pre), not after it": _steer_before_block,
            },
        ),
        Finding(
            name="best_latent_concept",
            truth=_best_latent_concept,
            grade=exact("the concept that latent is most selective for (highest F1)"),
            hint="encode the test split's tokens, label them with concept_labels, and rank concepts by the F1 of 'the latent fires'.",
            wrong={
                "the sign of the latent's rule read backwards": "false_claim",
                "the word the model says next, not what the latent fires on": "truth_word",
                "a concept of the statement, not of the verdict": "country",
            },
        ),
    ],
)
