"""OthelloGPT on a 6x6 board: a small GPT trained on random legal games, which learns the board.

    python -m zoo.othello                 # ~8 min on one CPU thread
    python -m zoo.othello --threads 2

The set-up follows Li et al. 2023 ("Emergent world representations"): a GPT sees only the
sequence of moves of synthetic games, each move drawn uniformly from the legal ones, and learns
to predict the next move. Nanda 2023 showed its board is linear when read as "empty / the
player-to-move's / the opponent's". To train in minutes on one CPU thread this model differs:

- a 6x6 board (32 playable squares, 4 start in the centre) instead of 8x8 (60);
- 4 layers of d_model 128 (the paper: 8 layers of 512), trained on ~90k fresh seeded games;
- each game stops at its first pass, so the player to move alternates (black moves first);
- the target at each position is the uniform distribution over the legal next moves, which is
  the expected one-hot target of a uniformly random game (the same objective, less noise).

Squares are numbered 0..35 row-major (row 0 at the top); a token is the index of a square in
PLAYABLE (0..31) and token 32 pads. The board is +1 black, -1 white, 0 empty.

zoo/othello/gpt-6x6/ gets model.safetensors (float32), metrics.json (legal-move accuracy,
probe accuracy per layer, with tolerances) and CARD.md.
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

OTHELLO_DIR = Path(__file__).parent / "othello" / "gpt-6x6"

SIZE = 6
N_SQUARES = SIZE * SIZE
CENTRE = [14, 15, 20, 21]
PLAYABLE = [s for s in range(N_SQUARES) if s not in CENTRE]
N_MOVES = len(PLAYABLE)  # 32 tokens for moves
PAD = N_MOVES  # token 32
MAX_LEN = N_MOVES  # a game has at most 32 moves
DIRECTIONS = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]
SQUARE_TO_TOKEN = {s: i for i, s in enumerate(PLAYABLE)}

SEED = 0
TEST_SEED = 1
PROBE_SEED = 2
N_STEPS = 1400
BATCH = 64
LR = 1.5e-3
WEIGHT_DECAY = 0.01
WARMUP = 100
MODEL_CONFIG = dict(
    n_layers=4, d_model=128, n_heads=4, d_head=32, d_mlp=512, act_fn="gelu", normalization_type="LN",
    d_vocab=N_MOVES + 1, d_vocab_out=N_MOVES, n_ctx=MAX_LEN - 1, seed=SEED,
)  # fmt: skip
TOLERANCES = {"legal_move_accuracy": 0.01, "test_loss": 0.05}
PROBE_TOLERANCE = 0.03
N_TEST_GAMES = 2000
N_PROBE_TRAIN, N_PROBE_TEST = 1000, 500
PROBE_L2 = 1.0


# ---------------------------------------------------------------------------------------------
# The game, one board at a time (readable; the batched versions below are what training uses)


def start_board() -> Tensor:
    """The 6x6 start: white on (2, 2) and (3, 3), black on (2, 3) and (3, 2)."""
    board = torch.zeros(N_SQUARES, dtype=torch.int8)
    board[[14, 21]] = -1
    board[[15, 20]] = 1
    return board


def flips(board: Tensor, player: int, square: int) -> list[int]:
    """The squares that playing `square` as `player` (+1 or -1) would flip (empty if illegal)."""
    if board[square] != 0:
        return []
    r0, c0 = divmod(square, SIZE)
    out = []
    for dr, dc in DIRECTIONS:
        run, r, c = [], r0 + dr, c0 + dc
        while 0 <= r < SIZE and 0 <= c < SIZE and board[r * SIZE + c] == -player:
            run.append(r * SIZE + c)
            r, c = r + dr, c + dc
        if run and 0 <= r < SIZE and 0 <= c < SIZE and board[r * SIZE + c] == player:
            out += run
    return out


def legal_squares(board: Tensor, player: int) -> list[int]:
    return [s for s in range(N_SQUARES) if flips(board, player, s)]


def play(board: Tensor, player: int, square: int) -> Tensor:
    to_flip = flips(board, player, square)
    if not to_flip:
        raise ValueError(f"square {square} is not legal for {player}")
    board = board.clone()
    board[to_flip + [square]] = player
    return board


def boards_of_game(moves: list[int]) -> Tensor:
    """Board after each move [len, 36] of a game given as squares (black first, no passes)."""
    board, player, out = start_board(), 1, []
    for square in moves:
        board = play(board, player, square)
        out.append(board)
        player = -player
    return torch.stack(out)


# ---------------------------------------------------------------------------------------------
# Batched games


def _ray_indices() -> tuple[Tensor, Tensor]:
    """For each square, direction and distance 1..5: the square index there, and whether it is on the board."""
    index = torch.zeros(N_SQUARES, 8, SIZE - 1, dtype=torch.long)
    valid = torch.zeros(N_SQUARES, 8, SIZE - 1, dtype=torch.bool)
    for s in range(N_SQUARES):
        r0, c0 = divmod(s, SIZE)
        for d, (dr, dc) in enumerate(DIRECTIONS):
            for k in range(1, SIZE):
                r, c = r0 + k * dr, c0 + k * dc
                if 0 <= r < SIZE and 0 <= c < SIZE:
                    index[s, d, k - 1], valid[s, d, k - 1] = r * SIZE + c, True
    return index, valid


RAY_INDEX, RAY_VALID = _ray_indices()


def _closing(along: Tensor) -> Tensor:
    """along [..., 5]: the mover's-relative discs (+1 mine, -1 theirs, 0 empty or off the board) at
    distances 1..5 along a ray. Returns [..., 4] bool: k opponent discs (k = 1..4) closed by a disc
    of the mover's at distance k + 1."""
    theirs = along == -1
    run = theirs.clone()
    for k in range(1, SIZE - 1):
        run[..., k] &= run[..., k - 1]
    return run[..., :-1] & (along[..., 1:] == 1)


