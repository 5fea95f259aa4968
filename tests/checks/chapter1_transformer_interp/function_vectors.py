"""Checks for 1.3.2 Function vectors and steering with nnsight.

Cases name their model ("zoo" for gpt2-mini-truth's Hugging Face export, "tiny" for an untrained GPT-2 with 3 layers
of 2 heads, so hard-coded sizes show) instead of passing it: a model is loaded once and never deep-copied.
The oracles run the Hugging Face module with plain PyTorch hooks, one prompt at a time (no nnsight, no padding),
or TransformerLens.
"""

import warnings
from functools import lru_cache, partial

import einops
import torch

from solutions.chapter1_transformer_interp import function_vectors as ref
from tests.harness import Case, Checker, Exercise, Finding, exact, same_set

N_CLEAN, N_CORRUPTED = 48, 32  # prompts behind the graded function vector, as in the notebook
FV_THRESHOLD = 0.1  # a head is a function-vector head when its CIE is above this (as in the notebook)


@lru_cache(maxsize=1)
def _zoo():
    from nnsight import LanguageModel

    from zoo.hf import export_hf

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="LanguageModel is deprecated")
        return LanguageModel(str(export_hf("gpt2-mini-truth")), dispatch=True)


@lru_cache(maxsize=1)
def _tiny():
    """An untrained GPT-2 with 3 layers of 2 heads (d_head 8), wide random weights and biases, and the zoo
    tokenizer."""
    from nnsight import LanguageModel
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = _zoo().tokenizer
    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=64, n_embd=16, n_layer=3, n_head=2, n_inner=32,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        hf_model = GPT2LMHeadModel(config).eval()
        # Hugging Face's initialisation (biases at zero, weights of std 0.02) gives near-uniform next-token
        # probabilities, where patching a head changes nothing measurable: draw everything wider.
        with torch.no_grad():
            for name, parameter in hf_model.named_parameters():
                if ".ln_" in name or name.startswith("transformer.ln_f"):
                    continue
                parameter.normal_(0.0, 0.1 if name.endswith("bias") else 0.5)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="LanguageModel is deprecated")
        return LanguageModel(hf_model, tokenizer=tokenizer)


@lru_cache(maxsize=1)
def _tl():
    from zoo import load_model

    return load_model("gpt2-mini-truth", device="cpu")


def _model(name):
    return _zoo() if name == "zoo" else _tiny()


def _prompts(task, n, n_examples, seed=0):
    from zoo import corpus

    return corpus.icl_prompts(task, n, n_examples, seed=seed)


def _answer_ids(answers):
    from zoo import corpus

    return torch.tensor([corpus.single_token_id(_zoo().tokenizer, answer) for answer in answers])


def _resolved(case_args):
    """The case's arguments with the model's name replaced by the model."""
    return (_model(case_args[0]), *case_args[1:])


def _run(impl, case):
    with torch.no_grad():
        return impl(*_resolved(case.args), **case.kwargs)


# ----------------------------------------------------------------------------- oracles: plain PyTorch hooks


def _hf_run(model, prompt, block_edits=None, z_edits=None):
    """One prompt through the Hugging Face module: every block's output, every layer's c_proj input (z)
    and the logits, each without the batch axis. block_edits / z_edits map a layer to a function that
    rewrites that tensor ([pos, d_model])."""
    hf_model = model._module
    ids = model.tokenizer(prompt, return_tensors="pt")["input_ids"]
    blocks, zs, handles = {}, {}, []
    for layer, block in enumerate(hf_model.transformer.h):

        def on_block(module, args, output, layer=layer):  # output: [1, pos, d_model]
            edit = (block_edits or {}).get(layer)
            blocks[layer] = output = edit(output[0].clone())[None] if edit else output
            return output

        def on_z(module, args, layer=layer):
            edit = (z_edits or {}).get(layer)
            zs[layer] = z = edit(args[0][0].clone())[None] if edit else args[0]
            return (z,)

        handles += [block.register_forward_hook(on_block), block.attn.c_proj.register_forward_pre_hook(on_z)]
    try:
        with torch.no_grad():
            logits = hf_model(ids).logits[0]
    finally:
        for handle in handles:
            handle.remove()
    return {layer: out[0] for layer, out in blocks.items()}, {layer: z[0] for layer, z in zs.items()}, logits


def _oracle_last_position_states(model, prompts, layer):
    runs = [_hf_run(model, p) for p in prompts]
    return torch.stack([blocks[layer][-1] for blocks, _, _ in runs]), torch.stack([logits[-1] for *_, logits in runs])


@lru_cache(maxsize=1)
def _eager_copy_of_tiny():
    import copy

    hf_model = copy.deepcopy(_tiny()._module)
    hf_model.set_attn_implementation("eager")
    return hf_model


def _oracle_attention_patterns(model, prompts, layer):
    """Transformers' own attention weights (eager attention returns them) or TransformerLens' patterns."""
    if model is _tiny():
        ids = model.tokenizer(prompts, return_tensors="pt")["input_ids"]
        return _eager_copy_of_tiny()(ids, output_attentions=True).attentions[layer]
    _, cache = _tl().run_with_cache(prompts, names_filter=f"blocks.{layer}.attn.hook_pattern")
    return cache["pattern", layer]


def _oracle_task_hidden_state(model, prompts, layer):
    return _oracle_last_position_states(model, prompts, layer)[0].mean(0)


