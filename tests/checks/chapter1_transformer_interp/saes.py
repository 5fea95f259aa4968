"""Checks for 1.3.3 Sparse autoencoders with SAELens."""

from contextlib import contextmanager
from functools import lru_cache

import torch

from solutions.chapter1_transformer_interp import saes as ref
from tests.harness import Case, Checker, Exercise, Finding, Mismatch, compare, describe, number_within

SAMPLE_DOCUMENTS = 128  # test-split documents the notebook and the findings read latents on
STANDARD, TOPK = "gpt2-mini-truth-L2-standard", "gpt2-mini-truth-L2-topk"
FACT_CITIES = ["Paris", "Rome", "Madrid", "Tokyo", "Cairo", "Lima"]


# ----------------------------------------------------------------------------- models and SAEs, built once


@lru_cache(maxsize=1)
def _zoo():
    """gpt2-mini-truth as a HookedSAETransformer and the zoo's two SAEs (loaded once, on first use)."""
    from zoo.saes import load_sae, load_sae_transformer

    return load_sae_transformer("gpt2-mini-truth"), load_sae(STANDARD), load_sae(TOPK)


@lru_cache(maxsize=1)
def _tiny():
    """An untrained 2-layer model with the zoo tokenizer and a random TopK SAE on its layer-0 residual."""
    from sae_lens import TopKSAE, TopKSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    from zoo import build_model
    from zoo.tokenizer import load_tokenizer

    config = dict(n_layers=2, d_model=16, n_heads=2, d_head=8, d_mlp=32, n_ctx=32, d_vocab=len(load_tokenizer()),
                  act_fn="gelu_new", normalization_type="LN", seed=1)  # fmt: skip
    model = build_model(config, device="cpu").eval()
    torch.manual_seed(2)
    sae = TopKSAE(TopKSAEConfig(d_in=16, d_sae=48, k=6, metadata=SAEMetadata(hook_name="blocks.0.hook_resid_post")))
    with torch.no_grad():
        sae.b_enc.normal_(0, 0.1)
        sae.b_dec.normal_(0, 0.1)
    return model, sae


@contextmanager
def _one_thread():
    """Small SAEs train several times faster on one thread than on two that wait on each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _model_and_sae(name: str):
    if name == "untrained":
        return _tiny()
    model, standard, topk = _zoo()
    return model, standard if name == STANDARD else topk


@lru_cache(maxsize=4)
def _story_tokens(name: str, n_documents: int):
    """Test-split documents, as many tokens each as the model's context."""
    from zoo.evaluate import story_tokens

    return story_tokens(_model_and_sae(name)[0], "test", n_documents)


def _fact_metric(model):
    """Mean logit of each prompt's true country minus the mean logit of the other countries."""
    from zoo import corpus

    country_ids = torch.tensor([corpus.single_token_id(model.tokenizer, " " + c) for c in corpus.COUNTRIES])
    correct = torch.tensor([corpus.COUNTRIES.index(corpus.CITY_COUNTRY[c]) for c in FACT_CITIES])

    def metric(logits):
        country_logits = logits[:, -1, country_ids]
        true = country_logits.gather(-1, correct[:, None])[:, 0]
        return (true - (country_logits.sum(-1) - true) / (len(country_ids) - 1)).mean()

    return metric


def _fact_tokens(model):
    return model.to_tokens([f"{city} is in" for city in FACT_CITIES])


# ----------------------------------------------------------------------------- encoding by hand


def _encode_cases(gen, k=None):
    extra = (k,) if k else ()
    W = torch.tensor([[1.0, -1.0, 0.5], [2.0, 0.0, -1.0]])
    # x - b_dec = [1, 1]; pre-activations [3, -1, -0.5] + b_enc [0, -1, 1] = [3, -2, 0.5]. The two largest are 3
    # and 0.5; the two largest in magnitude 3 and -2.
    yield Case((torch.tensor([[2.0, 0.0]]), W, torch.tensor([0.0, -1.0, 1.0]), torch.tensor([1.0, -1.0]),
                *((2,) if k else ())), "x [2, 0], b_dec [1, -1], 2 inputs -> 3 latents" + (", k 2" if k else ""),
               expected=torch.tensor([[3.0, 0.0, 0.5]]))  # fmt: skip
    yield Case((torch.randn(5, 8, generator=gen), torch.randn(8, 20, generator=gen), torch.randn(20, generator=gen),
                torch.randn(8, generator=gen), *extra), "5 random inputs, d_in 8, d_sae 20")  # fmt: skip
    # A square encoder: a transposed W_enc still fits, and gives other numbers.
    yield Case((torch.randn(2, 3, 6, generator=gen), torch.randn(6, 6, generator=gen), torch.randn(6, generator=gen),
                torch.randn(6, generator=gen) * 3, *extra), "batch 2 x 3 positions, a square 6 x 6 encoder")  # fmt: skip
    if k is not None:
        # Most pre-activations negative: some of the k largest are negative and must become 0.
        yield Case((torch.randn(4, 5, generator=gen), torch.randn(5, 12, generator=gen),
                    torch.full((12,), -3.0), torch.zeros(5), k), "b_enc -3: most pre-activations are negative")  # fmt: skip
    model, sae = _tiny()
    x = torch.randn(6, 16, generator=gen)
    yield Case(
        (x, sae.W_enc.detach(), sae.b_enc.detach(), sae.b_dec.detach(), *extra), "a random SAELens TopKSAE's weights"
    )


def _oracle_standard(x, W_enc, b_enc, b_dec):
    from sae_lens import StandardSAE, StandardSAEConfig

    sae = StandardSAE(StandardSAEConfig(d_in=W_enc.shape[0], d_sae=W_enc.shape[1]))
    with torch.no_grad():
        sae.W_enc.copy_(W_enc), sae.b_enc.copy_(b_enc), sae.b_dec.copy_(b_dec)
        return sae.encode(x)


def _oracle_topk(x, W_enc, b_enc, b_dec, k):
    from sae_lens import TopKSAE, TopKSAEConfig

    sae = TopKSAE(TopKSAEConfig(d_in=W_enc.shape[0], d_sae=W_enc.shape[1], k=k))
    with torch.no_grad():
        sae.W_enc.copy_(W_enc), sae.b_enc.copy_(b_enc), sae.b_dec.copy_(b_dec)
        return sae.encode(x)


def _topk_by_magnitude(x, W_enc, b_enc, b_dec, k):
    pre = (x - b_dec) @ W_enc + b_enc
    top = pre.abs().topk(k, dim=-1).indices
    return torch.zeros_like(pre).scatter(-1, top, pre.gather(-1, top).relu())


def _topk_no_relu(x, W_enc, b_enc, b_dec, k):
    pre = (x - b_dec) @ W_enc + b_enc
    top = pre.topk(k, dim=-1)
    return torch.zeros_like(pre).scatter(-1, top.indices, top.values)


def _topk_one_too_many(x, W_enc, b_enc, b_dec, k):
    return ref.topk_encode(x, W_enc, b_enc, b_dec, k + 1)


