"""Training runs to trust: one run directory, periodic evaluation and checkpoints, exact resume.

A run directory is a ``recsim_llm.io`` output of kind ``"train"``:

* ``config.json``: the settings that define the run (the full env config, algorithm, policy,
  hyperparameters: our defaults with ``TrainSettings.algo_kwargs`` over them, seed, concurrent
  users, steps, torch threads, evaluation and checkpoint cadence), every hyperparameter the
  model was built with (``effective_hyperparameters``: SB3's defaults included), the policy
  kwargs, the torch thread count in force and the package versions. Written once.
* ``progress.csv``: SB3's logger, one row per rollout (and ``tensorboard/`` event files when the
  ``tensorboard`` package is installed; ``config.json`` lists the formats written).
* ``eval.csv``: every ``eval_every`` user-steps and at the end, the policy's deterministic return
  (mean over the first session of each of ``eval_users`` users) on each evaluation seed, a set
  disjoint from the training seed, and their mean. Evaluation saves and restores every global
  random state, so it does not change training.
* ``checkpoints/step-NNNNNNNNN/``: every ``checkpoint_every`` user-steps, ``model.zip`` (SB3's
  zip: parameters, optimizer state, ``num_timesteps``; with a sidecar ``model.json``, so it loads
  as a ``model:`` policy) and ``state.pkl`` (python ``random``, NumPy's global and torch's random
  states, the env's and the action space's ``np.random.Generator`` states, the whole batched env
  with its users in flight, the model's last observation, SB3's pending log values). Each is
  built in a hidden staging folder and renamed, so it is whole or absent; the newest
  ``keep_checkpoints`` are kept.
* ``model.zip`` + ``model.json``: the final model, written last (``save_sb3_model``).

The run is created as a marked folder holding ``config.json`` and then filled in place (a kill
must leave its checkpoints behind), every file atomically except the logger's appended
``progress.csv`` and event files, which a resume cuts back to the checkpoint's step.

**Exact resume.** Checkpoints are taken at a rollout boundary (SB3's ``on_rollout_start``: after
the previous update, before any step of the next rollout), where nothing else is in flight: the
rollout buffer is empty and the loop's only state is what the checkpoint holds. A run killed
after a checkpoint and resumed (``resume=True``) therefore ends with the same parameters, bit for
bit, as an uninterrupted run with the same settings, on the same machine and package versions
(``tests/test_train.py`` kills one with SIGKILL and compares). Loading a checkpoint unpickles
code, like loading any SB3 zip: resume only runs you trust.

**Several seeds** (``train_seeds``): a folder of kind ``"train-seeds"`` holding ``config.json``
(the settings without ``seed``, the seeds, the versions), one complete run directory per seed,
``seed-<S>/``, exactly as a single run writes it, and at the end ``summary.csv`` / ``summary.md``
(each seed's final evaluation return, and their mean with a bootstrap interval from
``recsim_llm.stats.mean_estimate``: none for one seed, flagged unreliable under 5). Each seed is
one picklable ``SeedTask`` run by ``train_seed`` through a ``recsim_llm.grid`` executor (local
processes or Ray), which sets the task's torch threads itself; a seed trains the same whatever
executor, worker count or order, because every random state comes from its own seed.
"""

from __future__ import annotations

import csv
import io
import json
import pickle
import random
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recsim_llm.agents.sb3 import (
    ALGORITHMS,
    SB3_POLICIES,
    SB3Policy,
    check_encoder_prior,
    check_hyperparameters,
    effective_hyperparameters,
    make_sb3_model,
    model_metadata,
    save_sb3_model,
    sb3_hyperparameters,
)
from recsim_llm.config import EnvConfig, to_dict

__all__ = [
    "SEEDS_KIND",
    "TRAIN_KIND",
    "SeedResult",
    "SeedTask",
    "TrainSettings",
    "latest_checkpoint",
    "seed_dir",
    "train_run",
    "train_seed",
    "train_seeds",
]

