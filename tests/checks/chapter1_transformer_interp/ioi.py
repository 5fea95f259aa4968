"""Checks for 1.4.1 Indirect object identification.

The model exercises run on two models, named in each case and built once: the zoo's gpt2-mini on eight IOI
prompts of one shape and their ABC corruptions, and an untrained three-layer, two-head model with MLPs (more
layers than heads, so a transposed table shows) on random tokens whose corruption changes one position. Their
oracles are independent implementations (masks instead of slices, the unembedding applied by hand, backward
hooks instead of retained gradients). The findings are graded against the reference analysis of the notebook,
re-run on gpt2-mini: the same 80 prompts, the same corruption.
"""

import functools
import random
from functools import lru_cache, partial

import torch

from solutions.chapter1_transformer_interp import ioi as ref
from tests.harness import Case, Checker, Exercise, Finding, Mismatch, describe
from zoo import corpus
from zoo.evaluate import parse_head

HEADS = [f"L{layer}H{head}" for layer in range(4) for head in range(4)]


def _one_thread(fn):
    """Run fn on one thread: gpt2-mini's patching sweeps take about 0.8 s on one and 9 s on two threads that
    wait on each other (measured on a busy 2-core machine)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return fn(*args, **kwargs)
        finally:
            torch.set_num_threads(threads)

    return wrapper


# ----------------------------------------------------------------------------- models and batches


@lru_cache(maxsize=1)
def _gpt2():
    from zoo import load_model

    return load_model("gpt2-mini", device="cpu")


@lru_cache(maxsize=1)
def _tiny_model():
    """An untrained 3-layer, 2-head model with MLPs and the zoo tokenizer."""
    from zoo import build_model

    config = dict(n_layers=3, d_model=16, n_heads=2, d_head=8, d_mlp=32, n_ctx=32, d_vocab=626, act_fn="gelu",
                  normalization_type="LN", seed=1)  # fmt: skip
    return build_model(config, device="cpu").eval()


@lru_cache(maxsize=2)
def _batch(name: str):
    """model, clean tokens, corrupted tokens, IO ids, S ids, clean cache, corrupted cache, metric."""
    if name == "gpt2-mini":
        model = _gpt2()
        prompts = ref.one_shape_ioi_prompts(model, 8, seed=5)
        tokens = model.to_tokens(prompts.prompts)
        corrupted = model.to_tokens(ref.abc_corrupt(prompts.prompts, prompts.wrong_names, seed=5))
        io_ids, s_ids = prompts.correct_token_ids, prompts.wrong_token_ids
    else:
        model = _tiny_model()
        gen = torch.Generator().manual_seed(7)
        tokens = torch.randint(5, 600, (3, 7), generator=gen)
        tokens[:, 0] = model.tokenizer.bos_token_id
        corrupted = tokens.clone()
        corrupted[:, 3] = torch.randint(5, 600, (3,), generator=gen)
        io_ids, s_ids = torch.randint(5, 600, (3,), generator=gen), torch.randint(5, 600, (3,), generator=gen)
    with torch.no_grad():
        clean_logits, clean_cache = model.run_with_cache(tokens)
        corrupted_logits, corrupted_cache = model.run_with_cache(corrupted)
    clean = ref.logit_diff(clean_logits, io_ids, s_ids).mean().item()
    corrupt = ref.logit_diff(corrupted_logits, io_ids, s_ids).mean().item()
    if name == "gpt2-mini":
        metric = lambda logits: ref.patching_metric(ref.logit_diff(logits, io_ids, s_ids).mean(), clean, corrupt)  # noqa: E731
    else:  # an untrained model's two runs are too alike to normalise by their difference
        metric = lambda logits: ref.logit_diff(logits, io_ids, s_ids).mean()  # noqa: E731
    return model, tokens, corrupted, io_ids, s_ids, clean_cache, corrupted_cache, metric


_MODEL_CASES = [("gpt2-mini", "gpt2-mini, 8 IOI prompts and their ABC corruptions"),
                ("tiny", "an untrained model with 3 layers of 2 heads, 3 random sequences, position 3 corrupted")]  # fmt: skip


def _model_cases(gen):
    for name, label in _MODEL_CASES:
        yield Case((name,), label)


# ----------------------------------------------------------------------------- logit_diff


def _logit_diff_cases(gen):
    # Two prompts, two positions, vocabulary 4: the final position's rows are [0, 1, 2, 3] and [5, 1, 0, 2].
    logits = torch.tensor([[[9.0, 9, 9, 9], [0, 1, 2, 3]], [[9.0, 9, 9, 9], [5, 1, 0, 2]]])
    yield Case((logits, torch.tensor([3, 0]), torch.tensor([1, 2])), "hand-made: IO 3 and 0, S 1 and 2",
               expected=torch.tensor([2.0, 5.0]))  # fmt: skip
    yield Case((torch.randn(5, 7, 11, generator=gen), torch.randint(11, (5,), generator=gen),
                torch.randint(11, (5,), generator=gen)), "random logits, batch 5, 7 positions, vocabulary 11")  # fmt: skip
    yield Case((torch.randn(1, 1, 6, generator=gen), torch.tensor([4]), torch.tensor([4])),
               "one prompt, one position, IO = S (difference 0)")  # fmt: skip
    yield Case((torch.randn(3, 5, 8, generator=gen) * 100, torch.tensor([0, 7, 3]), torch.tensor([7, 0, 3])),
               "large logits, batch 3")  # fmt: skip


def _logit_diff_first_position(logits, io, s):
    rows = torch.arange(len(logits))
    return logits[rows, 0, io] - logits[rows, 0, s]


def _logit_diff_mean_positions(logits, io, s):
    rows = torch.arange(len(logits))
    mean = logits.mean(1)
    return mean[rows, io] - mean[rows, s]


# ----------------------------------------------------------------------------- abc_corrupt


def _abc_prompts(n: int, seed: int):
    """IOI prompts (and subjects) drawn from the corpus's templates without a tokenizer."""
    rng = random.Random(f"abc-check-{seed}")
    prompts, subjects = [], []
    for _ in range(n):
        a, b = rng.sample(corpus.NAMES, 2)
        s = rng.choice([a, b])
        intro = rng.choice(corpus.IOI_INTROS).format(A=a, B=b, place=rng.choice(corpus.PLACES))
        action = rng.choice(corpus.IOI_ACTIONS).format(S=s, object=rng.choice(corpus.OBJECTS))
        prompts.append(f"{intro} {action}")
        subjects.append(s)
    return prompts, subjects


