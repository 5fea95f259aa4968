"""The zoo's transcoders: hooked where the MLPs read and write, loaded with the API chapter 1.4.2 codes
against, and still measuring what their metrics.json records."""

import json

import pytest
import torch

from zoo import evaluate, load_model, meets
from zoo import transcoders as tcs
from zoo.transcoders import Transcoder, load_transcoders, replaced_mlps

MODEL = "gpt2-mini"


def recorded() -> dict:
    return json.loads((tcs.TRANSCODERS_DIR / MODEL / "metrics.json").read_text())


@pytest.fixture(scope="module")
def model():
    return load_model(MODEL, device="cpu")


@pytest.fixture(scope="module")
def transcoders():
    return load_transcoders(MODEL)


@pytest.fixture(scope="module")
def tokens(model):
    return evaluate.story_tokens(model, "test", 8)


def test_hooks_are_what_each_mlp_reads_and_writes(model, tokens):
    _, cache = model.run_with_cache(tokens)
    for layer, block in enumerate(model.blocks):
        x, mlp_out = cache[tcs.hook_in(layer)], cache[tcs.hook_out(layer)]
        # TransformerLens 3.x hooks LayerNorm's output before its weight and bias, and the zoo does not
        # fold LayerNorm: the MLP reads an affine function of hook_in, which the encoder absorbs. If
        # either changes, the transcoders read the wrong vector and this fails.
        torch.testing.assert_close(block.mlp(x * block.ln2.w + block.ln2.b), mlp_out)
        torch.testing.assert_close(x.mean(-1), torch.zeros(x.shape[:-1]), atol=1e-5, rtol=0)
        torch.testing.assert_close(x.pow(2).mean(-1), torch.ones(x.shape[:-1]), atol=1e-3, rtol=0)
        assert not torch.allclose(block.ln2.w, torch.ones_like(block.ln2.w))  # the affine map is real


def test_load_transcoders_returns_the_api(transcoders):
    cfg = json.loads((tcs.TRANSCODERS_DIR / MODEL / "cfg.json").read_text())
    assert tcs.list_transcoders() == [MODEL]
    assert len(transcoders) == cfg["n_layers"] == 4
    for layer, tc in enumerate(transcoders):
        assert type(tc) is Transcoder and not tc.training
        assert tc.layer == layer and tc.d_transcoder == cfg["d_transcoder"] == tcs.SPECS[MODEL].d_transcoder
        assert tc.hook_in == f"blocks.{layer}.ln2.hook_normalized" == cfg["hook_in"].format(layer=layer)
        assert tc.hook_out == f"blocks.{layer}.hook_mlp_out" == cfg["hook_out"].format(layer=layer)
        shapes = {name: tuple(p.shape) for name, p in tc.named_parameters()}
        d, n = cfg["d_model"], tc.d_transcoder
        assert shapes == {"W_enc": (d, n), "b_enc": (n,), "W_dec": (n, d), "b_dec": (d,)}
        assert all(p.device.type == "cpu" and not p.requires_grad for p in tc.parameters())
        x = torch.randn(2, 3, d)
        features = tc.encode(x)
        assert features.shape == (2, 3, n) and (features >= 0).all()
        torch.testing.assert_close(features, torch.relu(x @ tc.W_enc + tc.b_enc))
        torch.testing.assert_close(tc.decode(features), features @ tc.W_dec + tc.b_dec)
        torch.testing.assert_close(tc(x), tc.decode(features))


def test_unknown_model_names_the_zoo_transcoders():
    with pytest.raises(ValueError, match=MODEL):
        load_transcoders("no-such-model")


def test_replaced_mlps_splices_every_position_but_bos_and_cleans_up(model, transcoders, tokens):
    clean_loss, clean = model.run_with_cache(tokens, return_type="loss")
    with replaced_mlps(model, []):
        torch.testing.assert_close(model(tokens, return_type="loss"), clean_loss)
    tc = transcoders[1]
    with replaced_mlps(model, [tc]):
        _, cache = model.run_with_cache(tokens)
    expected = tc(cache[tc.hook_in])
    expected[:, 0] = cache[tc.hook_out][:, 0]  # the BOS keeps the real MLP output
    torch.testing.assert_close(cache[tc.hook_out], expected)
    torch.testing.assert_close(cache[tcs.hook_out(0)], clean[tcs.hook_out(0)])  # layer 0 untouched
    with replaced_mlps(model, [], zero_layers=(2,)):
        _, cache = model.run_with_cache(tokens)
    assert (cache[tcs.hook_out(2)][:, 1:] == 0).all() and (cache[tcs.hook_out(2)][:, 0] != 0).any()
    torch.testing.assert_close(model(tokens, return_type="loss"), clean_loss)  # no hook left behind


def assert_matches(measured: dict, entries: dict):
    assert measured.keys() == entries.keys()
    for metric, entry in entries.items():
        assert measured[metric] == pytest.approx(entry["value"], abs=entry["tolerance"]), metric
        if "requirement" in entry:
            assert meets(measured[metric], entry["requirement"]), (metric, entry["requirement"])


def assert_measures_record(model, transcoders, record):
    measured = tcs.measure(model, transcoders)
    assert measured["layers"].keys() == record["layers"].keys()
    for layer, entries in record["layers"].items():
        assert_matches(measured["layers"][layer], entries)
    assert_matches(measured["all_layers"], record["all_layers"])
    behaviour = record["all_layers_behaviour"]
    assert_matches(tcs.behaviour_metrics(model, transcoders), behaviour["spliced"])
    assert tcs.behaviour_metrics(model, []) == pytest.approx(behaviour["clean"], abs=1e-3)


def test_shipped_transcoders_measure_their_metrics(model, transcoders):
    assert_measures_record(model, transcoders, recorded())


def test_card_states_the_recorded_metrics():
    card = (tcs.TRANSCODERS_DIR / MODEL / "CARD.md").read_text()
    record = recorded()
    assert record["training"]["command"] in card and "python -m zoo.transcoders" in card
    for metric in record["layers"]["0"]:
        values = " | ".join(str(record["layers"][layer][metric]["value"]) for layer in record["layers"])
        assert f"| {metric} | {values} |" in card
    for metric, entry in record["all_layers"].items():
        assert f"| {metric} | {entry['value']} |" in card
    for metric, entry in record["all_layers_behaviour"]["spliced"].items():
        assert f"| {metric} | {record['all_layers_behaviour']['clean'][metric]} | {entry['value']} |" in card


def test_recorded_spec_is_the_training_spec():
    training = recorded()["training"]
    spec = tcs.SPECS[MODEL]
    assert {name: training[name] for name in vars(spec)} == vars(spec)


@pytest.mark.slow
def test_quick_retrain_reaches_its_stated_quality(model):
    trained, _ = tcs.train(tcs.QUICK_CHECK, threads=torch.get_num_threads())
    measured = tcs.measure(model, trained)
    requirements = tcs.QUICK_CHECK_REQUIREMENTS
    for layer, metrics in measured["layers"].items():
        assert meets(metrics["explained_variance"], requirements["explained_variance"]), (layer, metrics)
    recovered = measured["all_layers"]["ce_loss_recovered"]
    assert meets(recovered, requirements["all_layers_ce_loss_recovered"]), recovered
