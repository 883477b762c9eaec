"""The dashboard's figures: one description (``Figure``), drawn interactively with Altair and as a
PNG with matplotlib for the download button. No Streamlit, no file access.

Kinds:
- ``"intervals"``: a point per category with an error bar (``low``..``high``), facets optional;
- ``"bands"``: a line per series over ``x`` with a shaded interval, an optional vertical marker;
- ``"heatmap"``: a value per (x, y) cell, written in the cell;
- ``"paths"``: 2-D paths, one per series, points ordered by ``order``;
- ``"bars"``: a bar per category, coloured by a boolean/category column.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import altair as alt
import numpy as np
import pandas as pd


@dataclass
class Figure:
    kind: str
    data: pd.DataFrame
    x: str
    y: str
    x_title: str
    y_title: str
    title: str = ""
    color: str | None = None
    low: str | None = None
    high: str | None = None
    facet: str | None = None
    order: str | None = None
    rule_x: float | None = None
    rule_label: str = ""
    tooltip: list[str] = field(default_factory=list)
    lower: pd.DataFrame | None = None
    """Optional second panel under a ``bands`` figure (active users), same ``x``/``color``."""
    lower_title: str = ""
    value_format: str = ".3f"


def _tooltip(fig: Figure, data: pd.DataFrame) -> list[alt.Tooltip]:
    names = fig.tooltip or [c for c in (fig.facet, fig.color, fig.x, fig.y, fig.low, fig.high) if c]
    out = []
    for name in dict.fromkeys(names):
        if name not in data.columns:
            continue
        if pd.api.types.is_float_dtype(data[name]):
            out.append(alt.Tooltip(f"{name}:Q", format=fig.value_format, title=name))
        else:
            out.append(alt.Tooltip(f"{name}", title=name))
    return out


def _quant(name: str, title: str, zero: bool = False) -> alt.X:
    return alt.X(f"{name}:Q", title=title, scale=alt.Scale(zero=zero))


FIT_WIDTH = alt.AutoSizeParams(type="fit-x", contains="padding")
"""Autosize of a single-view figure: the width fits the page, ``height`` is the plot's own."""


def bar_domain(values: pd.Series) -> list[float]:
    """The value axis of a ``bars`` figure: the values' own range, padded (not forced to include
    0), so that differences between close scores stay visible; the lowest bar keeps a stub."""
    finite = pd.to_numeric(values, errors="coerce").replace([np.inf, -np.inf], np.nan).dropna()
    if finite.empty:
        return [0.0, 1.0]
    low, high = float(finite.min()), float(finite.max())
    pad = 0.1 * (high - low) if high > low else max(abs(high) * 0.1, 0.5)
    return [low - pad, high + pad]


