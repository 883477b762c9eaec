"""``recsim-llm explain``: why the LM encoder scores a user's slate items as it does.

Two sources for the user and the slate:

* a behaviour log (``--logs DIR --user ID --step T``): that user's row at session step ``T``, its
  logged slate and the history before it;
* the simulator (``--scenario NAME --seed S --user SLOT --step T``): the scenario's env run for
  ``T`` steps by ``--policy``; the slate is the one the policy picks at step ``T`` for user slot
  ``SLOT``, explained from the state it acted on.

``--items`` explains given item ids instead of the slate; ``--rank`` the encoder's own top
candidates. Output: text, or one JSON object with ``--json``. Nothing is written to disk.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

HELP = "Explain the LM encoder's scores: the history items and item words that drove them."


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _item_ids(text: str) -> list[int]:
    try:
        ids = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"items must be comma-separated item ids, got {text!r}"
        ) from None
    if not ids or min(ids) < 0:
        raise argparse.ArgumentTypeError(f"items must be item ids >= 0, got {text!r}")
    return ids


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from recsim_llm.scenarios import scenario_names

    parser.add_argument(
        "--encoder", default="", help="encoder directory (default: the shipped encoder)"
    )
    parser.add_argument(
        "--logs",
        default=None,
        help="behaviour log directory (recsim-llm write-logs); without it the simulator is run",
    )
    parser.add_argument(
        "--user",
        type=_non_negative,
        default=0,
        help="user id in the logs, or user slot in the simulator",
    )
    parser.add_argument(
        "--step",
        type=_non_negative,
        default=0,
        help="session step in the logs, or simulator steps run before the explained slate",
    )
    parser.add_argument(
        "--scenario", choices=scenario_names(), default="default", help="simulator scenario"
    )
    parser.add_argument("--seed", type=_non_negative, default=0, help="simulator seed")
    parser.add_argument(
        "--users", type=_positive, default=8, help="simulator user slots (run together)"
    )
    parser.add_argument(
        "--policy",
        default="random",
        help="policy spec that runs the simulator and picks the slate (see `simulate --help`)",
    )
    parser.add_argument(
        "--items", type=_item_ids, default=None, help="comma-separated item ids to explain"
    )
    parser.add_argument(
        "--rank",
        type=_non_negative,
        default=0,
        help="explain the encoder's top N candidates instead of the slate (0 = the slate)",
    )
    parser.add_argument(
        "--words",
        choices=("loo", "grad", "none"),
        default="loo",
        help="word attribution: leave-one-out, gradient x input, or none",
    )
    parser.add_argument("--top", type=_positive, default=3, help="events and words shown per item")
    parser.add_argument("--threads", type=_positive, default=1, help="torch CPU threads")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from recsim_llm.agents.specs import parse_spec

    # Checked before any work: a bad path or spec costs nothing.
    if args.encoder and not Path(args.encoder).is_dir():
        raise FileNotFoundError(f"--encoder: directory {args.encoder!r} does not exist")
    if args.logs is not None and not Path(args.logs).is_dir():
        raise FileNotFoundError(f"--logs: directory {args.logs!r} does not exist")
    if args.logs is None:
        if args.user >= args.users:
            raise ValueError(f"--user must be a slot in [0, {args.users - 1}], got {args.user}")
        parse_spec(args.policy)
    if args.rank and args.items:
        raise ValueError("--rank and --items exclude each other")
    result = _explain_logs(args) if args.logs is not None else _explain_sim(args)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(render_text(result, args.top))
    return 0


def _explain_logs(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    from recsim_llm.lm.explain import Explainer, explain_log_row, explanation_row
    from recsim_llm.lm.logs import load_logs

    data = load_logs(args.logs)
    rows = np.flatnonzero(data.user == args.user)
    if rows.size == 0:
        raise ValueError(f"--user: no user {args.user} in {args.logs}")
    at = rows[data.t[rows] == args.step]
    if at.size == 0:
        steps = data.t[rows]
        raise ValueError(
            f"--step: user {args.user} has steps {int(steps.min())}..{int(steps.max())} in "
            f"{args.logs}, not {args.step}"
        )
    row = int(at[0])
    model = Explainer(args.encoder or None, args.threads)
    _check_catalog(args.items, data.n_items)
    items = args.items
    if args.rank:
        cands = data.candidates[row][data.candidates[row] >= 0]
        items = _ranked(model, data.profiles[row], row, data, cands, args.rank)
    explanations = explain_log_row(model, data, row, items, args.words)
    return {
        "source": "logs",
        "logs": str(args.logs),
        "encoder": str(model.bundle.path),
        "user": args.user,
        "step": args.step,
        "items": [
            explanation_row(e, i, None if args.json else args.top)
            for i, e in enumerate(explanations)
        ],
    }


def _check_catalog(items: list[int] | None, n_items: int) -> None:
    if items and max(items) >= n_items:
        raise ValueError(f"--items: ids must be < {n_items} (the catalog), got {max(items)}")


def _ranked(model: Any, profile: str, row: int, data: Any, cands: Any, n: int) -> list[int]:
    """The encoder's top ``n`` candidates of a log row by fast-head score."""
    import numpy as np

    from recsim_llm.lm.explain import events_from_log_row, fast_score

    steps = int(model.bundle.config.get("history_steps", 20))
    events = events_from_log_row(data, row, steps)
    vecs = model.item_vectors([e.text for e in events] + [data.item_texts[i] for i in cands])
    k = len(events)
    scores = fast_score(
        model.head,
        model.profile_vector(profile),
        vecs[:k],
        np.array([e.type for e in events], np.int64),
        np.array([e.age for e in events], np.int64),
        vecs[k:],
    ) + model.item_bias(vecs[k:])
    return [int(cands[i]) for i in np.argsort(-scores, kind="stable")[:n]]


