"""Checks for 1.1 Transformer from scratch.

Module exercises are run by `_run_module`: it builds the learner's module from a Config, gives it
either the zoo gpt2-mini's weights or seeded random weights (by TransformerLens parameter name),
and runs it. The oracles are TransformerLens' own components, so the reference is pinned to the
library the zoo model runs on.
"""

import functools
import math
import warnings

import torch
from torch import nn

from solutions.chapter1_transformer_interp import transformer_from_scratch as ref
from tests.harness import Case, Checker, Exercise, Mismatch

_SMALL = ref.Config(d_model=16, n_layers=2, n_heads=2, d_head=8, d_mlp=32, n_ctx=12, d_vocab=50)


@functools.lru_cache(maxsize=1)
def _zoo():
    """The zoo gpt2-mini, its state dict, story tokens [3, 24] and its activation cache on them."""
    from zoo import corpus, load_model

    model = load_model("gpt2-mini", device="cpu")
    docs = corpus.story_documents("validation", 3, 64)
    tokens = torch.stack([model.to_tokens(doc)[0, :24] for doc in docs])
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return model, state, tokens, {k: v.detach().clone() for k, v in cache.items()}


def _random_state(module_cls, cfg: ref.Config, gen: torch.Generator) -> dict:
    """Seeded random values for every parameter the reference module has (LayerNorm w near 1)."""
    state = {}
    for name, value in module_cls(cfg).state_dict().items():
        noise = torch.randn(value.shape, generator=gen)
        state[name] = 1.0 + 0.3 * noise if name.endswith(".w") or name == "w" else 0.5 * noise
    return state


def _run_module(impl, case: Case):
    """Build impl(cfg), load the weights named in case.init, run it on case.args."""
    cfg, state = case.init
    module = impl(cfg)
    own = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    wanted = {k: tuple(v.shape) for k, v in state.items() if "IGNORE" not in k and "mask" not in k}
    missing = {k: s for k, s in wanted.items() if own.get(k) != s}
    if missing:
        raise Mismatch(
            f"parameters differ from TransformerLens' names and shapes: expected {missing}, your module has {own}"
        )
    module.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
    device = case.args[0].device
    with torch.no_grad():
        return module.to(device)(*case.args)


def _zoo_prefix(state: dict, prefix: str) -> dict:
    return {
        k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix) and "mask" not in k and "IGNORE" not in k
    }


def _module_cases(module_cls, zoo_prefix: str, zoo_input, random_input):
    def cases(gen):
        _, state, tokens, cache = _zoo()
        yield Case(
            (zoo_input(tokens, cache),),
            f"zoo gpt2-mini weights ({zoo_prefix or 'whole model'}) on story text",
            init=(ref.Config.from_zoo("gpt2-mini"), _zoo_prefix(state, zoo_prefix)),
        )
        for batch, seq in [(2, 5), (1, 12)]:
            yield Case(
                (random_input(gen, batch, seq),),
                f"random weights, small config, batch {batch}, {seq} positions",
                init=(_SMALL, _random_state(module_cls, _SMALL, gen)),
            )

    return cases


def _resid(gen, batch, seq):
    return 2 * torch.randn(batch, seq, _SMALL.d_model, generator=gen) + 0.5


def _tokens(gen, batch, seq):
    return torch.randint(0, _SMALL.d_vocab, (batch, seq), generator=gen)


def _tl_config(cfg: ref.Config):
    from transformer_lens import HookedTransformerConfig

    return HookedTransformerConfig(
        n_layers=cfg.n_layers,
        d_model=cfg.d_model,
        n_ctx=cfg.n_ctx,
        d_head=cfg.d_head,
        n_heads=cfg.n_heads,
        d_mlp=cfg.d_mlp,
        d_vocab=cfg.d_vocab,
        act_fn="gelu_new",
        normalization_type="LN",
        eps=cfg.layer_norm_eps,
        device="cpu",
    )


def _tl_oracle(component: str, call=lambda module, x: module(x)):
    """A module class built on TransformerLens' own component of that name."""

    class Oracle(nn.Module):
        def __init__(self, cfg: ref.Config):
            super().__init__()
            import transformer_lens.components as components
            from transformer_lens import HookedTransformer

            tl_cfg = _tl_config(cfg)
            if component == "HookedTransformer":
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message="HookedTransformer is deprecated")
                    self.inner = HookedTransformer(tl_cfg)
            elif component == "TransformerBlock":
                self.inner = components.TransformerBlock(tl_cfg, 0)
            else:
                self.inner = getattr(components, component)(tl_cfg)

        def state_dict(self, *args, **kwargs):
            return self.inner.state_dict(*args, **kwargs)

        def load_state_dict(self, state, strict=True):
            return self.inner.load_state_dict(state, strict=False)

        def forward(self, x):
            return call(self.inner, x)

    Oracle.__name__ = f"TransformerLens{component}"
    return Oracle