def _set_last(hidden):
    def edit(output):
        output[-1] = hidden
        return output

    return edit


def _oracle_patched_logits(model, prompts, hidden, layer):
    return torch.stack([_hf_run(model, p, block_edits={layer: _set_last(hidden)})[2][-1] for p in prompts])


def _oracle_task_vector_in_one_trace(model, few_shot_prompts, zero_shot_prompts, layer):
    vector = _oracle_task_hidden_state(model, few_shot_prompts, layer) - _oracle_task_hidden_state(
        model, zero_shot_prompts, layer
    )
    few_shot = _oracle_last_position_states(model, few_shot_prompts, layer)[1]
    return few_shot, _oracle_added_vector(model, zero_shot_prompts, vector, layer)


def _oracle_mean_head_z(model, prompts):
    z = torch.stack([torch.stack(list(_hf_run(model, p)[1].values()))[:, -1] for p in prompts]).mean(0)
    return z.unflatten(-1, (model.config.n_head, -1))


def _answer_prob(model, prompt, answer_id, z_edits=None):
    return _hf_run(model, prompt, z_edits=z_edits)[2][-1].softmax(-1)[answer_id]


def _oracle_head_indirect_effects(model, prompts, answer_ids, mean_z):
    n_layers, n_heads, d_head = mean_z.shape

    def patch(layer, head):
        def edit(z):
            z[-1, head * d_head : (head + 1) * d_head] = mean_z[layer, head]
            return z

        return {layer: edit}

    def mean_prob(z_edits):
        return torch.stack([_answer_prob(model, p, a, z_edits) for p, a in zip(prompts, answer_ids)]).mean()

    baseline = mean_prob(None)
    return torch.tensor(
        [[mean_prob(patch(layer, head)) - baseline for head in range(n_heads)] for layer in range(n_layers)]
    )


def _oracle_function_vector(model, mean_z, heads):
    """Each head's output is what c_proj makes of its z alone, less the bias that c_proj adds anyway."""
    vector = torch.zeros(model.config.n_embd)
    for name in heads:
        layer, head = (int(part) for part in name[1:].split("H"))
        c_proj = model._module.transformer.h[layer].attn.c_proj
        z = torch.zeros(mean_z.shape[1:]).index_copy(0, torch.tensor([head]), mean_z[layer, head][None])
        vector += c_proj(z.flatten()) - c_proj.bias
    return vector.detach()


def _add_at(vector, position):
    def edit(output):
        if position is None:
            output += vector
        else:
            output[position] += vector
        return output

    return edit


def _oracle_added_vector(model, prompts, vector, layer, position=-1):
    return torch.stack([_hf_run(model, p, block_edits={layer: _add_at(vector, position)})[2][-1] for p in prompts])


def _oracle_generate(model, prompts, vector, layer, max_new_tokens):
    """Greedy decoding by hand, one prompt at a time, re-running the whole sequence at each step (no cache):
    the vector goes in at the prompt's last position, and stays there as the sequence grows."""
    rows = []
    for prompt in prompts:
        ids = model.tokenizer(prompt, return_tensors="pt")["input_ids"][0]
        position = len(ids) - 1
        for _ in range(max_new_tokens):
            hf_model, handles = model._module, []
            edit = _add_at(vector, position)
            handle = hf_model.transformer.h[layer].register_forward_hook(
                lambda m, a, out, edit=edit: edit(out[0].clone())[None]
            )
            handles.append(handle)
            try:
                with torch.no_grad():
                    next_id = hf_model(ids[None]).logits[0, -1].argmax()
            finally:
                for h in handles:
                    h.remove()
            ids = torch.cat([ids, next_id[None]])
        rows.append(ids[-max_new_tokens:])
    return torch.stack(rows)


def _oracle_contrast_vector(model, positive_prompts, negative_prompts, layer):
    positive = _oracle_last_position_states(model, positive_prompts, layer)[0]
    negative = _oracle_last_position_states(model, negative_prompts, layer)[0]
    return torch.stack([p - n for p, n in zip(positive, negative)]).mean(0)


def _oracle_steered_loss(model, tokens, vector, layer, coefficient):
    hf_model = model._module
    handle = hf_model.transformer.h[layer].register_forward_hook(lambda m, a, out: out + coefficient * vector)
    try:
        with torch.no_grad():
            return hf_model(tokens, labels=tokens).loss.item()  # transformers shifts the labels itself
    finally:
        handle.remove()


def _oracle_head_indirect_effects_tl(model, prompts, answer_ids, mean_z):
    """The same patches through nnsight on the Hugging Face export of the same weights."""
    return ref.head_indirect_effects(_zoo(), prompts, answer_ids, mean_z)


# ----------------------------------------------------------------------------- cases


def _story_tokens(n_documents):
    from zoo import corpus

    documents = corpus.story_documents("test", n_documents, min_pieces=64)
    return _zoo().tokenizer(documents, truncation=True, max_length=32, return_tensors="pt")["input_ids"]


def _last_position_cases(gen):
    yield Case(("zoo", _prompts("antonym", 4, 5)[0], 1), "gpt2-mini-truth, 4 antonym prompts with 5 examples, layer 1")
    mixed = _prompts("country", 2, 0)[0] + _prompts("uppercase", 2, 3)[0]
    yield Case(("zoo", mixed, 3), "gpt2-mini-truth, prompts of different lengths (0 and 3 examples), layer 3")
    yield Case(("tiny", _prompts("successor", 3, 2)[0], 2), "an untrained 3-layer model, layer 2")


