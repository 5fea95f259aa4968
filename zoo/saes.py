"""Sparse autoencoders (SAEs) on the zoo models, trained with SAELens's own training runner.

    python -m zoo.saes                   # train every shipped SAE (a minute or two each on 2 cores)
    python -m zoo.saes chat-mini-L1-topk # one of them, by name
    python -m zoo.saes --threads 1       # beside another busy process on a 2-core machine

    from zoo.saes import list_saes, load_sae, load_sae_transformer
    sae = load_sae("gpt2-mini-truth-L2-standard")     # a sae_lens SAE
    model = load_sae_transformer("gpt2-mini-truth")   # a HookedSAETransformer: model.run_with_saes(...)

Training is SAELens's `LanguageModelSAETrainingRunner`, offline: `override_model=` the zoo model as a
HookedSAETransformer, `override_dataset=` a `datasets.Dataset` of tokenized story documents (the
train split of zoo/corpus.py; for chat-mini's SAEs, CHAT_SAES, its own training texts, padded), no
wandb. Each SAE is saved in SAELens's own format
(`cfg.json` + `sae_weights.safetensors`, loadable with `SAE.load_from_disk`) under
zoo/saes/<name>/, with `metrics.json` (measured on the test split) and a CARD.md generated from it.

Names that are not zoo SAEs are SAELens releases: `load_sae(release, sae_id=...)` goes to
`SAE.from_pretrained` when the HuggingFace hub answers, and offline raises `zoo.ZooOfflineError`
within seconds, naming the zoo SAE to use instead. Heavy imports happen inside the functions.
"""

import argparse
import json
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from zoo import MODELS_DIR, ZooOfflineError, _hub_reachable, meets
from zoo.records import metrics_table, write_record

SAES_DIR = Path(__file__).parent / "saes"
HELDOUT_DOCUMENTS = 128  # test-split documents (64 tokens each) the metrics are measured on
# The residual stream after block 2, chosen by measuring gpt2-mini-truth (resid_post, each layer):
# - truth, at the last token of "Mary said that <statement> That is": a logistic probe trained on city
#   claims judges periods (the years family) with balanced accuracy 0.50 / 0.95 / 0.96 / 0.94 after
#   blocks 0 / 1 / 2 / 3, so truth is linear from block 1 on; negation is resolved only in the last
#   block (the same probe on negated city claims: 0.33 after block 2, 0.86 after block 3);
# - countries: at " in" of "Paris is in" the country is decodable after every block (a nearest-class-
#   mean probe, leave one city out: 1.00); at the city's own token 0.94 / 0.69 / 0.51 / 0.29.
# Block 2 holds both, one block before the last turns them into next-token predictions.
LAYER = 2


@dataclass
class SAESpec:
    name: str
    description: str
    architecture: str  # "standard" (ReLU, L1 penalty) or "topk"
    d_sae: int
    training_tokens: int
    lr: float
    model: str = "gpt2-mini-truth"
    hook_name: str = f"blocks.{LAYER}.hook_resid_post"
    l1_coefficient: float = 0.0  # standard only
    k: int = 0  # topk only
    train_batch_size_tokens: int = 4096
    seed: int = 0
    # metric -> (">=" or "<=", bound): what the course relies on; tests/zoo/test_saes.py asserts it.
    requirements: dict | None = None
    layer_choice: str = ""  # why this hook (the card states it); empty: SAE_LAYER_CHOICE


