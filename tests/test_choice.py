"""Choice models: probabilities are a distribution; sampling follows them."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from recsim_llm.world.choice import Cascade, MultinomialLogit

utilities = arrays(
    np.float64,
    st.tuples(st.integers(1, 8), st.integers(1, 10)),
    elements=st.floats(-30, 30, allow_nan=False),
)


@settings(max_examples=60, deadline=None)
@given(u=utilities, no_click=st.floats(-30, 30), cont=st.floats(0.0, 1.0))
def test_probabilities_sum_to_one(u, no_click, cont):
    nc = np.full(u.shape[0], no_click)
    for model in (MultinomialLogit(), Cascade(cont)):
        p = model.probabilities(u, nc)
        assert p.shape == (u.shape[0], u.shape[1] + 1)
        assert np.all(p >= -1e-12)
        np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-9)


def test_mnl_sampling_matches_probabilities():
    u = np.tile(np.array([[1.0, 0.5, -1.0]]), (200_000, 1))
    nc = np.full(u.shape[0], 0.2)
    model = MultinomialLogit()
    p = model.probabilities(u[:1], nc[:1])[0]
    pos = model.sample(u, nc, np.random.default_rng(0))
    freq = np.array([(pos == j).mean() for j in range(3)] + [(pos == -1).mean()])
    np.testing.assert_allclose(freq, p, atol=0.005)


def test_cascade_prefers_top_slots_and_can_skip():
    u = np.zeros((100_000, 4))
    nc = np.zeros(u.shape[0])
    model = Cascade(0.5)
    p = model.probabilities(u[:1], nc[:1])[0]
    assert p[0] > p[1] > p[2] > p[3]
    pos = model.sample(u, nc, np.random.default_rng(1))
    np.testing.assert_allclose((pos == -1).mean(), p[-1], atol=0.01)
