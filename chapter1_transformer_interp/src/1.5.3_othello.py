# %% [markdown]
# # 1.5.3 OthelloGPT: a world model you can read and edit
#
# Does a sequence model that only ever sees moves build a picture of the world those moves happen in? Li et
# al. (2023), *Emergent world representations*, trained a GPT on the move sequences of synthetic Othello
# games (each move uniform over the legal ones) to predict the next move. It never saw a board. Yet its
# residual stream held the board: nonlinear probes (small MLPs) could read each square's state from it, and
# editing the activations so that the probe read a different board changed the moves the model predicted to
# those legal on the edited board. Linear probes, in their hands, did much worse. Nanda (2023) showed why:
# the model does not store "black" and "white" but **"mine" and "theirs"** relative to the player about to
# move, and in that basis a *linear* probe reads the board almost perfectly, and its directions can be used
# to edit it.
#
# You will repeat the linear half of that story on the zoo's OthelloGPT (`zoo/othello.py`, card in
# `zoo/othello/gpt-6x6/CARD.md`):
#
# 1. write the rules of Othello (flips, legal moves, playing a move) and replay games into boards;
# 2. measure how often the model's top prediction is legal;
# 3. cache the residual stream and fit linear probes per layer, for empty / black / white and for
#    empty / mine / theirs;
# 4. compare the probe directions of different squares;
# 5. intervene: reflect the residual stream along a square's "mine to theirs" direction and test whether the
#    predicted moves follow the edited board.
#
# **Where this model differs from the paper's.** Li et al. used the 8x8 board (60 playable squares), a GPT of 8
# layers with d_model 512, and millions of games. To train on one CPU thread in about eight minutes, the zoo model
# plays **6x6 Othello** (32 playable squares; the centre four start filled), has **4 layers with d_model 128**,
# and saw about 90,000 games. Its games stop at the first pass, so the players strictly alternate, and it was
# trained against the uniform distribution over the legal next moves (the expected value of the paper's one-hot
# target, with less noise). Our probes are fitted in closed form (ridge regression) rather than by gradient
# descent. The cell below asserts these.
#
# **Prerequisites**: 1.2 (TransformerLens, caches and hooks) and ideally 1.3.1 (linear probes). Each exercise
# is a function whose body raises `NotImplementedError`; a **finding** asks for what your analysis found, and
# the check grades it.

# %%
import plotly.express as px
import plotly.graph_objects as go
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from tests.checks.chapter1_transformer_interp.othello import check  # noqa: F401 (used by the check cells the build adds)
from zoo.othello import PLAYABLE, game_boards, generate_games, load_metrics, load_othello_model, start_board

# The model is tiny: one thread is fastest, and leaves the other cores alone.
torch.set_num_threads(1)
torch.manual_seed(0)
torch.set_grad_enabled(False)

SIZE = 6
DIRECTIONS = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]

# %%
metrics = load_metrics()
model = load_othello_model()
cfg = model.cfg
print(cfg.n_layers, cfg.d_model, cfg.n_heads, cfg.d_mlp, cfg.d_vocab, cfg.n_ctx)
print(metrics["training"])

# The differences from Li et al. (8x8 board, 8 layers, d_model 512, millions of games).
assert len(PLAYABLE) == 32 and cfg.d_vocab_out == 32 and cfg.d_vocab == 33  # 6x6: 32 moves, plus a pad token
assert cfg.n_layers == 4 and cfg.d_model == 128 and cfg.n_ctx == 31
assert metrics["training"]["games_seen"] < 100_000
print(start_board().view(SIZE, SIZE))

# %% [markdown]
# ## Part 1: the rules
#
# The board is a tensor of 36 squares, numbered row by row (square `6 * row + col`): +1 a black disc, -1 a
# white disc, 0 empty. A move puts a disc of the player's colour on an empty square, and every straight line
# (in the 8 directions) of the opponent's discs running from that square to one of the player's discs is
# **flipped** to the player's colour. A move is legal only if it flips something.


