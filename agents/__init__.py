"""Hand-written baselines and Stable-Baselines3 glue behind one small policy interface.

Names are imported on first use (PEP 562), so ``import recsim_llm.agents`` stays light: the SB3
glue imports stable_baselines3 (and torch) only inside its functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from recsim_llm.registry import lazy_exports

if TYPE_CHECKING:
    from recsim_llm.agents.bandits import LinearThompsonPolicy, LinUCBPolicy
    from recsim_llm.agents.base import LearningSlatePolicy, SlateContext, SlatePolicy
    from recsim_llm.agents.baselines import (
        FixedMixPolicy,
        MyopicPolicy,
        OraclePolicy,
        PopularityPolicy,
        RandomPolicy,
        fixed_mix_grid,
    )
    from recsim_llm.agents.sb3 import SB3Policy, load_sb3_policy, save_sb3_model, train_sb3
    from recsim_llm.agents.specs import POLICIES, make_policies, make_policy, register_policy

_EXPORTS = {
    "FixedMixPolicy": "recsim_llm.agents.baselines:FixedMixPolicy",
    "LearningSlatePolicy": "recsim_llm.agents.base:LearningSlatePolicy",
    "LinUCBPolicy": "recsim_llm.agents.bandits:LinUCBPolicy",
    "LinearThompsonPolicy": "recsim_llm.agents.bandits:LinearThompsonPolicy",
    "MyopicPolicy": "recsim_llm.agents.baselines:MyopicPolicy",
    "OraclePolicy": "recsim_llm.agents.baselines:OraclePolicy",
    "POLICIES": "recsim_llm.agents.specs:POLICIES",
    "PopularityPolicy": "recsim_llm.agents.baselines:PopularityPolicy",
    "RandomPolicy": "recsim_llm.agents.baselines:RandomPolicy",
    "SB3Policy": "recsim_llm.agents.sb3:SB3Policy",
    "SlateContext": "recsim_llm.agents.base:SlateContext",
    "SlatePolicy": "recsim_llm.agents.base:SlatePolicy",
    "fixed_mix_grid": "recsim_llm.agents.baselines:fixed_mix_grid",
    "load_sb3_policy": "recsim_llm.agents.sb3:load_sb3_policy",
    "make_policies": "recsim_llm.agents.specs:make_policies",
    "make_policy": "recsim_llm.agents.specs:make_policy",
    "register_policy": "recsim_llm.agents.specs:register_policy",
    "save_sb3_model": "recsim_llm.agents.sb3:save_sb3_model",
    "train_sb3": "recsim_llm.agents.sb3:train_sb3",
}

__all__ = [
    "FixedMixPolicy",
    "LearningSlatePolicy",
    "LinUCBPolicy",
    "LinearThompsonPolicy",
    "MyopicPolicy",
    "OraclePolicy",
    "POLICIES",
    "PopularityPolicy",
    "RandomPolicy",
    "SB3Policy",
    "SlateContext",
    "SlatePolicy",
    "fixed_mix_grid",
    "load_sb3_policy",
    "make_policies",
    "make_policy",
    "register_policy",
    "save_sb3_model",
    "train_sb3",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)