TRAIN_KIND = "train"
"""``recsim_llm.io`` kind of a training run directory."""
SEEDS_KIND = "train-seeds"
"""``recsim_llm.io`` kind of a folder of training runs, one per seed (``train_seeds``)."""
SUMMARY = "summary.csv"
SUMMARY_MD = "summary.md"
SUMMARY_COLUMNS = ("seed", "steps", "eval_step", "final_return", "low", "high", "n", "reliable")
CONFIG = "config.json"
MODEL = "model.zip"
PROGRESS = "progress.csv"
EVAL = "eval.csv"
CHECKPOINTS = "checkpoints"
STATE = "state.pkl"
STATE_FORMAT = 1
_STEP_KEY = "time/total_timesteps"


@dataclass(frozen=True)
class TrainSettings:
    """What defines a training run besides its env config (all recorded in ``config.json``)."""

    algorithm: str = "PPO"
    """SB3 algorithm, one of ``ALGORITHMS``."""
    policy: str = "scorer"
    """One of ``SB3_POLICIES``."""
    steps: int = 50_000
    """User-steps to train (SB3 stops at the first whole rollout at or past it)."""
    n_envs: int = 16
    """Concurrent users in the batched training env."""
    seed: int = 0
    """Seeds the env, the model and every global random state."""
    threads: int = 1
    """``torch.set_num_threads`` for the run (results can depend on it)."""
    eval_every: int = 10_000
    """Evaluate at the first rollout boundary past each multiple of it, and at the end; 0: never."""
    eval_seeds: tuple[int, ...] = (1000, 1001, 1002)
    """Env seeds of the evaluation rollouts; must not contain ``seed``."""
    eval_users: int = 32
    """Users (sessions) per evaluation seed."""
    checkpoint_every: int = 10_000
    """Checkpoint at the first rollout boundary past each multiple of it; 0: never."""
    keep_checkpoints: int = 2
    """Newest checkpoints kept."""
    scenario: str = "custom"
    """Name of the scenario the env config came from (a label; the config is the truth)."""
    encoder_prior: float = 0.0
    """The scorer's encoder prior (``CandidateScorerPolicy(encoder_prior=...)``): the LM
    encoder's own click logit, times a learnt gain starting at this value, is added to every
    candidate's score, so PPO learns a residual on encoder-greedy. 0 = none; > 0 needs
    ``policy="scorer"`` and an LM state (``lm-fast``/``lm-exact``)."""
    algo_kwargs: tuple[tuple[str, Any], ...] = ()
    """Hyperparameters given to the SB3 algorithm over ``sb3_hyperparameters``' defaults, as
    sorted ``(keyword, value)`` pairs (a mapping is accepted); each keyword must be one of the
    algorithm's (``check_hyperparameters``), values are typed and range-checked, and PPO's
    ``batch_size`` must divide ``n_steps * n_envs``."""

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {self.algorithm!r}")
        if self.policy not in SB3_POLICIES:
            raise ValueError(f"policy must be one of {SB3_POLICIES}, got {self.policy!r}")
        for name in ("steps", "n_envs", "threads", "eval_users", "keep_checkpoints"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("seed", "eval_every", "checkpoint_every"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        check_encoder_prior(self.encoder_prior, self.policy)
        typed = check_hyperparameters(self.algorithm, self.algo_kwargs, n_envs=int(self.n_envs))
        object.__setattr__(self, "algo_kwargs", tuple(typed.items()))
        seeds = tuple(int(s) for s in self.eval_seeds)
        object.__setattr__(self, "eval_seeds", seeds)
        if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
            raise ValueError(f"eval_seeds must be distinct seeds >= 0, got {list(seeds)}")
        if self.seed in seeds:
            raise ValueError(
                f"eval_seeds must not contain the training seed {self.seed}: evaluation is on "
                "users never seen in training"
            )


ADDED_SETTINGS: dict[str, Any] = {"encoder_prior": 0.0}
"""``TrainSettings`` fields added after runs were first recorded, with the value such a run
had: a resume fills them into an older ``config.json`` before comparing settings."""


def run_settings(config: EnvConfig, settings: TrainSettings) -> dict[str, Any]:
    """The settings a resume must match, as plain JSON values.

    ``hyperparameters`` holds our defaults with ``settings.algo_kwargs`` over them (the
    keywords the model is built with; a resume with another value names the key); the
    ``algo_kwargs`` field itself is not repeated.
    """
    from recsim_llm.io import json_text

    values = asdict(settings)
    del values["algo_kwargs"]
    values["hyperparameters"] = sb3_hyperparameters(
        settings.algorithm, **dict(settings.algo_kwargs)
    )
    values["env"] = to_dict(config)
    return json.loads(json_text(values))


def _versions() -> dict[str, str]:
    import platform
    from importlib.metadata import PackageNotFoundError, version

    import recsim_llm

    found = {"python": platform.python_version(), "recsim_llm": recsim_llm.__version__}
    for package in ("numpy", "torch", "stable-baselines3", "gymnasium"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:  # pragma: no cover
            found[package] = "not installed"
    return found


def _logger_formats() -> list[str]:
    import importlib.util

    return ["csv", "tensorboard"] if importlib.util.find_spec("tensorboard") else ["csv"]


def _flatten(values: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(values, dict):
        flat: dict[str, Any] = {}
        for key, value in values.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: values}


def _env_defaults() -> dict[str, Any]:
    """The default env config, flattened under ``env.`` as a saved run holds it (JSON values)."""
    from recsim_llm.io import json_text

    return _flatten({"env": json.loads(json_text(to_dict(EnvConfig())))})


def _differences(saved: dict[str, Any], given: dict[str, Any]) -> list[str]:
    """Every key whose saved and given values differ. An env field missing from the saved
    settings (a run written before the field existed) matches when the given value is the
    field's default: that run was made with the default."""
    old, new = _flatten(saved), _flatten(given)
    defaults = _env_defaults()
    missing = "<missing>"

    def same(key: str) -> bool:
        a, b = old.get(key, missing), new.get(key, missing)
        return a == b or (a == missing and key in defaults and b == defaults[key])

    return [
        f"{key} (saved {old.get(key, missing)!r}, given {new.get(key, missing)!r})"
        for key in sorted(old.keys() | new.keys())
        if not same(key)
    ]


def _checkpoint_step(path: Path) -> int | None:
    name = path.name
    if not name.startswith("step-") or not name[5:].isdigit() or not path.is_dir():
        return None
    if not (path / MODEL).is_file() or not (path / STATE).is_file():
        return None
    return int(name[5:])


def _checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    folder = Path(run_dir) / CHECKPOINTS
    if not folder.is_dir():
        return []
    found = [(_checkpoint_step(p), p) for p in folder.iterdir()]
    return sorted((step, p) for step, p in found if step is not None)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint folder of a run, or None."""
    found = _checkpoints(Path(run_dir))
    return found[-1][1] if found else None


def _saved_settings(path: Path, what: str) -> Any:
    """The ``settings`` recorded in ``path``'s ``config.json``, for a resume of ``what`` (e.g.
    "a training run").

    Raises:
        ValueError: there is no readable ``config.json`` with settings.
    """
    try:
        saved = json.loads((path / CONFIG).read_text(encoding="utf-8"))["settings"]
        # A run recorded before a setting existed ran with that setting's default.
        for key, default in ADDED_SETTINGS.items():
            saved.setdefault(key, default)
        return saved
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise ValueError(
            f"cannot resume {path}: it is not {what} (no readable {CONFIG} with settings); "
            "start it without --resume"
        ) from None


def check_resume(run_dir: Path, config: EnvConfig, settings: TrainSettings) -> Path | None:
    """Before any work: the checkpoint to resume ``run_dir`` from, or None if it is complete.

    Raises:
        ValueError: ``run_dir`` is not a training run, its settings differ from the given ones
            (the message lists every differing key), or it holds no checkpoint.
    """
    saved = _saved_settings(run_dir, "a training run")
    differing = _differences(saved, run_settings(config, settings))
    if differing:
        raise ValueError(
            f"cannot resume {run_dir}: settings differ from its {CONFIG}: "
            + "; ".join(differing)
            + ". Resume with the same settings, or start a new run"
        )
    if (run_dir / MODEL).is_file():
        return None
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        raise ValueError(
            f"cannot resume {run_dir}: no checkpoint in {run_dir / CHECKPOINTS} (killed before "
            "its first checkpoint, or checkpoint_every is 0); start it again without --resume"
        )
    return checkpoint


# -- random states --------------------------------------------------------------------------------
def _global_rng_state() -> dict[str, Any]:
    import torch

    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),  # noqa: NPY002 - SB3 draws minibatches from it
        "torch": torch.get_rng_state(),
    }


def _set_global_rng_state(state: dict[str, Any]) -> None:
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])  # noqa: NPY002
    torch.set_rng_state(state["torch"])


class _EvalPolicy(SB3Policy):
    """The model acting deterministically; ``reset`` leaves every random state alone."""

    def reset(self, seed: int) -> None:
        pass


class _Run:
    """One run directory's bookkeeping: evaluation, checkpoints and the final model."""

    def __init__(
        self, run_dir: Path, config: EnvConfig, settings: TrainSettings, start_step: int
    ) -> None:
        self.dir = run_dir
        self.config = config
        self.settings = settings
        self.start_step = start_step
        self.last_eval = start_step
        self.last_checkpoint = start_step
        self._eval_env: Any = None

    # evaluation
    def evaluate(self, model: Any, step: int) -> None:
        from recsim_llm.envs.vector import SlateVectorEnv
        from recsim_llm.evaluation import rollout
        from recsim_llm.io import atomic_write_text

        s = self.settings
        if self._eval_env is None:
            self._eval_env = SlateVectorEnv(num_envs=s.eval_users, config=self.config)
        saved = _global_rng_state()
        policy = _EvalPolicy(model)
        try:
            returns = [
                float(
                    rollout(policy, self.config, seed, s.eval_users, env=self._eval_env)
                    .sessions["return"]
                    .mean()
                )
                for seed in s.eval_seeds
            ]
        finally:
            _set_global_rng_state(saved)
        path = self.dir / EVAL
        if path.is_file():
            text = path.read_text(encoding="utf-8")
        else:
            text = ",".join(["step", "mean_return", *(f"return_seed_{e}" for e in s.eval_seeds)])
            text += "\n"
        row = [str(step), repr(float(np.mean(returns))), *(repr(r) for r in returns)]
        atomic_write_text(path, text + ",".join(row) + "\n")
        self.last_eval = step

    # checkpoints
    def checkpoint(self, model: Any) -> None:
        from recsim_llm.io import atomic_write_directory, json_text

        step = int(model.num_timesteps)
        env = model.get_env().env
        logger = model.logger
        state = {
            "format": STATE_FORMAT,
            "step": step,
            "last_eval": self.last_eval,
            "rng": _global_rng_state(),
            "env_rng": env.np_random.bit_generator.state,
            "action_space_rng": model.action_space.np_random.bit_generator.state,
            "env": env,
            "last_obs": model._last_obs,
            "last_episode_starts": model._last_episode_starts,
            "ep_info_buffer": list(model.ep_info_buffer or []),
            "logger": {
                "values": dict(logger.name_to_value),
                "counts": dict(logger.name_to_count),
                "excluded": dict(logger.name_to_excluded),
            },
        }
        buffer = io.BytesIO()
        model.save(buffer)
        folder = self.dir / CHECKPOINTS
        atomic_write_directory(
            folder / f"step-{step:09d}",
            {
                MODEL: buffer.getvalue(),
                "model.json": json_text(model_metadata(model, "model", self.config)).encode(),
                STATE: pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL),
            },
        )
        self.last_checkpoint = step
        for _, old in _checkpoints(self.dir)[: -self.settings.keep_checkpoints]:
            hidden = old.with_name(f".{old.name}.del")
            old.rename(hidden)  # out of sight first: a kill mid-delete leaves no half checkpoint
            shutil.rmtree(hidden, ignore_errors=True)

    # the callback's hooks
    def at_rollout_start(self, model: Any) -> None:
        step = int(model.num_timesteps)
        if step == self.start_step:
            return  # the state the run started or resumed from
        s = self.settings
        if s.eval_every and step // s.eval_every > self.last_eval // s.eval_every:
            self.evaluate(model, step)
        if s.checkpoint_every and step // s.checkpoint_every > (
            self.last_checkpoint // s.checkpoint_every
        ):
            self.checkpoint(model)

    def at_training_end(self, model: Any) -> None:
        step = int(model.num_timesteps)
        if self.settings.eval_every and step != self.last_eval:
            self.evaluate(model, step)