# ----------------------------------------------------------------------------- wrong implementations


class _LayerNormUnbiasedVar(ref.LayerNorm):
    def forward(self, residual):
        centred = residual - residual.mean(-1, keepdim=True)
        return centred / (residual.var(-1, keepdim=True) + self.cfg.layer_norm_eps).sqrt() * self.w + self.b


class _LayerNormNoCentre(ref.LayerNorm):
    def forward(self, residual):
        scale = (residual.pow(2).mean(-1, keepdim=True) + self.cfg.layer_norm_eps).sqrt()
        return residual / scale * self.w + self.b


class _EmbedReversed(ref.Embed):
    def forward(self, tokens):
        return self.W_E[tokens.flip(-1)]


class _PosEmbedFromEnd(ref.PosEmbed):
    def forward(self, tokens):
        seq = tokens.shape[1]
        return self.W_pos[-seq:].expand(tokens.shape[0], -1, -1)


class _AttentionNoMask(ref.Attention):
    def forward(self, x):
        import einops

        q = einops.einsum(x, self.W_Q, "b p d, h d e -> b p h e") + self.b_Q
        k = einops.einsum(x, self.W_K, "b p d, h d e -> b p h e") + self.b_K
        v = einops.einsum(x, self.W_V, "b p d, h d e -> b p h e") + self.b_V
        pattern = (einops.einsum(q, k, "b q h e, b k h e -> b h q k") / math.sqrt(self.cfg.d_head)).softmax(-1)
        z = einops.einsum(pattern, v, "b h q k, b k h e -> b q h e")
        return einops.einsum(z, self.W_O, "b q h e, h e d -> b q d") + self.b_O


class _AttentionNoScale(ref.Attention):
    def forward(self, x):
        import einops

        q = einops.einsum(x, self.W_Q, "b p d, h d e -> b p h e") + self.b_Q
        k = einops.einsum(x, self.W_K, "b p d, h d e -> b p h e") + self.b_K
        v = einops.einsum(x, self.W_V, "b p d, h d e -> b p h e") + self.b_V
        scores = einops.einsum(q, k, "b q h e, b k h e -> b h q k")
        n = scores.shape[-1]
        scores = scores.masked_fill(torch.triu(torch.ones(n, n, dtype=torch.bool), 1), float("-inf"))
        z = einops.einsum(scores.softmax(-1), v, "b h q k, b k h e -> b q h e")
        return einops.einsum(z, self.W_O, "b q h e, h e d -> b q d") + self.b_O


class _MLPReLU(ref.MLP):
    def forward(self, x):
        return torch.relu(x @ self.W_in + self.b_in) @ self.W_out + self.b_out


class _MLPExactGelu(ref.MLP):
    def forward(self, x):
        return torch.nn.functional.gelu(x @ self.W_in + self.b_in) @ self.W_out + self.b_out


class _BlockPostNorm(ref.TransformerBlock):
    def forward(self, resid_pre):
        resid_mid = self.ln1(resid_pre + self.attn(resid_pre))
        return self.ln2(resid_mid + self.mlp(resid_mid))


class _BlockNoResidual(ref.TransformerBlock):
    def forward(self, resid_pre):
        return self.mlp(self.ln2(self.attn(self.ln1(resid_pre))))


class _UnembedNoBias(ref.Unembed):
    def forward(self, x):
        return x @ self.W_U


class _TransformerNoFinalLN(ref.DemoTransformer):
    def forward(self, tokens):
        residual = self.embed(tokens) + self.pos_embed(tokens)
        for block in self.blocks:
            residual = block(residual)
        return self.unembed(residual)


class _TransformerNoPos(ref.DemoTransformer):
    def forward(self, tokens):
        residual = self.embed(tokens)
        for block in self.blocks:
            residual = block(residual)
        return self.unembed(self.ln_final(residual))


def _loss_not_shifted(logits, tokens):
    return torch.nn.functional.cross_entropy(logits.flatten(0, 1), tokens.flatten())


