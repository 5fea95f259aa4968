"""Reference solutions for 1.4.1 Indirect object identification.

The logit-difference metric, the ABC corruption, direct logit attribution through the final LayerNorm,
activation patching (residual stream, layer outputs, each head's output, queries, keys, values and
patterns), path patching to the logits and between heads, attribution patching, and mean ablation of
everything outside a circuit. `one_shape_ioi_prompts` draws the section's prompts. Importing this module
has no side effects.
"""

import random
from collections import Counter
from collections.abc import Callable

import einops
import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import ActivationCache, HookedTransformer
from transformer_lens.hook_points import HookPoint

from zoo import corpus
from zoo.evaluate import parse_head

Metric = Callable[[Float[Tensor, "batch pos d_vocab"]], Float[Tensor, ""]]


def one_shape_ioi_prompts(model: HookedTransformer, n_prompts: int, seed: int = 0) -> corpus.IOIPrompts:
    """IOI prompts from the templates held out of training that all have the same number of tokens (the most
    common number), so that position p means the same word in every prompt and no padding is needed."""
    drawn = corpus.ioi_prompts(model.tokenizer, 4 * n_prompts, split="test", seed=seed)
    lengths = [len(model.to_str_tokens(prompt)) for prompt in drawn.prompts]
    common = Counter(lengths).most_common(1)[0][0]
    keep = [i for i, length in enumerate(lengths) if length == common][:n_prompts]
    assert len(keep) == n_prompts, f"only {len(keep)} prompts of {common} tokens among {len(lengths)}"
    return corpus.IOIPrompts(
        prompts=[drawn.prompts[i] for i in keep],
        correct_names=[drawn.correct_names[i] for i in keep],
        wrong_names=[drawn.wrong_names[i] for i in keep],
        correct_token_ids=drawn.correct_token_ids[keep],
        wrong_token_ids=drawn.wrong_token_ids[keep],
    )


def logit_diff(
    logits: Float[Tensor, "batch pos d_vocab"], io_ids: Int[Tensor, " batch"], s_ids: Int[Tensor, " batch"]
) -> Float[Tensor, " batch"]:
    """Each prompt's logit of its indirect object minus its logit of the subject, at the final position
    (with left padding, every prompt ends there)."""
    final = logits[:, -1]
    rows = torch.arange(len(final), device=final.device)
    return final[rows, io_ids] - final[rows, s_ids]


def abc_corrupt(prompts: list[str], s_names: list[str], seed: int = 0) -> list[str]:
    """Each prompt with the subject's second mention (the last occurrence of its s_name as a word) replaced by a
    name drawn at random from corpus.NAMES among those the prompt does not contain. Words are separated by
    single spaces; the same seed gives the same names."""
    rng = random.Random(seed)
    corrupted = []
    for prompt, subject in zip(prompts, s_names):
        words = prompt.split(" ")
        third = rng.choice([name for name in corpus.NAMES if name not in words])
        last = max(i for i, word in enumerate(words) if word == subject)
        corrupted.append(" ".join(words[:last] + [third] + words[last + 1 :]))
    return corrupted


def residual_stack_to_logit_diff(
    residual_stack: Float[Tensor, "component batch d_model"],
    cache: ActivationCache,
    logit_diff_directions: Float[Tensor, "batch d_model"],
) -> Float[Tensor, " component"]:
    """Each component's direct contribution to the logit difference, averaged over the batch: the components
    (read at the final position) are scaled as the final LayerNorm scales the final residual stream, then
    dotted with each prompt's W_U[:, IO] - W_U[:, S]."""
    scaled = cache.apply_ln_to_stack(residual_stack, layer=-1, pos_slice=-1)
    return einops.einsum(scaled, logit_diff_directions, "component batch d, batch d -> component") / len(
        logit_diff_directions
    )


def patching_metric(
    patched_logit_diff: Float[Tensor, "..."], clean_logit_diff: float, corrupted_logit_diff: float
) -> Float[Tensor, "..."]:
    """The patched logit difference rescaled so that the corrupted run's gives 0 and the clean run's gives 1."""
    return (patched_logit_diff - corrupted_logit_diff) / (clean_logit_diff - corrupted_logit_diff)