def _run_callback(run: _Run) -> Any:
    from stable_baselines3.common.callbacks import BaseCallback

    class _RunCallback(BaseCallback):
        def _on_rollout_start(self) -> None:
            run.at_rollout_start(self.model)

        def _on_step(self) -> bool:
            return True

        def _on_training_end(self) -> None:
            run.at_training_end(self.model)

    return _RunCallback()


def _logger(run_dir: Path, formats: list[str]) -> Any:
    """SB3's logger writing ``progress.csv`` (appended to, for a resume) and TensorBoard files."""
    from stable_baselines3.common.logger import CSVOutputFormat, Logger, TensorBoardOutputFormat

    class _AppendingCSV(CSVOutputFormat):
        """SB3's CSV writer continuing an existing file (SB3's own truncates it)."""

        def __init__(self, filename: str) -> None:
            path = Path(filename)
            if not path.is_file() or path.stat().st_size == 0:
                super().__init__(filename)
                return
            self.file = open(path, "r+")  # noqa: SIM115 - SB3's writer closes it
            self.keys = self.file.readline().rstrip("\n").split(",")
            self.file.seek(0, 2)
            self.separator = ","
            self.quotechar = '"'

    outputs: list[Any] = [_AppendingCSV(str(run_dir / PROGRESS))]
    if "tensorboard" in formats:
        outputs.append(TensorBoardOutputFormat(str(run_dir / "tensorboard")))
    return Logger(str(run_dir), outputs)


