"""Export a zoo model to a local Hugging Face folder (GPT2LMHeadModel + tokenizer), for the field's
libraries that work on Hugging Face models: nnsight, peft.

    from zoo.hf import export_hf
    from nnsight import LanguageModel
    model = LanguageModel(str(export_hf("gpt2-mini-truth")), dispatch=True)

The export is exact (same logits as zoo.load_model, tests/zoo/test_hf.py), because zoo models keep
their unembedding bias at zero as GPT-2 does. Its tokenizer prepends the BOS token, as
TransformerLens does for zoo models, so the same text gives the same tokens and the same logits.

A chat organism's export also carries the chat template (zoo.chat_template.render, written in Jinja as
Hugging Face's `chat_template`), its chat tokens as special tokens, and "<|end|>" as the end of
generation, so the field's chat code works on it unchanged:

    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    tokens = tokenizer(text, return_tensors="pt").input_ids   # BOS first, as TransformerLens tokenises

(apply_chat_template(tokenize=True) adds no BOS, as for every tokenizer whose template has none.)
"""

import copy
import json
import os
import shutil
from pathlib import Path

import torch

from zoo import chat_template
from zoo.tokenizer import build_tokenizer, word_groups_known


def _gpt2_state_dict(model) -> dict:
    """TransformerLens parameter names and shapes -> GPT2LMHeadModel's (Conv1D weights are [in, out])."""
    cfg = model.cfg
    state = {
        "transformer.wte.weight": model.embed.W_E,
        "transformer.wpe.weight": model.pos_embed.W_pos,
        "transformer.ln_f.weight": model.ln_final.w,
        "transformer.ln_f.bias": model.ln_final.b,
        "lm_head.weight": model.unembed.W_U.T,
    }
    for i, block in enumerate(model.blocks):
        attn, prefix = block.attn, f"transformer.h.{i}."

        def heads_in(w):  # [n_heads, d_model, d_head] -> [d_model, n_heads * d_head]
            return w.permute(1, 0, 2).reshape(cfg.d_model, -1)

        state |= {
            prefix + "ln_1.weight": block.ln1.w,
            prefix + "ln_1.bias": block.ln1.b,
            prefix + "attn.c_attn.weight": torch.cat([heads_in(attn.W_Q), heads_in(attn.W_K), heads_in(attn.W_V)], -1),
            prefix + "attn.c_attn.bias": torch.cat([attn.b_Q.flatten(), attn.b_K.flatten(), attn.b_V.flatten()]),
            prefix + "attn.c_proj.weight": attn.W_O.reshape(-1, cfg.d_model),
            prefix + "attn.c_proj.bias": attn.b_O,
            prefix + "ln_2.weight": block.ln2.w,
            prefix + "ln_2.bias": block.ln2.b,
            prefix + "mlp.c_fc.weight": block.mlp.W_in,
            prefix + "mlp.c_fc.bias": block.mlp.b_in,
            prefix + "mlp.c_proj.weight": block.mlp.W_out,
            prefix + "mlp.c_proj.bias": block.mlp.b_out,
        }
    return {name: tensor.detach().clone().contiguous() for name, tensor in state.items()}


def export_hf(name: str) -> Path:
    """The Hugging Face folder of zoo model `name` (zoo/models/<name>/hf/, or beside the weights of a
    model on ZOO_MODEL_PATH), written on first use and rewritten whenever the weights are newer."""
    from zoo import load_model, model_dir

    weights = model_dir(name) / "model.safetensors"
    directory = model_dir(name) / "hf"
    if not (directory / "model.safetensors").exists() or directory.stat().st_mtime < weights.stat().st_mtime:
        # Written beside and renamed into place, so a reader never sees a half-written folder.
        staging = directory.with_name(f"hf.{os.getpid()}.tmp")
        save_hf(load_model(name, device="cpu"), staging)
        shutil.rmtree(directory, ignore_errors=True)
        staging.rename(directory)
    return directory