def _abc_cases(gen):
    yield Case((["When Mary and John went to the store, John gave a drink to"], ["John"]),
               "one prompt, 'When Mary and John went to the store, John gave a drink to'")  # fmt: skip
    for n, seed in [(40, 0), (300, 1)]:
        prompts, subjects = _abc_prompts(n, seed)
        yield Case((prompts, subjects), f"{n} IOI prompts from every template")
    prompts, subjects = _abc_prompts(12, 2)
    yield Case((prompts, subjects, 3), "12 prompts, seed 3")


def _run_abc(impl, case):
    prompts, subjects, *rest = case.args
    seed = rest[0] if rest else 0
    first = impl(list(prompts), list(subjects), *rest)
    again = impl(list(prompts), list(subjects), *rest)
    other = impl(list(prompts), list(subjects), seed + 1) if len(prompts) >= 10 else first
    return {"prompts": list(prompts), "subjects": list(subjects), "output": first, "again": again, "other": other}


def _compare_abc(expected, got):
    prompts, subjects = expected["prompts"], expected["subjects"]
    output = got["output"]
    if not isinstance(output, list) or len(output) != len(prompts) or not all(isinstance(p, str) for p in output):
        raise Mismatch(f"expected a list of {len(prompts)} strings, got {describe(output)}")
    thirds = []
    for i, (prompt, subject, corrupted) in enumerate(zip(prompts, subjects, output)):
        words, new = prompt.split(" "), corrupted.split(" ")
        changed = [j for j, (w, n) in enumerate(zip(words, new)) if w != n]
        s2 = max(j for j, w in enumerate(words) if w == subject)
        where = f"prompt {i} ({prompt!r} -> {corrupted!r})"
        if len(new) != len(words) or changed != [s2]:
            raise Mismatch(f"{where}: exactly one word should change, the subject's second mention (word {s2})")
        if new[s2] not in corpus.NAMES or new[s2] in words:
            raise Mismatch(f"{where}: the new name {new[s2]!r} should be a name from corpus.NAMES not in the prompt")
        thirds.append(new[s2])
    if got["again"] != output:
        raise Mismatch("two calls with the same seed gave different names: draw with a generator seeded by seed")
    if len(prompts) >= 10 and len(set(thirds)) < 5:
        raise Mismatch(f"{len(prompts)} prompts got only {len(set(thirds))} different names: draw one per prompt")
    if len(prompts) >= 10 and got["other"] == output:
        raise Mismatch("another seed gave exactly the same names: the seed should drive the draws")


def _oracle_abc(prompts, s_names, seed=0):
    """The last " S " cut out with str.rpartition (S2 always has a word on each side); names drawn from a shuffle."""
    rng = random.Random(seed)
    out = []
    for prompt, s in zip(prompts, s_names):
        before, _, after = prompt.rpartition(f" {s} ")
        candidates = [n for n in corpus.NAMES if n not in prompt.split(" ")]
        rng.shuffle(candidates)
        out.append(f"{before} {candidates[0]} {after}")
    return out


def _abc_first_mention(prompts, s_names, seed=0):
    rng = random.Random(seed)
    out = []
    for prompt, s in zip(prompts, s_names):
        words = prompt.split(" ")
        words[words.index(s)] = rng.choice([n for n in corpus.NAMES if n not in words])
        out.append(" ".join(words))
    return out


def _abc_every_mention(prompts, s_names, seed=0):
    rng = random.Random(seed)
    out = []
    for prompt, s in zip(prompts, s_names):
        words = prompt.split(" ")
        third = rng.choice([n for n in corpus.NAMES if n not in words])
        out.append(" ".join(third if w == s else w for w in words))
    return out


def _abc_may_draw_io(prompts, s_names, seed=0):
    rng = random.Random(seed)
    out = []
    for prompt, s in zip(prompts, s_names):
        words = prompt.split(" ")
        last = max(i for i, w in enumerate(words) if w == s)
        words[last] = rng.choice([n for n in corpus.NAMES if n != s])
        out.append(" ".join(words))
    return out


def _abc_reseeded_per_prompt(prompts, s_names, seed=0):
    out = []
    for prompt, s in zip(prompts, s_names):
        words = prompt.split(" ")
        last = max(i for i, w in enumerate(words) if w == s)
        words[last] = random.Random(seed).choice([n for n in corpus.NAMES if n not in words])
        out.append(" ".join(words))
    return out


def _abc_global_random(prompts, s_names, seed=0):
    out = []
    for prompt, s in zip(prompts, s_names):
        words = prompt.split(" ")
        last = max(i for i, w in enumerate(words) if w == s)
        words[last] = random.choice([n for n in corpus.NAMES if n not in words])
        out.append(" ".join(words))
    return out


# ----------------------------------------------------------------------------- residual_stack_to_logit_diff


def _stack_cases(gen):
    yield Case(("gpt2-mini", "accumulated"), "gpt2-mini, the accumulated residual stream (9 parts)")
    yield Case(("gpt2-mini", "heads"), "gpt2-mini, the 16 heads' outputs")
    yield Case(("tiny", "decomposed"), "the untrained model, its decomposed residual stream")


@lru_cache(maxsize=3)  # once each: stack_head_results adds the heads' results to the cache, and warns the next time
def _stack_inputs(name, kind):
    model, _, _, io_ids, s_ids, cache, _, _ = _batch(name)
    if kind == "accumulated":
        stack = cache.accumulated_resid(layer=-1, pos_slice=-1, incl_mid=True)
    elif kind == "heads":
        stack = cache.stack_head_results(layer=-1, pos_slice=-1)
    else:
        stack = cache.decompose_resid(layer=-1, pos_slice=-1)
    directions = model.tokens_to_residual_directions(io_ids) - model.tokens_to_residual_directions(s_ids)
    return stack, cache, directions