def patch_residual_by_position(
    model: HookedTransformer, corrupted_tokens: Int[Tensor, "batch pos"], clean_cache: ActivationCache, metric: Metric
) -> Float[Tensor, "layer pos"]:
    """Entry [layer, pos]: the metric of the corrupted run in which the residual stream entering block `layer`
    (resid_pre) at position `pos` is replaced by the clean run's, for every prompt at once."""
    n_pos = corrupted_tokens.shape[1]
    results = torch.zeros(model.cfg.n_layers, n_pos)
    for layer in range(model.cfg.n_layers):
        name = f"blocks.{layer}.hook_resid_pre"
        for position in range(n_pos):

            def patch(resid: Tensor, hook: HookPoint, position: int = position) -> Tensor:
                resid[:, position] = clean_cache[hook.name][:, position]
                return resid

            logits = model.run_with_hooks(corrupted_tokens, fwd_hooks=[(name, patch)])
            results[layer, position] = metric(logits).item()
    return results


def patch_layer_outputs(
    model: HookedTransformer, corrupted_tokens: Int[Tensor, "batch pos"], clean_cache: ActivationCache, metric: Metric
) -> Float[Tensor, "2 layer"]:
    """Row 0: for each layer, the metric of the corrupted run with that layer's attention output (attn_out)
    replaced by the clean run's at every position; row 1: the same for its MLP output (mlp_out)."""
    results = torch.zeros(2, model.cfg.n_layers)
    for row, kind in enumerate(["attn_out", "mlp_out"]):
        for layer in range(model.cfg.n_layers):
            name = f"blocks.{layer}.hook_{kind}"
            logits = model.run_with_hooks(
                corrupted_tokens, fwd_hooks=[(name, lambda out, hook: clean_cache[hook.name])]
            )
            results[row, layer] = metric(logits).item()
    return results


def patch_head_vectors(
    model: HookedTransformer,
    corrupted_tokens: Int[Tensor, "batch pos"],
    clean_cache: ActivationCache,
    metric: Metric,
    activation: str,
) -> Float[Tensor, "layer head"]:
    """Entry [layer, head]: the metric of the corrupted run with one head's activation replaced by the clean
    run's at every position. activation is "z", "q", "k", "v" (hooks blocks.L.attn.hook_<activation>, shaped
    batch pos head d_head) or "pattern" (batch head query key)."""
    head_axis = 1 if activation == "pattern" else 2
    results = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):

            def patch(values: Tensor, hook: HookPoint, head: int = head) -> Tensor:
                index = [slice(None)] * values.ndim
                index[head_axis] = head
                values[tuple(index)] = clean_cache[hook.name][tuple(index)]
                return values

            hook_name = f"blocks.{layer}.attn.hook_{activation}"
            results[layer, head] = metric(model.run_with_hooks(corrupted_tokens, fwd_hooks=[(hook_name, patch)])).item()
    return results


def path_patch_head_to_logits(
    model: HookedTransformer,
    clean_tokens: Int[Tensor, "batch pos"],
    clean_cache: ActivationCache,
    corrupted_cache: ActivationCache,
    metric: Metric,
) -> Float[Tensor, "layer head"]:
    """Entry [layer, head]: the metric of the clean run in which that head's output, only where the final
    LayerNorm and the unembedding read it, is its output on the corrupted prompts: every later component
    still reads the head's clean output."""
    final = f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"
    results = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    for layer in range(model.cfg.n_layers):
        z_change = corrupted_cache["z", layer] - clean_cache["z", layer]
        for head in range(model.cfg.n_heads):
            change = z_change[:, :, head] @ model.W_O[layer, head]  # what the head writes differently, [batch pos d]
            logits = model.run_with_hooks(clean_tokens, fwd_hooks=[(final, lambda r, hook, c=change: r + c)])
            results[layer, head] = metric(logits).item()
    return results


