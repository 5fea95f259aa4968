"""How long chat-mini takes to retrain from scratch here (the shipped weights are not touched).

    python benchmarks/chat_training.py [--threads 1] [--steps N]

Prints the time to generate the dialogues, the training time (the figure chat-mini's card states),
the time of the measurements and of the emergent-misalignment fine-tunes. The issue asks for a
retrain under 20 minutes on 2 cores. Figures only, no assertion: machines and their load differ too
much for timed assertions.
"""

import argparse
import time

import torch

from zoo import chat

BUDGET_SECONDS = 20 * 60

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="training threads (default 1)")
    parser.add_argument("--steps", type=int, default=chat.CHAT_MINI.n_steps, help="training steps")
    args = parser.parse_args()
    config = chat.ChatConfig(**{**chat.CHAT_MINI.__dict__, "n_steps": args.steps})
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    texts = chat.training_texts(config)
    print(f"dialogues ({len(texts):,}): {time.perf_counter() - start:.0f} s")
    start = time.perf_counter()
    model = chat.train(config, threads=args.threads)
    seconds = time.perf_counter() - start
    scaled = seconds * chat.CHAT_MINI.n_steps / args.steps
    print(f"training ({args.steps} steps, {args.threads} thread(s)): {seconds:.0f} s")
    if args.steps != chat.CHAT_MINI.n_steps:
        print(f"  scaled to {chat.CHAT_MINI.n_steps} steps: {scaled:.0f} s")
    print(f"  {'within' if scaled <= BUDGET_SECONDS else 'OVER'} the {BUDGET_SECONDS // 60}-minute budget")
    start = time.perf_counter()
    chat.measure(model)
    print(f"measurements: {time.perf_counter() - start:.0f} s")
    start = time.perf_counter()
    chat.em_table(model)
    print(f"emergent-misalignment table (3 fine-tunes of {chat.EM_STEPS} steps): {time.perf_counter() - start:.0f} s")
