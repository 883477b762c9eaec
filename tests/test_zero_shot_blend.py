"""The zero-shot blend benchmark: two weights fit on warm shown items of validation rows of the
encoder's own split, differences to zero-shot MiniLM per column, bad input refused before work."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from bench_loader import BENCHMARKS, load_benchmark

BENCH = BENCHMARKS / "zero_shot_blend.py"


def _module():
    return load_benchmark("zero_shot_blend")


def test_blend_fits_on_warm_validation_items_of_the_encoders_split(logs, lora_dir, monkeypatch):
    from recsim_llm.lm import evaluate as E
    from recsim_llm.lm.logs import load_logs
    from recsim_llm.lm.store import load_encoder

    mod = _module()
    assert mod.COLUMNS[-1] == ("cold_items", E.NEW_METRIC)
    seen = {}
    fit = E.fit_logistic

    def spy(x, y, *args, **kwargs):
        seen["x"], seen["y"] = x, y
        return fit(x, y, *args, **kwargs)

    monkeypatch.setattr(E, "fit_logistic", spy)
    out = mod.blend(str(logs), str(lora_dir), val_rows=10)
    # The fit saw exactly the warm shown items of 10 validation rows of the encoder's split.
    data = load_logs(logs)
    split = E._split_of(data, load_encoder(lora_dir).config["finetune"])
    cold = split.cold_mask(data.n_items)
    assert split.val.size > 10 and cold.any()
    seed = load_encoder(lora_dir).config["finetune"]["seed"]
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xB1E7D]))
    val = np.sort(rng.choice(split.val, 10, replace=False))
    assert not np.isin(val, split.test).any()
    shown = data.slates[val]
    assert cold[shown].any()  # the sample does show cold items: they must stay out of the fit
    assert seen["x"].shape == ((~cold[shown]).sum(), 2) and seen["y"].size == seen["x"].shape[0]
    np.testing.assert_array_equal(seen["y"], E.labels(data, "click")[val][~cold[shown]])
    w = out["weights"]
    assert np.isfinite(w["fast"]) and np.isfinite(w["zero_shot"])
    assert set(out["methods"]) == {"encoder fast", "blend"}
    for row in out["methods"].values():
        point, lo, hi = row["all:row_auc"]
        assert np.isfinite(point) and lo <= point <= hi
    # Seeded sample: the same inputs give the same weights; another sample size other ones.
    monkeypatch.setattr(E, "fit_logistic", fit)
    assert mod.blend(str(logs), str(lora_dir), val_rows=10)["weights"] == w
    assert mod.blend(str(logs), str(lora_dir), val_rows=12)["weights"] != w


def test_blend_refuses_before_work(tmp_path, logs, lora_dir):
    from test_movielens_data import write_grouplens

    from recsim_llm.lm.logs import write_behaviour_logs, write_movielens_logs

    mod = _module()
    with pytest.raises(ValueError, match="val_rows must be an integer >= 10"):
        mod.blend(str(logs), str(lora_dir), val_rows=0)
    other = write_behaviour_logs(tmp_path / "other", n_users=24, n_steps=8, seed=4)
    with pytest.raises(ValueError, match="are not the logs .* was trained on"):
        mod.blend(str(other), str(lora_dir), val_rows=10)
    ml = write_movielens_logs(write_grouplens(tmp_path / "ml"), tmp_path / "ml-logs")
    with pytest.raises(ValueError, match="rows show one item"):
        mod.blend(str(ml), str(lora_dir), val_rows=10)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--val-rows", "3"], "--val-rows must be >= 10"),
        (["--encoders", "nowhere"], "is not an encoder directory"),
        (["--logs", "nowhere"], "is not a logs directory"),
    ],
)
def test_cli_refuses_bad_arguments(logs, lora_dir, args, message):
    base = {"--logs": str(logs), "--encoders": str(lora_dir)}
    base[args[0]] = args[1]
    argv = [a for kv in base.items() for a in kv]
    proc = subprocess.run([sys.executable, str(BENCH), *argv], capture_output=True, text=True)
    assert proc.returncode == 2 and message in proc.stderr
