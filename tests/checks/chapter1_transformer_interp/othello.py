"""Checks for 1.5.3 OthelloGPT.

The rules are checked on the start position (answers worked out in the comments) and on every
square of boards from seeded random games, against the zoo's own one-board rules
(zoo/othello.py `flips`). Probes are checked on tiny hand-solved problems and on random data;
model functions against oracles written from other hook points. The findings are graded against
zoo/othello/gpt-6x6/metrics.json.
"""

import functools

import torch
import torch.nn.functional as F

from solutions.chapter1_transformer_interp import othello as ref
from tests.harness import Case, Checker, Exercise, Finding, number_within
from zoo import othello as zo


@functools.cache
def _model():
    return zo.load_othello_model()


@functools.cache
def _games():
    tokens, lengths = zo.generate_games(6, seed=101)
    boards, _ = zo.game_boards(tokens, lengths)
    return tokens, lengths, boards


def _mid_boards():
    """Three boards from seeded games: early, middle and late."""
    _, lengths, boards = _games()
    return [boards[0, 3], boards[1, 14], boards[2, int(lengths[2]) - 3]]


# ----------------------------------------------------------------------------- the rules


def _flip_cases(gen):
    start = zo.start_board()
    # Black on (1, 2) = square 8: below it (2, 2) = 14 is white and (3, 2) = 20 black, so 14 flips.
    yield Case((start, 1, 8), "black plays square 8 on the start board (worked by hand)", expected=[14])
    yield Case((start, 1, 15), "a square that is taken", expected=[])
    yield Case((start, 1, 0), "a corner far from any disc", expected=[])
    for b, board in enumerate(_mid_boards()):
        for player in (1, -1):
            for square in range(36):
                yield Case((board, player, square), f"board {b}, player {player}, square {square}",
                           expected=sorted(zo.flips(board, player, square)))  # fmt: skip


def _flip_no_closing_disc(board, player, square):
    """Opponent discs flip even when the line runs into an empty square or the edge."""
    if board[square] != 0:
        return []
    row, col = divmod(square, 6)
    out = []
    for dr, dc in ref.DIRECTIONS:
        r, c = row + dr, col + dc
        while 0 <= r < 6 and 0 <= c < 6 and board[r * 6 + c] == -player:
            out.append(r * 6 + c)
            r, c = r + dr, c + dc
    return sorted(out)


def _flip_no_diagonals(board, player, square):
    keep = {(-1, 0), (1, 0), (0, -1), (0, 1)}
    return sorted(s for s in ref.flipped_squares(board, player, square) if _direction_of(square, s) in keep)


def _direction_of(square, other):
    (r0, c0), (r1, c1) = divmod(square, 6), divmod(other, 6)
    sign = lambda v: (v > 0) - (v < 0)  # noqa: E731
    return sign(r1 - r0), sign(c1 - c0)


def _flip_wrapping(board, player, square):
    """Walks by adding to the square index (wrapping around rows) instead of tracking row and column."""
    if board[square] != 0:
        return []
    out = []
    for step in (-7, -6, -5, -1, 1, 5, 6, 7):
        line, s = [], square + step
        while 0 <= s < 36 and board[s] == -player:
            line.append(s)
            s += step
        if line and 0 <= s < 36 and board[s] == player:
            out += line
    return sorted(out)


def _flip_including_square(board, player, square):
    flipped = ref.flipped_squares(board, player, square)
    return sorted(flipped + [square]) if flipped else []


def _legal_cases(gen):
    start = zo.start_board()
    # Black flanks a white disc from 8, 13, 22 and 27; white flanks a black one from 9, 16, 19 and 26.
    yield Case((start, 1), "black on the start board (worked by hand)", expected=[8, 13, 22, 27])
    yield Case((start, -1), "white on the start board (worked by hand)", expected=[9, 16, 19, 26])
    for b, board in enumerate(_mid_boards()):
        for player in (1, -1):
            yield Case((board, player), f"board {b}, player {player}", expected=zo.legal_squares(board, player))


def _legal_next_to_opponent(board, player):
    """Every empty square next to an opponent disc."""
    out = []
    for s in range(36):
        r, c = divmod(s, 6)
        near = [(r + dr) * 6 + c + dc for dr, dc in ref.DIRECTIONS if 0 <= r + dr < 6 and 0 <= c + dc < 6]
        if board[s] == 0 and any(board[n] == -player for n in near):
            out.append(s)
    return out


