"""The fidelity report's files: ``fidelity.json``, ``fidelity.md`` and four PNG figures.

``write_report`` renders everything in memory first, then writes the files as one marked
``fidelity`` output folder through ``recsim_llm.io.write_directory``: a reader sees the previous
report or the new one, never files of both mixed, and a folder that is not a recsim-llm
fidelity report is refused (``recsim_llm.io.OutputError``). A non-finite number is refused
rather than written as ``NaN``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from recsim_llm.io import write_directory

__all__ = ["FIGURES", "markdown", "render_figures", "table", "write_report"]

FIGURES = (
    "rating_distribution.png",
    "popularity_concentration.png",
    "activity.png",
    "genre_mix.png",
)
"""The report's figures, in the order the markdown shows them."""

_NAMES = ["real", "calibrated", "popularity reference"]
_COLORS = {"real": "black", "calibrated": "tab:blue", "popularity reference": "tab:orange"}


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _better(
    c: float | None, p: float | None, target: float | None = None, high: bool = False
) -> str:
    """Which simulator wins a row: higher (``high``), closer to ``target``, or lower."""
    if c is None or p is None:
        return ""
    if high:
        return "calibrated" if c > p else "reference" if p > c else "tie"
    if target is not None:
        c, p = abs(c - target), abs(p - target)
    return "calibrated" if c < p else "reference" if p < c else "tie"