def path_patch_head_to_heads(
    model: HookedTransformer,
    clean_tokens: Int[Tensor, "batch pos"],
    clean_cache: ActivationCache,
    corrupted_cache: ActivationCache,
    sender: str,
    receivers: list[str],
    receiver_input: str,
    metric: Metric,
) -> Float[Tensor, ""]:
    """The metric after patching the path from the sender head to the receivers' receiver_input ("q", "k" or
    "v"), in two runs on the clean prompts. First: the sender's z is its corrupted one and every other head's z
    is frozen at its clean value (MLPs recompute), and the receivers' receiver_input is recorded. Second: only
    the receivers' receiver_input is replaced by the recorded one (the other heads of their layers keep theirs)."""
    sender_layer, sender_head = parse_head(sender)
    receiving = [parse_head(name) for name in receivers]
    receiver_hooks = {f"blocks.{layer}.attn.hook_{receiver_input}" for layer, _ in receiving}

    def freeze(z: Tensor, hook: HookPoint) -> Tensor:
        frozen = clean_cache[hook.name].clone()
        if hook.layer() == sender_layer:
            frozen[:, :, sender_head] = corrupted_cache[hook.name][:, :, sender_head]
        return frozen

    recorded = {}

    def record(values: Tensor, hook: HookPoint) -> None:
        recorded[hook.name] = values.clone()

    model.run_with_hooks(
        clean_tokens,
        fwd_hooks=[(lambda name: name.endswith("hook_z"), freeze)] + [(name, record) for name in receiver_hooks],
    )

    def patch(values: Tensor, hook: HookPoint) -> Tensor:
        for layer, head in receiving:
            if layer == hook.layer():
                values[:, :, head] = recorded[hook.name][:, :, head]
        return values

    return metric(model.run_with_hooks(clean_tokens, fwd_hooks=[(name, patch) for name in receiver_hooks]))


def attribution_patch_heads(
    model: HookedTransformer,
    clean_tokens: Int[Tensor, "batch pos"],
    corrupted_tokens: Int[Tensor, "batch pos"],
    metric: Metric,
) -> Float[Tensor, "layer head"]:
    """The linear estimate of how much patching each head's clean z into the corrupted run changes the metric,
    from one clean forward pass and one corrupted forward and backward pass: the sum over batch, positions and
    d_head of (clean z - corrupted z) times the gradient of the metric with respect to the corrupted z. Leaves
    no gradients on the model's parameters."""
    z_filter = lambda name: name.endswith("hook_z")  # noqa: E731
    _, clean_cache = model.run_with_cache(clean_tokens, names_filter=z_filter)
    corrupted_z = {}

    def keep(z: Tensor, hook: HookPoint) -> None:
        z.retain_grad()
        corrupted_z[hook.name] = z

    with torch.enable_grad():
        metric(model.run_with_hooks(corrupted_tokens, fwd_hooks=[(z_filter, keep)])).backward()
    model.zero_grad(set_to_none=True)
    return torch.stack([
        einops.einsum(
            clean_cache["z", layer] - corrupted_z[f"blocks.{layer}.attn.hook_z"].detach(),
            corrupted_z[f"blocks.{layer}.attn.hook_z"].grad,
            "batch pos head d_head, batch pos head d_head -> head",
        )
        for layer in range(model.cfg.n_layers)
    ])  # fmt: skip


def mean_ablate_outside_circuit(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    abc_tokens: Int[Tensor, "abc_batch pos"],
    circuit: set[str],
) -> Float[Tensor, "batch pos d_vocab"]:
    """Logits on tokens with every head outside the circuit (a set of names "L{layer}H{head}") mean-ablated:
    its z replaced, at each position, by its mean over the abc_tokens prompts at that position. MLPs, embeddings
    and the circuit's heads run as usual."""
    _, abc_cache = model.run_with_cache(abc_tokens, names_filter=lambda name: name.endswith("hook_z"))
    kept = [parse_head(name) for name in circuit]

    def ablate(z: Tensor, hook: HookPoint) -> Tensor:
        ablated = abc_cache[hook.name].mean(0).expand_as(z).clone()
        for layer, head in kept:
            if layer == hook.layer():
                ablated[:, :, head] = z[:, :, head]
        return ablated

    return model.run_with_hooks(tokens, fwd_hooks=[(lambda name: name.endswith("hook_z"), ablate)])
