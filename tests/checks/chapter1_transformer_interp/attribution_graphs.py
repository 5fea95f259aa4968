"""Checks for 1.4.2 Attribution graphs with transcoders.

The exercises that run a model use an untrained two-layer model with the zoo tokenizer and seeded random
transcoders of the zoo's shape (`_Transcoder`: the attributes and methods of zoo.transcoders.Transcoder),
so they are fast and need no shipped weights. Their oracles compute the linearised model by hand (frozen
patterns and LayerNorm scales, written out with einsum) instead of with hooks, and the replacement model
layer by layer. The graph exercises (influence, pruning, ablation effects) run on seeded random graphs
whose nodes are in topological order, with small hand-computed ones. The findings are graded against the
zoo's gpt2-mini and its shipped transcoders, measured with the reference functions.
"""

import dataclasses
import functools

import torch
from torch import Tensor

from solutions.chapter1_transformer_interp import attribution_graphs as ref
from tests.harness import Case, Checker, Exercise, Finding, Mismatch, describe, number_within

_PROMPTS = ["When Mary and John went to the store, John gave a drink to", "Paris is in France. Tokyo is in"]


@dataclasses.dataclass
class _Transcoder:
    """A stand-in with zoo.transcoders.Transcoder's interface (a dataclass, so the checks can see whether a
    learner's code edits it in place)."""

    layer: int
    W_enc: Tensor
    b_enc: Tensor
    W_dec: Tensor
    b_dec: Tensor

    @property
    def hook_in(self) -> str:
        return f"blocks.{self.layer}.ln2.hook_normalized"

    @property
    def hook_out(self) -> str:
        return f"blocks.{self.layer}.hook_mlp_out"

    @property
    def d_transcoder(self) -> int:
        return self.W_enc.shape[1]

    def encode(self, x: Tensor) -> Tensor:
        return torch.relu(x @ self.W_enc + self.b_enc)

    def decode(self, acts: Tensor) -> Tensor:
        return acts @ self.W_dec + self.b_dec


def _random_transcoder(gen: torch.Generator, layer: int, d_model: int, d_tc: int) -> _Transcoder:
    """Biases below zero so that about a third of the features fire on a normalised input."""
    return _Transcoder(
        layer=layer,
        W_enc=torch.randn(d_model, d_tc, generator=gen) / d_model**0.5,
        b_enc=torch.randn(d_tc, generator=gen) * 0.2 - 0.4,
        W_dec=torch.randn(d_tc, d_model, generator=gen) / d_tc**0.5,
        b_dec=torch.randn(d_model, generator=gen) * 0.1,
    )


@functools.lru_cache(maxsize=1)
def _tiny_model():
    """An untrained two-layer model with the zoo tokenizer, LayerNorms with non-trivial weights and biases."""
    from zoo import build_model
    from zoo.tokenizer import load_tokenizer

    config = dict(n_layers=2, d_model=16, n_heads=2, d_head=8, d_mlp=32, n_ctx=32, d_vocab=len(load_tokenizer()),
                  act_fn="gelu", normalization_type="LN", seed=1)  # fmt: skip
    model = build_model(config, device="cpu").eval()
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(("ln1.w", "ln2.w", "ln_final.w")):
                param.copy_(1 + 0.5 * torch.randn(param.shape, generator=gen))
            elif name.endswith(("ln1.b", "ln2.b", "ln_final.b", "b_V", "b_O")):
                param.copy_(0.3 * torch.randn(param.shape, generator=gen))
    return model


@functools.lru_cache(maxsize=4)
def _setup(prompt_index: int, seed: int):
    """The tiny model's tokens, cache, transcoders (d_tc 24), feature activations and errors on one prompt."""
    model = _tiny_model()
    tokens = model.to_tokens(_PROMPTS[prompt_index])[0, :9]
    gen = torch.Generator().manual_seed(seed)
    transcoders = [_random_transcoder(gen, layer, model.cfg.d_model, 24) for layer in range(model.cfg.n_layers)]
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens[None])
    found = [ref.features_and_error(tc, cache[tc.hook_in][0], cache[tc.hook_out][0]) for tc in transcoders]
    return dict(tokens=tokens, cache=cache, logits=logits[0], transcoders=transcoders,
                acts=torch.stack([a for a, _ in found]), errors=torch.stack([e for _, e in found]))  # fmt: skip


def _reads(setup, gen: torch.Generator, kinds: list[tuple[str, int]]):
    """Random reads of the given (hook name, position) kinds (vectors of the hook's width)."""
    model = _tiny_model()
    return [(name, pos, torch.randn(model.cfg.d_model, generator=gen)) for name, pos in kinds]


def _describe_reads(reads) -> str:
    return ", ".join(f"{name}[{pos}]" for name, pos, _ in reads)


# ----------------------------------------------------------------------------- the manual linearised model


def _layer_norm_frozen(resid: Tensor, scale: Tensor) -> Tensor:
    return (resid - resid.mean(-1, keepdim=True)) / scale


def _linear_forward(model, cache, embed: Tensor, mlp_writes: Tensor) -> dict[str, Tensor]:
    """The model linearised around `cache`, written out: attention with the cached patterns, LayerNorms with
    the cached scales, each MLP's output replaced by mlp_writes[layer]. Returns the activations reads use."""
    acts, resid = {}, embed
    for layer, block in enumerate(model.blocks):
        x = _layer_norm_frozen(resid, cache[f"blocks.{layer}.ln1.hook_scale"][0]) * block.ln1.w + block.ln1.b
        v = torch.einsum("pd,hde->phe", x, block.attn.W_V) + block.attn.b_V
        z = torch.einsum("hqk,khe->qhe", cache[f"blocks.{layer}.attn.hook_pattern"][0], v)
        resid = resid + torch.einsum("qhe,hed->qd", z, block.attn.W_O) + block.attn.b_O
        acts[f"blocks.{layer}.hook_resid_mid"] = resid
        acts[f"blocks.{layer}.ln2.hook_normalized"] = _layer_norm_frozen(
            resid, cache[f"blocks.{layer}.ln2.hook_scale"][0]
        )
        resid = resid + mlp_writes[layer]
    acts["ln_final.hook_normalized"] = _layer_norm_frozen(resid, cache["ln_final.hook_scale"][0])
    return acts