def table(result: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """Rows: metric, real, calibrated, popularity reference, better (closer to real / higher)."""
    r, a = result["real"], result["auc"]
    cal, ref = result["simulated"]["calibrated"], result["simulated"]["popularity reference"]

    def row(metric: str, key: str, spec: str, real: str | None = None, **how: Any) -> tuple:
        shown_real = real if real is not None else _fmt(r[key], spec)
        c, p = cal[key], ref[key]
        return (metric, shown_real, _fmt(c, spec), _fmt(p, spec), _better(c, p, **how))

    rows = [
        (
            "Held-out AUC (rating >= 4 vs unrated), higher is better",
            "",
            _fmt(a["calibrated"], ".3f"),
            _fmt(a["popularity"], ".3f"),
            _better(a["calibrated"], a["popularity"], high=True),
        ),
    ]
    if a["calibrated_cold_users"] is not None:
        rows.append(
            (
                "Held-out AUC, cold-start users only",
                "",
                _fmt(a["calibrated_cold_users"], ".3f"),
                _fmt(a["popularity_cold_users"], ".3f"),
                _better(a["calibrated_cold_users"], a["popularity_cold_users"], high=True),
            )
        )
    median_p90 = "{:.0f} / {:.0f}"
    rows += [
        row(
            "Rating distribution: total variation to real, lower is better", "rating_tv", ".3f", "0"
        ),
        row(
            "Rating distribution: Wasserstein-1 to real (stars), lower is better",
            "rating_w1",
            ".3f",
            "0",
        ),
        row("Popularity Gini of consumption", "gini", ".3f", target=r["gini"]),
        row(
            "Share of consumption on top 10% of movies",
            "top10_share",
            ".3f",
            target=r["top10_share"],
        ),
        row("Activity per user: KS distance to real, lower is better", "activity_ks", ".3f", "0"),
        row("Activity per user: mean", "activity_mean", ".1f", target=r["activity_mean"]),
        (
            "Activity per user: median / 90th percentile",
            median_p90.format(r["activity_median"], r["activity_p90"]),
            median_p90.format(cal["activity_median"], cal["activity_p90"]),
            median_p90.format(ref["activity_median"], ref["activity_p90"]),
            "",
        ),
        row(
            "Genre mix per user: JS divergence to real, lower is better (user's own training "
            f"mix: {_fmt(r['genre_js_train_vs_test'], '.3f')})",
            "genre_js",
            ".3f",
            "0",
        ),
    ]
    return rows


# -- figures ------------------------------------------------------------------------------------


def _rating_figure(ax: Any, result: dict[str, Any]) -> None:
    hists = [result["real"]["rating_hist"]] + [
        result["simulated"][n]["rating_hist"] for n in _NAMES[1:]
    ]
    for k, (name, h) in enumerate(zip(_NAMES, hists, strict=True)):
        ax.bar(np.arange(1, 6) + (k - 1) * 0.27, h, width=0.27, label=name, color=_COLORS[name])
    ax.set_xlabel("rating")
    ax.set_ylabel("share of held-out ratings")
    ax.set_title("Rating distribution")


def _popularity_figure(ax: Any, result: dict[str, Any]) -> None:
    arrays = result["_arrays"]
    for name in _NAMES:
        pop = (
            arrays["real_pop"]
            if name == "real"
            else np.bincount(arrays[name]["movie"], minlength=arrays["real_pop"].size)
        )
        x = np.sort(pop)[::-1].astype(np.float64)
        ax.plot(
            np.arange(1, x.size + 1) / x.size,
            np.cumsum(x) / max(x.sum(), 1),
            label=name,
            color=_COLORS[name],
        )
    ax.set_xlabel("share of movies (most consumed first)")
    ax.set_ylabel("share of consumption")
    ax.set_title("Popularity concentration")


def _activity_figure(ax: Any, result: dict[str, Any]) -> None:
    for name in _NAMES:
        act = np.sort(result["_arrays"][name]["activity"])
        ax.plot(act, np.arange(1, act.size + 1) / act.size, label=name, color=_COLORS[name])
    ax.set_xscale("symlog")
    ax.set_xlabel("consumptions per user in the held-out period")
    ax.set_ylabel("share of users (CDF)")
    ax.set_title("Per-user activity")


def _genre_figure(ax: Any, result: dict[str, Any]) -> None:
    genres = result["genres"]
    totals = [result["real"]["genre_total"]] + [
        result["simulated"][n]["genre_total"] for n in _NAMES[1:]
    ]
    for k, (name, t) in enumerate(zip(_NAMES, totals, strict=True)):
        ax.bar(
            np.arange(len(genres)) + (k - 1) * 0.27, t, width=0.27, label=name, color=_COLORS[name]
        )
    ax.set_xticks(np.arange(len(genres)), genres, rotation=60, ha="right")
    ax.set_ylabel("share of consumption")
    ax.set_title("Genre mix (all users)")


def render_figures(result: dict[str, Any]) -> dict[str, bytes]:
    """The report's PNG figures (``FIGURES``), rendered in memory: file name -> bytes."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    draw = {
        "rating_distribution.png": (_rating_figure, (5.5, 3.5)),
        "popularity_concentration.png": (_popularity_figure, (5.5, 3.5)),
        "activity.png": (_activity_figure, (5.5, 3.5)),
        "genre_mix.png": (_genre_figure, (7.5, 3.5)),
    }
    out = {}
    for name in FIGURES:
        plot, size = draw[name]
        fig, ax = plt.subplots(figsize=size)
        plot(ax, result)
        ax.legend()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        out[name] = buf.getvalue()
    return out


# -- text ---------------------------------------------------------------------------------------


def markdown(result: dict[str, Any], command: str, seconds: float, figures: list[str]) -> str:
    """``fidelity.md``: what was compared, the table, and the figures."""
    cal, protocol = result["calibration"], result["protocol"]
    lines = [
        "# Fidelity of the MovieLens-100K calibrated world",
        "",
        f"Data: `{cal['data_dir']}` ({cal['layout']} layout): {cal['n_users']} users "
        f"({cal['n_cold_users']} held out as cold-start users), {cal['n_movies']} movies "
        f"({cal['n_new_movies']} only in the held-out period, entering as new items), "
        f"{cal['n_train_ratings']} training and {cal['n_test_ratings']} held-out ratings.",
        f"Split: {protocol['split']}. Simulation: each step a user sees "
        f"{protocol['slate_size']} random movies they have not rated and may click one; "
        f"activity = clicks before churning. Reference: a popularity-only simulator (same pipeline, "
        f"no personal signal).",
        "",
        f"Command: `{command}` — run time {seconds:.1f} s (calibration fit "
        f"{cal['fit_seconds']:.1f} s of it, or 0 when cached).",
        "",
        "| Metric | Real (held out) | Calibrated | Popularity reference | Closer / better |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {m} | {r} | {c} | {p} | {b} |" for m, r, c, p, b in table(result)]
    single = protocol.get("users_with_one_rating", 0)
    lines += [
        "",
        f"AUC over {result['auc']['n_users']} users and {result['auc']['n_positives']} held-out "
        f"positives, {protocol['negatives_per_user']} sampled unrated movies per user."
        + (
            f" {single} users with a single rating have nothing held out (their rating is "
            "training data)."
            if single
            else ""
        ),
        "",
    ]
    lines += [f"![{name}]({name})" for name in figures]
    return "\n".join(lines) + "\n"


def _non_finite(value: Any, where: str = "") -> str | None:
    """The key path of the first non-finite float in a JSON-like value, or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return where or "(top level)"
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _non_finite(item, f"{where}.{key}" if where else str(key))
        if found:
            return found
    return None


def write_report(
    result: dict[str, Any], out: str | Path, command: str, seconds: float, figures: bool = True
) -> dict[str, Path]:
    """Write ``fidelity.json``, ``fidelity.md`` and the PNG figures to ``out`` as one set.

    Raises:
        recsim_llm.io.OutputError: ``out`` is not an empty folder or a fidelity report folder.
        ValueError: a number of ``result`` is not finite (nothing is written).
    """
    public = {k: v for k, v in result.items() if not k.startswith("_")}
    bad = _non_finite(public)
    if bad is not None:
        raise ValueError(
            f"the fidelity report would hold a non-finite number at {bad}; not written"
        )
    pngs = render_figures(result) if figures else {}
    public["command"] = command
    public["run_seconds"] = round(seconds, 2)
    public["figures"] = list(pngs)
    files: dict[str, bytes | str] = {
        "fidelity.json": json.dumps(public, indent=2, allow_nan=False) + "\n",
        "fidelity.md": markdown(result, command, seconds, list(pngs)),
        **pngs,
    }
    out = write_directory(out, files, "fidelity", meta={"command": command})
    return {"json": out / "fidelity.json", "markdown": out / "fidelity.md"}
