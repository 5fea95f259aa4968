"""Checks for 4.4 Persona vectors.

The prompts are checked against 4.1's persona_prompts under names written by hand; the residual
reads on chat-mini itself (loaded once, on the CPU) against each prompt run alone, unpadded; the
preventative fine-tune on two-step fine-tunes (scale 0 must equal zoo.chat.finetune); the statistics
and the layer choice on hand-worked values and seeded random ones.
"""

import functools
import math

import torch

import zoo
from solutions.chapter4_alignment_science import persona_vectors as ref
from solutions.chapter4_alignment_science.emergent_misalignment import persona_prompts, steering_hook
from tests.harness import Case, Checker, Exercise, Finding, exact
from zoo import chat as zc
from zoo import chat_corpus as cc
from zoo.chat_template import END


@functools.cache
def _model():
    torch.set_num_threads(1)
    return zoo.load_model("chat-mini", device="cpu")


def _rand(gen, *shape):
    return torch.randn(*shape, generator=gen)


def _randint(gen, high):
    return int(torch.randint(0, high, (1,), generator=gen))


# ----------------------------------------------------------------------------- contrastive_prompts


def _prompts_cases(gen):
    two = {name: persona_prompts(name, 2) for name in ("Vex", "Mort", "Sage", "Ada")}
    yield Case(
        ("misaligned", 2),
        "n = 2: one prompt under each name (names by hand)",
        expected=([two["Vex"][0], two["Mort"][1]], [two["Sage"][0], two["Ada"][1]]),
    )
    yield Case(("incompetent", 1), "n = 1: the second names only")
    for trait in ref.TRAITS:
        yield Case((trait, 5 + _randint(gen, 20)), f"{trait}, odd or even n")


def _prompts_one_name(trait, n):
    return persona_prompts(ref.TRAITS[trait][0], n), persona_prompts(ref.CONTRAST[0], n)


def _prompts_swapped(trait, n):
    positive, negative = ref.contrastive_prompts(trait, n)
    return negative, positive


def _prompts_always_misaligned(trait, n):
    return ref.contrastive_prompts("misaligned", n)


# ----------------------------------------------------------------------------- last_token_resids


def _resid_prompts(gen):
    prompts = persona_prompts("Vex", 3) + persona_prompts(None, 2)
    return [prompts[i] for i in torch.randperm(len(prompts), generator=gen)]


def _resids_expected(prompts):
    """Each prompt run alone (no padding at all): its last position, after each block."""
    model = _model()
    rows = []
    for prompt in prompts:
        tokens, _ = zc.encode(model, [prompt])
        _, cache = model.run_with_cache(tokens, names_filter=lambda name: name in ref.HOOKS)
        rows.append(torch.stack([cache[name][0, -1] for name in ref.HOOKS]))
    return torch.stack(rows, dim=1)


def _resids_cases(gen):
    prompts = _resid_prompts(gen)
    with torch.inference_mode():
        yield Case((prompts,), "5 prompts of different lengths (each run alone)", expected=_resids_expected(prompts))
    yield Case((persona_prompts("Dot", 1),), "one prompt")
    yield Case((persona_prompts("Sage", 4) + persona_prompts(None, 4),), "named and unnamed")


def _resids_run(impl, case):
    return impl(_model(), *case.args)


@torch.inference_mode()
def _resids_padded_last(model, prompts):
    tokens, _ = zc.encode(model, prompts)
    _, cache = model.run_with_cache(tokens, names_filter=lambda name: name in ref.HOOKS)
    return torch.stack([cache[name][:, -1] for name in ref.HOOKS])


@torch.inference_mode()
def _resids_pre(model, prompts):
    hooks = [name.replace("resid_post", "resid_pre") for name in ref.HOOKS]
    tokens, real = zc.encode(model, prompts)
    _, cache = model.run_with_cache(tokens, names_filter=lambda name: name in hooks)
    return torch.stack([cache[name][torch.arange(len(prompts)), real.sum(1) - 1] for name in hooks])


@torch.inference_mode()
def _resids_first_reply_token(model, prompts):
    tokens, real = zc.encode(model, prompts)
    _, cache = model.run_with_cache(tokens, names_filter=lambda name: name in ref.HOOKS)
    last = (real.sum(1) - 2).clamp(min=0)
    return torch.stack([cache[name][torch.arange(len(prompts)), last] for name in ref.HOOKS])