def _read_values(acts: dict[str, Tensor], reads) -> Tensor:
    return torch.stack([acts[name][pos] @ vector for name, pos, vector in reads])


# ----------------------------------------------------------------------------- features and the replacement model


def _features_cases(gen):
    tc = _Transcoder(
        layer=0, W_enc=torch.tensor([[1.0, -1.0], [2.0, 0.0]]), b_enc=torch.tensor([0.0, 1.0]),
        W_dec=torch.tensor([[1.0, 1.0], [0.0, 2.0]]), b_dec=torch.tensor([0.5, 0.0]),
    )  # fmt: skip
    # x = (1, 1): pre (3, 0) -> acts (3, 0); decode (3.5, 3); error = (4, 4) - (3.5, 3) = (0.5, 1).
    # x = (-1, 0): pre (-1, 2) -> acts (0, 2); decode (0.5, 4); error = (0, 0) - (0.5, 4) = (-0.5, -4).
    mlp_in, mlp_out = torch.tensor([[1.0, 1.0], [-1.0, 0.0]]), torch.tensor([[4.0, 4.0], [0.0, 0.0]])
    yield Case((tc, mlp_in, mlp_out), "2 positions, d_model 2, d_tc 2",
               expected=(torch.tensor([[3.0, 0.0], [0.0, 2.0]]), torch.tensor([[0.5, 1.0], [-0.5, -4.0]])))  # fmt: skip
    for positions, d_model, d_tc in [(5, 8, 20), (12, 16, 48)]:
        tc = _random_transcoder(gen, 1, d_model, d_tc)
        mlp_in, mlp_out = torch.randn(positions, d_model, generator=gen), torch.randn(positions, d_model, generator=gen)
        yield Case((tc, mlp_in, mlp_out), f"{positions} positions, d_model {d_model}, d_tc {d_tc}")


def _features_error_reversed(transcoder, mlp_in, mlp_out):
    acts = transcoder.encode(mlp_in)
    return acts, transcoder.decode(acts) - mlp_out


def _features_error_without_bias(transcoder, mlp_in, mlp_out):
    acts = transcoder.encode(mlp_in)
    return acts, mlp_out - acts @ transcoder.W_dec


def _features_pre_relu(transcoder, mlp_in, mlp_out):
    pre = mlp_in @ transcoder.W_enc + transcoder.b_enc
    return pre, mlp_out - transcoder.decode(transcoder.encode(mlp_in))


def _replacement_cases(gen):
    yield Case(("tiny model", 0, 0, "clean errors"), "2 layers, the clean run's errors (exact: the model's logits)",
               expected=_setup(0, 0)["logits"])  # fmt: skip
    for args, label in [(("tiny model", 0, 0, None), "2 layers, errors=None (the transcoders alone)"),
                        (("tiny model", 1, 3, "random errors"), "another prompt, random errors")]:  # fmt: skip
        case = Case(args, label)
        setup, errors = _replacement_args(case)
        yield Case(
            args, label, expected=_oracle_replacement(_tiny_model(), setup["transcoders"], setup["tokens"], errors)
        )


def _replacement_args(case):
    _, prompt, seed, errors = case.args
    setup = _setup(prompt, seed)
    if errors == "clean errors":
        errors = setup["errors"]
    elif errors == "random errors":
        errors = torch.randn(setup["errors"].shape, generator=torch.Generator().manual_seed(seed))
    return setup, errors


def _run_replacement(impl, case):
    setup, errors = _replacement_args(case)
    with torch.no_grad():
        return impl(_tiny_model(), setup["transcoders"], setup["tokens"], errors)


def _oracle_replacement(model, transcoders, tokens, errors, edits=None):
    """The replacement model layer by layer, with the model's own blocks."""
    with torch.no_grad():
        resid = model.embed(tokens[None]) + model.pos_embed(tokens[None])
        for layer, block in enumerate(model.blocks):
            x = block.ln1(resid)
            resid = resid + block.attn(x, x, x)
            normalised = (resid - resid.mean(-1, keepdim=True)) / (resid.var(-1, keepdim=True, unbiased=False)
                                                                   + model.cfg.eps).sqrt()  # fmt: skip
            acts = transcoders[layer].encode(normalised[0])
            for (edit_layer, position), new in (edits or {}).items():
                if edit_layer == layer:
                    acts[position] = new
            resid = resid + transcoders[layer].decode(acts) + (0 if errors is None else errors[layer])
        return model.unembed(model.ln_final(resid))[0]


def _replacement_with_hooks(model, transcoders, tokens, errors, clean_inputs=False, last_only=False, use_errors=True):
    _, cache = model.run_with_cache(tokens[None])
    stored = {}
    hooks = []
    for tc in transcoders if not last_only else transcoders[-1:]:
        hooks.append((tc.hook_in, lambda act, hook, layer=tc.layer: stored.__setitem__(layer, act)))

        def replace(act, hook, tc=tc):
            source = cache[tc.hook_in] if clean_inputs else stored[tc.layer]
            written = tc.decode(tc.encode(source))
            return written + errors[tc.layer] if (errors is not None and use_errors) else written

        hooks.append((tc.hook_out, replace))
    return model.run_with_hooks(tokens[None], fwd_hooks=hooks)[0]


# ----------------------------------------------------------------------------- freezing and gradients


def _freeze_cases(gen):
    yield Case(("tiny model", 0, 1), "cache of prompt 0, run on prompt 1 (same length), a batch of 2",
               expected=_frozen_by_hand(0, 1))  # fmt: skip
    yield Case(("tiny model", 1, 0), "cache of prompt 1, run on prompt 0", expected=_frozen_by_hand(1, 0))


def _run_freeze(impl, case):
    """Logits of a run on other tokens with the hooks, and the gradient of a few logits wrt the embeddings."""
    _, cached, other = case.args
    model, setup = _tiny_model(), _setup(cached, 0)
    hooks = impl(setup["cache"])
    if not isinstance(hooks, list):
        raise Mismatch(f"output: expected a list of (hook name, function) pairs, got {describe(hooks)}")
    tokens = _setup(other, 0)["tokens"].expand(2, -1)
    with torch.enable_grad():
        probe = torch.zeros(2, tokens.shape[1], model.cfg.d_model, requires_grad=True)
        embed_hook = ("blocks.0.hook_resid_pre", lambda act, hook: act + probe)
        logits = model.run_with_hooks(tokens, fwd_hooks=[embed_hook, *hooks])
        logits[:, -1, :5].sum().backward()
    return {"logits": logits.detach(), "gradient": probe.grad}


