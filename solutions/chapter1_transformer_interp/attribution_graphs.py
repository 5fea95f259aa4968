"""Reference solutions for 1.4.2 Attribution graphs with transcoders (after Ameisen et al. 2025, *Circuit
Tracing*, and Lindsey et al. 2025, *On the Biology of a Large Language Model*).

Transcoder features and error terms, the replacement model, a model linearised by freezing its attention
patterns and LayerNorm scales, gradients of chosen read-outs with respect to every residual-stream write,
attributions from features, error nodes and embeddings, the constant terms that complete them, indirect
influence, node and edge pruning, ablation effects predicted by the graph, and runs with edited features.
Importing this module has no side effects.

The functions use only a transcoder's ``W_dec``, ``b_dec``, ``encode``, ``decode``, ``hook_in``,
``hook_out`` and ``layer``, so the checks run them on small seeded stand-ins with that interface.
"""

from collections.abc import Callable

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens import ActivationCache, HookedTransformer
from transformer_lens.hook_points import HookPoint

from zoo.transcoders import Transcoder

Read = tuple[str, int, Float[Tensor, " d"]]  # (hook name, position, vector): act[hook][position] @ vector


def features_and_error(
    transcoder: Transcoder, mlp_in: Float[Tensor, "pos d_model"], mlp_out: Float[Tensor, "pos d_model"]
) -> tuple[Float[Tensor, "pos d_tc"], Float[Tensor, "pos d_model"]]:
    """The transcoder's feature activations on the MLP's input, and the error term: what the MLP wrote
    minus what the transcoder writes (its decoder bias included), so that decode(features) + error is
    exactly the MLP's output."""
    acts = transcoder.encode(mlp_in)
    return acts, mlp_out - transcoder.decode(acts)


def run_replacement(
    model: HookedTransformer,
    transcoders: list[Transcoder],
    tokens: Int[Tensor, " pos"],
    errors: Float[Tensor, "layer pos d_model"] | None,
) -> Float[Tensor, "pos d_vocab"]:
    """The logits of the replacement model: every MLP's output replaced by its transcoder's output on the
    MLP input of this run (features computed from the replacement's own residual stream), plus
    errors[layer] when errors is given (errors=None: the transcoders alone)."""
    mlp_inputs: dict[int, Tensor] = {}

    def store_input(act: Tensor, hook: HookPoint, layer: int) -> None:
        mlp_inputs[layer] = act

    def replace_output(act: Tensor, hook: HookPoint, transcoder: Transcoder) -> Tensor:
        written = transcoder.decode(transcoder.encode(mlp_inputs[transcoder.layer]))
        return written if errors is None else written + errors[transcoder.layer]

    hooks = []
    for transcoder in transcoders:
        hooks.append((transcoder.hook_in, lambda act, hook, layer=transcoder.layer: store_input(act, hook, layer)))
        hooks.append((transcoder.hook_out, lambda act, hook, tc=transcoder: replace_output(act, hook, tc)))
    return model.run_with_hooks(tokens[None], fwd_hooks=hooks)[0]


def freeze_hooks(cache: ActivationCache) -> list[tuple[str, Callable]]:
    """Forward hooks that replace every attention pattern (hook_pattern) and every LayerNorm scale
    (hook_scale) with its value in `cache` (a run on one prompt), broadcast over the batch of the run
    they are used in. With them the model is linear in its residual-stream writes, apart from the MLPs."""

    def frozen(value: Tensor) -> Callable:
        return lambda act, hook: value.detach().expand(act.shape)

    return [(name, frozen(value)) for name, value in cache.items() if name.endswith(("hook_pattern", "hook_scale"))]


