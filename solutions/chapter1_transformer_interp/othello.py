"""Reference solutions for 1.5.3 OthelloGPT: a world model you can read and edit."""

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

SIZE = 6
DIRECTIONS = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]


# ----------------------------------------------------------------------------- the game


def flipped_squares(board: Int[Tensor, " 36"], player: int, square: int) -> list[int]:
    """The squares (sorted) whose discs flip if `player` (+1 black, -1 white) plays `square` on
    `board` (+1 black, -1 white, 0 empty; squares row-major on a 6x6 grid). Empty if the move is
    illegal: the square is taken, or no straight line of opponent discs from it ends in one of
    the player's discs."""
    if board[square] != 0:
        return []
    row, col = divmod(square, SIZE)
    out = []
    for dr, dc in DIRECTIONS:
        line, r, c = [], row + dr, col + dc
        while 0 <= r < SIZE and 0 <= c < SIZE and board[r * SIZE + c] == -player:
            line.append(r * SIZE + c)
            r, c = r + dr, c + dc
        if line and 0 <= r < SIZE and 0 <= c < SIZE and board[r * SIZE + c] == player:
            out += line
    return sorted(out)


def legal_moves(board: Int[Tensor, " 36"], player: int) -> list[int]:
    """The squares (sorted) where `player` may play: those where a move flips at least one disc."""
    return [square for square in range(SIZE * SIZE) if flipped_squares(board, player, square)]


def play_move(board: Int[Tensor, " 36"], player: int, square: int) -> Int[Tensor, " 36"]:
    """A new board after `player` plays `square`: the square and every flipped disc become the
    player's. Raises ValueError for an illegal move; the input board is left unchanged."""
    flipped = flipped_squares(board, player, square)
    if not flipped:
        raise ValueError(f"{square} is not a legal move for {player}")
    new = board.clone()
    new[flipped + [square]] = player
    return new


def board_states(start: Int[Tensor, " 36"], squares: list[int]) -> Int[Tensor, "n_moves 36"]:
    """The board after each move of a game from `start`, given as the squares played: black (+1)
    moves first and the players alternate (no passes). Row t is the board after move t."""
    boards, board, player = [], start, 1
    for square in squares:
        board = play_move(board, player, square)
        boards.append(board)
        player = -player
    return torch.stack(boards)


def to_mine_theirs(boards: Int[Tensor, "n_moves 36"]) -> Int[Tensor, "n_moves 36"]:
    """Relabel the boards after each move (row t: after move t, black having moved first) from the
    view of the player about to move: 0 empty, 1 theirs-to-move's own disc ("mine"), 2 the
    opponent's ("theirs")."""
    to_move = torch.where(torch.arange(len(boards)) % 2 == 0, -1, 1)  # white moves after move 0
    relative = boards * to_move[:, None]
    return torch.where(relative == 0, 0, torch.where(relative > 0, 1, 2))


# ----------------------------------------------------------------------------- probes


def residual_stream(
    model: HookedTransformer, tokens: Int[Tensor, "batch seq"], layer: int
) -> Float[Tensor, "batch seq d_model"]:
    """The residual stream after `layer` blocks: layer 0 is the embedding (the input to block 0),
    layer i > 0 the output of block i - 1."""
    name = "blocks.0.hook_resid_pre" if layer == 0 else f"blocks.{layer - 1}.hook_resid_post"
    _, cache = model.run_with_cache(tokens, names_filter=name)
    return cache[name]