def _freeze_only(suffixes):
    def hooks(cache):
        return [(n, lambda act, hook, v=v: v.expand(act.shape)) for n, v in cache.items() if n.endswith(suffixes)]

    return hooks


def _frozen_by_hand(cached: int, other: int) -> dict[str, Tensor]:
    """What _run_freeze returns, written out with frozen patterns and scales (MLPs run on its residual stream)."""
    model, setup = _tiny_model(), _setup(cached, 0)
    tokens = _setup(other, 0)["tokens"]
    cache = setup["cache"]
    with torch.enable_grad():
        embed = (model.embed(tokens[None]) + model.pos_embed(tokens[None]))[0].detach().requires_grad_(True)
        resid = embed
        for layer, block in enumerate(model.blocks):
            x = _layer_norm_frozen(resid, cache[f"blocks.{layer}.ln1.hook_scale"][0]) * block.ln1.w + block.ln1.b
            v = torch.einsum("pd,hde->phe", x, block.attn.W_V) + block.attn.b_V
            z = torch.einsum("hqk,khe->qhe", cache[f"blocks.{layer}.attn.hook_pattern"][0], v)
            resid = resid + torch.einsum("qhe,hed->qd", z, block.attn.W_O) + block.attn.b_O
            x = _layer_norm_frozen(resid, cache[f"blocks.{layer}.ln2.hook_scale"][0]) * block.ln2.w + block.ln2.b
            resid = resid + block.mlp(x[None])[0]
        x = _layer_norm_frozen(resid, cache["ln_final.hook_scale"][0]) * model.ln_final.w + model.ln_final.b
        logits = model.unembed(x[None])[0]
        logits[-1, :5].sum().backward()
    return {"logits": logits.detach().expand(2, -1, -1), "gradient": embed.grad.expand(2, -1, -1)}


def _gradient_cases(gen):
    setup = _setup(0, 0)
    kinds = [("blocks.1.ln2.hook_normalized", 5), ("blocks.0.ln2.hook_normalized", 2), ("ln_final.hook_normalized", -1)]
    reads = _reads(setup, gen, kinds)
    yield Case(("tiny model", 0, reads), f"2 layers, reads {_describe_reads(reads)}")
    reads = _reads(setup, gen, [("blocks.1.hook_resid_mid", 8), ("blocks.1.ln2.hook_normalized", 0)])
    yield Case(("tiny model", 1, reads), f"another prompt, reads {_describe_reads(reads)}")


def _run_gradients(impl, case):
    _, prompt, reads = case.args
    setup = _setup(prompt, 0)
    with torch.no_grad():  # as in the notebook: the function must turn gradients on itself
        return impl(_tiny_model(), setup["tokens"], setup["cache"], reads)


def _oracle_gradients(model, tokens, cache, reads):
    """One read at a time, through the manual linearised model."""
    mlp_rows, embed_rows = [], []
    for read in reads:
        with torch.enable_grad():
            embed = cache["blocks.0.hook_resid_pre"][0].clone().requires_grad_(True)
            mlp_writes = torch.stack([cache[f"blocks.{layer}.hook_mlp_out"][0] for layer in range(model.cfg.n_layers)])
            mlp_writes.requires_grad_(True)
            value = _read_values(_linear_forward(model, cache, embed, mlp_writes), [read])[0]
            grads = torch.autograd.grad(value, [embed, mlp_writes], allow_unused=True)
        embed_grad, mlp_grad = (torch.zeros_like(x) if g is None else g for g, x in zip(grads, [embed, mlp_writes]))
        mlp_rows.append(mlp_grad)
        embed_rows.append(embed_grad)
    return torch.stack(mlp_rows), torch.stack(embed_rows)


def _gradients_with(model, tokens, cache, reads, freeze=("hook_pattern", "hook_scale"), cut_mlps=True):
    """The reference's computation with one piece changed: what is frozen, or whether MLPs are cut."""
    n_reads, n_layers = len(reads), model.cfg.n_layers
    with torch.enable_grad():
        mlp_writes = torch.zeros(n_reads, n_layers, len(tokens), model.cfg.d_model, requires_grad=True)
        embed_write = torch.zeros(n_reads, len(tokens), model.cfg.d_model, requires_grad=True)
        stored = {}
        hooks = [(n, lambda act, hook, v=v: v.expand(act.shape)) for n, v in cache.items() if n.endswith(freeze)]
        hooks.append(("blocks.0.hook_resid_pre", lambda act, hook: act + embed_write))
        for layer in range(n_layers):
            name = f"blocks.{layer}.hook_mlp_out"
            if cut_mlps:
                hooks.append((name, lambda act, hook, n=name, l=layer: cache[n] + mlp_writes[:, l]))
            else:
                hooks.append((name, lambda act, hook, l=layer: act + mlp_writes[:, l]))
        hooks += [(n, lambda act, hook: stored.__setitem__(hook.name, act)) for n in {n for n, _, _ in reads}]
        model.run_with_hooks(tokens.expand(n_reads, -1), fwd_hooks=hooks, return_type=None)
        torch.stack([stored[n][i, p] @ v for i, (n, p, v) in enumerate(reads)]).sum().backward()
    return mlp_writes.grad, embed_write.grad


def _logit_read_cases(gen):
    model = _tiny_model()
    mary, john = model.to_single_token(" Mary"), model.to_single_token(" John")
    yield Case(("tiny model", mary, None, -1), "the logit of ' Mary' at the last position")
    yield Case(("tiny model", mary, john, -1), "logit(' Mary') - logit(' John') at the last position")
    yield Case(("tiny model", john, mary, 3), "logit(' John') - logit(' Mary') at position 3")


def _run_logit_read(impl, case):
    _, token, other, position = case.args
    return impl(_tiny_model(), token, other, position)


