"""Checks for 1.2 Intro to mechanistic interpretability."""

from functools import lru_cache, partial

import torch

from solutions.chapter1_transformer_interp import intro_to_mech_interp as ref
from tests.harness import Case, Checker, Exercise

HALF_LEN = 6


@lru_cache(maxsize=1)
def _zoo():
    """attn-only-2l, a seeded repeated-token batch and its attention patterns (loaded once, on first use)."""
    from zoo import corpus, load_model
    from zoo.evaluate import word_token_ids

    model = load_model("attn-only-2l", device="cpu")
    tokens = corpus.repeated_random_tokens(4, HALF_LEN, word_token_ids(model), model.tokenizer.bos_token_id, seed=3)
    with torch.inference_mode():
        _, cache = model.run_with_cache(tokens, names_filter=lambda name: name.endswith("hook_pattern"))
    patterns = [cache["pattern", layer].clone() for layer in range(model.cfg.n_layers)]
    return model, tokens, patterns


def _random_pattern(gen, batch, heads, seq):
    scores = torch.randn(batch, heads, seq, seq, generator=gen)
    mask = torch.ones(seq, seq, dtype=torch.bool).tril()
    return scores.masked_fill(~mask, float("-inf")).softmax(-1)


# A 1-sequence, 1-head pattern over 3 positions, rows [1, 0, 0], [0.25, 0.75, 0], [0.5, 0.3, 0.2].
_TINY = torch.tensor([[[[1.0, 0.0, 0.0], [0.25, 0.75, 0.0], [0.5, 0.3, 0.2]]]])


def _detector_cases(expected):
    def cases(gen):
        yield Case((_TINY,), "one head, rows [1,0,0], [.25,.75,0], [.5,.3,.2]", expected=expected)
        yield Case((_random_pattern(gen, 3, 4, 7),), "random causal patterns, batch 3, 4 heads, 7 positions")
        yield Case((_random_pattern(gen, 1, 2, 12),), "random causal patterns, batch 1, 2 heads, 12 positions")
        _, _, patterns = _zoo()
        yield Case((patterns[0],), "attn-only-2l layer 0 on repeated random tokens")
        yield Case((patterns[1],), "attn-only-2l layer 1 on repeated random tokens")

    return cases


def _heads_above_cases(gen):
    yield Case(
        (torch.tensor([[0.1, 0.9], [0.95, 0.2]]), 0.5),
        "scores [[.1, .9], [.95, .2]], threshold .5",
        expected=["L0H1", "L1H0"],
    )
    yield Case((torch.tensor([[0.1, 0.2, 0.3]]), 0.5), "nothing above the threshold", expected=[])
    yield Case((torch.rand(3, 5, generator=gen), 0.6), "random 3x5 scores, threshold .6")
    yield Case((torch.rand(4, 2, generator=gen), 0.3), "random 4x2 scores (more layers than heads), threshold .3")


def _repeated_cases(gen):
    yield Case((torch.tensor([10, 20, 30]), 1, 2, 0, 0), "ids [10, 20, 30], 1 sequence, half_len 2, BOS 0, seed 0")
    yield Case((torch.arange(5, 50), 4, 6, 1, 7), "ids 5..49, 4 sequences, half_len 6, BOS 1, seed 7")
    yield Case((torch.randperm(100, generator=gen)[:30], 3, 10, 99, 2), "30 random ids, 3 sequences, half_len 10")
    yield Case(
        (torch.tensor([4]), 2, 3, 9, 0),
        "a single id 4, 2 sequences, half_len 3, BOS 9",
        expected=torch.tensor([[9, 4, 4, 4, 4, 4, 4], [9, 4, 4, 4, 4, 4, 4]]),
    )


def _oracle_repeated(token_ids, n_sequences, half_len, bos_token_id, seed=0):
    from zoo import corpus

    return corpus.repeated_random_tokens(n_sequences, half_len, token_ids, bos_token_id, seed=seed)


def _log_prob_cases(gen):
    # Uniform logits over 4 tokens: every log-prob is log(1/4).
    yield Case(
        (torch.zeros(1, 3, 4), torch.tensor([[0, 1, 2]])),
        "uniform logits over 4 tokens",
        expected=torch.full((1, 2), -1.3862944),
    )
    yield Case(
        (torch.randn(2, 5, 7, generator=gen), torch.randint(0, 7, (2, 5), generator=gen)),
        "batch 2, 5 positions, 7 tokens",
    )
    yield Case((torch.randn(3, 2, 11, generator=gen) * 5, torch.randint(0, 11, (3, 2), generator=gen)), "large logits")


