"""The report's figures: matplotlib, drawn off-screen, returned as PNG bytes.

Figures are built on `matplotlib.figure.Figure` directly (no pyplot): no global state, no
display, and the Agg canvas is used whatever backend the user's matplotlib is set to.
One style for all: small sans-serif type, no top/right spines, the original model in grey
and the fine-tuned model in blue (Okabe-Ito, readable by colour-blind readers and in print).
"""

from __future__ import annotations

import functools
import io
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch

# Okabe-Ito palette; systems beyond the named ones take the rest in order, then the light
# half of matplotlib's tab20 (distinct from the saturated Okabe-Ito hues), so that up to 19
# systems in one figure never share a colour.
SYSTEM_COLOURS = {"base": "#7f7f7f", "finetuned": "#0072B2"}
OTHER_COLOURS = (
    *("#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#F0E442", "#000000"),
    *("#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5"),
    *("#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5"),
)
STYLE = {
    "font.size": 8.5,
    "axes.titlesize": 9,
    "axes.labelsize": 8.5,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": False,
    "figure.dpi": 100,
}
DPI = 160
WIDTH_IN = 7.0


def system_colour(system: str, order: Sequence[str]) -> str:
    if system in SYSTEM_COLOURS:
        return SYSTEM_COLOURS[system]
    others = [name for name in order if name not in SYSTEM_COLOURS]
    index = others.index(system) if system in others else len(others)
    return OTHER_COLOURS[index % len(OTHER_COLOURS)]


def _styled(draw):
    """Draw under the report's rc settings without changing the user's matplotlib defaults."""

    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        import matplotlib

        with matplotlib.rc_context(STYLE):
            return draw(*args, **kwargs)

    return wrapper


def _new_figure(height_in: float, width_in: float = WIDTH_IN) -> Figure:
    return Figure(figsize=(width_in, height_in), layout="constrained")


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    # No software/date metadata: the same data give the same bytes.
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _nothing_to_draw_png(what: str) -> bytes:
    """A figure that says it has no data: an empty input draws this, never a traceback."""
    figure = _new_figure(0.9, width_in=4.0)
    axes = figure.add_subplot()
    axes.axis("off")
    axes.text(0.5, 0.5, f"No data to draw: {what}", ha="center", va="center", color="#555555")
    return _png(figure)


@_styled
def funnel_flow_png(steps: Sequence[Mapping], labels: Mapping[str, str]) -> bytes:
    """A CONSORT-style flow: patients remaining after each step, exclusions to the side."""
    if not steps:
        return _nothing_to_draw_png("no curation step")
    kept = steps[1:]
    n_boxes = len(steps)
    height = 0.62 * n_boxes + 0.4
    figure = _new_figure(height, width_in=6.4)
    axes = figure.add_subplot()
    axes.set_xlim(0, 10)
    axes.set_ylim(-0.6 * (n_boxes - 1) - 0.45, 0.45)
    axes.axis("off")

    def box(x: float, y: float, w: float, text: str, *, fill: str, edge: str) -> None:
        axes.add_patch(
            FancyBboxPatch(
                (x - w / 2, y - 0.2),
                w,
                0.4,
                boxstyle="round,pad=0.02,rounding_size=0.06",
                facecolor=fill,
                edgecolor=edge,
                linewidth=0.8,
            )
        )
        axes.text(x, y, text, ha="center", va="center", fontsize=8)

    first = steps[0]
    box(
        3.0,
        0.0,
        4.6,
        f"Patients in the export\nn = {first['patients']:,}",
        fill="#eef4fa",
        edge="#2b5d8a",
    )
    for index, step in enumerate(kept, start=1):
        y = -0.6 * index
        arrow = {"arrowstyle": "-|>", "color": "#444444", "linewidth": 0.8}
        axes.annotate("", xy=(3.0, y + 0.2), xytext=(3.0, y + 0.4), arrowprops=arrow)
        last = index == len(kept)
        label = "Cases kept (one per patient)" if last else "Remaining"
        box(
            3.0,
            y,
            4.6,
            f"{label}\nn = {step['patients']:,}",
            fill="#dcebf7" if last else "#ffffff",
            edge="#2b5d8a",
        )
        reason = labels.get(step["step"], str(step["step"]).replace("_", " "))
        axes.annotate("", xy=(6.05, y + 0.3), xytext=(3.0, y + 0.3), arrowprops=arrow)
        box(
            7.85,
            y + 0.3,
            3.6,
            f"Excluded: {reason}\nn = {step['excluded']:,}",
            fill="#fbf3ea",
            edge="#b26b1f",
        )
    return _png(figure)


