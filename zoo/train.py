"""Train the zoo models, measure them, and write weights, config, metrics and card.

    python -m zoo.train --all              # every zoo model, 12 min on 2 idle CPU cores
    python -m zoo.train attn-only-2l       # one model

Each model's directory zoo/models/<name>/ gets model.safetensors, config.json (the
HookedTransformerConfig fields), metrics.json (measured by zoo/evaluate.py, with the tolerance a
retrain must reproduce and the requirement the course relies on) and CARD.md generated from them.
"""

import argparse
import json
import math
import time
from dataclasses import dataclass, field

import torch
from safetensors.torch import save_file
from tqdm import tqdm
from transformer_lens import HookedTransformer

from zoo import MODELS_DIR, build_model, corpus, evaluate, meets
from zoo.corpus import repeated_span_tokens
from zoo.records import metrics_table, write_record
from zoo.tokenizer import vocabulary, word_groups_known


@dataclass
class TrainingConfig:
    name: str
    description: str
    purpose: str
    model: dict  # HookedTransformerConfig fields (d_vocab and seed are added below)
    n_steps: int
    batch_size: int = 32
    random_fraction: float = 0.0  # share of each batch that is repeated-span random tokens
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 100
    seed: int = 0
    # metric -> (">=" or "<=", bound): what the course relies on; tests assert it.
    requirements: dict = field(default_factory=dict)
    # Word groups of the vocabulary the model knows (None: all). Models trained before a group was
    # added keep the smaller vocabulary: the ids they know are a prefix of today's.
    n_word_groups: int | None = None

    def model_config(self) -> dict:
        return self.model | {"d_vocab": len(vocabulary(self.n_word_groups)), "seed": self.seed}


ATTN_ONLY = dict(
    d_model=64, n_heads=4, d_head=16, n_ctx=64, attn_only=True, normalization_type="LN",
    # Measured here: induction forms ~2x sooner with standard than with shortformer positions.
    positional_embedding_type="standard",
)  # fmt: skip

GPT2_MINI = dict(
    n_layers=4, d_model=128, n_heads=4, d_head=32, d_mlp=512, n_ctx=64, act_fn="gelu_new",
    normalization_type="LN", positional_embedding_type="standard",
)  # fmt: skip

ZOO = {
    config.name: config
    for config in [
        TrainingConfig(
            name="attn-only-1l",
            description="1-layer attention-only model",
            purpose="Direct-path and skip-trigram circuits: one layer cannot compose heads, "
            "so it has no induction heads (the contrast with attn-only-2l).",
            model=ATTN_ONLY | {"n_layers": 1},
            n_steps=1500,
            random_fraction=0.5,
            n_word_groups=1,
        ),
        TrainingConfig(
            name="attn-only-2l",
            description="2-layer attention-only model",
            purpose="Induction circuits: a previous-token head in layer 0 composes with "
            "induction heads in layer 1 (K-composition).",
            # Only repeated-span random rows. Measured here: with a quarter of each batch story
            # text, the layer-0 heads learned blurred positional kernels that serve story text
            # (best previous-token score 0.50, the rest of the attention on the current token and
            # the 2-4 before it), and the same with d_head 32 (0.41 at step 2500). On random
            # tokens the only useful layer-0 computation is "what was the previous token".
            model=ATTN_ONLY | {"n_layers": 2},
            n_steps=4000,
            random_fraction=1.0,
            lr=2e-3,
            requirements={"previous_token_score": (">=", 0.8), "induction_score": (">=", 0.8)},
            n_word_groups=1,
        ),
        TrainingConfig(
            name="gpt2-mini",
            description="GPT-2-architecture model (4 layers, d_model 128, MLPs with GELU)",
            purpose="The course's stand-in for GPT-2 small: IOI circuit analysis, activation "
            "patching, year comparison (the greater-than task), probing facts, SAEs.",
            # Measured here: at n_ctx 128, 1500 steps, lr 1e-3 and 10% random rows, IOI stayed at
            # chance (41%, the model named the most recent name) and no induction head formed.
            # Shorter rows buy twice the updates for the same compute; every prompt the course
            # uses fits in 64 tokens.
            model=GPT2_MINI,
            n_steps=3000,
            random_fraction=0.25,
            lr=2e-3,
            warmup_steps=200,
            requirements={
                "ioi_accuracy": (">=", 0.9),
                "ioi_logit_diff": (">=", 2.0),
                "year_accuracy": (">=", 0.8),
            },
            n_word_groups=1,
        ),
        TrainingConfig(
            name="gpt2-mini-truth",
            description="gpt2-mini's architecture trained on the story world with judged claims and in-context tasks",
            purpose="Chapter 1.3's model: it judges claims true or false, including claims about cities "
            "and periods it never saw judged (truth probes, steering), and performs in-context tasks from "
            "examples (function vectors); its SAEs are in zoo/saes/.",
            model=GPT2_MINI,
            n_steps=5000,
            random_fraction=0.25,
            lr=2e-3,
            warmup_steps=200,
            # Measured here (5,000 steps each, checkpoints every 1,000): verdicts on held-out cities
            # peak early and fall as the model memorises the claims it sees (0.75 at step 3,000,
            # 0.66 at 4,000 with claims 55% of the text), while verdicts on trained cities reach
            # 0.90 and on held-out periods 0.96-0.99. Negated claims stay near chance (0.44-0.60)
            # with negations 10-25% of the claims: the model barely reads "not".
            requirements={
                "fact_judgement_balanced_accuracy": (">=", 0.85),
                "truth_cities_heldout_accuracy": (">=", 0.55),
                "truth_years_heldout_accuracy": (">=", 0.9),
                **{f"icl_{task}_5shot_accuracy": (">=", 0.9) for task in corpus.ICL_TASKS},
            },
        ),
    ]
}
# Trained from scratch by tests/zoo in seconds, to show training reproduces here.
QUICK_CHECK = TrainingConfig(
    name="attn-only-1l-quick",
    description="quick reproducibility check",
    purpose="tests/zoo/test_reproducibility.py",
    model=ATTN_ONLY | {"n_layers": 1, "n_ctx": 32},
    n_steps=300,
    random_fraction=0.5,
    lr=3e-3,
    n_word_groups=1,
    # Measured here: 1.988 with 1 or 2 threads, ~5 s of training (untrained: 6.8); 2.1 leaves
    # ~0.1 for other machines' float rounding.
    requirements={"heldout_loss": ("<=", 2.1)},
)