def _oracle_log_probs(logits, tokens):
    losses = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), tokens[:, 1:], reduction="none")
    return -losses


def _induction_cases(gen):
    # half_len 1: BOS a a. The only repeated-half query is position 2, its target is position 2 itself.
    yield Case(
        (torch.tensor([[[[1.0, 0, 0], [0.5, 0.5, 0], [0.1, 0.2, 0.7]]]]), 1),
        "BOS a a, half_len 1",
        expected=torch.tensor([0.7]),
    )
    yield Case((_random_pattern(gen, 2, 3, 9), 4), "random patterns, half_len 4")
    yield Case((_random_pattern(gen, 3, 2, 11), 5), "random patterns, half_len 5")
    _, _, patterns = _zoo()
    yield Case((patterns[0], HALF_LEN), "attn-only-2l layer 0 on repeated random tokens")
    yield Case((patterns[1], HALF_LEN), "attn-only-2l layer 1 on repeated random tokens")


def _oracle_induction(pattern, half_len):
    scores = []
    for head in range(pattern.shape[1]):
        values = [pattern[:, head, q, q - half_len + 1] for q in range(half_len + 1, 2 * half_len + 1)]
        scores.append(torch.stack(values).mean())
    return torch.stack(scores)


def _ablation_cases(gen):
    yield Case(
        (torch.ones(1, 2, 3, 2), None, 1),
        "z of ones, batch 1, 2 positions, 3 heads, ablate head 1",
        expected=torch.tensor([[[[1.0, 1], [0, 0], [1, 1]], [[1, 1], [0, 0], [1, 1]]]]),
    )
    yield Case((torch.randn(2, 4, 4, 3, generator=gen), None, 0), "random z, 4 heads, ablate head 0")
    yield Case((torch.randn(3, 4, 4, 3, generator=gen), None, 3), "random z, 4 heads, 4 positions, ablate head 3")
    yield Case(("model", 0, 3), "attn-only-2l: per-token loss with L0H3 ablated")
    yield Case(("model", 1, 1), "attn-only-2l: per-token loss with L1H1 ablated")


def _run_ablation(hook_fn, case):
    first, layer_or_hook, head = case.args
    if not isinstance(first, str):
        return hook_fn(first.clone(), layer_or_hook, head)
    model, tokens, _ = _zoo()
    with torch.inference_mode():
        logits = model.run_with_hooks(
            tokens, fwd_hooks=[(f"blocks.{layer_or_hook}.attn.hook_z", partial(hook_fn, head_index=head))]
        )
    return ref.token_log_probs(logits, tokens)


def _oracle_ablation(z, hook, head_index):
    keep = torch.ones(z.shape[2], 1)
    keep[head_index] = 0.0
    return z * keep


def _dla_cases(gen):
    # Two components, two positions, d_model 2, vocab 3.
    W_U = torch.tensor([[1.0, 0.0, 2.0], [0.0, 1.0, -1.0]])
    components = torch.tensor([[[1.0, 2.0], [3.0, 4.0]], [[0.0, 1.0], [1.0, 0.0]]])
    yield Case(
        (components, W_U, torch.tensor([2, 1])),
        "2 components, 2 positions, next tokens [2, 1]",
        expected=torch.tensor([[0.0, 4.0], [-1.0, 0.0]]),
    )
    yield Case(
        (
            torch.randn(5, 6, 8, generator=gen),
            torch.randn(8, 20, generator=gen),
            torch.randint(0, 20, (6,), generator=gen),
        ),
        "5 components, 6 positions, d_model 8, vocab 20",
    )
    yield Case(
        (torch.randn(3, 4, 4, generator=gen), torch.randn(4, 4, generator=gen), torch.tensor([0, 0, 3, 3])),
        "square W_U (d_model = d_vocab = 4)",
    )


def _oracle_dla(components, W_U, next_tokens):
    return (components @ W_U)[:, torch.arange(len(next_tokens)), next_tokens]


def _ov_cases(gen):
    yield Case(
        (torch.eye(2), torch.tensor([[1.0], [0.0]]), torch.tensor([[0.0, 1.0]]), torch.eye(2)),
        "identity embeddings, V reads dim 0, O writes dim 1",
        expected=torch.tensor([[0.0, 1.0], [0.0, 0.0]]),
    )
    yield Case(
        (
            torch.randn(10, 6, generator=gen),
            torch.randn(6, 3, generator=gen),
            torch.randn(3, 6, generator=gen),
            torch.randn(6, 10, generator=gen),
        ),
        "vocab 10, d_model 6, d_head 3",
    )
    yield Case(
        (
            torch.randn(7, 4, generator=gen),
            torch.randn(4, 2, generator=gen),
            torch.randn(2, 4, generator=gen),
            torch.randn(4, 9, generator=gen),
        ),
        "embedding vocab 7, unembedding vocab 9 (not square)",
    )