# %% [exercise] flipped_squares difficulty=3 importance=4 minutes=15
def flipped_squares(board: Int[Tensor, " 36"], player: int, square: int) -> list[int]:
    """The squares (sorted) whose discs flip if `player` (+1 black, -1 white) plays `square` on
    `board` (+1 black, -1 white, 0 empty; squares row-major on a 6x6 grid). Empty if the move is
    illegal: the square is taken, or no straight line of opponent discs from it ends in one of
    the player's discs."""
    raise NotImplementedError()


# %% [hint]
# Walk from the square in each of the 8 directions. What must you see first, what must end the walk for the
# discs to count, and what happens at the edge of the board?

# %% [hint]
# Collect opponent discs while `board[r * 6 + c] == -player`; keep them only if the walk stopped on the board at
# a disc equal to `player` (and at least one was collected).


# %% [exercise] legal_moves difficulty=1 importance=3 minutes=5
def legal_moves(board: Int[Tensor, " 36"], player: int) -> list[int]:
    """The squares (sorted) where `player` may play: those where a move flips at least one disc."""
    raise NotImplementedError()


# %% [hint]
# Which squares does the definition of a legal move rule out, and which function already knows?


# %% [exercise] play_move difficulty=1 importance=3 minutes=5
def play_move(board: Int[Tensor, " 36"], player: int, square: int) -> Int[Tensor, " 36"]:
    """A new board after `player` plays `square`: the square and every flipped disc become the
    player's. Raises ValueError for an illegal move; the input board is left unchanged."""
    raise NotImplementedError()


# %% [hint]
# Work on a copy. Which squares change, and to what value?


# %% [exercise] board_states difficulty=2 importance=3 minutes=8
def board_states(start: Int[Tensor, " 36"], squares: list[int]) -> Int[Tensor, "n_moves 36"]:
    """The board after each move of a game from `start`, given as the squares played: black (+1)
    moves first and the players alternate (no passes). Row t is the board after move t."""
    raise NotImplementedError()


# %% [hint]
# Keep the current board and the player to move; after each move, record the board and swap the player.

# %%
# On the start position black may play the four squares that flank a white disc.
assert legal_moves(start_board(), 1) == [8, 13, 22, 27]
tokens, lengths = generate_games(5, seed=10)
squares = [PLAYABLE[t] for t in tokens[0, : lengths[0]].tolist()]  # token i is square PLAYABLE[i]
boards = board_states(start_board(), squares)
reference_boards, _ = game_boards(tokens, lengths)  # the zoo's batched rules agree with yours
assert torch.equal(boards, reference_boards[0, : lengths[0]])
print(f"a game of {len(squares)} moves:", squares)
px.imshow(boards[9].view(SIZE, SIZE), color_continuous_scale="RdBu", zmin=-1, zmax=1,
          title="The board after move 9 (blue: black, red: white)").show()  # fmt: skip

# %% [markdown]
# ## Part 2: the model plays legal moves
#
# A token is the index of a square in `PLAYABLE` (the 36 squares without the centre four); the model reads
# moves 1 to 31 of a game and at each position predicts the next move. A model that knew only which squares are
# still empty would often be wrong: an empty square picked at random is legal less than half the time. Score the
# model's top-1 prediction on fresh games.

# %%
eval_tokens, eval_lengths, eval_legal = generate_games(500, seed=20, with_legal=True)
logits = model(eval_tokens[:, :31])
legal = eval_legal[:, :31]  # legal[g, t]: the legal next moves after move t, as tokens
has_move = legal.any(-1)  # the last position of each game has none (the game stops)
top_legal = legal.gather(-1, logits.argmax(-1, keepdim=True))[..., 0][has_move].float().mean().item()
empty_and_legal = (legal.sum(-1)[has_move] / (31 - torch.arange(31))[None].expand_as(legal[..., 0])[has_move]).mean()
print(f"top-1 prediction legal: {top_legal:.3f}; share of empty squares that are legal: {empty_and_legal:.3f}")
recorded = metrics["metrics"]["legal_move_accuracy"]
assert abs(top_legal - recorded["value"]) < 0.02 and top_legal > 0.95
assert empty_and_legal < 0.5