def _explain_sim(args: argparse.Namespace) -> dict[str, Any]:
    from dataclasses import replace

    import numpy as np

    from recsim_llm.agents.base import LearningSlatePolicy
    from recsim_llm.agents.specs import make_policy
    from recsim_llm.context import attach_world
    from recsim_llm.envs.vector import SlateVectorEnv
    from recsim_llm.lm.explain import Explainer, explain_step
    from recsim_llm.scenarios import scenario_config

    config = replace(scenario_config(args.scenario), encoder="lm-fast", encoder_path=args.encoder)
    if args.step >= config.horizon:
        raise ValueError(f"--step must be < the horizon ({config.horizon}), got {args.step}")
    policy = make_policy(args.policy, seed=args.seed, configs=[config])
    env = SlateVectorEnv(num_envs=args.users, config=config)
    sim = env.sim
    _check_catalog(args.items, sim.catalog.n_total)
    obs, _ = env.reset(seed=args.seed)
    attach_world(policy, sim.world)  # privileged references only
    policy.reset(args.seed)
    for _ in range(args.step):
        action = np.asarray(policy.act(obs, sim.context()))
        new_obs, _, _, _, info = env.step(action)
        if isinstance(policy, LearningSlatePolicy):
            policy.update(obs, action, info)
        obs = new_obs
    model = Explainer(bundle=sim.encoder.bundle)
    user = args.user
    if args.items:
        items = args.items
    elif args.rank:
        d = sim.encoder.dim
        cands = sim.candidates[user]
        vecs = sim.item_embeddings[cands]
        scores = vecs @ sim.states[user, :d] + model.item_bias(vecs)
        items = [int(cands[i]) for i in np.argsort(-scores, kind="stable")[: args.rank]]
    else:
        action = np.asarray(policy.act(obs, sim.context()))
        items = [int(i) for i in sim.candidates[user, action[user]]]
    rows = explain_step(sim, user, items, model, args.words, None if args.json else args.top)
    return {
        "source": "simulator",
        "scenario": args.scenario,
        "seed": args.seed,
        "policy": args.policy,
        "encoder": str(model.bundle.path),
        "user": user,
        "step": args.step,
        "history_steps": int(min(sim.log.count[user], sim.log.history_length)),
        "items": rows,
    }


def render_text(result: dict[str, Any], top: int) -> str:
    """The explanations of a ``run`` result as plain text."""
    where = (
        f"logs {result['logs']}"
        if result["source"] == "logs"
        else f"scenario {result['scenario']}, seed {result['seed']}, policy {result['policy']}"
    )
    lines = [f"user {result['user']}, step {result['step']} ({where}); encoder {result['encoder']}"]
    for n, item in enumerate(result["items"], 1):
        lines.append(f'{n}. item {item["item"]} "{item["title"]}": score {item["score"]:+.4f}')
        lines.append(f"   {item['sentence']}")
        history = item["top_history"][:top]
        if history:
            lines.append(
                "   history: "
                + "; ".join(
                    f'{h["weight"]:+.4f} {h["response"]} "{h["title"]}" '
                    f"({h['steps_ago']} steps ago)"
                    for h in history
                )
            )
        lines.append(
            f"   profile: {item['profile_weight']:+.4f}, bias: {item['bias_weight']:+.4f}"
            + (
                f", older history: {item['older_history_weight']:+.4f}"
                if abs(item["older_history_weight"]) > 5e-5
                else ""
            )
        )
        words = item["top_words"][:top]
        if words:
            lines.append(
                f"   words ({item['word_method']}): "
                + ", ".join(f"{w['weight']:+.4f} {w['word']}" for w in words)
            )
    return "\n".join(lines).rstrip() + "\n"
