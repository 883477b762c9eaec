"""Contextual bandit baselines on encoder features, learning online from clicks.

LinUCB and linear Thompson sampling read only the observation (the encoder's user state and the
candidates' embeddings) and the click feedback of the slates they showed; they never read hidden
state. Both share one linear model over all users, one feature function and one posterior
update; they differ only in how a candidate is scored from the posterior. The feature of a
(user, candidate) pair is the candidate embedding, its element-wise products with each block of
the user state, the candidate's observable scalars and a bias.

With ``user_discount`` set (the ``linucb-hybrid`` / ``thompson-hybrid`` specs) each also keeps a
small model per user beside the shared one, after hybrid LinUCB (Li et al., 2010; here per user
rather than per arm, fit to the shared model's residual, with no exploration bonus of its own):
a ridge regression, per user row (back to the prior when the row's session ends and a new user
takes it), of what the shared model got wrong (click − θ·x of each shown
candidate) on the candidate's item embedding and a bias, with exponential forgetting (every
step the evidence so far is weighted by ``user_discount``, the prior precision stays
``user_ridge``). Its prediction is added to the shared score, so a user whose taste moves is
followed within a few clicks, which a model shared by all users cannot do.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from recsim_llm.agents.baselines import top_k
from recsim_llm.context import N_ITEM_SCALARS, N_USER_SCALARS, SlateContext

__all__ = ["LinUCBPolicy", "LinearThompsonPolicy"]


class _LinearBandit:
    """A ridge-regression posterior on click features, shared by the linear bandits.

    The model is sized from the ``Dict`` observation's shapes at the first step of a run: the
    encoder's user state is ``obs['user']`` without its ``N_USER_SCALARS`` trailing scalars, the
    item embedding is a candidate row without its ``N_ITEM_SCALARS`` (``recsim_llm.context``).
    The posterior after the clicks ``y`` on shown features ``X`` is ``N(θ, v²A⁻¹)`` with
    ``A = ridge·I + XᵀX`` and ``θ = A⁻¹Xᵀy``.
    """

    name = "linear-bandit"
    privileged = False

    def __init__(
        self, ridge: float, user_discount: float | None = None, user_ridge: float = 1.0
    ) -> None:
        if user_discount is not None and (
            isinstance(user_discount, bool) or not 0.0 < user_discount <= 1.0
        ):
            raise ValueError(
                f"user_discount must be a number in (0, 1] or None, got {user_discount!r}"
            )
        if isinstance(user_ridge, bool) or not user_ridge > 0:
            raise ValueError(f"user_ridge must be a number > 0, got {user_ridge!r}")
        self.ridge = float(ridge)
        self.user_discount = None if user_discount is None else float(user_discount)
        self.user_ridge = float(user_ridge)
        if self.user_discount is not None:
            self.name = f"{self.name}-hybrid"
        self.reset(0)

    def reset(self, seed: int) -> None:
        self._layout: tuple[int, int, int, int] | None = None
        self._rng = np.random.default_rng(seed)
        # The per-user models (hybrid only), sized at the first step: precision (n, d, d),
        # evidence (n, d) and their solution (n, d) over [item embedding, 1].
        self._user_a: np.ndarray | None = None
        self._user_b: np.ndarray | None = None
        self._user_beta: np.ndarray | None = None
        self._user_prior: np.ndarray | None = None

    def _init(self, observation: dict[str, np.ndarray]) -> None:
        user_dim = np.shape(observation["user"])[-1] - N_USER_SCALARS
        item_dim = np.shape(observation["candidates"])[-1] - N_ITEM_SCALARS
        n_item_scalars = N_ITEM_SCALARS
        if min(user_dim, item_dim) < 1:
            raise ValueError(
                "the observation must give positive user and item dims, got "
                f"user {np.shape(observation['user'])}, "
                f"candidates {np.shape(observation['candidates'])}"
            )
        layout = (user_dim, N_USER_SCALARS, item_dim, n_item_scalars)
        self._layout = layout
        self._blocks = user_dim // item_dim if user_dim % item_dim == 0 else 1
        self.dim = item_dim * (self._blocks + 1) + n_item_scalars + 1
        self._a = np.eye(self.dim) * self.ridge
        self._b = np.zeros(self.dim)
        self._a_inv = np.eye(self.dim) / self.ridge
        self._theta = np.zeros(self.dim)

    def features(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        """(n_users, n_candidates, dim) features from a batch of observations."""
        assert self._layout is not None
        user_dim, _, item_dim, _ = self._layout
        user = np.asarray(observation["user"], dtype=np.float64)[:, :user_dim]
        items = np.asarray(observation["candidates"], dtype=np.float64)
        n = user.shape[0]
        emb, scalars = items[..., :item_dim], items[..., item_dim:]
        if self._blocks > 1:
            blocks = user.reshape(n, self._blocks, item_dim)
        else:
            blocks = user[:, None, :item_dim]
        inter = emb[:, :, None, :] * blocks[:, None, :, :]  # (n, c, blocks, item_dim)
        ones = np.ones((n, items.shape[1], 1))
        return np.concatenate([emb, inter.reshape(n, items.shape[1], -1), scalars, ones], axis=2)

    def scores(self, x: np.ndarray) -> np.ndarray:
        """(n_users, n_candidates) ranking scores of the shared model from the features ``x``."""
        raise NotImplementedError

    def _user_features(
        self, observation: dict[str, np.ndarray], slate: np.ndarray | None = None
    ) -> np.ndarray:
        """(n_users, n_candidates, item_dim + 1): each candidate's item embedding and a 1; with
        ``slate``, only the shown candidates' (n_users, slate_size, item_dim + 1)."""
        assert self._layout is not None
        item_dim = self._layout[2]
        emb = np.asarray(observation["candidates"])[..., :item_dim]
        if slate is not None:
            emb = np.take_along_axis(emb, slate[:, :, None], axis=1)
        out = np.ones(emb.shape[:-1] + (item_dim + 1,))
        out[..., :item_dim] = emb
        return out

    def _check_user_rows(self, n: int, what: str) -> None:
        if self._user_a is not None and self._user_a.shape[0] != n:
            raise ValueError(
                f"the per-user models were sized for {self._user_a.shape[0]} user rows, got "
                f"{what} of {n}: reset(seed) before a run with another batch"
            )

    def user_scores(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        """(n_users, n_candidates) the per-user models' correction (0 without them or a click
        history yet)."""
        n, c = np.shape(observation["candidates"])[:2]
        if self._user_beta is None:
            return np.zeros((n, c))
        self._check_user_rows(n, "an observation")
        return np.einsum("ncd,nd->nc", self._user_features(observation), self._user_beta)

    def act(self, observation: dict[str, np.ndarray], context: SlateContext) -> np.ndarray:
        # Checked before any random draw (scores() draws from the policy's generator).
        self._check_user_rows(np.shape(observation["candidates"])[0], "an observation")
        if self._layout is None:
            self._init(observation)
        scores = self.scores(self.features(observation))
        if self.user_discount is not None:
            scores = scores + self.user_scores(observation)
        mask = observation.get("candidate_mask")
        if mask is not None:  # padding is never shown
            scores = np.where(np.asarray(mask) > 0.5, scores, -np.inf)
        return top_k(scores, context.slate_size)

    def update(
        self, observation: dict[str, np.ndarray], slate: np.ndarray, info: dict[str, Any]
    ) -> None:
        """Learn from one step: each shown candidate is a 1 (clicked) or 0 (skipped) sample."""
        if self._layout is None:
            raise RuntimeError("update() before act(): the model is sized at the first act()")
        x = self.features(observation)
        shown = np.take_along_axis(x, slate[:, :, None], axis=1).reshape(-1, self.dim)
        clicked = np.zeros(slate.shape)
        pos = np.asarray(info["position"])
        rows = np.flatnonzero(pos >= 0)
        clicked[rows, pos[rows]] = 1.0
        if self.user_discount is not None:
            # Before the shared update: the residual is what the model that chose the slate
            # got wrong.
            residual = clicked - (shown @ self._theta).reshape(slate.shape)
            self._update_users(observation, slate, residual)
            # A row whose session ended this step holds a new user now (the vector env resets
            # it in the same step): its per-user model starts from the prior again.
            ended = np.flatnonzero(np.asarray(info.get("_final_obs", False), dtype=bool))
            self._reset_users(ended)
        self._a += shown.T @ shown
        self._b += shown.T @ clicked.ravel()
        self._a_inv = np.linalg.inv(self._a)
        self._theta = self._a_inv @ self._b
        self._posterior_changed()

    def _update_users(
        self, observation: dict[str, np.ndarray], slate: np.ndarray, residual: np.ndarray
    ) -> None:
        """Discounted per-user ridge step on the shown candidates' residuals."""
        assert self.user_discount is not None
        e = self._user_features(observation, slate)
        n, _, d = e.shape
        self._check_user_rows(n, "an update")
        if self._user_a is None or self._user_b is None:
            self._user_a = np.tile(np.eye(d) * self.user_ridge, (n, 1, 1))
            self._user_b = np.zeros((n, d))
            # The prior keeps its precision; only the evidence is forgotten.
            self._user_prior = (1.0 - self.user_discount) * self.user_ridge * np.eye(d)
        g = self.user_discount
        assert self._user_prior is not None
        self._user_a = g * self._user_a + self._user_prior + np.einsum("nkd,nke->nde", e, e)
        self._user_b = g * self._user_b + np.einsum("nkd,nk->nd", e, residual)
        self._user_beta = np.linalg.solve(self._user_a, self._user_b[..., None])[..., 0]

    def _reset_users(self, rows: np.ndarray) -> None:
        """Per-user models of ``rows`` back to the prior (a new user in those rows)."""
        if rows.size and self._user_a is not None and self._user_b is not None:
            d = self._user_a.shape[1]
            self._user_a[rows] = np.eye(d) * self.user_ridge
            self._user_b[rows] = 0.0
            if self._user_beta is not None:
                self._user_beta[rows] = 0.0

    def _posterior_changed(self) -> None:
        """Hook for caches derived from the posterior."""


class LinUCBPolicy(_LinearBandit):
    """Shared-parameter LinUCB over slates: top-k by ``θ·x + alpha·sqrt(xᵀA⁻¹x)``.

    Args:
        alpha: exploration width.
        ridge: prior precision (A starts as ``ridge·I``).
        user_discount: with a value in (0, 1], also a per-user model with this forgetting
            factor (``linucb-hybrid``, module docstring); None: the shared model only.
        user_ridge: the per-user models' prior precision.
    """

    name = "linucb"
    privileged = False

    def __init__(
        self,
        alpha: float = 0.5,
        ridge: float = 1.0,
        user_discount: float | None = None,
        user_ridge: float = 1.0,
    ) -> None:
        if not alpha >= 0 or not ridge > 0:
            raise ValueError(f"alpha must be >= 0 and ridge > 0, got {alpha}, {ridge}")
        self.alpha = float(alpha)
        super().__init__(ridge, user_discount, user_ridge)

    def scores(self, x: np.ndarray) -> np.ndarray:
        mean = x @ self._theta
        width = np.sqrt(np.maximum(((x @ self._a_inv) * x).sum(axis=2), 0.0))
        jitter = self._rng.random(mean.shape) * 1e-9  # random tie-breaking, seeded
        return mean + self.alpha * width + jitter


class LinearThompsonPolicy(_LinearBandit):
    """Shared-parameter linear Thompson sampling over slates: top-k by ``w̃·x``.

    Every step, each user row draws its own weights ``w̃ ~ N(θ, scale²·A⁻¹)`` from the policy's
    seeded generator (``reset(seed)`` reseeds it) and ranks its candidates by ``w̃·x``.

    Args:
        scale: posterior width ``v`` (exploration; 0 is greedy on ``θ``).
        ridge: prior precision (A starts as ``ridge·I``).
        user_discount: with a value in (0, 1], also a per-user model with this forgetting
            factor (``thompson-hybrid``, module docstring; its mean is added, not sampled);
            None: the shared model only.
        user_ridge: the per-user models' prior precision.
    """

    name = "thompson"
    privileged = False

    def __init__(
        self,
        scale: float = 0.25,
        ridge: float = 1.0,
        user_discount: float | None = None,
        user_ridge: float = 1.0,
    ) -> None:
        if not scale >= 0 or not ridge > 0:
            raise ValueError(f"scale must be >= 0 and ridge > 0, got {scale}, {ridge}")
        self.scale = float(scale)
        super().__init__(ridge, user_discount, user_ridge)

    def _init(self, observation: dict[str, np.ndarray]) -> None:
        super()._init(observation)
        self._posterior_changed()

    def _posterior_changed(self) -> None:
        # A = LLᵀ gives A⁻¹ = L⁻ᵀL⁻¹, so L⁻ᵀz with z ~ N(0, I) has covariance A⁻¹. A's
        # eigenvalues are >= ridge, so its factor is better conditioned than A⁻¹'s.
        chol = np.linalg.cholesky(self._a)
        self._root = np.linalg.inv(chol).T

    def scores(self, x: np.ndarray) -> np.ndarray:
        z = self._rng.standard_normal((x.shape[0], self.dim))
        weights = self._theta + self.scale * z @ self._root.T  # (n_users, dim)
        return np.einsum("ncd,nd->nc", x, weights)