# %% [markdown]
# Li et al. found the same with their synthetic model: its top-1 prediction was legal 99.99% of the time. Ours
# is smaller, saw far fewer games, and is right less often, but still far above chance.
#
# ## Part 3: probing for the board
#
# If the model tracks the board, each square's state should be readable from the residual stream. Two ways to
# label a square: by colour (empty / black / white) or relative to the player about to move (empty / mine /
# theirs). After move $t$ (counting from 0, black first) white is to move when $t$ is even.


# %% [exercise] to_mine_theirs difficulty=2 importance=4 minutes=8
def to_mine_theirs(boards: Int[Tensor, "n_moves 36"]) -> Int[Tensor, "n_moves 36"]:
    """Relabel the boards after each move (row t: after move t, black having moved first) from the
    view of the player about to move: 0 empty, 1 theirs-to-move's own disc ("mine"), 2 the
    opponent's ("theirs")."""
    raise NotImplementedError()


# %% [hint]
# Multiply each board by the sign of the player to move, so that their discs become +1. Who moves after row 0?


# %% [exercise] residual_stream difficulty=1 importance=3 minutes=5
def residual_stream(
    model: HookedTransformer, tokens: Int[Tensor, "batch seq"], layer: int
) -> Float[Tensor, "batch seq d_model"]:
    """The residual stream after `layer` blocks: layer 0 is the embedding (the input to block 0),
    layer i > 0 the output of block i - 1."""
    raise NotImplementedError()


# %% [hint]
# Which hook names hold the residual stream before block 0 and after block i? `names_filter` saves memory.

# %% [markdown]
# A probe maps a residual vector to 3 scores per square. The fastest way to fit one is **ridge regression** onto
# one-hot targets: append a constant 1 to each vector (a bias), and solve the regularised least-squares problem
# in closed form. Its argmax is a linear classifier, like a logistic-regression probe's, and it takes
# milliseconds.


# %% [exercise] fit_probe difficulty=3 importance=5 minutes=15
def fit_probe(
    x: Float[Tensor, "n d_model"], states: Int[Tensor, "n 36"], l2: float
) -> Float[Tensor, "d_model_plus_1 36 3"]:
    """A linear probe by ridge regression onto one-hot states: with X = x with a column of ones
    appended and Y[n, s, c] = 1 where states[n, s] == c, the weights W minimise
    |X W - Y|^2 + l2 |W|^2 for each square and state, i.e. W = (X^T X + l2 I)^-1 X^T Y."""
    raise NotImplementedError()


# %% [hint]
# All 36 * 3 targets share one Gram matrix: flatten Y to [n, 108], solve once, reshape. Solve in float64
# (`torch.linalg.solve`) rather than inverting.

# %% [hint]
# `X = torch.cat([x, torch.ones(len(x), 1)], 1)`; `Y = F.one_hot(states, 3).reshape(n, -1)`; return float32.


# %% [exercise] probe_accuracy difficulty=1 importance=3 minutes=5
def probe_accuracy(
    probe: Float[Tensor, "d_model_plus_1 36 3"], x: Float[Tensor, "n d_model"], states: Int[Tensor, "n 36"],
    squares: list[int],
) -> float:  # fmt: skip
    """Share of (row, square) pairs, over the given squares, where the probe's highest score (x
    with a one appended, times the probe) is the true state."""
    raise NotImplementedError()


# %% [hint]
# Append the ones column as in `fit_probe`, take the argmax over the 3 states, compare and index the squares.

# %% [markdown]
# Now the data: 400 games to fit on and 200 to test on. Each game position (after move $t$, for every move the
# game has) is one row; the centre squares never change state, so accuracies count the 32 playable squares.


# %%
def probe_dataset(n_games: int, seed: int):
    tokens, lengths = generate_games(n_games, seed)
    boards, _ = game_boards(tokens, lengths)
    keep = torch.arange(31)[None] < lengths[:, None]
    mine_theirs = torch.stack([to_mine_theirs(b) for b in boards[:, :31]])[keep]
    colours = torch.where(boards == 0, 0, torch.where(boards == 1, 1, 2))[:, :31][keep]
    resid = [residual_stream(model, tokens[:, :31], layer)[keep] for layer in range(cfg.n_layers + 1)]
    return resid, mine_theirs, colours