def _topk_over_batch(x, W_enc, b_enc, b_dec, k):
    pre = ((x - b_dec) @ W_enc + b_enc).relu()
    threshold = pre.flatten().topk(k * pre.shape[:-1].numel()).values[-1]
    return pre * (pre >= threshold)


# ----------------------------------------------------------------------------- reconstruction


def _stats_cases(gen):
    # x rows [0, 0] and [2, 2]: mean [1, 1], variance 2 per row; errors [1, 0] and [0, 1]: mse 1.
    x = torch.tensor([[0.0, 0.0], [2.0, 2.0]])
    x_hat = torch.tensor([[1.0, 0.0], [2.0, 1.0]])
    acts = torch.tensor([[0.5, 0.0, 0.0], [1.0, 2.0, 0.0]])
    yield Case((x, x_hat, acts), "2 inputs, hand-computed", expected={"mse": 1.0, "explained_variance": 0.5, "l0": 1.5})
    x = torch.randn(50, 6, generator=gen) + 3.0  # far from the origin: an uncentred variance shows
    yield Case((x, x + 0.3 * torch.randn(50, 6, generator=gen), torch.randn(50, 30, generator=gen).relu()),
               "50 random inputs centred at 3, d_in 6, 30 latents")  # fmt: skip
    x = torch.randn(20, 4, generator=gen)
    yield Case((x, torch.zeros(20, 4), torch.zeros(20, 8)), "a reconstruction of zeros and no active latent")


def _stats_uncentred(x, x_hat, acts):
    stats = ref.reconstruction_stats(x, x_hat, acts)
    return stats | {"explained_variance": 1 - stats["mse"] / x.pow(2).sum(-1).mean().item()}


def _stats_mean_over_d_in(x, x_hat, acts):
    stats = ref.reconstruction_stats(x, x_hat, acts)
    return stats | {"mse": stats["mse"] / x.shape[-1]}


def _stats_l0_fraction(x, x_hat, acts):
    return ref.reconstruction_stats(x, x_hat, acts) | {"l0": (acts > 0).float().mean().item()}


def _stats_per_dimension(x, x_hat, acts):
    ratio = ((x - x_hat).pow(2).mean(0) / x.var(0, unbiased=False)).mean().item()
    return ref.reconstruction_stats(x, x_hat, acts) | {"explained_variance": 1 - ratio}


def _spliced_cases(gen):
    # Named, not passed: models are built once and looked up by name.
    yield Case(("untrained", 4), "an untrained 2-layer model and a random TopK SAE, 4 documents")
    yield Case((TOPK, 8), "gpt2-mini-truth and the zoo's TopK SAE, 8 test documents")
    yield Case((STANDARD, 8), "gpt2-mini-truth and the zoo's standard SAE, 8 test documents")


def _run_spliced(impl, case):
    model, sae = _model_and_sae(case.args[0])
    tokens = _story_tokens(case.args[0], case.args[1])
    with _one_thread(), torch.inference_mode():
        return impl(model, sae, tokens.clone())


def _oracle_spliced(model, sae, tokens):
    """SAELens's own splice (run_with_saes, BOS left alone), and zeroing by a mask."""
    from sae_lens import HookedSAETransformer

    if not isinstance(model, HookedSAETransformer):
        spliced_model = HookedSAETransformer(model.cfg, tokenizer=model.tokenizer)
        spliced_model.load_state_dict(model.state_dict())
        model = spliced_model.eval()
    clean = model(tokens, return_type="loss").item()
    spliced = model.run_with_saes(tokens, saes=[sae], exclude_special_tokens=True, return_type="loss").item()
    keep = (tokens == model.tokenizer.bos_token_id).float()[..., None]
    hook = (sae.cfg.metadata.hook_name, lambda activation, hook: activation * keep)
    zero = model.run_with_hooks(tokens, return_type="loss", fwd_hooks=[hook]).item()
    return {
        "clean": clean,
        "spliced": spliced,
        "zero_ablated": zero,
        "loss_recovered": (zero - spliced) / (zero - clean),
    }


def _spliced_with(model, sae, tokens, bos=True, error_term=False, ablation="zero", inverted=False):
    """A configurable splice, for the wrong implementations."""
    is_bos = (
        (tokens == model.tokenizer.bos_token_id)[..., None] if bos else torch.zeros_like(tokens, dtype=bool)[..., None]
    )

    def loss_with(replace):
        hook = lambda activation, hook: torch.where(is_bos, activation, replace(activation))  # noqa: E731
        return model.run_with_hooks(tokens, return_type="loss", fwd_hooks=[(sae.cfg.metadata.hook_name, hook)]).item()

    def reconstruct(activation):
        return sae(activation) + ((activation - sae(activation)) if error_term else 0)

    clean = model(tokens, return_type="loss").item()
    spliced = loss_with(reconstruct)
    if ablation == "zero":
        zero = loss_with(torch.zeros_like)
    else:
        zero = loss_with(lambda activation: activation[:, 1:].mean((0, 1)).expand_as(activation))
    recovered = (spliced - clean) / (zero - clean) if inverted else (zero - spliced) / (zero - clean)
    return {"clean": clean, "spliced": spliced, "zero_ablated": zero, "loss_recovered": recovered}


# ----------------------------------------------------------------------------- latents


def _density_cases(gen):
    acts = torch.tensor([[[0.0, 1.0, 0.0], [2.0, 0.5, 0.0]], [[0.0, 3.0, 0.0], [0.0, 0.0, 0.0]]])
    yield Case((acts,), "batch 2, 2 positions, 3 latents", expected=torch.tensor([0.25, 0.75, 0.0]))
    yield Case((torch.randn(100, 7, generator=gen).relu(),), "100 inputs (no position axis), 7 latents")
    yield Case((torch.randn(3, 9, 5, generator=gen).relu() * (torch.rand(3, 9, 5, generator=gen) < 0.3),),
               "batch 3, 9 positions, 5 sparse latents")  # fmt: skip


def _top_cases(gen):
    acts = torch.tensor([[9.0, 1.0, 5.0, 2.0, 8.0], [0.0, 7.0, 3.0, 6.0, 4.0]])
    # buffer 1 leaves positions 1-3: values 1, 5, 2 and 7, 3, 6.
    yield Case((acts, 3, 1), "2 sequences of 5, k 3, buffer 1", expected=torch.tensor([[1, 1], [1, 3], [0, 2]]))
    yield Case((acts, 2, 0), "2 sequences of 5, k 2, buffer 0", expected=torch.tensor([[0, 0], [0, 4]]))
    yield Case((torch.rand(6, 20, generator=gen), 5, 3), "6 random sequences of 20, k 5, buffer 3")
    yield Case((torch.rand(3, 12, generator=gen), 4, 2), "3 random sequences of 12 (fewer rows than k), buffer 2")


def _top_no_buffer(acts, k, buffer):
    return ref.top_activations(acts, k, 0)


