"""``recsim-llm fidelity``: metrics, report files, CLI errors, and the real-data table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_movielens_data import REAL_DATA, needs_real_data, write_grouplens

from recsim_llm import cli
from recsim_llm.movielens import gini, top_share


def test_gini_and_top_share() -> None:
    assert gini(np.ones(10)) == pytest.approx(0.0)
    assert gini(np.array([0, 0, 0, 10])) == pytest.approx(0.75)
    assert gini(np.zeros(5)) == 0.0
    assert top_share(np.ones(20)) == pytest.approx(0.1)
    assert top_share(np.array([90, 5, 5] + [0] * 7)) == pytest.approx(0.9)


def test_cli_writes_markdown_json_and_figures(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    data = write_grouplens(tmp_path / "data")
    out = tmp_path / "report"
    rc = cli.main(["fidelity", "--data-dir", str(data), "--out", str(out), "--negatives", "20"])
    assert rc == 0
    report = json.loads((out / "fidelity.json").read_text())
    assert report["command"].startswith("recsim-llm fidelity --data-dir")
    assert set(report["simulated"]) == {"calibrated", "popularity reference"}
    assert 0.0 <= report["auc"]["calibrated"] <= 1.0
    assert sum(report["real"]["rating_hist"]) == pytest.approx(1.0, abs=1e-3)
    for fig in (
        "rating_distribution.png",
        "popularity_concentration.png",
        "activity.png",
        "genre_mix.png",
    ):
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
    paths = {
        "missing": tmp_path / "nowhere",
        "empty": tmp_path / "empty",
        "broken": broken,
        "out": tmp_path / "out",
    }
    rc = cli.main(["fidelity", *[a.format(**paths) for a in args]])
    assert rc == 2
    assert words in capsys.readouterr().err
    assert not (tmp_path / "out" / "fidelity.json").exists()  # nothing partial written


@needs_real_data
@pytest.mark.slow
def test_real_fidelity_report(tmp_path: Path) -> None:
    out = tmp_path / "report"
    assert (
        cli.main(["fidelity", "--data-dir", str(REAL_DATA), "--out", str(out), "--no-figures"]) == 0
    )
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


# -- data the report cannot use: refused before the calibration, naming the file and the reason --


def _cap_ratings(logs: dict, cap: int, latest: float = 1.0) -> dict:
    """Ratings capped at ``cap``: all of them, or each user's latest ``latest`` share."""
    by_user: dict[int, list[int]] = {}
    for k, (u, _m, _r, _t) in enumerate(logs["ratings"]):
        by_user.setdefault(u, []).append(k)
    capped = set()
    for rows in by_user.values():
        rows = sorted(rows, key=lambda k: logs["ratings"][k][3])
        capped.update(rows[len(rows) - int(np.ceil(latest * len(rows))) :])
    logs["ratings"] = [
        (u, m, min(r, cap) if k in capped else r, t)
        for k, (u, m, r, t) in enumerate(logs["ratings"])
    ]
    return logs


def _first_rating_only(logs: dict, users: set[int] | None = None) -> dict:
    seen: set[int] = set()
    kept = []
    for u, m, r, t in logs["ratings"]:
        if users is not None and u not in users or u not in seen:
            kept.append((u, m, r, t))
        seen.add(u)
    logs["ratings"] = kept
    return logs


def _recbole_duplicate_rating_column(root: Path) -> None:
    path = root / "ml-100k.inter"
    lines = path.read_text().splitlines()
    lines[0] += "\trating:float"
    lines[1:] = [line + "\t3" for line in lines[1:]]
    path.write_text("\n".join(lines) + "\n")


def _recbole_header_only(root: Path) -> None:
    path = root / "ml-100k.inter"
    path.write_text(path.read_text().splitlines()[0] + "\n")


UNUSABLE = [
    pytest.param(
        "grouplens",
        lambda logs: _cap_ratings(logs, 3),
        None,
        r"u\.data: expected ratings >= 4 \(the positives of the held-out AUC\), found none among",
        id="no-rating-above-3",
    ),
    pytest.param(
        "grouplens",
        _first_rating_only,
        None,
        r"u\.data: expected users with at least 2 ratings .*found all 40 users with ratings "
        r"have a single rating",
        id="one-rating-per-user",
    ),
    pytest.param(
        "grouplens",
        lambda logs: _cap_ratings(logs, 3, latest=0.4),
        None,
        r"u\.data: expected held-out ratings >= 4 .*found none: each user's latest 20% of "
        r"ratings are all below 4",
        id="no-held-out-positive",
    ),
    pytest.param(
        "recbole",
        None,
        _recbole_duplicate_rating_column,
        r"ml-100k\.inter, line 1: expected a header with unique column names, found column "
        r"'rating' twice \(columns 3 and 5\)",
        id="duplicated-column",
    ),
    pytest.param(
        "recbole",
        None,
        _recbole_header_only,
        r"ml-100k\.inter: expected at least one rating to calibrate on, found none",
        id="no-rating",
    ),
]


def _write_unusable(root: Path, layout: str, edit_logs, edit_files) -> Path:
    from test_movielens_data import synthetic_logs, write_recbole

    logs = synthetic_logs()
    if edit_logs is not None:
        logs = edit_logs(logs)
    root = (write_grouplens if layout == "grouplens" else write_recbole)(root, logs)
    if edit_files is not None:
        edit_files(root)
    return root