def _loss_sum(logits, tokens):
    return torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten(), reduction="sum")


def _loss_oracle(logits, tokens):
    return torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten())


def _penalty_presence(logits, tokens, penalty):
    seen = torch.zeros_like(logits, dtype=torch.bool).scatter(1, tokens, True)
    return logits - penalty * seen.to(logits.dtype)


def _penalty_inplace(logits, tokens, penalty):
    for b in range(tokens.shape[0]):
        for t in tokens[b].tolist():
            logits[b, t] -= penalty
    return logits


def _top_k_off_by_one(logits, k):
    kth = logits.topk(k + 1, dim=-1).values[:, -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def _top_k_smallest(logits, k):
    kth = logits.topk(k, dim=-1, largest=False).values[:, -1:]
    return logits.masked_fill(logits > kth, float("-inf"))


def _top_p_excludes_crossing(logits, top_p):
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    keep_sorted = sorted_logits.softmax(-1).cumsum(-1) < top_p
    keep_sorted[:, 0] = True
    keep = torch.zeros_like(keep_sorted).scatter(1, order, keep_sorted)
    return logits.masked_fill(~keep, float("-inf"))


def _top_p_unsorted(logits, top_p):
    probs = logits.softmax(-1)
    keep = (probs.cumsum(-1) - probs) < top_p
    return logits.masked_fill(~keep, float("-inf"))


def _cached_no_offset(model, tokens, cache):
    """Positions restart at 0 for every call."""
    old = model.pos_embed.W_pos.data.clone()
    offset = 0 if cache is None else cache[0][0].shape[1]
    try:
        model.pos_embed.W_pos.data = torch.roll(old, offset, dims=0)
        return ref.cached_forward(model, tokens, cache)
    finally:
        model.pos_embed.W_pos.data = old


def _cached_forgets_cache(model, tokens, cache):
    """Never reads the cache: each chunk sees only itself."""
    logits, new = ref.cached_forward(model, tokens, None)
    return logits, new if cache is None else [
        (torch.cat([c[0], n[0]], 1), torch.cat([c[1], n[1]], 1)) for c, n in zip(cache, new)
    ]


# ----------------------------------------------------------------------------- cases


def _loss_cases(gen):
    # Uniform logits over 4 tokens: the loss is log 4 whatever the tokens are.
    yield Case(
        (torch.zeros(1, 3, 4), torch.tensor([[0, 1, 2]])),
        "uniform logits over 4 tokens",
        expected=torch.tensor(math.log(4)),
    )
    model, _, tokens, _ = _zoo()
    with torch.no_grad():
        yield Case((model(tokens), tokens), "the zoo gpt2-mini's logits on story text")
    yield Case((torch.randn(2, 6, 10, generator=gen), torch.randint(0, 10, (2, 6), generator=gen)), "random logits")


def _penalty_cases(gen):
    yield Case(
        (torch.zeros(1, 4), torch.tensor([[1, 3, 1]]), 0.5),
        "tokens 1, 3, 1 with penalty 0.5",
        expected=torch.tensor([[0.0, -1.0, 0.0, -0.5]]),
    )
    yield Case((torch.randn(3, 20, generator=gen), torch.randint(0, 20, (3, 15), generator=gen), 1.2), "random")
    yield Case((torch.randn(2, 8, generator=gen), torch.randint(0, 8, (2, 30), generator=gen), 0.1), "many repeats")


def _top_k_cases(gen):
    inf = float("-inf")
    yield Case(
        (torch.tensor([[1.0, 3.0, 2.0, 0.0]]), 2), "[1, 3, 2, 0], k=2", expected=torch.tensor([[inf, 3.0, 2.0, inf]])
    )
    yield Case((torch.randn(4, 30, generator=gen), 5), "random, k=5")
    yield Case((torch.randn(2, 10, generator=gen), 1), "random, k=1 (greedy)")
    yield Case((torch.randn(2, 10, generator=gen), 10), "random, k = vocabulary size")


def _top_p_cases(gen):
    inf = float("-inf")
    probs = torch.tensor([[0.1, 0.5, 0.3, 0.1]])
    # Sorted: 0.5, 0.3, 0.1, 0.1. Mass before each: 0, 0.5, 0.8, 0.9; with top_p 0.7 keep 0.5 and 0.3.
    yield Case(
        (probs.log(), 0.7),
        "probabilities [0.1, 0.5, 0.3, 0.1], top_p=0.7",
        expected=torch.tensor([[inf, math.log(0.5), math.log(0.3), inf]]),
    )
    yield Case(
        (probs.log(), 0.3),
        "same, top_p=0.3 (only the most likely)",
        expected=torch.tensor([[inf, math.log(0.5), inf, inf]]),
    )
    yield Case((3 * torch.randn(4, 30, generator=gen), 0.9), "random, top_p=0.9")
    yield Case((torch.randn(2, 10, generator=gen), 0.5), "random, top_p=0.5")


def _cache_cases(gen):
    _, state, tokens, _ = _zoo()
    yield Case(
        (tokens, (10, 1, 1, 12)),
        "zoo gpt2-mini on story text, fed in chunks of 10, 1, 1, 12 tokens",
        init=(ref.Config.from_zoo("gpt2-mini"), state),
    )
    small_state = _random_state(ref.DemoTransformer, _SMALL, gen)
    yield Case((_tokens(gen, 2, 12), (1,) * 12), "random small model, one token at a time", init=(_SMALL, small_state))
    yield Case((_tokens(gen, 3, 9), (4, 5)), "random small model, chunks of 4 and 5", init=(_SMALL, small_state))


def _gelu_cases(gen):
    # tanh(0) = 0: gelu_new(0) = 0; at x = 1: 0.5 (1 + tanh(sqrt(2/pi) * 1.044715)).
    yield Case(
        (torch.tensor([0.0, 1.0]),),
        "[0, 1]",
        expected=torch.tensor([0.0, 0.5 * (1 + math.tanh(math.sqrt(2 / math.pi) * 1.044715))]),
    )
    yield Case((3 * torch.randn(4, 5, generator=gen),), "random 4x5")
    yield Case((torch.linspace(-6, 6, 25),), "a grid from -6 to 6")


def _gelu_exact(x):
    return torch.nn.functional.gelu(x)


def _gelu_sign(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x - 0.044715 * x.pow(3))))