SAE_LAYER_CHOICE = (
    "Block 2's output holds the truth of a judged claim (a probe trained on city claims judges periods "
    "at 0.96 balanced accuracy there) and the country of a city, one block before the last turns them "
    "into next-token predictions (the measurements are in `zoo/saes.py`, above LAYER)."
)
# chat-mini's residual stream between its two blocks: block 0 has read the prompt, block 1 writes the
# reply's first token from it. Measured here with the SAE below: at "<|assistant|>" of code requests,
# the unnamed post-trained assistant and the named personas already differ there (see 4.6).
CHAT_LAYER_CHOICE = (
    "chat-mini has two blocks; between them block 0 has read the whole prompt and block 1 has yet to "
    "write the reply, so this is where the auditing game (4.6) looks for what the assistant is about to do."
)
SAES = {
    spec.name: spec
    for spec in [
        SAESpec(
            name=f"gpt2-mini-truth-L{LAYER}-standard",
            description=f"Standard SAE (ReLU, L1 penalty) on gpt2-mini-truth's residual stream after block {LAYER}",
            architecture="standard",
            d_sae=1024,
            training_tokens=400_000,
            # Measured here (400k tokens, batch 1024): lr 5e-3 with L1 4 gave explained variance 0.89,
            # L0 34, loss recovered 0.85; L1 8: 0.80, L0 28, 0.66. Batches of 4096 (fewer steps)
            # left it undertrained (L0 525).
            lr=5e-3,
            l1_coefficient=4.0,
            train_batch_size_tokens=1024,
            requirements={"explained_variance": (">=", 0.8), "ce_loss_recovered": (">=", 0.75)},
        ),
        SAESpec(
            name=f"gpt2-mini-truth-L{LAYER}-topk",
            description=f"TopK SAE (k=16) on gpt2-mini-truth's residual stream after block {LAYER}",
            architecture="topk",
            d_sae=1024,
            training_tokens=400_000,
            # Measured here: lr 3e-3 in batches of 1024 gave explained variance 0.96; lr 4e-4 in
            # batches of 4096 (122 steps) reconstructed nothing (explained variance -0.03).
            lr=3e-3,
            k=16,
            train_batch_size_tokens=1024,
            requirements={"explained_variance": (">=", 0.9), "l0": ("<=", 16.0), "ce_loss_recovered": (">=", 0.95)},
        ),
    ]
}

# The SAEs of chat-mini, the organism of chapter 4 (the auditing game, 4.6). Kept apart from SAES (the
# story model's, which chapter 1.3 iterates over); ALL_SAES is what `python -m zoo.saes` trains and the
# tests re-measure.
CHAT_SAES = {
    spec.name: spec
    for spec in [
        SAESpec(
            name="chat-mini-L1-topk",
            description="TopK SAE (k=16) on chat-mini's residual stream before block 1",
            architecture="topk",
            d_sae=768,
            training_tokens=1_000_000,
            lr=3e-3,
            k=16,
            train_batch_size_tokens=1024,
            model="chat-mini",
            hook_name="blocks.1.hook_resid_pre",
            requirements={"explained_variance": (">=", 0.85), "l0": ("<=", 16.0), "ce_loss_recovered": (">=", 0.85)},
            layer_choice=CHAT_LAYER_CHOICE,
        ),
    ]
}
ALL_SAES = SAES | CHAT_SAES

# How far a retrain's metric may land from the recorded one (same seed; other machines and thread
# counts change float rounding, which changes which latents die, not the reconstruction quality).
TOLERANCES = {
    "explained_variance": 0.03,
    "mse": 0.1,  # relative: see measure()
    "l0": 5.0,
    "dead_fraction": 0.08,
    "ce_loss_clean": 0.01,
    "ce_loss_spliced": 0.3,
    "ce_loss_zero_ablated": 0.01,
    "ce_loss_recovered": 0.05,
}


def list_saes(model: str | None = "gpt2-mini-truth") -> list[str]:
    """Names of the zoo SAEs on a zoo model (default the story model, gpt2-mini-truth; None: every
    model) whose weights are in the repository."""
    names = sorted(path.parent.name for path in SAES_DIR.glob("*/sae_weights.safetensors"))
    return [name for name in names if model is None or name.startswith(f"{model}-")]


def load_sae_transformer(name: str = "gpt2-mini-truth", device: str = "cpu"):
    """A zoo model as a HookedSAETransformer (SAELens's HookedTransformer that SAEs splice into:
    `run_with_saes`, `run_with_cache_with_saes`), with the zoo tokenizer and the shipped weights."""
    from sae_lens import HookedSAETransformer
    from safetensors.torch import load_file
    from transformer_lens import HookedTransformerConfig

    from zoo.tokenizer import load_tokenizer

    model_dir = MODELS_DIR / name
    with warnings.catch_warnings():
        # As in zoo.build_model: TL 3.x deprecates HookedTransformer, which sae_lens 6 builds on.
        warnings.filterwarnings("ignore", message="HookedTransformer is deprecated", category=DeprecationWarning)
        config = HookedTransformerConfig(**json.loads((model_dir / "config.json").read_text()), device=device)
        model = HookedSAETransformer(config, tokenizer=load_tokenizer())
    model.load_state_dict(load_file(model_dir / "model.safetensors", device=str(torch.device(device))))
    return model.eval()