def _block_input(model, prompts, layer):
    with model.trace(prompts):
        hidden = model.transformer.h[layer].input[:, -1].save()
        logits = model.lm_head.output[:, -1].save()
    return hidden, logits


def _first_position(model, prompts, layer):
    with model.trace(prompts):
        hidden = model.transformer.h[layer].output[:, 0].save()
        logits = model.lm_head.output[:, 0].save()
    return hidden, logits


def _mean_over_positions(model, prompts, layer):
    with model.trace(prompts):
        hidden = model.transformer.h[layer].output.mean(1).save()
        logits = model.lm_head.output[:, -1].save()
    return hidden, logits


def _pattern_cases(gen):
    yield Case(("zoo", _prompts("antonym", 3, 2)[0], 0), "gpt2-mini-truth, 3 antonym prompts with 2 examples, layer 0")
    yield Case(("zoo", _prompts("country", 2, 4)[0], 2), "gpt2-mini-truth, 2 country prompts with 4 examples, layer 2")
    yield Case(("tiny", _prompts("successor", 2, 3)[0], 1), "an untrained model with 2 heads of d_head 8, layer 1")


def _patterns_with(model, prompts, layer, scale=True, mask=True, split="(head d_head)", pick=(0, 1)):
    with model.trace(prompts):
        qkv = model.transformer.h[layer].attn.c_attn.output.save()
    parts = qkv.split(model.config.n_embd, dim=-1)
    q, k = (einops.rearrange(parts[i], f"b pos {split} -> b head pos d_head", head=model.config.n_head) for i in pick)
    scores = q @ k.transpose(-1, -2) / (q.shape[-1] ** 0.5 if scale else 1.0)
    if mask:
        scores = scores.masked_fill(~torch.ones(scores.shape[-2:], dtype=torch.bool).tril(), float("-inf"))
    return scores.softmax(-1)


def _hidden_state_cases(gen):
    yield Case(("zoo", _prompts("antonym", 6, 5)[0], 1), "gpt2-mini-truth, 6 antonym prompts with 5 examples, layer 1")
    yield Case(("zoo", _prompts("successor", 4, 3)[0], 2), "gpt2-mini-truth, 4 successor prompts, layer 2")
    yield Case(("tiny", _prompts("country", 3, 2)[0], 0), "an untrained 3-layer model, layer 0")


@torch.no_grad()
def _patch_cases(gen):
    yield Case(("zoo", _prompts("antonym", 4, 0)[0], torch.randn(128, generator=gen) * 5, 1),
               "gpt2-mini-truth, 4 zero-shot prompts, a random hidden state, layer 1")  # fmt: skip
    hidden = ref.task_hidden_state(_zoo(), _prompts("uppercase", 8, 5)[0], 2)
    yield Case(("zoo", _prompts("antonym", 4, 0, seed=1)[0], hidden, 2),
               "gpt2-mini-truth, zero-shot prompts, the uppercase task's hidden state, layer 2")  # fmt: skip
    yield Case(("tiny", _prompts("country", 3, 1)[0], torch.randn(16, generator=gen), 2),
               "an untrained 3-layer model, layer 2")  # fmt: skip


def _patch_adds(model, prompts, hidden, layer):
    return ref.logits_with_added_vector(model, prompts, hidden, layer)


def _patch_every_position(model, prompts, hidden, layer):
    with model.trace(prompts):
        model.transformer.h[layer].output[:] = hidden
        logits = model.lm_head.output[:, -1].save()
    return logits


def _patch_block_input(model, prompts, hidden, layer):
    with model.trace(prompts):
        model.transformer.h[layer].input[:, -1] = hidden
        logits = model.lm_head.output[:, -1].save()
    return logits


def _one_trace_cases(gen):
    yield Case(("zoo", _prompts("antonym", 5, 5)[0], _prompts("antonym", 4, 0, seed=2)[0], 1),
               "gpt2-mini-truth, 5 antonym prompts with 5 examples, 4 zero-shot prompts, layer 1")  # fmt: skip
    yield Case(("zoo", _prompts("successor", 3, 4)[0], _prompts("successor", 6, 0)[0], 2),
               "gpt2-mini-truth, successor, 3 few-shot and 6 zero-shot prompts, layer 2")  # fmt: skip
    yield Case(("tiny", _prompts("country", 2, 3)[0], _prompts("country", 3, 0)[0], 0),
               "an untrained 3-layer model, layer 0")  # fmt: skip


def _task_vector(model, few_shot_prompts, zero_shot_prompts, layer):
    return ref.task_hidden_state(model, few_shot_prompts, layer) - ref.task_hidden_state(
        model, zero_shot_prompts, layer
    )


def _one_trace_replaces(model, few_shot_prompts, zero_shot_prompts, layer):
    few_shot = ref.last_position_states(model, few_shot_prompts, layer)[1]
    hidden = ref.task_hidden_state(model, few_shot_prompts, layer)
    return few_shot, ref.patched_logits(model, zero_shot_prompts, hidden, layer)


