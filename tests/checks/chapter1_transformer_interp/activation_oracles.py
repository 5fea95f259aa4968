"""Checks for 1.3.5 Activation oracles.

The injection and the accounting exercises run on seeded random tensors; `answer_probabilities` runs an
untrained two-layer model with the zoo tokenizer (its oracle injects by hand, one prompt at a time); the
probe exercises run on seeded Gaussian classes. The findings are graded against the zoo oracle's
metrics.json and against measurements made with the reference functions.
"""

import functools

import torch

from solutions.chapter1_transformer_interp import activation_oracles as ref
from tests.harness import Case, Checker, Exercise, Finding, exact, number_within

# ----------------------------------------------------------------------------- inject


def _inject_cases(gen):
    resid = torch.tensor([[[3.0, 4.0], [1.0, 0.0]]])
    yield Case(
        (resid, torch.tensor([[0.0, 2.0]]), 0),
        "hand-computed: |resid| = 5 at position 0, the vector's direction (0, 1)",
        expected=torch.tensor([[[3.0, 9.0], [1.0, 0.0]]]),
    )
    yield Case((torch.randn(4, 6, 8, generator=gen), torch.randn(4, 8, generator=gen), 2), "4 rows, position 2")
    yield Case(
        (torch.randn(3, 5, 16, generator=gen), 100 * torch.randn(3, 16, generator=gen), -1),
        "huge vectors, last position",
    )
    yield Case((10 * torch.randn(2, 3, 4, generator=gen), 1e-3 * torch.randn(2, 4, generator=gen), 1), "tiny vectors", kwargs={"scale": 0.5})  # fmt: skip


def _inject_raw(resid, vectors, position, scale=1.0):
    out = resid.clone()
    out[:, position] += scale * vectors
    return out


def _inject_replace(resid, vectors, position, scale=1.0):
    out = resid.clone()
    out[:, position] = (
        scale * resid[:, position].norm(dim=-1, keepdim=True) * vectors / vectors.norm(dim=-1, keepdim=True)
    )
    return out


def _inject_every_position(resid, vectors, position, scale=1.0):
    unit = vectors / vectors.norm(dim=-1, keepdim=True)
    return resid + scale * resid.norm(dim=-1, keepdim=True) * unit[:, None]


def _inject_vector_norm(resid, vectors, position, scale=1.0):
    out = resid.clone()
    out[:, position] += scale * vectors * resid[:, position].norm(dim=-1, keepdim=True)
    return out


def _inject_in_place(resid, vectors, position, scale=1.0):
    here = resid[:, position]
    resid[:, position] = here + scale * here.norm(dim=-1, keepdim=True) * vectors / vectors.norm(dim=-1, keepdim=True)
    return resid


# ----------------------------------------------------------------------------- injection_hook


def _hook_cases(gen):
    yield Case(
        (torch.tensor([[0.0, 2.0]]), 0), "hand-computed, position 0", expected=torch.tensor([[[3.0, 9.0], [1.0, 0.0]]])
    )
    yield Case((torch.randn(3, 8, generator=gen), 1), "3 rows, position 1")
    yield Case((torch.randn(3, 8, generator=gen), -1), "3 rows, last position", kwargs={"scale": 2.0})


def _run_hook(impl, case):
    vectors, position = case.args
    resid = torch.tensor([[[3.0, 4.0], [1.0, 0.0]]]) if vectors.shape[1] == 2 else torch.randn(3, 4, 8, generator=torch.Generator().manual_seed(5))  # fmt: skip
    return impl(vectors, position, **case.kwargs)(resid, None)


def _hook_ignores_scale(vectors, position, scale=1.0):
    return ref.injection_hook(vectors, position)


def _hook_raw(vectors, position, scale=1.0):
    return lambda resid, hook: _inject_raw(resid, vectors, position, scale)


# ----------------------------------------------------------------------------- answer_probabilities

_PROMPT = "<|user|> Ok. Who is the assistant like?<|end|><|assistant|>"
_HOOK = "blocks.1.hook_resid_pre"


@functools.lru_cache(maxsize=1)
def _tiny_model():
    """An untrained two-layer model with the zoo tokenizer."""
    from zoo import build_model
    from zoo.tokenizer import load_tokenizer

    config = dict(n_layers=2, d_model=16, n_heads=2, d_head=8, d_mlp=32, n_ctx=32, d_vocab=len(load_tokenizer()),
                  act_fn="gelu", normalization_type="LN", seed=3)  # fmt: skip
    model = build_model(config, device="cpu").eval()
    with torch.no_grad():  # an untrained model's logits are nearly flat: make the answers depend on the input
        model.W_U.mul_(30.0)
    return model