def _cut_csv(path: Path, column: str, step: int) -> None:
    """Drop the rows of ``path`` logged after ``step`` (they are logged again on resume)."""
    from recsim_llm.io import atomic_write_text

    if not path.is_file():
        return
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    if not rows or column not in rows[0]:
        return
    index = rows[0].index(column)
    kept = [rows[0]] + [r for r in rows[1:] if r[index] and float(r[index]) <= step]
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(kept)
    atomic_write_text(path, out.getvalue())


def _clean_leftovers(run_dir: Path) -> None:
    """Remove what a kill left half-written inside the run (hidden temp files and folders)."""
    for folder in (run_dir, run_dir / CHECKPOINTS):
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            name = entry.name
            if name.startswith(".") and (".tmp" in name or name.endswith(".del")):
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)


def _resume_model(checkpoint: Path, settings: TrainSettings) -> tuple[Any, dict[str, Any]]:
    import stable_baselines3 as sb3

    from recsim_llm.envs.sb3 import SB3VecEnv

    state = pickle.loads((checkpoint / STATE).read_bytes())
    step = _checkpoint_step(checkpoint)
    if state.get("format") != STATE_FORMAT or state.get("step") != step:
        raise ValueError(f"checkpoint {checkpoint}: {STATE} does not match its folder's step")
    env = state["env"]
    venv = SB3VecEnv(env, flatten=settings.policy == "MlpPolicy")
    model = getattr(sb3, settings.algorithm).load(
        checkpoint / MODEL, env=venv, device="cpu", force_reset=False
    )
    if int(model.num_timesteps) != step:
        raise ValueError(f"checkpoint {checkpoint}: the model is at step {model.num_timesteps}")
    # Loading re-seeds everything from the model's seed and builds a fresh policy (drawing from
    # torch's generator); the checkpoint's states replace all of that.
    venv.seed(None)
    env.np_random.bit_generator.state = state["env_rng"]
    model.action_space.np_random.bit_generator.state = state["action_space_rng"]
    model._last_obs = state["last_obs"]
    model._last_episode_starts = state["last_episode_starts"]
    if model.ep_info_buffer is not None:
        model.ep_info_buffer.clear()
        model.ep_info_buffer.extend(state["ep_info_buffer"])
    _set_global_rng_state(state["rng"])
    return model, state