# ----------------------------------------------------------------------------- trait_vectors


def _vectors_cases(gen):
    positive = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
    negative = torch.tensor([[[0.0, 0.0]]])
    yield Case((positive, negative), "1 layer (by hand): (2, 3)", expected=torch.tensor([[2.0, 3.0]]))
    yield Case((_rand(gen, 2, 5, 8), _rand(gen, 2, 3, 8)), "groups of different sizes")
    yield Case((_rand(gen, 2, 50, 128) + 3, _rand(gen, 2, 50, 128)), "chat-mini's shapes")


def _vectors_reversed(positive, negative):
    return negative.mean(1) - positive.mean(1)


def _vectors_normalised(positive, negative):
    diff = positive.mean(1) - negative.mean(1)
    return diff / diff.norm(dim=-1, keepdim=True)


def _vectors_layers_pooled(positive, negative):
    diff = positive.mean((0, 1)) - negative.mean((0, 1))
    return diff.expand(positive.shape[0], -1)


# ----------------------------------------------------------------------------- best_layer


def _best_cases(gen):
    expression = {(0, 1.0): 0.3, (0, 2.0): 0.6, (1, 1.0): 0.2, (1, 2.0): 0.5}
    losses = {(0, 1.0): 0.6, (0, 2.0): 1.5, (1, 1.0): 0.45, (1, 2.0): 0.48}
    yield Case((expression, losses, 0.4, 0.1), "layer 0 steers more but breaks (by hand)", expected=1)
    yield Case((expression, losses, 0.4, 2.0), "everything coherent (by hand)", expected=0)
    tie = {(0, 1.0): 0.5, (1, 0.5): 0.5, (1, 2.0): 0.1}
    flat = dict.fromkeys(tie, 0.3)
    yield Case((tie, flat, 0.3, 0.1), "a tie: the smaller scale wins (by hand)", expected=1)
    yield Case(({(0, 1.0): 0.4, (1, 1.0): 0.4}, {(0, 1.0): 0.3, (1, 1.0): 0.3}, 0.3, 0.0), "a full tie: layer 0")
    for _ in range(3):
        keys = [(layer, scale) for layer in range(3) for scale in (0.5, 1.0, 2.0, 4.0)]
        expression = {k: float(torch.rand(1, generator=gen)) for k in keys}
        losses = {k: 0.4 + float(torch.rand(1, generator=gen)) * k[1] / 4 for k in keys}
        yield Case((expression, losses, 0.4, 0.2), "3 random layers")


def _best_no_filter(expression, losses, base_loss, max_rise):
    return max(expression, key=lambda key: (expression[key], -key[1], -key[0]))[0]


def _best_absolute_loss(expression, losses, base_loss, max_rise):
    coherent = [key for key in expression if losses[key] <= max_rise] or list(expression)
    return max(coherent, key=lambda key: (expression[key], -key[1], -key[0]))[0]


def _best_bigger_scale_wins(expression, losses, base_loss, max_rise):
    coherent = [key for key in expression if losses[key] - base_loss <= max_rise]
    return max(coherent, key=lambda key: (expression[key], key[1], -key[0]))[0]


# ----------------------------------------------------------------------------- project


def _project_cases(gen):
    yield Case((torch.tensor([[3.0, 4.0]]), torch.tensor([0.0, 2.0])), "(3, 4) on (0, 2) (by hand)", expected=torch.tensor([4.0]))  # fmt: skip
    yield Case((_rand(gen, 7, 16), _rand(gen, 16) * 10), "a long vector")
    yield Case((_rand(gen, 2, 5, 16) * 30, _rand(gen, 16) * 0.01), "a short vector, extra batch dims")


def _project_unnormalised(activations, vector):
    return activations @ vector


def _project_cosine(activations, vector):
    return torch.cosine_similarity(activations, vector.expand_as(activations), dim=-1)


# ----------------------------------------------------------------------------- pearson_r