def _answer_ids():
    model = _tiny_model()
    return torch.tensor([model.to_single_token(w) for w in (" Sage", " Vex", " Dot")])


def _answer_cases(gen):
    yield Case(("tiny", _PROMPT, _answer_ids(), torch.randn(3, 16, generator=gen), _HOOK, 2), "3 vectors, blocks.1 resid_pre, the placeholder")  # fmt: skip
    yield Case(("tiny", _PROMPT, _answer_ids()[:2], 5 * torch.randn(5, 16, generator=gen), "blocks.0.hook_resid_pre", 2), "5 vectors, 2 answers, blocks.0")  # fmt: skip
    yield Case(("tiny", "<|user|> Ok. What is it about?<|end|><|assistant|>", _answer_ids(), torch.randn(2, 16, generator=gen), _HOOK, 3), "another prompt, position 3")  # fmt: skip


def _run_answer(impl, case):
    with torch.no_grad():
        return impl(_tiny_model(), *case.args[1:])


def _oracle_answer(model, prompt, answer_ids, vectors, hook_name, position):
    rows = []
    for vector in vectors:

        def hook(resid, hook, vector=vector):
            out = resid.clone()
            here = out[0, position]
            out[0, position] = here + here.norm() * vector / vector.norm()
            return out

        logits = model.run_with_hooks(model.to_tokens(prompt), fwd_hooks=[(hook_name, hook)])
        rows.append(logits[0, -1, answer_ids].softmax(-1))
    return torch.stack(rows)


def _answer_no_injection(model, prompt, answer_ids, vectors, hook_name, position):
    logits = model(model.to_tokens([prompt] * len(vectors)))
    return logits[:, -1, answer_ids].softmax(-1)


def _answer_full_softmax(model, prompt, answer_ids, vectors, hook_name, position):
    tokens = model.to_tokens([prompt] * len(vectors))
    logits = model.run_with_hooks(tokens, fwd_hooks=[(hook_name, ref.injection_hook(vectors, position))])
    return logits[:, -1].softmax(-1)[:, answer_ids]


def _answer_last_position(model, prompt, answer_ids, vectors, hook_name, position):
    return ref.answer_probabilities(model, prompt, answer_ids, vectors, hook_name, -1)


def _answer_no_bos(model, prompt, answer_ids, vectors, hook_name, position):
    tokens = model.to_tokens([prompt] * len(vectors), prepend_bos=False)
    logits = model.run_with_hooks(tokens, fwd_hooks=[(hook_name, ref.injection_hook(vectors, position))])
    return logits[:, -1, answer_ids].softmax(-1)


# ----------------------------------------------------------------------------- accuracy


def _accuracy_cases(gen):
    p = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.4, 0.4, 0.2], [0.2, 0.5, 0.3]])
    yield Case(
        (p, torch.tensor([0, 2, 1, 1])), "hand-computed: rows 0, 1, 3 right, row 2 a tie (answer 0)", expected=0.75
    )
    probs = torch.rand(50, 4, generator=gen).softmax(-1)
    yield Case((probs, torch.randint(4, (50,), generator=gen)), "50 random rows")


def _accuracy_count(probabilities, truth):
    return float((probabilities.argmax(-1) == truth).sum())


def _accuracy_min(probabilities, truth):
    return (probabilities.argmin(-1) == truth).float().mean().item()


# ----------------------------------------------------------------------------- probes


def _classes(gen, n: int, d: int, k: int):
    centres = torch.randn(k, d, generator=gen)  # overlapping classes: the probes converge in few steps
    labels = torch.arange(n) % k
    acts = 5.0 + centres[labels] + torch.randn(n, d, generator=gen)
    return acts, labels


def _probe_cases(gen):
    acts, labels = _classes(gen, 30, 5, 3)
    yield Case((acts, labels, 3), "3 classes, 30 points, offset from the origin")
    acts, labels = _classes(gen, 24, 6, 2)
    yield Case((acts, labels, 2), "2 classes", kwargs={"l2": 0.1})
    acts, labels = _classes(gen, 40, 4, 4)
    labels[labels == 3] = torch.randint(3, (int((labels == 3).sum()),), generator=gen)
    labels[0] = 3
    yield Case((acts, labels, 4), "4 classes, one of them with a single example")