def train_run(
    run_dir: str | Path,
    config: EnvConfig,
    settings: TrainSettings,
    *,
    resume: bool = False,
    progress: bool = False,
    option: str = "--out",
) -> Any:
    """Train into run directory ``run_dir`` (see the module docstring); returns the model.

    Without ``resume`` the folder is (re)created: it must be missing, empty or a training run
    of ours (``recsim_llm.io``). With ``resume`` the run continues from its newest checkpoint;
    the settings must equal the saved ones. A run that already holds its final model is
    returned as it is.

    Raises:
        OutputError: ``run_dir`` is not ours to write, or another process is writing it.
        ValueError: a resume that cannot be done (see ``check_resume``).
    """
    import torch
    from stable_baselines3.common.callbacks import CallbackList

    from recsim_llm.agents.sb3 import _progress_callback
    from recsim_llm.io import claim_output, json_text, output_directory

    run_dir = Path(run_dir)
    with claim_output(run_dir, TRAIN_KIND, option=option):
        checkpoint = check_resume(run_dir, config, settings) if resume else None
        torch.set_num_threads(settings.threads)
        formats = _logger_formats()
        if resume and checkpoint is None:
            print(f"{run_dir} is complete ({MODEL}); nothing to resume", file=sys.stderr)
            return _load_final(run_dir, settings)
        if checkpoint is not None:
            _clean_leftovers(run_dir)
            saved = json.loads((run_dir / CONFIG).read_text(encoding="utf-8"))
            if saved.get("versions") != _versions():
                print(
                    f"recsim-llm: warning: {run_dir} was started with {saved.get('versions')}, "
                    f"resumed with {_versions()}; the resumed run may differ from an "
                    "uninterrupted one",
                    file=sys.stderr,
                )
            model, state = _resume_model(checkpoint, settings)
            start = int(state["step"])
            _cut_csv(run_dir / PROGRESS, _STEP_KEY, start)
            _cut_csv(run_dir / EVAL, "step", start)
        else:
            algo_kwargs = dict(settings.algo_kwargs)
            model = make_sb3_model(
                config,
                settings.algorithm,
                settings.n_envs,
                settings.seed,
                policy=settings.policy,
                encoder_prior=settings.encoder_prior,
                **algo_kwargs,
            )
            record = {
                "settings": run_settings(config, settings),
                "effective_hyperparameters": effective_hyperparameters(
                    settings.algorithm, **algo_kwargs
                ),
                "policy_class": f"{model.policy.__class__.__module__}."
                f"{model.policy.__class__.__qualname__}",
                "policy_kwargs": {k: repr(v) for k, v in (model.policy_kwargs or {}).items()},
                "torch_threads": torch.get_num_threads(),
                "logger_formats": formats,
                "versions": _versions(),
            }
            meta = {"algorithm": settings.algorithm, "policy": settings.policy}
            with output_directory(run_dir, TRAIN_KIND, meta=meta, option=option) as staging:
                (staging / CONFIG).write_text(json_text(record), encoding="utf-8")
            state, start = None, 0
        logger = _logger(run_dir, formats)
        if state is not None:
            logger.name_to_value.update(state["logger"]["values"])
            logger.name_to_count.update(state["logger"]["counts"])
            logger.name_to_excluded.update(state["logger"]["excluded"])
        model.set_logger(logger)
        run = _Run(run_dir, config, settings, start)
        if state is not None:
            run.last_eval = int(state["last_eval"])
        callbacks = [_run_callback(run)]
        remaining = max(settings.steps - start, 0)
        if progress:
            callbacks.insert(0, _progress_callback(remaining, f"train {settings.algorithm}"))
        model.learn(
            total_timesteps=remaining,
            callback=CallbackList(callbacks),
            reset_num_timesteps=start == 0,
            log_interval=1,
        )
        logger.close()
        save_sb3_model(model, run_dir / MODEL, config, option=option)
        return model