def _qk_cases(gen):
    yield Case(
        (torch.eye(2), torch.tensor([[1.0], [0.0]]), torch.tensor([[0.0], [1.0]])),
        "identity embeddings, Q reads dim 0, K reads dim 1",
        expected=torch.tensor([[0.0, 1.0], [0.0, 0.0]]),
    )
    yield Case(
        (torch.randn(10, 6, generator=gen), torch.randn(6, 3, generator=gen), torch.randn(6, 3, generator=gen)),
        "vocab 10, d_model 6, d_head 3",
    )
    yield Case(
        (torch.randn(5, 4, generator=gen), torch.randn(4, 2, generator=gen), torch.randn(4, 2, generator=gen)),
        "vocab 5, d_model 4, d_head 2",
    )


def _run_factored(impl, case):
    result = impl(*case.args)
    from transformer_lens import FactoredMatrix

    if not isinstance(result, FactoredMatrix):
        from tests.harness import Mismatch, describe

        raise Mismatch(f"expected a FactoredMatrix, got {describe(result)}")
    return result.AB


def _composition_cases(gen):
    # ||I I|| / (||I|| ||I||) = sqrt(2) / 2 for the 2x2 identity.
    yield Case((torch.eye(2), torch.eye(2)), "both the 2x2 identity", expected=torch.tensor(0.70710678))
    yield Case(
        (torch.tensor([[1.0, 0.0], [0.0, 0.0]]), torch.tensor([[0.0, 0.0], [0.0, 1.0]])),
        "A writes dim 0 only, B reads dim 1 only",
        expected=torch.tensor(0.0),
    )
    yield Case((torch.randn(6, 6, generator=gen), torch.randn(6, 6, generator=gen)), "random 6x6")
    yield Case((torch.randn(4, 4, generator=gen), torch.randn(4, 4, generator=gen) * 10), "random 4x4, B scaled by 10")


def _wrong_previous(pattern):
    return pattern.diagonal(offset=1, dim1=-2, dim2=-1).mean((0, -1))