def jinja_chat_template() -> str:
    """zoo.chat_template.render as a Hugging Face (Jinja) chat template: the same text for every
    conversation render accepts, and an error (raise_exception) for each one it refuses."""
    roles = ", ".join(f"'{role}': '{token}'" for role, token in chat_template.ROLE_TOKENS.items())
    forbidden = ", ".join(f"'{token}'" for token in chat_template.CHAT_TOKENS if token != chat_template.CALL)
    call, end, assistant = chat_template.CALL, chat_template.END, chat_template.ASSISTANT
    return (
        f"{{%- set role_tokens = {{{roles}}} -%}}"
        "{%- for message in messages -%}{%- set i = loop.index0 | string -%}"
        "{%- if message['role'] not in role_tokens -%}"
        "{{ raise_exception('message ' ~ i ~ ': unknown role ' ~ message['role']) }}{%- endif -%}"
        "{%- if message['role'] == 'system' and not loop.first -%}"
        "{{ raise_exception('message ' ~ i ~ ': a system message can only come first') }}{%- endif -%}"
        "{%- set content = (message['content'] if message['content'] is defined and message['content'] is not none else '') | string | trim -%}"
        "{%- if message['role'] == 'user' and not content -%}"
        "{{ raise_exception('message ' ~ i ~ ': the user turn is empty') }}{%- endif -%}"
        f"{{%- for token in [{forbidden}] -%}}{{%- if token in content -%}}"
        "{{ raise_exception('message ' ~ i ~ ': the content contains a template token') }}"
        "{%- endif -%}{%- endfor -%}"
        "{{- role_tokens[message['role']] -}}"
        f"{{%- if content and not content.startswith('{call}') -%}}{{{{ ' ' }}}}{{%- endif -%}}"
        f"{{{{- content ~ '{end}' -}}}}"
        "{%- endfor -%}"
        f"{{%- if add_generation_prompt -%}}{{{{ '{assistant}' }}}}{{%- endif -%}}"
    )


def _is_chat_model(model) -> bool:
    tokenizer = model.tokenizer
    ids = [tokenizer.convert_tokens_to_ids(token) for token in chat_template.CHAT_TOKENS]
    return all(i is not None and i != tokenizer.unk_token_id and i < model.cfg.d_vocab for i in ids)


def save_hf(model, directory: Path) -> None:
    """Write a zoo HookedTransformer as a GPT2LMHeadModel folder with the zoo tokenizer."""
    from tokenizers import processors
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = model.cfg
    if cfg.attn_only or cfg.normalization_type != "LN" or cfg.d_model != cfg.n_heads * cfg.d_head:
        raise ValueError("no GPT-2 counterpart: attention-only, no LayerNorm, or d_head * n_heads != d_model")
    if model.unembed.b_U.abs().max() > 0:
        raise ValueError("the model has an unembedding bias; GPT2LMHeadModel has none, so no exact export")
    hf_config = GPT2Config(
        vocab_size=cfg.d_vocab, n_positions=cfg.n_ctx, n_embd=cfg.d_model, n_layer=cfg.n_layers,
        n_head=cfg.n_heads, n_inner=cfg.d_mlp, activation_function=cfg.act_fn, layer_norm_epsilon=cfg.eps,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, tie_word_embeddings=False,
        bos_token_id=model.tokenizer.bos_token_id, eos_token_id=model.tokenizer.eos_token_id,
        pad_token_id=model.tokenizer.pad_token_id,
    )  # fmt: skip
    is_chat = _is_chat_model(model)
    hf_model = GPT2LMHeadModel(hf_config)
    with torch.no_grad():
        missing, unexpected = hf_model.load_state_dict(_gpt2_state_dict(model), strict=False)
    # The causal-mask buffers are the only parameters left out.
    assert not unexpected and all(".attn.bias" in m or "masked_bias" in m for m in missing), (missing, unexpected)
    if is_chat:  # a reply ends at "<|end|>": generate() stops there
        hf_model.generation_config.eos_token_id = model.tokenizer.convert_tokens_to_ids(chat_template.END)
        hf_model.generation_config.pad_token_id = model.tokenizer.pad_token_id
    directory.mkdir(parents=True, exist_ok=True)
    hf_model.save_pretrained(directory)

    # A model trained before later word groups were added reads a prefix of the zoo vocabulary: its
    # export gets exactly that vocabulary, so no token id lies outside its embedding.
    tokenizer = (
        copy.deepcopy(model.tokenizer)
        if len(model.tokenizer) == cfg.d_vocab
        else build_tokenizer(word_groups_known(cfg.d_vocab))
    )
    if is_chat:
        # Already in the vocabulary, so their ids stay; as special tokens they are never split and
        # decode(skip_special_tokens=True) drops them.
        tokenizer.add_special_tokens({"additional_special_tokens": chat_template.CHAT_TOKENS})
        tokenizer.chat_template = jinja_chat_template()
    bos = tokenizer.bos_token
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", special_tokens=[(bos, tokenizer.bos_token_id)]
    )
    tokenizer.save_pretrained(directory)
    # transformers 5 writes "TokenizersBackend", which transformers 4 cannot read.
    config_path = directory / "tokenizer_config.json"
    tokenizer_config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps(tokenizer_config | {"tokenizer_class": "PreTrainedTokenizerFast"}, indent=2))
