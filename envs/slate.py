"""``RecSimLLM/Slate-v0``: one simulated user session per episode."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from recsim_llm.config import EnvConfig
from recsim_llm.encoders import UserEncoder
from recsim_llm.envs.core import SlateSimulator, StepResult
from recsim_llm.scenarios import scenario_config
from recsim_llm.world import Catalog, World


def resolve_config(config: EnvConfig | None, scenario: str | None) -> EnvConfig:
    """The env config from an explicit config or a scenario name (default scenario if neither)."""
    if config is not None and scenario is not None:
        raise ValueError("give either config or scenario, not both")
    if config is None:
        return scenario_config(scenario or "default")
    if not isinstance(config, EnvConfig):
        raise ValueError(f"config must be an EnvConfig, got {type(config).__name__}")
    return config


def step_info(result: StepResult, row: int | slice) -> dict[str, Any]:
    """Per-step info: plain numbers (single env) or arrays (vector env)."""
    r = result.responses
    info = {
        "click": (r.click_pos >= 0)[row],
        "position": r.click_pos[row],
        "item": r.clicked_item[row],
        "engagement": r.engagement[row],
        "rating": r.rating[row],
        "n_repaired": result.n_repaired[row],
        "true_satisfaction": r.satisfaction[row],
        "true_value": r.value[row],
    }
    if isinstance(row, int):
        return {
            k: (bool(v) if isinstance(v, np.bool_) else v.item() if hasattr(v, "item") else v)
            for k, v in info.items()
        }
    return info


class SlateEnv(gym.Env):
    """One user session of slate recommendation with an LM-ready observable state.

    ## Description
    A new simulated user arrives (cold start: profile text, no history). At each step the env
    offers ``n_candidates`` items; the policy picks ``slate_size`` of them. The user clicks at most
    one (multinomial logit with no-click and position bias, or cascade), watches it for a while
    and rates it; hidden interests drift, boredom builds, and satisfaction moves with the value of
    what was consumed. Clickbait raises clicks now and lowers satisfaction later.

    ## Action Space
    ``MultiDiscrete([n_candidates] * slate_size)``: candidate indices, slot 0 first. A slate that
    repeats a candidate is repaired (``duplicate_policy='repair'``, the default: the repeated slot
    gets the lowest-index candidate not yet in the slate, counted in ``info['n_repaired']``) or
    rejected with ``ValueError`` (``duplicate_policy='error'``).

    ## Observation Space
    ``Box(-inf, inf, (obs_dim,), float32)``: the encoder's user state (from the profile and the
    interaction-history text), session progress and history fill, then for each candidate its
    text embedding from the same encoder, an is-new flag and log popularity. Never hidden state.

    ## Rewards
    Engagement: watch time in minutes of the clicked item, 0 without a click.

    ## Starting State
    A new user drawn from the user sampler; the world clock restarts at 0.

    ## Episode End
    ``terminated`` when the user churns (probability rises as satisfaction falls); ``truncated``
    after ``horizon`` steps.

    ## Arguments
    ``config``: an ``EnvConfig``; or ``scenario``: a name from ``recsim_llm.scenarios``;
    ``encoder``/``catalog``: prebuilt parts to share between envs; ``world``: a prebuilt world
    with one user slot (e.g. a calibrated one).

    ## Version History
    * v0: initial version.
    """

    metadata = {"render_modes": ["ansi"]}

    def __init__(
        self,
        config: EnvConfig | None = None,
        scenario: str | None = None,
        encoder: UserEncoder | None = None,
        catalog: Catalog | None = None,
        render_mode: str | None = None,
        world: World | None = None,
    ) -> None:
        self.config = resolve_config(config, scenario)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}")
        self.render_mode = render_mode
        self.sim = SlateSimulator(self.config, 1, catalog=catalog, encoder=encoder, world=world)
        self.observation_space = spaces.Box(
            -np.inf, np.inf, shape=(self.sim.obs_dim,), dtype=np.float32
        )
        self.action_space = spaces.MultiDiscrete(
            [self.config.n_candidates] * self.config.slate_size
        )
        self._needs_reset = True

    @property
    def world(self):  # noqa: ANN201 - the hidden world, for oracles and evaluation only
        """The hidden world (oracle and evaluation use only)."""
        return self.sim.world

    @property
    def candidates(self) -> np.ndarray:
        """(n_candidates,) item ids offered at this step."""
        return self.sim.candidates[0]

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        obs = self.sim.reset(self.np_random)
        self._needs_reset = False
        return obs[0], {"user_profile_chars": len(self.sim.log.profiles[0])}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._needs_reset:
            raise RuntimeError("call reset() before step() (and after an episode ends)")
        arr = np.asarray(action)
        if arr.shape != (self.config.slate_size,):
            raise ValueError(f"action must have shape ({self.config.slate_size},), got {arr.shape}")
        result = self.sim.step(arr[None, :], self.np_random)
        self.sim.draw_candidates(self.np_random)
        obs = self.sim.observe()[0]
        terminated = bool(result.terminated[0])
        truncated = bool(result.truncated[0])
        self._needs_reset = terminated or truncated
        return obs, float(result.reward[0]), terminated, truncated, step_info(result, 0)

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        return self.sim.log.history_text(0, self.sim.titles, max_clicks=12)