@_one_thread
def _run_stack(impl, case):
    stack, cache, directions = _stack_inputs(*case.args)
    with torch.no_grad():
        return impl(stack.clone(), cache, directions.clone())


def _oracle_stack(stack, cache, directions):
    """LayerNorm by hand: centre, divide by each prompt's final scale, then a plain product."""
    centred = stack - stack.mean(-1, keepdim=True)
    scaled = centred / cache["ln_final.hook_scale"][:, -1]
    return (scaled * directions).sum(-1).mean(-1)


def _stack_unscaled(stack, cache, directions):
    return (stack * directions).sum(-1).mean(-1)


def _stack_summed(stack, cache, directions):
    return (cache.apply_ln_to_stack(stack, layer=-1, pos_slice=-1) * directions).sum((-1, -2))


def _stack_not_centred(stack, cache, directions):
    return (stack / cache["ln_final.hook_scale"][:, -1] * directions).sum(-1).mean(-1)


def _stack_first_direction(stack, cache, directions):
    return (cache.apply_ln_to_stack(stack, layer=-1, pos_slice=-1) * directions[0]).sum(-1).mean(-1)


# ----------------------------------------------------------------------------- patching_metric


def _metric_cases(gen):
    yield Case((torch.tensor([0.0, 1.0, 0.5, 2.0]), 2.0, 0.0), "clean 2, corrupted 0",
               expected=torch.tensor([0.0, 0.5, 0.25, 1.0]))  # fmt: skip
    yield Case((torch.tensor([3.0, -1.0, 1.0]), -1.0, 3.0), "clean -1, corrupted 3 (the clean run is lower)",
               expected=torch.tensor([0.0, 1.0, 0.5]))  # fmt: skip
    yield Case((torch.randn(4, 4, generator=gen), 5.7, -0.2), "a (layer, head) table, clean 5.7, corrupted -0.2")
    yield Case((torch.tensor(6.0), 6.0, 1.0), "a scalar equal to the clean value", expected=torch.tensor(1.0))


# ----------------------------------------------------------------------------- patching sweeps


@_one_thread
def _run_sweep(impl, case, **kwargs):
    model, _, corrupted, _, _, clean_cache, _, metric = _batch(case.args[0])
    with torch.no_grad():
        return impl(model, corrupted.clone(), clean_cache, metric, *case.args[1:], **kwargs)


def _oracle_resid(model, corrupted, clean_cache, metric):
    """Blend with a one-hot position mask."""
    n_pos = corrupted.shape[1]
    out = torch.zeros(model.cfg.n_layers, n_pos)
    for layer in range(model.cfg.n_layers):
        name = f"blocks.{layer}.hook_resid_pre"
        for position in range(n_pos):
            mask = torch.nn.functional.one_hot(torch.tensor(position), n_pos).float()[None, :, None]
            hook = lambda r, hook, mask=mask: r * (1 - mask) + clean_cache[hook.name] * mask  # noqa: E731
            out[layer, position] = metric(model.run_with_hooks(corrupted, fwd_hooks=[(name, hook)])).item()
    return out


def _resid_with(model, corrupted, clean_cache, metric, cumulative=False, hook_kind="resid_pre"):
    n_pos = corrupted.shape[1]
    out = torch.zeros(model.cfg.n_layers, n_pos)
    for layer in range(model.cfg.n_layers):
        for position in range(n_pos):
            where = slice(None, position + 1) if cumulative else position

            def patch(r, hook, where=where):
                r[:, where] = clean_cache[hook.name][:, where]
                return r

            name = f"blocks.{layer}.hook_{hook_kind}"
            out[layer, position] = metric(model.run_with_hooks(corrupted, fwd_hooks=[(name, patch)])).item()
    return out


def _oracle_layer_outputs(model, corrupted, clean_cache, metric):
    out = torch.zeros(2, model.cfg.n_layers)
    for layer in range(model.cfg.n_layers):
        for row, name in enumerate([f"blocks.{layer}.hook_attn_out", f"blocks.{layer}.hook_mlp_out"]):
            hook = lambda x, hook: x * 0 + clean_cache[hook.name]  # noqa: E731
            out[row, layer] = metric(model.run_with_hooks(corrupted, fwd_hooks=[(name, hook)])).item()
    return out


def _layer_outputs_final_position(model, corrupted, clean_cache, metric):
    out = torch.zeros(2, model.cfg.n_layers)
    for row, kind in enumerate(["attn_out", "mlp_out"]):
        for layer in range(model.cfg.n_layers):

            def patch(x, hook):
                x[:, -1] = clean_cache[hook.name][:, -1]
                return x

            out[row, layer] = metric(
                model.run_with_hooks(corrupted, fwd_hooks=[(f"blocks.{layer}.hook_{kind}", patch)])
            )
    return out


def _head_cases(gen):
    yield Case(("gpt2-mini", "z"), "gpt2-mini, each head's output z")
    yield Case(("gpt2-mini", "pattern"), "gpt2-mini, each head's pattern")
    yield Case(("gpt2-mini", "v"), "gpt2-mini, each head's values")
    yield Case(("tiny", "q"), "the untrained model (3 layers of 2 heads), queries")
    yield Case(("tiny", "pattern"), "the untrained model, patterns")


def _oracle_heads(model, corrupted, clean_cache, metric, activation):
    """Blend with a one-hot head mask on the right axis."""
    out = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            mask = torch.nn.functional.one_hot(torch.tensor(head), model.cfg.n_heads).float()
            mask = mask[:, None, None] if activation == "pattern" else mask[:, None]
            hook = lambda x, hook, mask=mask: x * (1 - mask) + clean_cache[hook.name] * mask  # noqa: E731
            name = f"blocks.{layer}.attn.hook_{activation}"
            out[layer, head] = metric(model.run_with_hooks(corrupted, fwd_hooks=[(name, hook)])).item()
    return out


