"""Export a zoo model to a local Hugging Face folder (GPT2LMHeadModel + tokenizer), for the field's
libraries that work on Hugging Face models: nnsight, peft.

    from zoo.hf import export_hf
    from nnsight import LanguageModel
    model = LanguageModel(str(export_hf("gpt2-mini-truth")), dispatch=True)

The export is exact (same logits as zoo.load_model, tests/zoo/test_hf.py), because zoo models keep
their unembedding bias at zero as GPT-2 does. Its tokenizer prepends the BOS token, as
TransformerLens does for zoo models, so the same text gives the same tokens and the same logits.
"""

import copy
import json
import os
import shutil
from pathlib import Path

import torch

from zoo import MODELS_DIR


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
    """The Hugging Face folder of zoo model `name` (zoo/models/<name>/hf/), written on first use
    and rewritten whenever the weights are newer."""
    from zoo import load_model

    weights = MODELS_DIR / name / "model.safetensors"
    directory = MODELS_DIR / name / "hf"
    if not (directory / "model.safetensors").exists() or directory.stat().st_mtime < weights.stat().st_mtime:
        # Written beside and renamed into place, so a reader never sees a half-written folder.
        staging = directory.with_name(f"hf.{os.getpid()}.tmp")
        save_hf(load_model(name, device="cpu"), staging)
        shutil.rmtree(directory, ignore_errors=True)
        staging.rename(directory)
    return directory


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
    hf_model = GPT2LMHeadModel(hf_config)
    with torch.no_grad():
        missing, unexpected = hf_model.load_state_dict(_gpt2_state_dict(model), strict=False)
    # The causal-mask buffers are the only parameters left out.
    assert not unexpected and all(".attn.bias" in m or "masked_bias" in m for m in missing), (missing, unexpected)
    directory.mkdir(parents=True, exist_ok=True)
    hf_model.save_pretrained(directory)

    tokenizer = copy.deepcopy(model.tokenizer)
    bos = tokenizer.bos_token
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", special_tokens=[(bos, tokenizer.bos_token_id)]
    )
    tokenizer.save_pretrained(directory)
    # transformers 5 writes "TokenizersBackend", which transformers 4 cannot read.
    config_path = directory / "tokenizer_config.json"
    tokenizer_config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps(tokenizer_config | {"tokenizer_class": "PreTrainedTokenizerFast"}, indent=2))
