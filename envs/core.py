"""The batched simulator that the single and vector envs share.

It glues world -> log -> encoder -> observation for ``n_users`` user slots, in one direction:
the world produces responses, the log records the observable part, the encoder turns the log into
user states, and the observation is built from those states and the candidates' embeddings only.
Hidden state never enters an observation, nor the ``SlateContext`` policies get beside it: this
module does not import the agents package, and it never hands the world to a policy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recsim_llm.candidates import CandidateGenerator
from recsim_llm.config import EnvConfig
from recsim_llm.context import N_ITEM_SCALARS, N_USER_SCALARS, SlateContext
from recsim_llm.encoders import UserEncoder, make_encoder
from recsim_llm.log import InteractionLog
from recsim_llm.sizes import check_memory
from recsim_llm.world import Catalog, Responses, World, generate_catalog

__all__ = ["N_ITEM_SCALARS", "N_USER_SCALARS", "SlateSimulator", "StepResult"]


@dataclass(frozen=True)
class StepResult:
    """One batched step: arrays over user slots."""

    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    responses: Responses
    n_repaired: np.ndarray


def _child_rng(rng: np.random.Generator) -> np.random.Generator:
    """An independent generator derived from ``rng``'s seed sequence without drawing from it
    (a draw would move every later user, click and candidate of the run)."""
    seed_seq = getattr(rng.bit_generator, "seed_seq", None)
    if isinstance(seed_seq, np.random.SeedSequence):
        return np.random.default_rng(seed_seq.spawn(1)[0])
    return np.random.default_rng(int(rng.integers(2**63)))


class SlateSimulator:
    """World, log, encoder and candidates for ``n_users`` slots.

    Args:
        config: environment settings.
        n_users: user slots simulated together.
        catalog: item catalog; generated from ``config.world.catalog`` when omitted.
        encoder: user encoder; built from ``config.encoder`` when omitted.
        world: a prebuilt world (for calibrated worlds); built from config when omitted.
    """

    def __init__(
        self,
        config: EnvConfig,
        n_users: int,
        catalog: Catalog | None = None,
        encoder: UserEncoder | None = None,
        world: World | None = None,
    ) -> None:
        if not isinstance(config, EnvConfig):
            raise ValueError(f"config must be an EnvConfig, got {type(config).__name__}")
        self.config = config
        if world is None:
            catalog = catalog if catalog is not None else generate_catalog(config.world.catalog)
            world = World(config.world, n_users, catalog)
        if world.n_users != n_users:
            raise ValueError(f"world has {world.n_users} user slots, expected n_users={n_users}")
        # The log holds history_length slates and 3 scalars per user slot (int64/float64).
        check_memory(
            f"history_length ({config.history_length}) with n_users ({n_users})",
            float(n_users) * config.history_length * (config.slate_size + 3) * 8,
            "the interaction log",
        )
        self.world = world
        self.catalog = world.catalog
        if config.n_candidates > int((self.catalog.arrival_step == 0).sum()):
            raise ValueError(
                f"n_candidates ({config.n_candidates}) exceeds the items available at the start "
                f"({int((self.catalog.arrival_step == 0).sum())})"
            )
        self.n_users = int(n_users)
        self.encoder = encoder if encoder is not None else make_encoder(config, self.catalog)
        self.candidate_generator = CandidateGenerator(config, self.catalog)
        self.titles = self.catalog.titles
        self._texts = self.catalog.texts()
        self.item_embeddings = np.zeros(
            (self.catalog.n_total, self.encoder.item_dim), dtype=np.float32
        )
        self._encoded = np.zeros(self.catalog.n_total, dtype=bool)
        self.log = InteractionLog(
            self.n_users,
            config.history_length,
            config.slate_size,
            self.catalog.n_total,
            self.catalog.genres,
        )
        self.states = np.zeros((self.n_users, self.encoder.user_dim), dtype=np.float32)
        self.candidates = np.zeros((self.n_users, config.n_candidates), dtype=np.int64)
        self.user_obs_dim = self.encoder.user_dim + N_USER_SCALARS
        """Length of ``obs['user']``: the encoder's user state and the user scalars."""
        self.item_obs_dim = self.encoder.item_dim + N_ITEM_SCALARS
        """Length of a row of ``obs['candidates']``: item embedding, is-new flag, popularity."""
        self.flat_dim = self.user_obs_dim + config.n_candidates * self.item_obs_dim
        """Length of the flat view (``recsim_llm.context.flatten_observation``)."""
        self._per_item = np.zeros((self.catalog.n_total, self.item_obs_dim), dtype=np.float32)
        """Per item: embedding (a copy of ``item_embeddings``, which only ``_encode_arrivals``
        writes), is-new flag, popularity; the candidate rows of observations come from here."""
        # Robustness settings act here, at the log/observation boundary, never in the world.
        self._lagged: np.ndarray | None = None
        """(feedback_delay + 1, n, user_obs_dim) ring of past user rows (``feedback_delay``)."""
        self._lag_pos = 0
        self._boundary_rng: np.random.Generator | None = None
        """Draws observation noise and lost clicks: a child of the reset rng's seed sequence,
        so the world's random stream (users, clicks, candidates) is the one without them."""

    # -- lifecycle -----------------------------------------------------------------------------
    def reset(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Fresh world clock, empty log, new users in every slot; returns observations."""
        self.world.clock = 0
        self.log = InteractionLog(
            self.n_users,
            self.config.history_length,
            self.config.slate_size,
            self.catalog.n_total,
            self.catalog.genres,
        )
        self._encode_arrivals()
        if self.config.feedback_delay > 0:
            self._lagged = np.zeros(
                (self.config.feedback_delay + 1, self.n_users, self.user_obs_dim), dtype=np.float32
            )
            self._lag_pos = 0
        if self.config.observation_noise > 0.0 or self.config.feedback_drop > 0.0:
            self._boundary_rng = _child_rng(rng)
        self.reset_users(np.arange(self.n_users), rng)
        self.draw_candidates(rng)
        return self.observe()

    def reset_users(self, rows: np.ndarray, rng: np.random.Generator) -> None:
        """New cold-start users in ``rows`` (their candidates are drawn with the next step's)."""
        profiles = self.world.reset_users(rows, rng)
        self.log.reset_users(rows, profiles)
        self.states[rows] = self.encoder.encode_profiles(profiles)
        if self._lagged is not None:
            self._lagged[:, rows] = self._user_rows(rows)[None]  # the arrival state, every lag

    def _encode_arrivals(self) -> None:
        """Embed items that have arrived and were not embedded yet (done once per item)."""
        todo = np.flatnonzero((self.catalog.arrival_step <= self.world.clock) & ~self._encoded)
        if todo.size:
            self.item_embeddings[todo] = self.encoder.encode_items([self._texts[i] for i in todo])
            self._per_item[todo, : self.encoder.item_dim] = self.item_embeddings[todo]
            self._encoded[todo] = True

    # -- acting --------------------------------------------------------------------------------
    def validate_action(self, action: np.ndarray) -> np.ndarray:
        """Check a batched action (n_users, slate_size) of candidate indices; returns int64."""
        k, c = self.config.slate_size, self.config.n_candidates
        arr = np.asarray(action)
        if arr.shape != (self.n_users, k):
            raise ValueError(f"action must have shape {(self.n_users, k)}, got {arr.shape}")
        if arr.dtype.kind == "f":
            if not np.all(np.isfinite(arr)):
                raise ValueError("action must hold finite candidate indices, got NaN or inf")
            if not np.all(arr == np.rint(arr)):
                raise ValueError("action must hold integer candidate indices")
        elif arr.dtype.kind not in "iu":
            raise ValueError(f"action must hold integer candidate indices, got dtype {arr.dtype}")
        if arr.dtype.kind == "f":
            out_of_range = arr.size and (arr.min() < 0 or arr.max() >= c)
            arr = arr.astype(np.int64)
        else:
            arr = arr.astype(np.int64)
            # One comparison: negative ids become huge as unsigned (uint64 ids beyond int64 too).
            out_of_range = (arr.view(np.uint64) >= c).any()
        if out_of_range:
            raise ValueError(f"action values must be candidate indices in [0, {c - 1}]")
        return arr

    def repair(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Resolve repeated candidates in a slate.

        With ``duplicate_policy='repair'`` a slot repeating an earlier slot's candidate gets the
        lowest-index candidate not yet in the slate; with ``'error'`` any repeat raises.
        Returns the slate and the number of repaired slots per user.
        """
        n, k = action.shape
        n_repaired = np.zeros(n, dtype=np.int64)
        ranked = np.sort(action, axis=1)
        if not (ranked[:, 1:] == ranked[:, :-1]).any():
            return action.copy(), n_repaired  # no repeat anywhere (the usual case)
        rows = np.arange(n)
        used = np.zeros((n, self.config.n_candidates), dtype=bool)
        fixed = action.copy()
        for j in range(k):
            slot = fixed[:, j]
            dup = used[rows, slot]
            if dup.any():
                if self.config.duplicate_policy == "error":
                    raise ValueError(
                        "action repeats a candidate within a slate (duplicate_policy='error'); "
                        f"users {np.flatnonzero(dup)[:5].tolist()}"
                    )
                slot[dup] = np.argmin(used[dup], axis=1)
                n_repaired += dup
            used[rows, slot] = True
        return fixed, n_repaired

    def step(self, action: np.ndarray, rng: np.random.Generator) -> StepResult:
        """Show the chosen slates, record responses, update states; does not reset anyone."""
        action = self.validate_action(action)
        action, n_repaired = self.repair(action)
        c = self.config.n_candidates
        slates = np.take(self.candidates, action + (np.arange(self.n_users) * c)[:, None])
        responses = self.world.step(slates, rng)
        click_pos, rating, engagement = responses.click_pos, responses.rating, responses.engagement
        if self.config.feedback_drop > 0.0:
            # Missing feedback: the click happened (the world moved), the log never heard of it.
            assert self._boundary_rng is not None  # made by reset()
            draw = self._boundary_rng.random(self.n_users)
            lost = (click_pos >= 0) & (draw < self.config.feedback_drop)
            click_pos = np.where(lost, -1, click_pos)
            rating = np.where(lost, 0.0, rating)
            engagement = np.where(lost, 0.0, engagement)
        self.log.record(slates, click_pos, rating, engagement)
        self._encode_arrivals()
        self.encoder.update(self.states, self.log, self.item_embeddings, self.titles)
        if self._lagged is not None:
            self._lag_pos = (self._lag_pos + 1) % self._lagged.shape[0]
            self._lagged[self._lag_pos] = self._user_rows(slice(None))
        truncated = self.world.session_step >= self.config.horizon
        terminated = responses.churned
        return StepResult(
            reward=responses.engagement.astype(np.float32),
            terminated=terminated,
            truncated=truncated & ~terminated,
            responses=responses,
            n_repaired=n_repaired,
        )

    def draw_candidates(self, rng: np.random.Generator, rows: np.ndarray | None = None) -> None:
        """Candidates for the next step, for all user slots or only ``rows``."""
        if rows is None:
            self.candidates = self.candidate_generator.sample(
                self.n_users, self.world.clock, self.log.popularity, rng
            )
        else:
            self.candidates[rows] = self.candidate_generator.sample(
                len(rows), self.world.clock, self.log.popularity, rng
            )

    # -- observing -----------------------------------------------------------------------------
    def observe(self, rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """The batched ``Dict`` observation from observable data only (fresh arrays).

        ``user`` (n, user_obs_dim): encoder state, session progress, history fill, then the
        log's feedback summaries (``InteractionLog.feedback``); ``candidates`` (n, n_candidates,
        item_obs_dim): per candidate its embedding, is-new flag and log popularity;
        ``candidate_mask`` (n, n_candidates): 1 for a real candidate (all of them today).
        With ``rows``, only those users' observations, the same values.
        """
        rows = slice(None) if rows is None else np.asarray(rows, dtype=np.int64)
        candidates = self.candidates[rows]
        n, c = candidates.shape
        user_dim = self.encoder.user_dim
        if self._lagged is None:
            user = self._user_rows(rows)
        else:
            # Delayed feedback: the user part as it was feedback_delay steps ago (oldest kept).
            oldest = (self._lag_pos + 1) % self._lagged.shape[0]
            user = self._lagged[oldest, rows].copy()
            user[:, user_dim] = self.world.session_step[rows] / self.config.horizon
        if self._boundary_rng is not None and self.config.observation_noise > 0.0:
            state = user[:, :user_dim]
            rms = np.sqrt(np.mean(np.square(state, dtype=np.float64), axis=1, keepdims=True))
            noise = self._boundary_rng.standard_normal(state.shape)
            state += (self.config.observation_noise * rms * noise).astype(np.float32)
        items = np.empty((n, c, self.item_obs_dim), dtype=np.float32)
        # Candidates are always item ids (clip never clips); "raise" would copy ``out`` first.
        np.take(self._per_item_table(), candidates, axis=0, out=items, mode="clip")
        return {
            "user": user,
            "candidates": items,
            "candidate_mask": np.ones((n, c), dtype=np.float32),
        }

    def _user_rows(self, rows: np.ndarray | slice) -> np.ndarray:
        """(n, user_obs_dim) float32: the current user part of the observation of ``rows``."""
        states = self.states[rows]
        user_dim = self.encoder.user_dim
        user = np.empty((states.shape[0], self.user_obs_dim), dtype=np.float32)
        user[:, :user_dim] = states
        user[:, user_dim] = self.world.session_step[rows] / self.config.horizon
        user[:, user_dim + 1] = (
            np.minimum(self.log.count[rows], self.config.history_length)
            / self.config.history_length
        )
        user[:, user_dim + 2 :] = self.log.feedback(rows)
        return user

    def _per_item_table(self) -> np.ndarray:
        """(n_total, item_dim + 2) float32: embedding, is-new flag and popularity of every item."""
        item_dim = self.encoder.item_dim
        per_item = self._per_item
        arrival = self.catalog.arrival_step
        per_item[:, item_dim] = (arrival > 0) & (
            self.world.clock - arrival < self.config.new_item_window
        )
        per_item[:, item_dim + 1] = np.log1p(self.log.popularity) / 10.0
        return per_item

    def context(self) -> SlateContext:
        """What policies get besides the observation: observable data only, never the world."""
        return SlateContext(
            candidates=self.candidates,
            slate_size=self.config.slate_size,
            popularity=self.log.popularity,
            steps_left=self.config.horizon - self.world.session_step,
        )