def _heads_with(model, corrupted, clean_cache, metric, activation, axis=None, every_head=False, last_only=False):
    out = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    head_axis = axis or (1 if activation == "pattern" else 2)
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):

            def patch(x, hook, head=head):
                index = [slice(None)] * x.ndim
                index[head_axis] = slice(None) if every_head else head
                if last_only:
                    index[1 if activation != "pattern" else 2] = -1
                x[tuple(index)] = clean_cache[hook.name][tuple(index)]
                return x

            name = f"blocks.{layer}.attn.hook_{activation}"
            out[layer, head] = metric(model.run_with_hooks(corrupted, fwd_hooks=[(name, patch)])).item()
    return out


def _heads_head_major(model, corrupted, clean_cache, metric, activation):
    table = ref.patch_head_vectors(model, corrupted, clean_cache, metric, activation)
    return table.T.reshape(model.cfg.n_layers, model.cfg.n_heads)


# ----------------------------------------------------------------------------- path patching


@_one_thread
def _run_to_logits(impl, case):
    model, tokens, _, _, _, clean_cache, corrupted_cache, metric = _batch(case.args[0])
    with torch.no_grad():
        return impl(model, tokens.clone(), clean_cache, corrupted_cache, metric)


def _oracle_to_logits(model, tokens, clean_cache, corrupted_cache, metric):
    """The final LayerNorm and unembedding applied by hand to the changed final residual stream."""
    final = clean_cache[f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"]
    out = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            change = torch.einsum(
                "bpd,dm->bpm", corrupted_cache["z", layer][:, :, head] - clean_cache["z", layer][:, :, head],
                model.W_O[layer, head],
            )  # fmt: skip
            out[layer, head] = metric(model.unembed(model.ln_final(final + change))).item()
    return out


def _to_logits_activation_patching(model, tokens, clean_cache, corrupted_cache, metric):
    out = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):

            def patch(z, hook, head=head):
                z[:, :, head] = corrupted_cache[hook.name][:, :, head]
                return z

            logits = model.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{layer}.attn.hook_z", patch)])
            out[layer, head] = metric(logits).item()
    return out


def _to_logits_at_own_layer(model, tokens, clean_cache, corrupted_cache, metric, sign=1.0, own_layer=True):
    out = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    for layer in range(model.cfg.n_layers):
        where = layer if own_layer else model.cfg.n_layers - 1
        for head in range(model.cfg.n_heads):
            change = (
                sign
                * (corrupted_cache["z", layer][:, :, head] - clean_cache["z", layer][:, :, head])
                @ model.W_O[layer, head]
            )
            hook = lambda r, hook, c=change: r + c  # noqa: E731
            out[layer, head] = metric(
                model.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{where}.hook_resid_post", hook)])
            )
    return out


_PATH_CASES = [
    ("gpt2-mini", "L0H1", ["L1H0", "L2H2"], "v"),
    ("gpt2-mini", "L0H3", ["L2H1"], "v"),
    ("gpt2-mini", "L0H2", ["L1H3"], "k"),
    ("gpt2-mini", "L1H2", ["L2H1", "L3H0"], "q"),
    ("tiny", "L0H1", ["L1H0", "L2H1"], "v"),
    ("tiny", "L0H0", ["L2H0"], "q"),
]


def _path_cases(gen):
    for name, sender, receivers, kind in _PATH_CASES:
        label = "gpt2-mini, 8 IOI prompts" if name == "gpt2-mini" else "the untrained model (3 layers of 2 heads)"
        yield Case((name, sender, receivers, kind), f"{label}: {sender} -> {', '.join(receivers)} through {kind}")


@_one_thread
def _run_path(impl, case):
    name, sender, receivers, kind = case.args
    model, tokens, _, _, _, clean_cache, corrupted_cache, metric = _batch(name)
    with torch.no_grad():
        return impl(model, tokens.clone(), clean_cache, corrupted_cache, sender, list(receivers), kind, metric)


def _oracle_path(model, tokens, clean_cache, corrupted_cache, sender, receivers, receiver_input, metric):
    """Head masks instead of slices, and the first run's inputs read from a cache."""
    sender_layer, sender_head = parse_head(sender)
    n_heads = model.cfg.n_heads

    def freeze(z, hook):
        mask = torch.zeros(n_heads)
        if hook.layer() == sender_layer:
            mask[sender_head] = 1.0
        return clean_cache[hook.name] * (1 - mask[:, None]) + corrupted_cache[hook.name] * mask[:, None]

    with model.hooks(fwd_hooks=[(lambda name: name.endswith("hook_z"), freeze)]):
        _, first = model.run_with_cache(tokens, names_filter=lambda name: name.endswith(f"hook_{receiver_input}"))
    masks = {}
    for layer, head in (parse_head(r) for r in receivers):
        masks.setdefault(layer, torch.zeros(n_heads))[head] = 1.0

    hooks = [
        (f"blocks.{layer}.attn.hook_{receiver_input}",
         lambda x, hook, m=mask: x * (1 - m[:, None]) + first[hook.name] * m[:, None])
        for layer, mask in masks.items()
    ]  # fmt: skip
    return metric(model.run_with_hooks(tokens, fwd_hooks=hooks))


def _path_with(model, tokens, clean_cache, corrupted_cache, sender, receivers, receiver_input, metric,
               freeze_others=True, whole_layer=False, first_run_metric=False, patch_z=False):  # fmt: skip
    sender_layer, sender_head = parse_head(sender)

    def step_one(z, hook):
        z = clean_cache[hook.name].clone() if freeze_others else z
        if hook.layer() == sender_layer:
            z[:, :, sender_head] = corrupted_cache[hook.name][:, :, sender_head]
        return z

    kind = "z" if patch_z else receiver_input
    names = {f"blocks.{parse_head(r)[0]}.attn.hook_{kind}" for r in receivers}
    recorded = {}

    def record(x, hook):
        recorded[hook.name] = x.clone()

    logits = model.run_with_hooks(
        tokens, fwd_hooks=[(lambda n: n.endswith("hook_z"), step_one)] + [(n, record) for n in names]
    )
    if first_run_metric:
        return metric(logits)

    def patch(x, hook):
        for layer, head in (parse_head(r) for r in receivers):
            if layer == hook.layer():
                if whole_layer:
                    x[:] = recorded[hook.name]
                else:
                    x[:, :, head] = recorded[hook.name][:, :, head]
        return x

    return metric(model.run_with_hooks(tokens, fwd_hooks=[(n, patch) for n in names]))


