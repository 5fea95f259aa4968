"""A bidirectional transformer that classifies bracket strings as balanced or not.

    python -m zoo.brackets                 # ~10-16 min on one (shared) CPU thread
    python -m zoo.brackets --threads 2

After the "balanced bracket classifier" analysis (Redwood Research's REMIX exercises, 2022): a
string of "(" and ")" is balanced when its elevation (opens minus closes so far) never goes
negative and ends at zero. The model reads `[START] s [END] [PAD]...` with no causal mask, and its
prediction is read from the [START] position through the unembedding to two classes (0 unbalanced,
1 balanced). Padding keys are masked out of every attention pattern (`padding_hooks`), so the
prediction does not depend on how much padding follows the string.

The generator (`generate`) makes half the strings balanced and half unbalanced, and the unbalanced
ones are mostly hard negatives: one swap, flip, insertion or deletion away from a balanced string,
in three failure types: "negative" (the elevation dips below zero, ends at zero), "nonzero" (never
dips, ends away from zero) and "both".

zoo/brackets/classifier/ gets model.safetensors, training.json (seconds, threads, the loss every
100 steps), metrics.json (accuracies with tolerances and the reference analysis) and CARD.md.
"""

import argparse
import json
import random
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from zoo.records import metrics_table, write_record

BRACKETS_DIR = Path(__file__).parent / "brackets" / "classifier"

PAD, START, END, OPEN, CLOSE = 0, 1, 2, 3, 4
VOCAB = {"[PAD]": PAD, "[START]": START, "[END]": END, "(": OPEN, ")": CLOSE}
MAX_LEN = 40
N_CTX = MAX_LEN + 2
FAILURE_TYPES = ["balanced", "negative", "nonzero", "both"]
# Share of each type in generated data: half balanced, the rest split between the failure types.
TYPE_WEIGHTS = {"balanced": 0.5, "negative": 0.5 / 3, "nonzero": 0.5 / 3, "both": 0.5 / 3}
# Share of "both" strings drawn uniformly at random (any length) instead of from a hard edit.
RANDOM_SHARE = 0.3

SEED = 0
TEST_SEED = 1
N_TRAIN = 120_000
N_TEST = 10_000
BATCH = 128
# Two stages: the second restarts the one-cycle schedule (lower peak) on fresh data from the first's
# weights; the first alone plateaus near 92% test accuracy.
STAGES = [{"steps": 2500, "lr": 3e-3, "seed": SEED}, {"steps": 3000, "lr": 1.5e-3, "seed": SEED + 100}]
WEIGHT_DECAY = 0.01
MODEL_CONFIG = dict(
    n_layers=3, d_model=56, n_heads=2, d_head=28, d_mlp=56, act_fn="relu", normalization_type="LN",
    attention_dir="bidirectional", d_vocab=5, d_vocab_out=2, n_ctx=N_CTX, seed=SEED,
)  # fmt: skip
TOLERANCES = {
    "test_accuracy": 0.005,
    "accuracy_balanced": 0.01,
    "accuracy_negative": 0.01,
    "accuracy_nonzero": 0.01,
    "accuracy_both": 0.01,
    "test_loss": 0.03,
}


# ---------------------------------------------------------------------------------------------
# Data


def elevation(s: str) -> list[int]:
    """Elevation after each character: opens minus closes so far."""
    out, h = [], 0
    for c in s:
        h += 1 if c == "(" else -1
        out.append(h)
    return out


def failure_type(s: str) -> str:
    """ "balanced", or which way it fails: "negative" (dips below 0, ends at 0), "nonzero" (never
    dips, ends away from 0) or "both"."""
    e = elevation(s)
    negative = bool(e) and min(e) < 0
    nonzero = bool(e) and e[-1] != 0
    return {(False, False): "balanced", (True, False): "negative", (False, True): "nonzero"}.get(
        (negative, nonzero), "both"
    )


def is_balanced(s: str) -> bool:
    return failure_type(s) == "balanced"


def random_balanced(n: int, rng: random.Random) -> str:
    """A balanced string of even length n: open with probability 1/2 unless forced."""
    out, h = [], 0
    for i in range(n):
        left = n - i
        if h == 0:
            c = "("
        elif h == left:
            c = ")"
        else:
            c = "(" if rng.random() < 0.5 else ")"
        h += 1 if c == "(" else -1
        out.append(c)
    return "".join(out)