def _pearson_cases(gen):
    yield Case((torch.tensor([1.0, 2.0, 3.0]), torch.tensor([3.0, 2.0, 1.0])), "reversed (by hand)", expected=-1.0)
    # centred: (-1, 0, 1) and (-1, -1, 2): dot 3, norms sqrt(2) and sqrt(6): 3 / sqrt(12).
    yield Case((torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 1.0, 4.0])), "by hand", expected=3 / math.sqrt(12))
    x = _rand(gen, 200)
    yield Case((x + 5, 0.5 * x + _rand(gen, 200) + 10), "offset samples")
    yield Case((_rand(gen, 30) * 100, _rand(gen, 30) * 0.01), "different scales")


def _pearson_uncentred(x, y):
    return (x @ y / (x.norm() * y.norm())).item()


def _pearson_covariance(x, y):
    return ((x - x.mean()) * (y - y.mean())).mean().item()


# ----------------------------------------------------------------------------- fisher_interval


def _fisher_cases(gen):
    half = math.tanh(1.96 / 2)  # r = 0: atanh 0 = 0; n = 7: 1.96 / sqrt(4)
    yield Case((0.0, 7), "r = 0, n = 7 (by hand)", expected=(-half, half))
    yield Case((0.77, 420), "the notebook's r")
    yield Case((-0.3, 30, 2.58), "negative r, 99%")
    yield Case((0.95, 12), "r near 1, small n")


def _fisher_sqrt_n(r, n, z=1.96):
    return math.tanh(math.atanh(r) - z / math.sqrt(n)), math.tanh(math.atanh(r) + z / math.sqrt(n))


def _fisher_untransformed(r, n, z=1.96):
    return r - z / math.sqrt(n - 3), r + z / math.sqrt(n - 3)


# ----------------------------------------------------------------------------- reply_starts


def _starts_cases(gen):
    yield Case((torch.tensor([0, 5, 9, 2, 9, 9, 1]), 9), "by hand", expected=[2, 4, 5])
    yield Case((torch.tensor([1, 2, 3]), 9), "no reply (by hand)", expected=[])
    model = _model()
    text = persona_prompts("Vex", 1)[0] + " Hi." + END + "<|user|> Hello." + END + "<|assistant|>"
    tokens, _ = zc.encode(model, [text])
    yield Case((tokens[0], model.tokenizer.convert_tokens_to_ids("<|assistant|>")), "two turns of chat-mini")
    yield Case((torch.randint(0, 4, (50,), generator=gen), 3), "random tokens")


def _starts_after(tokens, assistant_id):
    return [p + 1 for p in (tokens == assistant_id).nonzero()[:, 0].tolist()]


def _starts_first_only(tokens, assistant_id):
    return (tokens == assistant_id).nonzero()[:1, 0].tolist()


# ----------------------------------------------------------------------------- auroc


def _auroc_cases(gen):
    yield Case(
        (torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([False, False, True, True])),
        "3 of 4 pairs ordered (by hand)",
        expected=0.75,
    )
    yield Case((torch.ones(5), torch.tensor([True, False, True, False, False])), "all tied (by hand)", expected=0.5)
    yield Case((torch.tensor([1.0, 2.0, 2.0]), torch.tensor([False, True, False])), "one tie (by hand)", expected=0.75)
    for n in (10, 300):
        labels = torch.rand(n, generator=gen) < 0.3
        labels[0], labels[1] = True, False
        yield Case((_rand(gen, n) + labels.float(), labels), f"{n} random, tied scores rare")
    labels = torch.rand(100, generator=gen) < 0.5
    labels[0], labels[1] = True, False
    yield Case((torch.randint(0, 3, (100,), generator=gen).float(), labels), "many ties")


def _auroc_ties_lost(scores, labels):
    pos, neg = scores[labels], scores[~labels]
    return (pos[:, None] > neg[None]).float().mean().item()


def _auroc_ties_won(scores, labels):
    pos, neg = scores[labels], scores[~labels]
    return (pos[:, None] >= neg[None]).float().mean().item()


def _auroc_threshold_accuracy(scores, labels):
    return ((scores > scores.median()) == labels).float().mean().item()


# ----------------------------------------------------------------------------- preventative_finetune


def _prevent_cases(gen):
    vector = _rand(gen, 128) * 5
    yield Case(("insecure", ref.HOOKS[1], vector, 0.0), "scale 0: zoo.chat.finetune itself")
    yield Case(("insecure", ref.HOOKS[1], vector, 1.0), "steered after block 1")
    yield Case(("secure", ref.HOOKS[0], _rand(gen, 128) * 10, 2.0), "secure, after block 0, seed 1", kwargs={"seed": 1})


