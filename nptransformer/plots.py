"""Figures: training curves, accuracy by length and attention heatmaps (matplotlib)."""

import numpy

from .backend import to_numpy


def _pyplot():
    # The backend is left to matplotlib (inline in notebooks, Agg without a display);
    # the command line selects Agg itself before plotting.
    import matplotlib.pyplot as plt

    return plt


def plot_history(history, path=None):
    """Plot training loss (log scale) and held-out accuracy against step.

    history: the dict returned by Trainer.run. Saves a PNG to path when given and
    returns the matplotlib Figure.
    """
    plt = _pyplot()
    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(10, 3.6))
    loss_axis.plot(history["step"], history["loss"], linewidth=1)
    loss_axis.set_yscale("log")
    loss_axis.set_xlabel("step")
    loss_axis.set_ylabel("training loss")
    loss_axis.grid(alpha=0.3)
    accuracy_axis.plot(
        history["eval_step"], history["eval_accuracy"], marker="o", markersize=3
    )
    accuracy_axis.set_ylim(-0.02, 1.02)
    accuracy_axis.set_xlabel("step")
    accuracy_axis.set_ylabel("exact-sequence accuracy (held out)")
    accuracy_axis.grid(alpha=0.3)
    figure.tight_layout()
    if path:
        figure.savefig(path, dpi=110)
        plt.close(figure)
    return figure


def plot_attention(weights, query_labels=None, key_labels=None, title=None, path=None):
    """Draw one heatmap per head of attention weights (H, Tq, Tk) or (Tq, Tk).

    Rows are queries, columns keys; each row sums to 1 (or 0 when fully masked).
    Saves a PNG to path when given and returns the Figure.
    """
    plt = _pyplot()
    weights = numpy.asarray(to_numpy(weights), dtype=numpy.float64)
    if weights.ndim == 2:
        weights = weights[None]
    if weights.ndim != 3:
        raise ValueError(
            f"weights must have shape (H, Tq, Tk) or (Tq, Tk), got {weights.shape}"
        )
    heads = weights.shape[0]
    figure, axes = plt.subplots(
        1, heads, figsize=(2.6 * heads + 0.6, 2.8), squeeze=False
    )
    for head, axis in enumerate(axes[0]):
        axis.imshow(weights[head], vmin=0.0, vmax=1.0, cmap="viridis")
        axis.set_title(f"head {head}", fontsize=9)
        if key_labels is not None:
            axis.set_xticks(range(len(key_labels)), key_labels, fontsize=7)
        if query_labels is not None:
            axis.set_yticks(range(len(query_labels)), query_labels, fontsize=7)
        axis.set_xlabel("key", fontsize=8)
        axis.set_ylabel("query", fontsize=8)
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    if path:
        figure.savefig(path, dpi=110)
        plt.close(figure)
    return figure


def plot_accuracy_by_length(accuracy_by_length, train_max_length, path=None):
    """Plot exact-sequence accuracy against example length.

    accuracy_by_length: dict length -> accuracy; a dashed line marks the longest
    training length. Saves a PNG to path when given and returns the Figure.
    """
    plt = _pyplot()
    lengths = sorted(accuracy_by_length)
    figure, axis = plt.subplots(figsize=(6, 3.6))
    axis.plot(
        lengths, [accuracy_by_length[n] for n in lengths], marker="o", markersize=4
    )
    axis.axvline(
        train_max_length + 0.5,
        linestyle="--",
        color="gray",
        label="longest training length",
    )
    axis.set_ylim(-0.02, 1.02)
    axis.set_xlabel("length")
    axis.set_ylabel("exact-sequence accuracy")
    axis.legend(loc="lower left")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    if path:
        figure.savefig(path, dpi=110)
        plt.close(figure)
    return figure