def _oracle_logit_read(model, token, other, position):
    """The gradient of the logit (difference) with respect to ln_final.hook_normalized at the position: the
    logits are affine in it, so the gradient is the read's vector."""
    tokens = _setup(0, 0)["tokens"]
    stored = {}
    with torch.enable_grad():

        def keep(act, hook):
            act = act.detach().requires_grad_(True)
            stored["x"] = act
            return act

        logits = model.run_with_hooks(tokens[None], fwd_hooks=[("ln_final.hook_normalized", keep)])[0, position]
        value = logits[token] - (0 if other is None else logits[other])
        (gradient,) = torch.autograd.grad(value, stored["x"])
    return ("ln_final.hook_normalized", position, gradient[0, position])


# ----------------------------------------------------------------------------- attribution and completeness


def _attribution_cases(gen):
    # 1 layer, 2 positions, d_tc 2, d_model 2. Features (0, 1, 0) act 2 and (0, 0, 1) act 3.
    features = torch.tensor([[0, 0, 1], [0, 1, 0]])
    acts = torch.tensor([[[0.0, 3.0], [2.0, 0.0]]])
    W_dec = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    errors = torch.tensor([[[1.0, 1.0], [0.0, -1.0]]])
    embeddings = torch.tensor([[2.0, 0.0], [1.0, 1.0]])
    mlp_grads = torch.tensor([[[[0.5, 1.0], [2.0, 3.0]]]])  # one target: gradient (0.5, 1) at position 0, (2, 3) at 1
    embed_grads = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])
    # feature (0,0,1): 3 * (0.5, 1) . (0, 1) = 3; feature (0,1,0): 2 * (2, 3) . (1, 0) = 4
    # errors: (1, 1) . (0.5, 1) = 1.5; (0, -1) . (2, 3) = -3; embeddings: 2, 2
    yield Case((features, acts, W_dec, errors, embeddings, mlp_grads, embed_grads), "1 layer, 2 positions, 1 target",
               expected=torch.tensor([[3.0, 4.0, 1.5, -3.0, 2.0, 2.0]]))  # fmt: skip
    for n_layers, n_pos, d_tc, d_model, n_targets in [(2, 3, 6, 4, 5), (4, 6, 32, 16, 12)]:
        acts = torch.relu(torch.randn(n_layers, n_pos, d_tc, generator=gen) - 0.5)
        yield Case(
            (acts.nonzero(), acts, torch.randn(n_layers, d_tc, d_model, generator=gen),
             torch.randn(n_layers, n_pos, d_model, generator=gen), torch.randn(n_pos, d_model, generator=gen),
             torch.randn(n_targets, n_layers, n_pos, d_model, generator=gen),
             torch.randn(n_targets, n_pos, d_model, generator=gen)),
            f"{n_layers} layers, {n_pos} positions, d_tc {d_tc}, d_model {d_model}, {n_targets} targets",
        )  # fmt: skip


def _oracle_attribution(features, feature_acts, W_dec, errors, embeddings, mlp_grads, embed_grads):
    rows = []
    for t in range(len(mlp_grads)):
        row = [feature_acts[l, p, k] * (mlp_grads[t, l, p] @ W_dec[l, k]) for l, p, k in features.tolist()]
        row += [mlp_grads[t, l, p] @ errors[l, p] for l in range(len(errors)) for p in range(errors.shape[1])]
        row += [embed_grads[t, p] @ embeddings[p] for p in range(len(embeddings))]
        rows.append(torch.stack(row))
    return torch.stack(rows)


def _attribution_unscaled(features, feature_acts, W_dec, errors, embeddings, mlp_grads, embed_grads):
    ones = (feature_acts != 0).float()
    return ref.attribution_rows(features, ones, W_dec, errors, embeddings, mlp_grads, embed_grads)


def _attribution_errors_position_major(features, feature_acts, W_dec, errors, embeddings, mlp_grads, embed_grads):
    rows = ref.attribution_rows(features, feature_acts, W_dec, errors, embeddings, mlp_grads, embed_grads)
    n_feat, (n_layers, n_pos) = len(features), errors.shape[:2]
    by_error = rows[:, n_feat : n_feat + n_layers * n_pos].reshape(-1, n_layers, n_pos).transpose(1, 2).flatten(1)
    return torch.cat([rows[:, :n_feat], by_error, rows[:, n_feat + n_layers * n_pos :]], dim=1)


def _attribution_embeddings_first(features, feature_acts, W_dec, errors, embeddings, mlp_grads, embed_grads):
    rows = ref.attribution_rows(features, feature_acts, W_dec, errors, embeddings, mlp_grads, embed_grads)
    n_pos = len(embeddings)
    return torch.cat([rows[:, -n_pos:], rows[:, :-n_pos]], dim=1)


def _constant_cases(gen):
    setup = _setup(0, 0)
    kinds = [("blocks.1.ln2.hook_normalized", 4), ("blocks.0.ln2.hook_normalized", 1), ("ln_final.hook_normalized", -1)]
    yield Case(("tiny model", 0, _reads(setup, gen, kinds)), "2 layers, three reads")
    yield Case(("tiny model", 1, _reads(setup, gen, [("blocks.1.hook_resid_mid", 7)])), "another prompt, one read")


def _run_constant(impl, case):
    _, prompt, reads = case.args
    setup = _setup(prompt, 0)
    b_dec = torch.stack([tc.b_dec for tc in setup["transcoders"]])
    with torch.no_grad():
        return impl(_tiny_model(), setup["tokens"], setup["cache"], b_dec, reads)


def _oracle_constant(model, tokens, cache, b_dec, reads):
    zeros = torch.zeros(len(tokens), model.cfg.d_model)
    return _read_values(_linear_forward(model, cache, zeros, b_dec[:, None].expand(-1, len(tokens), -1)), reads)


def _constant_with(model, tokens, cache, b_dec, reads, embed=None, mlp=None, freeze=True):
    stored = {}
    hooks = ref.freeze_hooks(cache) if freeze else []
    hooks.append(("blocks.0.hook_resid_pre", lambda act, hook: act * 0 if embed is None else embed))
    for layer in range(model.cfg.n_layers):
        written = b_dec[layer] if mlp is None else mlp
        hooks.append((f"blocks.{layer}.hook_mlp_out", lambda act, hook, w=written: act * 0 + w))
    hooks += [(n, lambda act, hook: stored.__setitem__(hook.name, act)) for n in {n for n, _, _ in reads}]
    model.run_with_hooks(tokens[None], fwd_hooks=hooks, return_type=None)
    return torch.stack([stored[n][0, p] @ v for n, p, v in reads])