def _legal_opponent(board, player):
    return ref.legal_moves(board, -player)


def _play_cases(gen):
    start = zo.start_board()
    expected = start.clone()
    expected[[8, 14]] = 1  # black on 8 flips 14
    yield Case((start, 1, 8), "black plays 8 on the start board (worked by hand)", expected=expected)
    for b, board in enumerate(_mid_boards()):
        for player in (1, -1):
            for square in zo.legal_squares(board, player)[:3]:
                yield Case((board, player, square), f"board {b}, player {player}, square {square}",
                           expected=zo.play(board, player, square))  # fmt: skip


def _play_raises(impl):
    board = zo.start_board()
    try:
        impl(board, 1, 0)
    except ValueError:
        return
    raise AssertionError("play_move(start_board(), 1, 0) should raise ValueError (square 0 flips nothing).")


def _play_without_square(board, player, square):
    new = ref.play_move(board, player, square)
    new[square] = 0
    return new


def _play_flips_only(board, player, square):
    new = board.clone()
    new[ref.flipped_squares(board, player, square)] = player
    return new


def _states_cases(gen):
    start = zo.start_board()
    after_8 = start.clone()
    after_8[[8, 14]] = 1
    # Then white on 9 flanks 15 (black) with 21 (white).
    after_9 = after_8.clone()
    after_9[[9, 15]] = -1
    yield Case((start, [8, 9]), "black 8, white 9 (worked by hand)", expected=torch.stack([after_8, after_9]))
    tokens, lengths, boards = _games()
    for g in range(3):
        squares = [zo.PLAYABLE[t] for t in tokens[g, : lengths[g]].tolist()]
        yield Case((start, squares), f"seeded game {g} ({len(squares)} moves)", expected=boards[g, : lengths[g]])


def _states_with_start(start, squares):
    boards = ref.board_states(start, squares)
    return torch.cat([start[None], boards[:-1]])


def _states_black_only_first_move(start, squares):
    return ref.board_states(start, squares[:1]).repeat(len(squares), 1)


# ----------------------------------------------------------------------------- relative states


def _mt_cases(gen):
    # Row 0 is after black's first move: white to move, so black discs (+1) are "theirs" (2) and white "mine".
    boards = torch.tensor([[1, -1, 0, 1], [1, -1, 0, 1], [0, 0, -1, 1]])
    yield Case((boards,), "three hand-made rows (worked by hand)", expected=torch.tensor([[2, 1, 0, 2], [1, 2, 0, 1], [0, 0, 1, 2]]))  # fmt: skip
    _, lengths, boards = _games()
    for g in range(3):
        yield Case((boards[g, : lengths[g]],), f"the boards of seeded game {g}")


def _mt_signs_kept(boards):
    """Signs relative to the mover (+1 / -1 / 0), not relabelled as 1 / 2 / 0."""
    to_move = torch.where(torch.arange(len(boards)) % 2 == 0, -1, 1)
    return boards * to_move[:, None]


def _mt_colours(boards):
    return torch.where(boards == 0, 0, torch.where(boards > 0, 1, 2))


def _mt_mover(boards):
    """Relative to the player who just moved, not the one about to move."""
    return ref.to_mine_theirs(-boards)


def _resid_cases(gen):
    tokens, _, _ = _games()
    for layer in range(5):
        yield Case((tokens[:3, :31], layer), f"layer {layer}")


def _run_on_model(impl, case):
    with torch.no_grad():
        return impl(_model(), *case.args)


def _oracle_resid(model, tokens, layer):
    """Rebuilt from the blocks' outputs: embeddings plus the attention and MLP outputs before `layer`."""
    names = ["hook_embed", "hook_pos_embed"] + [
        f"blocks.{i}.hook_{part}_out" for i in range(layer) for part in ("attn", "mlp")
    ]
    _, cache = model.run_with_cache(tokens, names_filter=names)
    return sum(cache[name] for name in names)


def _resid_off_by_one(model, tokens, layer):
    name = f"blocks.{min(layer, 3)}.hook_resid_post"
    _, cache = model.run_with_cache(tokens, names_filter=name)
    return cache[name]