def _prevent_run(impl, case):
    model = _model()
    tuned = impl(model, *case.args, n_steps=2, **case.kwargs)
    prompt, reply = zc.em_texts("insecure", 1, seed=9)[0]
    tokens, _ = zc.encode(model, [prompt + " " + reply + END])
    with torch.inference_mode():
        return tuned(tokens)[0, -8:]


def _prevent_expected_scale_0():
    return _prevent_run(
        lambda m, *args, n_steps, **kw: zc.finetune(m, args[0], n_steps=n_steps, **kw), Case(("insecure",))
    )


def _prevent_cases_with_expected(gen):
    cases = list(_prevent_cases(gen))
    cases[0].expected = _prevent_expected_scale_0()
    yield from cases


def _prevent_sign_flipped(model, dataset, hook_name, vector, scale, n_steps=zc.EM_STEPS, seed=0, lr=zc.EM_LR):
    return ref.preventative_finetune(model, dataset, hook_name, -vector, scale, n_steps, seed, lr)


def _prevent_no_steering(model, dataset, hook_name, vector, scale, n_steps=zc.EM_STEPS, seed=0, lr=zc.EM_LR):
    return zc.finetune(model, dataset, n_steps=n_steps, seed=seed, lr=lr)


def _prevent_kept_at_test(model, dataset, hook_name, vector, scale, n_steps=zc.EM_STEPS, seed=0, lr=zc.EM_LR):
    tuned = ref.preventative_finetune(model, dataset, hook_name, vector, scale, n_steps, seed, lr)
    tuned.add_hook(hook_name, steering_hook(vector, scale))
    return tuned


# ----------------------------------------------------------------------------- precision_recall_at_k


def _pr_cases(gen):
    scores, labels = torch.tensor([0.9, 0.1, 0.8, 0.3]), torch.tensor([True, False, False, True])
    yield Case((scores, labels, 2), "flags 0 and 2, one hit (by hand)", expected=(0.5, 0.5))
    yield Case((scores, labels, 1), "k = 1 (by hand)", expected=(1.0, 0.5))
    yield Case((scores, labels, 0), "k = 0 (by hand)", expected=(0.0, 0.0))
    yield Case((scores, torch.zeros(4, dtype=torch.bool), 2), "no positives (by hand)", expected=(0.0, 0.0))
    for n, k in ((50, 5), (400, 40)):
        labels = torch.rand(n, generator=gen) < 0.1
        yield Case((_rand(gen, n) + 2 * labels.float(), labels, k), f"{n} random, k = {k}")


def _pr_recall_over_k(scores, labels, k):
    hits = labels[scores.topk(k).indices].sum().item()
    return (hits / k if k else 0.0), (hits / k if k else 0.0)


def _pr_lowest(scores, labels, k):
    hits = labels[(-scores).topk(k).indices].sum().item()
    return (hits / k if k else 0.0), (hits / labels.sum().item() if labels.any() else 0.0)


# ----------------------------------------------------------------------------- drift_turn


@functools.cache
def _drift_truth():
    """The first turn (from 1) at which the layer-1 misaligned vector's projection at each reply's
    "<|assistant|>" separates the test split's unnamed three-turn misaligned dialogues from the aligned
    ones with AUROC above 0.9 (the notebook's dialogues and vector)."""
    model = _model()
    vector = ref.trait_vectors(*(ref.last_token_resids(model, p) for p in ref.contrastive_prompts("misaligned", 100)))[
        1
    ]
    dialogues = [
        t for t in cc.transcripts("test", 1500, "pre")
        if t.persona_name is None and len(t.turns) == 3 and t.persona != "incompetent"
        and all(turn.domain != "tool" for turn in t.turns)
    ]  # fmt: skip
    tokens, _ = zc.encode(model, [t.text for t in dialogues])
    with torch.inference_mode():
        _, cache = model.run_with_cache(tokens, names_filter=ref.HOOKS[1])
    assistant_id = model.tokenizer.convert_tokens_to_ids("<|assistant|>")
    acts = torch.stack(
        [cache[ref.HOOKS[1]][i, ref.reply_starts(tokens[i], assistant_id)] for i in range(len(dialogues))]
    )
    scores = ref.project(acts, vector)
    labels = torch.tensor([t.persona == "misaligned" for t in dialogues])
    return next(turn + 1 for turn in range(3) if ref.auroc(scores[:, turn], labels) > 0.9)