def _one_trace_no_subtraction(model, few_shot_prompts, zero_shot_prompts, layer):
    few_shot = ref.last_position_states(model, few_shot_prompts, layer)[1]
    hidden = ref.task_hidden_state(model, few_shot_prompts, layer)
    return few_shot, ref.logits_with_added_vector(model, zero_shot_prompts, hidden, layer)


def _one_trace_unpatched(model, few_shot_prompts, zero_shot_prompts, layer):
    return ref.last_position_states(model, few_shot_prompts, layer)[1], ref.last_position_states(
        model, zero_shot_prompts, layer
    )[1]


def _one_trace_patches_both(model, few_shot_prompts, zero_shot_prompts, layer):
    vector = _task_vector(model, few_shot_prompts, zero_shot_prompts, layer)
    return ref.logits_with_added_vector(model, few_shot_prompts, vector, layer), ref.logits_with_added_vector(
        model, zero_shot_prompts, vector, layer
    )


def _mean_z_cases(gen):
    yield Case(("zoo", _prompts("antonym", 6, 5)[0]), "gpt2-mini-truth, 6 antonym prompts with 5 examples")
    yield Case(("zoo", _prompts("country", 3, 2)[0] + _prompts("country", 2, 0)[0]),
               "gpt2-mini-truth, country prompts of different lengths")  # fmt: skip
    yield Case(("tiny", _prompts("successor", 4, 3)[0]), "an untrained model with 3 layers of 2 heads (d_head 8)")


def _mean_z_with(model, prompts, split="(head d_head)", read="input", positions=False):
    with model.trace(prompts):
        zs = []
        for block in model.transformer.h:
            z = block.attn.c_proj.input if read == "input" else block.attn.c_proj.output
            zs.append(z.mean((0, 1)) if positions else z[:, -1].mean(0))
        z = torch.stack(zs).save()
    return einops.rearrange(z, f"layer {split} -> layer head d_head", head=model.config.n_head)


def _uppercase_examples_antonym_answers(n, seed):
    """Prompts with uppercase examples, and the antonym of each query: the notebook's corrupted runs."""
    from zoo import corpus

    prompts, _ = _prompts("uppercase", n, 5, seed=seed)
    return prompts, _answer_ids([" " + corpus.ANTONYMS[p.split(",")[-1].strip(" :")] for p in prompts])


@torch.no_grad()
def _effects_cases(gen):
    # The untrained model first: a wrong implementation's verdict then shows its numbers, not gpt2-mini-truth's.
    clean, _ = _prompts("country", 8, 3, seed=3)
    own_answers = ref.last_position_states(_tiny(), clean, 0)[1].argmax(-1)  # likely enough that patches show
    yield Case(("tiny", ref.shuffled_label_prompts(clean, seed=4), own_answers, ref.mean_head_z(_tiny(), clean)),
               "an untrained model with 3 layers of 2 heads, 8 country prompts with shuffled labels, its own answers")  # fmt: skip
    corrupted, answer_ids = _uppercase_examples_antonym_answers(6, seed=3)
    mean_z = ref.mean_head_z(_zoo(), _prompts("antonym", 6, 5, seed=3)[0])
    yield Case(("zoo", corrupted, answer_ids, mean_z),
               "gpt2-mini-truth, 6 prompts with uppercase examples, antonym answers, mean z of 6 antonym prompts")  # fmt: skip


def _effects_with(model, prompts, answer_ids, mean_z, measure="prob", where="last", whole_layer=False, rise=True):
    n_layers, n_heads, d_head = mean_z.shape
    effects = torch.zeros(n_layers, n_heads)

    def score(patch):
        with model.trace(prompts):
            if patch:
                layer, head = patch
                z = model.transformer.h[layer].attn.c_proj.input
                columns = slice(None) if whole_layer else slice(head * d_head, (head + 1) * d_head)
                value = mean_z[layer].flatten() if whole_layer else mean_z[layer, head]
                if where == "last":
                    z[:, -1, columns] = value
                else:
                    z[:, :, columns] = value
            logits = model.lm_head.output[:, -1].save()
        values = logits.softmax(-1) if measure == "prob" else logits
        return values[torch.arange(len(prompts)), answer_ids].mean()

    baseline = score(None) if rise else 0.0
    for layer in range(n_layers):
        for head in range(n_heads):
            effects[layer, head] = score((layer, head)) - baseline
    return effects


def _effects_transposed(model, prompts, answer_ids, mean_z):
    effects = ref.head_indirect_effects(model, prompts, answer_ids, mean_z)
    return effects.T.reshape(effects.shape)


@torch.no_grad()
def _tl_effects_cases(gen):
    clean, answers = _prompts("country", 8, 4, seed=4)
    yield Case(("tl", ref.shuffled_label_prompts(clean[4:], seed=6), _answer_ids(answers[4:]),
                ref.mean_head_z(_zoo(), clean[:4])), "gpt2-mini-truth in TransformerLens, 4 country prompts, shuffled labels")  # fmt: skip
    corrupted, answer_ids = _uppercase_examples_antonym_answers(5, seed=4)
    yield Case(("tl", corrupted, answer_ids, ref.mean_head_z(_zoo(), _prompts("antonym", 5, 5, seed=4)[0])),
               "gpt2-mini-truth in TransformerLens, 5 prompts with uppercase examples, antonym answers")  # fmt: skip


def _run_tl(impl, case):
    with torch.no_grad():
        return impl(_tl(), *case.args[1:])