# ----------------------------------------------------------------------------- influence and pruning


def _random_dag(gen: torch.Generator, n: int, density: float = 0.4) -> Tensor:
    """A random adjacency matrix [target, source] in topological order (strictly lower triangular), with
    some rows (sources) all zero."""
    weights = torch.randn(n, n, generator=gen) * (torch.rand(n, n, generator=gen) < density)
    weights = torch.tril(weights, diagonal=-1)
    weights[: max(1, n // 5)] = 0.0
    return weights


def _influence_cases(gen):
    chain = torch.tensor([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [1.0, -3.0, 0.0]])
    # Row-normalised |A|: row 1 (1, 0, 0), row 2 (0.25, 0.75, 0). Paths into node 2: 0.25 + 0.75 * 1 from node 0.
    yield Case((chain,), "a 3-node chain with a shortcut",
               expected=torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.75, 0.0]]))  # fmt: skip
    yield Case((_random_dag(gen, 12),), "a random 12-node graph")
    yield Case((_random_dag(gen, 60, 0.15) * 100,), "a random 60-node graph, large weights")


def _oracle_influence(adjacency):
    weights = adjacency.abs().double()
    sums = weights.sum(-1, keepdim=True)
    weights = torch.where(sums > 0, weights / torch.where(sums > 0, sums, 1.0), 0.0)
    total, power = torch.zeros_like(weights), torch.eye(len(weights), dtype=torch.float64)
    for _ in range(len(weights)):
        power = power @ weights
        total = total + power
    return total.to(adjacency.dtype)


def _influence_signed(adjacency):
    weights = adjacency / adjacency.abs().sum(-1, keepdim=True).clamp(min=1e-30)
    identity = torch.eye(len(adjacency))
    return torch.linalg.inv(identity - weights) - identity


def _influence_direct_only(adjacency):
    weights = adjacency.abs()
    return weights / weights.sum(-1, keepdim=True).clamp(min=1e-30)


def _influence_with_identity(adjacency):
    return ref.indirect_influence(adjacency) + torch.eye(len(adjacency))


def _influence_columns_normalised(adjacency):
    weights = adjacency.abs()
    weights = weights / weights.sum(0, keepdim=True).clamp(min=1e-30)
    identity = torch.eye(len(adjacency))
    return torch.linalg.inv(identity - weights) - identity


def _prune_nodes_cases(gen):
    scores = torch.tensor([1.0, 5.0, 3.0, 1.0])
    keep = torch.tensor([False, False, False, True])
    # Sorted: 5 (0.5 of the total), 3 (0.8): 0.8 crosses 0.7, so nodes 1 and 2, plus node 3 (always kept).
    yield Case((scores, 0.7, keep), "4 nodes, threshold 0.7, the last always kept",
               expected=torch.tensor([False, True, True, True]))  # fmt: skip
    ties = torch.tensor([2.0, 2.0, 2.0, 2.0, 2.0])
    yield Case((ties, 0.5, torch.zeros(5, dtype=torch.bool)), "5 equal scores, threshold 0.5: the first 3",
               expected=torch.tensor([True, True, True, False, False]))  # fmt: skip
    scores = torch.rand(40, generator=gen) ** 4
    yield Case((scores, 0.8, torch.arange(40) >= 37), "40 random scores, threshold 0.8, the last 3 always kept")
    yield Case((scores, 0.99, torch.zeros(40, dtype=torch.bool)), "40 random scores, threshold 0.99")


def _prune_nodes_crossing_dropped(scores, threshold, always_keep):
    order = scores.argsort(descending=True, stable=True)
    cumulative = scores[order].cumsum(0) / scores.sum()
    keep = always_keep.clone()
    keep[order[cumulative < threshold]] = True
    return keep


def _prune_nodes_index_order(scores, threshold, always_keep):
    cumulative = scores.cumsum(0) / scores.sum()
    keep = always_keep.clone()
    keep[: int((cumulative < threshold).sum()) + 1] = True
    return keep


def _prune_nodes_forgets_always_keep(scores, threshold, always_keep):
    return ref.prune_nodes(scores, threshold, torch.zeros_like(always_keep))


def _prune_nodes_share_of_max(scores, threshold, always_keep):
    return always_keep | (scores >= (1 - threshold) * scores.max())


def _prune_edges_cases(gen):
    adjacency = torch.tensor([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [1.0, -3.0, 0.0]])
    # Row 1: edge 1<-0 weight 1, scaled by score 0.5; row 2: 2<-0 0.25, 2<-1 0.75, scaled by 1. Scores
    # 0.75 (2<-1), 0.5 (1<-0), 0.25 (2<-0) of 1.5: 0.5, then 0.833 >= 0.8: keep 2<-1 and 1<-0.
    yield Case((adjacency, torch.ones(3, dtype=torch.bool), torch.tensor([0.0, 0.5, 1.0]), 0.8),
               "3 nodes, threshold 0.8",
               expected=torch.tensor([[False, False, False], [True, False, False], [False, True, False]]))  # fmt: skip
    adjacency = _random_dag(gen, 20)
    keep = torch.rand(20, generator=gen) < 0.7
    scores = torch.rand(20, generator=gen)
    yield Case((adjacency, keep, scores, 0.9), "20 nodes, 14 kept, threshold 0.9")
    yield Case((adjacency, torch.ones(20, dtype=torch.bool), scores, 0.5), "20 nodes, all kept, threshold 0.5")


def _prune_edges_over_all_sources(adjacency, keep_nodes, node_scores, threshold):
    between = keep_nodes[:, None] & keep_nodes[None, :]
    weights = adjacency.abs() / adjacency.abs().sum(-1, keepdim=True).clamp(min=1e-30)
    edge_scores = torch.where(between, weights * node_scores[:, None], 0.0)
    return _keep_top(edge_scores, threshold) & between


def _keep_top(edge_scores, threshold):
    flat = edge_scores.flatten()
    order = flat.argsort(descending=True, stable=True)
    n_kept = int((flat[order].cumsum(0) / flat.sum() < threshold).sum()) + 1
    keep = torch.zeros_like(flat, dtype=torch.bool)
    keep[order[:n_kept]] = True
    return keep.reshape(edge_scores.shape)