def legal_mask(boards: Tensor, player: Tensor) -> Tensor:
    """[batch, 36] bool: the legal squares for `player` [batch] (+1 or -1) on boards [batch, 36]."""
    rel = boards * player[:, None].to(boards.dtype)
    along = rel[:, RAY_INDEX] * RAY_VALID  # [batch, 36, 8, 5]; off the board counts as empty
    return _closing(along).flatten(-2).any(-1) & (boards == 0)


def play_batch(boards: Tensor, player: Tensor, squares: Tensor) -> Tensor:
    """Play squares [batch] (assumed legal) for player [batch]; returns new boards."""
    n = len(squares)
    rel = boards * player[:, None].to(boards.dtype)
    targets = RAY_INDEX[squares]  # [batch, 8, 5]
    along = rel.gather(1, targets.flatten(1)).view(n, 8, SIZE - 1) * RAY_VALID[squares]
    closes = _closing(along)  # [batch, 8, 4]
    first = closes.float().argmax(-1) + 1
    length = torch.where(closes.any(-1), first, 0)
    flip = torch.arange(1, SIZE)[None, None, :] <= length[:, :, None]  # [batch, 8, 5]
    new = boards.clone()
    rows = torch.arange(n)[:, None, None].expand_as(targets)
    new[rows[flip], targets[flip]] = player[:, None, None].expand_as(targets)[flip].to(new.dtype)
    new[torch.arange(n), squares] = player.to(new.dtype)
    return new


def generate_games(n: int, seed: int, with_legal: bool = False):
    """n random games (each move uniform over the legal ones), stopped at the first pass.

    Returns tokens [n, 32] (PLAYABLE indices, PAD after the end) and lengths [n]; with_legal adds the
    legal next moves after each move [n, 32, 32] (as tokens)."""
    g = torch.Generator().manual_seed(seed)
    boards = start_board()[None].repeat(n, 1)
    player = torch.ones(n, dtype=torch.long)
    squares = torch.full((n, MAX_LEN), -1, dtype=torch.long)
    alive = torch.ones(n, dtype=torch.bool)
    lengths = torch.zeros(n, dtype=torch.long)
    after = torch.zeros(n, MAX_LEN, N_MOVES, dtype=torch.bool)
    legal = legal_mask(boards, player)
    for t in range(MAX_LEN):
        alive &= legal.any(-1)
        if not alive.any():
            break
        weights = legal.float() + (~alive)[:, None].float()  # dead games draw anything; ignored
        move = torch.multinomial(weights, 1, generator=g)[:, 0]
        idx = alive.nonzero()[:, 0]
        boards[idx] = play_batch(boards[idx], player[idx], move[idx])
        squares[idx, t] = move[idx]
        lengths[idx] += 1
        player = -player
        legal = legal_mask(boards, player) & alive[:, None]
        after[:, t] = legal[:, PLAYABLE]
    lookup = torch.full((N_SQUARES + 1,), PAD, dtype=torch.long)
    lookup[torch.tensor(PLAYABLE)] = torch.arange(N_MOVES)
    if with_legal:
        return lookup[squares], lengths, after  # -1 indexes the last entry, PAD
    return lookup[squares], lengths