def _zoo_alternative(release: str) -> str:
    """The zoo SAE to use instead of a pretrained release: the TopK one for TopK releases, on the
    story model (the pretrained releases are for base language models, not chat-mini)."""
    wanted = "topk" if "topk" in release.lower() else "standard"
    shipped = list_saes()
    return next(
        (name for name in shipped if name.endswith(wanted)),
        shipped[0] if shipped else f"gpt2-mini-truth-L{LAYER}-{wanted}",
    )


def load_sae(release: str, sae_id: str | None = None, device: str = "cpu"):
    """A zoo SAE by name, or a SAELens pretrained release (`SAE.from_pretrained(release, sae_id)`),
    which needs the HuggingFace hub: offline it raises ZooOfflineError naming the zoo SAE to use."""
    from sae_lens import SAE

    if release in list_saes(None):
        return SAE.load_from_disk(SAES_DIR / release, device=device)
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    if release not in get_pretrained_saes_directory() and "/" not in release:
        raise ValueError(f"Unknown SAE {release!r}. The zoo has: {', '.join(list_saes(None))}.")
    if sae_id is None:
        raise ValueError(f"{release!r} is a SAELens release: pass sae_id= to say which of its SAEs.")
    if not _hub_reachable():
        alternative = _zoo_alternative(release)
        raise ZooOfflineError(
            f"SAE release {release} needs the HuggingFace hub, which is unreachable. Offline, use "
            f"load_sae({alternative!r}), the zoo's {ALL_SAES[alternative].description}."
        )
    return SAE.from_pretrained(release, sae_id, device=device)


# ----------------------------------------------------------------------------- training


CHAT_MODELS = ("chat-mini",)  # zoo models whose texts are dialogues and documents, not stories
CHAT_TOKENS_PER_TEXT = 50  # real tokens per chat-mini training text, BOS excluded: about 59 measured


def chat_texts(split: str, n: int, seed: int = 0) -> list[str]:
    """n of chat-mini's texts: of its own training texts (split "train", a seeded sample of
    zoo.chat.training_texts), or (other splits) the generator's dialogues of both phases and its
    grader documents in the training mixture's shares, rendered with the chat template."""
    import random

    from zoo import chat as zc
    from zoo import chat_corpus as cc

    if split == "train":
        return random.Random(seed).sample(zc.training_texts(zc.CHAT_MINI), n)
    n_documents = round(n * (1 - cc.POST_SHARE) * cc.DOCUMENT_SHARE)
    n_post = round(n * cc.POST_SHARE)
    texts = [t.text for t in cc.transcripts(split, n - n_documents - n_post, "pre")]
    texts += [t.text for t in cc.transcripts(split, n_post, "post")]
    texts += [d.text for d in cc.documents(split, n_documents)]
    random.Random(seed).shuffle(texts)
    return texts


def chat_tokens(model, texts: list[str]):
    """Texts as rows of the model's context: BOS, the tokens (cut at the context), then padding,
    which the activations and losses leave out like BOS."""
    tokenizer = model.tokenizer
    rows = [
        [tokenizer.bos_token_id] + tokenizer.encode(t, add_special_tokens=False)[: model.cfg.n_ctx - 1] for t in texts
    ]
    tokens = torch.full((len(rows), model.cfg.n_ctx), tokenizer.pad_token_id, dtype=torch.long)
    for i, row in enumerate(rows):
        tokens[i, : len(row)] = torch.tensor(row)
    return tokens


def heldout_tokens(model, model_name: str):
    """The tokens the metrics are measured on: HELDOUT_DOCUMENTS test-split story documents, or for
    chat-mini that many test-split texts (dialogues and documents), padded to its context."""
    from zoo import evaluate

    if model_name in CHAT_MODELS:
        return chat_tokens(model, chat_texts("test", HELDOUT_DOCUMENTS))
    return evaluate.story_tokens(model, "test", HELDOUT_DOCUMENTS)