def _load_final(run_dir: Path, settings: TrainSettings) -> Any:
    import stable_baselines3 as sb3

    return getattr(sb3, settings.algorithm).load(run_dir / MODEL, device="cpu")


# -- several seeds --------------------------------------------------------------------------------
def seed_dir(out_dir: str | Path, seed: int) -> Path:
    """The run directory of ``seed`` inside a ``train_seeds`` folder: ``OUT/seed-<S>``."""
    return Path(out_dir) / f"seed-{int(seed)}"


@dataclass(frozen=True)
class SeedTask:
    """One seed of ``train_seeds``, as plain (picklable) values."""

    run_dir: str
    """Absolute path of the seed's run directory (a worker's working directory may differ)."""
    config: EnvConfig
    settings: TrainSettings
    """The run's settings, with this seed."""
    resume: bool = False
    """Continue from the run's newest checkpoint (``train_run(resume=True)``)."""
    progress: bool = False
    """A bar of user-steps on stderr (only useful in this process)."""


@dataclass(frozen=True)
class SeedResult:
    """What ``train_seed`` returns: the seed's final evaluation, read back from ``eval.csv``."""

    seed: int
    steps: int
    """User-steps the final model was trained for."""
    eval_step: int
    """Step of the last row of ``eval.csv`` (the final evaluation)."""
    final_return: float
    """Its mean deterministic return over the evaluation seeds."""
    eval_returns: tuple[float, ...]
    """Its return on each evaluation seed, in ``eval_seeds`` order."""
    seconds: float = 0.0