def _tl_effects_with(model, prompts, answer_ids, mean_z, measure="prob", where="last", rise=True, hook="z"):
    tokens = model.to_tokens(prompts)
    rows = torch.arange(len(tokens))

    def score(hooks):
        logits = model.run_with_hooks(tokens, fwd_hooks=hooks)[:, -1]
        return (logits.softmax(-1) if measure == "prob" else logits)[rows, answer_ids].mean()

    def patch(z, hook, layer, head):
        if where == "last":
            z[:, -1, head] = mean_z[layer, head]
        else:
            z[:, :, head] = mean_z[layer, head]
        return z

    baseline = score([]) if rise else 0.0
    effects = torch.zeros(mean_z.shape[:2])
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            name = f"blocks.{layer}.attn.hook_{hook}"
            effects[layer, head] = score([(name, partial(patch, layer=layer, head=head))]) - baseline
    return effects


def _fv_cases(gen):
    mean_z = torch.randn(4, 4, 32, generator=gen)
    yield Case(("zoo", mean_z, ["L1H2"]), "gpt2-mini-truth, random mean z, one head L1H2")
    yield Case(("zoo", mean_z, ["L0H3", "L2H1", "L3H0"]), "gpt2-mini-truth, random mean z, heads L0H3, L2H1, L3H0")
    yield Case(("zoo", mean_z, []), "no heads", expected=torch.zeros(128))
    yield Case(("tiny", torch.randn(3, 2, 8, generator=gen), ["L2H0", "L0H1"]), "an untrained model, heads L2H0, L0H1")


def _fv_with_bias(model, mean_z, heads):
    vector = ref.function_vector(model, mean_z, heads)
    for name in heads:
        vector = vector + model.transformer.h[int(name[1])].attn.c_proj.bias
    return vector


def _fv_strided_heads(model, mean_z, heads):
    """Takes head h's rows of W_O as every n_heads-th row from h (the (d_head head) order)."""
    vector = torch.zeros(model.config.n_embd)
    for name in heads:
        layer, head = (int(part) for part in name[1:].split("H"))
        W_O = model.transformer.h[layer].attn.c_proj.weight[head :: model.config.n_head]
        vector += mean_z[layer, head] @ W_O
    return vector


def _fv_layer_head_swapped(model, mean_z, heads):
    swapped = [f"L{name.split('H')[1]}H{name[1:].split('H')[0]}" for name in heads]
    valid = [n for n in swapped if int(n[1]) < mean_z.shape[0] and int(n.split("H")[1]) < mean_z.shape[1]]
    return ref.function_vector(model, mean_z, valid)


def _fv_mean_not_sum(model, mean_z, heads):
    return ref.function_vector(model, mean_z, heads) / max(len(heads), 1)


def _added_vector_cases(gen):
    prompts = _prompts("antonym", 4, 0)[0]
    yield Case(("zoo", prompts, torch.randn(128, generator=gen) * 3, 1), "gpt2-mini-truth, zero-shot prompts, layer 1")
    yield Case(("zoo", prompts, torch.randn(128, generator=gen) * 3, 2), "gpt2-mini-truth, every position, layer 2",
               kwargs={"position": None})  # fmt: skip
    yield Case(("zoo", _prompts("country", 3, 2)[0], torch.randn(128, generator=gen) * 3, 0),
               "gpt2-mini-truth, at position 1 (the first word), layer 0", kwargs={"position": 1})  # fmt: skip
    yield Case(("tiny", _prompts("successor", 3, 1)[0], torch.randn(16, generator=gen), 2),
               "an untrained 3-layer model, layer 2")  # fmt: skip


def _add_replaces(model, prompts, vector, layer, position=-1):
    with model.trace(prompts):
        if position is None:
            model.transformer.h[layer].output[:] = vector
        else:
            model.transformer.h[layer].output[:, position] = vector
        logits = model.lm_head.output[:, -1].save()
    return logits


def _add_always_last(model, prompts, vector, layer, position=-1):
    return ref.logits_with_added_vector(model, prompts, vector, layer)


def _add_everywhere(model, prompts, vector, layer, position=-1):
    return ref.logits_with_added_vector(model, prompts, vector, layer, position=None)


def _add_to_block_input(model, prompts, vector, layer, position=-1):
    with model.trace(prompts):
        if position is None:
            model.transformer.h[layer].input[:] += vector
        else:
            model.transformer.h[layer].input[:, position] += vector
        logits = model.lm_head.output[:, -1].save()
    return logits


@torch.no_grad()
def _generation_cases(gen):
    zoo_fv = ref.function_vector(_zoo(), ref.mean_head_z(_zoo(), _prompts("antonym", 16, 5)[0]), ["L1H0", "L2H1"])
    prompts = _prompts("antonym", 3, 0, seed=5)[0]
    yield Case(("zoo", prompts, 4 * zoo_fv, 1, 3), "gpt2-mini-truth, 3 zero-shot prompts, 3 new tokens, layer 1")
    yield Case(("zoo", _prompts("country", 2, 1)[0], torch.randn(128, generator=gen) * 4, 0, 4),
               "gpt2-mini-truth, a random vector at layer 0, 4 new tokens")  # fmt: skip
    yield Case(("tiny", _prompts("successor", 2, 0)[0], torch.randn(16, generator=gen) * 3, 1, 3),
               "an untrained 3-layer model, 3 new tokens")  # fmt: skip