# ----------------------------------------------------------------------------- attribution patching


@_one_thread
def _run_attribution(impl, case):
    model, tokens, corrupted, _, _, _, _, metric = _batch(case.args[0])
    return impl(model, tokens.clone(), corrupted.clone(), metric)


def _oracle_attribution(model, clean_tokens, corrupted_tokens, metric):
    """Gradients collected with backward hooks."""
    _, clean_cache = model.run_with_cache(clean_tokens)
    grads, values = {}, {}

    def save_value(z, hook):
        values[hook.name] = z.detach()

    def save_grad(grad, hook):
        grads[hook.name] = grad.detach()

    z_filter = lambda name: name.endswith("hook_z")  # noqa: E731
    with torch.enable_grad():
        with model.hooks(fwd_hooks=[(z_filter, save_value)], bwd_hooks=[(z_filter, save_grad)]):
            metric(model(corrupted_tokens)).backward()
    model.zero_grad(set_to_none=True)
    return torch.stack([
        ((clean_cache["z", layer] - values[f"blocks.{layer}.attn.hook_z"]) * grads[f"blocks.{layer}.attn.hook_z"])
        .sum((0, 1, 3))
        for layer in range(model.cfg.n_layers)
    ])  # fmt: skip


def _attribution_with(model, clean_tokens, corrupted_tokens, metric, at="corrupted", difference=True, sign=1.0):
    run_on = corrupted_tokens if at == "corrupted" else clean_tokens
    _, clean_cache = model.run_with_cache(clean_tokens)
    _, corrupted_cache = model.run_with_cache(corrupted_tokens)
    kept = {}

    def keep(z, hook):
        z.retain_grad()
        kept[hook.name] = z

    with torch.enable_grad():
        metric(model.run_with_hooks(run_on, fwd_hooks=[(lambda n: n.endswith("hook_z"), keep)])).backward()
    model.zero_grad(set_to_none=True)
    rows = []
    for layer in range(model.cfg.n_layers):
        name = f"blocks.{layer}.attn.hook_z"
        change = clean_cache[name] - corrupted_cache[name] if difference else clean_cache[name]
        rows.append((sign * change * kept[name].grad).sum((0, 1, 3)))
    return torch.stack(rows)


def _attribution_leaves_grads(model, clean_tokens, corrupted_tokens, metric):
    result = ref.attribution_patch_heads(model, clean_tokens, corrupted_tokens, metric)
    with torch.enable_grad():
        metric(model(corrupted_tokens)).backward()
    return result


@_one_thread
def _no_grads_left(impl):
    for name, _ in _MODEL_CASES:
        model, tokens, corrupted, *_, metric = _batch(name)
        impl(model, tokens.clone(), corrupted.clone(), metric)
        left = [n for n, p in model.named_parameters() if p.grad is not None]
        model.zero_grad(set_to_none=True)
        assert not left, f"gradients were left on the model's parameters ({left[0]}, ...): zero them, set to None"


# ----------------------------------------------------------------------------- mean ablation


_CIRCUIT_CASES = [
    ("gpt2-mini", {"L0H1", "L1H0", "L1H3", "L2H1", "L2H2"}),
    ("gpt2-mini", set()),
    ("gpt2-mini", {"L3H3"}),
    ("tiny", {"L1H0", "L2H1"}),
]


def _circuit_cases(gen):
    for name, circuit in _CIRCUIT_CASES:
        label = "gpt2-mini, 8 IOI prompts" if name == "gpt2-mini" else "the untrained model (3 layers of 2 heads)"
        yield Case((name, frozenset(circuit)), f"{label}, circuit {sorted(circuit) or 'empty'}")


@_one_thread
def _run_circuit(impl, case):
    model, tokens, corrupted, *_ = _batch(case.args[0])
    with torch.no_grad():
        return impl(model, tokens.clone(), corrupted.clone(), set(case.args[1]))


def _oracle_circuit(model, tokens, abc_tokens, circuit):
    names = [f"blocks.{layer}.attn.hook_z" for layer in range(model.cfg.n_layers)]
    _, cache = model.run_with_cache(abc_tokens, names_filter=lambda name: name in names)
    keep = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    for layer, head in (parse_head(h) for h in circuit):
        keep[layer, head] = 1.0

    def blend(z, hook):
        mask = keep[hook.layer()][:, None]
        return z * mask + cache[hook.name].mean(0, keepdim=True) * (1 - mask)

    return model.run_with_hooks(tokens, fwd_hooks=[(name, blend) for name in names])


def _circuit_with(model, tokens, abc_tokens, circuit, ablation="mean", means_from="abc", invert=False):
    source = abc_tokens if means_from == "abc" else tokens
    _, cache = model.run_with_cache(source, names_filter=lambda name: name.endswith("hook_z"))
    kept = [parse_head(h) for h in circuit]

    def ablate(z, hook):
        if ablation == "zero":
            out = torch.zeros_like(z)
        elif ablation == "mean over positions":
            out = cache[hook.name].mean((0, 1)).expand_as(z).clone()
        else:
            out = cache[hook.name].mean(0).expand_as(z).clone()
        for layer in range(model.cfg.n_layers):
            for head in range(model.cfg.n_heads):
                in_circuit = (layer, head) in kept
                if layer == hook.layer() and in_circuit != invert:
                    out[:, :, head] = z[:, :, head]
        return out

    return model.run_with_hooks(tokens, fwd_hooks=[(lambda n: n.endswith("hook_z"), ablate)])