def to_altair(fig: Figure) -> alt.TopLevelMixin:
    data = fig.data
    tip = _tooltip(fig, data)
    color = (
        alt.Color(f"{fig.color}:N", title=fig.color, legend=alt.Legend(orient="bottom"))
        if fig.color
        else alt.value("#1f77b4")
    )
    if fig.kind == "intervals":
        base = alt.Chart(data)
        y = alt.Y(f"{fig.y}:N", title=fig.y_title, sort=None)
        offset = {"yOffset": alt.YOffset(f"{fig.color}:N")} if fig.color else {}
        bars = base.mark_rule(strokeWidth=2).encode(
            x=alt.X(f"{fig.low}:Q", title=fig.x_title, scale=alt.Scale(zero=False)),
            x2=f"{fig.high}:Q",
            y=y,
            color=color,
            tooltip=tip,
            **offset,
        )
        points = base.mark_point(filled=True, size=70).encode(
            x=f"{fig.x}:Q", y=y, color=color, tooltip=tip, **offset
        )
        chart = alt.layer(bars, points)
        if fig.facet:
            return chart.facet(row=alt.Row(f"{fig.facet}:N", title=fig.facet)).properties(
                title=fig.title
            )
        return chart.properties(title=fig.title)
    if fig.kind == "bands":
        base = alt.Chart(data)
        x = alt.X(f"{fig.x}:Q", title=fig.x_title)
        band = base.mark_area(opacity=0.2).encode(
            x=x,
            y=alt.Y(f"{fig.low}:Q", title=fig.y_title, scale=alt.Scale(zero=False)),
            y2=f"{fig.high}:Q",
            color=color,
            tooltip=tip,
        )
        line = base.mark_line().encode(x=x, y=f"{fig.y}:Q", color=color, tooltip=tip)
        hover = base.mark_point(size=25, opacity=0.0).encode(
            x=x, y=f"{fig.y}:Q", color=color, tooltip=tip
        )
        layers = [band, line, hover]
        if fig.rule_x is not None:
            rule_data = pd.DataFrame({fig.x: [fig.rule_x], "marker": [fig.rule_label]})
            rule = (
                alt.Chart(rule_data)
                .mark_rule(strokeDash=[5, 3], color="black")
                .encode(x=f"{fig.x}:Q", tooltip=["marker"])
            )
            layers.append(rule)
        chart = alt.layer(*layers).properties(title=fig.title, height=260)
        if fig.lower is None or fig.lower.empty:
            # alone, 260 is the plot's own height (as in the two-panel figure): Streamlit's
            # default ("fit") would fit the axes and legend into it and flatten the curves
            chart = chart.properties(autosize=FIT_WIDTH)
        if fig.lower is not None and not fig.lower.empty:
            lower = (
                alt.Chart(fig.lower)
                .mark_line(strokeDash=[2, 2])
                .encode(
                    x=alt.X(f"{fig.x}:Q", title=fig.x_title),
                    y=alt.Y("mean:Q", title=fig.lower_title),
                    color=color,
                    tooltip=_tooltip(
                        Figure(
                            "",
                            fig.lower,
                            fig.x,
                            "mean",
                            "",
                            "",
                            color=fig.color,
                            value_format=".1f",
                        ),
                        fig.lower,
                    ),
                )
                .properties(height=110)
            )
            return alt.vconcat(chart, lower).resolve_scale(color="shared")
        return chart
    if fig.kind == "heatmap":
        base = alt.Chart(data).encode(
            x=alt.X(f"{fig.x}:N", title=fig.x_title, sort=None),
            y=alt.Y(f"{fig.y}:N", title=fig.y_title, sort=None),
        )
        rect = base.mark_rect().encode(
            color=alt.Color(
                f"{fig.color}:Q", title=fig.color, scale=alt.Scale(domain=[0, 1], scheme="redblue")
            ),
            tooltip=tip,
        )
        text = base.mark_text().encode(text=alt.Text(f"{fig.color}:Q", format=".2f"))
        return alt.layer(rect, text).properties(title=fig.title)
    if fig.kind == "paths":
        base = alt.Chart(data).encode(
            x=_quant(fig.x, fig.x_title),
            y=alt.Y(f"{fig.y}:Q", title=fig.y_title),
            color=color,
            tooltip=tip,
        )
        order = alt.Order(f"{fig.order}:Q") if fig.order else alt.Undefined
        return alt.layer(
            base.mark_line(opacity=0.6).encode(order=order), base.mark_point(size=20)
        ).properties(title=fig.title, height=320)
    if fig.kind == "bars":
        return (
            alt.Chart(data)
            .mark_bar(clip=True)
            .encode(
                x=alt.X(f"{fig.x}:N", title=fig.x_title, sort=None),
                y=alt.Y(
                    f"{fig.y}:Q",
                    title=fig.y_title,
                    scale=alt.Scale(domain=bar_domain(data[fig.y]), zero=False, nice=False),
                ),
                color=color,
                tooltip=tip,
            )
            # 320 is the plot's own height; Streamlit's default ("fit") would squeeze the rotated
            # item labels, the title and the legend into it and leave the bars flat
            .properties(
                title=fig.title,
                height=320,
                autosize=FIT_WIDTH,
            )
        )
    raise ValueError(f"unknown figure kind {fig.kind!r}")


