"""How long the zoo's SAEs take to train here, with SAELens's runner (the shipped SAEs are not touched).

    python benchmarks/sae_training.py [--threads 1]

Prints each SAE's training time (corpus generation and model forward passes included), its
throughput and the total; the issue asks for under 5 minutes on 2 cores. Figures only, no assertion:
machines differ too much for timed assertions.
"""

import argparse

from zoo.saes import SAES, train

BUDGET_SECONDS = 300

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="training threads (default 2)")
    threads = parser.parse_args().threads
    total = 0.0
    for name, spec in SAES.items():
        _, seconds = train(spec, threads=threads)
        total += seconds
        print(
            f"{name}: {seconds:.0f} s for {spec.training_tokens:,} activations ({spec.training_tokens / seconds:,.0f}/s)"
        )
    verdict = "within" if total <= BUDGET_SECONDS else "OVER"
    print(f"all {len(SAES)} SAEs: {total:.0f} s on {threads} threads ({verdict} the {BUDGET_SECONDS} s budget)")