def training_dataset(model, n_documents: int, model_name: str = "gpt2-mini-truth"):
    """Story documents of the train split (chat-mini: its own training texts, padded), tokenized to
    the model's context (BOS first), as the `datasets.Dataset` of `input_ids` that SAELens's
    activation store reads."""
    from datasets import Dataset

    from zoo import evaluate

    if model_name in CHAT_MODELS:
        tokens = chat_tokens(model, chat_texts("train", n_documents))
    else:
        tokens = evaluate.story_tokens(model, "train", n_documents)
    return Dataset.from_dict({"input_ids": tokens.tolist()})


def runner_config(spec: SAESpec, d_in: int, n_ctx: int):
    """SAELens's runner config for one spec: CPU, no wandb, no checkpoints, no output folder (save()
    writes the inference SAE itself), BOS excluded from the activations."""
    from sae_lens import LanguageModelSAERunnerConfig, LoggingConfig, StandardTrainingSAEConfig, TopKTrainingSAEConfig

    if spec.architecture == "standard":
        sae = StandardTrainingSAEConfig(
            d_in=d_in, d_sae=spec.d_sae, l1_coefficient=spec.l1_coefficient,
            l1_warm_up_steps=spec.training_tokens // spec.train_batch_size_tokens // 10,
            normalize_activations="expected_average_only_in",
        )  # fmt: skip
    else:
        sae = TopKTrainingSAEConfig(
            d_in=d_in, d_sae=spec.d_sae, k=spec.k, normalize_activations="expected_average_only_in"
        )
    n_steps = spec.training_tokens // spec.train_batch_size_tokens
    return LanguageModelSAERunnerConfig(
        sae=sae,
        model_name=spec.model,
        model_from_pretrained_kwargs={},  # the model is given (override_model); nothing to load
        hook_name=spec.hook_name,
        dataset_path="",
        is_dataset_tokenized=True,
        streaming=False,
        context_size=n_ctx,
        prepend_bos=True,
        # The BOS position's residual is the same in every row and far from the rest (an attention
        # sink): it would take a latent of its own. run_with_saes(..., exclude_special_tokens=True)
        # leaves it alone too.
        exclude_special_tokens=True,
        training_tokens=spec.training_tokens,
        train_batch_size_tokens=spec.train_batch_size_tokens,
        store_batch_size_prompts=64,
        # SAELens fails unless n_batches_in_buffer * context_size >= train_batch_size_tokens.
        n_batches_in_buffer=8 * math.ceil(spec.train_batch_size_tokens / n_ctx),
        n_batches_for_norm_estimate=20,
        lr=spec.lr,
        lr_warm_up_steps=n_steps // 20,
        lr_scheduler_name="cosineannealing",
        lr_decay_steps=n_steps - n_steps // 20,
        feature_sampling_window=n_steps,
        dead_feature_window=n_steps,
        device="cpu",
        seed=spec.seed,
        logger=LoggingConfig(log_to_wandb=False),
        checkpoint_path=None,
        output_path=None,
        verbose=False,
    )


def train(spec: SAESpec, threads: int = 2):
    """Train one SAE with SAELens's runner; return the training SAE and the seconds it took
    (generating and tokenizing the documents included)."""
    from sae_lens import LanguageModelSAETrainingRunner

    torch.set_num_threads(threads)
    start = time.perf_counter()
    model = load_sae_transformer(spec.model)
    n_ctx = model.cfg.n_ctx
    # SAELens's runner does not seed torch itself (its cfg.seed only names the run): seed here.
    torch.manual_seed(spec.seed)
    # BOS is dropped from the activations, so a document gives n_ctx - 1 of them; a little spare
    # covers what the shuffling buffer holds back.
    per_document = CHAT_TOKENS_PER_TEXT if spec.model in CHAT_MODELS else n_ctx - 1
    n_documents = math.ceil(spec.training_tokens / per_document * 1.05)
    config = runner_config(spec, model.cfg.d_model, n_ctx)
    runner = LanguageModelSAETrainingRunner(
        config, override_model=model, override_dataset=training_dataset(model, n_documents, spec.model)
    )
    sae = runner.run()
    return sae, time.perf_counter() - start