def _swap_to_negative(s: str, rng: random.Random) -> str:
    """Swap an "(" with a later ")" so that the elevation between them dips below zero."""
    e = elevation(s)
    opens = [i for i, c in enumerate(s) if c == "("]
    rng.shuffle(opens)
    for i in opens:
        candidates, low = [], 10**9
        for j in range(i + 1, len(s)):
            low = min(low, e[j - 1]) if j - 1 > i else e[i]
            if s[j] == ")" and min(low, e[j - 1]) <= 1:
                candidates.append(j)
        if candidates:
            j = rng.choice(candidates)
            chars = list(s)
            chars[i], chars[j] = ")", "("
            return "".join(chars)
    raise AssertionError(s)


def _edit(s: str, kind: str, rng: random.Random) -> str:
    """One edit of a balanced string: flip, insert or delete one bracket."""
    if kind == "flip_close":  # final +2, never dips
        j = rng.choice([i for i, c in enumerate(s) if c == ")"])
        return s[:j] + "(" + s[j + 1 :]
    if kind == "flip_open":  # final -2, so dips
        j = rng.choice([i for i, c in enumerate(s) if c == "("])
        return s[:j] + ")" + s[j + 1 :]
    if kind in ("insert_open", "insert_close"):
        j = rng.randrange(len(s) + 1)
        return s[:j] + ("(" if kind == "insert_open" else ")") + s[j:]
    char = "(" if kind == "delete_open" else ")"
    j = rng.choice([i for i, c in enumerate(s) if c == char])
    return s[:j] + s[j + 1 :]