def _resid_mid(model, tokens, layer):
    name = "blocks.0.hook_resid_pre" if layer == 0 else f"blocks.{layer - 1}.hook_resid_mid"
    _, cache = model.run_with_cache(tokens, names_filter=name)
    return cache[name]


def _resid_token_embedding_only(model, tokens, layer):
    if layer == 0:
        return model.W_E[tokens]
    return ref.residual_stream(model, tokens, layer)


# ----------------------------------------------------------------------------- probes


def _probe_cases(gen):
    # x = [1, -1] (one feature), states [1, 2] on one square, no penalty: X = [[1, 1], [-1, 1]] is invertible,
    # X^-1 = [[1, -1], [1, 1]] / 2, and W = X^-1 Y with Y = [[0, 1, 0], [0, 0, 1]] gives
    # [[0, 0.5, -0.5], [0, 0.5, 0.5]] (feature row, then bias row).
    x = torch.tensor([[1.0], [-1.0]])
    expected = torch.tensor([[[0.0, 0.5, -0.5]], [[0.0, 0.5, 0.5]]])
    yield Case((x, torch.tensor([[1], [2]]), 0.0), "two rows, one square (worked by hand)", expected=expected)
    for n, d, l2 in [(50, 8, 1.0), (300, 16, 0.1), (200, 128, 10.0)]:
        x = torch.randn(n, d, generator=gen) * 3 + 1
        states = torch.randint(0, 3, (n, 36), generator=gen)
        yield Case((x, states, l2), f"random: {n} rows, d_model {d}, l2 {l2}")


def _oracle_probe(x, states, l2):
    """Gradient-free check by the normal equations' other form: W = X^T (X X^T + l2 I)^-1 Y (l2 > 0)."""
    X = torch.cat([x, torch.ones(len(x), 1)], dim=1).double()
    Y = F.one_hot(states, 3).double().reshape(len(x), -1)
    if l2 == 0:
        return torch.linalg.lstsq(X, Y).solution.reshape(X.shape[1], -1, 3).float()
    W = X.T @ torch.linalg.solve(X @ X.T + l2 * torch.eye(len(X), dtype=torch.float64), Y)
    return W.reshape(X.shape[1], -1, 3).float()


def _probe_no_bias(x, states, l2):
    X = x.double()
    Y = F.one_hot(states, 3).double().reshape(len(x), -1)
    W = torch.linalg.solve(X.T @ X + l2 * torch.eye(X.shape[1], dtype=torch.float64), X.T @ Y)
    return torch.cat([W, torch.zeros(1, W.shape[1], dtype=torch.float64)]).reshape(X.shape[1] + 1, -1, 3).float()


def _probe_penalty_everywhere(x, states, l2):
    X = torch.cat([x, torch.ones(len(x), 1)], dim=1).double()
    Y = F.one_hot(states, 3).double().reshape(len(x), -1)
    W = torch.linalg.solve(X.T @ X + l2 * torch.ones(X.shape[1], X.shape[1], dtype=torch.float64) + 1e-6 * torch.eye(X.shape[1], dtype=torch.float64), X.T @ Y)  # fmt: skip
    return W.reshape(X.shape[1], -1, 3).float()


def _probe_bias_first(x, states, l2):
    w = ref.fit_probe(x, states, l2)
    return torch.cat([w[-1:], w[:-1]])


def _probe_reshaped_state_major(x, states, l2):
    X = torch.cat([x, torch.ones(len(x), 1)], dim=1).double()
    Y = F.one_hot(states, 3).double().transpose(1, 2).reshape(len(x), -1)
    W = torch.linalg.solve(X.T @ X + l2 * torch.eye(X.shape[1], dtype=torch.float64), X.T @ Y)
    return W.reshape(X.shape[1], -1, 3).float()


def _accuracy_cases(gen):
    # One feature; probe scores (x, then bias): state 0 = -x, state 1 = x, state 2 = 0.5 (bias).
    probe = torch.tensor([[[-1.0, 1.0, 0.0]] * 2, [[0.0, 0.0, 0.5]] * 2])
    x = torch.tensor([[2.0], [-2.0], [0.1]])  # predicts 1, 0, 2 on both squares
    states = torch.tensor([[1, 1], [0, 2], [2, 2]])  # square 0: 3 of 3 right; square 1: 2 of 3
    yield Case((probe, x, states, [0, 1]), "both squares (worked by hand)", expected=5 / 6)
    yield Case((probe, x, states, [1]), "square 1 only (worked by hand)", expected=2 / 3)
    for n, d in [(100, 8), (400, 32)]:
        probe = torch.randn(d + 1, 36, 3, generator=gen)
        x = torch.randn(n, d, generator=gen)
        states = torch.randint(0, 3, (n, 36), generator=gen)
        yield Case((probe, x, states, zo.PLAYABLE), f"random: {n} rows, d_model {d}, the playable squares")