def token_to_square(tokens: Tensor) -> Tensor:
    return torch.tensor(PLAYABLE + [-1])[tokens]


def game_boards(tokens: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
    """Boards after each move [n, 32, 36] (zeros after the end) and the legal next moves there
    [n, 32, 32] as tokens (the player to move alternates; black moves first)."""
    n = tokens.shape[0]
    squares = token_to_square(tokens)
    boards = start_board()[None].repeat(n, 1)
    player = torch.ones(n, dtype=torch.long)
    all_boards = torch.zeros(n, MAX_LEN, N_SQUARES, dtype=torch.int8)
    all_legal = torch.zeros(n, MAX_LEN, N_MOVES, dtype=torch.bool)
    playable = torch.tensor(PLAYABLE)
    for t in range(MAX_LEN):
        idx = (lengths > t).nonzero()[:, 0]
        if len(idx) == 0:
            break
        boards[idx] = play_batch(boards[idx], player[idx], squares[idx, t])
        player = -player
        all_boards[idx, t] = boards[idx]
        all_legal[idx, t] = legal_mask(boards[idx], player[idx])[:, playable]
    return all_boards, all_legal


# ---------------------------------------------------------------------------------------------
# The model and its loss


def build_othello_model(weights: dict[str, Tensor] | None = None):
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        model = HookedTransformer(HookedTransformerConfig(**MODEL_CONFIG, device="cpu"))
    if weights is not None:
        model.load_state_dict(weights, strict=False)
    return model.eval()


def legal_loss(logits: Tensor, legal: Tensor) -> Tensor:
    """Cross-entropy against the uniform distribution over the legal moves, at positions with any."""
    has = legal.any(-1)
    logp = logits.log_softmax(-1)
    per_position = -(logp * legal).sum(-1) / legal.sum(-1).clamp(min=1)
    return per_position[has].mean()


def legal_move_accuracy(logits: Tensor, legal: Tensor) -> float:
    """Share of positions (with a legal next move) whose top-1 prediction is legal."""
    has = legal.any(-1)
    top = logits.argmax(-1)
    return legal.gather(-1, top[..., None])[..., 0][has].float().mean().item()


def model_inputs(tokens: Tensor) -> Tensor:
    """The model sees moves 1..31 (the 32nd is never an input)."""
    return tokens[:, : MAX_LEN - 1]


# ---------------------------------------------------------------------------------------------
# Probes


def relative_states(boards: Tensor) -> Tensor:
    """[n, 32, 36] states 0 empty, 1 the player-to-move's ("mine"), 2 the opponent's ("theirs").
    After move t (0-based) the player to move is white when t is even."""
    to_move = torch.where(torch.arange(boards.shape[1]) % 2 == 0, -1, 1).to(boards.dtype)
    rel = boards * to_move[None, :, None]
    return torch.where(rel == 0, 0, torch.where(rel == 1, 1, 2))


def colour_states(boards: Tensor) -> Tensor:
    """[n, 32, 36] states 0 empty, 1 black, 2 white."""
    return torch.where(boards == 0, 0, torch.where(boards == 1, 1, 2))


def residuals(model, tokens: Tensor, batch: int = 500) -> Tensor:
    """Residual stream [n_layers + 1, n, 31, d_model]: the embedding, then after each block."""
    names = ["blocks.0.hook_resid_pre"] + [f"blocks.{i}.hook_resid_post" for i in range(model.cfg.n_layers)]
    out = []
    with torch.no_grad():
        for i in range(0, len(tokens), batch):
            _, cache = model.run_with_cache(model_inputs(tokens[i : i + batch]), names_filter=names)
            out.append(torch.stack([cache[name] for name in names]))
    return torch.cat(out, dim=1)


def fit_probe(x: Tensor, states: Tensor, l2: float = PROBE_L2) -> Tensor:
    """A linear probe W [d_model + 1, 36, 3] (last row: bias) by ridge regression of one-hot states
    [N, 36] on x [N, d] with a ones column appended: W = (X^T X + l2 I)^-1 X^T Y."""
    X = torch.cat([x, torch.ones(len(x), 1)], dim=1).double()
    Y = F.one_hot(states.long(), 3).double().reshape(len(x), -1)
    gram = X.T @ X + l2 * torch.eye(X.shape[1], dtype=torch.float64)
    return torch.linalg.solve(gram, X.T @ Y).reshape(X.shape[1], -1, 3).float()


def probe_accuracy(w: Tensor, x: Tensor, states: Tensor, playable_only: bool = True) -> float:
    pred = torch.einsum("nd,dsc->nsc", torch.cat([x, torch.ones(len(x), 1)], dim=1), w).argmax(-1)
    correct = (pred == states).float()
    if playable_only:
        correct = correct[:, PLAYABLE]
    return correct.mean().item()


def probe_data(model, n: int, seed: int):
    tokens, lengths = generate_games(n, seed)
    boards, _ = game_boards(tokens, lengths)
    resid = residuals(model, tokens)
    keep = torch.arange(MAX_LEN - 1)[None, :] < lengths[:, None]  # positions holding a real move
    positions = torch.arange(MAX_LEN - 1)[None, :].expand(n, -1)
    return resid[:, keep], (boards[:, : MAX_LEN - 1][keep], positions[keep])


# ---------------------------------------------------------------------------------------------
# Training


def train(threads: int = 1, progress: bool = True, n_steps: int = N_STEPS, stop_after: int | None = None):
    """Train (the learning-rate schedule spans n_steps; stop_after ends the run early, for tests)."""
    from tqdm import tqdm

    torch.set_num_threads(threads)
    torch.manual_seed(SEED)
    model = build_othello_model()
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY, betas=(0.9, 0.99))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / WARMUP) * 0.5 * (1 + math.cos(math.pi * min(s, n_steps) / n_steps))
    )
    history, start = [], time.time()
    chunk = 100  # steps per freshly generated chunk of games
    for step in tqdm(range(stop_after or n_steps), disable=not progress, desc="othello"):
        if step % chunk == 0:
            tokens, _, legal = generate_games(BATCH * chunk, seed=SEED * 1_000_003 + 10 + step, with_legal=True)
        sl = slice((step % chunk) * BATCH, (step % chunk + 1) * BATCH)
        logits = model(model_inputs(tokens[sl]))
        loss = legal_loss(logits, legal[sl, : MAX_LEN - 1])
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        if step % 100 == 0 or step == n_steps - 1:
            history.append({"step": step, "loss": round(loss.item(), 4), "seconds": round(time.time() - start)})
            if progress:
                tqdm.write(json.dumps(history[-1]))
    model.eval()
    return model, history, time.time() - start