def fit_probe(
    x: Float[Tensor, "n d_model"], states: Int[Tensor, "n 36"], l2: float
) -> Float[Tensor, "d_model_plus_1 36 3"]:
    """A linear probe by ridge regression onto one-hot states: with X = x with a column of ones
    appended and Y[n, s, c] = 1 where states[n, s] == c, the weights W minimise
    |X W - Y|^2 + l2 |W|^2 for each square and state, i.e. W = (X^T X + l2 I)^-1 X^T Y."""
    X = torch.cat([x, torch.ones(len(x), 1)], dim=1).double()
    Y = torch.nn.functional.one_hot(states, 3).double().reshape(len(x), -1)
    gram = X.T @ X + l2 * torch.eye(X.shape[1], dtype=torch.float64)
    return torch.linalg.solve(gram, X.T @ Y).reshape(X.shape[1], -1, 3).float()


def probe_accuracy(
    probe: Float[Tensor, "d_model_plus_1 36 3"], x: Float[Tensor, "n d_model"], states: Int[Tensor, "n 36"],
    squares: list[int],
) -> float:  # fmt: skip
    """Share of (row, square) pairs, over the given squares, where the probe's highest score (x
    with a one appended, times the probe) is the true state."""
    scores = torch.einsum("nd,dsc->nsc", torch.cat([x, torch.ones(len(x), 1)], dim=1), probe)
    return (scores.argmax(-1) == states)[:, squares].float().mean().item()


def flip_directions(probe: Float[Tensor, "d_model_plus_1 36 3"]) -> Float[Tensor, "36 d_model"]:
    """For each square, the unit vector in the residual stream along which the probe's "theirs"
    score (state 2) grows fastest relative to its "mine" score (state 1): the normalised
    difference of those two columns of the weights (the bias row left out)."""
    difference = probe[:-1, :, 2] - probe[:-1, :, 1]
    return (difference / difference.norm(dim=0, keepdim=True)).T


# ----------------------------------------------------------------------------- intervening


def reflect(resid: Float[Tensor, "... d_model"], direction: Float[Tensor, " d_model"], strength: float) -> Float[Tensor, "... d_model"]:  # fmt: skip
    """Move each residual vector along the unit `direction`: remove its component c along it and
    put it back reversed and scaled, x - c u - strength * c u (strength 1: a reflection)."""
    component = resid @ direction
    return resid - (1 + strength) * component[..., None] * direction


def edited_logits(
    model: HookedTransformer, tokens: Int[Tensor, " seq"], layer: int, direction: Float[Tensor, " d_model"],
    strength: float,
) -> Float[Tensor, " d_vocab_out"]:  # fmt: skip
    """The logits at the last position of one game prefix when the residual stream after `layer`
    blocks (layer >= 1) is reflected along `direction` (with `strength`) at that last position
    only."""

    def hook(resid, hook):
        resid = resid.clone()
        resid[:, -1] = reflect(resid[:, -1], direction, strength)
        return resid

    logits = model.run_with_hooks(tokens[None], fwd_hooks=[(f"blocks.{layer - 1}.hook_resid_post", hook)])
    return logits[0, -1]


def legal_match(logits: Float[Tensor, " moves"], original: Bool[Tensor, " moves"], edited: Bool[Tensor, " moves"]) -> float:  # fmt: skip
    """Which legal set the predictions follow: take the model's top-k moves, k the number of moves
    legal on the edited board; return (how many of them are legal on the edited board minus how
    many are legal on the original board) / k. Positive: the predictions follow the edited board."""
    top = logits.topk(int(edited.sum())).indices
    return ((edited[top].float().sum() - original[top].float().sum()) / len(top)).item()


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
    wins = []
    for tokens, board, square in cases:
        player = -1 if len(tokens) % 2 == 1 else 1
        to_token = {s: i for i, s in enumerate(playable)}
        masks = []
        flipped = board.clone()
        flipped[square] = -flipped[square]
        for b in [board, flipped]:
            mask = torch.zeros(len(playable), dtype=torch.bool)
            mask[[to_token[s] for s in legal_moves(b, player)]] = True
            masks.append(mask)
        logits = edited_logits(model, tokens, layer, directions[square], strength)
        wins.append(legal_match(logits, masks[0], masks[1]) > 0)
    return sum(wins) / len(wins)