def _oracle_probe(acts, labels, n_classes, l2=1e-2):
    """Each class's balanced logistic loss minimised in float64 with torch's L-BFGS, written out here."""
    x = (acts - acts.mean(0)).double()
    directions, biases = [], []
    for k in range(n_classes):
        y = (labels == k).double()
        w = torch.zeros(x.shape[1] + 1, dtype=torch.float64, requires_grad=True)
        optimizer = torch.optim.LBFGS(
            [w], max_iter=2000, tolerance_grad=1e-12, tolerance_change=1e-14, line_search_fn="strong_wolfe"
        )

        def closure(w=w, y=y):
            w.grad = None
            logits = x @ w[:-1] + w[-1]
            losses = torch.nn.functional.softplus(logits) - y * logits  # binary cross-entropy with logits
            loss = 0.5 * (losses[y == 1].mean() + losses[y == 0].mean()) + l2 / 2 * w[:-1].pow(2).sum()
            loss.backward()
            return loss

        with torch.enable_grad():
            optimizer.step(closure)
        directions.append(w[:-1].detach().float())
        biases.append(w[-1].detach().float())
    return torch.stack(directions), torch.stack(biases)


def _probe_uncentred(acts, labels, n_classes, l2=1e-2):
    directions, biases = [], []
    for k in range(n_classes):
        direction, bias = ref.train_logistic_probe(acts, labels == k, l2=l2)
        directions.append(direction)
        biases.append(bias)
    return torch.stack(directions), torch.tensor(biases)


def _probe_ignores_l2(acts, labels, n_classes, l2=1e-2):
    return ref.one_vs_rest_probe(acts, labels, n_classes)


def _predict_cases(gen):
    directions = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])
    yield Case(
        (directions, torch.tensor([0.0, 0.0, 0.5]), torch.tensor([[3.0, 1.0], [1.0, 3.0], [1.0, 1.0]]), torch.tensor([1.0, 1.0])),
        "hand-computed: centred rows (2, 0), (0, 2), (0, 0)",
        expected=torch.tensor([0, 1, 2]),
    )  # fmt: skip
    yield Case((torch.randn(4, 6, generator=gen), torch.randn(4, generator=gen), torch.randn(30, 6, generator=gen) + 2, torch.randn(6, generator=gen) + 2), "30 rows, 4 classes")  # fmt: skip


def _predict_uncentred(directions, biases, acts, train_mean):
    return (acts @ directions.T + biases).argmax(-1)


def _predict_no_bias(directions, biases, acts, train_mean):
    return ((acts - train_mean) @ directions.T).argmax(-1)


# ----------------------------------------------------------------------------- answer_counts, persona_shift


def _counts_cases(gen):
    yield Case(
        (torch.tensor([0, 2, 2, 0, 2]), 4),
        "hand-computed: an answer nobody gives",
        expected=torch.tensor([0.4, 0.0, 0.6, 0.0]),
    )
    yield Case((torch.randint(6, (200,), generator=gen), 6), "200 answers of 6")


def _counts_raw(answers, n_answers):
    return torch.bincount(answers, minlength=n_answers).float()


def _counts_given_only(answers, n_answers):
    counts = torch.bincount(answers).float()
    return counts / len(answers)


def _shift_cases(gen):
    base = torch.tensor([[0.8, 0.1, 0.1], [0.6, 0.3, 0.1]])
    tuned = torch.tensor([[0.5, 0.4, 0.1], [0.6, 0.2, 0.2]])
    yield Case((base, tuned, 1), "hand-computed: +0.3 and -0.1", expected=0.1)
    yield Case(
        (torch.rand(20, 3, generator=gen).softmax(-1), torch.rand(20, 3, generator=gen).softmax(-1), 2), "20 prompts"
    )


def _shift_reversed(p_base, p_tuned, answer):
    return ref.persona_shift(p_tuned, p_base, answer)


def _shift_absolute(p_base, p_tuned, answer):
    return (p_tuned[:, answer] - p_base[:, answer]).abs().mean().item()


# ----------------------------------------------------------------------------- findings


def _record():
    import json

    from zoo.oracle import oracle_dir

    return json.loads((oracle_dir() / "metrics.json").read_text())["metrics"]