# How far a retrain's metric may land from the recorded one (same seed; other machines and thread
# counts change float rounding, not the result).
TOLERANCES = {
    "heldout_loss": 0.05,
    # Two trainings of gpt2-mini here differed by 0.05 and 0.06 in these (its heads are not
    # required to be sharp); attn-only-2l's agreed to 4 decimals.
    "previous_token_score": 0.1,
    "induction_score": 0.1,
    "ioi_accuracy": 0.05,
    "ioi_logit_diff": 1.0,
    "ioi_top1_accuracy": 0.05,
    "year_accuracy": 0.05,
    "year_probability_difference": 0.05,
    "fact_recall_accuracy": 0.1,
    "fact_judgement_balanced_accuracy": 0.1,
    **{f"truth_{family}_heldout_accuracy": 0.1 for family in corpus.TRUTH_FAMILIES},
    **{f"icl_{task}_5shot_accuracy": 0.1 for task in corpus.ICL_TASKS},
    **{f"icl_{task}_0shot_accuracy": 0.15 for task in ("antonym", "uppercase")},
}


def lr_multiplier(step: int, config: TrainingConfig) -> float:
    """Linear warmup, then cosine decay to a tenth of the peak."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.n_steps - config.warmup_steps)
    return 0.1 + 0.45 * (1 + math.cos(math.pi * progress))


def train(config: TrainingConfig, on_step=None, threads: int = 2) -> HookedTransformer:
    """Train from scratch on CPU. on_step(step, model), if given, runs after every step.

    Use one thread when another process is busy on a 2-core machine: two threads competing with
    it for the cores run ~4x slower than one (measured here)."""
    torch.set_num_threads(threads)
    torch.manual_seed(config.seed)
    model = build_model(config.model_config())
    # GPT-2 has no unembedding bias. Keeping b_U at zero makes a zoo model export exactly to
    # Hugging Face's GPT2LMHeadModel (zoo/hf.py), which nnsight and peft work on.
    model.unembed.b_U.requires_grad_(False)
    n_random = round(config.batch_size * config.random_fraction)
    n_story = config.batch_size - n_random
    # Every story document is seen once: the corpus is generated, so there is no need to repeat.
    story = (
        evaluate.story_tokens(model, "train", n_story * config.n_steps)
        if n_story
        else torch.empty(0, model.cfg.n_ctx, dtype=torch.long)
    )
    word_ids = evaluate.word_token_ids(model)
    generator = torch.Generator().manual_seed(config.seed)

    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, betas=(0.9, 0.95), weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_multiplier(s, config))
    model.train()
    progress = tqdm(range(config.n_steps), desc=config.name, mininterval=2)
    for step in progress:
        random_rows = repeated_span_tokens(n_random, model.cfg.n_ctx, word_ids, model.tokenizer.bos_token_id, generator)
        batch = torch.cat([story[step * n_story : (step + 1) * n_story], random_rows])
        loss = model(batch, return_type="loss")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if step % 50 == 0:
            progress.set_postfix(loss=f"{loss.item():.3f}")
        if on_step is not None:
            on_step(step + 1, model)
    return model.eval()


def measure(model: HookedTransformer, heads: dict[str, str] | None = None) -> tuple[dict, dict]:
    """All metrics that apply to this model, and the heads they name.

    heads maps "previous_token"/"induction" to e.g. "L1H2"; when None, the best-scoring head is
    chosen (previous-token in layer 0, induction in layers 1 and up)."""
    metrics = {"heldout_loss": evaluate.heldout_loss(model)}
    if model.cfg.n_layers >= 2:
        scores = evaluate.head_scores(model)
        if heads is None:
            heads = {
                "previous_token": _best_head(scores["previous_token"][:1], first_layer=0),
                "induction": _best_head(scores["induction"][1:], first_layer=1),
            }
        for kind, head in heads.items():
            metrics[f"{kind}_score"] = scores[kind][evaluate.parse_head(head)].item()
    if not model.cfg.attn_only:
        metrics |= evaluate.ioi_metrics(model) | evaluate.year_metrics(model) | evaluate.fact_metrics(model)
    if word_groups_known(model.cfg.d_vocab) >= 2:  # the story world with truth families and tasks
        metrics |= evaluate.truth_metrics(model) | evaluate.icl_metrics(model)
    return metrics, heads or {}


def _best_head(scores: torch.Tensor, first_layer: int) -> str:
    layer, head = divmod(int(scores.argmax()), scores.shape[1])
    return f"L{layer + first_layer}H{head}"


def save(model: HookedTransformer, config: TrainingConfig, train_seconds: float) -> dict:
    """Write weights, config.json, metrics.json and CARD.md; return the metrics record."""
    model_dir = MODELS_DIR / config.name
    model_dir.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.contiguous() for name, tensor in model.state_dict().items()}
    save_file(state, model_dir / "model.safetensors")
    (model_dir / "config.json").write_text(json.dumps(config.model_config(), indent=2) + "\n")
    values, heads = measure(model)
    record = {
        "description": config.description,
        "heads": heads,
        "metrics": {
            name: {"value": round(value, 4), "tolerance": TOLERANCES[name]}
            | ({"requirement": list(config.requirements[name])} if name in config.requirements else {})
            for name, value in values.items()
        },
        "training": {
            "command": f"python -m zoo.train {config.name}"
            + ("" if torch.get_num_threads() == 2 else f" --threads {torch.get_num_threads()}"),
            "seconds": round(train_seconds),
            "threads": torch.get_num_threads(),
            "steps": config.n_steps,
            "tokens": config.n_steps * config.batch_size * model.cfg.n_ctx,
        },
    }
    write_record(model_dir, record, card(config, record, model))
    return record


def data_description(config: TrainingConfig, n_ctx: int) -> str:
    random_rows = (
        "random tokens after a BOS, with one span repeated at a random offset and length "
        "(`corpus.repeated_span_tokens`)"
    )
    if config.random_fraction == 1.0:
        return f"Only {random_rows}, {n_ctx} tokens a row; no story text."
    return (
        f"The story corpus of `zoo/corpus.py` (train split, seed 0), every document seen once, "
        f"truncated to {n_ctx} tokens; {config.random_fraction:.0%} of each batch is {random_rows}."
    )


def card(config: TrainingConfig, record: dict, model: HookedTransformer) -> str:
    cfg = config.model_config()
    n_params = sum(p.numel() for p in model.parameters())
    architecture = ", ".join(f"{key}={value}" for key, value in cfg.items())
    heads = "".join(f"\n- {kind.replace('_', '-')} head: **{head}**" for kind, head in record["heads"].items())
    training = record["training"]
    return f"""# {config.name}