# ----------------------------------------------------------------------------- the findings


@lru_cache(maxsize=1)
@_one_thread
def _analysis():
    """The notebook's reference analysis of gpt2-mini: its tables, and a faithfulness function."""
    model = _gpt2()
    prompts = ref.one_shape_ioi_prompts(model, 80)
    tokens = model.to_tokens(prompts.prompts)
    corrupted = model.to_tokens(ref.abc_corrupt(prompts.prompts, prompts.wrong_names, seed=0))
    io_ids, s_ids = prompts.correct_token_ids, prompts.wrong_token_ids
    with torch.no_grad():
        clean_logits, clean_cache = model.run_with_cache(tokens)
        corrupted_logits, corrupted_cache = model.run_with_cache(corrupted)
        clean_ld = ref.logit_diff(clean_logits, io_ids, s_ids).mean().item()
        corrupted_ld = ref.logit_diff(corrupted_logits, io_ids, s_ids).mean().item()
        name_ids = torch.tensor([corpus.single_token_id(model.tokenizer, " " + name) for name in corpus.NAMES])
        mean_name = model.W_U[:, name_ids].mean(-1)
        results = clean_cache.stack_head_results(layer=-1, pos_slice=-1)
        w = model.ln_final.w
        on_io = ref.residual_stack_to_logit_diff(results, clean_cache, (model.W_U[:, io_ids].T - mean_name) * w)
        on_s = ref.residual_stack_to_logit_diff(results, clean_cache, (model.W_U[:, s_ids].T - mean_name) * w)
        on_io, on_s = on_io.reshape(4, 4), on_s.reshape(4, 4)
        str_tokens = [model.to_str_tokens(p) for p in prompts.prompts]
        io_pos = torch.tensor([t.index(" " + n) for t, n in zip(str_tokens, prompts.correct_names)])
        s1_pos = torch.tensor([t.index(" " + n) for t, n in zip(str_tokens, prompts.wrong_names)])
        rows = torch.arange(len(tokens))
        end_attention = torch.stack([clean_cache["pattern", layer][:, :, -1] for layer in range(4)])
        to_io, to_s1 = end_attention[:, rows, :, io_pos].mean(0), end_attention[:, rows, :, s1_pos].mean(0)
        suppressors = {HEADS[i] for i in ((on_s < -0.4) & (on_io.abs() < 0.1)).flatten().nonzero()[:, 0].tolist()}
        metric = partial(_normalised, io_ids=io_ids, s_ids=s_ids, clean=clean_ld, corrupted=corrupted_ld)
        sender_paths = {
            sender: ref.path_patch_head_to_heads(
                model, tokens, clean_cache, corrupted_cache, sender, sorted(suppressors), "v", metric
            ).item()
            for sender in HEADS[:4]
        }  # fmt: skip

    @lru_cache(maxsize=256)
    def faithfulness(circuit: frozenset) -> float:
        with torch.no_grad():
            logits = ref.mean_ablate_outside_circuit(model, tokens, corrupted, set(circuit))
            return ref.logit_diff(logits, io_ids, s_ids).mean().item() / clean_ld

    return dict(on_io=on_io, on_s=on_s, to_io=to_io, to_s1=to_s1, suppressors=suppressors,
                sender_paths=sender_paths, faithfulness=faithfulness)  # fmt: skip


def _normalised(logits, io_ids, s_ids, clean, corrupted):
    return ref.patching_metric(ref.logit_diff(logits, io_ids, s_ids).mean(), clean, corrupted)


def _parse(answer) -> tuple[int, int] | str:
    if not isinstance(answer, str):
        return f'expected head names as strings like "L{{layer}}H{{head}}", got {describe(answer)}.'
    try:
        layer, head = parse_head(answer.strip().upper())
    except ValueError:
        return f'{answer!r} is not a head name: write it as "L{{layer}}H{{head}}".'
    if not (0 <= layer < 4 and 0 <= head < 4):
        return f"{answer!r} does not exist: gpt2-mini has layers 0-3, heads 0-3."
    return layer, head


def _as_heads(answer) -> set[str] | str:
    if isinstance(answer, str):
        answer = {answer}
    if not isinstance(answer, (set, frozenset, list, tuple)):
        return f"expected a set of head names, got {describe(answer)}."
    heads = set()
    for item in answer:
        parsed = _parse(item)
        if isinstance(parsed, str):
            return parsed
        heads.add("L{}H{}".format(*parsed))
    return heads


def _head_set_grader(why_not, which: str):
    def grade(answer, truth) -> str | None:
        heads = _as_heads(answer)
        if isinstance(heads, str):
            return heads
        if heads == truth:
            return None
        problems = [why_not(head) for head in sorted(heads - truth)]
        if missed := len(truth - heads):
            problems.append(f"you missed {missed} of the heads {which}")
        return "; ".join(problems) + "."

    return grade


def _direct_effects(head: str) -> str:
    layer, index = parse_head(head)
    a = _analysis()
    return f"{head} moves S's logit by {a['on_s'][layer, index]:+.2f} and the IO's by {a['on_io'][layer, index]:+.2f}"


def _attention_profile(head: str) -> str:
    layer, index = parse_head(head)
    a = _analysis()
    return (f"from END, {head} attends to the IO {a['to_io'][layer, index]:.2f} and to S1 {a['to_s1'][layer, index]:.2f}, "
            f"and moves the IO's logit by {a['on_io'][layer, index]:+.2f}")  # fmt: skip


def _suppression_truth() -> set[str]:
    return set(_analysis()["suppressors"])


def _name_mover_truth() -> set[str]:
    a = _analysis()
    moves = (a["to_io"] - a["to_s1"] > 0.1) & (a["on_io"] > 0.1)
    return {HEADS[i] for i in moves.flatten().nonzero()[:, 0].tolist()}


def _grade_name_movers(answer, truth) -> str | None:
    heads = _as_heads(answer)
    if isinstance(heads, str):
        return heads
    if heads == truth:
        return None
    problems = [f"{_attention_profile(h)}: not a name mover" for h in sorted(heads - truth)]
    if missed := len(truth - heads):
        problems.append(f"you missed {missed} of the name movers")
    return "; ".join(problems) + "."


