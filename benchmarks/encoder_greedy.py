"""Encoder-greedy (the deployable myopic) in the env with each given encoder as the LM state.

    python benchmarks/encoder_greedy.py [ENCODER_DIR ...]    # '-' = the shipped encoder

Default world, ``lm-fast`` state from each encoder, evaluation seeds 1000–1004 x 64 users; one
table row per encoder (return in minutes watched, 95% bootstrap over seeds).
"""

from __future__ import annotations

import argparse
from dataclasses import replace


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("encoders", nargs="*", default=["-"], help="encoder dirs ('-': shipped)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1000, 1001, 1002, 1003, 1004])
    parser.add_argument("--users", type=int, default=64)
    args = parser.parse_args(argv)

    from recsim_llm.agents.baselines import EncoderGreedyPolicy
    from recsim_llm.evaluation import evaluate, summary_table
    from recsim_llm.scenarios import scenario_config

    rows = []
    for enc in args.encoders:
        path = "" if enc == "-" else enc
        config = replace(scenario_config("default"), encoder="lm-fast", encoder_path=path)
        policy = EncoderGreedyPolicy(path)
        policy.name = f"encoder-greedy [{enc}]"
        summaries, _ = evaluate([policy], config, args.seeds, args.users, "default", "greedy")
        rows.append(summary_table(summaries).splitlines())
    print("\n".join(rows[0][:2] + [r[2] for r in rows]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