def linearised_gradients(
    model: HookedTransformer, tokens: Int[Tensor, " pos"], cache: ActivationCache, reads: list[Read]
) -> tuple[Float[Tensor, "target layer pos d_model"], Float[Tensor, "target pos d_model"]]:
    """For each read (hook name, position, vector), the gradient of act[hook][position] @ vector with respect
    to every MLP's output (hook_mlp_out) at every position and to the embeddings (blocks.0.hook_resid_pre),
    in the model linearised around `cache` (patterns and LayerNorm scales frozen) with every MLP output held
    at its cached value, so that no gradient flows through an MLP. One batched backward pass: row i of the
    batch computes read i."""
    n_reads, n_layers = len(reads), model.cfg.n_layers
    with torch.enable_grad():
        mlp_writes = torch.zeros(n_reads, n_layers, len(tokens), model.cfg.d_model, requires_grad=True)
        embed_write = torch.zeros(n_reads, len(tokens), model.cfg.d_model, requires_grad=True)
        read_acts: dict[str, Tensor] = {}

        def store(act: Tensor, hook: HookPoint) -> None:
            read_acts[hook.name] = act

        hooks = freeze_hooks(cache)
        hooks.append(("blocks.0.hook_resid_pre", lambda act, hook: cache["blocks.0.hook_resid_pre"] + embed_write))
        for layer in range(n_layers):
            name = f"blocks.{layer}.hook_mlp_out"
            hooks.append((name, lambda act, hook, name=name, layer=layer: cache[name] + mlp_writes[:, layer]))
        hooks += [(name, store) for name in {name for name, _, _ in reads}]
        model.run_with_hooks(tokens.expand(n_reads, -1), fwd_hooks=hooks, return_type=None)
        targets = torch.stack([read_acts[name][i, pos] @ vector for i, (name, pos, vector) in enumerate(reads)])
        targets.sum().backward()
    return mlp_writes.grad, embed_write.grad


def logit_read(model: HookedTransformer, token: int, other: int | None, position: int) -> Read:
    """The read whose value is the logit of `token` at `position` (minus `other`'s logit when other is given),
    up to terms that do not depend on the residual stream: a vector read at ln_final.hook_normalized."""
    direction = model.W_U[:, token] if other is None else model.W_U[:, token] - model.W_U[:, other]
    return ("ln_final.hook_normalized", position, model.ln_final.w * direction)


def attribution_rows(
    features: Int[Tensor, "feature 3"],
    feature_acts: Float[Tensor, "layer pos d_tc"],
    W_dec: Float[Tensor, "layer d_tc d_model"],
    errors: Float[Tensor, "layer pos d_model"],
    embeddings: Float[Tensor, "pos d_model"],
    mlp_grads: Float[Tensor, "target layer pos d_model"],
    embed_grads: Float[Tensor, "target pos d_model"],
) -> Float[Tensor, "target source"]:
    """Direct attributions to each read from every source node: each feature in `features` (rows of
    layer, position, index; its activation times the gradient at its layer and position dotted with its
    decoder row), then every error node in (layer, position) order (error dotted with the gradient), then
    every position's embedding (embedding dotted with the embedding gradient)."""
    layers, positions, indices = features.unbind(-1)
    at_features = (mlp_grads[:, layers, positions] * W_dec[layers, indices]).sum(-1)
    from_features = at_features * feature_acts[layers, positions, indices]
    from_errors = torch.einsum("tlpd,lpd->tlp", mlp_grads, errors).flatten(1)
    from_embeddings = torch.einsum("tpd,pd->tp", embed_grads, embeddings)
    return torch.cat([from_features, from_errors, from_embeddings], dim=1)


def constant_terms(
    model: HookedTransformer,
    tokens: Int[Tensor, " pos"],
    cache: ActivationCache,
    b_dec: Float[Tensor, "layer d_model"],
    reads: list[Read],
) -> Float[Tensor, " target"]:
    """What each read is in the linearised model when every source node is removed: embeddings zero and
    each MLP's output only its transcoder's decoder bias. The part of each read that no node explains
    (the biases of attention, LayerNorms and decoders)."""
    read_acts: dict[str, Tensor] = {}

    def store(act: Tensor, hook: HookPoint) -> None:
        read_acts[hook.name] = act

    hooks = freeze_hooks(cache)
    hooks.append(("blocks.0.hook_resid_pre", lambda act, hook: torch.zeros_like(act)))
    for layer in range(model.cfg.n_layers):
        hooks.append((f"blocks.{layer}.hook_mlp_out", lambda act, hook, layer=layer: b_dec[layer].expand(act.shape)))
    hooks += [(name, store) for name in {name for name, _, _ in reads}]
    model.run_with_hooks(tokens[None], fwd_hooks=hooks, return_type=None)
    return torch.stack([read_acts[name][0, pos] @ vector for name, pos, vector in reads])


def indirect_influence(adjacency: Float[Tensor, "node node"]) -> Float[Tensor, "node node"]:
    """Entry [t, s]: the summed influence of s on t over every path of length at least 1, where each edge
    weighs |adjacency[t, s]| divided by the sum of |adjacency[t, :]| (a row of zeros stays zero). The
    graph has no cycles, so the sum of the powers of that matrix is finite: (I - W)^-1 - I."""
    weights = adjacency.abs()
    weights = weights / weights.sum(-1, keepdim=True).clamp(min=1e-30)
    identity = torch.eye(len(adjacency), dtype=adjacency.dtype)
    return torch.linalg.inv(identity - weights) - identity