def _generate_every_step(model, prompts, vector, layer, max_new_tokens):
    with model.generate(prompts, max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens, do_sample=False) as tr:
        for _ in tr.iter[:max_new_tokens]:
            model.transformer.h[layer].output[:, -1] += vector
        tokens = tr.result.save()
    return tokens[:, -max_new_tokens:]


def _generate_every_position(model, prompts, vector, layer, max_new_tokens):
    with model.generate(prompts, max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens, do_sample=False) as tr:
        for step in tr.iter[:max_new_tokens]:
            if step == 0:
                model.transformer.h[layer].output[:] += vector
        tokens = tr.result.save()
    return tokens[:, -max_new_tokens:]


def _generate_without_vector(model, prompts, vector, layer, max_new_tokens):
    with model.generate(prompts, max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens, do_sample=False) as tr:
        tokens = tr.result.save()
    return tokens[:, -max_new_tokens:]


def _contrast_cases(gen):
    from zoo import corpus

    cities = sorted(corpus.CITY_COUNTRY)
    positive = [f"{c} is in" for c in cities if corpus.CITY_COUNTRY[c] == "Japan"]
    negative = [f"{c} is in" for c in cities if corpus.CITY_COUNTRY[c] == "France"]
    yield Case(("zoo", positive, negative, 1), "gpt2-mini-truth, 3 pairs of Japanese and French cities, layer 1")
    yield Case(("zoo", positive[:2], positive[1:], 2), "gpt2-mini-truth, 2 pairs of Japanese cities, layer 2")
    yield Case(("tiny", _prompts("antonym", 3, 2)[0], _prompts("uppercase", 3, 2)[0], 0), "an untrained model, layer 0")


def _contrast_reversed(model, positive_prompts, negative_prompts, layer):
    return ref.contrast_vector(model, negative_prompts, positive_prompts, layer)


def _contrast_all_positions(model, positive_prompts, negative_prompts, layer):
    with model.trace() as tracer:
        with tracer.invoke(positive_prompts):
            positive = model.transformer.h[layer].output.mean(1).save()
        with tracer.invoke(negative_prompts):
            negative = model.transformer.h[layer].output.mean(1).save()
    return (positive - negative).mean(0)


def _contrast_positive_only(model, positive_prompts, negative_prompts, layer):
    return ref.task_hidden_state(model, positive_prompts, layer)


def _loss_cases(gen):
    tokens = _story_tokens(4)
    vector = torch.randn(128, generator=gen)
    yield Case(("zoo", tokens, vector, 1, 0.0), "gpt2-mini-truth, 4 story documents, coefficient 0")
    yield Case(("zoo", tokens, vector, 2, 3.0), "gpt2-mini-truth, 4 story documents, a random vector times 3, layer 2")
    yield Case(("tiny", tokens[:2], torch.randn(16, generator=gen), 0, 1.5), "an untrained model, coefficient 1.5")


def _loss_last_only(model, tokens, vector, layer, coefficient):
    with model.trace(tokens):
        model.transformer.h[layer].output[:, -1] += coefficient * vector
        logits = model.lm_head.output.save()
    return torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten()).item()


def _loss_unshifted(model, tokens, vector, layer, coefficient):
    with model.trace(tokens):
        model.transformer.h[layer].output[:] += coefficient * vector
        logits = model.lm_head.output.save()
    return torch.nn.functional.cross_entropy(logits.flatten(0, 1), tokens.flatten()).item()


def _loss_no_coefficient(model, tokens, vector, layer, coefficient):
    return ref.steered_loss(model, tokens, vector, layer, 1.0)


# ----------------------------------------------------------------------------- findings


def _zero_shot_antonyms():
    """Every antonym word as a zero-shot prompt (" hot:"), with its antonym: the notebook's rescue set."""
    from zoo import corpus

    words = sorted(corpus.ANTONYMS)
    return [f" {word}:" for word in words], _answer_ids([" " + corpus.ANTONYMS[word] for word in words])


def _accuracy(logits, answer_ids):
    return (logits.argmax(-1) == answer_ids).float().mean().item()


@lru_cache(maxsize=1)
def _task_vector_accuracies():
    """Zero-shot antonym accuracy with the task vector (5-shot mean state minus zero-shot mean state, 64
    prompts of seed 0 as in the notebook) added after each block."""
    model, (zero_shot, answer_ids) = _zoo(), _zero_shot_antonyms()
    few_shot, _ = _prompts("antonym", 64, 5, seed=0)
    with torch.no_grad():
        return [
            _accuracy(ref.logits_with_added_vector(model, zero_shot, _task_vector(model, few_shot, zero_shot, l), l),
                      answer_ids)
            for l in range(model.config.n_layer)
        ]  # fmt: skip


@lru_cache(maxsize=1)
def _fv_effects():
    """The notebook's indirect effects: mean z over N_CLEAN antonym prompts with 5 examples, patched into
    N_CORRUPTED prompts with uppercase examples, scored on the antonym of their query."""
    from zoo import corpus

    model = _zoo()
    clean, _ = _prompts("antonym", N_CLEAN, 5, seed=1)
    corrupted, _ = _prompts("uppercase", N_CORRUPTED, 5, seed=2)
    answers = [" " + corpus.ANTONYMS[p.split(",")[-1].strip(" :")] for p in corrupted]
    with torch.no_grad():
        mean_z = ref.mean_head_z(model, clean)
        return mean_z, ref.head_indirect_effects(model, corrupted, _answer_ids(answers), mean_z)


