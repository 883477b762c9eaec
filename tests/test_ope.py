"""Off-policy evaluation (``recsim_llm.ope``): propensities, OBP's layout, estimators vs truth."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from recsim_llm.ope import (
    FEEDBACK_KEYS,
    EpsilonGreedySlates,
    OPEConfig,
    SlateLog,
    SlateRounds,
    bandit_feedback_bytes,
    collect_log,
    cross_fit_rewards,
    estimate_policy_value,
    load_bandit_feedback,
    obp_action_dist,
    obp_estimated_rewards,
    run_study,
    save_bandit_feedback,
    target_policy,
    to_bandit_feedback,
)

LOGGER = EpsilonGreedySlates(0.2, "popularity")


@pytest.fixture(scope="module")
def small_log():
    """120 rounds of the default world (60 user slots x 2 steps), seed 2."""
    return collect_log(120, LOGGER, ("popularity", "random"), n_users=60, seed=2, truth_samples=4)


def _tiny_rounds(n: int, c: int, k: int, seed: int = 0) -> SlateRounds:
    rng = np.random.default_rng(seed)
    return SlateRounds(
        context=rng.normal(size=(n, 3)),
        candidates=np.tile(np.arange(c), (n, 1)),
        candidate_features=rng.normal(size=(n, c, 2)),
        # Few distinct values: ties, broken by the lower candidate index.
        candidate_popularity=rng.integers(0, 3, size=(n, c)).astype(float),
        slate_size=k,
    )


# -- propensities ---------------------------------------------------------------------------------
@pytest.mark.parametrize("epsilon", [0.0, 0.3, 1.0])
@pytest.mark.parametrize(("c", "k"), [(4, 2), (5, 3)])
def test_propensities_match_a_brute_force_enumeration(epsilon, c, k):
    rounds = _tiny_rounds(6, c, k)
    policy = EpsilonGreedySlates(epsilon, "popularity")
    slates = np.array(list(itertools.permutations(range(c), k)))  # every ordered slate
    probs = np.stack(
        [policy.slate_probability(rounds, np.tile(s, (rounds.n_rounds, 1))) for s in slates],
        axis=1,
    )  # (n, P(c, k))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    # The position marginals are the enumeration's: P(item a at slot j) = sum of P(s), s_j = a.
    enumerated = np.zeros((rounds.n_rounds, k, c))
    for col, s in enumerate(slates):
        enumerated[:, np.arange(k), s] += probs[:, [col]]
    marginals = policy.position_marginals(rounds)
    np.testing.assert_allclose(marginals, enumerated, atol=1e-12)
    np.testing.assert_allclose(marginals.sum(axis=2), 1.0)
    # marginal() reads the same numbers for a given slate.
    drawn = policy.sample(rounds, np.random.default_rng(1))
    np.testing.assert_allclose(
        policy.marginal(rounds, drawn),
        marginals[np.arange(rounds.n_rounds)[:, None], np.arange(k), drawn],
    )


def test_sampled_slates_follow_the_stated_probabilities():
    rounds = _tiny_rounds(1, 4, 2)
    policy = EpsilonGreedySlates(0.3, "popularity")
    rng = np.random.default_rng(5)
    many = SlateRounds(
        np.repeat(rounds.context, 20000, axis=0),
        np.repeat(rounds.candidates, 20000, axis=0),
        np.repeat(rounds.candidate_features, 20000, axis=0),
        np.repeat(rounds.candidate_popularity, 20000, axis=0),
        2,
    )
    drawn = policy.sample(many, rng)
    codes = drawn[:, 0] * 4 + drawn[:, 1]
    freq = np.bincount(codes, minlength=16) / codes.size
    for s in itertools.permutations(range(4), 2):
        p = policy.slate_probability(rounds, np.array([s]))[0]
        assert abs(freq[s[0] * 4 + s[1]] - p) < 4 * np.sqrt(p * (1 - p) / codes.size) + 1e-9


# -- OBP's layout ---------------------------------------------------------------------------------
def test_bandit_feedback_has_obp_shapes_dtypes_and_round_trips(small_log, tmp_path):
    log, _ = small_log
    n, k = log.n_rounds, log.rounds.slate_size
    feedback = to_bandit_feedback(log)
    assert set(FEEDBACK_KEYS) <= set(feedback)
    rows = n * k
    assert feedback["n_rounds"] == rows and isinstance(feedback["n_rounds"], int)
    assert feedback["n_actions"] == log.item_features.shape[0] == 1400
    for key, dtype, shape in [
        ("action", np.int64, (rows,)),
        ("position", np.int64, (rows,)),
        ("reward", np.float64, (rows,)),
        ("pscore", np.float64, (rows,)),
        ("context", np.float64, (rows, 14)),
        ("action_context", np.float64, (1400, 8)),
        ("slate_id", np.int64, (rows,)),
        ("pscore_slate", np.float64, (rows,)),
    ]:
        assert feedback[key].dtype == dtype and feedback[key].shape == shape, key
    assert np.all((feedback["pscore"] > 0) & (feedback["pscore"] <= 1))
    assert np.all((feedback["pscore_slate"] > 0) & (feedback["pscore_slate"] <= 1))
    assert np.array_equal(feedback["position"][:k], np.arange(k))
    assert np.array_equal(feedback["action"].reshape(n, k), log.slate_items)
    # Each row's item is one of its round's candidates; a round has at most one rewarded slot.
    per_row = np.repeat(log.rounds.candidates, k, axis=0)
    assert (per_row == feedback["action"][:, None]).any(axis=1).all()
    assert ((feedback["reward"].reshape(n, k) > 0).sum(axis=1) <= 1).all()
    # The logging policy's marginal at the logged slot; the slate's probability per row.
    np.testing.assert_allclose(
        feedback["pscore"].reshape(n, k), LOGGER.marginal(log.rounds, log.slates)
    )

    path = save_bandit_feedback(tmp_path / "feedback.npz", feedback)
    loaded = load_bandit_feedback(path)
    assert sorted(loaded) == sorted(feedback)
    for key, value in feedback.items():
        assert np.array_equal(loaded[key], value), key
    assert not list(tmp_path.glob(".*"))  # atomic: no temp file left

    with np.load(path) as data:
        partial = {key: data[key] for key in data.files if key != "pscore"}
    np.savez(tmp_path / "broken.npz", **partial)
    with pytest.raises(ValueError, match=r"broken\.npz: missing keys \['pscore'\]"):
        load_bandit_feedback(tmp_path / "broken.npz")


# -- unbiasedness on a synthetic case with a known answer -----------------------------------------
def _mnl_click_probabilities(utility: np.ndarray, slates: np.ndarray) -> np.ndarray:
    """(n, K + 1) click probabilities of a multinomial logit with position bias and no click."""
    n, k = slates.shape
    u = np.take_along_axis(utility, slates, axis=1) - 0.7 * np.arange(k)
    expu = np.exp(np.concatenate([u, np.zeros((n, 1))], axis=1))
    return expu / expu.sum(axis=1, keepdims=True)


def test_ipw_and_dr_are_unbiased_on_a_synthetic_case_with_known_truth():
    """Rewards with interactions between slots (one click per slate): the truth is enumerated."""
    n, c, k = 150, 4, 2
    rounds = _tiny_rounds(n, c, k, seed=3)
    utility = 2.0 * (
        np.random.default_rng(4).normal(size=(n, c)) + rounds.candidate_features[:, :, 0]
    )
    all_slates = np.array(list(itertools.permutations(range(c), k)))
    truths = {}
    for name, target in [
        ("random", EpsilonGreedySlates(1.0)),
        ("popularity", EpsilonGreedySlates(0.0)),
        ("popularity-eps0.5", EpsilonGreedySlates(0.5)),
    ]:
        value = np.zeros(n)
        for s in all_slates:
            slates = np.tile(s, (n, 1))
            click = 1.0 - _mnl_click_probabilities(utility, slates)[:, -1]
            value += target.slate_probability(rounds, slates) * click
        truths[name] = (target, value.mean())

    logger = EpsilonGreedySlates(0.4, "popularity")
    errors: dict[tuple[str, str], list[float]] = {}
    for seed in range(200):
        rng = np.random.default_rng(seed)
        slates = logger.sample(rounds, rng)
        probs = _mnl_click_probabilities(utility, slates)
        draw = rng.random(n)[:, None] < np.cumsum(probs, axis=1)
        position = np.argmax(draw, axis=1)
        reward = np.zeros((n, k))
        clicked = np.flatnonzero(position < k)
        reward[clicked, position[clicked]] = 1.0
        log = SlateLog(
            rounds=rounds,
            slates=slates,
            pscore_position=logger.marginal(rounds, slates),
            pscore_slate=logger.slate_probability(rounds, slates),
            click_position=np.where(position < k, position, -1),
            position_reward=reward,
            item_features=np.zeros((c, 2)),
            reward="click",
            logger=logger,
        )
        for name, (target, truth) in truths.items():
            found = estimate_policy_value(
                log, target, estimators=("ipw", "dr", "dm"), n_bootstrap=10, seed=seed
            )
            for estimator, est in found.items():
                errors.setdefault((name, estimator), []).append(est.value - truth)
    z = {}
    for key, err in errors.items():
        err = np.asarray(err)
        z[key] = err.mean() / (err.std(ddof=1) / np.sqrt(err.size))
    for name in truths:
        for estimator in ("ipw", "dr"):
            assert abs(z[(name, estimator)]) < 3.5, (name, estimator, z[(name, estimator)])
    # The check has power: the linear reward model cannot fit the logit's competition between
    # slots, and DM's bias (about 0.01 clicks per round) is detected.
    assert abs(z[("random", "dm")]) > 3.5


# -- the default world ----------------------------------------------------------------------------
def test_a_large_default_world_log_puts_the_truth_inside_ipw_and_dr_intervals():
    log, truth = collect_log(
        16000, LOGGER, ("popularity", "random"), n_users=1000, seed=11, truth_samples=8
    )
    assert log.n_rounds == 16000
    assert truth.mc_standard_error("popularity") == 0.0  # the greedy slate is exact
    assert 0.0 < truth.mc_standard_error("random") < 0.01
    for name in ("popularity", "random"):
        found = estimate_policy_value(
            log, target_policy(name), estimators=("ipw", "dr"), confidence=0.99, seed=1
        )
        for estimator, est in found.items():
            assert est.low < est.value < est.high
            assert est.covers(truth.mean(name)), (name, estimator, est, truth.mean(name))


def test_error_shrinks_with_the_log_size():
    config = OPEConfig(
        log_sizes=(500, 8000),
        n_logs=4,
        targets=("popularity", "random"),
        estimators=("ipw", "snipw", "dr", "dm"),
        n_users=500,
        truth_samples=4,
        n_bootstrap=20,
    )
    result = run_study(config)
    rows = {(r["target"], r["log_size"], r["estimator"]): r for r in result.summary}
    assert len(result.estimates) == 2 * 2 * 4 * 4
    for target in config.targets:
        for estimator in ("ipw", "snipw", "dr"):
            small = rows[(target, 500, estimator)]["rmse"]
            large = rows[(target, 8000, estimator)]["rmse"]
            assert large < 0.6 * small, (target, estimator, small, large)
        width = {
            s: rows[(target, s, "ipw")]["high"] - rows[(target, s, "ipw")]["low"]
            for s in (500, 8000)
        }
        assert width[8000] < 0.5 * width[500]
    assert result.example_log is not None and result.example_log.n_rounds == 500


# -- bad arguments --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"log_sizes": ()}, "log_sizes must name at least one size"),
        ({"log_sizes": (5,)}, "log_sizes must be an integer >= 10"),
        ({"log_sizes": (100, 100)}, "log_sizes must not repeat"),
        ({"n_logs": 0}, "n_logs must be an integer >= 1"),
        ({"epsilon": 1.5}, r"epsilon must be a number in \[0, 1\]"),
        ({"logger_score": "likes"}, "score must be one of popularity, affinity"),
        ({"targets": ("nope",)}, "unknown target policy 'nope'"),
        ({"targets": ()}, "targets must name at least one"),
        ({"estimators": ("ipw", "magic")}, "unknown estimator 'magic'"),
        ({"reward": "likes"}, "reward must be one of watch_time, click"),
        ({"scenario": "mars"}, "unknown scenario 'mars'"),
        ({"truth_samples": 1}, "truth_samples must be an integer >= 2"),
        ({"n_bootstrap": 3}, "n_bootstrap must be an integer >= 10"),
        ({"confidence": 1.0}, r"confidence must be in \(0, 1\)"),
        ({"ridge": -1.0}, "ridge must be >= 0"),
        ({"n_folds": 0}, "n_folds must be an integer >= 1"),
        ({"log_sizes": (10,), "n_folds": 11}, "n_folds must be <= the smallest log size"),
        ({"log_sizes": (10**13,)}, "log_sizes too large"),
    ],
)
def test_bad_study_settings_raise_naming_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        OPEConfig(**kwargs)


def test_bad_inputs_raise_clear_errors(small_log, tmp_path):
    log, _ = small_log
    rounds = log.rounds
    with pytest.raises(ValueError, match="n_rounds must be an integer >= 1"):
        collect_log(0, LOGGER)
    with pytest.raises(ValueError, match="reward must be one of"):
        collect_log(10, LOGGER, reward="likes")
    with pytest.raises(ValueError, match="unknown target policy 'x'"):
        collect_log(10, LOGGER, ("x",))
    with pytest.raises(ValueError, match="must not repeat a candidate"):
        LOGGER.slate_probability(rounds, np.zeros((rounds.n_rounds, 5), dtype=int))
    with pytest.raises(ValueError, match="slates must have shape"):
        LOGGER.marginal(rounds, log.slates[:, :2])
    with pytest.raises(ValueError, match="unknown estimator 'x'"):
        estimate_policy_value(log, LOGGER, estimators=("x",))
    with pytest.raises(ValueError, match="q_hat must have shape"):
        estimate_policy_value(log, LOGGER, estimators=("dm",), q_hat=np.zeros((1, 1, 1)))
    with pytest.raises(ValueError, match="pscore_position must be"):
        SlateLog(
            rounds,
            log.slates,
            np.zeros_like(log.pscore_position),
            log.pscore_slate,
            log.click_position,
            log.position_reward,
            log.item_features,
        )
    with pytest.raises(ValueError, match="candidate_popularity must have shape"):
        SlateRounds(rounds.context, rounds.candidates, rounds.candidate_features, np.zeros(3), 5)
    with pytest.raises(ValueError, match="path must end in .npz"):
        save_bandit_feedback(tmp_path / "x.txt", to_bandit_feedback(log))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_bandit_feedback(tmp_path / "missing.npz")
    (tmp_path / "corrupt.npz").write_bytes(b"not a zip archive")
    with pytest.raises(ValueError, match=r"corrupt\.npz' is not a readable \.npz"):
        load_bandit_feedback(tmp_path / "corrupt.npz")
    good = bandit_feedback_bytes(to_bandit_feedback(log))
    (tmp_path / "truncated.npz").write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match=r"truncated\.npz' is not a readable \.npz"):
        load_bandit_feedback(tmp_path / "truncated.npz")
    np.savez(tmp_path / "pickled.npz", action=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match=r"pickled\.npz' is not a readable \.npz"):
        load_bandit_feedback(tmp_path / "pickled.npz")


# -- the command ----------------------------------------------------------------------------------
TINY = ["--log-sizes", "200,400", "--logs", "2", "--users", "100", "--bootstrap", "20"]


def test_cli_writes_one_marked_folder_and_refuses_what_is_not_ours(tmp_path, capsys):
    from recsim_llm.cli import main
    from recsim_llm.io import read_marker

    out = tmp_path / "ope"
    assert main(["ope", *TINY, "--targets", "popularity,random", "--out", str(out)]) == 0
    assert read_marker(out)["kind"] == "ope"
    names = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert names == [
        "bandit_feedback.npz",
        "config.json",
        "estimates.csv",
        "ope.png",
        "summary.csv",
        "table.md",
    ]
    table = (out / "table.md").read_text()
    assert "| random | 400 | dr |" in table and "| popularity | 200 | iips |" in table
    assert len((out / "estimates.csv").read_text().splitlines()) == 1 + 2 * 2 * 2 * 6
    assert json.loads((out / "config.json").read_text())["ope"]["log_sizes"] == [200, 400]
    assert load_bandit_feedback(out / "bandit_feedback.npz")["n_rounds"] == 200 * 5
    capsys.readouterr()

    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    assert main(["ope", *TINY, "--out", str(foreign)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and f"recsim-llm ope: error: --out {foreign}" in captured.err
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]

    for args, message in [
        (["--log-sizes", "100,5"], "log_sizes must be an integer >= 10"),
        (["--targets", "popularity,oracle"], "unknown target policy 'oracle'"),
        (["--epsilon", "2"], "epsilon must be a number in [0, 1]"),
    ]:
        never = tmp_path / "never"
        assert main(["ope", *TINY, *args, "--out", str(never)]) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and message in captured.err
        assert not never.exists()


# -- Open Bandit Pipeline's own estimators on the exported arrays ---------------------------------
def test_obp_estimators_on_the_exported_arrays_agree_with_ours(small_log, tmp_path):
    pytest.importorskip("obp")
    from obp.ope import (
        DirectMethod,
        DoublyRobust,
        InverseProbabilityWeighting,
        SlateIndependentIPS,
        SlateStandardIPS,
    )

    log, _ = small_log
    k = log.rounds.slate_size
    feedback = load_bandit_feedback(
        save_bandit_feedback(tmp_path / "feedback.npz", to_bandit_feedback(log))
    )
    q_hat = cross_fit_rewards(log, seed=0)
    rewards_by_model = obp_estimated_rewards(log, q_hat)
    rows = dict(
        reward=feedback["reward"],
        action=feedback["action"],
        position=feedback["position"],
        pscore=feedback["pscore"],
    )
    for name in ("random", "popularity", "popularity-eps0.5", "affinity"):
        target = target_policy(name)
        ours = estimate_policy_value(log, target, q_hat=q_hat, n_bootstrap=10)
        action_dist = obp_action_dist(log, target)
        # Per-position rows: OBP's IPW / DM / DR average over rows; ours sum over the slots.
        ipw = InverseProbabilityWeighting().estimate_policy_value(**rows, action_dist=action_dist)
        assert ipw * k == pytest.approx(ours["iips"].value, rel=1e-9, abs=1e-12)
        dm = DirectMethod().estimate_policy_value(
            action_dist=action_dist,
            estimated_rewards_by_reg_model=rewards_by_model,
            position=feedback["position"],
        )
        assert dm * k == pytest.approx(ours["dm"].value, rel=1e-9)
        dr = DoublyRobust().estimate_policy_value(
            **rows, action_dist=action_dist, estimated_rewards_by_reg_model=rewards_by_model
        )
        assert dr * k == pytest.approx(ours["idr"].value, rel=1e-9)
        # OBP's slate estimators: the whole-slate weight (ours: ipw) and the independent one.
        slate_prob = np.repeat(target.slate_probability(log.rounds, log.slates), k)
        sips = SlateStandardIPS(len_list=k).estimate_policy_value(
            slate_id=feedback["slate_id"],
            reward=feedback["reward"],
            position=feedback["position"],
            pscore=feedback["pscore_slate"],
            evaluation_policy_pscore=slate_prob,
        )
        assert sips == pytest.approx(ours["ipw"].value, rel=1e-9, abs=1e-12)
        iips = SlateIndependentIPS(len_list=k).estimate_policy_value(
            slate_id=feedback["slate_id"],
            reward=feedback["reward"],
            position=feedback["position"],
            pscore_item_position=feedback["pscore"],
            evaluation_policy_pscore_item_position=target.marginal(log.rounds, log.slates).reshape(
                -1
            ),
        )
        assert iips == pytest.approx(ours["iips"].value, rel=1e-9, abs=1e-12)
