"""``MlpPolicy`` on the flat view, with the slate's multi-categorical computed in one pass.

SB3's ``MultiCategoricalDistribution`` builds one torch ``Categorical`` per slate slot and stacks
their log-probabilities and entropies; on ``MultiDiscrete([n_candidates] * slate_size)`` that is
five small distributions (each validating its arguments) per minibatch, about a quarter of
PPO's update time at 1024 users (``docs/benchmarks.md``). ``FusedMultiCategoricalDistribution``
computes the same quantities, with the same operations in the same order, on a
``(batch, slots, n)`` view of the logits; sampling and the mode still go through SB3's per-slot
``Categorical`` s, so the random stream is the stock one. ``SlateMlpPolicy`` is SB3's
``ActorCriticPolicy`` (what ``"MlpPolicy"`` names) with that distribution where the action space
is a ``MultiDiscrete`` of equal sizes, and the stock one otherwise: the same network, the same
distribution, the same trained parameters (a test trains both and compares them bit for bit).
With torch's argument validation on (its default) it refuses NaN logits and out-of-range actions
as ``Categorical`` does, before any update.
"""

from __future__ import annotations

from typing import Any

import torch as th
from gymnasium import spaces
from stable_baselines3.common.distributions import MultiCategoricalDistribution
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.type_aliases import Schedule
from torch.distributions import Categorical, Distribution

__all__ = ["FusedMultiCategoricalDistribution", "SlateMlpPolicy"]


class FusedMultiCategoricalDistribution(MultiCategoricalDistribution):
    """SB3's multi-categorical for equal action sizes, its log-probability and entropy batched."""

    def __init__(self, action_dims: list[int]) -> None:
        dims = [int(d) for d in action_dims]
        if not dims or len(set(dims)) != 1:
            raise ValueError(f"action_dims must be equal sizes, got {action_dims}")
        super().__init__(dims)
        self._logits: th.Tensor | None = None
        self._log_pmf: th.Tensor | None = None
        self._slots: list[Categorical] | None = None

    def proba_distribution(self, action_logits: th.Tensor) -> FusedMultiCategoricalDistribution:
        k, n = len(self.action_dims), self.action_dims[0]
        if Distribution._validate_args and th.isnan(action_logits).any():
            # What torch's Categorical checks (its logits must be real), before any update.
            raise ValueError("the policy's action logits contain NaN")
        logits = action_logits.reshape(-1, k, n)
        # As Categorical normalises its logits.
        self._log_pmf = logits - logits.logsumexp(dim=-1, keepdim=True)
        self._logits = action_logits
        self._slots = None
        return self

    @property  # type: ignore[override]
    def distribution(self) -> list[Categorical]:
        """The per-slot ``Categorical`` s (built on first use: sampling and the mode)."""
        if self._logits is None:
            raise RuntimeError("proba_distribution() first")
        if self._slots is None:
            splits = th.split(self._logits, list(self.action_dims), dim=1)
            self._slots = [Categorical(logits=split) for split in splits]
        return self._slots

    @distribution.setter
    def distribution(self, value: Any) -> None:
        self._slots = value

    def log_prob(self, actions: th.Tensor) -> th.Tensor:
        assert self._log_pmf is not None
        if Distribution._validate_args and (
            actions.shape[-1] != self._log_pmf.shape[1]
            or bool(((actions < 0) | (actions >= self._log_pmf.shape[2])).any())
        ):
            # As Categorical.log_prob checks its support.
            raise ValueError(
                f"actions must be {self._log_pmf.shape[1]} indices in "
                f"[0, {self._log_pmf.shape[2]}), got shape {tuple(actions.shape)}"
            )
        picked = self._log_pmf.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)
        return picked.sum(dim=1)

    def entropy(self) -> th.Tensor:
        assert self._log_pmf is not None
        log_pmf = self._log_pmf
        # As Categorical.entropy: clamp the log-probabilities, weigh them by the softmax.
        clamped = th.clamp(log_pmf, min=th.finfo(log_pmf.dtype).min)
        per_slot = -(clamped * th.softmax(log_pmf, dim=-1)).sum(-1)
        return per_slot.sum(dim=1)


class SlateMlpPolicy(ActorCriticPolicy):
    """SB3's ``MlpPolicy`` with ``FusedMultiCategoricalDistribution`` on equal-size slots."""

    def _build(self, lr_schedule: Schedule) -> None:
        space = self.action_space
        if isinstance(space, spaces.MultiDiscrete) and space.nvec.ndim == 1:
            dims = [int(d) for d in space.nvec]
            if len(set(dims)) == 1:
                self.action_dist = FusedMultiCategoricalDistribution(dims)
        super()._build(lr_schedule)