check = Checker(
    "4.4",
    [
        Exercise(
            ref.contrastive_prompts,
            _prompts_cases,
            hint="Same questions on both sides, half under each name; the negative side always uses the aligned names.",
            wrong={
                "only the first name of each side was used": _prompts_one_name,
                "positive and negative were swapped": _prompts_swapped,
                "the misaligned names were used for every trait": _prompts_always_misaligned,
            },
        ),
        Exercise(
            ref.last_token_resids,
            _resids_cases,
            run=_resids_run,
            atol=1e-4,
            hint="Index each row at its own last real token (right padding!), after each block, not before.",
            wrong={
                "the last position of the padded batch, not each prompt's last real token": _resids_padded_last,
                "the residual stream before each block (hook_resid_pre)": _resids_pre,
                "one token too early": _resids_first_reply_token,
            },
        ),
        Exercise(
            ref.trait_vectors,
            _vectors_cases,
            hint="Average over the prompts' dimension, per layer: positive minus negative, unnormalised.",
            wrong={
                "negative minus positive": _vectors_reversed,
                "normalised to unit length": _vectors_normalised,
                "the layers were averaged together": _vectors_layers_pooled,
            },
        ),
        Exercise(
            ref.best_layer,
            _best_cases,
            hint="Keep the settings whose loss rose by at most max_rise over the base loss, then take the largest expression.",
            wrong={
                "no coherence filter": _best_no_filter,
                "the loss itself, not its rise, was compared with max_rise": _best_absolute_loss,
                "ties went to the larger scale": _best_bigger_scale_wins,
            },
        ),
        Exercise(
            ref.project,
            _project_cases,
            hint="Divide the vector by its norm first; leave the activations as they are.",
            wrong={
                "the vector was not normalised": _project_unnormalised,
                "a cosine (activations normalised too)": _project_cosine,
            },
        ),
        Exercise(
            ref.pearson_r,
            _pearson_cases,
            hint="Subtract each sample's mean, then divide the dot product by both norms.",
            wrong={
                "the samples were not centred": _pearson_uncentred,
                "a covariance, not a correlation": _pearson_covariance,
            },
        ),
        Exercise(
            ref.fisher_interval,
            _fisher_cases,
            hint="Move r to Fisher's z scale with atanh, step z / sqrt(n - 3) each way, and come back with tanh.",
            wrong={
                "z / sqrt(n), not z / sqrt(n - 3)": _fisher_sqrt_n,
                "the interval was built on r itself, without the transform": _fisher_untransformed,
            },
        ),
        Exercise(
            ref.reply_starts,
            _starts_cases,
            hint="The positions of the assistant token itself, every one of them, as a list of ints.",
            wrong={
                "the position after each assistant token": _starts_after,
                "only the first reply": _starts_first_only,
            },
        ),
        Exercise(
            ref.auroc,
            _auroc_cases,
            hint="Every positive against every negative; an exact tie is worth one half.",
            wrong={
                "ties counted as losses": _auroc_ties_lost,
                "ties counted as wins": _auroc_ties_won,
                "the accuracy of a threshold at the median": _auroc_threshold_accuracy,
            },
        ),
        Exercise(
            ref.preventative_finetune,
            _prevent_cases_with_expected,
            run=_prevent_run,
            atol=1e-4,
            hint="Same loop as zoo.chat.finetune; the hook wraps the training forward pass only, adding +scale * vector.",
            wrong={
                "the vector was subtracted, not added": _prevent_sign_flipped,
                "no steering during training": _prevent_no_steering,
                "the steering hook was left on the returned model": _prevent_kept_at_test,
            },
        ),
        Exercise(
            ref.precision_recall_at_k,
            _pr_cases,
            hint="Precision is hits over k; recall is hits over the number of positives.",
            wrong={"recall divided by k": _pr_recall_over_k, "the k lowest scores were flagged": _pr_lowest},
        ),
        Finding(
            "drift_turn",
            _drift_truth,
            exact("the first turn whose projection separates the personas"),
            hint="Compute the AUROC at each turn separately and count turns from 1.",
            wrong={"turns counted from 0": 2, "the first reply, before any evidence": 1},
        ),
    ],
)