def prune_nodes(
    scores: Float[Tensor, " node"], threshold: float, always_keep: Bool[Tensor, " node"]
) -> Bool[Tensor, " node"]:
    """The nodes to keep: the fewest highest-scoring nodes whose scores sum to at least `threshold` of the
    total (the node that crosses the threshold is kept; ties in score keep the earlier node first), plus
    every node in always_keep."""
    order = scores.argsort(descending=True, stable=True)
    cumulative = scores[order].cumsum(0) / scores.sum()
    n_kept = int((cumulative < threshold).sum()) + 1
    keep = always_keep.clone()
    keep[order[:n_kept]] = True
    return keep


def prune_edges(
    adjacency: Float[Tensor, "node node"],
    keep_nodes: Bool[Tensor, " node"],
    node_scores: Float[Tensor, " node"],
    threshold: float,
) -> Bool[Tensor, "node node"]:
    """The edges to keep among the kept nodes. An edge t <- s scores |adjacency[t, s]| / (the sum of |row t|
    over kept sources) times node_scores[t]; keep the fewest highest-scoring edges whose scores sum to at
    least `threshold` of the total (ties keep the earlier edge in row-major order first)."""
    between = keep_nodes[:, None] & keep_nodes[None, :]
    weights = torch.where(between, adjacency.abs(), 0.0)
    weights = weights / weights.sum(-1, keepdim=True).clamp(min=1e-30)
    edge_scores = (weights * node_scores[:, None]).flatten()
    order = edge_scores.argsort(descending=True, stable=True)
    cumulative = edge_scores[order].cumsum(0) / edge_scores.sum()
    n_kept = int((cumulative < threshold).sum()) + 1
    keep = torch.zeros_like(edge_scores, dtype=torch.bool)
    keep[order[:n_kept]] = True
    return keep.reshape(adjacency.shape) & between


def ablation_effects(
    adjacency: Float[Tensor, "node node"], activations: Float[Tensor, " node"]
) -> Float[Tensor, "node node"]:
    """Entry [t, s]: how much node t's value drops when source s is removed, predicted by the graph with
    every feature linear while it stays active. A node's loss of input passes on to a feature downstream
    in proportion to the edge per unit of activation, adjacency[u, v] / activations[v] (0 where the
    activation is 0): the direct drops A[:, s], propagated through (I - J)^-1."""
    safe = torch.where(activations != 0, activations, 1.0)
    per_unit = torch.where(activations != 0, adjacency / safe, 0.0)
    identity = torch.eye(len(adjacency), dtype=adjacency.dtype)
    return torch.linalg.solve(identity - per_unit, adjacency)


def run_with_feature_edits(
    model: HookedTransformer,
    transcoders: list[Transcoder],
    tokens: Int[Tensor, " pos"],
    errors: Float[Tensor, "layer pos d_model"],
    edits: dict[tuple[int, int], Float[Tensor, " d_tc"]],
) -> Float[Tensor, "pos d_vocab"]:
    """The replacement model's logits (each MLP replaced by its transcoder plus errors[layer], the error
    terms of the clean run) with the feature activations at each (layer, position) in `edits` replaced by
    the given vector. Every other feature is recomputed from this run's residual stream, so an edit's
    effects flow on through attention, LayerNorm and later features."""
    mlp_inputs: dict[int, Tensor] = {}

    def store_input(act: Tensor, hook: HookPoint, layer: int) -> None:
        mlp_inputs[layer] = act

    def replace_output(act: Tensor, hook: HookPoint, transcoder: Transcoder) -> Tensor:
        acts = transcoder.encode(mlp_inputs[transcoder.layer]).clone()
        for (layer, position), new in edits.items():
            if layer == transcoder.layer:
                acts[:, position] = new
        return transcoder.decode(acts) + errors[transcoder.layer]

    hooks = []
    for transcoder in transcoders:
        hooks.append((transcoder.hook_in, lambda act, hook, layer=transcoder.layer: store_input(act, hook, layer)))
        hooks.append((transcoder.hook_out, lambda act, hook, tc=transcoder: replace_output(act, hook, tc)))
    return model.run_with_hooks(tokens[None], fwd_hooks=hooks)[0]
