"""The cold-item asymmetry benchmark: hidden-truth oracles that know every, the warm or no
item's appeal, scored like the encoder table; its arguments are checked before any work."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from bench_loader import BENCHMARKS, load_benchmark

BENCH = BENCHMARKS / "cold_item_asymmetry.py"


def _module():
    return load_benchmark("cold_item_asymmetry")


def test_oracle_replaces_only_the_unknown_appeal_terms():
    mod = _module()
    utility = np.array([[10.0, 20.0]])
    appeal = np.array([[1.0, 2.0]])
    known = np.array([[True, False]])
    # The unknown item's appeal (2.0, weight 3) becomes the mean (0.5): 20 - 6 + 1.5.
    np.testing.assert_allclose(mod.oracle_scores(utility, appeal, 3.0, known, 0.5), [[10.0, 15.5]])


def test_appeal_is_known_for_every_the_warm_seen_or_no_item():
    from recsim_llm.lm.evaluate import NEW_METRIC

    mod = _module()
    assert mod.SEGMENTS[-1] == ("cold_items", NEW_METRIC)
    shown = np.array([[0, 1, 2, 3]])
    seen = np.array([True, True, False, True])  # item 2 never shown in training
    cold = np.array([False, True, False, False])  # item 1 held out
    known = mod.appeal_known(shown, seen, cold)
    assert known[mod.VARIANTS[0]].tolist() == [[True, True, True, True]]
    assert known[mod.VARIANTS[1]].tolist() == [[True, False, False, True]]
    assert known[mod.VARIANTS[2]].tolist() == [[False, False, False, False]]


def test_table_on_tiny_logs(logs):
    from recsim_llm.lm import evaluate as E
    from recsim_llm.lm.logs import load_logs, split_logs

    mod = _module()
    rows = mod.asymmetry_table(str(logs), [0], 0.3)
    assert [r["variant"] for r in rows] == list(mod.VARIANTS)
    every, warm, none = rows
    # Knowing every item's appeal is the hidden full utility ceiling of the encoder table.
    data = load_logs(logs)
    split = split_logs(data, "user", 0.1, 0.2, 0.3, 0)
    ev = E.build_eval_set(data, split, "click", 2000, 0)
    full = E.score_metrics(ev, E.load_hidden(logs, data)["utility"][ev.rows], shown_only=True)
    assert every["all:row_auc"][0] == pytest.approx(full["all"]["row_auc"][0])
    # Among new items, the warm-only and no-item oracles score the cold items alike: no
    # difference at all, in the point and in every resample.
    key = "cold_items:row_auc_among_new"
    assert warm[key][0] == pytest.approx(none[key][0])
    assert warm[key + ":minus_none"] == pytest.approx([0.0, 0.0, 0.0], abs=1e-12)
    # The difference is reported for the warm-only oracle alone.
    assert "all:row_auc:minus_none" in warm and "all:row_auc:minus_none" not in none
    assert warm["all:row_auc:minus_none"][0] == pytest.approx(
        warm["all:row_auc"][0] - none["all:row_auc"][0]
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cold-item-fraction", "0"], "--cold-item-fraction must be in (0, 1)"),
        (["--cold-item-fraction", "1.5"], "--cold-item-fraction must be in (0, 1)"),
        (["--seeds", "0", "-1"], "--seeds must be non-negative"),
    ],
)
def test_refuses_bad_arguments_before_work(tmp_path, logs, args, message):
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--logs", str(logs), *args],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and message in proc.stderr


def test_refuses_a_folder_without_logs_or_hidden_fields(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--logs", str(tmp_path)], capture_output=True, text=True
    )
    assert proc.returncode == 2 and "is not a logs directory" in proc.stderr
    (tmp_path / "impressions.jsonl").write_text('{"user": 0, "t": 0}\n')
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--logs", str(tmp_path)], capture_output=True, text=True
    )
    assert proc.returncode == 2 and "no hidden fields" in proc.stderr
    (tmp_path / "impressions.jsonl").write_text('{"user": 0, "t": 0, "hidden": {}}\n')
    for text in (
        "not json",
        '{"env_config": {}}',
        '{"env_config": {"world": {"choice": {"appeal_weight": "x"}}}}',
    ):
        (tmp_path / "config.json").write_text(text)
        proc = subprocess.run(
            [sys.executable, str(BENCH), "--logs", str(tmp_path)], capture_output=True, text=True
        )
        assert proc.returncode == 2 and "config.json" in proc.stderr, text