def _prune_edges_unscored(adjacency, keep_nodes, node_scores, threshold):
    return ref.prune_edges(adjacency, keep_nodes, torch.ones_like(node_scores), threshold)


def _prune_edges_raw_weights(adjacency, keep_nodes, node_scores, threshold):
    between = keep_nodes[:, None] & keep_nodes[None, :]
    return _keep_top(torch.where(between, adjacency.abs(), 0.0), threshold) & between


# ----------------------------------------------------------------------------- interventions


def _effects_cases(gen):
    # Nodes: embedding e (0), feature f (1, activation 2), logit (2). f's input 2 comes from e; the logit gets
    # 4 from f and 1 from e. Removing e: f drops 2, so the logit drops 1 + 2 * 4 / 2 = 5. Removing f: 4.
    adjacency = torch.tensor([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [1.0, 4.0, 0.0]])
    yield Case((adjacency, torch.tensor([1.0, 2.0, 1.0])), "embedding -> feature -> logit",
               expected=torch.tensor([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [5.0, 4.0, 0.0]]))  # fmt: skip
    adjacency = _random_dag(gen, 15)
    activations = torch.rand(15, generator=gen) + 0.5
    activations[3] = 0.0
    yield Case((adjacency, activations), "a random 15-node graph, one activation 0")
    yield Case((_random_dag(gen, 40, 0.2), torch.rand(40, generator=gen) * 3 + 0.1), "a random 40-node graph")


def _oracle_effects(adjacency, activations):
    """Propagate each removal through the nodes in topological order."""
    n = len(adjacency)
    effects = torch.zeros(n, n, dtype=torch.float64)
    a = adjacency.double()
    for s in range(n):
        drop = torch.zeros(n, dtype=torch.float64)
        for t in range(n):
            upstream = sum(
                a[t, u] / activations[u].double() * drop[u] for u in range(t) if activations[u] != 0 and u != s
            )
            drop[t] = a[t, s] + upstream
        effects[:, s] = drop
    return effects.float()


def _effects_direct_only(adjacency, activations):
    return adjacency.clone()


def _effects_not_per_unit(adjacency, activations):
    identity = torch.eye(len(adjacency))
    return torch.linalg.solve(identity - adjacency, adjacency)


def _effects_jacobian(adjacency, activations):
    safe = torch.where(activations != 0, activations, 1.0)
    per_unit = torch.where(activations != 0, adjacency / safe, 0.0)
    identity = torch.eye(len(adjacency))
    return torch.linalg.inv(identity - per_unit) - identity


def _edit_cases(gen):
    yield Case(("tiny model", 0, "none"), "no edits (the clean logits)", expected=_setup(0, 0)["logits"])
    for args, label in [
        (("tiny model", 0, "ablate"), "every feature at layer 0, position 3 set to 0"),
        (("tiny model", 1, "patch"), "layer 1 position 5 and layer 0 position 2 set to other values"),
    ]:
        setup, edits = _edit_args(Case(args))
        model = _tiny_model()
        yield Case(
            args,
            label,
            expected=_oracle_replacement(model, setup["transcoders"], setup["tokens"], setup["errors"], edits),
        )


def _edit_args(case):
    _, prompt, kind = case.args
    setup = _setup(prompt, 0)
    gen = torch.Generator().manual_seed(prompt)
    edits = {}
    if kind == "ablate":
        edits = {(0, 3): torch.zeros(24)}
    elif kind == "patch":
        edits = {(1, 5): torch.rand(24, generator=gen) * 2, (0, 2): torch.rand(24, generator=gen)}
    return setup, edits


def _run_edits(impl, case):
    setup, edits = _edit_args(case)
    with torch.no_grad():
        return impl(_tiny_model(), setup["transcoders"], setup["tokens"], setup["errors"], edits)


def _edits_error_recomputed(model, transcoders, tokens, errors, edits):
    """Errors measured in the edited run itself (the MLP's output minus the edited transcoder's)."""
    stored = {}
    hooks = []
    for tc in transcoders:
        hooks.append((tc.hook_in, lambda act, hook, layer=tc.layer: stored.__setitem__(layer, act)))

        def replace(act, hook, tc=tc):
            acts = tc.encode(stored[tc.layer])
            edited = acts.clone()
            for (layer, position), new in edits.items():
                if layer == tc.layer:
                    edited[:, position] = new
            return tc.decode(edited) + (act - tc.decode(acts))

        hooks.append((tc.hook_out, replace))
    return model.run_with_hooks(tokens[None], fwd_hooks=hooks)[0]


def _edits_downstream_frozen(model, transcoders, tokens, errors, edits):
    """Every unedited feature held at its clean activation."""
    _, cache = model.run_with_cache(tokens[None])
    hooks = []
    for tc in transcoders:

        def replace(act, hook, tc=tc):
            acts = tc.encode(cache[tc.hook_in]).clone()
            for (layer, position), new in edits.items():
                if layer == tc.layer:
                    acts[:, position] = new
            return tc.decode(acts) + errors[tc.layer]

        hooks.append((tc.hook_out, replace))
    return model.run_with_hooks(tokens[None], fwd_hooks=hooks)[0]


def _edits_every_position(model, transcoders, tokens, errors, edits):
    every = {(layer, p): new for (layer, _), new in edits.items() for p in range(len(tokens))}
    return ref.run_with_feature_edits(model, transcoders, tokens, errors, every)


def _edits_without_errors(model, transcoders, tokens, errors, edits):
    return ref.run_with_feature_edits(model, transcoders, tokens, torch.zeros_like(errors), edits)


# ----------------------------------------------------------------------------- findings, on gpt2-mini

PROMPT, ANSWER, OTHER_CITY_ANSWER = (
    "Mary travelled from Paris to Rome. Rome is in",
    " Italy",
    " France",
)  # the notebook's


