"""A one-layer transformer that groks modular addition, with checkpoints along the way.

    python -m zoo.grokking                 # ~2-3 min on one CPU thread
    python -m zoo.grokking --threads 2

The set-up follows Nanda et al. 2023 ("Progress measures for grokking via mechanistic
interpretability"): inputs are the three tokens `a b =`, the model predicts (a + b) mod p at "=",
30% of the p^2 pairs are for training, full-batch AdamW with weight decay 1.0, no LayerNorm (and
here no biases). Two differences make it train on one CPU thread in minutes: p = 59 (not 113) and lr 3e-3
(not 1e-3). The MLP output at the `a` and `b` positions never reaches the "=" logits of a
one-layer model, so training runs a fast forward pass of the "=" position only; the weights are
those of a TransformerLens HookedTransformer (`load_grokking_model`), which gives the same logits.

zoo/grokking/mod-add/ gets model.safetensors (final, float32), checkpoints.safetensors (every
CHECKPOINT_EVERY steps, float16), split.json, history.json (losses, accuracies, weight norm and the
restricted/excluded losses every LOG_EVERY steps), metrics.json (with tolerances) and CARD.md.
"""

import argparse
import json
import math
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from zoo.records import metrics_table, write_record

GROKKING_DIR = Path(__file__).parent / "grokking" / "mod-add"

P = 59
TRAIN_FRACTION = 0.3
N_STEPS = 3600
LR = 3e-3
WEIGHT_DECAY = 1.0
BETAS = (0.9, 0.98)
SEED = 0
CHECKPOINT_EVERY = 200
LOG_EVERY = 50
MODEL_CONFIG = dict(
    n_layers=1, d_model=128, n_heads=4, d_head=32, d_mlp=512, act_fn="relu", normalization_type=None,
    d_vocab=P + 1, d_vocab_out=P, n_ctx=3, seed=SEED,
)  # fmt: skip
# What a retrain must reproduce: key frequencies exactly, these within tolerance.
TOLERANCES = {
    "train_accuracy": 0.0,
    "test_accuracy": 0.01,
    "train_loss": 0.01,
    "test_loss": 0.05,
    "fraction_of_logit_variance_explained": 0.05,
}
# How strongly a frequency must stand out of the embedding to count as key: its share of the
# embedding's squared norm (p // 2 frequencies, so a uniform share is ~3.4%).
KEY_FREQUENCY_SHARE = 0.06


# ---------------------------------------------------------------------------------------------
# Data and the Fourier basis


def all_inputs(p: int = P) -> tuple[Tensor, Tensor]:
    """Tokens [p*p, 3] (a, b, "=" = p) in row-major order of (a, b), and labels (a + b) mod p."""
    a = torch.arange(p).repeat_interleave(p)
    b = torch.arange(p).repeat(p)
    return torch.stack([a, b, torch.full_like(a, p)], dim=1), (a + b) % p


def make_split(p: int = P, fraction: float = TRAIN_FRACTION, seed: int = SEED) -> tuple[Tensor, Tensor]:
    """Indices into all_inputs() of the training and test pairs."""
    perm = torch.randperm(p * p, generator=torch.Generator().manual_seed(seed))
    n_train = int(fraction * p * p)
    return perm[:n_train].sort().values, perm[n_train:].sort().values