def _final_evaluation(run_dir: Path, eval_seeds: tuple[int, ...]) -> tuple[int, float, tuple]:
    with open(run_dir / EVAL, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise ValueError(f"{run_dir / EVAL} holds no evaluation")
    last = rows[-1]
    returns = tuple(float(last[f"return_seed_{e}"]) for e in eval_seeds)
    return int(last["step"]), float(last["mean_return"]), returns


def train_seed(task: SeedTask) -> SeedResult:
    """Train (or resume, or read back) one seed's run directory; runs in any process.

    Sets torch's thread count to ``task.settings.threads`` first: a worker process gets exactly
    the threads the run asks for, not whatever torch picks from the machine's cores.
    """
    import time

    import torch

    start = time.perf_counter()
    torch.set_num_threads(task.settings.threads)
    run_dir = Path(task.run_dir)
    model = train_run(
        run_dir, task.config, task.settings, resume=task.resume, progress=task.progress
    )
    step, final, returns = _final_evaluation(run_dir, task.settings.eval_seeds)
    return SeedResult(
        task.settings.seed,
        int(model.num_timesteps),
        step,
        final,
        returns,
        time.perf_counter() - start,
    )


def _seeds_record(config: EnvConfig, settings: TrainSettings, seeds: list[int]) -> dict[str, Any]:
    values = run_settings(config, settings)
    del values["seed"]
    return {"settings": {**values, "seeds": seeds}, "versions": _versions()}


def _check_seeds(seeds: Any) -> list[int]:
    from recsim_llm.grid import check_seeds

    return check_seeds(seeds)


def _plan_resume(out: Path, config: EnvConfig, per_seed: list[TrainSettings]) -> list[bool]:
    """Before any work: for each seed, whether its run resumes (True) or starts afresh (False).

    A seed whose folder is missing, or was killed before its first checkpoint, starts from step 0
    (the same run an uninterrupted one would be); a complete one is read back; one with a
    checkpoint resumes from it. Settings that differ from the saved ones are refused.
    """
    from recsim_llm.io import check_out_dir

    saved = _saved_settings(out, "a multi-seed training run")
    seeds = [s.seed for s in per_seed]
    differing = _differences(saved, _seeds_record(config, per_seed[0], seeds)["settings"])
    if differing:
        raise ValueError(
            f"cannot resume {out}: settings differ from its {CONFIG}: "
            + "; ".join(differing)
            + ". Resume with the same settings and seeds, or start a new run"
        )
    plan = []
    for settings in per_seed:
        run_dir = seed_dir(out, settings.seed)
        check_out_dir(run_dir, TRAIN_KIND, option=f"--out (seed {settings.seed})")
        started = (run_dir / CONFIG).is_file() and (
            (run_dir / MODEL).is_file() or latest_checkpoint(run_dir) is not None
        )
        if started:
            check_resume(run_dir, config, settings)  # refuses other settings
        plan.append(started)
    return plan


def _write_summary(out: Path, results: list[SeedResult]) -> Any:
    from recsim_llm.io import atomic_write_text
    from recsim_llm.stats import MIN_RELIABLE_RUNS, mean_estimate

    estimate = mean_estimate([r.final_return for r in results])
    lines = [",".join(SUMMARY_COLUMNS)]
    for r in results:
        lines.append(f"{r.seed},{r.steps},{r.eval_step},{r.final_return!r},,,,")
    low = "" if estimate.low is None else repr(float(estimate.low))
    high = "" if estimate.high is None else repr(float(estimate.high))
    lines.append(f"mean,,,{float(estimate.point)!r},{low},{high},{estimate.n},{estimate.reliable}")
    atomic_write_text(out / SUMMARY, "\n".join(lines) + "\n")
    md = [
        "| seed | user-steps | final evaluation return |",
        "|---|---|---|",
        *(f"| {r.seed} | {r.steps} | {r.final_return:.2f} |" for r in results),
        "",
        f"Mean over {estimate.n} seed{'s' if estimate.n > 1 else ''}: {estimate.format('.2f')}",
        "",
        f"The interval is a {estimate.confidence:.0%} percentile bootstrap over seeds "
        "(`recsim_llm.stats.mean_estimate`); one seed gives none, and under "
        f"{MIN_RELIABLE_RUNS} seeds it is flagged unreliable.",
    ]
    atomic_write_text(out / SUMMARY_MD, "\n".join(md) + "\n")
    return estimate


def train_seeds(
    out_dir: str | Path,
    config: EnvConfig,
    settings: TrainSettings,
    seeds: list[int],
    *,
    executor: Any = None,
    resume: bool = False,
    progress: bool = False,
    option: str = "--out",
) -> list[SeedResult]:
    """Train one run per seed into ``out_dir/seed-<S>/`` through ``executor``; write the summary.

    Everything is checked before any work: the seeds, every seed's settings (an evaluation seed
    must not be a training seed), ``out_dir`` (missing, empty or a ``"train-seeds"`` folder of
    ours) and, with ``resume``, the saved settings and every seed folder. Without ``resume`` the
    folder is (re)created; with it every unfinished seed continues (from its newest checkpoint,
    or from step 0 if it had none) and finished ones are read back.

    Args:
        out_dir: the multi-seed folder.
        config: the env config every seed trains on.
        settings: the run's settings; ``settings.seed`` is replaced by each seed.
        seeds: training seeds (distinct, >= 0).
        executor: a ``recsim_llm.grid`` executor (default: local, in this process).
        resume: continue an interrupted ``train_seeds`` folder.
        progress: a bar over seeds on stderr (and one over user-steps when training here).
        option: the option name used in error messages.

    Returns:
        One ``SeedResult`` per seed, in ``seeds`` order.

    Raises:
        OutputError: ``out_dir`` (or a seed folder) is not ours, or another process writes it.
        ValueError: bad seeds or settings, ``eval_every == 0`` (the summary needs each seed's
            final evaluation), or a resume that cannot be done.
    """
    from dataclasses import replace

    from recsim_llm.grid import LocalExecutor, map_tasks
    from recsim_llm.io import claim_output, json_text, output_directory

    seeds = _check_seeds(seeds)
    if not settings.eval_every:
        raise ValueError(
            "eval_every must be > 0 with several seeds: the summary compares each seed's final "
            "evaluation"
        )
    per_seed = [replace(settings, seed=seed) for seed in seeds]  # each checked here
    out = Path(out_dir).absolute()
    executor = executor if executor is not None else LocalExecutor()
    here = isinstance(executor, LocalExecutor) and executor.workers == 1
    with claim_output(out, SEEDS_KIND, option=option):
        if resume:
            plan = _plan_resume(out, config, per_seed)
        else:
            plan = [False] * len(seeds)
            meta = {"algorithm": settings.algorithm, "policy": settings.policy, "seeds": seeds}
            with output_directory(out, SEEDS_KIND, meta=meta, option=option) as staging:
                record = _seeds_record(config, settings, seeds)
                (staging / CONFIG).write_text(json_text(record), encoding="utf-8")
        tasks = [
            SeedTask(str(seed_dir(out, s.seed)), config, s, started, progress and here)
            for s, started in zip(per_seed, plan, strict=True)
        ]
        results = map_tasks(
            train_seed,
            tasks,
            executor,
            progress=progress,
            desc=f"train {settings.algorithm} seeds",
            unit="seed",
            label=lambda r: f"seed {r.seed}: {r.final_return:.1f}",
        )
        _write_summary(out, results)
    return results