@_styled
def training_curves_png(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]], *, xlabel: str
) -> bytes:
    """Loss per step or epoch; training loss as a thin line, validation loss with markers
    (and any curve of too few points for a line to show, a run that logged once)."""
    series = {name: (x, y) for name, (x, y) in series.items() if len(x)}
    if not series:
        return _nothing_to_draw_png("no logged loss")
    figure = _new_figure(2.8, width_in=6.0)
    axes = figure.add_subplot()
    for index, (name, (x, y)) in enumerate(series.items()):
        is_val = "val" in name or "eval" in name
        axes.plot(
            x,
            y,
            label=name,
            color="#D55E00"
            if is_val
            else ("#0072B2" if index == 0 else OTHER_COLOURS[index % len(OTHER_COLOURS)]),
            linewidth=1.4 if is_val else 1.0,
            marker="o" if is_val or len(x) < 3 else None,
            markersize=3.5,
        )
    axes.set_xlabel(xlabel)
    axes.set_ylabel("Loss (answer tokens)")
    axes.legend(frameon=False)
    axes.grid(axis="y", color="#e5e5e5", linewidth=0.6)
    return _png(figure)


@_styled
def confusion_png(panels: Sequence[tuple[str, Sequence[str], Sequence[Sequence[int]]]]) -> bytes:
    """One confusion matrix per system, rows = reference, columns = prediction, row-normalised shade."""
    # A system without a single scored case has no matrix to shade: it gets no panel.
    panels = [panel for panel in panels if np.asarray(panel[2]).ndim == 2 and np.size(panel[2])]
    if not panels:
        return _nothing_to_draw_png("no confusion matrix")
    n = len(panels)
    # Square cells: the height follows the matrix's shape, else the panels' titles are cut
    # off at the top (a 4 x 5 matrix in 3.5 inches of width needs about 3.4 of height).
    n_rows = max(len(matrix) for _, _, matrix in panels)
    n_cols = max((len(row) for _, _, matrix in panels for row in matrix), default=1)
    cell = (min(WIDTH_IN, 3.5 * n) / n - 1.0) / max(n_cols, 1)
    figure = _new_figure(n_rows * cell + 1.4, width_in=min(WIDTH_IN, 3.5 * n))
    for index, (title, labels, matrix) in enumerate(panels):
        axes = figure.add_subplot(1, n, index + 1)
        counts = np.asarray(matrix, dtype=float)
        # A reference is never malformed: its empty row would only take space.
        rows = [
            i
            for i, label in enumerate(labels[: len(counts)])
            if not (label == "(malformed)" and counts[i].sum() == 0)
        ]
        counts = counts[rows]
        row_labels = [labels[i] for i in rows]
        totals = counts.sum(axis=1, keepdims=True)
        share = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
        axes.imshow(share, cmap="Blues", vmin=0, vmax=1)
        n_rows, n_cols = counts.shape
        for i in range(n_rows):
            for j in range(n_cols):
                axes.text(
                    j,
                    i,
                    f"{int(counts[i, j])}",
                    ha="center",
                    va="center",
                    fontsize=7.5,
                    color="white" if share[i, j] > 0.6 else "#222222",
                )
        axes.set_xticks(
            range(n_cols), [_short_label(x) for x in labels[:n_cols]], rotation=35, ha="right"
        )
        axes.set_yticks(range(n_rows), [_short_label(y) for y in row_labels])
        axes.set_xlabel("Predicted")
        if index == 0:
            axes.set_ylabel("Reference")
        axes.set_title(title)
        for spine in axes.spines.values():
            spine.set_visible(False)
    return _png(figure)


def _short_label(label: str) -> str:
    return {"brachytherapy": "brachy", "(malformed)": "malformed"}.get(label, label)


@_styled
def level_bars_png(
    systems: Sequence[
        tuple[str, str, Sequence[float | None], Sequence[tuple[float, float] | None]]
    ],
    levels: Sequence[str],
    *,
    order: Sequence[str],
    ylabel: str = "Accuracy",
) -> bytes:
    """Grouped bars: one group per level, one bar per system, 95% CI as error bars."""
    if not systems or not levels:
        return _nothing_to_draw_png("no system or no level")
    figure = _new_figure(2.9)
    axes = figure.add_subplot()
    width = 0.8 / max(len(systems), 1)
    x = np.arange(len(levels))
    for index, (system, label, values, cis) in enumerate(systems):
        heights = [v if v is not None else 0.0 for v in values]
        lower = [h - ci[0] if ci else 0.0 for h, ci in zip(heights, cis, strict=True)]
        upper = [ci[1] - h if ci else 0.0 for h, ci in zip(heights, cis, strict=True)]
        axes.bar(
            x - 0.4 + width * (index + 0.5),
            heights,
            width * 0.92,
            yerr=[np.maximum(lower, 0), np.maximum(upper, 0)],
            color=system_colour(system, order),
            label=label,
            error_kw={"elinewidth": 0.8, "capsize": 2, "ecolor": "#333333"},
        )
    axes.set_xticks(x, list(levels))
    axes.set_ylim(0, 1.05)
    axes.set_ylabel(ylabel)
    axes.yaxis.set_major_formatter(lambda value, _: f"{value:.0%}")
    axes.grid(axis="y", color="#e5e5e5", linewidth=0.6)
    axes.set_axisbelow(True)
    axes.legend(
        frameon=False, ncols=min(len(systems), 4), loc="lower center", bbox_to_anchor=(0.5, 1.0)
    )
    return _png(figure)