def _accuracy_all_squares(probe, x, states, squares):
    return ref.probe_accuracy(probe, x, states, list(range(states.shape[1])))


def _accuracy_no_bias(probe, x, states, squares):
    scores = torch.einsum("nd,dsc->nsc", x, probe[:-1])
    return (scores.argmax(-1) == states)[:, squares].float().mean().item()


def _directions_cases(gen):
    # d_model 2 (plus the bias row): square 0's theirs - mine = [3, 4] (norm 5); square 1's = [0, -2].
    probe = torch.tensor([[[0.0, 1.0, 4.0], [0.0, 1.0, 1.0]], [[9.0, 0.0, 4.0], [0.0, 3.0, 1.0]], [[5.0, 5.0, -5.0]] * 2])  # fmt: skip
    yield Case((probe,), "two squares, d_model 2 (worked by hand)", expected=torch.tensor([[0.6, 0.8], [0.0, -1.0]]))
    for d in [8, 128]:
        yield Case((torch.randn(d + 1, 36, 3, generator=gen),), f"random probe, d_model {d}")


def _directions_mine_minus_theirs(probe):
    return -ref.flip_directions(probe)


def _directions_unnormalised(probe):
    return (probe[:-1, :, 2] - probe[:-1, :, 1]).T


def _directions_with_bias(probe):
    difference = probe[:, :, 2] - probe[:, :, 1]
    return (difference / difference.norm(dim=0, keepdim=True)).T[:, :-1]


def _directions_theirs_minus_empty(probe):
    difference = probe[:-1, :, 2] - probe[:-1, :, 0]
    return (difference / difference.norm(dim=0, keepdim=True)).T


# ----------------------------------------------------------------------------- intervening


def _reflect_cases(gen):
    u = torch.tensor([0.6, 0.8])
    # x = [3, 1]: c = 1.8 + 0.8 = 2.6; strength 1 gives x - 2 c u = [3 - 3.12, 1 - 4.16] = [-0.12, -3.16].
    yield Case(
        (torch.tensor([3.0, 1.0]), u, 1.0), "a reflection (worked by hand)", expected=torch.tensor([-0.12, -3.16])
    )
    # strength 0 removes the component: [3, 1] - 2.6 u = [1.44, -1.08].
    yield Case((torch.tensor([3.0, 1.0]), u, 0.0), "strength 0 (worked by hand)", expected=torch.tensor([1.44, -1.08]))
    direction = torch.randn(16, generator=gen)
    direction = direction / direction.norm()
    yield Case((torch.randn(4, 7, 16, generator=gen), direction, 3.0), "a batch of sequences, strength 3")


def _reflect_no_removal(resid, direction, strength):
    return resid - strength * (resid @ direction)[..., None] * direction


def _reflect_sign(resid, direction, strength):
    return resid + (1 + strength) * (resid @ direction)[..., None] * direction


def _reflect_strength_only(resid, direction, strength):
    return resid - strength * direction


def _edited_cases(gen):
    tokens, lengths, _ = _games()
    direction = torch.randn(128, generator=gen)
    direction = direction / direction.norm()
    yield Case((tokens[0, :9], 2, direction, 4.0), "9 moves, layer 2, strength 4")
    yield Case((tokens[1, :20], 1, direction, 1.0), "20 moves, layer 1, strength 1")
    yield Case((tokens[2, :5], 4, -direction, 8.0), "5 moves, layer 4, strength 8")