def to_png(fig: Figure) -> bytes:
    """The figure drawn with matplotlib, as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = fig.data
    groups = list(data.groupby(fig.color, sort=False)) if fig.color else [("", data)]
    facets = list(data[fig.facet].unique()) if fig.facet else [None]
    with_lower = fig.kind == "bands" and fig.lower is not None and not fig.lower.empty
    rows = len(facets) + (1 if with_lower else 0)
    heights = [3.2] * len(facets) + ([1.4] if with_lower else [])
    plot, axes = plt.subplots(
        rows,
        1,
        figsize=(8, sum(heights) + 0.6),
        squeeze=False,
        gridspec_kw={"height_ratios": heights},
    )
    axes = axes[:, 0]
    try:
        for ax, facet in zip(axes, facets, strict=False):
            if fig.kind == "intervals":
                sub = data if facet is None else data[data[fig.facet] == facet]
                cats = list(dict.fromkeys(sub[fig.y]))
                names = list(dict.fromkeys(sub[fig.color])) if fig.color else [""]
                width = 0.6 / max(len(names), 1)
                for k, name in enumerate(names):
                    part = sub if not fig.color else sub[sub[fig.color] == name]
                    pos = (
                        np.array([cats.index(c) for c in part[fig.y]])
                        + (k - (len(names) - 1) / 2) * width
                    )
                    ax.errorbar(
                        part[fig.x],
                        pos,
                        xerr=[part[fig.x] - part[fig.low], part[fig.high] - part[fig.x]],
                        fmt="o",
                        capsize=3,
                        label=str(name) if fig.color else None,
                    )
                ax.set_yticks(range(len(cats)), cats)
                ax.invert_yaxis()
                ax.set_xlabel(fig.x_title)
                ax.set_ylabel(fig.y_title)
                if facet is not None:
                    ax.set_title(f"{fig.facet}: {facet}", fontsize=9)
            elif fig.kind == "bands":
                for name, part in groups:
                    part = part.sort_values(fig.x)
                    ax.plot(part[fig.x], part[fig.y], label=str(name))
                    ax.fill_between(part[fig.x], part[fig.low], part[fig.high], alpha=0.2)
                if fig.rule_x is not None:
                    ax.axvline(fig.rule_x, color="black", linestyle="--", label=fig.rule_label)
                ax.set_xlabel(fig.x_title)
                ax.set_ylabel(fig.y_title)
            elif fig.kind == "heatmap":
                xs = list(dict.fromkeys(data[fig.x]))
                ys = list(dict.fromkeys(data[fig.y]))
                grid = np.full((len(ys), len(xs)), np.nan)
                for _, r in data.iterrows():
                    grid[ys.index(r[fig.y]), xs.index(r[fig.x])] = r[fig.color]
                ax.imshow(grid, cmap="RdBu", vmin=0, vmax=1)
                for (i, j), v in np.ndenumerate(grid):
                    if np.isfinite(v):
                        ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8)
                ax.set_xticks(range(len(xs)), xs, rotation=30, ha="right")
                ax.set_yticks(range(len(ys)), ys)
                ax.set_xlabel(fig.x_title)
                ax.set_ylabel(fig.y_title)
            elif fig.kind == "paths":
                for name, part in groups:
                    part = part.sort_values(fig.order) if fig.order else part
                    ax.plot(part[fig.x], part[fig.y], marker=".", label=str(name))
                ax.set_xlabel(fig.x_title)
                ax.set_ylabel(fig.y_title)
            elif fig.kind == "bars":
                colours = None
                if fig.color:
                    cats = list(dict.fromkeys(data[fig.color].astype(str)))
                    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
                    colours = [palette[cats.index(str(v)) % len(palette)] for v in data[fig.color]]
                low, high = bar_domain(data[fig.y])
                ax.bar(data[fig.x].astype(str), data[fig.y] - low, bottom=low, color=colours)
                ax.set_ylim(low, high)
                ax.tick_params(axis="x", rotation=60, labelsize=7)
                ax.set_xlabel(fig.x_title)
                ax.set_ylabel(fig.y_title)
        if with_lower:
            ax = axes[-1]
            for name, part in (
                fig.lower.groupby(fig.color, sort=False) if fig.color else [("", fig.lower)]
            ):
                ax.plot(part[fig.x], part["mean"], linestyle=":", label=str(name))
            ax.set_xlabel(fig.x_title)
            ax.set_ylabel(fig.lower_title, fontsize=8)
        if fig.color and fig.kind in ("intervals", "bands", "paths"):
            axes[0].legend(fontsize=7, loc="best")
        plot.suptitle(fig.title, fontsize=10)
        plot.tight_layout()
        buffer = io.BytesIO()
        plot.savefig(buffer, format="png", dpi=110)
        return buffer.getvalue()
    finally:
        plt.close(plot)


def describe(fig: Figure) -> dict[str, Any]:
    """The figure's axis titles (for tests and captions)."""
    return {"x": fig.x_title, "y": fig.y_title, "title": fig.title}
