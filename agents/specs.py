"""Policies by spec: ``name`` or ``name:ARG`` (``random``, ``mix:0.2``, ``model:ppo.zip``).

``POLICIES`` maps a name to a factory ``factory(arg, *, seed, configs) -> SlatePolicy``: ``arg``
is the text after the first ``:`` (None without one), ``seed`` seeds stochastic baselines, and
``configs`` are the env configs the policy will be run on (a saved model checks that it fits
each one before it is loaded). Add a policy with
``register_policy("greedy", "my_pkg.policies:make_greedy", form="greedy[:K]")``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recsim_llm.registry import Registry

if TYPE_CHECKING:
    from recsim_llm.agents.base import SlatePolicy
    from recsim_llm.config import EnvConfig

__all__ = [
    "POLICIES",
    "make_policies",
    "make_policy",
    "parse_spec",
    "policy_forms",
    "register_policy",
]

PolicyFactory = Callable[..., "SlatePolicy"]
"""``factory(arg: str | None, *, seed: int, configs: Sequence[EnvConfig]) -> SlatePolicy``."""

POLICIES: Registry[PolicyFactory] = Registry("policy")
"""Policy name -> factory."""

_FORMS: dict[str, str] = {}


def register_policy(
    name: str, entry_point: str | PolicyFactory, *, form: str = "", overwrite: bool = False
) -> None:
    """Register a policy factory; ``form`` is how help texts show its spec (``name:ARG``)."""
    POLICIES.register(name, entry_point, overwrite=overwrite)
    _FORMS[name] = form or name


def policy_forms() -> list[str]:
    """Every spec form, for help texts: ``random``, ..., ``mix:SHARE``, ``model:PATH``."""
    return [_FORMS.get(name, name) for name in POLICIES.names()]


def parse_spec(spec: str) -> tuple[str, str | None]:
    """``"name:arg"`` -> ``("name", "arg")``; ``"name"`` -> ``("name", None)``."""
    spec = spec.strip()
    name, sep, arg = spec.partition(":")
    if name not in POLICIES:
        raise ValueError(
            f"policy spec {spec!r}: unknown policy {name!r}; forms: {', '.join(policy_forms())}"
        )
    return name, (arg if sep else None)


def make_policy(spec: str, *, seed: int = 0, configs: Sequence[EnvConfig] = ()) -> SlatePolicy:
    """The policy a spec names, built by its registered factory."""
    name, arg = parse_spec(spec)
    return POLICIES.make(name, arg, seed=seed, configs=tuple(configs))


def make_policies(
    specs: Sequence[str], *, seed: int = 0, configs: Sequence[EnvConfig] = ()
) -> list[SlatePolicy]:
    """Policies for ``specs``, with unique names.

    A spec given twice is an error. Distinct specs whose policies share a name (two
    ``model:`` files with the same stem, ``mix:0.2`` and ``mix:0.20``) keep the first name and
    the others get ``#2``, ``#3``, ... in the order given.
    """
    seen_specs: set[str] = set()
    for spec in specs:
        if spec in seen_specs:
            raise ValueError(f"policies: {spec!r} is given twice")
        seen_specs.add(spec)
        parse_spec(spec)  # every name checked before any policy is built
    policies = [make_policy(spec, seed=seed, configs=configs) for spec in specs]
    counts: dict[str, int] = {}
    for policy in policies:
        counts[policy.name] = counts.get(policy.name, 0) + 1
        if counts[policy.name] > 1:
            policy.name = f"{policy.name}#{counts[policy.name]}"
    return policies


def _no_arg(name: str, arg: str | None) -> None:
    if arg is not None:
        raise ValueError(f"policy spec {name}:{arg!r}: {name!r} takes no argument")


def encoder_greedy_policy(arg: str | None, *, seed: int = 0, **_: Any) -> SlatePolicy:
    """``encoder-greedy[:PATH]``: rank by the LM encoder's click score (PATH '' = shipped)."""
    from recsim_llm.agents.baselines import EncoderGreedyPolicy

    return EncoderGreedyPolicy(arg or "")


def random_policy(arg: str | None, *, seed: int = 0, **_: Any) -> SlatePolicy:
    """``random``: a uniformly random slate of distinct candidates."""
    from recsim_llm.agents.baselines import RandomPolicy

    _no_arg("random", arg)
    return RandomPolicy(seed)


def popularity_policy(arg: str | None, *, seed: int = 0, **_: Any) -> SlatePolicy:
    """``popularity``: the most clicked candidates (observable)."""
    from recsim_llm.agents.baselines import PopularityPolicy

    _no_arg("popularity", arg)
    return PopularityPolicy(seed)