train_x, train_mt, train_bw = probe_dataset(400, seed=30)
test_x, test_mt, test_bw = probe_dataset(200, seed=31)
L2 = 1.0
accuracy = {"mine / theirs": [], "black / white": []}
probes = []
for layer in tqdm(range(cfg.n_layers + 1), desc="probes"):
    probes.append(fit_probe(train_x[layer], train_mt, L2))
    accuracy["mine / theirs"].append(probe_accuracy(probes[-1], test_x[layer], test_mt, PLAYABLE))
    colour_probe = fit_probe(train_x[layer], train_bw, L2)
    accuracy["black / white"].append(probe_accuracy(colour_probe, test_x[layer], test_bw, PLAYABLE))
counts = torch.stack([(test_mt[:, PLAYABLE] == c).float().mean(0) for c in range(3)])
baseline = counts.max(0).values.mean().item()  # each square's most common state
fig = go.Figure()
for name, values in accuracy.items():
    fig.add_scatter(x=list(range(cfg.n_layers + 1)), y=values, name=name)
fig.add_hline(y=baseline, line_dash="dot", annotation_text="most common state")
fig.update_layout(title="Linear probe accuracy by layer", xaxis_title="layer (0: embedding)",
                  yaxis_title="accuracy (held-out games)").show()  # fmt: skip
print({k: [round(v, 3) for v in vs] for k, vs in accuracy.items()}, f"baseline {baseline:.3f}")

# %% [finding] best_probe_layer difficulty=2 importance=4 minutes=5
# At which layer (0: embedding, i: after block i - 1) does the empty / mine / theirs probe read the board best?
best_probe_layer = ...

# %% [hint]
# Look at the plot, or take the argmax of the list of accuracies.

# %% [solution]
best_probe_layer = max(range(cfg.n_layers + 1), key=lambda layer: accuracy["mine / theirs"][layer])

# %% [finding] mine_theirs_advantage difficulty=3 importance=5 minutes=10
# How much more accurate is the empty / mine / theirs probe than the empty / black / white probe at that layer?
# Assign the difference of the two accuracies (a number between -1 and 1).
mine_theirs_advantage = ...

# %% [hint]
# Compare the two curves at the layer you found, not at their own best layers.

# %% [solution]
mine_theirs_advantage = accuracy["mine / theirs"][best_probe_layer] - accuracy["black / white"][best_probe_layer]

# %%
best = best_probe_layer
mt_acc, bw_acc = accuracy["mine / theirs"][best], accuracy["black / white"][best]
recorded = metrics["probes"]
print(f"layer {best}: mine / theirs {mt_acc:.3f}, black / white {bw_acc:.3f}; baseline {baseline:.3f}")
assert best in (2, 3, 4) and abs(mt_acc - max(recorded["mine_theirs"])) < 0.03  # as recorded in metrics.json
assert mt_acc > baseline + 0.3  # a linear probe reads the board far better than guessing each square's usual state
assert mt_acc - bw_acc > 0.08  # and "mine / theirs" beats "black / white" by over 8 points
assert accuracy["mine / theirs"][0] < 0.7  # the embedding of the last move alone does not hold the board
assert mt_acc < 0.95  # below Nanda's near-perfect linear probe on the 8x8 model (see below)

# %% [markdown]
# The board is linear, in the model's own terms: empty / mine / theirs. It is readable from layer 2 on (layers 2
# to 4 are within a point of each other, so the check accepts any of them). The best linear probe reads about
# 90% of the playable squares right on held-out games, against 53% for guessing each square's most common
# state, and about 11 points better than the same probe for empty / black / white. That is the same story as
# Nanda's, though weaker: on the paper's 8-layer model his linear mine / theirs probe was close to perfect. A
# smaller model trained on far fewer games has a noisier world model, and its predictions are legal less often.