def measure(model) -> dict:
    """Legal-move accuracy and loss on held-out games, and probe accuracy per layer."""
    tokens, _, legal = generate_games(N_TEST_GAMES, TEST_SEED, with_legal=True)
    with torch.no_grad():
        logits = model(model_inputs(tokens))
    legal = legal[:, : MAX_LEN - 1]
    out = {
        "legal_move_accuracy": round(legal_move_accuracy(logits, legal), 4),
        "test_loss": round(legal_loss(logits, legal).item(), 4),
    }
    x_train, b_train = probe_data(model, N_PROBE_TRAIN, PROBE_SEED)
    x_test, b_test = probe_data(model, N_PROBE_TEST, PROBE_SEED + 1)
    for name, states in [("mine_theirs", relative_states), ("black_white", colour_states)]:
        # states need the position index: rebuild them per position before flattening
        s_train, s_test = _flat_states(b_train, states), _flat_states(b_test, states)
        accs = []
        for layer in range(x_train.shape[0]):
            w = fit_probe(x_train[layer], s_train)
            accs.append(round(probe_accuracy(w, x_test[layer], s_test), 4))
        out[f"probe_accuracy_{name}"] = accs
    s_test = _flat_states(b_test, relative_states)[:, PLAYABLE]
    out["baseline_accuracy"] = round(_majority_baseline(s_test), 4)
    return out


def _flat_states(flat_boards_with_pos, states_fn) -> Tensor:
    boards, positions = flat_boards_with_pos
    to_move = torch.where(positions % 2 == 0, -1, 1).to(boards.dtype)
    if states_fn is colour_states:
        return colour_states(boards)
    rel = boards * to_move[:, None]
    return torch.where(rel == 0, 0, torch.where(rel == 1, 1, 2))


def _majority_baseline(states: Tensor) -> float:
    """Accuracy of predicting each square's most common state."""
    counts = torch.stack([(states == c).float().mean(0) for c in range(3)])
    return counts.max(0).values.mean().item()