def _fv_heads_truth():
    effects = _fv_effects()[1]
    return {f"L{layer}H{head}" for layer, head in (effects > FV_THRESHOLD).nonzero().tolist()}


@lru_cache(maxsize=1)
def _fv_site_accuracies():
    """Zero-shot antonym accuracy with the function vector of the true heads added at the last position after
    each block's attention ("attn{L}") and after each block ("block{L}")."""
    model, (zero_shot, answer_ids) = _zoo(), _zero_shot_antonyms()
    with torch.no_grad():
        vector = ref.function_vector(model, _fv_effects()[0], sorted(_fv_heads_truth()))
        accuracies = {}
        for layer in range(model.config.n_layer):
            with model.trace(zero_shot):
                model.transformer.h[layer].attn.output[0][:, -1] += vector
                logits = model.lm_head.output[:, -1].save()
            accuracies[f"attn{layer}"] = _accuracy(logits, answer_ids)
            accuracies[f"block{layer}"] = _accuracy(
                ref.logits_with_added_vector(model, zero_shot, vector, layer), answer_ids
            )
    return accuracies


check = Checker("1.3.2", [
    Exercise(
        ref.last_position_states, _last_position_cases, run=_run, oracle=_oracle_last_position_states, atol=1e-4,
        hint="Save two things inside one trace: the block's output (a tensor under transformers 5) and the "
             "unembedding's output, each at the last position (prompts are left-padded, so that is -1 for all).",
        wrong={"reads the block's input (the residual stream before the block)": _block_input,
               "reads the first position, not the last": _first_position,
               "averages the hidden state over positions": _mean_over_positions},
    ),  # fmt: skip
    Exercise(
        ref.attention_patterns, _pattern_cases, run=_run, oracle=_oracle_attention_patterns, atol=1e-4,
        hint="c_attn writes queries, keys and values side by side, each n_heads blocks of d_head; scale the "
             "scores by 1/sqrt(d_head), hide the keys after each query, then softmax over keys.",
        wrong={"no 1/sqrt(d_head) scale": partial(_patterns_with, scale=False),
               "no causal mask": partial(_patterns_with, mask=False),
               "splits the heads as (d_head head)": partial(_patterns_with, split="(d_head head)"),
               "queries against values instead of keys": partial(_patterns_with, pick=(0, 2)),
               "queries and keys swapped": partial(_patterns_with, pick=(1, 0))},
    ),  # fmt: skip
    Exercise(
        ref.task_hidden_state, _hidden_state_cases, run=_run, oracle=_oracle_task_hidden_state, atol=1e-4,
        hint="One vector of d_model: the block's output at the last position, averaged over the prompts.",
        wrong={"averages over positions too": lambda m, p, layer: _mean_over_positions(m, p, layer)[0].mean(0),
               "the first prompt's state, not the mean": lambda m, p, layer: ref.task_hidden_state(m, p[:1], layer),
               "reads the block's input": lambda m, p, layer: _block_input(m, p, layer)[0].mean(0)},
    ),  # fmt: skip
    Exercise(
        ref.patched_logits, _patch_cases, run=_run, oracle=_oracle_patched_logits, atol=1e-4,
        hint="Assign to the block's output at the last position only, then save the last position's logits.",
        wrong={"adds the hidden state instead of replacing": _patch_adds,
               "replaces every position": _patch_every_position,
               "patches the block's input (one layer early)": _patch_block_input},
    ),  # fmt: skip
    Exercise(
        ref.logits_with_added_vector, _added_vector_cases, run=_run, oracle=_oracle_added_vector, atol=1e-4,
        hint="Add to the block's output in place, at the position asked for (all of them for None), and read the "
             "logits at the last position whatever the position.",
        wrong={"replaces the residual stream instead of adding": _add_replaces,
               "always adds at the last position": _add_always_last,
               "adds at every position whatever the position": _add_everywhere,
               "adds to the block's input (one layer early)": _add_to_block_input},
    ),  # fmt: skip
    Finding(
        "best_task_vector_layer", truth=lambda: int(torch.tensor(_task_vector_accuracies()).argmax()),
        grade=exact("the layer where the task vector works best"),
        hint="Add the task vector (few-shot mean state minus zero-shot mean state, at the same layer) after each "
             "block in turn, and compare the zero-shot antonym accuracies.",
        wrong={"the first layer": 0, "the layer after the best": 3, "the layer before the best": 1,
               "a block's name instead of its index": "block two"},
    ),  # fmt: skip
    Exercise(
        ref.task_vector_in_one_trace, _one_trace_cases, run=_run, oracle=_oracle_task_vector_in_one_trace,
        atol=1e-4,
        hint="Two invokes in one trace: the first computes the few-shot mean, the second adds that mean minus its "
             "own mean at the last position. A barrier called in both makes the read happen before the write; each "
             "invoke sees only its own prompts.",
        wrong={"replaces the zero-shot state by the few-shot mean instead of adding the difference": _one_trace_replaces,
               "adds the few-shot mean without subtracting the zero-shot mean": _one_trace_no_subtraction,
               "never changes the zero-shot prompts": _one_trace_unpatched,
               "adds the task vector to the few-shot prompts too": _one_trace_patches_both},
    ),  # fmt: skip
    Exercise(
        ref.mean_head_z, _mean_z_cases, run=_run, oracle=_oracle_mean_head_z, atol=1e-4,
        hint="z is c_proj's input, d_model wide: n_heads blocks of d_head, head 0 first. Take every layer's in "
             "one trace, in the order the model runs them.",
        wrong={"splits the heads as (d_head head)": partial(_mean_z_with, split="(d_head head)"),
               "reads c_proj's output (after W_O) instead of its input": partial(_mean_z_with, read="output"),
               "averages over positions as well as prompts": partial(_mean_z_with, positions=True)},
    ),  # fmt: skip
    Exercise(
        ref.head_indirect_effects, _effects_cases, run=_run, oracle=_oracle_head_indirect_effects, atol=1e-5,
        hint="One number per head: patch only that head's d_head slice of z, only at the last position, measure "
             "the answer's probability (softmax over the whole vocabulary), and subtract the unpatched probability.",
        wrong={"measures the answer's logit, not its probability": partial(_effects_with, measure="logit"),
               "patches the head at every position": partial(_effects_with, where="every"),
               "patches the whole layer's z, not one head": partial(_effects_with, whole_layer=True),
               "does not subtract the corrupted baseline": partial(_effects_with, rise=False),
               "fills the table head-major (layers and heads transposed)": _effects_transposed},
    ),  # fmt: skip
    Exercise(
        ref.head_indirect_effects_tl, _tl_effects_cases, run=_run_tl, oracle=_oracle_head_indirect_effects_tl,
        atol=1e-5,
        hint="hook_z has a head axis of its own: patch z[:, -1, head] and return z. One run per head, plus one "
             "without hooks for the baseline.",
        wrong={"measures the answer's logit, not its probability": partial(_tl_effects_with, measure="logit"),
               "patches the head at every position": partial(_tl_effects_with, where="every"),
               "does not subtract the corrupted baseline": partial(_tl_effects_with, rise=False)},
    ),  # fmt: skip
    Finding(
        "fv_heads", truth=_fv_heads_truth, grade=same_set("a head whose indirect effect is above 0.1"),
        hint="Run head_indirect_effects with the clean antonym means patched into the prompts with uppercase "
             "examples, and keep every head whose effect is above 0.1 (a set, even of one head).",
        wrong={"the previous-token head": {"L0H2"}, "the heads layer 0's ablation showed to matter": {"L0H1", "L0H2"},
               "the three largest effects, whatever their size": {"L0H3", "L1H2", "L2H3"},
               "the top head under shuffled labels": {"L2H3"}, "a name instead of a set": "L0H3"},
    ),  # fmt: skip
    Exercise(
        ref.function_vector, _fv_cases, run=_run, oracle=_oracle_function_vector, atol=1e-4,
        hint="Head h's output is its z times rows h*d_head to (h+1)*d_head of c_proj's weight (Conv1D: x @ W). "
             "Add up those outputs; c_proj's bias is added once per layer whatever the heads do, so it is no head's.",
        wrong={"adds c_proj's bias for each head": _fv_with_bias,
               "takes every n_heads-th row of W_O (the (d_head head) order)": _fv_strided_heads,
               "reads the name as L{head}H{layer}": _fv_layer_head_swapped,
               "averages the heads' outputs instead of summing them": _fv_mean_not_sum},
    ),  # fmt: skip
    Finding(
        "best_fv_site", truth=lambda: max(_fv_site_accuracies(), key=_fv_site_accuracies().get),
        grade=exact("the place where the function vector rescues the most prompts"),
        hint="Try all eight places, including the attention outputs (inside each block, before its MLP), and "
             "answer with the place's name.",
        wrong={"after the whole block of the head": "block0", "where the task vector worked best": "block2",
               "after a later block's attention": "attn2", "a layer index instead of a place": 0,
               "the head instead of a place": "L0H3"},
    ),  # fmt: skip
    Exercise(
        ref.generate_with_vector, _generation_cases, run=_run, oracle=_oracle_generate,
        hint="Use the generation tracer's steps: the first step runs the whole prompt, later ones only the new "
             "token. Add the vector once, at the prompt's last position, and return only the new tokens.",
        wrong={"adds the vector at every step": _generate_every_step,
               "adds it at every position of the prompt": _generate_every_position,
               "never adds the vector": _generate_without_vector},
    ),  # fmt: skip
    Exercise(
        ref.contrast_vector, _contrast_cases, run=_run, oracle=_oracle_contrast_vector, atol=1e-4,
        hint="Positive minus negative, at the last position, averaged over the pairs.",
        wrong={"negative minus positive": _contrast_reversed,
               "averages over every position": _contrast_all_positions,
               "the positive prompts' mean alone": _contrast_positive_only},
    ),  # fmt: skip
    Exercise(
        ref.steered_loss, _loss_cases, run=_run, oracle=_oracle_steered_loss, atol=1e-4,
        hint="Add coefficient * vector to the block's output at every position; then the logits at position p "
             "predict the token at p + 1.",
        wrong={"adds the vector at the last position only": _loss_last_only,
               "compares each position's logits with its own token (no shift)": _loss_unshifted,
               "ignores the coefficient": _loss_no_coefficient},
    ),  # fmt: skip
])  # fmt: skip