def _mover_truth() -> set[str]:
    return {h for h, value in _analysis()["sender_paths"].items() if value < 0.8}


def _mover_why_not(head: str) -> str:
    paths = _analysis()["sender_paths"]
    if head in paths:
        return f"the path from {head} to the suppression heads' values keeps {paths[head]:.2f} of the logit difference"
    return f"{head} is not in a layer before every suppression head, so it cannot send to all of them"


_MIN_FAITHFULNESS, _MIN_LOSS = 0.9, 0.05


def _circuit_truth() -> set[str]:
    a = _analysis()
    six = _mover_truth() | _suppression_truth()
    full = a["faithfulness"](frozenset(six))
    return {h for h in six if a["faithfulness"](frozenset(six - {h})) < full}


@_one_thread
def _grade_circuit(answer, truth) -> str | None:
    heads = _as_heads(answer)
    if isinstance(heads, str):
        return heads
    faithfulness = _analysis()["faithfulness"]
    kept = faithfulness(frozenset(heads))
    if kept < _MIN_FAITHFULNESS:
        return (f"with every other head mean-ablated, your {len(heads)} heads keep {kept:.2f} of the clean logit "
                f"difference; a faithful circuit keeps at least {_MIN_FAITHFULNESS}.")  # fmt: skip
    for head in sorted(heads):
        loss = kept - faithfulness(frozenset(heads - {head}))
        if loss < _MIN_LOSS:
            return (f"your circuit keeps {kept:.2f} of the logit difference, and removing {head} from it changes that "
                    f"by {-loss:+.2f}: the circuit is not minimal (each head must cost at least {_MIN_LOSS}).")  # fmt: skip
    return None