@functools.lru_cache(maxsize=1)
def _zoo_graph() -> dict:
    """gpt2-mini's attribution graph for the notebook's prompt, built with the reference as the notebook does:
    features at position 0 left out (their MLP output goes to the error node), the logit difference as target."""
    from zoo import load_model
    from zoo.transcoders import load_transcoders

    model, transcoders = load_model("gpt2-mini", device="cpu"), load_transcoders("gpt2-mini")
    n_layers = model.cfg.n_layers
    tokens = model.to_tokens(PROMPT)[0]
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens[None])
        found = [ref.features_and_error(tc, cache[tc.hook_in][0], cache[tc.hook_out][0]) for tc in transcoders]
        acts = torch.stack([a for a, _ in found])
        acts[:, 0] = 0.0
        mlp_outs = torch.stack([cache[tc.hook_out][0] for tc in transcoders])
        errors = mlp_outs - torch.stack([tc.decode(a) for tc, a in zip(transcoders, acts)])
        features = acts.nonzero()
        reads = [(transcoders[l].hook_in, p, transcoders[l].W_enc[:, k]) for l, p, k in features.tolist()]
        answer, other = model.to_single_token(ANSWER), model.to_single_token(OTHER_CITY_ANSWER)
        reads.append(ref.logit_read(model, answer, other, -1))
        mlp_grads, embed_grads = ref.linearised_gradients(model, tokens, cache, reads)
        W_dec = torch.stack([tc.W_dec for tc in transcoders])
        embeddings = cache["blocks.0.hook_resid_pre"][0]
        rows = ref.attribution_rows(features, acts, W_dec, errors, embeddings, mlp_grads, embed_grads)
    n_features, n_pos = len(features), len(tokens)
    n_nodes = n_features + n_layers * n_pos + n_pos + 1
    adjacency = torch.zeros(n_nodes, n_nodes)
    adjacency[:n_features, : rows.shape[1]] = rows[:n_features]
    adjacency[-1, : rows.shape[1]] = rows[-1]
    logit_influence = ref.indirect_influence(adjacency)[-1]
    node_pos = torch.cat(
        [features[:, 1], torch.arange(n_pos).repeat(n_layers), torch.arange(n_pos), torch.tensor([n_pos - 1])]
    )
    by_position = torch.zeros(n_pos).index_add_(0, node_pos, logit_influence)
    direct_by_layer = torch.zeros(n_layers).index_add_(0, features[:, 0], adjacency[-1, :n_features])
    error_share = logit_influence[n_features : n_features + n_layers * n_pos].sum().item()
    return dict(str_tokens=model.to_str_tokens(PROMPT), by_position=by_position, direct_by_layer=direct_by_layer,
                error_share=error_share, n_layers=n_layers)  # fmt: skip


def _grade_answer_position(answer, truth) -> str | None:
    # No numbers in these messages: the self-tests forbid the truth's digits anywhere in them.
    graph = _zoo_graph()
    n_pos = len(graph["str_tokens"])
    if isinstance(answer, bool) or not isinstance(answer, int):
        return f"expected a position (an int), got {describe(answer)}."
    if answer < 0:
        return "count positions from the start (the BOS token is position zero), as str_tokens does, not from the end."
    if answer >= n_pos:
        return "that is past the end of the prompt."
    if answer == n_pos - 1:
        return "the question leaves out the last position (where the answer is written); which earlier one?"
    if answer == truth:
        return None
    by_position = graph["by_position"]
    how_much = "less than half" if by_position[answer] < 0.5 * by_position[truth] else "less"
    return (f"the nodes at {graph['str_tokens'][answer]!r} carry {how_much} of the logit's influence than those at "
            "another earlier position.")  # fmt: skip


def _grade_top_layer(answer, truth) -> str | None:
    graph = _zoo_graph()
    if isinstance(answer, bool) or not isinstance(answer, int):
        return f"expected a layer index (an int), got {describe(answer)}."
    if not 0 <= answer < graph["n_layers"]:
        return "gpt2-mini has four layers, counted from zero."
    if answer == truth:
        return None
    if graph["direct_by_layer"][answer] < 0:
        return "that layer's features add up to a negative direct attribution: together they push against the answer."
    return "that layer's features add up to less direct attribution to the logit difference than another layer's."