# %% [markdown]
# ## Part 4: the probe's directions
#
# For each square, the probe's "theirs" column minus its "mine" column is the direction in the residual stream
# that moves the probe from reading "mine" to reading "theirs" fastest. If the model keeps a separate feature
# per square, these directions should be nearly orthogonal for different squares.


# %% [exercise] flip_directions difficulty=2 importance=4 minutes=8
def flip_directions(probe: Float[Tensor, "d_model_plus_1 36 3"]) -> Float[Tensor, "36 d_model"]:
    """For each square, the unit vector in the residual stream along which the probe's "theirs"
    score (state 2) grows fastest relative to its "mine" score (state 1): the normalised
    difference of those two columns of the weights (the bias row left out)."""
    raise NotImplementedError()


# %% [hint]
# The scores are linear in x: the gradient of (theirs score - mine score) is a difference of two weight columns.

# %%
directions = flip_directions(probes[best])
cosines = directions @ directions.T
playable_cosines = cosines[PLAYABLE][:, PLAYABLE]
off_diagonal = playable_cosines[~torch.eye(32, dtype=torch.bool)]
px.imshow(playable_cosines, color_continuous_scale="RdBu", zmin=-1, zmax=1,
          title=f"Cosine similarity of the flip directions (layer {best}, playable squares)").show()  # fmt: skip
print(f"mean |cosine| between different squares: {off_diagonal.abs().mean():.3f}, max {off_diagonal.max():.3f}")
assert off_diagonal.abs().mean() < 0.15 and off_diagonal.max() < 0.6  # nearly orthogonal, none close to parallel

# %% [markdown]
# ## Part 5: editing the board
#
# A probe that reads a feature does not prove the model *uses* it. Li et al. tested use by intervention: change
# the activations so that the probe reads a different board, and see if the predicted moves change to those
# legal on that board. With a linear probe the edit is simple: take the residual vector at the last position
# after some layer, and **reflect** its component along a square's flip direction, so that a "mine" disc reads
# as "theirs". Then compare the model's top predictions with the legal moves of the original board and of the
# board with that one disc turned over.


# %% [exercise] reflect difficulty=2 importance=4 minutes=8
def reflect(resid: Float[Tensor, "... d_model"], direction: Float[Tensor, " d_model"], strength: float) -> Float[Tensor, "... d_model"]:  # fmt: skip
    """Move each residual vector along the unit `direction`: remove its component c along it and
    put it back reversed and scaled, x - c u - strength * c u (strength 1: a reflection)."""
    raise NotImplementedError()


# %% [hint]
# The component is one number per vector: a dot product over the last axis, broadcast back along `direction`.


# %% [exercise] edited_logits difficulty=3 importance=5 minutes=15
def edited_logits(
    model: HookedTransformer, tokens: Int[Tensor, " seq"], layer: int, direction: Float[Tensor, " d_model"],
    strength: float,
) -> Float[Tensor, " d_vocab_out"]:  # fmt: skip
    """The logits at the last position of one game prefix when the residual stream after `layer`
    blocks (layer >= 1) is reflected along `direction` (with `strength`) at that last position
    only."""
    raise NotImplementedError()


# %% [hint]
# Which hook point is "after `layer` blocks"? A hook may return a new tensor; edit only the last position.

# %% [hint]
# `model.run_with_hooks(tokens[None], fwd_hooks=[(f"blocks.{layer - 1}.hook_resid_post", hook)])`, where the hook
# clones the residual and reflects `resid[:, -1]`.


# %% [exercise] legal_match difficulty=2 importance=4 minutes=8
def legal_match(logits: Float[Tensor, " moves"], original: Bool[Tensor, " moves"], edited: Bool[Tensor, " moves"]) -> float:  # fmt: skip
    """Which legal set the predictions follow: take the model's top-k moves, k the number of moves
    legal on the edited board; return (how many of them are legal on the edited board minus how
    many are legal on the original board) / k. Positive: the predictions follow the edited board."""
    raise NotImplementedError()


# %% [hint]
# `topk` gives the indices of the k best moves; index both masks with them.


