"""The projection's start: PCA whitening of the items, optionally with a click-prior direction."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from recsim_llm.lm.finetune import (  # noqa: E402
    click_prior_direction,
    slate_prior_direction,
    whiten_projection,
)


class _Model:
    """What whiten_projection touches: ``dim``, ``hidden`` and the ``proj`` Linear."""

    def __init__(self, hidden: int, dim: int) -> None:
        self.hidden, self.dim = hidden, dim
        self.proj = torch.nn.Linear(hidden, dim)


def _project(model: _Model, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model.proj(torch.from_numpy(x.astype(np.float32))).numpy().astype(np.float64)


def _items(n: int = 400, hidden: int = 24, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    scales = np.linspace(3.0, 0.5, hidden)  # anisotropic, like raw LM outputs
    return rng.standard_normal((n, hidden)) * scales + rng.standard_normal(hidden)


def test_whitening_gives_centred_uncorrelated_unit_variance_coordinates():
    x = _items()
    model = _Model(x.shape[1], 8)
    whiten_projection(model, x)
    z = _project(model, x)
    np.testing.assert_allclose(z.mean(0), 0.0, atol=1e-4)
    np.testing.assert_allclose(np.cov(z.T, bias=True), np.eye(8), atol=1e-3)


def test_prior_direction_is_the_last_coordinate_and_the_rest_are_orthogonal_to_it():
    x = _items(seed=1)
    rng = np.random.default_rng(2)
    d = rng.standard_normal(x.shape[1])
    model = _Model(x.shape[1], 8)
    whiten_projection(model, x, prior=d)
    z = _project(model, x)
    score = (x - x.mean(0)) @ d

    def explained(coords: np.ndarray) -> float:
        """R² of the prior's score regressed on the coordinates."""
        a = np.c_[coords, np.ones(len(coords))]
        fit = a @ np.linalg.lstsq(a, score, rcond=None)[0]
        return 1.0 - np.var(score - fit) / np.var(score)

    np.testing.assert_allclose(np.cov(z.T, bias=True), np.eye(8), atol=1e-3)  # still whitened
    assert explained(z) > 0.9999  # the prior's score is a linear read-out of the coordinates
    np.testing.assert_allclose(z[:, :7], _plain(x, 8)[:, :7], atol=1e-3)  # the first 7 are PCA's
    assert explained(_plain(x, 8)) < 0.95  # plain whitening loses part of it


def _plain(x: np.ndarray, dim: int) -> np.ndarray:
    model = _Model(x.shape[1], dim)
    whiten_projection(model, x)
    return _project(model, x)


def test_click_prior_direction_recovers_a_planted_click_direction():
    rng = np.random.default_rng(3)
    n_items, hidden = 300, 16
    x = rng.standard_normal((n_items, hidden))
    truth = np.zeros(hidden)
    truth[5] = 1.0
    p = 1.0 / (1.0 + np.exp(-(-2.0 + 1.5 * x @ truth)))
    slates = rng.integers(n_items, size=(20_000, 5))
    clicks = (rng.random(slates.shape) < p[slates]).astype(np.float32)
    items = np.arange(n_items)
    beta = click_prior_direction(x, slates, clicks, items)
    cosine = beta @ truth / np.linalg.norm(beta)
    assert cosine > 0.9
    # It is a direction of the text space: held-out items are ranked by it too.
    held = rng.standard_normal((200, hidden))
    ph = 1.0 / (1.0 + np.exp(-(-2.0 + 1.5 * held @ truth)))
    assert np.corrcoef(held @ beta, ph)[0, 1] > 0.8


def test_bad_prior_inputs_are_refused():
    x = _items(n=60, hidden=12)
    model = _Model(12, 4)
    with pytest.raises(ValueError, match="prior must be"):
        whiten_projection(model, x, prior=np.zeros(12))
    with pytest.raises(ValueError, match="prior must be"):
        whiten_projection(model, x, prior=np.ones(11))
    slates = np.zeros((10, 5), dtype=np.int64)
    with pytest.raises(ValueError, match="both clicks and non-clicks"):
        click_prior_direction(x, slates, np.zeros((10, 5)), np.arange(60))


