"""A candidate-scoring Plackett–Luce actor-critic policy for Stable-Baselines3.

The policy
----------
:class:`CandidateScorerPolicy` is an SB3 :class:`~stable_baselines3.common.policies.ActorCriticPolicy`
for slate recommendation over a *candidate set*. One small MLP (the scorer, shared by all
candidates) maps ``concat(user, candidate features, (P user) ⊙ (Q candidate))`` to one scalar
score per candidate; the scores are the logits of a Plackett–Luce distribution over slates
(padding candidates get a very negative logit, so they are never picked). The value function is
a separate MLP on ``concat(user, mean of the valid candidates' features)``. Because the scorer is
shared, the number of parameters does not grow with the number of candidates, and permuting the
candidates permutes the logits the same way.

Observations (read directly, no features extractor is used):

* a ``gymnasium.spaces.Dict`` with float Boxes ``"user"`` ``(U,)``, ``"candidates"`` ``(C, F)``
  and optionally ``"candidate_mask"`` ``(C,)`` (1 = valid, 0 = padding, never picked); or
* a flat ``Box`` ``(U + C * F,)`` (the user vector, then the C candidates' features row by row)
  with the policy kwarg ``layout=(U, C, F)``; every candidate is then valid.

Actions: ``gymnasium.spaces.MultiDiscrete([C] * K)``: K distinct candidate indices, in slate
order (position 0 first). At least K candidates must be valid in every observation.

The distribution
----------------
:class:`PlackettLuceDistribution`: the slate is drawn by K successive softmax draws *without
replacement*, ``P(a) = prod_j exp(l[a_j]) / sum_{c not in a_<j} exp(l[c])``. Sampling uses the
Gumbel-top-k trick (exact for Plackett–Luce): add i.i.d. Gumbel noise to the logits and take the
K largest, in decreasing order. ``mode()`` is the top K by logit (the most likely slate).

Entropy: the exact Plackett–Luce entropy sums over all ``C!/(C-K)!`` ordered slates, so it is
estimated. We return the *sum of the sequential softmax entropies along one sampled order*:
``sum_j H(softmax(l restricted to the items not in s_<j)))`` for a fresh detached sample ``s``.
By the chain rule ``H(A_1..A_K) = sum_j E[H(A_j | A_<j)]``, so this is an unbiased estimate of
the exact entropy's value; it is never negative, much less noisy than the one-sample
``-log p(s)`` estimate (which carries the full variance of the slate's surprisal), exact for
K = 1, and differentiable directly through the softmaxes (no score-function term). Its gradient
omits the dependence of the prefix distribution on the parameters, which is fine for its use
as an exploration bonus (it pushes each conditional choice towards uniform).

Usage
-----
::

    from stable_baselines3 import PPO
    from recsim_llm.agents.scorer import CandidateScorerPolicy

    model = PPO(
        CandidateScorerPolicy,
        env,  # Dict obs (user, candidates, candidate_mask), MultiDiscrete([C] * K) actions
        policy_kwargs=dict(net_arch=[64, 64], value_arch=[64, 64], interaction_dim=16),
    )
    model.learn(20_000)
    slate, _ = model.predict(obs, deterministic=True)  # top-K candidates by score

For a flat Box observation pass ``policy_kwargs=dict(layout=(U, C, F))``.
SB3's rollout buffers store MultiDiscrete actions as float arrays ``(B, K)``; the policy casts
them to ``long`` in :meth:`CandidateScorerPolicy.evaluate_actions`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.distributions import Distribution
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.preprocessing import preprocess_obs
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from torch import nn

MASK_VALUE = -1e9
"""The logit given to padding candidates (and to already-chosen items inside the PL factors)."""

SelfPL = TypeVar("SelfPL", bound="PlackettLuceDistribution")


def _removed_before(actions: th.Tensor, n_items: int) -> th.Tensor:
    """``(B, K, C)`` bool: item c was chosen at a position before j (exclusive prefix)."""
    one_hot = nn.functional.one_hot(actions, n_items)  # (B, K, C)
    inclusive = one_hot.cumsum(dim=1)
    return (inclusive - one_hot) > 0


class PlackettLuceDistribution(Distribution):
    """Plackett–Luce distribution over ordered K-subsets of C items, given per-item logits.

    Set the logits ``(B, C)`` with :meth:`proba_distribution` (padding items already at a very
    negative value, see :data:`MASK_VALUE`). Actions are ``(B, K)`` integer tensors of distinct
    item indices in slate order. See the module docstring for the entropy estimate.
    """

    def __init__(self, slate_size: int) -> None:
        super().__init__()
        if slate_size < 1:
            raise ValueError(f"slate_size must be >= 1, got {slate_size}")
        self.slate_size = int(slate_size)
        self.logits: th.Tensor | None = None

    def proba_distribution_net(self, *args: Any, **kwargs: Any) -> nn.Module:
        """No layer: the logits come from the candidate scorer, not from latent features."""
        return nn.Identity()

    def proba_distribution(self: SelfPL, logits: th.Tensor) -> SelfPL:
        if logits.dim() != 2:
            raise ValueError(f"logits must be (batch, n_items), got shape {tuple(logits.shape)}")
        if logits.shape[1] < self.slate_size:
            raise ValueError(f"{logits.shape[1]} items cannot fill a slate of {self.slate_size}")
        self.logits = logits
        return self

    def _require_logits(self) -> th.Tensor:
        if self.logits is None:
            raise RuntimeError("call proba_distribution(logits) first")
        return self.logits

    def _conditional_logits(self, actions: th.Tensor) -> th.Tensor:
        """``(B, K, C)``: the logits at position j with the items chosen before j removed."""
        logits = self._require_logits()
        removed = _removed_before(actions, logits.shape[1])
        return logits.unsqueeze(1).expand(-1, actions.shape[1], -1).masked_fill(removed, MASK_VALUE)

    def log_prob(self, actions: th.Tensor) -> th.Tensor:
        """``(B,)``: ``sum_j logit[a_j] - logsumexp(logits of the items not in a_<j)``."""
        actions = actions.long()
        logits = self._require_logits()
        conditional = self._conditional_logits(actions)
        chosen = logits.gather(1, actions)
        return (chosen - th.logsumexp(conditional, dim=-1)).sum(dim=1)

    def entropy(self) -> th.Tensor:
        """``(B,)``: sum of the sequential softmax entropies along one fresh sampled order."""
        with th.no_grad():
            order = self.sample()
        conditional = self._conditional_logits(order)
        log_p = th.log_softmax(conditional, dim=-1)
        return -(log_p.exp() * log_p).sum(dim=-1).sum(dim=1)

    def sample(self) -> th.Tensor:
        """``(B, K)`` long: Gumbel-top-k, an exact Plackett–Luce draw without replacement."""
        logits = self._require_logits().detach()
        uniform = th.rand_like(logits).clamp_(1e-20, 1.0 - 1e-7)
        gumbel = -th.log(-th.log(uniform))
        return th.topk(logits + gumbel, self.slate_size, dim=1).indices

    def mode(self) -> th.Tensor:
        """``(B, K)`` long: the top K items by logit, best first (the most likely slate)."""
        return th.topk(self._require_logits().detach(), self.slate_size, dim=1).indices

    def actions_from_params(self, logits: th.Tensor, deterministic: bool = False) -> th.Tensor:
        self.proba_distribution(logits)
        return self.get_actions(deterministic=deterministic)

    def log_prob_from_params(self, logits: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        actions = self.actions_from_params(logits)
        return actions, self.log_prob(actions)


def _mlp(in_dim: int, hidden: Sequence[int], activation_fn: type[nn.Module]) -> nn.Sequential:
    """Hidden layers only (the caller adds the output layer); ``out_features`` is the last size."""
    layers: list[nn.Module] = []
    last = in_dim
    for size in hidden:
        layers += [nn.Linear(last, int(size)), activation_fn()]
        last = int(size)
    return nn.Sequential(*layers)


def _last_dim(in_dim: int, hidden: Sequence[int]) -> int:
    return int(hidden[-1]) if len(hidden) > 0 else in_dim


class CandidateScorerPolicy(ActorCriticPolicy):
    """Actor-critic policy: a shared per-candidate MLP scorer + Plackett–Luce slate distribution.

    :param net_arch: hidden sizes of the candidate scorer (default ``[64, 64]``). A dict with a
        ``"pi"`` key is accepted too (its ``"vf"`` entry is used when ``value_arch`` is None).
    :param value_arch: hidden sizes of the value MLP (default: ``[64, 64]``).
    :param activation_fn: activation of both MLPs (default ``nn.Tanh``, as in SB3).
    :param interaction_dim: size of the ``(P user) ⊙ (Q candidate)`` term added to the scorer's
        input (0 disables it). It lets a small scorer express user–item affinity directly.
    :param layout: ``(user_dim, n_candidates, feat_dim)`` for a flat Box observation; must be
        None for a Dict observation.
    :param affinity_dim: when > 0, the first ``affinity_dim`` entries of the user vector and of
        each candidate's features are one embedding space (an LM encoder's user state ``u`` and
        item embedding ``v``): their raw dot product ``u·v`` (the encoder's own affinity,
        computed before standardisation) is added to the scorer's input. 0 (default) = none.
    :param encoder_prior: ``{"scale": s, "w": [..], "b": b}`` and optionally ``"gain"`` (needs
        ``affinity_dim`` > 0, ``w`` of that length): the encoder's own click logit
        ``s·u·v + w·v + b`` over the raw first ``affinity_dim`` entries, times a learnt gain that
        starts at ``gain`` (default 1; larger = a sharper Plackett–Luce start), is added to every
        candidate's score. The MLP's output starts near 0 (score-head gain 0.01), so the
        untrained policy's most likely slate is the encoder's greedy one (``EncoderGreedyPolicy``)
        and PPO learns a residual on it (with ``ortho_init``, SB3's default). None (default) =
        no prior.
    :param normalize_obs: standardise the user vector and each candidate's features (per
        feature, candidates pooled over positions) by running means and variances, updated on
        the observations of rollout collection (``forward``) and frozen otherwise; they are
        buffers, so ``save``/``load`` keep them. Encoder states mix unit-norm vectors with raw
        accumulators (``lm-fast`` carries its history weight, ~80 after 30 steps), which
        saturate a tanh MLP unscaled.
    :param ortho_init: orthogonal init as in SB3 (gain sqrt(2) hidden, 0.01 for the score
        output, 1 for the value output).

    The remaining keyword arguments are SB3's ``ActorCriticPolicy`` ones; gSDE is not supported
    and the features extractor is never called (the observation is read directly).
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        activation_fn: type[nn.Module] = nn.Tanh,
        *args: Any,
        value_arch: list[int] | None = None,
        interaction_dim: int = 16,
        layout: Sequence[int] | None = None,
        affinity_dim: int = 0,
        normalize_obs: bool = True,
        encoder_prior: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if kwargs.get("use_sde", False):
            raise ValueError("CandidateScorerPolicy does not support gSDE (use_sde=True)")
        if not isinstance(action_space, spaces.MultiDiscrete) or len(action_space.nvec.shape) != 1:
            raise ValueError(f"action space must be a 1-D MultiDiscrete, got {action_space}")
        self.user_dim, self.n_candidates, self.feat_dim, self.has_mask = self._read_layout(
            observation_space, layout
        )
        nvec = np.asarray(action_space.nvec)
        if not np.all(nvec == self.n_candidates):
            raise ValueError(
                f"action space {action_space} must be MultiDiscrete([{self.n_candidates}] * K)"
            )
        self.slate_size = int(nvec.shape[0])
        if self.slate_size > self.n_candidates:
            raise ValueError(f"slate size {self.slate_size} > {self.n_candidates} candidates")
        if net_arch is None:
            net_arch = [64, 64]
        if isinstance(net_arch, dict):
            scorer_arch = list(net_arch.get("pi", [64, 64]))
            if value_arch is None:
                value_arch = list(net_arch.get("vf", [64, 64]))
        else:
            scorer_arch = list(net_arch)
        self.scorer_arch = scorer_arch
        self.value_arch = list(value_arch) if value_arch is not None else [64, 64]
        self.interaction_dim = int(interaction_dim)
        self.layout = tuple(int(x) for x in layout) if layout is not None else None
        self.normalize_obs = bool(normalize_obs)
        self.affinity_dim = int(affinity_dim)
        if not 0 <= self.affinity_dim <= min(self.user_dim, self.feat_dim):
            raise ValueError(
                f"affinity_dim must be in [0, {min(self.user_dim, self.feat_dim)}] (the user and "
                f"candidate widths), got {affinity_dim}"
            )
        self.encoder_prior = self._check_prior(encoder_prior, self.affinity_dim)
        super().__init__(
            observation_space, action_space, lr_schedule, net_arch, activation_fn, *args, **kwargs
        )

    @staticmethod
    def _check_prior(prior: Any, affinity_dim: int) -> dict[str, Any] | None:
        """``encoder_prior`` as plain floats, or a ValueError naming what is wrong."""
        if prior is None:
            return None
        if not isinstance(prior, dict) or not {"scale", "w", "b"} <= set(prior) <= {
            "scale",
            "w",
            "b",
            "gain",
        }:
            raise ValueError(
                "encoder_prior must be a dict with keys 'scale', 'w', 'b' (and optionally "
                f"'gain'), got {prior!r}"
            )
        for key in ("scale", "b", "gain"):
            value = prior.get(key, 1.0)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                raise ValueError(f"encoder_prior[{key!r}] must be a number, got {value!r}")
        gain = float(prior.get("gain", 1.0))
        if not (np.isfinite(gain) and gain > 0):
            raise ValueError(f"encoder_prior['gain'] must be a finite number > 0, got {gain}")
        if affinity_dim < 1:
            raise ValueError("encoder_prior needs affinity_dim >= 1 (the encoder's u and v width)")
        try:
            w = np.asarray(prior["w"], dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise ValueError(
                f"encoder_prior['w'] must be {affinity_dim} numbers, got {prior['w']!r}"
            ) from None
        scale, b = float(prior["scale"]), float(prior["b"])
        if w.size != affinity_dim or not np.all(np.isfinite(w)):
            raise ValueError(
                f"encoder_prior['w'] must be {affinity_dim} finite numbers (affinity_dim), "
                f"got {w.size}"
            )
        if not (np.isfinite(scale) and np.isfinite(b)):
            raise ValueError(f"encoder_prior scale and b must be finite, got {scale}, {b}")
        return {"scale": scale, "w": [float(x) for x in w], "b": b, "gain": gain}

    @staticmethod
    def _read_layout(
        observation_space: spaces.Space, layout: Sequence[int] | None
    ) -> tuple[int, int, int, bool]:
        if isinstance(observation_space, spaces.Dict):
            if layout is not None:
                raise ValueError("layout is only for a flat Box observation, not a Dict one")
            for key in ("user", "candidates"):
                if key not in observation_space.spaces:
                    raise ValueError(f"Dict observation needs a {key!r} entry")
            user = observation_space["user"]
            cands = observation_space["candidates"]
            if len(user.shape) != 1 or len(cands.shape) != 2:
                raise ValueError(
                    f"'user' must be (U,) and 'candidates' (C, F), got {user.shape}, {cands.shape}"
                )
            has_mask = "candidate_mask" in observation_space.spaces
            if has_mask and observation_space["candidate_mask"].shape != (cands.shape[0],):
                raise ValueError("'candidate_mask' must have shape (C,)")
            return int(user.shape[0]), int(cands.shape[0]), int(cands.shape[1]), has_mask
        if isinstance(observation_space, spaces.Box):
            if layout is None or len(layout) != 3:
                raise ValueError("a flat Box observation needs layout=(user_dim, n_cand, feat_dim)")
            user_dim, n_cand, feat_dim = (int(x) for x in layout)
            if observation_space.shape != (user_dim + n_cand * feat_dim,):
                raise ValueError(
                    f"Box shape {observation_space.shape} does not match layout {tuple(layout)}"
                )
            return user_dim, n_cand, feat_dim, False
        raise ValueError(f"unsupported observation space {observation_space}")

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            value_arch=self.value_arch,
            interaction_dim=self.interaction_dim,
            layout=self.layout,
            normalize_obs=self.normalize_obs,
            affinity_dim=self.affinity_dim,
            encoder_prior=self.encoder_prior,
        )
        return data

    def _build(self, lr_schedule: Schedule) -> None:
        self.action_dist = PlackettLuceDistribution(self.slate_size)
        act = self.activation_fn
        u, f, d = self.user_dim, self.feat_dim, self.interaction_dim
        for name, size in (("user", u), ("cand", f)):
            self.register_buffer(f"{name}_mean", th.zeros(size))
            self.register_buffer(f"{name}_var", th.ones(size))
            self.register_buffer(f"{name}_count", th.tensor(1e-4))
        if d > 0:
            self.user_proj: nn.Module = nn.Linear(u, d, bias=False)
            self.cand_proj: nn.Module = nn.Linear(f, d, bias=False)
        scorer_in = u + f + d + (1 if self.affinity_dim else 0)
        self.scorer = _mlp(scorer_in, self.scorer_arch, act)
        self.score_head = nn.Linear(_last_dim(scorer_in, self.scorer_arch), 1)
        if self.encoder_prior is not None:
            p = self.encoder_prior
            self.register_buffer("prior_w", th.tensor(p["w"], dtype=th.float32))
            self.register_buffer("prior_scale", th.tensor(p["scale"], dtype=th.float32))
            self.register_buffer("prior_b", th.tensor(p["b"], dtype=th.float32))
            self.prior_gain = nn.Parameter(th.tensor(float(p["gain"])))
        value_in = u + f
        self.value_mlp = _mlp(value_in, self.value_arch, act)
        self.value_net = nn.Linear(_last_dim(value_in, self.value_arch), 1)
        # SB3's attribute names, so generic SB3 code that looks for them still finds something.
        self.action_net = nn.Identity()
        if self.ortho_init:
            gains: dict[nn.Module, float] = {
                self.scorer: float(np.sqrt(2)),
                self.value_mlp: float(np.sqrt(2)),
                self.score_head: 0.01,
                self.value_net: 1.0,
            }
            if d > 0:
                gains[self.user_proj] = 1.0
                gains[self.cand_proj] = 1.0
            for module, gain in gains.items():
                module.apply(lambda m, g=gain: self.init_weights(m, gain=g))
        self.optimizer = self.optimizer_class(  # type: ignore[call-arg]
            self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs
        )

    # --- observation handling -------------------------------------------------------------

    def _split_obs(self, obs: PyTorchObs) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        """``user (B, U)``, ``candidates (B, C, F)``, ``mask (B, C)`` bool (True = valid)."""
        pre = preprocess_obs(obs, self.observation_space, normalize_images=False)
        if isinstance(pre, dict):
            user = pre["user"]
            cands = pre["candidates"]
            if self.has_mask:
                mask = pre["candidate_mask"] > 0.5
            else:
                mask = th.ones(cands.shape[:2], dtype=th.bool, device=cands.device)
        else:
            flat = pre.reshape(pre.shape[0], -1)
            user = flat[:, : self.user_dim]
            cands = flat[:, self.user_dim :].reshape(-1, self.n_candidates, self.feat_dim)
            mask = th.ones(cands.shape[:2], dtype=th.bool, device=cands.device)
        return user, cands, mask

    @th.no_grad()
    def _update_stats(self, user: th.Tensor, cands: th.Tensor, mask: th.Tensor) -> None:
        """Merge a batch's per-feature means and variances into the running ones (Chan et al.)."""
        for name, x in (("user", user), ("cand", cands[mask])):
            if x.shape[0] == 0:
                continue
            mean, var, count = (getattr(self, f"{name}_{k}") for k in ("mean", "var", "count"))
            b_mean, b_var, b_n = x.mean(0), x.var(0, unbiased=False), float(x.shape[0])
            total = count + b_n
            delta = b_mean - mean
            new_mean = mean + delta * b_n / total
            m2 = var * count + b_var * b_n + delta.pow(2) * count * b_n / total
            mean.copy_(new_mean)
            var.copy_(m2 / total)
            count.fill_(float(total))

    def _normalized(self, user: th.Tensor, cands: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        if not self.normalize_obs:
            return user, cands
        u = (user - self.user_mean) / th.sqrt(self.user_var + 1e-8)
        c = (cands - self.cand_mean) / th.sqrt(self.cand_var + 1e-8)
        return u.clamp(-10.0, 10.0), c.clamp(-10.0, 10.0)

    def _logits(self, user: th.Tensor, cands: th.Tensor, mask: th.Tensor) -> th.Tensor:
        k = self.affinity_dim
        affinity = (user[:, None, :k] * cands[:, :, :k]).sum(-1, keepdim=True) if k else None
        raw_cands = cands
        user, cands = self._normalized(user, cands)
        parts = [cands]
        if affinity is not None:
            parts.append(affinity)
        if self.interaction_dim > 0:
            parts.append(self.user_proj(user).unsqueeze(1) * self.cand_proj(cands))
        scores = self.score_head(self._scorer_hidden(user, th.cat(parts, dim=-1))).squeeze(-1)
        if self.encoder_prior is not None:
            assert affinity is not None  # checked in __init__: a prior needs affinity_dim
            v = raw_cands[:, :, :k]
            prior = self.prior_scale * affinity.squeeze(-1) + v @ self.prior_w + self.prior_b
            scores = scores + self.prior_gain * prior
        return scores.masked_fill(~mask, MASK_VALUE)

    def _scorer_hidden(self, user: th.Tensor, per_candidate: th.Tensor) -> th.Tensor:
        """``self.scorer`` applied to ``concat(user, per_candidate)`` for every candidate.

        The first layer is split by its input columns: the user's block is applied once per row
        and broadcast over the candidates instead of once per candidate on a copied user vector.
        The same parameters and the same function as the concatenation (up to float rounding),
        at about half the cost (the user vector is most of the scorer's input).
        """
        if len(self.scorer) == 0:  # no hidden layer: the score head reads the input itself
            n = per_candidate.shape[1]
            return th.cat([user.unsqueeze(1).expand(-1, n, -1), per_candidate], dim=-1)
        first = self.scorer[0]
        w_user, w_cand = first.weight.split([self.user_dim, per_candidate.shape[-1]], dim=1)
        hidden = nn.functional.linear(user, w_user, first.bias).unsqueeze(1)
        hidden = hidden + nn.functional.linear(per_candidate, w_cand)
        return self.scorer[1:](hidden)

    def _values(self, user: th.Tensor, cands: th.Tensor, mask: th.Tensor) -> th.Tensor:
        user, cands = self._normalized(user, cands)
        weights = mask.to(cands.dtype).unsqueeze(-1)
        pooled = (cands * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)
        return self.value_net(self.value_mlp(th.cat([user, pooled], dim=-1)))

    # --- the ActorCriticPolicy interface --------------------------------------------------

    def forward(
        self, obs: PyTorchObs, deterministic: bool = False
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        user, cands, mask = self._split_obs(obs)
        if self.normalize_obs:
            self._update_stats(user, cands, mask)  # rollout collection: the observed data
        distribution = self.action_dist.proba_distribution(self._logits(user, cands, mask))
        actions = distribution.get_actions(deterministic=deterministic)
        log_prob = distribution.log_prob(actions)
        values = self._values(user, cands, mask)
        return actions.reshape((-1, *self.action_space.shape)), values, log_prob  # type: ignore[misc]

    def evaluate_actions(
        self, obs: PyTorchObs, actions: th.Tensor
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor | None]:
        user, cands, mask = self._split_obs(obs)
        distribution = self.action_dist.proba_distribution(self._logits(user, cands, mask))
        actions = actions.reshape(-1, self.slate_size).long()
        log_prob = distribution.log_prob(actions)
        values = self._values(user, cands, mask)
        return values, log_prob, distribution.entropy()

    def get_distribution(self, obs: PyTorchObs) -> PlackettLuceDistribution:
        user, cands, mask = self._split_obs(obs)
        return self.action_dist.proba_distribution(self._logits(user, cands, mask))

    def predict_values(self, obs: PyTorchObs) -> th.Tensor:
        user, cands, mask = self._split_obs(obs)
        return self._values(user, cands, mask)

    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        return self.get_distribution(observation).get_actions(deterministic=deterministic)

    def candidate_logits(self, obs: PyTorchObs) -> th.Tensor:
        """``(B, C)``: the per-candidate scores (padding at :data:`MASK_VALUE`)."""
        return self._logits(*self._split_obs(obs))
