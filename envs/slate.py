"""``RecSimLLM/Slate-v1``: one simulated user session per episode."""

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


def observation_space(sim: SlateSimulator) -> spaces.Dict:
    """The single-user ``Dict`` observation space of ``sim`` (see ``SlateEnv``)."""
    c = sim.config.n_candidates
    return spaces.Dict(
        {
            "user": spaces.Box(-np.inf, np.inf, shape=(sim.user_obs_dim,), dtype=np.float32),
            "candidates": spaces.Box(
                -np.inf, np.inf, shape=(c, sim.item_obs_dim), dtype=np.float32
            ),
            "candidate_mask": spaces.Box(0.0, 1.0, shape=(c,), dtype=np.float32),
        }
    )


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
    ``Dict`` of float32 ``Box`` es, never hidden state (key and scalar names in
    ``recsim_llm.context``):

    * ``"user"``, ``(user_dim + 6,)``: the encoder's user state (from the profile and the
      interaction-history text), then six observable scalars: session progress (step /
      horizon), history fill (steps kept / history_length), and over the kept history (the
      log's last ``history_length`` steps) the click rate, the mean rating of the clicked items
      / 5 (0 without a click), their mean watch time / 30 min (0 without a click) and the steps
      since the last click / history_length (0: the latest step was a click; 1: no kept step
      had one).
    * ``"candidates"``, ``(n_candidates, item_dim + 2)``: per candidate its text embedding from
      the same encoder, an is-new flag and log popularity (log1p(clicks) / 10). The candidates
      (popular pool, new items, uniform sample) come in a seeded random order per user and
      step, so a position says nothing about the source; the action's indices refer to this
      order.
    * ``"candidate_mask"``, ``(n_candidates,)``: 1 for a real candidate, 0 for padding (all
      ones today).

    ``FlattenSlateObservation`` (``recsim_llm.context.flatten_observation``) gives one flat
    ``Box``: ``"user"``, then ``"candidates"`` row-major, the mask dropped (for ``MlpPolicy``).

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
    * v1: ``Dict`` observation (``user`` / ``candidates`` / ``candidate_mask``) instead of one
      flat ``Box``; candidates in a seeded random order instead of source order (popular, new,
      random), which also changes the random stream (same seed, other trajectory than v0);
      four more user scalars (click rate, mean rating, mean watch time, steps since the last
      click); the ``SlateContext`` policies get no longer carries the hidden world (privileged
      references are given it by the evaluation harness). The world itself is unchanged.
    * v0: initial version (flat ``Box``: user state, 2 user scalars, then per candidate its
      embedding and 2 scalars; candidates in source order).
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
        self.observation_space = observation_space(self.sim)
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
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        obs = self.sim.reset(self.np_random)
        self._needs_reset = False
        return _row(obs, 0), {"user_profile_chars": len(self.sim.log.profiles[0])}

    def step(self, action: Any) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        if self._needs_reset:
            raise RuntimeError("call reset() before step() (and after an episode ends)")
        arr = np.asarray(action)
        if arr.shape != (self.config.slate_size,):
            raise ValueError(f"action must have shape ({self.config.slate_size},), got {arr.shape}")
        result = self.sim.step(arr[None, :], self.np_random)
        self.sim.draw_candidates(self.np_random)
        obs = _row(self.sim.observe(), 0)
        terminated = bool(result.terminated[0])
        truncated = bool(result.truncated[0])
        self._needs_reset = terminated or truncated
        return obs, float(result.reward[0]), terminated, truncated, step_info(result, 0)

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        return self.sim.log.history_text(0, self.sim.titles, max_clicks=12)


def _row(obs: dict[str, np.ndarray], row: int) -> dict[str, np.ndarray]:
    """One user's observation from a batched one (views of fresh arrays)."""
    return {key: value[row] for key, value in obs.items()}