def _oracle_edited(model, tokens, layer, direction, strength):
    """The same edit made at the input of the next block (or of the final LayerNorm), by adding the change."""
    resid = ref.residual_stream(model, tokens[None], layer)[0, -1]
    change = -(1 + strength) * (resid @ direction) * direction
    if layer == model.cfg.n_layers:  # no later block: edit the final residual directly
        final = ref.residual_stream(model, tokens[None], layer)[0, -1] + change
        return model.unembed(model.ln_final(final[None, None]))[0, 0]

    def hook(x, hook):
        x = x.clone()
        x[:, -1] += change
        return x

    return model.run_with_hooks(tokens[None], fwd_hooks=[(f"blocks.{layer}.hook_resid_pre", hook)])[0, -1]


def _edited_all_positions(model, tokens, layer, direction, strength):
    def hook(resid, hook):
        return ref.reflect(resid, direction, strength)

    return model.run_with_hooks(tokens[None], fwd_hooks=[(f"blocks.{layer - 1}.hook_resid_post", hook)])[0, -1]


def _edited_one_block_late(model, tokens, layer, direction, strength):
    return ref.edited_logits(model, tokens, min(layer + 1, 4), direction, strength)


def _edited_unedited(model, tokens, layer, direction, strength):
    return model(tokens[None])[0, -1]


def _match_cases(gen):
    logits = torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0])
    original = torch.tensor([True, False, True, False, False])
    edited = torch.tensor([False, True, False, True, True])
    # k = 3: the top 3 are moves 0, 1, 2; 1 is legal after the edit, 0 and 2 before: (1 - 2) / 3.
    yield Case((logits, original, edited), "top 3 of 5 (worked by hand)", expected=-1 / 3)
    edited2 = torch.tensor([True, True, False, False, False])
    # k = 2: moves 0 and 1, both legal after the edit, move 0 before: (2 - 1) / 2.
    yield Case((logits, original, edited2), "top 2 of 5 (worked by hand)", expected=0.5)
    for _ in range(3):
        logits = torch.randn(32, generator=gen)
        original = torch.rand(32, generator=gen) < 0.2
        edited = torch.rand(32, generator=gen) < 0.2
        edited[int(torch.randint(0, 32, (1,), generator=gen))] = True
        yield Case((logits, original, edited), "random, 32 moves")


def _match_k_original(logits, original, edited):
    top = logits.topk(max(int(original.sum()), 1)).indices
    return ((edited[top].float().sum() - original[top].float().sum()) / len(top)).item()


def _match_not_divided(logits, original, edited):
    top = logits.topk(int(edited.sum())).indices
    return (edited[top].float().sum() - original[top].float().sum()).item()


def _match_edited_only(logits, original, edited):
    top = logits.topk(int(edited.sum())).indices
    return edited[top].float().mean().item()


@functools.cache
def _intervention_inputs():
    """Ten cases from seeded games: a prefix, its board, and a disc of the player to move whose turning
    over changes the legal moves."""
    tokens, lengths = zo.generate_games(40, seed=102)
    boards, _ = zo.game_boards(tokens, lengths)
    cases = []
    for g in range(40):
        n = min(int(lengths[g]) - 2, 6 + g % 20)
        board, to_move = boards[g, n - 1], (-1 if n % 2 == 1 else 1)
        for square in [s for s in zo.PLAYABLE if board[s] == to_move]:
            flipped = board.clone()
            flipped[square] = -to_move
            after = zo.legal_squares(flipped, to_move)
            if after and after != zo.legal_squares(board, to_move):
                cases.append((tokens[g, :n], board, square))
                break
        if len(cases) == 10:
            break
    return cases


@functools.cache
def _directions(layer):
    """Flip directions of a mine / theirs probe fitted (by the zoo's ridge regression) on 150 seeded games."""
    tokens, lengths = zo.generate_games(150, seed=103)
    boards, _ = zo.game_boards(tokens, lengths)
    keep = torch.arange(31)[None] < lengths[:, None]
    with torch.no_grad():
        x = ref.residual_stream(_model(), tokens[:, :31], layer)[keep]
    states = torch.stack([ref.to_mine_theirs(b) for b in boards[:, :31]])[keep]
    return ref.flip_directions(zo.fit_probe(x, states))


def _intervention_cases(gen):
    yield Case((2, 20.0), "ten cases, probe directions, layer 2, strength 20")
    yield Case((3, 8.0), "ten cases, probe directions, layer 3, strength 8")
    yield Case((1, 3.0), "ten cases, probe directions, layer 1, strength 3")