Generated by `zoo/train.py` from `metrics.json`; do not edit by hand.

{config.description}. {config.purpose}

Load it with `zoo.load_model("{config.name}")`.

## Architecture
HookedTransformerConfig: {architecture}. {n_params:,} parameters; tokenizer: `zoo/tokenizer/`.

## Data
{data_description(config, cfg["n_ctx"])} {training["tokens"]:,} tokens in all.

## Training
`{training["command"]}`: seed {config.seed}, {config.n_steps} steps of batch {config.batch_size},
AdamW (lr {config.lr}, betas 0.9/0.95, weight decay {config.weight_decay}), {config.warmup_steps}
warmup steps then cosine decay to lr/10, gradient clipping at 1.0. It took {training["seconds"]} s
on {training["threads"]} CPU threads.

## Measured metrics
Measured by `zoo/evaluate.py` on held-out data: the test split of the story corpus, IOI prompts
from templates held out of training, year prompts, repeated random tokens. A retrain with the same
command must land within the tolerance of each value; `tests/zoo` asserts the shipped weights do,
and that each requirement holds.
{heads}

{metrics_table(record["metrics"])}
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"models to train: {', '.join(ZOO)}")
    parser.add_argument("--all", action="store_true", help="train every zoo model")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    args = parser.parse_args()
    names = list(ZOO) if args.all else args.names
    if not names or any(name not in ZOO for name in names):
        parser.error(f"name models from {', '.join(ZOO)}, or pass --all")
    for name in names:
        config = ZOO[name]
        start = time.perf_counter()
        model = train(config, threads=args.threads)
        record = save(model, config, time.perf_counter() - start)
        for metric, entry in record["metrics"].items():
            ok = "" if "requirement" not in entry else (
                "  ok" if meets(entry["value"], entry["requirement"]) else "  FAILS " + str(entry["requirement"])
            )  # fmt: skip
            print(f"{name} {metric}: {entry['value']}{ok}")


if __name__ == "__main__":
    main()