@pytest.mark.parametrize(("layout", "edit_logs", "edit_files", "message"), UNUSABLE)
def test_unusable_data_is_refused_naming_file_and_reason(
    tmp_path: Path, layout: str, edit_logs, edit_files, message: str
) -> None:
    from recsim_llm.movielens import (
        CalibrationConfig,
        DataFormatError,
        check_report_data,
        load_movielens,
    )

    root = _write_unusable(tmp_path / "data", layout, edit_logs, edit_files)
    with pytest.raises(DataFormatError, match=message):
        check_report_data(load_movielens(root), CalibrationConfig())


@pytest.mark.parametrize(("layout", "edit_logs", "edit_files", "message"), UNUSABLE)
def test_cli_refuses_unusable_data_before_calibrating(
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    layout: str,
    edit_logs,
    edit_files,
    message: str,
) -> None:
    import re

    from recsim_llm.movielens import cli as fidelity_cli

    def no_calibration(*args: object, **kwargs: object) -> None:
        raise AssertionError("calibrated data the report cannot use")

    monkeypatch.setattr(fidelity_cli, "calibrate", no_calibration)
    root = _write_unusable(tmp_path / "data", layout, edit_logs, edit_files)
    out = tmp_path / "out"
    assert cli.main(["fidelity", "--data-dir", str(root), "--out", str(out)]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not out.exists()


def test_compute_fidelity_refuses_instead_of_nan_auc(tmp_path: Path) -> None:
    from recsim_llm.movielens import CalibrationConfig, DataFormatError, calibrate, compute_fidelity

    logs = _cap_ratings(__import__("test_movielens_data").synthetic_logs(), 3, latest=0.4)
    root = write_grouplens(tmp_path / "data", logs)
    cal = calibrate(root, CalibrationConfig(iterations=10, activity_shrink=()))
    with pytest.raises(DataFormatError, match=r"u\.data: expected held-out ratings >= 4"):
        compute_fidelity(cal, negatives=5)


def test_users_with_a_single_rating_are_kept_by_design(tmp_path: Path) -> None:
    from test_movielens_data import synthetic_logs

    root = write_grouplens(tmp_path / "data", _first_rating_only(synthetic_logs(), {1, 2}))
    out = tmp_path / "report"
    args = ["fidelity", "--data-dir", str(root), "--out", str(out), "--negatives", "10"]
    assert cli.main([*args, "--no-figures"]) == 0
    report = json.loads((out / "fidelity.json").read_text())
    assert report["protocol"]["users_with_one_rating"] == 2
    assert "2 users with a single rating have nothing held out" in (out / "fidelity.md").read_text()
    assert np.isfinite(report["auc"]["calibrated"])


# -- the report is written as one marked set ----------------------------------------------------


def test_report_files_are_replaced_as_one_set(tmp_path: Path) -> None:
    from recsim_llm.io import MARKER, read_marker

    data = write_grouplens(tmp_path / "data")
    out = tmp_path / "report"
    args = ["fidelity", "--data-dir", str(data), "--out", str(out), "--negatives", "10"]
    assert cli.main(args) == 0
    assert (out / "activity.png").is_file() and read_marker(out)["kind"] == "fidelity"
    assert cli.main([*args, "--no-figures"]) == 0  # the new set has no figures: none survive
    assert sorted(p.name for p in out.iterdir()) == sorted([MARKER, "fidelity.json", "fidelity.md"])
    assert json.loads((out / "fidelity.json").read_text())["figures"] == []
    assert not [
        p
        for p in tmp_path.iterdir()
        if p.name.startswith(".report.") and not p.name.endswith(".lock")
    ]


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (
            lambda out: (out.mkdir(), (out / "notes.txt").write_text("mine")),
            "did not write (notes.txt)",
        ),
        (lambda out: out.write_text("a file"), "is an existing file"),
    ],
)
def test_foreign_out_is_refused_before_calibrating(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, make, words: str
) -> None:
    from recsim_llm.movielens import cli as fidelity_cli

    def no_calibration(*args: object, **kwargs: object) -> None:
        raise AssertionError("calibrated although --out cannot be written")

    monkeypatch.setattr(fidelity_cli, "calibrate", no_calibration)
    data = write_grouplens(tmp_path / "data")
    out = tmp_path / "out"
    make(out)
    before = sorted(p.name for p in out.iterdir()) if out.is_dir() else out.read_text()
    assert cli.main(["fidelity", "--data-dir", str(data), "--out", str(out)]) == 2
    assert words in capsys.readouterr().err
    after = sorted(p.name for p in out.iterdir()) if out.is_dir() else out.read_text()
    assert before == after


def test_report_with_a_non_finite_number_is_not_written(tmp_path: Path) -> None:
    from recsim_llm.movielens import write_report

    result = {"auc": {"calibrated": float("nan")}, "_arrays": {}}
    with pytest.raises(ValueError, match=r"non-finite number at auc\.calibrated"):
        write_report(result, tmp_path / "r", "cmd", 1.0, figures=False)
    assert not (tmp_path / "r").exists()