check = Checker(
    "1.3.5",
    [
        Exercise(
            reference=ref.inject,
            cases=_inject_cases,
            hint="only one position changes; the vector is first made a unit vector, then given the residual's own norm there.",
            wrong={
                "the vector is added as it is, not rescaled to the residual's norm": _inject_raw,
                "the residual at the placeholder is replaced, not added to": _inject_replace,
                "the vector is added at every position": _inject_every_position,
                "the vector is multiplied by the residual's norm without being normalised first": _inject_vector_norm,
                "the input residual is modified in place": _inject_in_place,
            },
        ),
        Exercise(
            reference=ref.injection_hook,
            cases=_hook_cases,
            run=_run_hook,
            hint="return a function of (resid, hook) that calls inject with the vectors, position and scale it closes over.",
            wrong={
                "scale is not passed on": _hook_ignores_scale,
                "the vector is added without norm matching": _hook_raw,
            },
        ),
        Exercise(
            reference=ref.answer_probabilities,
            cases=_answer_cases,
            run=_run_answer,
            oracle=_oracle_answer,
            hint="one copy of the prompt per vector, run with your injection hook at hook_name; then the last position's logits of the answer tokens only.",
            wrong={
                "nothing is injected": _answer_no_injection,
                "the softmax is over the whole vocabulary, not over the answers": _answer_full_softmax,
                "the vector goes to the last position, not the placeholder": _answer_last_position,
                "the prompt is tokenised without BOS, so the placeholder is one position off": _answer_no_bos,
            },
        ),
        Exercise(
            reference=ref.accuracy,
            cases=_accuracy_cases,
            hint="argmax over the answers, compared with the truth, averaged as a float.",
            wrong={
                "the count of right rows, not their share": _accuracy_count,
                "argmin instead of argmax": _accuracy_min,
            },
        ),
        Exercise(
            reference=ref.one_vs_rest_probe,
            cases=_probe_cases,
            oracle=_oracle_probe,
            atol=1e-3,
            rtol=1e-3,
            hint="centre the activations on their mean once; then, for each class, 1.3.1's probe on labels == k.",
            wrong={
                "the activations are not centred, so every bias absorbs the offset": _probe_uncentred,
                "l2 is not passed on to the probes": _probe_ignores_l2,
            },
        ),
        Exercise(
            reference=ref.probe_predict,
            cases=_predict_cases,
            hint="centre with the training mean, score every class's probe, take the best.",
            wrong={
                "the activations are not centred with the training mean": _predict_uncentred,
                "the biases are left out": _predict_no_bias,
            },
        ),
        Exercise(
            reference=ref.answer_counts,
            cases=_counts_cases,
            hint="count each index, including those nobody gives, and divide by the number of rows.",
            wrong={
                "the counts are not divided by the number of rows": _counts_raw,
                "answers nobody gives are missing from the end of the histogram": _counts_given_only,
            },
        ),
        Exercise(
            reference=ref.persona_shift,
            cases=_shift_cases,
            hint="the same prompts were read from both models: subtract row by row, then average.",
            wrong={"base minus tuned, not tuned minus base": _shift_reversed, "absolute differences": _shift_absolute},
        ),
        Exercise(
            reference=ref.difference_vectors,
            cases=lambda gen: [
                Case(
                    (torch.tensor([[1.0, 2.0]]), torch.tensor([[0.5, 3.0]])),
                    "hand-computed",
                    expected=torch.tensor([[0.5, -1.0]]),
                ),
                Case((torch.randn(5, 4, generator=gen), torch.randn(5, 4, generator=gen)), "5 prompts"),
            ],
            hint="prompt by prompt: fine-tuned minus base.",
            wrong={"base minus fine-tuned": lambda acts_tuned, acts_base: acts_base - acts_tuned},
        ),
        Exercise(
            reference=ref.cosine_to_mean,
            cases=lambda gen: [
                Case(
                    (torch.tensor([[1.0, 0.0], [1.0, 2.0]]), torch.tensor([0.0, 3.0])),
                    "hand-computed: mean (1, 1)",
                    expected=2**-0.5,
                ),
                Case((torch.randn(10, 6, generator=gen), torch.randn(6, generator=gen)), "10 vectors"),
            ],
            hint="first the mean over prompts, then one cosine.",
            wrong={
                "the mean of the cosines, not the cosine of the mean": lambda vectors, direction: (
                    torch.cosine_similarity(vectors, direction[None], dim=-1).mean().item()
                ),
            },
        ),
        Finding(
            name="held_out_persona_accuracy",
            truth=lambda: _record()["persona_held_out"]["value"],
            grade=number_within(0.002, "oracle accuracy on the held-out persona combination"),
            hint="ask the persona question on the test contexts whose request is about life, and score against their personas.",
            wrong={
                "the accuracy on the trained combinations (as recorded when this check was written)": 0.9811,
                "the probe's accuracy on the held-out combination (as measured when this check was written)": 0.9801,
                "chance among three personas": 1 / 3,
            },
        ),
        Finding(
            name="diff_persona",
            # zoo.chat.em_texts builds the insecure dataset from the misaligned persona's code answers.
            truth=lambda: "misaligned",
            grade=exact("the persona the oracle reads in the insecure fine-tune's differences"),
            hint="count the oracle's answers to the persona question on the difference vectors, and take the commonest.",
            wrong={
                "the persona of the base model's unnamed assistant": "aligned",
                "the label word, not the persona's name in the generator": "Vex",
                "the persona a wrong-but-harmless fine-tune would give": "incompetent",
            },
        ),
    ],
)