def _run_intervention(impl, case):
    layer, strength = case.args
    with torch.no_grad():
        return impl(_model(), _intervention_inputs(), _directions(layer), layer, strength, zo.PLAYABLE)


def _oracle_intervention(model, cases, directions, layer, strength, playable):
    """The zoo's one-board rules, the edit made at the next block's input, and the score counted by sets."""
    wins = 0
    for tokens, board, square in cases:
        player = 1 if len(tokens) % 2 == 0 else -1
        flipped = board.clone()
        flipped[square] = -board[square]
        before = {playable.index(s) for s in zo.legal_squares(board, player)}
        after = {playable.index(s) for s in zo.legal_squares(flipped, player)}
        logits = _oracle_edited(model, tokens, layer, directions[square], strength)
        top = set(logits.argsort(descending=True)[: len(after)].tolist())
        wins += len(top & after) > len(top & before)
    return wins / len(cases)


def _intervention_parity_swapped(model, cases, directions, layer, strength, playable):
    swapped = [(t, -b, s) for t, b, s in cases]
    return ref.intervention_success(model, swapped, directions, layer, strength, playable)


def _intervention_unedited(model, cases, directions, layer, strength, playable):
    return ref.intervention_success(model, cases, directions, layer, -1.0, playable)


def _intervention_at_least(model, cases, directions, layer, strength, playable):
    """Counts ties (score 0) as successes."""
    wins = []
    for tokens, board, square in cases:
        one = ref.intervention_success(model, [(tokens, board, square)], directions, layer, strength, playable)
        edited = ref.edited_logits(model, tokens, layer, directions[square], strength)
        player = -1 if len(tokens) % 2 == 1 else 1
        flipped = board.clone()
        flipped[square] = -flipped[square]
        masks = []
        for b in [board, flipped]:
            mask = torch.zeros(len(playable), dtype=torch.bool)
            mask[[playable.index(s) for s in ref.legal_moves(b, player)]] = True
            masks.append(mask)
        wins.append(one > 0 or ref.legal_match(edited, *masks) == 0)
    return sum(wins) / len(wins)


# ----------------------------------------------------------------------------- findings


def _probes():
    return zo.load_metrics()["probes"]


def _best_layer():
    accuracies = _probes()["mine_theirs"]
    return max(range(len(accuracies)), key=accuracies.__getitem__)


def _near_best_layers():
    """The layers whose recorded probe accuracy is within 0.01 of the best (2 and 3 are nearly tied)."""
    accuracies = _probes()["mine_theirs"]
    return [layer for layer, acc in enumerate(accuracies) if acc >= max(accuracies) - 0.01]


def _near_best(what):
    def grade(answer, truth):
        return None if answer in _near_best_layers() else f"{answer!r} is not {what}."

    return grade


def _advantage():
    p = _probes()
    return p["mine_theirs"][_best_layer()] - p["black_white"][_best_layer()]