def test_prior_row_stays_uncorrelated_when_the_spread_floor_applies():
    # Spreads falling far below 5% of the top one: the floor scales those directions as if
    # they had 5% (variance under 1), and the prior row is still orthogonal to all of them.
    rng = np.random.default_rng(4)
    scales = np.geomspace(10.0, 0.01, 24)
    x = rng.standard_normal((500, 24)) * scales
    d = rng.standard_normal(24)
    model = _Model(24, 20)
    whiten_projection(model, x, prior=d)
    z = _project(model, x)
    assert np.var(z[:, :19], axis=0).min() < 0.5  # the floor did apply
    corr = np.corrcoef(z.T)[-1, :-1]
    assert np.abs(corr).max() < 1e-3
    score = (x - x.mean(0)) @ d
    a = np.c_[z, np.ones(len(z))]
    fit = a @ np.linalg.lstsq(a, score, rcond=None)[0]
    assert np.var(score - fit) / np.var(score) < 1e-6


def test_prior_direction_needs_the_whitened_two_tower_start():
    from recsim_llm.lm.finetune import FinetuneConfig

    FinetuneConfig(prior_direction=True)  # the default start: fine
    for bad in (
        {"whiten": False},
        {"objective": "pointwise"},
        {"proj_dim": 0},
        {"init_from": "some/encoder"},
    ):
        with pytest.raises(ValueError, match="prior_direction sets the whitened projection"):
            FinetuneConfig(prior_direction=True, **bad)
    with pytest.raises(ValueError, match="prior_direction must be True or False"):
        FinetuneConfig(prior_direction="yes")


def test_finetune_cli_bool_fields_are_on_off_flags():
    import argparse

    from recsim_llm.lm.finetune_cli import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    base = ["--out", "x"]
    assert parser.parse_args(base).prior_direction is False
    assert parser.parse_args([*base, "--prior-direction"]).prior_direction is True
    assert parser.parse_args([*base, "--no-prior-direction"]).prior_direction is False
    with pytest.raises(SystemExit):
        parser.parse_args([*base, "--prior-direction", "False"])  # no value: it is a switch


def test_slate_prior_direction_recovers_a_planted_direction_whatever_the_exposure():
    torch.manual_seed(0)
    rng = np.random.default_rng(5)
    n_items, hidden = 200, 12
    x = rng.standard_normal((n_items, hidden))
    truth = np.zeros(hidden)
    truth[3] = 1.0
    # Exposure unrelated to the truth: the first 40 items are shown ten times as often.
    weight = np.where(np.arange(n_items) < 40, 10.0, 1.0)
    slates = np.stack(
        [rng.choice(n_items, 5, replace=False, p=weight / weight.sum()) for _ in range(6000)]
    )
    utility = 1.5 * x[slates] @ truth
    p = np.exp(utility) / np.exp(utility).sum(axis=1, keepdims=True)
    chosen = np.array([rng.choice(5, p=row) for row in p])
    clicks = np.zeros(slates.shape, dtype=np.float32)
    clicks[np.arange(len(slates)), chosen] = 1.0
    beta = slate_prior_direction(x, slates, clicks, np.arange(n_items))
    assert beta @ truth / np.linalg.norm(beta) > 0.95
    often = np.arange(n_items) < 40
    score = x @ beta
    # Shown often is not scored up: the same truth gives the same score on both groups.
    resid = score - np.polyval(np.polyfit(x @ truth, score, 1), x @ truth)
    assert abs(resid[often].mean() - resid[~often].mean()) < 0.1 * score.std()
    with pytest.raises(ValueError, match="both clicks and non-clicks"):
        slate_prior_direction(x, slates, np.zeros_like(clicks), np.arange(n_items))


def test_prior_fit_is_checked():
    from recsim_llm.lm.finetune import FinetuneConfig

    assert FinetuneConfig(prior_direction=True, prior_fit="slate").prior_fit == "slate"
    with pytest.raises(ValueError, match="prior_fit must be 'rate' or 'slate'"):
        FinetuneConfig(prior_fit="ctr")
    with pytest.raises(ValueError, match="prior_fit 'slate' needs prior_direction=True"):
        FinetuneConfig(prior_fit="slate")