def linucb_policy(arg: str | None, **_: Any) -> SlatePolicy:
    """``linucb``: a contextual bandit learning online from clicks on observable features."""
    from recsim_llm.agents.bandits import LinUCBPolicy

    _no_arg("linucb", arg)
    return LinUCBPolicy()


def thompson_policy(arg: str | None, *, seed: int = 0, **_: Any) -> SlatePolicy:
    """``thompson``: linear Thompson sampling learning online from clicks (observable features)."""
    from recsim_llm.agents.bandits import LinearThompsonPolicy

    _no_arg("thompson", arg)
    policy = LinearThompsonPolicy()
    policy.reset(seed)
    return policy


HYBRID_DISCOUNT = 0.95
"""The per-user models' forgetting factor of ``linucb-hybrid`` / ``thompson-hybrid`` without an
argument (``docs/benchmarks.md``, "Online adjustment under drift", session 8)."""


def _discount(name: str, arg: str | None) -> float:
    if arg is None:
        return HYBRID_DISCOUNT
    try:
        value = float(arg)
    except ValueError:
        value = float("nan")
    if not 0.0 < value <= 1.0:
        raise ValueError(
            f"policy spec '{name}:{arg}': the per-user discount must be a number in (0, 1]"
        )
    return value


def linucb_hybrid_policy(arg: str | None, **_: Any) -> SlatePolicy:
    """``linucb-hybrid[:DISCOUNT]``: LinUCB plus a forgetting per-user model (observable)."""
    from recsim_llm.agents.bandits import LinUCBPolicy

    return LinUCBPolicy(user_discount=_discount("linucb-hybrid", arg))


def thompson_hybrid_policy(arg: str | None, *, seed: int = 0, **_: Any) -> SlatePolicy:
    """``thompson-hybrid[:DISCOUNT]``: Thompson sampling plus a forgetting per-user model."""
    from recsim_llm.agents.bandits import LinearThompsonPolicy

    policy = LinearThompsonPolicy(user_discount=_discount("thompson-hybrid", arg))
    policy.reset(seed)
    return policy


def myopic_policy(arg: str | None, **_: Any) -> SlatePolicy:
    """``myopic``: the highest expected immediate engagement (reads hidden state)."""
    from recsim_llm.agents.baselines import MyopicPolicy

    _no_arg("myopic", arg)
    return MyopicPolicy()


def oracle_policy(arg: str | None, **_: Any) -> SlatePolicy:
    """``oracle``: a one-step lookahead that prices satisfaction (reads hidden state)."""
    from recsim_llm.agents.baselines import OraclePolicy

    _no_arg("oracle", arg)
    return OraclePolicy()


def mix_policy(arg: str | None, **_: Any) -> SlatePolicy:
    """``mix:SHARE``: a fixed share of clickbait slots (reads hidden state); ``mix`` = 0.4."""
    from recsim_llm.agents.baselines import FixedMixPolicy

    if arg is None:
        return FixedMixPolicy(0.4)
    try:
        share = float(arg)
    except ValueError:
        raise ValueError(f"policy spec 'mix:{arg}': the share must be a number in [0, 1]") from None
    return FixedMixPolicy(share)


def model_policy(arg: str | None, *, configs: Sequence[EnvConfig] = (), **_: Any) -> SlatePolicy:
    """``model:PATH``: a saved SB3 model; checked against every env config before loading."""
    from recsim_llm.agents.sb3 import check_sb3_model, load_sb3_policy

    if not arg:
        raise ValueError("policy spec 'model:PATH' needs the path of a saved model (.zip)")
    path = Path(arg)
    for config in configs[1:]:
        check_sb3_model(path, config)
    return load_sb3_policy(path, configs[0] if configs else None)


register_policy("random", "recsim_llm.agents.specs:random_policy")
register_policy("popularity", "recsim_llm.agents.specs:popularity_policy")
register_policy("linucb", "recsim_llm.agents.specs:linucb_policy")
register_policy("thompson", "recsim_llm.agents.specs:thompson_policy")
register_policy(
    "linucb-hybrid", "recsim_llm.agents.specs:linucb_hybrid_policy", form="linucb-hybrid[:DISCOUNT]"
)
register_policy(
    "thompson-hybrid",
    "recsim_llm.agents.specs:thompson_hybrid_policy",
    form="thompson-hybrid[:DISCOUNT]",
)
register_policy("myopic", "recsim_llm.agents.specs:myopic_policy")
register_policy(
    "encoder-greedy", "recsim_llm.agents.specs:encoder_greedy_policy", form="encoder-greedy[:PATH]"
)
register_policy("oracle", "recsim_llm.agents.specs:oracle_policy")
register_policy("mix", "recsim_llm.agents.specs:mix_policy", form="mix:SHARE")
register_policy("model", "recsim_llm.agents.specs:model_policy", form="model:PATH")