check = Checker("1.4.2", [
    Exercise(
        ref.features_and_error, _features_cases,
        hint="The features are the transcoder's encoding of the MLP's input; the error is the MLP's output minus "
             "the transcoder's whole output, decoder bias included, so that the two add up to the MLP's output.",
        wrong={"the error with its sign reversed (transcoder minus MLP)": _features_error_reversed,
               "the error without the decoder bias": _features_error_without_bias,
               "pre-activations, not features (no ReLU)": _features_pre_relu},
    ),
    Exercise(
        ref.run_replacement, _replacement_cases, run=_run_replacement,
        hint="Two hooks per transcoder: one on its hook_in that keeps the MLP's input of this run, one on its "
             "hook_out that returns the transcoder's output on that input (plus the layer's error term, if given).",
        wrong={"features computed from the clean run's MLP inputs, not this run's":
                   lambda m, t, x, e: _replacement_with_hooks(m, t, x, e, clean_inputs=True),
               "only the last layer's MLP replaced": lambda m, t, x, e: _replacement_with_hooks(m, t, x, e, last_only=True),
               "the error terms ignored": lambda m, t, x, e: _replacement_with_hooks(m, t, x, e, use_errors=False)},
    ),  # fmt: skip
    Exercise(
        ref.freeze_hooks, _freeze_cases, run=_run_freeze,
        hint="Every cached activation whose name ends in hook_pattern or hook_scale gets a hook that returns the "
             "cached value (detached, expanded to the batch of the run) in place of the live one.",
        wrong={"only the attention patterns frozen": _freeze_only(("hook_pattern",)),
               "only the LayerNorm scales frozen": _freeze_only(("hook_scale",)),
               "the normalised activations frozen, not the scales": _freeze_only(("hook_pattern", "hook_normalized"))},
    ),  # fmt: skip
    Exercise(
        ref.linearised_gradients, _gradient_cases, run=_run_gradients, oracle=_oracle_gradients,
        hint="Add a zero tensor that requires gradients to each write (one row per read), replace each MLP's output "
             "by its cached value plus that tensor, freeze patterns and scales, read each row's target, and "
             "backpropagate their sum once (with gradients enabled).",
        wrong={"nothing frozen (gradients through the patterns and the LayerNorm scales)":
                   lambda m, t, c, r: _gradients_with(m, t, c, r, freeze=("no hook has this name",)),
               "only the patterns frozen": lambda m, t, c, r: _gradients_with(m, t, c, r, freeze=("hook_pattern",)),
               "gradients through the MLPs as well": lambda m, t, c, r: _gradients_with(m, t, c, r, cut_mlps=False)},
    ),  # fmt: skip
    Exercise(
        ref.logit_read, _logit_read_cases, run=_run_logit_read, oracle=_oracle_logit_read,
        hint="The logits are ln_final's output times W_U plus constants, and ln_final's output is the normalised "
             "residual times its weight plus its bias: which vector, dotted with the normalised residual, is left?",
        wrong={"the unembedding column without ln_final's weight":
                   lambda m, t, o, p: ("ln_final.hook_normalized", p, m.W_U[:, t] - (0 if o is None else m.W_U[:, o])),
               "the other token's logit minus this one's":
                   lambda m, t, o, p: ref.logit_read(m, o, t, p) if o is not None else ref.logit_read(m, t, None, p),
               "read at the last residual stream, not the normalised one":
                   lambda m, t, o, p: (f"blocks.{m.cfg.n_layers - 1}.hook_resid_post", p, ref.logit_read(m, t, o, p)[2])},
    ),  # fmt: skip
    Exercise(
        ref.attribution_rows, _attribution_cases, oracle=_oracle_attribution,
        hint="A feature's attribution is its activation times the gradient at its layer and position dotted with "
             "its decoder row; an error node's is its error dotted with the gradient; an embedding's likewise. "
             "Sources in the order: features, errors (layer by layer), embeddings.",
        wrong={"features not scaled by their activation": _attribution_unscaled,
               "error nodes in (position, layer) order": _attribution_errors_position_major,
               "embeddings before the features": _attribution_embeddings_first},
    ),
    Exercise(
        ref.constant_terms, _constant_cases, run=_run_constant, oracle=_oracle_constant,
        hint="Run the linearised model (patterns and scales frozen) with the embeddings replaced by zeros and each "
             "MLP's output by its decoder bias alone, and read each target.",
        wrong={"MLP outputs zeroed, decoder biases too": lambda m, t, c, b, r: _constant_with(m, t, c, b, r, mlp=0.0),
               "the embeddings kept": lambda m, t, c, b, r: _constant_with(
                   m, t, c, b, r, embed=c["blocks.0.hook_resid_pre"]),
               "patterns and scales not frozen": lambda m, t, c, b, r: _constant_with(m, t, c, b, r, freeze=False)},
    ),  # fmt: skip
    Exercise(
        ref.indirect_influence, _influence_cases, oracle=_oracle_influence, atol=1e-4,
        hint="Take absolute values, divide each row by its sum (rows of zeros stay zero), and sum the powers of that "
             "matrix from the first: (I - W)^-1 - I.",
        wrong={"signed weights, not absolute": _influence_signed, "direct edges only": _influence_direct_only,
               "the identity included (paths of length 0)": _influence_with_identity,
               "columns normalised, not rows": _influence_columns_normalised},
    ),
    Exercise(
        ref.prune_nodes, _prune_nodes_cases,
        hint="Sort the scores in decreasing order (stably), take the cumulative share of the total, and keep every "
             "node up to and including the one where the share reaches the threshold; then add always_keep.",
        wrong={"the node that crosses the threshold dropped": _prune_nodes_crossing_dropped,
               "nodes taken in index order, not by score": _prune_nodes_index_order,
               "always_keep forgotten": _prune_nodes_forgets_always_keep,
               "nodes above a share of the best score": _prune_nodes_share_of_max},
    ),
    Exercise(
        ref.prune_edges, _prune_edges_cases,
        hint="Zero the edges that touch a pruned node before normalising each row; weight each row by its target's "
             "score; keep edges in decreasing order of score until the threshold is reached (that edge included).",
        wrong={"rows normalised over every source, pruned ones included": _prune_edges_over_all_sources,
               "edges not weighted by their target's score": _prune_edges_unscored,
               "raw |weights|, not normalised rows": _prune_edges_raw_weights},
    ),
    Exercise(
        ref.ablation_effects, _effects_cases, oracle=_oracle_effects, atol=1e-3, rtol=1e-3,
        hint="A node's drop changes a downstream feature by edge / activation per unit; the total drops satisfy "
             "drop = A[:, s] + J @ drop, one linear solve for every source at once.",
        wrong={"direct effects only": _effects_direct_only,
               "edges not divided by their source's activation": _effects_not_per_unit,
               "per-unit effects (the Jacobian), not drops": _effects_jacobian},
    ),
    Exercise(
        ref.run_with_feature_edits, _edit_cases, run=_run_edits,
        hint="As run_replacement with the clean errors, but after encoding, overwrite the features at each edited "
             "(layer, position) before decoding; later layers must encode their own (changed) inputs.",
        wrong={"errors recomputed in the edited run (they cancel the edit)": _edits_error_recomputed,
               "later features held at their clean values": _edits_downstream_frozen,
               "the edit written at every position": _edits_every_position,
               "the error terms left out": _edits_without_errors},
    ),
    Finding(
        "answer_position", truth=lambda: int(_zoo_graph()["by_position"][:-1].argmax()), grade=_grade_answer_position,
        hint="Sum logit_influence over the nodes at each position (index_add_ by node_pos), leave out the last "
             "position, and take the argmax.",
        wrong={"the first Rome": 6, "Paris": 4, "the last position": 10, "counted from the end": -3,
               "a token, not a position": " Rome"},
    ),
    Finding(
        "top_writing_layer", truth=lambda: int(_zoo_graph()["direct_by_layer"].argmax()), grade=_grade_top_layer,
        hint="Sum the logit's row of the adjacency matrix over the feature nodes of each layer and take the argmax.",
        wrong={"the last layer, nearest the logit": 3, "layer 1": 1, "layer 2": 2,
               "counted from one (the last layer is the fourth)": 4},
    ),
    Finding(
        "error_share", truth=lambda: _zoo_graph()["error_share"],
        grade=number_within(0.02, "share of the logit's influence that ends at error nodes"),
        hint="Sum logit_influence over the error nodes (the ERRORS slice); the error and embedding shares sum to 1.",
        # The shipped transcoders give an error share of 0.35, so the embeddings' share is 0.65.
        wrong={"the embeddings' share": 0.65, "none": 0.0, "all": 1.0, "a percentage": 35.0},
    ),
])  # fmt: skip
