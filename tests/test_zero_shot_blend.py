"""The zero-shot blend benchmark: two weights fit on validation rows of the encoder's own split,
differences to zero-shot MiniLM per column, arguments checked before any work."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "zero_shot_blend.py"


def _module():
    spec = importlib.util.spec_from_file_location("zero_shot_blend", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_blend_on_the_tiny_encoder(logs, lora_dir):
    from recsim_llm.lm.evaluate import NEW_METRIC

    mod = _module()
    assert mod.COLUMNS[-1] == ("cold_items", NEW_METRIC)
    out = mod.blend(str(logs), str(lora_dir), val_rows=200)
    w = out["weights"]
    assert np.isfinite(w["fast"]) and np.isfinite(w["zero_shot"])
    assert set(out["methods"]) == {"encoder fast", "blend"}
    for row in out["methods"].values():
        point, lo, hi = row["all:row_auc"]
        assert np.isfinite(point) and lo <= point <= hi
    # The difference of the blend and of the encoder alone share the zero-shot reference.
    enc, bl = out["methods"]["encoder fast"], out["methods"]["blend"]
    ref_enc = enc["all:row_auc:value"] - enc["all:row_auc"][0]
    ref_bl = bl["all:row_auc:value"] - bl["all:row_auc"][0]
    assert ref_enc == pytest.approx(ref_bl)
    # Seeded: the same inputs give the same weights.
    assert mod.blend(str(logs), str(lora_dir), val_rows=200)["weights"] == w


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--val-rows", "3"], "--val-rows must be >= 10"),
        (["--encoders", "nowhere"], "is not an encoder directory"),
    ],
)
def test_refuses_bad_arguments_before_work(logs, lora_dir, args, message):
    base = ["--logs", str(logs), "--encoders", str(lora_dir)]
    if args[0] == "--encoders":
        base = ["--logs", str(logs)]
    proc = subprocess.run(
        [sys.executable, str(BENCH), *base, *args], capture_output=True, text=True
    )
    assert proc.returncode == 2 and message in proc.stderr