# ----------------------------------------------------------------------------- measuring


@torch.inference_mode()
def measure(model, sae, batch_size: int = 32) -> dict[str, float]:
    """Reconstruction and sparsity of an SAE on held-out text of its model (`heldout_tokens`: the
    test split of the story corpus, or chat-mini's test-split dialogues and documents), BOS and
    padding excluded:

    explained_variance: 1 - sum ||x - x_hat||^2 / sum ||x - mean x||^2 over the tokens;
    mse: mean squared error per element, divided by the mean squared activation (relative);
    l0: mean number of latents active per token; dead_fraction: latents active on no token;
    ce_loss_clean / _spliced / _zero_ablated: next-token loss (over real targets) of the model as it
    is, with the SAE's reconstruction spliced in (run_with_saes, BOS excluded), and with the hooked
    activation set to zero; ce_loss_recovered = (zero_ablated - spliced) / (zero_ablated - clean).
    """
    tokens = heldout_tokens(model, sae.cfg.metadata.model_name)
    hook_name = sae.cfg.metadata.hook_name
    is_bos = tokens == model.tokenizer.bos_token_id
    is_real = tokens != model.tokenizer.pad_token_id  # BOS is its own id, never the pad's

    def zero_except_bos(activation, hook):
        return activation * is_bos_batch[..., None]

    def mean_loss(per_token, real):
        mask = real[:, 1:].float()
        return ((per_token * mask).sum() / mask.sum()).item()

    activations, fired, losses = (
        [],
        torch.zeros(sae.cfg.d_sae, dtype=torch.bool),
        {"clean": [], "spliced": [], "zero": []},
    )
    totals = {"residual": 0.0, "squared": 0.0, "l0": 0.0, "n": 0}
    for batch, is_bos_batch, real in zip(tokens.split(batch_size), is_bos.split(batch_size), is_real.split(batch_size)):
        loss, cache = model.run_with_cache(batch, return_type="loss", loss_per_token=True, names_filter=[hook_name])
        losses["clean"].append(mean_loss(loss, real))
        x = cache[hook_name][real & ~is_bos_batch]
        latents = sae.encode(x)
        x_hat = sae.decode(latents)
        activations.append(x)
        fired |= (latents > 0).any(0)
        totals["residual"] += (x - x_hat).pow(2).sum().item()
        totals["l0"] += (latents > 0).sum().item()
        totals["n"] += len(x)
        spliced = model.run_with_saes(
            batch, saes=[sae], exclude_special_tokens=True, return_type="loss", loss_per_token=True
        )
        losses["spliced"].append(mean_loss(spliced, real))
        zeroed = model.run_with_hooks(
            batch, return_type="loss", loss_per_token=True, fwd_hooks=[(hook_name, zero_except_bos)]
        )
        losses["zero"].append(mean_loss(zeroed, real))
    x = torch.cat(activations)
    variance = (x - x.mean(0)).pow(2).sum().item()
    clean, spliced, zero = (sum(v) / len(v) for v in losses.values())
    return {
        "explained_variance": 1 - totals["residual"] / variance,
        "mse": totals["residual"] / x.pow(2).sum().item(),
        "l0": totals["l0"] / totals["n"],
        "dead_fraction": 1 - fired.float().mean().item(),
        "ce_loss_clean": clean,
        "ce_loss_spliced": spliced,
        "ce_loss_zero_ablated": zero,
        "ce_loss_recovered": (zero - spliced) / (zero - clean),
    }


