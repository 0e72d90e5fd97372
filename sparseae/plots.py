"""Result figures: accuracy comparisons, the label-budget curve and sparsity diagnostics.

Figures are built with matplotlib's object API on the Agg canvas, so no
pyplot state is kept and nothing stays open after a figure is saved.
"""

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .outputs import atomic_write


def new_figure(width, height):
    """Return a Figure of the given size in inches, attached to an Agg canvas."""
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure, path):
    """Save figure as a PNG at path, atomically."""
    with atomic_write(path) as handle:
        figure.savefig(handle, format="png", dpi=120)


def plot_accuracy_bars(path, names, per_seed_accuracies, title):
    """Save a bar chart of mean accuracy (%) per model with +-1 sd error bars and per-seed points."""
    figure = new_figure(6.0, 4.0)
    axes = figure.add_subplot()
    values = [100.0 * np.asarray(accuracies) for accuracies in per_seed_accuracies]
    means = [value.mean() for value in values]
    spreads = [value.std(ddof=1) if len(value) > 1 else 0.0 for value in values]
    positions = np.arange(len(names))
    axes.bar(positions, means, yerr=spreads, capsize=6, color="#9ecae1", edgecolor="#3182bd")

    # Small horizontal offsets keep points from different seeds apart.
    rng = np.random.default_rng(0)
    for position, value in zip(positions, values):
        offsets = rng.uniform(-0.15, 0.15, size=len(value))
        axes.scatter(position + offsets, value, color="black", s=14, zorder=3)
    for position, mean in zip(positions, means):
        axes.annotate(f"{mean:.2f}", (position, mean), xytext=(0, 4),
                      textcoords="offset points", ha="right", fontsize=9)

    low = min(value.min() for value in values)
    high = max(value.max() for value in values)
    margin = max(1.0, 0.25 * (high - low))
    axes.set_ylim(max(0.0, low - margin), min(100.0, high + margin))
    axes.set_xticks(positions, names)
    axes.set_ylabel("accuracy (%)")
    axes.set_title(title, fontsize=10)
    save_figure(figure, path)


def plot_label_budget(path, budgets, curves, title):
    """Save accuracy (%) against labels per class on a log axis, mean with +-1 sd bands.

    curves maps a curve name to a list, per budget, of per-seed accuracies.
    """
    figure = new_figure(6.0, 4.0)
    axes = figure.add_subplot()
    for name, per_budget in curves.items():
        values = [100.0 * np.asarray(accuracies) for accuracies in per_budget]
        means = np.array([value.mean() for value in values])
        spreads = np.array([value.std(ddof=1) if len(value) > 1 else 0.0 for value in values])
        (line,) = axes.plot(budgets, means, marker="o", label=name)
        axes.fill_between(budgets, means - spreads, means + spreads, alpha=0.2,
                          color=line.get_color())
    axes.set_xscale("log")
    axes.set_xticks(budgets, [str(budget) for budget in budgets])
    axes.minorticks_off()
    axes.set_xlabel("labelled images per digit")
    axes.set_ylabel("accuracy (%)")
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend()
    save_figure(figure, path)


def plot_rho_hat_histograms(path, targets, rho_hats):
    """Save one histogram panel per target p of the hidden units' mean activations rho_hat_j."""
    figure = new_figure(3.0 * len(targets), 2.8)
    panels = figure.subplots(1, len(targets), squeeze=False)[0]
    for axes, target, rho_hat in zip(panels, targets, rho_hats):
        # Each panel zooms on its own values and target, because p = 0.01 and
        # p = 0.8 cannot share one readable axis.
        low = min(np.min(rho_hat), target)
        high = max(np.max(rho_hat), target)
        pad = 0.25 * (high - low) + 0.005
        bins = np.linspace(max(0.0, low - pad), min(1.0, high + pad), 31)
        axes.hist(rho_hat, bins=bins, color="#9ecae1", edgecolor="#3182bd")
        axes.axvline(target, color="crimson", linestyle="--", label=f"target p={target:g}")
        axes.axvline(np.mean(rho_hat), color="black", label=f"mean {np.mean(rho_hat):.3f}")
        axes.set_xlabel("mean activation of a hidden unit")
        axes.set_title(f"p = {target:g}", fontsize=10)
        axes.legend(fontsize=7)
    panels[0].set_ylabel("hidden units")
    save_figure(figure, path)


def plot_sparsity_summary(path, targets, mean_rho_hats, test_errors):
    """Save achieved mean rho_hat and test reconstruction error against target p."""
    figure = new_figure(8.0, 3.2)
    left, right = figure.subplots(1, 2)
    # Log axes, so that a miss at p = 0.01 is as visible as one at p = 0.8.
    span = [min(min(targets), min(mean_rho_hats)) / 1.5, 1.0]
    left.plot(span, span, color="grey", linestyle=":", label="achieved = target")
    left.plot(targets, mean_rho_hats, marker="o", label="achieved")
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel("target p")
    left.set_ylabel("achieved mean p\u0302 over hidden units")
    left.legend(fontsize=8)
    right.plot(targets, test_errors, marker="o")
    right.set_xscale("log")
    right.set_xlabel("target p")
    right.set_ylabel("test reconstruction error\n(squared error per image)")
    for axes in (left, right):
        axes.grid(alpha=0.3)
    save_figure(figure, path)