@_styled
def rouge_distribution_png(
    scores: Mapping[str, tuple[str, Sequence[float]]], *, order: Sequence[str]
) -> bytes:
    """Histograms of per-case ROUGE-1 F, one per system, with the median marked."""
    scores = {system: entry for system, entry in scores.items() if len(entry[1])}
    if not scores:
        return _nothing_to_draw_png("no scored case")
    figure = _new_figure(2.8, width_in=6.0)
    axes = figure.add_subplot()
    bins = np.linspace(0, 1, 21)
    for system, (label, values) in scores.items():
        colour = system_colour(system, order)
        data = np.asarray(values, dtype=float)
        axes.hist(
            data,
            bins=bins,
            color=colour,
            alpha=0.45,
            label=f"{label} (median {np.median(data):.2f})",
        )
        axes.hist(data, bins=bins, histtype="step", color=colour, linewidth=1.0)
        axes.axvline(np.median(data), color=colour, linestyle="--", linewidth=1.0)
    axes.set_xlim(0, 1)
    axes.set_xlabel("ROUGE-1 F per case")
    axes.set_ylabel("Cases")
    # More than two long legend entries side by side would be wider than the figure.
    axes.legend(
        frameon=False, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=min(len(scores), 2)
    )
    return _png(figure)


@_styled
def agreement_png(
    panels: Sequence[tuple[str, str, str, Sequence[float], Sequence[float]]],
    *,
    order: Sequence[str],
    n_cases: int,
    tolerance: float,
    quantities: Sequence[tuple[str, str]] = (
        ("dose", "total dose (Gy)"),
        ("fractions", "fractions"),
    ),
    seed: int = 0,
) -> bytes:
    """Prescribed (x) versus predicted (y) per case, identity line, one row per quantity.

    `panels` holds (system, label, quantity, prescribed, predicted) for the cases whose answer
    states the quantity; "exact" is agreement within `tolerance`, as the evaluation scores it. Points are jittered a little (seeded) because many cases share the
    same standard prescription.
    """
    systems = list(dict.fromkeys(panel[0] for panel in panels))
    rows = [q for q, _ in quantities if any(panel[2] == q for panel in panels)]
    if not rows:
        return _nothing_to_draw_png("no case states a dose or a fraction count")
    figure = _new_figure(2.75 * len(rows), width_in=min(WIDTH_IN, 3.2 * len(systems) + 0.3))
    rng = np.random.default_rng(seed)
    axes_grid = figure.subplots(len(rows), len(systems), squeeze=False)
    titles = dict(quantities)
    for system, label, quantity, prescribed, predicted in panels:
        axes = axes_grid[rows.index(quantity)][systems.index(system)]
        x = np.asarray(prescribed, dtype=float)
        y = np.asarray(predicted, dtype=float)
        span = max(float(np.max(np.concatenate([x, y]))) if x.size else 1.0, 1.0) * 1.05
        axes.plot([0, span], [0, span], color="#333333", linewidth=0.7, linestyle="--")
        if x.size:
            jitter = span * 0.006
            axes.scatter(
                x + rng.normal(0, jitter, x.size),
                y + rng.normal(0, jitter, y.size),
                s=10,
                alpha=0.55,
                color=system_colour(system, order),
                linewidths=0,
            )
            exact = float(np.mean(np.abs(x - y) <= tolerance))
            text = f"readable: {x.size} of {n_cases}\nexact: {exact:.0%}"
        else:
            text = f"readable: 0 of {n_cases}"
        axes.text(
            0.04,
            0.96,
            text,
            transform=axes.transAxes,
            va="top",
            fontsize=7.5,
            bbox={"boxstyle": "round,pad=0.3", "facecolor": "white", "edgecolor": "#cccccc"},
        )
        axes.set_xlim(0, span)
        axes.set_ylim(0, span)
        axes.set_aspect("equal")
        axes.set_title(label)
        axes.set_xlabel(f"Prescribed {titles[quantity]}")
        axes.set_ylabel(f"Predicted {titles[quantity]}")
    return _png(figure)