def sample(kind: str, rng: random.Random) -> str:
    """One string of the given type (retried until it is of that type)."""
    while True:
        n = 2 * rng.randint(1, MAX_LEN // 2)
        if kind == "balanced":
            return random_balanced(n, rng)
        if kind == "both" and rng.random() < RANDOM_SHARE:
            s = "".join(rng.choice("()") for _ in range(rng.randint(1, MAX_LEN)))
        else:
            base = random_balanced(n, rng)
            if kind == "negative":
                s = _swap_to_negative(base, rng)
            elif kind == "nonzero":
                s = _edit(base, rng.choice(["flip_close", "insert_open", "delete_close"]), rng)
            else:
                edits = ["flip_open", "insert_close", "delete_open", "swap_then"]
                choice = rng.choice(edits)
                if choice == "swap_then":
                    s = _edit(_swap_to_negative(base, rng), rng.choice(["flip_close", "insert_open"]), rng)
                else:
                    s = _edit(base, choice, rng)
        if 0 < len(s) <= MAX_LEN and failure_type(s) == kind:
            return s


def generate(n: int, seed: int) -> tuple[list[str], list[str]]:
    """n seeded strings and their types (balanced with probability 1/2)."""
    rng = random.Random(seed)
    kinds = rng.choices(list(TYPE_WEIGHTS), weights=list(TYPE_WEIGHTS.values()), k=n)
    return [sample(k, rng) for k in kinds], kinds


def tokenize(strings: list[str], n_ctx: int = N_CTX) -> Tensor:
    """Tokens [batch, n_ctx]: [START] brackets [END], right-padded with [PAD]."""
    tokens = torch.full((len(strings), n_ctx), PAD, dtype=torch.long)
    for row, s in enumerate(strings):
        ids = [START] + [OPEN if c == "(" else CLOSE for c in s] + [END]
        tokens[row, : len(ids)] = torch.tensor(ids)
    return tokens


def test_set() -> tuple[list[str], list[str]]:
    return generate(N_TEST, TEST_SEED)


# ---------------------------------------------------------------------------------------------
# The model


def build_brackets_model(weights: dict[str, Tensor] | None = None):
    """A HookedTransformer with this config (and weights, where given)."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        model = HookedTransformer(HookedTransformerConfig(**MODEL_CONFIG, device="cpu"))
    if weights is not None:
        model.load_state_dict({k: v.float() for k, v in weights.items()}, strict=False)
    return model.eval()


def padding_hooks(tokens: Tensor) -> list:
    """Forward hooks that stop every query attending to [PAD] keys (TransformerLens ignores
    attention_mask with bidirectional attention)."""
    is_pad = (tokens == PAD)[:, None, None, :]

    def mask(scores, hook):
        return scores.masked_fill(is_pad, float("-inf"))

    return [(lambda name: name.endswith("hook_attn_scores"), mask)]


def run(model, tokens: Tensor) -> Tensor:
    """Logits [batch, 2] at the [START] position, with padding masked."""
    return model.run_with_hooks(tokens, fwd_hooks=padding_hooks(tokens))[:, 0]


# ---------------------------------------------------------------------------------------------
# Training and measurement


def train(threads: int = 1, progress: bool = True, stage: int = 1, init: dict[str, Tensor] | None = None):
    """Train one stage (see STAGES); return the state dict, the loss every 100 steps and seconds."""
    from tqdm import tqdm

    settings = STAGES[stage - 1]
    n_steps, lr, seed = settings["steps"], settings["lr"], settings["seed"]
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    strings, _ = generate(N_TRAIN, seed)
    tokens = tokenize(strings)
    labels = torch.tensor([int(is_balanced(s)) for s in strings])
    model = build_brackets_model(init)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=WEIGHT_DECAY)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=n_steps, pct_start=0.1)
    g = torch.Generator().manual_seed(seed)
    losses = []
    start = time.time()
    for step in tqdm(range(n_steps), disable=not progress, desc=f"brackets stage {stage}"):
        idx = torch.randint(0, N_TRAIN, (BATCH,), generator=g)
        batch = tokens[idx]
        length = int((batch != PAD).sum(1).max())  # trailing padding changes nothing
        batch = batch[:, :length]
        loss = F.cross_entropy(run(model, batch), labels[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 100 == 0:
            losses.append(round(loss.item(), 5))
    seconds = time.time() - start
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, losses, seconds


@torch.no_grad()
def accuracy_by_type(model, strings: list[str], kinds: list[str]) -> dict:
    tokens = tokenize(strings)
    labels = torch.tensor([int(k == "balanced") for k in kinds])
    logits = torch.cat([run(model, tokens[i : i + 1000]) for i in range(0, len(strings), 1000)])
    correct = logits.argmax(-1) == labels
    out = {
        "test_accuracy": round(correct.float().mean().item(), 5),
        "test_loss": round(F.cross_entropy(logits, labels).item(), 5),
    }
    for kind in FAILURE_TYPES:
        mask = torch.tensor([k == kind for k in kinds])
        out[f"accuracy_{kind}"] = round(correct[mask].float().mean().item(), 5)
    return out


def save_weights(weights: dict[str, Tensor], losses: list[float], seconds: float, threads: int) -> None:
    from safetensors.torch import save_file

    BRACKETS_DIR.mkdir(parents=True, exist_ok=True)
    save_file({n: w.contiguous() for n, w in weights.items()}, BRACKETS_DIR / "model.safetensors")
    run_info = {"seconds": round(seconds), "threads": threads, "losses_every_100_steps": losses}
    (BRACKETS_DIR / "training.json").write_text(json.dumps(run_info) + "\n")


def load_weights() -> dict[str, Tensor]:
    from safetensors.torch import load_file

    return load_file(BRACKETS_DIR / "model.safetensors")


def load_brackets_model():
    """The trained classifier as a HookedTransformer (run it with `run` or `padding_hooks`)."""
    return build_brackets_model(load_weights())


def load_metrics() -> dict:
    return json.loads((BRACKETS_DIR / "metrics.json").read_text())


def component_names(model) -> list[str]:
    """ "embed", then for each layer L its heads "L{L}H{h}" and "MLP{L}"."""
    names = ["embed"]
    for layer in range(model.cfg.n_layers):
        names += [f"L{layer}H{h}" for h in range(model.cfg.n_heads)] + [f"MLP{layer}"]
    return names


# ---------------------------------------------------------------------------------------------
# The reference analysis (what the section relies on; written independently of solutions/)

ANALYSIS_SEED = 7
N_ANALYSIS = 4000
ANALYSIS_TOLERANCES = {"ln_fit_r2": 0.01, "uniform_head_tv": 0.05, "uniform_head_r2": 0.05, "neuron_correlation": 0.05}


def _r2(x: Tensor, y: Tensor) -> float:
    """R^2 of a least-squares affine fit of y [n] from x [n, k]."""
    x1 = torch.cat([x, torch.ones(len(x), 1)], dim=1)
    residual = y - x1 @ torch.linalg.lstsq(x1, y[:, None]).solution[:, 0]
    return float(1 - residual.var() / y.var())


@torch.no_grad()
def analyse(model) -> dict:
    """DLA of the unbalanced direction by failure type, the most uniform head at [START] and how
    well its output encodes the proportion of "(", and the neurons that react to it."""
    strings, kinds = generate(N_ANALYSIS, ANALYSIS_SEED)
    tokens = tokenize(strings)
    with model.hooks(fwd_hooks=padding_hooks(tokens)):
        _, cache = model.run_with_cache(tokens)
    n_layers = model.cfg.n_layers
    resid = cache[f"blocks.{n_layers - 1}.hook_resid_post"][:, 0]
    normalized = cache["ln_final.hook_normalized"][:, 0]
    x1 = torch.cat([resid, torch.ones(len(resid), 1)], dim=1)
    fit = torch.linalg.lstsq(x1, normalized).solution
    ln_r2 = float(1 - (x1 @ fit - normalized).pow(2).sum() / (normalized - normalized.mean(0)).pow(2).sum())
    direction = fit[:-1] @ (model.ln_final.w * (model.W_U[:, 0] - model.W_U[:, 1]))
    outputs = {"embed": cache["hook_embed"][:, 0] + cache["hook_pos_embed"][:, 0]}
    head_outputs = {}
    for layer in range(n_layers):
        for h in range(model.cfg.n_heads):
            head_outputs[f"L{layer}H{h}"] = cache[f"blocks.{layer}.attn.hook_z"][:, 0, h] @ model.W_O[layer, h]
            outputs[f"L{layer}H{h}"] = head_outputs[f"L{layer}H{h}"]
        outputs[f"MLP{layer}"] = cache[f"blocks.{layer}.hook_mlp_out"][:, 0]
    kind = torch.tensor([FAILURE_TYPES.index(k) for k in kinds])
    dla = {
        name: {k: round(float((out @ direction)[kind == i].mean()), 3) for i, k in enumerate(FAILURE_TYPES)}
        for name, out in outputs.items()
    }
    # The head whose attribution rises most from balanced strings to each failure type.
    negative_head = max(head_outputs, key=lambda n: dla[n]["negative"] - dla[n]["balanced"])
    nonzero_head = max(head_outputs, key=lambda n: dla[n]["nonzero"] - dla[n]["balanced"])
    # Uniformity at [START]: total variation between the pattern over bracket keys and uniform.
    is_bracket = ((tokens == OPEN) | (tokens == CLOSE)).float()
    share_open = (tokens == OPEN).float().sum(1) / is_bracket.sum(1)
    tv = {}
    for name in head_outputs:
        layer, h = int(name[1]), int(name[3])
        pattern = cache[f"blocks.{layer}.attn.hook_pattern"][:, h, 0] * is_bracket
        pattern = pattern / pattern.sum(-1, keepdim=True).clamp(min=1e-9)
        uniform = is_bracket / is_bracket.sum(-1, keepdim=True)
        tv[name] = round(float(0.5 * (pattern - uniform).abs().sum(-1).mean()), 3)
    uniform_head = min(tv, key=tv.get)
    uniform_r2 = _r2(head_outputs[uniform_head], share_open)
    # Neurons at [START] in the MLPs after that head, whose activation tracks |share - 1/2|.
    distance = (share_open - 0.5).abs()
    neuron_correlation, best = -1.0, None
    for layer in range(int(uniform_head[1]), n_layers):
        post = cache[f"blocks.{layer}.mlp.hook_post"][:, 0]
        for i in range(post.shape[1]):
            if post[:, i].std() < 1e-6:
                continue
            r = float(torch.corrcoef(torch.stack([post[:, i], distance]))[0, 1])
            if r > neuron_correlation:
                neuron_correlation, best = r, (layer, i)
    return {
        "ln_fit_r2": round(ln_r2, 4),
        "dla_by_type": dla,
        "negative_head": negative_head,
        "nonzero_head": nonzero_head,
        "head_tv_from_uniform_at_start": tv,
        "uniform_head": uniform_head,
        "uniform_head_tv": tv[uniform_head],
        "uniform_head_r2": round(uniform_r2, 4),
        "distance_neuron": list(best),
        "neuron_correlation": round(neuron_correlation, 4),
    }


ANALYSIS_EXACT = ["negative_head", "nonzero_head", "uniform_head", "distance_neuron"]


def save_record() -> dict:
    """Measure the shipped weights; write metrics.json and CARD.md."""
    model = load_brackets_model()
    strings, kinds = test_set()
    measured = accuracy_by_type(model, strings, kinds)
    run_info = json.loads((BRACKETS_DIR / "training.json").read_text())
    record = {
        "description": "3-layer bidirectional transformer classifying bracket strings as balanced or not",
        "metrics": {n: {"value": measured[n], "tolerance": t} for n, t in TOLERANCES.items()},
        "analysis": analyse(model),
        "analysis_tolerances": ANALYSIS_TOLERANCES,
        "training": {
            "command": "python -m zoo.brackets",
            "seconds": run_info["seconds"],
            "threads": run_info["threads"],
            "stages": STAGES,
            "batch": BATCH,
            "weight_decay": WEIGHT_DECAY,
            "n_train": N_TRAIN,
            "n_test": N_TEST,
            "test_seed": TEST_SEED,
            "max_len": MAX_LEN,
        },
        "config": MODEL_CONFIG,
    }
    write_record(BRACKETS_DIR, record, card(record))
    return record


def card(record: dict) -> str:
    t, a = record["training"], record["analysis"]
    config = ", ".join(f"{k}={v}" for k, v in record["config"].items())
    stages = "; ".join(f"{s['steps']} steps at peak lr {s['lr']} (data seed {s['seed']})" for s in t["stages"])
    return f"""# brackets classifier

Generated by `zoo/brackets.py` from `metrics.json`; do not edit by hand.

{record["description"]}. Load it with `zoo.brackets.load_brackets_model()` (a HookedTransformer) and
run it with `zoo.brackets.run(model, tokens)` (logits at [START], padding masked by hooks; plain
`model(tokens)` does not mask [PAD] in a bidirectional model).

## Architecture
HookedTransformerConfig: {config}. Tokens [PAD]=0, [START]=1, [END]=2, "("=3, ")"=4; class 0 is
unbalanced, class 1 balanced, read at position 0.

## Data
`zoo.brackets.generate(n, seed)`: strings of 1 to {t["max_len"]} brackets, half balanced, half split between
the failure types "negative" (elevation dips below 0, ends at 0), "nonzero" (never dips, ends away
from 0) and "both", mostly one swap/flip/insertion/deletion away from a balanced string. Training
draws {t["n_train"]} strings per stage; the test set is `generate({t["n_test"]}, seed={t["test_seed"]})`.

## Training
`{t["command"]}`: AdamW (weight decay {t["weight_decay"]}), batch {t["batch"]}, one-cycle schedule, in two stages:
{stages}. It took {t["seconds"]} s on {t["threads"]} CPU thread(s).

Differences from the REMIX model (Redwood Research, 2022): same shape (3 layers, d_model 56, 2 heads),
but shorter training and this generator's data; the circuits below are measured, not assumed.

## Measured
{metrics_table(record["metrics"])}

Reference analysis (`zoo.brackets.analyse`, {N_ANALYSIS} strings of seed {ANALYSIS_SEED}):
- final LayerNorm as an affine map of its input: R^2 {a["ln_fit_r2"]}
- head whose attribution to the unbalanced direction rises most from balanced to "negative" strings: **{a["negative_head"]}**
- head whose attribution rises most from balanced to "nonzero" strings: **{a["nonzero_head"]}**
- most uniform head at [START] over the brackets: **{a["uniform_head"]}** (total variation from uniform {a["uniform_head_tv"]});
  R^2 of the proportion of "(" from its output: {a["uniform_head_r2"]}
- neuron at [START] most correlated with |proportion of "(" - 1/2|: **layer {a["distance_neuron"][0]}, neuron {a["distance_neuron"][1]}** (r = {a["neuron_correlation"]})
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    weights, losses, seconds = train(threads=args.threads, stage=1)
    weights, more_losses, more_seconds = train(threads=args.threads, stage=2, init=weights)
    save_weights(weights, losses + more_losses, seconds + more_seconds, args.threads)
    record = save_record()
    print(json.dumps(record["metrics"], indent=2))


if __name__ == "__main__":
    main()