check = Checker("1.4.1", [
    Exercise(
        ref.logit_diff, _logit_diff_cases,
        hint="One number per prompt: at the last position, that prompt's IO logit minus its S logit.",
        wrong={"subject minus IO": lambda lg, io, s: -ref.logit_diff(lg, io, s),
               "reads the first position, not the last": _logit_diff_first_position,
               "averages the logits over positions": _logit_diff_mean_positions,
               "a table of every prompt's logits at every prompt's names":
                   lambda lg, io, s: lg[:, -1][:, io] - lg[:, -1][:, s]},
    ),  # fmt: skip
    Exercise(
        ref.abc_corrupt, _abc_cases, run=_run_abc, compare=_compare_abc, oracle=_oracle_abc,
        hint="Change exactly one word, the subject's last mention, to a name from corpus.NAMES that is not in the "
             "prompt; draw with a generator seeded by seed, one draw per prompt.",
        wrong={"replaces the first mention of the subject (S1)": _abc_first_mention,
               "replaces every mention of the subject": _abc_every_mention,
               "may draw a name already in the prompt (the IO)": _abc_may_draw_io,
               "a fresh generator for every prompt (the same draw each time)": _abc_reseeded_per_prompt,
               "uses the global random state instead of a generator seeded with seed": _abc_global_random},
    ),  # fmt: skip
    Exercise(
        ref.residual_stack_to_logit_diff, _stack_cases, run=_run_stack, oracle=_oracle_stack, atol=1e-4,
        hint="Scale the stack as the final LayerNorm scales the stream at the final position (centre, then divide by "
             "each prompt's scale), dot each prompt's part with its own direction, and average over the prompts.",
        wrong={"no LayerNorm scaling": _stack_unscaled,
               "sums over the prompts instead of averaging": _stack_summed,
               "divides by the scale without centring": _stack_not_centred,
               "every prompt uses the first prompt's direction": _stack_first_direction},
    ),  # fmt: skip
    Exercise(
        ref.patching_metric, _metric_cases,
        hint="A straight line through two points: the corrupted value must map to 0 and the clean value to 1, even "
             "when the clean value is the lower one.",
        wrong={"measured from the clean value": lambda p, c, k: (p - c) / (c - k),
               "divided by the clean value only": lambda p, c, k: (p - k) / c,
               "a ratio to the clean value": lambda p, c, k: p / c},
    ),  # fmt: skip
    Exercise(
        ref.patch_residual_by_position, _model_cases, run=_run_sweep, oracle=_oracle_resid, atol=1e-4,
        hint="One corrupted run per (layer, position); each overwrites one position of blocks.L.hook_resid_pre, for "
             "every prompt, with the clean cache's.",
        wrong={"patches every position up to pos, not pos alone": partial(_resid_with, cumulative=True),
               "patches the stream leaving the layer (resid_post), not entering it":
                   partial(_resid_with, hook_kind="resid_post"),
               "patches the stream between attention and MLP (resid_mid)": partial(_resid_with, hook_kind="resid_mid")},
    ),  # fmt: skip
    Exercise(
        ref.patch_layer_outputs, _model_cases, run=_run_sweep, oracle=_oracle_layer_outputs, atol=1e-4,
        hint="Row 0 is attention (hook_attn_out), row 1 the MLP (hook_mlp_out); each patch replaces the whole "
             "activation, every position, with the clean one.",
        wrong={"MLP first, attention second": lambda *a: ref.patch_layer_outputs(*a).flip(0),
               "patches only the final position": _layer_outputs_final_position},
    ),  # fmt: skip
    Exercise(
        ref.patch_head_vectors, _head_cases, run=_run_sweep, oracle=_oracle_heads, atol=1e-4,
        hint="One run per head. For z, q, k and v the head is axis 2 (batch pos head d_head); for the pattern it is "
             "axis 1 (batch head query key). Patch that head at every position.",
        wrong={"the head taken from axis 2 for the pattern too (a query position)": partial(_heads_with, axis=2),
               "patches every head of the layer at once": partial(_heads_with, every_head=True),
               "patches only the final position": partial(_heads_with, last_only=True),
               "fills the table head-major (layers and heads transposed)": _heads_head_major},
    ),  # fmt: skip
    Exercise(
        ref.path_patch_head_to_logits, _model_cases, run=_run_to_logits, oracle=_oracle_to_logits, atol=1e-4,
        hint="Only the final LayerNorm reads blocks.{last}.hook_resid_post: add there what the head writes on the "
             "corrupted prompts minus what it writes on the clean ones (z through W_O), nowhere else.",
        wrong={"activation patching (the corrupted output reaches later layers too)": _to_logits_activation_patching,
               "the change added after the head's own layer (later layers read it)": _to_logits_at_own_layer,
               "the change added with the wrong sign (clean minus corrupted)":
                   partial(_to_logits_at_own_layer, sign=-1.0, own_layer=False)},
    ),  # fmt: skip
    Exercise(
        ref.path_patch_head_to_heads, _path_cases, run=_run_path, oracle=_oracle_path, atol=1e-4,
        hint="First run: every head's z clean except the sender's (corrupted); record the receivers' q, k or v. "
             "Second run: replace only the receivers' slices of it, and return the metric of that run.",
        wrong={"other heads not frozen in the first run": partial(_path_with, freeze_others=False),
               "the second run replaces the input of every head in the receivers' layers":
                   partial(_path_with, whole_layer=True),
               "returns the metric of the first run": partial(_path_with, first_run_metric=True),
               "patches the receivers' outputs (z), not their inputs": partial(_path_with, patch_z=True)},
    ),  # fmt: skip
    Exercise(
        ref.attribution_patch_heads, _model_cases, run=_run_attribution, oracle=_oracle_attribution,
        extra=_no_grads_left, atol=1e-4,
        hint="The gradient is taken at the corrupted run, with respect to each head's z; multiply it by clean z minus "
             "corrupted z and sum over batch, positions and d_head. Zero the model's gradients afterwards.",
        wrong={"the gradient taken at the clean run": partial(_attribution_with, at="clean"),
               "corrupted minus clean (the sign flipped)": partial(_attribution_with, sign=-1.0),
               "gradient times the clean z, not the difference": partial(_attribution_with, difference=False),
               "leaves gradients on the parameters": _attribution_leaves_grads},
    ),  # fmt: skip
    Exercise(
        ref.mean_ablate_outside_circuit, _circuit_cases, run=_run_circuit, oracle=_oracle_circuit, atol=1e-4,
        hint="Heads outside the circuit get their mean z over the ABC prompts at each position; heads in it keep "
             "their own z. Parse the names with zoo.evaluate.parse_head.",
        wrong={"zero-ablates instead of mean-ablating": partial(_circuit_with, ablation="zero"),
               "means over the clean prompts, not the ABC ones": partial(_circuit_with, means_from="clean"),
               "ablates the circuit's heads instead of the others": partial(_circuit_with, invert=True),
               "means over positions as well": partial(_circuit_with, ablation="mean over positions")},
    ),  # fmt: skip
    Finding(
        "ioi_subject_suppression_heads", truth=_suppression_truth,
        grade=_head_set_grader(lambda h: f"{_direct_effects(h)}: not a subject suppression head",
                               "that lower S's logit by over 0.4 and leave the IO's within 0.1"),
        hint="Use residual_stack_to_logit_diff on the heads' outputs with one name's unembedding (minus the mean "
             "name's) as the direction, once for S and once for the IO.",
        wrong={"only the induction head": {"L1H3"}, "the previous-token head": {"L0H1"},
               "one head too many": {"L1H0", "L1H2", "L1H3", "L2H1", "L2H2"},
               "layers off by one": {"L2H0", "L2H3", "L3H1", "L3H2"},
               "the last layer, as in GPT-2 small": {"L3H0", "L3H1", "L3H2", "L3H3"},
               "a name instead of a set of names": "layer 1 head 0"},
    ),  # fmt: skip
    Finding(
        "ioi_name_mover_heads", truth=_name_mover_truth, grade=_grade_name_movers,
        hint="For each head, compare its attention from END to each prompt's IO position and to its S1 position (they "
             "change from prompt to prompt), and its direct effect on the IO's logit.",
        wrong={"the heads that attend to the names": {"L0H2", "L0H3"},
               "the subject suppression heads": {"L1H0", "L1H3", "L2H1", "L2H2"},
               "the last layer, as in GPT-2 small": {"L3H0", "L3H1", "L3H2", "L3H3"},
               "one name gatherer": ["L0H3"]},
    ),  # fmt: skip
    Finding(
        "ioi_subject_mover_heads", truth=_mover_truth,
        grade=_head_set_grader(_mover_why_not, "whose path to the suppression heads' values keeps under 0.8"),
        hint="Path patch each head of layer 0 to the four suppression heads' values and keep those below 0.8; layer-1 "
             "heads can only send to the layer-2 suppression heads, and none of them matters.",
        wrong={"only the previous-token head": {"L0H1"}, "the induction head": {"L1H3"},
               "one head too many": {"L0H1", "L0H2", "L0H3"}, "the name gatherers": {"L0H2", "L0H3"},
               "layer 1 instead of layer 0": {"L1H1", "L1H3"}},
    ),  # fmt: skip
    Finding(
        "ioi_circuit", truth=_circuit_truth, grade=_grade_circuit,
        hint="Start from the subject movers and the suppression heads, measure the faithfulness with each one removed, "
             "and drop any head whose removal does not lower it.",
        wrong={"every head (faithful, not minimal)": set(HEADS),
               "the movers and suppressors (one head too many)": {"L0H1", "L0H3", "L1H0", "L1H3", "L2H1", "L2H2"},
               "with the name gatherers": {"L0H1", "L0H2", "L0H3", "L1H0", "L1H3", "L2H1", "L2H2"},
               "the suppression heads alone": {"L1H0", "L1H3", "L2H1", "L2H2"},
               "the previous-token and induction heads": {"L0H1", "L1H3"},
               "with an extra head that does little": {"L0H1", "L1H0", "L1H3", "L2H1", "L2H2", "L3H3"}},
    ),  # fmt: skip
])  # fmt: skip