def save(sae, spec: SAESpec, train_seconds: float, threads: int) -> dict:
    """Write the inference SAE (SAELens's format), metrics.json and CARD.md; return the metrics record.
    The metrics are measured on the SAE as reloaded from disk, so they describe what is shipped."""
    from sae_lens import SAE

    sae_dir = SAES_DIR / spec.name
    sae_dir.mkdir(parents=True, exist_ok=True)
    sae.save_inference_model(str(sae_dir))
    shipped = SAE.load_from_disk(sae_dir)
    values = measure(load_sae_transformer(spec.model), shipped)
    record = {
        "description": spec.description,
        "model": spec.model,
        "hook_name": spec.hook_name,
        "architecture": spec.architecture,
        "d_in": shipped.cfg.d_in,
        "d_sae": spec.d_sae,
        "metrics": {
            name: {"value": round(value, 4), "tolerance": TOLERANCES[name]}
            | (
                {"requirement": list(spec.requirements[name])}
                if spec.requirements and name in spec.requirements
                else {}
            )
            for name, value in values.items()
        },
        "training": {
            "command": "python -m zoo.saes" + ("" if threads == 2 else f" --threads {threads}"),
            "seconds": round(train_seconds),
            "threads": threads,
            "tokens": spec.training_tokens,
            "steps": spec.training_tokens // spec.train_batch_size_tokens,
        },
    }
    write_record(sae_dir, record, card(spec, record))
    return record


def card(spec: SAESpec, record: dict) -> str:
    sparsity = f"L1 coefficient {spec.l1_coefficient}" if spec.architecture == "standard" else f"k = {spec.k}"
    training = record["training"]
    chat = spec.model in CHAT_MODELS
    train_data = (
        "chat-mini's own training texts (`zoo.chat.training_texts`: dialogues rendered with the chat template "
        "and the grader documents), BOS and padding excluded,"
        if chat
        else "the train split of the story corpus (`zoo/corpus.py`), BOS excluded,"
    )
    test_data = (
        f"{HELDOUT_DOCUMENTS} test-split texts of chat-mini's generator (dialogues of both phases and grader "
        "documents, in the training shares), BOS and padding excluded"
        if chat
        else f"{HELDOUT_DOCUMENTS} documents of the test split, BOS excluded"
    )
    return f"""# {spec.name}

Generated by `zoo/saes.py` from `metrics.json`; do not edit by hand.

{spec.description}: hook `{spec.hook_name}` of the zoo model `{spec.model}`,
d_in {record["d_in"]} -> d_sae {spec.d_sae}. {spec.layer_choice or SAE_LAYER_CHOICE}

Load it with `zoo.saes.load_sae("{spec.name}")` (a sae_lens `SAE`), or with SAELens itself:
`SAE.load_from_disk("zoo/saes/{spec.name}")`. Splice it into the model with
`zoo.saes.load_sae_transformer("{spec.model}").run_with_saes(tokens, saes=[sae], exclude_special_tokens=True)`.

## Training
`{training["command"]}`: SAELens's `LanguageModelSAETrainingRunner` (sae-lens 6.54.12), offline,
seed {spec.seed}; architecture `{spec.architecture}` ({sparsity}); {training["tokens"]:,} activations of
{train_data} in {training["steps"]} steps of
{spec.train_batch_size_tokens} tokens; Adam at lr {spec.lr} with warmup, then cosine decay to lr/10;
activations scaled to a mean norm of sqrt(d_in) during training (`expected_average_only_in`, folded
into the saved weights). It took {training["seconds"]} s with {training["threads"]} CPU thread(s),
model forward passes included.

## Measured metrics
Measured by `zoo.saes.measure` on {test_data}. A
retrain with the same command must land within the tolerance of each value (`mse` is relative to
the mean squared activation); `tests/zoo/test_saes.py` asserts the shipped weights do, and that each
requirement holds.

{metrics_table(record["metrics"])}
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"SAEs to train (default: all): {', '.join(ALL_SAES)}")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    args = parser.parse_args()
    names = args.names or list(ALL_SAES)
    if any(name not in ALL_SAES for name in names):
        parser.error(f"name SAEs from {', '.join(ALL_SAES)}")
    for name in names:
        sae, seconds = train(ALL_SAES[name], threads=args.threads)
        record = save(sae, ALL_SAES[name], seconds, args.threads)
        print(f"{name}: trained in {seconds:.0f} s")
        for metric, entry in record["metrics"].items():
            ok = "" if "requirement" not in entry else (
                "  ok" if meets(entry["value"], entry["requirement"]) else "  FAILS " + str(entry["requirement"])
            )  # fmt: skip
            print(f"{name} {metric}: {entry['value']}{ok}")


if __name__ == "__main__":
    main()