# %% [exercise] intervention_success difficulty=3 importance=5 minutes=15
def intervention_success(
    model: HookedTransformer, cases: list[tuple[Tensor, Tensor, int]], directions: Float[Tensor, "36 d_model"],
    layer: int, strength: float, playable: list[int],
) -> float:  # fmt: skip
    """For each case (tokens of a game prefix [seq], the board after it [36], a square holding a disc
    of the player to move), edit the residual stream after `layer` blocks at the last position
    along that square's flip direction, and score the edited logits with legal_match against the
    legal moves (as tokens: indices into `playable`) of the board before and after turning that
    disc over. The player to move is white (-1) after an odd number of moves. Returns the share of
    cases scoring above 0."""
    raise NotImplementedError()


# %% [hint]
# Build two boolean masks over the 32 tokens from `legal_moves` of the two boards (same player), then call your
# `edited_logits` and `legal_match`.

# %% [markdown]
# The test cases: from fresh games, a random prefix and a disc of the player to move whose turning over changes
# the set of legal moves (otherwise the edit could not show). Without an edit (strength -1: the vector is left
# unchanged) the predictions follow the original board, so the score is the share of cases where the model was
# already confused. Random unit directions are the control.


# %%
def intervention_cases(n_games: int, seed: int, n_cases: int) -> list[tuple[Tensor, Tensor, int]]:
    tokens, lengths = generate_games(n_games, seed)
    boards, _ = game_boards(tokens, lengths)
    pick = torch.Generator().manual_seed(seed)
    cases = []
    for g in range(n_games):
        n = int(torch.randint(6, int(lengths[g]) - 1, (1,), generator=pick))
        board, to_move = boards[g, n - 1], (-1 if n % 2 == 1 else 1)
        for square in [s for s in PLAYABLE if board[s] == to_move]:
            flipped = board.clone()
            flipped[square] = -to_move
            before, after = legal_moves(board, to_move), legal_moves(flipped, to_move)
            if before != after and after:
                cases.append((tokens[g, :n], board, square))
                break
        if len(cases) == n_cases:
            break
    return cases


cases = intervention_cases(300, seed=40, n_cases=100)
STRENGTH = 20.0  # reflect and scale up: x - 21 c u, so the probe reads the disc as strongly "theirs"
EDIT_LAYER = 2
random_directions = torch.randn(36, cfg.d_model, generator=torch.Generator().manual_seed(0))
random_directions /= random_directions.norm(dim=1, keepdim=True)
results = {}
for layer in tqdm(range(1, cfg.n_layers), desc="intervening"):
    layer_directions = flip_directions(probes[layer])
    results[layer] = {
        "no edit": intervention_success(model, cases, layer_directions, layer, -1.0, PLAYABLE),
        "probe direction": intervention_success(model, cases, layer_directions, layer, STRENGTH, PLAYABLE),
        "random direction": intervention_success(model, cases, random_directions, layer, STRENGTH, PLAYABLE),
    }
print(results)
at = results[EDIT_LAYER]
# Editing after block 1 (layer 2) moves the predictions to the edited board in over half the cases: far more
# often than no edit or a random direction of the same strength (about a quarter each).
assert at["probe direction"] > 0.5 and at["no edit"] < 0.3 and at["random direction"] < 0.3
assert at["probe direction"] > at["no edit"] + 0.2 and at["probe direction"] > at["random direction"] + 0.2
assert at["probe direction"] == max(r["probe direction"] for r in results.values())  # the best layer to edit
assert at["probe direction"] < 0.7  # well short of Li et al.'s success rate (see below)

# %% [markdown]
# The linear direction is used by the model: reflecting one square's disc from "mine" to "theirs" in the residual
# stream after block 1, at the last position only, makes the top predictions follow the edited board in over
# half of the cases where the two boards differ, against about a quarter with no edit or a random direction. Li
# et al.'s edits worked far more often; they changed the activations at several layers at once, by gradient
# descent against a nonlinear probe, on a model that plays legal moves almost perfectly. A single linear
# reflection at one position is a blunter tool, and our model's board is noisier to begin with.