def save(model, history, seconds, threads) -> dict:
    from safetensors.torch import save_file

    OTHELLO_DIR.mkdir(parents=True, exist_ok=True)
    save_file({n: w.contiguous() for n, w in model.state_dict().items()}, OTHELLO_DIR / "model.safetensors")
    measured = measure(model)
    record = {
        "description": "4-layer GPT trained on random legal 6x6 Othello games to predict legal next moves",
        "metrics": {name: {"value": measured[name], "tolerance": tol} for name, tol in TOLERANCES.items()},
        "probes": {
            "mine_theirs": measured["probe_accuracy_mine_theirs"],
            "black_white": measured["probe_accuracy_black_white"],
            "majority_baseline": measured["baseline_accuracy"],
            "tolerance": PROBE_TOLERANCE,
        },
        "history": history,
        "training": {
            "command": "python -m zoo.othello",
            "seconds": round(seconds),
            "threads": threads,
            "steps": N_STEPS,
            "batch": BATCH,
            "games_seen": N_STEPS * BATCH,
            "lr": LR,
            "weight_decay": WEIGHT_DECAY,
            "warmup": WARMUP,
            "seed": SEED,
        },
        "config": MODEL_CONFIG,
    }
    write_record(OTHELLO_DIR, record, card(record))
    return record


def card(record: dict) -> str:
    t, p = record["training"], record["probes"]
    config = ", ".join(f"{k}={v}" for k, v in record["config"].items())
    layers = "\n".join(f"| {i} | {mt} | {bw} |" for i, (mt, bw) in enumerate(zip(p["mine_theirs"], p["black_white"])))
    return f"""# othello gpt-6x6

Generated by `zoo/othello.py` from `metrics.json`; do not edit by hand.

{record["description"]}. Load it with `zoo.othello.load_othello_model()` (a HookedTransformer),
games with `zoo.othello.generate_games(n, seed)` and their boards with `zoo.othello.game_boards`.

## Architecture
HookedTransformerConfig: {config}. Tokens 0..31 are the playable squares (`PLAYABLE`, the 36
squares row-major without the centre four); token 32 pads.

## Data
Synthetic games on a 6x6 board: black first, each move uniform over the legal ones; a game stops
at its first pass (so the player to move alternates). Fresh seeded games every 100 steps;
held-out games use other seeds.

## Training
`{t["command"]}`: seed {t["seed"]}, {t["steps"]} steps of batch {t["batch"]} ({t["games_seen"]}
games), AdamW (lr {t["lr"]}, weight decay {t["weight_decay"]}, {t["warmup"]} warm-up steps, cosine
decay), target the uniform distribution over the legal next moves. It took {t["seconds"]} s on
{t["threads"]} CPU thread(s).

Differences from Li et al. 2023 (8x8, 8 layers x 512, millions of games, one-hot next-move
targets): a 6x6 board, 4 layers x 128, {t["games_seen"]} games, games cut at the first pass, and
soft legal-move targets (the expected one-hot target), so that it trains on one CPU thread in minutes.

## Measured (held-out games)

{metrics_table(record["metrics"])}

`legal_move_accuracy`: share of positions whose top-1 predicted move is legal.

Linear probe accuracy on the 32 playable squares (each square: 3 classes; a probe per layer
fitted by ridge regression (l2 {PROBE_L2}) onto one-hot states on {N_PROBE_TRAIN} games, tested on {N_PROBE_TEST}; retrain tolerance ± {p["tolerance"]}).
Layer 0 is the embedding, layer i the output of block i - 1. Predicting each square's most common
state scores {p["majority_baseline"]}.

| layer | empty / mine / theirs | empty / black / white |
|---|---|---|
{layers}
"""


# ---------------------------------------------------------------------------------------------
# Loading


def load_weights() -> dict[str, Tensor]:
    from safetensors.torch import load_file

    return load_file(OTHELLO_DIR / "model.safetensors")


def load_othello_model():
    return build_othello_model(load_weights())


def load_metrics() -> dict:
    return json.loads((OTHELLO_DIR / "metrics.json").read_text())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=N_STEPS)
    parser.add_argument("--measure-only", action="store_true", help="re-measure the shipped model")
    args = parser.parse_args()
    if args.measure_only:  # re-measure the shipped model (after a change to the measurements)
        old = load_metrics()
        torch.set_num_threads(args.threads)
        record = save(load_othello_model(), old["history"], old["training"]["seconds"], old["training"]["threads"])
    else:
        model, history, seconds = train(threads=args.threads, n_steps=args.steps)
        record = save(model, history, seconds, args.threads)
    print(json.dumps({k: record[k] for k in ["metrics", "probes"]}, indent=2))


if __name__ == "__main__":
    main()