def fourier_basis(p: int = P) -> tuple[Tensor, list[str]]:
    """Orthonormal rows [p, p]: the constant, then cos and sin of frequency k = 1 .. p // 2."""
    x = torch.arange(p, dtype=torch.float64)
    rows, names = [torch.ones(p, dtype=torch.float64)], ["const"]
    for k in range(1, p // 2 + 1):
        rows += [torch.cos(2 * math.pi * k * x / p), torch.sin(2 * math.pi * k * x / p)]
        names += [f"cos {k}", f"sin {k}"]
    basis = torch.stack(rows)
    return (basis / basis.norm(dim=1, keepdim=True)).float(), names


def frequency_norms(W_E: Tensor, p: int = P) -> Tensor:
    """Squared norm of the number embeddings W_E[:p] along each frequency k = 1 .. p // 2 (cos and
    sin together), as a share of the total over frequencies (the constant left out)."""
    basis, _ = fourier_basis(p)
    coefficients = basis @ W_E[:p].float()
    per_row = coefficients.pow(2).sum(-1)
    per_frequency = per_row[1::2] + per_row[2::2]
    return per_frequency / per_frequency.sum()


def key_frequencies_of(W_E: Tensor, p: int = P) -> list[int]:
    shares = frequency_norms(W_E, p)
    return [k + 1 for k in range(len(shares)) if shares[k] > KEY_FREQUENCY_SHARE]


# ---------------------------------------------------------------------------------------------
# The model


def init_weights(seed: int = SEED) -> dict[str, Tensor]:
    """Weights named as in a HookedTransformer state dict (biases stay zero and untrained)."""
    g = torch.Generator().manual_seed(seed)
    c = MODEL_CONFIG
    d, h, dh, dm = c["d_model"], c["n_heads"], c["d_head"], c["d_mlp"]

    def normal(*shape, fan_in):
        return torch.randn(*shape, generator=g) / math.sqrt(fan_in)

    return {
        "embed.W_E": normal(c["d_vocab"], d, fan_in=d),
        "pos_embed.W_pos": normal(3, d, fan_in=d),
        "blocks.0.attn.W_Q": normal(h, d, dh, fan_in=d),
        "blocks.0.attn.W_K": normal(h, d, dh, fan_in=d),
        "blocks.0.attn.W_V": normal(h, d, dh, fan_in=d),
        "blocks.0.attn.W_O": normal(h, dh, d, fan_in=d),
        "blocks.0.mlp.W_in": normal(d, dm, fan_in=d),
        "blocks.0.mlp.W_out": normal(dm, d, fan_in=dm),
        "unembed.W_U": normal(d, c["d_vocab_out"], fan_in=d),
    }


def fast_logits(w: dict[str, Tensor], tokens: Tensor) -> Tensor:
    """Logits at the "=" position [batch, p]: the HookedTransformer's, computed for one position."""
    x = w["embed.W_E"][tokens] + w["pos_embed.W_pos"]
    q = torch.einsum("bd,hde->bhe", x[:, -1], w["blocks.0.attn.W_Q"])
    k = torch.einsum("bpd,hde->bhpe", x, w["blocks.0.attn.W_K"])
    v = torch.einsum("bpd,hde->bhpe", x, w["blocks.0.attn.W_V"])
    pattern = (torch.einsum("bhe,bhpe->bhp", q, k) / math.sqrt(MODEL_CONFIG["d_head"])).softmax(-1)
    z = torch.einsum("bhp,bhpe->bhe", pattern, v)
    resid = x[:, -1] + torch.einsum("bhe,hed->bd", z, w["blocks.0.attn.W_O"])
    resid = resid + torch.relu(resid @ w["blocks.0.mlp.W_in"]) @ w["blocks.0.mlp.W_out"]
    return resid @ w["unembed.W_U"]


def build_grokking_model(weights: dict[str, Tensor] | None = None):
    """A HookedTransformer with this config (and weights, where given; zero biases)."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        model = HookedTransformer(HookedTransformerConfig(**MODEL_CONFIG, device="cpu"))
    if weights is not None:
        state = model.state_dict()
        for name in state:
            if name in weights:
                state[name] = weights[name].float().clone()
            elif ".b_" in name:
                state[name] = torch.zeros_like(state[name])
        model.load_state_dict(state)
    return model.eval()


# ---------------------------------------------------------------------------------------------
# Progress measures


def key_direction_projection(logits: Tensor, key_frequencies: list[int], p: int = P) -> Tensor:
    """The part of logits [p*p, p] (inputs in all_inputs() order) along cos(w(a+b)) and
    sin(w(a+b)) for the key frequencies, for each output c."""
    a = torch.arange(p).repeat_interleave(p).float()
    b = torch.arange(p).repeat(p).float()
    directions = []
    for k in key_frequencies:
        angle = 2 * math.pi * k * (a + b) / p
        directions += [torch.cos(angle), torch.sin(angle)]
    u = torch.stack(directions)
    u = u / u.norm(dim=1, keepdim=True)
    return u.T @ (u @ logits)


def restricted_and_excluded_loss(
    logits: Tensor, labels: Tensor, train: Tensor, key_frequencies: list[int], p: int = P
) -> tuple[float, float]:
    """Restricted loss (all pairs; logits kept only along the key directions, plus each output's
    mean) and excluded loss (training pairs; the key directions removed)."""
    projection = key_direction_projection(logits, key_frequencies, p)
    restricted = logits.mean(0, keepdim=True) + projection
    excluded = logits - projection
    return (
        F.cross_entropy(restricted, labels).item(),
        F.cross_entropy(excluded[train], labels[train]).item(),
    )


def logit_variance_explained(logits: Tensor, key_frequencies: list[int], p: int = P) -> float:
    """Share of the variance of logits [p*p, p] (each output's mean over inputs removed) explained
    by one term alpha_w cos(w(a + b - c)) per key frequency w."""
    a = torch.arange(p).repeat_interleave(p).float()[:, None]
    b = torch.arange(p).repeat(p).float()[:, None]
    c = torch.arange(p).float()[None, :]
    centred = logits - logits.mean(0, keepdim=True)
    explained = 0.0
    for k in key_frequencies:
        u = torch.cos(2 * math.pi * k * (a + b - c) / p)
        explained += ((centred * u).sum() / u.norm()) ** 2
    return float(explained / centred.pow(2).sum())


def weight_norm(weights: dict[str, Tensor]) -> float:
    return float(torch.sqrt(sum(w.float().pow(2).sum() for w in weights.values())))


# ---------------------------------------------------------------------------------------------
# Training


def train(threads: int = 1, progress: bool = True, n_steps: int = N_STEPS):
    """Train; return final weights, checkpoints {step: weights}, history and seconds taken."""
    from tqdm import tqdm

    torch.set_num_threads(threads)
    tokens, labels = all_inputs()
    train_idx, test_idx = make_split()
    weights = {name: w.requires_grad_() for name, w in init_weights().items()}
    optimizer = torch.optim.AdamW(weights.values(), lr=LR, weight_decay=WEIGHT_DECAY, betas=BETAS)
    checkpoints, history = {}, []
    start = time.time()
    for step in tqdm(range(n_steps + 1), disable=not progress, desc="grokking"):
        if step % CHECKPOINT_EVERY == 0:
            checkpoints[step] = {n: w.detach().clone() for n, w in weights.items()}
        if step % LOG_EVERY == 0:
            with torch.no_grad():
                history.append(log_entry(step, weights, tokens, labels, train_idx, test_idx))
        if step == n_steps:
            break
        loss = F.cross_entropy(fast_logits(weights, tokens[train_idx]), labels[train_idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    seconds = time.time() - start
    return {n: w.detach() for n, w in weights.items()}, checkpoints, history, seconds


def log_entry(step, weights, tokens, labels, train_idx, test_idx, key_frequencies=None) -> dict:
    logits = fast_logits(weights, tokens)
    entry = {"step": step}
    for split, idx in [("train", train_idx), ("test", test_idx)]:
        entry[f"{split}_loss"] = round(F.cross_entropy(logits[idx], labels[idx]).item(), 5)
        entry[f"{split}_accuracy"] = round((logits[idx].argmax(-1) == labels[idx]).float().mean().item(), 5)
    entry["weight_norm"] = round(weight_norm(weights), 4)
    entry["_logits"] = logits
    return entry


def phases(history: list[dict]) -> dict:
    """Step boundaries of the three phases, read off the logged progress measures.

    memorised: first step with train accuracy 1 (test accuracy still low).
    circuit formation: from there until test loss comes back below its initial value (chance);
      the restricted loss falls and the excluded loss rises meanwhile, while test loss stays high.
    cleanup: from that step until test accuracy reaches 0.99 (grokked); weight norm falls.
    """
    memorised = next(h["step"] for h in history if h["train_accuracy"] == 1.0)
    chance = history[0]["test_loss"]
    cleanup_start = next(h["step"] for h in history if h["step"] > memorised and h["test_loss"] < chance)
    grokked = next(h["step"] for h in history if h["test_accuracy"] >= 0.99)
    return {"memorised": memorised, "cleanup_start": cleanup_start, "grokked": grokked}


def measure(weights, history) -> dict:
    tokens, labels = all_inputs()
    train_idx, test_idx = make_split()
    final = log_entry(-1, weights, tokens, labels, train_idx, test_idx)
    keys = key_frequencies_of(weights["embed.W_E"])
    return {
        "key_frequencies": keys,
        "train_accuracy": final["train_accuracy"],
        "test_accuracy": final["test_accuracy"],
        "train_loss": final["train_loss"],
        "test_loss": final["test_loss"],
        "fraction_of_logit_variance_explained": round(logit_variance_explained(final["_logits"], keys), 4),
    }


def save(weights, checkpoints, history, seconds, threads) -> dict:
    from safetensors.torch import save_file

    GROKKING_DIR.mkdir(parents=True, exist_ok=True)
    save_file({n: w.contiguous() for n, w in weights.items()}, GROKKING_DIR / "model.safetensors")
    flat = {f"{step}/{n}": w.half().contiguous() for step, ws in checkpoints.items() for n, w in ws.items()}
    save_file(flat, GROKKING_DIR / "checkpoints.safetensors")
    train_idx, test_idx = make_split()
    (GROKKING_DIR / "split.json").write_text(
        json.dumps({"p": P, "train": train_idx.tolist(), "test": test_idx.tolist()}) + "\n"
    )
    measured = measure(weights, history)
    keys = measured["key_frequencies"]
    tokens, labels = all_inputs()
    for h in history:  # the restricted and excluded losses use the final key frequencies
        h["restricted_loss"], h["excluded_loss"] = (
            round(x, 5) for x in restricted_and_excluded_loss(h.pop("_logits"), labels, train_idx, keys)
        )
    (GROKKING_DIR / "history.json").write_text(json.dumps(history) + "\n")
    bounds = phases(history)
    norm_at = {h["step"]: h["weight_norm"] for h in history}
    peak_step = max(norm_at, key=norm_at.get)
    record = {
        "description": f"1-layer transformer trained on (a + b) mod {P} until it groks",
        "key_frequencies": keys,
        "metrics": {name: {"value": measured[name], "tolerance": tol} for name, tol in TOLERANCES.items()},
        "phases": bounds
        | {
            "weight_norm_peak_step": peak_step,
            "weight_norm_peak": norm_at[peak_step],
            "weight_norm_final": history[-1]["weight_norm"],
            # A retrain must put each boundary within this many steps of the recorded one.
            "tolerance_steps": 300,
        },
        "training": {
            "command": "python -m zoo.grokking",
            "seconds": round(seconds),
            "threads": threads,
            "steps": N_STEPS,
            "p": P,
            "train_fraction": TRAIN_FRACTION,
            "lr": LR,
            "weight_decay": WEIGHT_DECAY,
            "betas": list(BETAS),
            "seed": SEED,
            "checkpoint_every": CHECKPOINT_EVERY,
            "log_every": LOG_EVERY,
        },
        "config": MODEL_CONFIG,
    }
    write_record(GROKKING_DIR, record, card(record))
    return record


def card(record: dict) -> str:
    t, ph = record["training"], record["phases"]
    config = ", ".join(f"{k}={v}" for k, v in record["config"].items())
    return f"""# grokking mod-add

Generated by `zoo/grokking.py` from `metrics.json`; do not edit by hand.

{record["description"]}. Load it with `zoo.grokking.load_grokking_model(step=None)` (a
HookedTransformer; `step` picks a checkpoint) and the split with `zoo.grokking.load_split()`.

## Architecture
HookedTransformerConfig: {config}. Biases are zero and untrained; no LayerNorm.

## Data
All {t["p"]}^2 pairs (a, b) as tokens `a b =` ("=" is token {t["p"]}), label (a + b) mod {t["p"]};
a seeded {t["train_fraction"]:.0%} of them ({len(json.loads((GROKKING_DIR / "split.json").read_text())["train"])} pairs) train, the rest test (`split.json`).

## Training
`{t["command"]}`: seed {t["seed"]}, {t["steps"]} full-batch steps of AdamW (lr {t["lr"]}, betas
{t["betas"][0]}/{t["betas"][1]}, weight decay {t["weight_decay"]}), constant learning rate. It took
{t["seconds"]} s on {t["threads"]} CPU thread(s). Checkpoints every {t["checkpoint_every"]} steps in
`checkpoints.safetensors` (float16); losses, accuracies, weight norm, restricted and excluded loss
every {t["log_every"]} steps in `history.json`.

Differences from Nanda et al. 2023 (p = 113, lr 1e-3): p = {t["p"]} and lr {t["lr"]}, so that it
groks on one CPU thread in minutes.

## Measured
Key frequencies of the embedding (share of its squared Fourier norm above
{KEY_FREQUENCY_SHARE}): **{record["key_frequencies"]}** (a retrain must find the same set).

{metrics_table(record["metrics"])}

`fraction_of_logit_variance_explained`: share of the variance of the final logits over all pairs
(each output's mean removed) explained by one term cos(w(a + b - c)) per key frequency w.

## Phases (steps; a retrain within ± {ph["tolerance_steps"]})
- memorisation: 0 to {ph["memorised"]} (train accuracy reaches 1; test accuracy stays low)
- circuit formation: {ph["memorised"]} to {ph["cleanup_start"]} (test loss still above chance,
  restricted loss falling, excluded loss rising)
- cleanup: {ph["cleanup_start"]} to {ph["grokked"]} (test loss drops, test accuracy reaches 0.99)
- weight norm: peaks at {ph["weight_norm_peak"]} (step {ph["weight_norm_peak_step"]}), ends at
  {ph["weight_norm_final"]}
"""


# ---------------------------------------------------------------------------------------------
# Loading


def load_split() -> tuple[Tensor, Tensor]:
    """Indices into all_inputs() of the training and test pairs, as shipped."""
    split = json.loads((GROKKING_DIR / "split.json").read_text())
    return torch.tensor(split["train"]), torch.tensor(split["test"])


def checkpoint_steps() -> list[int]:
    from safetensors import safe_open

    with safe_open(GROKKING_DIR / "checkpoints.safetensors", "pt") as f:
        return sorted({int(key.split("/")[0]) for key in f.keys()})


def load_weights(step: int | None = None) -> dict[str, Tensor]:
    """Final weights (float32), or those of a checkpoint (stored in float16, returned float32)."""
    from safetensors.torch import load_file

    if step is None:
        return load_file(GROKKING_DIR / "model.safetensors")
    flat = load_file(GROKKING_DIR / "checkpoints.safetensors")
    weights = {k.split("/", 1)[1]: v.float() for k, v in flat.items() if k.split("/")[0] == str(step)}
    if not weights:
        raise ValueError(f"No checkpoint at step {step}; there are {checkpoint_steps()}.")
    return weights


def load_grokking_model(step: int | None = None):
    """The grokked model as a HookedTransformer (step=None: final weights; else a checkpoint)."""
    return build_grokking_model(load_weights(step))


def load_metrics() -> dict:
    return json.loads((GROKKING_DIR / "metrics.json").read_text())


def load_history() -> list[dict]:
    return json.loads((GROKKING_DIR / "history.json").read_text())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    weights, checkpoints, history, seconds = train(threads=args.threads)
    record = save(weights, checkpoints, history, seconds, args.threads)
    print(json.dumps({k: record[k] for k in ["key_frequencies", "metrics", "phases"]}, indent=2))


if __name__ == "__main__":
    main()