check = Checker(
    "1.2",
    [
        Exercise(
            ref.current_token_scores,
            _detector_cases(torch.tensor([(1.0 + 0.75 + 0.2) / 3])),
            hint="The diagonal of each (query, key) pattern: `pattern.diagonal(dim1=-2, dim2=-1)`, then mean over batch and position.",
            wrong={
                "mean over heads instead of batch": lambda p: (
                    p.diagonal(dim1=-2, dim2=-1).mean((1, -1))[:1].expand(p.shape[1]).clone()
                ),
                "sum instead of mean": lambda p: p.diagonal(dim1=-2, dim2=-1).sum(-1).mean(0),
            },
        ),
        Exercise(
            ref.previous_token_scores,
            _detector_cases(torch.tensor([(0.25 + 0.3) / 2])),
            hint="Entry [q, q-1] is the sub-diagonal: `diagonal(offset=-1, dim1=-2, dim2=-1)`. Position 0 has no previous token.",
            wrong={
                "super-diagonal (offset +1, always 0 in a causal pattern)": _wrong_previous,
                "divides by all positions, not positions 1 onwards": lambda p: (
                    p.diagonal(offset=-1, dim1=-2, dim2=-1).sum(-1).mean(0) / p.shape[-1]
                ),
            },
        ),
        Exercise(
            ref.first_token_scores,
            _detector_cases(torch.tensor([(1.0 + 0.25 + 0.5) / 3])),
            hint="Key position 0 is `pattern[..., 0]`: one value per (batch, head, query). Average over batch and query.",
            wrong={"query 0 instead of key 0": lambda p: p[..., 0, :].mean((0, -1))},
        ),
        Exercise(
            ref.heads_above,
            _heads_above_cases,
            hint='`(scores > threshold).nonzero()` lists (layer, head) pairs in order; format each as f"L{layer}H{head}".',
            wrong={"layer and head swapped": lambda s, t: [f"L{h}H{l}" for l, h in (s > t).nonzero().tolist()]},
        ),
        Exercise(
            ref.generate_repeated_tokens,
            _repeated_cases,
            oracle=_oracle_repeated,
            hint="Draw indices with torch.randint(len(token_ids), (n_sequences, half_len), generator=...) from a fresh "
            "torch.Generator().manual_seed(seed), index token_ids with them, then cat [BOS column, half, half] on dim 1.",
            wrong={
                "two independent halves": lambda ids, n, h, bos, seed=0: torch.cat(
                    [
                        torch.full((n, 1), bos),
                        ids[torch.randint(len(ids), (n, 2 * h), generator=torch.Generator().manual_seed(seed))],
                    ],
                    1,
                ),
                "no BOS": lambda ids, n, h, bos, seed=0: ref.generate_repeated_tokens(ids, n, h, bos, seed)[:, 1:],
            },
        ),
        Exercise(
            ref.token_log_probs,
            _log_prob_cases,
            oracle=_oracle_log_probs,
            hint="Logits at position p predict tokens[:, p + 1]: log_softmax logits[:, :-1], then gather at tokens[:, 1:].",
            wrong={
                "not shifted": lambda lg, t: lg[:, 1:].log_softmax(-1).gather(-1, t[:, 1:, None])[..., 0],
                "logits, not log-probs": lambda lg, t: lg[:, :-1].gather(-1, t[:, 1:, None])[..., 0],
            },
        ),
        Exercise(
            ref.induction_scores,
            _induction_cases,
            oracle=_oracle_induction,
            hint="Query p attends to key p - half_len + 1: that is `diagonal(offset=-(half_len - 1))`. Keep only queries in "
            "the repeated half (positions half_len + 1 onwards), i.e. drop the diagonal's first two entries (queries half_len - 1 and half_len).",
            wrong={
                "attends to the first copy itself (offset -half_len)": lambda p, h: p.diagonal(
                    offset=-h, dim1=-2, dim2=-1
                ).mean((0, -1)),
                "keeps the query at position half_len": lambda p, h: p.diagonal(offset=-(h - 1), dim1=-2, dim2=-1)[
                    ..., 1:
                ].mean((0, -1)),
            },
        ),
        Exercise(
            ref.ablate_head_hook,
            _ablation_cases,
            run=_run_ablation,
            oracle=_oracle_ablation,
            hint="hook_z has axes (batch, pos, head, d_head): set z[:, :, head_index] to zero and return z.",
            wrong={
                "head axis taken as the position axis": lambda z, hook, head_index: (
                    z.index_fill(1, torch.tensor([head_index]), 0.0) if head_index < z.shape[1] else z
                ),
                "keeps only that head": lambda z, hook, head_index: (
                    z * torch.nn.functional.one_hot(torch.tensor(head_index), z.shape[2]).to(z.dtype)[:, None]
                ),
            },
        ),
        Exercise(
            ref.direct_logit_attribution,
            _dla_cases,
            oracle=_oracle_dla,
            hint="Pick the unembedding column of each position's next token, W_U[:, next_tokens] (d_model, pos), then dot it "
            "with that position's vector in every component: einsum 'c p d, d p -> c p'.",
            wrong={
                "every position uses the first next token": lambda c, W, t: (c @ W)[:, :, t[0]],
                "sums over positions": lambda c, W, t: torch.einsum("cpd,dq->cq", c, W[:, t]),
            },
        ),
        Exercise(
            ref.full_ov_circuit,
            _ov_cases,
            run=_run_factored,
            hint="FactoredMatrix(A, B) stands for A @ B. Take A = W_E @ W_V (d_vocab, d_head) and B = W_O @ W_U.",
            wrong={
                "W_U missing": lambda E, V, O, U: (
                    ref.FactoredMatrix(E @ V, O @ E.T) if E.shape[0] == U.shape[1] else ref.FactoredMatrix(E @ V, O)
                ),
                "V and O swapped (transposed)": lambda E, V, O, U: ref.FactoredMatrix(E @ O.T, V.T @ U),
            },
        ),
        Exercise(
            ref.full_qk_circuit,
            _qk_cases,
            run=_run_factored,
            hint="Queries come from rows: A = W_E @ W_Q (d_vocab, d_head); keys from columns: B = (W_E @ W_K).T.",
            wrong={"queries and keys swapped": lambda E, Q, K: ref.FactoredMatrix(E @ K, (E @ Q).T)},
        ),
        Exercise(
            ref.composition_score,
            _composition_cases,
            hint="torch.linalg.matrix_norm gives the Frobenius norm: norm(W_A @ W_B) / (norm(W_A) * norm(W_B)).",
            wrong={
                "not normalised by W_B": lambda A, B: torch.linalg.matrix_norm(A @ B) / torch.linalg.matrix_norm(A),
                "product in the wrong order": lambda A, B: (
                    torch.linalg.matrix_norm(B @ A) / (torch.linalg.matrix_norm(A) * torch.linalg.matrix_norm(B))
                ),
            },
        ),
    ],
)