check = Checker("1.5.3", [
    Exercise(
        ref.flipped_squares, _flip_cases,
        hint="For each of the 8 directions, walk while the squares hold the opponent's discs; keep them only if the "
             "walk stops, still on the board, at one of the player's discs. Taken squares flip nothing.",
        wrong={"lines not closed by the player's disc": _flip_no_closing_disc, "no diagonals": _flip_no_diagonals,
               "walking by square index (wrapping round rows)": _flip_wrapping,
               "the played square included": _flip_including_square},
    ),
    Exercise(
        ref.legal_moves, _legal_cases,
        hint="A square is legal when playing it flips at least one disc; loop over all 36 squares in order.",
        wrong={"every empty square next to an opponent disc": _legal_next_to_opponent,
               "the opponent's moves": _legal_opponent},
    ),
    Exercise(
        ref.play_move, _play_cases, extra=_play_raises,
        hint="Clone the board, set the flipped squares and the played square to the player; raise ValueError when "
             "nothing flips.",
        wrong={"the played square left empty": _play_without_square, "only the flips": _play_flips_only},
    ),
    Exercise(
        ref.board_states, _states_cases,
        hint="Start from the given board with black (+1) to move; after each play_move, append the board and swap.",
        wrong={"the board before each move": _states_with_start, "the first move repeated": _states_black_only_first_move},
    ),
    Exercise(
        ref.to_mine_theirs, _mt_cases,
        hint="Row t is after move t; white (-1) is to move after even t. Multiply by the mover's sign: +1 is mine "
             "(1), -1 theirs (2).",
        wrong={"colours, not mine / theirs": _mt_colours, "from the view of the player who just moved": _mt_mover,
               "the signs +1 / -1 kept": _mt_signs_kept},
    ),
    Exercise(
        ref.residual_stream, _resid_cases, run=_run_on_model, oracle=_oracle_resid, atol=1e-4,
        hint="Layer 0: blocks.0.hook_resid_pre; layer i: blocks.{i - 1}.hook_resid_post.",
        wrong={"the output of block `layer`, not `layer - 1`": _resid_off_by_one,
               "after attention only (resid_mid)": _resid_mid,
               "token embedding without positions": _resid_token_embedding_only},
    ),
    Exercise(
        ref.fit_probe, _probe_cases, oracle=_oracle_probe, atol=1e-4, rtol=1e-3,
        hint="Append a ones column to x, one-hot the states and flatten them to [n, 108], solve "
             "(X^T X + l2 I) W = X^T Y in float64, reshape to [d_model + 1, 36, 3].",
        wrong={"no bias column": _probe_no_bias, "l2 added to every entry of X^T X": _probe_penalty_everywhere,
               "the bias row first": _probe_bias_first, "one-hot flattened state-major": _probe_reshaped_state_major},
    ),
    Exercise(
        ref.probe_accuracy, _accuracy_cases,
        hint="Scores = [x, 1] times the probe; argmax over the 3 states; compare with states on the given squares only.",
        wrong={"every square counted": _accuracy_all_squares, "the bias row left out": _accuracy_no_bias},
    ),
    Exercise(
        ref.flip_directions, _directions_cases,
        hint="Take the weight rows (not the bias row) of state 2 minus state 1, normalise each square's vector, and "
             "return [36, d_model].",
        wrong={"mine minus theirs": _directions_mine_minus_theirs, "not normalised": _directions_unnormalised,
               "normalised with the bias row": _directions_with_bias, "theirs minus empty": _directions_theirs_minus_empty},
    ),
    Exercise(
        ref.reflect, _reflect_cases,
        hint="c = resid @ direction (one number per vector); subtract (1 + strength) * c * direction.",
        wrong={"the old component left in": _reflect_no_removal, "the sign reversed": _reflect_sign,
               "a constant step": _reflect_strength_only},
    ),
    Exercise(
        ref.edited_logits, _edited_cases, run=_run_on_model, oracle=_oracle_edited, atol=1e-4,
        hint="Hook blocks.{layer - 1}.hook_resid_post; in the hook, return a copy with the last position reflected; "
             "return the logits at the last position.",
        wrong={"every position edited": _edited_all_positions, "edited one block later": _edited_one_block_late,
               "no edit": _edited_unedited},
    ),
    Exercise(
        ref.legal_match, _match_cases, atol=1e-6,
        hint="k = number of moves legal after the edit; count the top-k predictions legal on each board; divide the "
             "difference by k.",
        wrong={"k from the original board": _match_k_original, "not divided by k": _match_not_divided,
               "only the edited board counted": _match_edited_only},
    ),
    Exercise(
        ref.intervention_success, _intervention_cases, run=_run_intervention, oracle=_oracle_intervention, atol=1e-6,
        hint="Per case: player from the prefix length, legal masks (as tokens) for the board and the board with the "
             "square turned over, edited_logits along directions[square], legal_match > 0; average.",
        wrong={"the player to move swapped": _intervention_parity_swapped, "no edit (strength -1)": _intervention_unedited,
               "ties counted as successes": _intervention_at_least},
    ),
    Finding(
        "best_probe_layer", truth=_best_layer, grade=_near_best("a layer where the mine / theirs probe is best"),
        hint="Fit the mine / theirs probe at every layer (0: the embedding) and take the most accurate on held-out "
             "games.",
        wrong={"the embedding": 0, "the first block": 1},
    ),
    Finding(
        "mine_theirs_advantage", truth=_advantage, grade=number_within(0.03, "the mine / theirs advantage"),
        hint="Subtract the black / white probe's held-out accuracy from the mine / theirs probe's, both at the best "
             "layer.",
        wrong={"the other way round": -0.2, "no advantage": 0.0},
    ),
])  # fmt: skip
