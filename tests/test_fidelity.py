"""``recsim-llm fidelity``: metrics, report files, CLI errors, and the real-data table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_movielens_data import REAL_DATA, needs_real_data, write_grouplens

from recsim_llm import cli
from recsim_llm.fidelity import gini, top_share


def test_gini_and_top_share() -> None:
    assert gini(np.ones(10)) == pytest.approx(0.0)
    assert gini(np.array([0, 0, 0, 10])) == pytest.approx(0.75)
    assert gini(np.zeros(5)) == 0.0
    assert top_share(np.ones(20)) == pytest.approx(0.1)
    assert top_share(np.array([90, 5, 5] + [0] * 7)) == pytest.approx(0.9)


def test_cli_writes_markdown_json_and_figures(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = write_grouplens(tmp_path / "data")
    out = tmp_path / "report"
    rc = cli.main(["fidelity", "--data-dir", str(data), "--out", str(out), "--negatives", "20"])
    assert rc == 0
    report = json.loads((out / "fidelity.json").read_text())
    assert report["command"].startswith("recsim-llm fidelity --data-dir")
    assert set(report["simulated"]) == {"calibrated", "popularity reference"}
    assert 0.0 <= report["auc"]["calibrated"] <= 1.0
    assert sum(report["real"]["rating_hist"]) == pytest.approx(1.0, abs=1e-3)
    for fig in ("rating_distribution.png", "popularity_concentration.png", "activity.png", "genre_mix.png"):
        assert (out / fig).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert fig in report["figures"]
    md = (out / "fidelity.md").read_text()
    assert "| Held-out AUC" in md and "Popularity reference" in md
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*.tmp"))
    assert "Held-out AUC" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--data-dir", "{missing}", "--out", "{out}"], "no such directory"),
        (["--data-dir", "{empty}", "--out", "{out}"], "no MovieLens-100K files"),
        (["--data-dir", "{broken}", "--out", "{out}"], "u.data, line 1: expected 4 tab-separated"),
    ],
)
def test_cli_errors_name_the_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture, args: list[str], words: str
) -> None:
    (tmp_path / "empty").mkdir()
    broken = write_grouplens(tmp_path / "broken")
    (broken / "u.data").write_text("1\t2\t3\n")
    paths = {"missing": tmp_path / "nowhere", "empty": tmp_path / "empty", "broken": broken, "out": tmp_path / "out"}
    rc = cli.main(["fidelity", *[a.format(**paths) for a in args]])
    assert rc == 2
    assert words in capsys.readouterr().err
    assert not (tmp_path / "out" / "fidelity.json").exists()  # nothing partial written


@needs_real_data
@pytest.mark.slow
def test_real_fidelity_report(tmp_path: Path) -> None:
    out = tmp_path / "report"
    assert cli.main(["fidelity", "--data-dir", str(REAL_DATA), "--out", str(out), "--no-figures"]) == 0
    report = json.loads((out / "fidelity.json").read_text())
    auc = report["auc"]
    assert auc["calibrated"] > auc["popularity"]
    assert auc["n_users"] > 900
    cal, ref = report["simulated"]["calibrated"], report["simulated"]["popularity reference"]
    real = report["real"]
    # The calibrated world is closer to the real held-out logs than the reference on ratings
    # and genre mix; its popularity concentration is in the real range.
    assert cal["rating_w1"] < ref["rating_w1"]
    assert cal["genre_js"] < ref["genre_js"]
    assert abs(cal["gini"] - real["gini"]) < 0.15