def _top_left_buffer_only(acts, k, buffer):
    inner = acts[:, buffer:]
    flat = inner.flatten().topk(k).indices
    return torch.stack([flat // inner.shape[1], flat % inner.shape[1] + buffer], -1)


def _top_unshifted(acts, k, buffer):
    return ref.top_activations(acts, k, buffer) - torch.tensor([0, buffer])


def _top_position_first(acts, k, buffer):
    return ref.top_activations(acts, k, buffer).flip(-1)


def _top_smallest(acts, k, buffer):
    return ref.top_activations(-acts, k, buffer)


def _logit_cases(gen):
    W_dec = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    W_U = torch.tensor([[3.0, -1.0, 0.5, -4.0, 0.0], [1.0, 1.0, 1.0, 1.0, 1.0]])
    yield Case((W_dec, W_U, 0, 2), "latent 0: effects [3, -1, 0.5, -4, 0], k 2",
               expected=(torch.tensor([0, 2]), torch.tensor([3, 1])))  # fmt: skip
    yield Case((torch.randn(10, 6, generator=gen), torch.randn(6, 40, generator=gen), 7, 5), "random, latent 7, k 5")
    yield Case((torch.randn(4, 3, generator=gen), torch.randn(3, 12, generator=gen), 0, 3), "random, latent 0, k 3")


def _logits_by_magnitude(W_dec, W_U, latent, k):
    effects = W_dec[latent] @ W_U
    return effects.abs().topk(k).indices, (-effects).topk(k).indices


def _logits_bottom_weakest_first(W_dec, W_U, latent, k):
    top, bottom = ref.latent_logit_effects(W_dec, W_U, latent, k)
    return top, bottom.flip(0)


def _logits_values(W_dec, W_U, latent, k):
    effects = W_dec[latent] @ W_U
    return effects.topk(k).values, effects.topk(k, largest=False).values


# ----------------------------------------------------------------------------- ground truth


def _pr_cases(gen):
    acts = torch.tensor([[1.0, 0.0, 0.0], [2.0, 0.0, 1.0], [0.0, 0.0, 3.0], [0.0, 0.0, 0.0]])
    # latent 0 fires on inputs 0 and 1, latent 1 never, latent 2 on 1 and 2.
    yield Case((acts, torch.tensor([True, False, False, False])), "4 inputs, the concept on input 0 only",
               expected=(torch.tensor([0.5, 0.0, 0.0]), torch.tensor([1.0, 0.0, 0.0])))  # fmt: skip
    yield Case((acts, torch.tensor([True, True, True, False])), "4 inputs, the concept on inputs 0-2",
               expected=(torch.tensor([1.0, 0.0, 1.0]), torch.tensor([2 / 3, 0.0, 2 / 3])))  # fmt: skip
    acts = torch.randn(60, 12, generator=gen).relu() * (torch.rand(60, 12, generator=gen) < 0.4)
    yield Case((acts, torch.rand(60, generator=gen) < 0.3), "60 random inputs, 12 sparse latents")


def _pr_swapped(acts, labels):
    return tuple(reversed(ref.concept_precision_recall(acts, labels)))


def _pr_fires_at_zero(acts, labels):
    return ref.concept_precision_recall(acts + 1.0, labels)


def _pr_unguarded(acts, labels):
    fires = (acts > 0).float()
    both = (fires * labels[:, None]).sum(0)
    return both / fires.sum(0), both / labels.sum()


def _pr_recall_over_all(acts, labels):
    precision, _ = ref.concept_precision_recall(acts, labels)
    fires = (acts > 0).float()
    return precision, (fires * labels[:, None]).sum(0) / len(labels)


def _best_cases(gen):
    # latent 0: precision 1, recall 1/3 (F1 .5); latent 1 fires everywhere: precision 1/2, recall 1 (F1 .67);
    # latent 2 never fires; latent 3: precision 3/4, recall 1 (F1 6/7).
    acts = torch.zeros(6, 4)
    acts[0, 0] = 5.0
    acts[:, 1] = 1.0
    acts[:4, 3] = 2.0
    labels = torch.tensor([True, True, True, False, False, False])
    yield Case((acts, labels), "6 inputs: a precise latent, one that always fires, a dead one", expected=(3, 6 / 7))
    acts = torch.randn(80, 16, generator=gen).relu() * (torch.rand(80, 16, generator=gen) < 0.3)
    yield Case((acts, torch.rand(80, generator=gen) < 0.25), "80 random inputs, 16 sparse latents")
    # The concept's inputs are exactly where latent 5 fires, and latent 2 never fires (its F1 is 0, not nan).
    acts = torch.rand(40, 8, generator=gen) * (torch.rand(40, 8, generator=gen) < 0.5)
    acts[:, 2] = 0.0
    yield Case((acts, acts[:, 5] > 0), "40 inputs: latent 5 is the concept; latent 2 never fires")


def _best_by_precision(acts, labels):
    precision, recall = ref.concept_precision_recall(acts, labels)
    best = int(precision.argmax())
    return best, (2 * precision * recall / (precision + recall).clamp(min=1e-12))[best].item()


def _best_by_recall(acts, labels):
    precision, recall = ref.concept_precision_recall(acts, labels)
    best = int(recall.argmax())
    return best, (2 * precision * recall / (precision + recall).clamp(min=1e-12))[best].item()


def _best_by_mean_activation(acts, labels):
    gap = acts[labels].mean(0) - acts[~labels].mean(0)
    best = int(gap.argmax())
    precision, recall = ref.concept_precision_recall(acts, labels)
    return best, (2 * precision * recall / (precision + recall).clamp(min=1e-12))[best].item()


def _best_unguarded(acts, labels):
    precision, recall = ref.concept_precision_recall(acts, labels)
    f1 = 2 * precision * recall / (precision + recall)
    best = int(f1.argmax())
    return best, f1[best].item()


# ----------------------------------------------------------------------------- steering


def _hook_cases(gen):
    yield Case((torch.zeros(1, 2, 3), None, torch.tensor([1.0, 0.0, 2.0]), 0.5), "zeros + 0.5 x [1, 0, 2]",
               expected=torch.tensor([[[0.5, 0.0, 1.0], [0.5, 0.0, 1.0]]]))  # fmt: skip
    yield Case((torch.randn(2, 5, 8, generator=gen), None, 3 * torch.randn(8, generator=gen), -4.0),
               "random activations, a direction of norm ~8, scale -4")  # fmt: skip
    yield Case((torch.randn(3, 4, 6, generator=gen), None, torch.randn(6, generator=gen), 10.0), "scale 10")


def _run_hook(impl, case):
    """On copies: a hook may edit its activation in place, as long as it returns it."""
    activation, hook, direction, scale = case.args
    return impl(activation.clone(), hook, direction.clone(), scale)


def _hook_normalised(activation, hook, direction, scale):
    return activation + scale * direction / direction.norm()


def _hook_last_position(activation, hook, direction, scale):
    out = activation.clone()
    out[:, -1] += scale * direction
    return out


def _hook_multiplies(activation, hook, direction, scale):
    return activation * (1 + scale * direction)


STEER_PROMPTS = [" Mary walked to the", " The war lasted from", " John said that Paris is in Spain. That is",
                 " Anna lives in"]  # fmt: skip


def _steer_cases(gen):
    yield Case(("untrained", 0), "an untrained model, a random direction, prompts of different lengths")
    yield Case((STANDARD, 1), "gpt2-mini-truth, a random direction of norm 20, prompts of different lengths")


def _run_steer(impl, case):
    from zoo import corpus

    model, _ = _model_and_sae(case.args[0])
    generator = torch.Generator().manual_seed(case.args[1])
    direction = torch.randn(model.cfg.d_model, generator=generator)
    direction *= 20 / direction.norm()
    token_ids = torch.tensor([corpus.single_token_id(model.tokenizer, " " + c) for c in corpus.COUNTRIES])
    with _one_thread(), torch.inference_mode():
        return impl(model, list(STEER_PROMPTS), "blocks.0.hook_resid_post", direction, [0.0, 1.0, -0.5], token_ids)


def _steer_with(model, prompts, hook_name, direction, scales, token_ids, reduce="sum", last=False):
    """A configurable steering measurement, for the wrong implementations."""
    tokens = model.to_tokens(prompts, padding_side="left")
    results = []
    for scale in scales:
        if last:
            hook = lambda a, hook, s=scale: torch.cat([a[:, :-1], a[:, -1:] + s * direction], 1)  # noqa: E731
        else:
            hook = lambda a, hook, s=scale: a + s * direction  # noqa: E731
        probs = model.run_with_hooks(tokens, fwd_hooks=[(hook_name, hook)])[:, -1].softmax(-1)[:, token_ids]
        results.append((probs.sum(-1) if reduce == "sum" else probs.max(-1).values).mean())
    return torch.stack(results)


def _oracle_steer(model, prompts, hook_name, direction, scales, token_ids):
    """One prompt at a time, so no padding at all."""
    results = torch.zeros(len(scales))
    for prompt in prompts:
        tokens = model.to_tokens(prompt)
        for i, scale in enumerate(scales):
            hook = (hook_name, lambda a, hook, s=scale: a + s * direction)
            results[i] += model.run_with_hooks(tokens, fwd_hooks=[hook])[0, -1].softmax(-1)[token_ids].sum()
    return results / len(prompts)


def _steer_right_padded(model, prompts, hook_name, direction, scales, token_ids):
    tokens = model.to_tokens(prompts, padding_side="right")
    results = []
    for scale in scales:
        logits = model.run_with_hooks(tokens, fwd_hooks=[(hook_name, lambda a, hook, s=scale: a + s * direction)])
        results.append(logits[:, -1].softmax(-1)[:, token_ids].sum(-1).mean())
    return torch.stack(results)


# ----------------------------------------------------------------------------- ablation and attribution


def _effect_cases(gen):
    yield Case(("untrained", 3), "an untrained model, a random TopK SAE, fact prompts, the 3 latents most active "
               "after the BOS and the 3 most active at it")  # fmt: skip
    yield Case((STANDARD, 3), "gpt2-mini-truth, the zoo's standard SAE, fact prompts, the 3 latents most active after the "
               "BOS and the 3 most active at it")  # fmt: skip


def _effect_inputs(name, n_latents):
    """The model, SAE, prompts and metric, and latents active on the prompts (real effects, not zeros): the
    most active after the BOS, then the most active at the BOS (where nothing may be ablated)."""
    model, sae = _model_and_sae(name)
    tokens = _fact_tokens(model)
    with torch.inference_mode():
        _, cache = model.run_with_cache(tokens, names_filter=[sae.cfg.metadata.hook_name])
        acts = sae.encode(cache[sae.cfg.metadata.hook_name])
    latents = acts[:, 1:].sum((0, 1)).topk(n_latents).indices.tolist()
    latents += [latent for latent in acts[:, 0].sum(0).argsort(descending=True).tolist() if latent not in latents][
        :n_latents
    ]  # fmt: skip
    return model, sae, tokens, _fact_metric(model), latents


def _run_ablation(impl, case):
    model, sae, tokens, metric, latents = _effect_inputs(*case.args)
    with _one_thread(), torch.inference_mode():
        return impl(model, sae, tokens.clone(), metric, latents)


def _oracle_ablation(model, sae, tokens, metric, latents):
    """Ablation written with SAELens's splice: run_with_hooks_with_saes and a hook on the latents."""
    from sae_lens import HookedSAETransformer

    if not isinstance(model, HookedSAETransformer):
        spliced_model = HookedSAETransformer(model.cfg, tokenizer=model.tokenizer)
        spliced_model.load_state_dict(model.state_dict())
        model = spliced_model.eval()
    name = sae.cfg.metadata.hook_name + ".hook_sae_acts_post"
    sae.use_error_term = True
    try:
        clean = metric(model.run_with_saes(tokens, saes=[sae]))
        effects = []
        for latent in latents:
            keep = torch.ones(sae.cfg.d_sae)
            keep[latent] = 0.0

            def ablate(acts, hook, keep=keep):
                return torch.cat([acts[:, :1], acts[:, 1:] * keep], 1)

            effects.append(metric(model.run_with_hooks_with_saes(tokens, saes=[sae], fwd_hooks=[(name, ablate)])))
    finally:
        sae.use_error_term = False
    return torch.stack(effects) - clean


def _ablation_with(model, sae, tokens, metric, latents, error_term=True, positions=slice(1, None), relative=True):
    def splice(ablated):
        def hook(activation, hook):
            acts = sae.encode(activation)
            error = activation - sae.decode(acts) if error_term else 0
            if ablated is not None:
                acts = acts.clone()
                acts[:, positions, ablated] = 0.0
            return sae.decode(acts) + error

        return hook

    name = sae.cfg.metadata.hook_name
    clean = metric(model.run_with_hooks(tokens, fwd_hooks=[(name, splice(None))])) if relative else 0.0
    return torch.stack([metric(model.run_with_hooks(tokens, fwd_hooks=[(name, splice(l))])) for l in latents]) - clean


def _run_attribution(impl, case):
    model, sae, tokens, metric, _ = _effect_inputs(*case.args)
    with _one_thread():
        return impl(model, sae, tokens.clone(), metric)


def _oracle_attribution(model, sae, tokens, metric):
    """The same estimate from torch.autograd.grad on a latent tensor fed through a hook."""
    name = sae.cfg.metadata.hook_name
    with torch.enable_grad():
        _, cache = model.run_with_cache(tokens, names_filter=[name])
        x = cache[name]
        acts = sae.encode(x).detach().requires_grad_(True)
        error = (x - sae.decode(acts)).detach()
        value = metric(model.run_with_hooks(tokens, fwd_hooks=[(name, lambda a, hook: sae.decode(acts) + error)]))
        (grad,) = torch.autograd.grad(value, acts)
    return -(grad * acts.detach())[:, 1:].sum((0, 1))


def _attribution_with(model, sae, tokens, metric, times_activation=True, sign=-1, error_term=True, bos=False):
    saved = {}

    def splice(activation, hook):
        acts = sae.encode(activation)
        acts.retain_grad()
        saved["acts"] = acts
        return sae.decode(acts) + ((activation - sae.decode(acts)).detach() if error_term else 0)

    with torch.enable_grad():
        metric(model.run_with_hooks(tokens, fwd_hooks=[(sae.cfg.metadata.hook_name, splice)])).backward()
    acts = saved["acts"]
    estimate = sign * acts.grad * (acts if times_activation else 1)
    return (estimate if bos else estimate[:, 1:]).sum((0, 1)).detach()


# ----------------------------------------------------------------------------- training an SAE


def _module_cases(gen):
    yield Case((torch.randn(5, 8, generator=gen),), "ReLU latents, d_in 8, d_sae 24", init=(8, 24))
    yield Case((torch.randn(7, 6, generator=gen) * 2,), "TopK latents, k 3, d_in 6, d_sae 20", init=(6, 20, 3))
    yield Case((torch.randn(4, 10, generator=gen),), "TopK latents, k 1", init=(10, 16, 1))


def _module_extra(impl):
    torch.manual_seed(0)
    sae = impl(12, 40)
    names = {name for name, _ in sae.named_parameters()}
    assert names == {"W_enc", "b_enc", "W_dec", "b_dec"}, (
        f"parameters {sorted(names)}, expected W_enc b_enc W_dec b_dec"
    )
    norms = sae.W_dec.detach().norm(dim=-1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5), (
        f"decoder rows should start at unit norm; their norms range from {norms.min():.3f} to {norms.max():.3f}"
    )
    assert torch.allclose(sae.W_enc.detach(), sae.W_dec.detach().T), "W_enc should start as the transpose of W_dec"
    assert not sae.b_enc.detach().any() and not sae.b_dec.detach().any(), "both biases should start at zero"
    other = impl(12, 40)
    assert not torch.allclose(other.W_dec.detach(), sae.W_dec.detach()), "two SAEs got the same 'random' decoder"
    # Trained weights, biases included (the cases start from zero biases, which hide a missing b_dec).
    for k in (None, 4):
        sae, reference = impl(12, 40, k), ref.SparseAutoencoder(12, 40, k)
        with torch.no_grad():
            for parameter in reference.parameters():
                parameter.normal_(generator=torch.Generator().manual_seed(parameter.numel()))
        sae.load_state_dict(reference.state_dict())
        x = torch.randn(5, 12, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            try:
                compare(reference(x), sae(x), atol=1e-5, rtol=1e-4)
            except Mismatch as mismatch:
                raise AssertionError(f"with nonzero biases and k={k}: {mismatch}") from None


class _OracleAutoencoder(torch.nn.Module):
    """The same parameters, encoded and decoded by SAELens' own StandardSAE or TopKSAE."""

    def __init__(self, d_in, d_sae, k=None):
        super().__init__()
        self.W_dec = torch.nn.Parameter(torch.nn.functional.normalize(torch.randn(d_sae, d_in), dim=-1))
        self.W_enc = torch.nn.Parameter(self.W_dec.detach().T.clone())
        self.b_enc = torch.nn.Parameter(torch.zeros(d_sae))
        self.b_dec = torch.nn.Parameter(torch.zeros(d_in))
        self.k = k

    def forward(self, x):
        from sae_lens import StandardSAE, StandardSAEConfig, TopKSAE, TopKSAEConfig

        d_in, d_sae = self.W_enc.shape
        if self.k is None:
            sae = StandardSAE(StandardSAEConfig(d_in=d_in, d_sae=d_sae))
        else:
            sae = TopKSAE(TopKSAEConfig(d_in=d_in, d_sae=d_sae, k=self.k))
        sae.load_state_dict(self.state_dict())
        acts = sae.encode(x)
        return sae.decode(acts), acts


class _NoDecoderBias(ref.SparseAutoencoder):
    def forward(self, x):
        x_hat, acts = super().forward(x)
        return x_hat - self.b_dec, acts


class _ReluEverywhere(ref.SparseAutoencoder):
    def forward(self, x):
        acts = ref.standard_encode(x, self.W_enc, self.b_enc, self.b_dec)
        return acts @ self.W_dec + self.b_dec, acts


class _RandomEncoder(ref.SparseAutoencoder):
    def __init__(self, d_in, d_sae, k=None):
        super().__init__(d_in, d_sae, k)
        self.W_enc = torch.nn.Parameter(torch.randn(d_in, d_sae))


def _loss_cases(gen):
    x = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    x_hat = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    acts = torch.tensor([[1.0, 0.0, 3.0], [0.0, 0.0, 2.0]])
    # squared error 4 and 2 -> 3; L1 4 and 2 -> 3; 3 + 0.1 * 3.
    yield Case((x, x_hat, acts, 0.1), "2 inputs, hand-computed, l1 0.1", expected=torch.tensor(3.3))
    yield Case((torch.randn(16, 8, generator=gen), torch.randn(16, 8, generator=gen),
                torch.randn(16, 32, generator=gen).relu(), 0.5), "16 random inputs, l1 0.5")  # fmt: skip
    yield Case((torch.randn(4, 3, generator=gen), torch.randn(4, 3, generator=gen),
                torch.randn(4, 5, generator=gen).relu(), 0.0), "no sparsity penalty")  # fmt: skip


TOY_FEATURES, TOY_D_IN, TOY_P = 32, 16, 0.06


@lru_cache(maxsize=1)
def _toy_data():
    """Activations built from 32 planted unit directions in 16 dimensions, each active with probability
    0.06 at a magnitude in [1, 2]: a trained SAE should find the directions."""
    directions = torch.randn(TOY_FEATURES, TOY_D_IN, generator=torch.Generator().manual_seed(123))
    directions /= directions.norm(dim=-1, keepdim=True)

    def sample(n, seed):
        generator = torch.Generator().manual_seed(seed)
        on = torch.rand(n, TOY_FEATURES, generator=generator) < TOY_P
        return (on * (1 + torch.rand(n, TOY_FEATURES, generator=generator))) @ directions

    return sample(4096, 0), sample(2048, 1), directions


def _train_cases(gen):
    yield Case(({"d_sae": 64, "l1_coefficient": 0.5, "lr": 0.03},), "ReLU + L1 0.5, 64 latents, on planted features")
    yield Case(({"d_sae": 64, "k": 2, "lr": 0.01},), "TopK k 2, 64 latents, on planted features")


def _run_train(impl, case):
    train, test, directions = _toy_data()
    with _one_thread():
        sae = impl(train.clone(), steps=300, seed=0, **case.args[0])
    if not isinstance(sae, torch.nn.Module):
        return {"sae": sae}
    with torch.no_grad():
        x_hat, acts = sae(test)
        decoder = sae.W_dec / sae.W_dec.norm(dim=-1, keepdim=True)
        return ref.reconstruction_stats(test, x_hat, acts) | {
            "recovered": ((directions @ decoder.T).max(-1).values > 0.9).float().mean().item(),
            "decoder_norm_error": (sae.W_dec.norm(dim=-1) - 1).abs().max().item(),
        }


def _compare_training(expected, got):
    if "sae" in got:
        raise Mismatch(f"expected a trained SparseAutoencoder, got {describe(got['sae'])}")
    if got["decoder_norm_error"] > 1e-3:
        raise Mismatch(
            f"decoder rows should have unit norm after training; one is off by {got['decoder_norm_error']:.3g}"
        )
    if got["l0"] > 1.3 * expected["l0"] + 0.5:
        raise Mismatch(
            f"the trained SAE is not sparse enough: L0 {got['l0']:.2f}, the reference's {expected['l0']:.2f}"
        )
    if got["explained_variance"] < expected["explained_variance"] - 0.05:
        raise Mismatch(f"the trained SAE explains {got['explained_variance']:.1%} of the variance on held-out data, "
                       f"the reference {expected['explained_variance']:.1%}")  # fmt: skip
    if got["recovered"] < expected["recovered"] - 0.2:
        raise Mismatch(f"the trained SAE recovers {got['recovered']:.0%} of the planted directions (cosine > 0.9), "
                       f"the reference {expected['recovered']:.0%}")  # fmt: skip


def _oracle_train(activations, d_sae, k=None, l1_coefficient=0.0, steps=150, batch_size=256, lr=1e-2, seed=0):
    """Training written another way: unit decoder rows by F.normalize, the batch drawn as a permutation slice."""
    generator = torch.Generator().manual_seed(seed + 1)
    torch.manual_seed(seed + 1)
    sae = _OracleAutoencoder(activations.shape[1], d_sae, k)
    sae.b_dec.data = activations.mean(0).clone()
    optimizer = torch.optim.Adam(sae.parameters(), lr=lr)
    with torch.enable_grad():
        for _ in range(steps):
            batch = activations[torch.randperm(len(activations), generator=generator)[:batch_size]]
            acts = ref.standard_encode(batch, sae.W_enc, sae.b_enc, sae.b_dec) if k is None else ref.topk_encode(
                batch, sae.W_enc, sae.b_enc, sae.b_dec, k
            )  # fmt: skip
            error = (batch - acts @ sae.W_dec - sae.b_dec).pow(2).sum(-1)
            loss = (error + l1_coefficient * acts.sum(-1)).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            sae.W_dec.data = torch.nn.functional.normalize(sae.W_dec.data, dim=-1)
    return sae


def _train_without_renormalising(activations, d_sae, k=None, l1_coefficient=0.0, steps=150, batch_size=256, lr=1e-2,
                                 seed=0):  # fmt: skip
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    sae = ref.SparseAutoencoder(activations.shape[1], d_sae, k)
    with torch.no_grad():
        sae.b_dec.copy_(activations.mean(0))
    optimizer = torch.optim.Adam(sae.parameters(), lr=lr)
    with torch.enable_grad():
        for _ in range(steps):
            batch = activations[torch.randint(len(activations), (batch_size,), generator=generator)]
            x_hat, acts = sae(batch)
            optimizer.zero_grad()
            ref.sae_loss(batch, x_hat, acts, l1_coefficient).backward()
            optimizer.step()
    return sae


def _train_ignoring_l1(activations, d_sae, k=None, l1_coefficient=0.0, **kwargs):
    return ref.train_sae(activations, d_sae, k, 0.0, **kwargs)


def _train_without_zero_grad(activations, d_sae, k=None, l1_coefficient=0.0, steps=150, batch_size=256, lr=1e-2,
                             seed=0):  # fmt: skip
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    sae = ref.SparseAutoencoder(activations.shape[1], d_sae, k)
    optimizer = torch.optim.Adam(sae.parameters(), lr=lr)
    with torch.enable_grad():
        for _ in range(steps):
            batch = activations[torch.randint(len(activations), (batch_size,), generator=generator)]
            x_hat, acts = sae(batch)
            ref.sae_loss(batch, x_hat, acts, l1_coefficient).backward()
            optimizer.step()
            with torch.no_grad():
                sae.W_dec /= sae.W_dec.norm(dim=-1, keepdim=True)
    return sae


# ----------------------------------------------------------------------------- findings


@lru_cache(maxsize=1)
def _sample():
    """What the notebook reads latents on: the TopK SAE's activations on the residual stream of 128 test
    documents (BOS dropped), the tokens' concept labels, and the mask of verdict positions."""
    from zoo import corpus
    from zoo.concepts import CONCEPTS, concept_labels

    model, _, topk = _zoo()
    tokens = _story_tokens(TOPK, SAMPLE_DOCUMENTS)
    with torch.inference_mode():
        _, cache = model.run_with_cache(tokens, names_filter=[topk.cfg.metadata.hook_name])
        acts = topk.encode(cache[topk.cfg.metadata.hook_name][:, 1:].flatten(0, 1))
    labels = concept_labels(tokens[:, 1:], model.tokenizer).flatten(0, 1)
    claim_end = labels[:, CONCEPTS.index("true_claim")] | labels[:, CONCEPTS.index("false_claim")]
    verdict = claim_end & (tokens[:, 1:].flatten() == corpus.single_token_id(model.tokenizer, " is"))
    return acts, {concept: labels[:, i] for i, concept in enumerate(CONCEPTS)}, verdict


def _f1(fires, labels):
    """F1 of each column of `fires` (or of one column) against labels."""
    fires = fires if fires.dim() == 2 else fires[:, None]
    both = (fires & labels[:, None]).sum(0).float()
    return 2 * both / (fires.sum(0) + labels.sum()).clamp(min=1)


def _latent_index(answer, what):
    if isinstance(answer, torch.Tensor) and answer.numel() == 1:
        answer = answer.item()
    if not isinstance(answer, int) or isinstance(answer, bool):
        return None, f"expected {what} as an int, got {describe(answer)}."
    if not 0 <= answer < 1024:
        return None, f"{answer} is not a latent of an SAE with 1024 latents."
    return answer, None


def _country_truth():
    acts, labels, _ = _sample()
    return int(_f1(acts > 0, labels["country"]).argmax())


def _grade_country(answer, truth):
    latent, problem = _latent_index(answer, "a latent index")
    if problem:
        return problem
    acts, labels, _ = _sample()
    f1 = _f1(acts > 0, labels["country"])
    if f1[latent] >= f1.max() - 0.03:
        return None
    return f"latent {latent} detects countries with F1 {f1[latent]:.2f}; another latent does clearly better."


def _year_truth():
    """A greedy set of three: each step adds the latent that raises the union's F1 most."""
    acts, labels, _ = _sample()
    fires, chosen = acts > 0, []
    union = torch.zeros(len(fires), dtype=torch.bool)
    for _ in range(3):
        chosen.append(int(_f1(union[:, None] | fires, labels["year"]).argmax()))
        union |= fires[:, chosen[-1]]
    return set(chosen)


def _grade_years(answer, truth):
    if isinstance(answer, (str, bytes, int)) or not hasattr(answer, "__iter__"):
        return f"expected a set of latent indices, got {describe(answer)}."
    latents = []
    for item in answer:
        latent, problem = _latent_index(item, "each latent")
        if problem:
            return problem
        latents.append(latent)
    if not 1 <= len(set(latents)) <= 3:
        return f"the set has {len(set(latents))} latents; at most 3 are allowed."
    acts, labels, _ = _sample()
    f1 = _f1((acts[:, latents] > 0).any(-1), labels["year"]).item()
    return None if f1 >= 0.8 else f"together these latents detect years with F1 {f1:.2f}, under 0.8."


def _false_claim_truth():
    acts, labels, verdict = _sample()
    return _f1(acts[verdict] > 0, labels["false_claim"][verdict]).max().item()


@lru_cache(maxsize=1)
def _relu_l0_truth():
    """The notebook's frontier, retrained with the reference: the ReLU SAEs' (explained variance, L0),
    interpolated in log L0 at TopK k = 8's explained variance."""
    from zoo.evaluate import story_tokens

    model, sae, _ = _zoo()
    hook = sae.cfg.metadata.hook_name
    with torch.inference_mode():
        _, cache = model.run_with_cache(story_tokens(model, "train", 256), names_filter=[hook])
        train_x = cache[hook][:, 1:].flatten(0, 1)
        _, cache = model.run_with_cache(_story_tokens(STANDARD, SAMPLE_DOCUMENTS), names_filter=[hook])
        test_x = cache[hook][:, 1:].flatten(0, 1)
    scale = train_x.norm(dim=-1).mean() / train_x.shape[-1] ** 0.5
    train_x, test_x = train_x / scale, test_x / scale

    def point(k, l1_coefficient):
        with _one_thread(), torch.no_grad():
            return ref.reconstruction_stats(test_x, *ref.train_sae(train_x, 256, k, l1_coefficient)(test_x))

    target = point(8, 0.0)["explained_variance"]
    relu = sorted((p["explained_variance"], p["l0"]) for p in (point(None, c) for c in (0.5, 1.0, 2.0, 4.0)))
    (ev_low, l0_low), (ev_high, l0_high) = next((a, b) for a, b in zip(relu, relu[1:]) if a[0] <= target <= b[0])
    fraction = (target - ev_low) / (ev_high - ev_low)
    return float(torch.tensor(l0_low).log().lerp(torch.tensor(l0_high).log(), fraction).exp())


def _grade_relu_l0(answer, truth):
    if isinstance(answer, torch.Tensor) and answer.numel() == 1:
        answer = answer.item()
    if not isinstance(answer, (int, float)) or isinstance(answer, bool):
        return f"expected an L0 (a number), got {describe(answer)}."
    if abs(answer - truth) <= 0.25 * truth:
        return None
    return f"an L0 of {answer:.3g} is too {'high' if answer > truth else 'low'} (allowed: within 25%)."


check = Checker("1.3.3", [
    Exercise(
        ref.standard_encode, _encode_cases, oracle=_oracle_standard,
        hint="Subtract the decoder bias from the input first, then the encoder matrix and its bias, then a ReLU.",
        wrong={"forgets to subtract b_dec": lambda x, W, b, d: torch.relu(x @ W + b),
               "adds b_dec instead of subtracting it": lambda x, W, b, d: torch.relu((x + d) @ W + b),
               "no ReLU": lambda x, W, b, d: (x - d) @ W + b,
               "uses W_enc transposed": lambda x, W, b, d: torch.relu((x - d) @ W.T + b)},
    ),  # fmt: skip
    Exercise(
        ref.topk_encode, lambda gen: _encode_cases(gen, k=3), oracle=_oracle_topk,
        hint="Keep the k largest pre-activations of each input (not the largest in magnitude, not over the batch); "
             "they go through a ReLU too, and everything else is 0.",
        wrong={"keeps the k largest in magnitude": _topk_by_magnitude,
               "keeps negative values among the top k (no ReLU)": _topk_no_relu,
               "keeps k + 1 latents": _topk_one_too_many,
               "picks the top k x batch over the whole batch": _topk_over_batch},
    ),  # fmt: skip
    Exercise(
        ref.reconstruction_stats, _stats_cases,
        hint="The error is summed over d_in then averaged over inputs; the variance is measured from the inputs' "
             "mean, in the same units; L0 counts active latents per input.",
        wrong={"uses the uncentred second moment as the variance": _stats_uncentred,
               "averages the squared error over d_in instead of summing": _stats_mean_over_d_in,
               "gives L0 as the fraction of latents active": _stats_l0_fraction,
               "averages per-dimension explained variances": _stats_per_dimension},
    ),  # fmt: skip
    Exercise(
        ref.spliced_losses, _spliced_cases, run=_run_spliced, oracle=_oracle_spliced, atol=2e-4,
        hint="Replace the activation at the SAE's hook with sae(activation), or with zeros, except at BOS positions; "
             "loss recovered is how much of the gap between zeroing and the clean model the reconstruction closes.",
        wrong={"splices at the BOS too": lambda m, s, t: _spliced_with(m, s, t, bos=False),
               "adds the SAE's error term back (the spliced model is the clean one)":
                   lambda m, s, t: _spliced_with(m, s, t, error_term=True),
               "mean-ablates instead of zeroing": lambda m, s, t: _spliced_with(m, s, t, ablation="mean"),
               "gives the fraction of loss lost, not recovered": lambda m, s, t: _spliced_with(m, s, t, inverted=True)},
    ),  # fmt: skip
    Exercise(
        ref.latent_density, _density_cases,
        hint="A latent is active where it is strictly positive; average over every input, whatever the leading axes.",
        wrong={"counts zeros as active (>= 0)": lambda a: (a >= 0).flatten(0, -2).float().mean(0),
               "counts instead of a fraction": lambda a: (a > 0).flatten(0, -2).float().sum(0),
               "mean activation instead of how often it fires": lambda a: a.flatten(0, -2).mean(0),
               "averages over the first axis only": lambda a: (a > 0).float().mean(0)},
    ),  # fmt: skip
    Exercise(
        ref.top_activations, _top_cases,
        hint="Drop `buffer` positions at each end before ranking, and add the offset back to the positions you "
             "return; rows are (batch, position), largest activation first.",
        wrong={"ignores the buffer": _top_no_buffer, "drops positions at the start only": _top_left_buffer_only,
               "returns positions within the trimmed window (offset not added back)": _top_unshifted,
               "returns (position, batch)": _top_position_first, "returns the smallest": _top_smallest},
    ),  # fmt: skip
    Exercise(
        ref.latent_logit_effects, _logit_cases,
        hint="The latent's row of W_dec times W_U gives one number per token; take the k highest and the k lowest, "
             "each list starting from the most extreme.",
        wrong={"ranks the top list by magnitude": _logits_by_magnitude,
               "orders the bottom list from the weakest": _logits_bottom_weakest_first,
               "returns the effects, not the token ids": _logits_values},
    ),  # fmt: skip
    Exercise(
        ref.concept_precision_recall, _pr_cases,
        hint="Precision divides by how often the latent fires, recall by how often the concept occurs; a latent that "
             "never fires must give 0, not nan.",
        wrong={"precision and recall swapped": _pr_swapped, "counts an activation of 0 as firing": _pr_fires_at_zero,
               "divides by zero for a latent that never fires (nan)": _pr_unguarded,
               "recall divided by every input, not the concept's": _pr_recall_over_all},
    ),  # fmt: skip
    Exercise(
        ref.best_latent_for_concept, _best_cases,
        hint="Rank latents by F1, the harmonic mean of precision and recall, guarding the latents where both are 0.",
        wrong={"ranks by precision": _best_by_precision, "ranks by recall": _best_by_recall,
               "ranks by mean activation on the concept minus elsewhere": _best_by_mean_activation,
               "nan F1 for a latent that never fires": _best_unguarded},
    ),  # fmt: skip
    Exercise(
        ref.steering_hook, _hook_cases, run=_run_hook,
        hint="Add the direction, times the scale, at every position of every sequence; do not rescale the direction.",
        wrong={"normalises the direction": _hook_normalised, "steers the last position only": _hook_last_position,
               "multiplies instead of adding": _hook_multiplies},
    ),  # fmt: skip
    Exercise(
        ref.steered_probability, _steer_cases, run=_run_steer, oracle=_oracle_steer, atol=1e-5,
        hint="Left-pad the prompts so each ends at the last position; for each scale, sum the next-token "
             "probabilities over token_ids and average over prompts.",
        wrong={"pads on the right and reads the last position": _steer_right_padded,
               "takes the largest probability instead of the sum": lambda *a: _steer_with(*a, reduce="max"),
               "steers the last position only": lambda *a: _steer_with(*a, last=True)},
    ),  # fmt: skip
    Exercise(
        ref.latent_ablation_effects, _effect_cases, run=_run_ablation, oracle=_oracle_ablation, atol=1e-4,
        hint="Splice encode -> zero one latent after the BOS -> decode, plus the error term computed before the "
             "ablation, and subtract the metric of the same splice with nothing ablated.",
        wrong={"splices without the error term": lambda *a: _ablation_with(*a, error_term=False),
               "ablates at the BOS too": lambda *a: _ablation_with(*a, positions=slice(None)),
               "ablates the last position only": lambda *a: _ablation_with(*a, positions=slice(-1, None)),
               "returns the ablated metric, not its change": lambda *a: _ablation_with(*a, relative=False)},
    ),  # fmt: skip
    Exercise(
        ref.latent_attributions, _effect_cases, run=_run_attribution, oracle=_oracle_attribution, atol=1e-4,
        hint="Keep the latent activations' gradient (retain_grad on the tensor the decoder reads); the estimate of "
             "zeroing a latent is its gradient times the change, 0 - activation, summed after the BOS.",
        wrong={"the gradient alone, not times the activation": lambda *a: _attribution_with(*a, times_activation=False),
               "gradient x activation with the sign of adding, not removing": lambda *a: _attribution_with(*a, sign=1),
               "splices without the error term": lambda *a: _attribution_with(*a, error_term=False),
               "sums over the BOS too": lambda *a: _attribution_with(*a, bos=True)},
    ),  # fmt: skip
    Exercise(
        ref.SparseAutoencoder, _module_cases, extra=_module_extra, oracle=_OracleAutoencoder,
        hint="Reuse your two encoders (ReLU when k is None, TopK otherwise); decode with W_dec and add b_dec. "
             "Initialise W_dec's rows to unit norm and W_enc as its transpose.",
        wrong={"decodes without b_dec": _NoDecoderBias, "uses a ReLU even when k is set": _ReluEverywhere,
               "draws the encoder independently of the decoder": _RandomEncoder},
    ),  # fmt: skip
    Exercise(
        ref.sae_loss, _loss_cases,
        hint="Sum the squared error and the absolute activations over their feature axes, then average each over the "
             "batch; only the L1 term is scaled.",
        wrong={"averages the squared error over d_in": lambda x, h, a, c: (x - h).pow(2).mean() + c * a.abs().sum(-1).mean(),
               "sums the L1 term over the batch": lambda x, h, a, c: (x - h).pow(2).sum(-1).mean() + c * a.abs().sum(),
               "penalises squared activations (L2)": lambda x, h, a, c: (x - h).pow(2).sum(-1).mean() + c * a.pow(2).sum(-1).mean(),
               "leaves out the sparsity penalty": lambda x, h, a, c: (x - h).pow(2).sum(-1).mean()},
    ),  # fmt: skip
    Exercise(
        ref.train_sae, _train_cases, run=_run_train, compare=_compare_training, oracle=_oracle_train,
        hint="Each step: a random batch, sae_loss with l1_coefficient, zero_grad, backward, step, then rescale W_dec's "
             "rows to unit norm (without tracking gradients).",
        wrong={"never renormalises the decoder": _train_without_renormalising,
               "ignores l1_coefficient": _train_ignoring_l1,
               "never zeroes the gradients": _train_without_zero_grad},
    ),  # fmt: skip
    Finding(
        "country_latent", truth=_country_truth, grade=_grade_country,
        hint="Score every TopK latent against the country labels of the sample with F1 and take the best; the "
             "latent most active on one country token need not be it.",
        wrong={"the latent that fires on most country tokens (best recall)": 986, "the standard SAE's best latent": 193,
               "not a latent index": "country", "out of range": 1024},
    ),  # fmt: skip
    Finding(
        "year_latents", truth=_year_truth, grade=_grade_years,
        hint="Grow the set greedily: at each step add the latent whose union with the set has the best F1 for "
             "years; the first half and the second half of a year are different latents.",
        wrong={"the best single latent": {875}, "the two best latents by their own F1 (both first halves)": {875, 363},
               "four latents": {875, 819, 550, 59}, "a set holding a string": {875, "819"}, "a single int": 875},
    ),  # fmt: skip
    Finding(
        "false_claim_f1", truth=_false_claim_truth, grade=number_within(0.02, "F1 at the verdict position"),
        hint="Score only the verdict positions: tokens ' is' that carry true_claim or false_claim. Over every token "
             "the F1 is capped by the labelling, not by the SAE.",
        wrong={"scored over every token": 0.419, "the precision, not the F1": 0.898,
               "the true-claim latent's F1": 0.817, "a latent index instead of an F1": 965},
    ),  # fmt: skip
    Finding(
        "relu_l0_to_match_topk", truth=_relu_l0_truth, grade=_grade_relu_l0,
        hint="Train the ReLU SAEs of L1_GRID and TopK with k 8 as in the frontier; find the two ReLU points whose "
             "explained variances bracket TopK's and interpolate their L0 in log space.",
        wrong={"TopK's own L0": 8.0, "the explained variance instead of an L0": 0.96,
               "the L0 of the sparser bracketing ReLU point": 15.0, "a list of L0s": [15.0, 33.6]},
    ),  # fmt: skip
])  # fmt: skip