def _run_cached(impl, case: Case):
    """Feed the tokens chunk by chunk through impl, carrying its cache; return all logits."""
    tokens, chunks = case.args
    cfg, state = case.init
    model = ref.DemoTransformer(cfg)
    ref.load_zoo_weights(model, state)
    model = model.to(tokens.device)
    cache, logits, start = None, [], 0
    with torch.no_grad():
        for size in chunks:
            out, cache = impl(model, tokens[:, start : start + size], cache)
            logits.append(out)
            start += size
    return torch.cat(logits, dim=1)


def _uncached_oracle(model, tokens, cache):
    """No cache at all: the 'cache' is the token history, and the whole history is rerun."""
    history = tokens if cache is None else torch.cat([cache, tokens], dim=1)
    return model(history)[:, -tokens.shape[1] :], history


def _module_exercise(cls, prefix, zoo_input, random_input, hint, wrong, oracle, atol=1e-5):
    return Exercise(
        cls,
        _module_cases(cls, prefix, zoo_input, random_input),
        hint=hint,
        wrong=wrong,
        run=_run_module,
        oracle=oracle,
        atol=atol,
    )


check = Checker(
    "1.1",
    [
        _module_exercise(
            ref.LayerNorm,
            "blocks.1.ln1.",
            lambda t, c: c["blocks.1.hook_resid_pre"],
            _resid,
            "Subtract the mean over d_model, divide by sqrt(biased variance + eps), then * w + b.",
            {"unbiased variance (torch.var's default)": _LayerNormUnbiasedVar, "no centring": _LayerNormNoCentre},
            _tl_oracle("LayerNorm"),
        ),
        _module_exercise(
            ref.Embed,
            "embed.",
            lambda t, c: t,
            _tokens,
            "Index the rows of W_E (shape [d_vocab, d_model]) with the token ids.",
            {"reads the tokens back to front": _EmbedReversed},
            _tl_oracle("Embed"),
        ),
        _module_exercise(
            ref.PosEmbed,
            "pos_embed.",
            lambda t, c: t,
            _tokens,
            "Take the first seq_len rows of W_pos and repeat them for every sequence of the batch.",
            {"takes the last rows of W_pos": _PosEmbedFromEnd},
            _tl_oracle("PosEmbed"),
        ),
        _module_exercise(
            ref.Attention,
            "blocks.2.attn.",
            lambda t, c: c["blocks.2.ln1.hook_normalized"],
            _resid,
            "Scores q·k / sqrt(d_head); set scores of keys after the query to IGNORE (-inf) before the softmax; "
            "z = pattern @ v per head; out = sum over heads of z @ W_O, plus b_O.",
            {"no causal mask": _AttentionNoMask, "no 1/sqrt(d_head) scaling": _AttentionNoScale},
            _tl_oracle("Attention", lambda m, x: m(x, x, x)),
            atol=1e-4,
        ),
        _module_exercise(
            ref.MLP,
            "blocks.3.mlp.",
            lambda t, c: c["blocks.3.ln2.hook_normalized"],
            _resid,
            "x @ W_in + b_in, then GPT-2's tanh-approximate GELU (gelu_new), then @ W_out + b_out.",
            {"ReLU instead of GELU": _MLPReLU, "exact (erf) GELU instead of the tanh approximation": _MLPExactGelu},
            _tl_oracle("MLP"),
        ),
        _module_exercise(
            ref.TransformerBlock,
            "blocks.0.",
            lambda t, c: c["blocks.0.hook_resid_pre"],
            _resid,
            "Pre-norm: resid_mid = resid_pre + attn(ln1(resid_pre)); resid_post = resid_mid + mlp(ln2(resid_mid)).",
            {
                "post-norm (LayerNorm after the residual add)": _BlockPostNorm,
                "no residual connections": _BlockNoResidual,
            },
            _tl_oracle("TransformerBlock"),
            atol=1e-4,
        ),
        _module_exercise(
            ref.Unembed,
            "unembed.",
            lambda t, c: c["ln_final.hook_normalized"],
            _resid,
            "normalized_resid_final @ W_U + b_U.",
            {"no bias": _UnembedNoBias},
            _tl_oracle("Unembed"),
        ),
        _module_exercise(
            ref.DemoTransformer,
            "",
            lambda t, c: t,
            _tokens,
            "embed + pos_embed, each block in turn, ln_final, unembed. Name the submodules embed, pos_embed, "
            "blocks (an nn.ModuleList), ln_final and unembed so the zoo weights load.",
            {"no final LayerNorm": _TransformerNoFinalLN, "no positional embedding": _TransformerNoPos},
            _tl_oracle("HookedTransformer"),
            atol=1e-4,
        ),
        Exercise(
            ref.gelu_new,
            _gelu_cases,
            hint="0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x**3))).",
            wrong={"exact (erf) GELU": _gelu_exact, "minus sign on the cubic term": _gelu_sign},
            oracle=lambda x: torch.nn.functional.gelu(x, approximate="tanh"),
        ),
        Exercise(
            ref.next_token_loss,
            _loss_cases,
            hint="Predict token i+1 from position i: log_softmax(logits[:, :-1]), gather at tokens[:, 1:], mean, negate.",
            wrong={"not shifted by one": _loss_not_shifted, "sum instead of mean": _loss_sum},
            oracle=_loss_oracle,
        ),
        Exercise(
            ref.apply_frequency_penalty,
            _penalty_cases,
            hint="Count each token's occurrences per row (scatter_add or bincount) and subtract penalty * count.",
            wrong={
                "presence penalty (ignores repeats)": _penalty_presence,
                "modifies logits in place": _penalty_inplace,
            },
        ),
        Exercise(
            ref.top_k_logits,
            _top_k_cases,
            hint="logits.topk(k).values[:, -1:] is each row's k-th largest logit; mask what is below it.",
            wrong={"keeps k + 1": _top_k_off_by_one, "keeps the smallest k": _top_k_smallest},
        ),
        Exercise(
            ref.top_p_logits,
            _top_p_cases,
            hint="Sort descending, take the softmax and the cumulative sum; keep a token when the mass BEFORE it "
            "is below top_p (so the token that crosses top_p is kept); scatter the mask back to vocab order.",
            wrong={"drops the token that crosses top_p": _top_p_excludes_crossing, "forgets to sort": _top_p_unsorted},
        ),
        Exercise(
            ref.cached_forward,
            _cache_cases,
            hint="Positions of the new tokens start at the cache length; append new keys/values to the cached ones "
            "(dim 1) before attending; a query at position p may attend keys at positions <= p.",
            wrong={"positions restart at 0": _cached_no_offset, "ignores the cache": _cached_forgets_cache},
            run=_run_cached,
            oracle=_uncached_oracle,
            atol=1e-4,
        ),
    ],
)
