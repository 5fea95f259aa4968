"""The Hugging Face export of a zoo model computes what the zoo model computes."""

import pytest
import torch
from transformers import AutoTokenizer, GPT2LMHeadModel

import zoo
from zoo import corpus
from zoo.hf import export_hf, save_hf
from zoo.train import ZOO

PROMPTS = ["When Mary and John went to the store, John gave a drink to", " hot: cold, big: small, fast:"]


def test_gpt2_mini_export_matches_the_zoo_model():
    model = zoo.load_model("gpt2-mini-truth", device="cpu")
    directory = export_hf("gpt2-mini-truth")
    hf_model = GPT2LMHeadModel.from_pretrained(directory).eval()
    tokenizer = AutoTokenizer.from_pretrained(directory)
    for prompt in PROMPTS:
        tokens = model.to_tokens(prompt)
        hf_tokens = tokenizer(prompt, return_tensors="pt").input_ids
        assert torch.equal(hf_tokens, tokens)  # the export's tokenizer prepends BOS, as TransformerLens does
        with torch.inference_mode():
            assert torch.allclose(hf_model(hf_tokens).logits, model(tokens), atol=1e-4)


def test_a_model_with_an_unembedding_bias_is_refused(tmp_path):
    model = zoo.build_model(ZOO["gpt2-mini"].model_config())
    with torch.no_grad():
        model.unembed.b_U[corpus.single_token_id(model.tokenizer, " Mary")] = 1.0
    with pytest.raises(ValueError, match="unembedding bias"):
        save_hf(model, tmp_path)


def test_attention_only_models_are_refused(tmp_path):
    with pytest.raises(ValueError, match="attention-only"):
        save_hf(zoo.load_model("attn-only-2l", device="cpu"), tmp_path)
