"""The shipped OthelloGPT (zoo/othello/gpt-6x6) still measures what its metrics.json records, and the
batched rules that made its data agree with the one-board rules."""

import pytest
import torch

from zoo import othello


@pytest.fixture(scope="module")
def record():
    return othello.load_metrics()


def test_shipped_files_are_small(record):
    size = sum(path.stat().st_size for path in othello.OTHELLO_DIR.iterdir())
    assert size < 10_000_000
    assert record["config"] == othello.MODEL_CONFIG
    assert record["training"]["steps"] == othello.N_STEPS and record["training"]["batch"] == othello.BATCH


def test_batched_rules_match_the_one_board_rules():
    tokens, lengths, legal = othello.generate_games(40, seed=7, with_legal=True)
    boards, legal_again = othello.game_boards(tokens, lengths)
    assert torch.equal(legal, legal_again)
    assert (lengths >= 4).all() and (lengths <= othello.MAX_LEN).all()
    for g in range(40):
        squares = othello.token_to_square(tokens[g, : lengths[g]]).tolist()
        replayed = othello.boards_of_game(squares)
        assert torch.equal(replayed, boards[g, : lengths[g]])
        player = -1  # white moves after black's first move
        for t in range(int(lengths[g])):
            expected = sorted(othello.SQUARE_TO_TOKEN[s] for s in othello.legal_squares(replayed[t], player))
            assert legal[g, t].nonzero()[:, 0].tolist() == expected
            player = -player
        assert (tokens[g, lengths[g] :] == othello.PAD).all()


def test_generation_is_seeded():
    a, la = othello.generate_games(10, seed=3)
    b, lb = othello.generate_games(10, seed=3)
    c, _ = othello.generate_games(10, seed=4)
    assert torch.equal(a, b) and torch.equal(la, lb) and not torch.equal(a, c)


def test_metrics_reproduce(record):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        measured = othello.measure(othello.load_othello_model())
    finally:
        torch.set_num_threads(threads)
    for name, entry in record["metrics"].items():
        assert measured[name] == pytest.approx(entry["value"], abs=entry["tolerance"]), name
    probes = record["probes"]
    for key in ["mine_theirs", "black_white"]:
        assert measured[f"probe_accuracy_{key}"] == pytest.approx(probes[key], abs=probes["tolerance"]), key
    # What the course relies on: mostly legal moves, and a board a linear probe reads far above the baseline.
    assert measured["legal_move_accuracy"] >= 0.9
    assert max(measured["probe_accuracy_mine_theirs"]) > measured["baseline_accuracy"] + 0.15


def test_card_states_the_recorded_metrics(record):
    card = (othello.OTHELLO_DIR / "CARD.md").read_text()
    assert "python -m zoo.othello" in card and "6x6" in card
    for name, entry in record["metrics"].items():
        assert f"| {name} | {entry['value']} |" in card
    for layer, value in enumerate(record["probes"]["mine_theirs"]):
        assert f"| {layer} | {value} |" in card


@pytest.mark.slow
def test_short_retrain_reproduces_the_logged_losses(record):
    """101 steps (~35 s on one thread): the same seeded run logs the shipped losses at steps 0 and 100."""
    threads = torch.get_num_threads()
    try:
        _, history, _ = othello.train(threads=1, progress=False, stop_after=101)
    finally:
        torch.set_num_threads(threads)
    shipped = {h["step"]: h["loss"] for h in record["history"]}
    for entry in history[:2]:
        assert entry["loss"] == pytest.approx(shipped[entry["step"]], abs=0.02), entry["step"]
