"""The learning-curve plot written next to history.csv."""

from __future__ import annotations

from pathlib import Path

from tandem.files import write_atomically


def plot_learning_curve(history: list[dict], path: str | Path) -> None:
    """Draw loss and val_loss per epoch (1-based, as Keras prints them) into a PNG at `path`.

    Uses matplotlib's Agg canvas directly, so it neither needs a display nor changes the
    pyplot backend of the caller's session.

    Args:
        history: rows of history.csv (`epoch` 0-based, `loss`, optionally `val_loss`).
        path: the PNG to write (replaced atomically).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    epochs = [row["epoch"] + 1 for row in history]
    for key, label in (("loss", "training loss"), ("val_loss", "validation loss")):
        points = [(e, row[key]) for e, row in zip(epochs, history, strict=True) if key in row]
        if points:
            axes.plot(*zip(*points, strict=True), marker="o", markersize=3, label=label)
    axes.set_xlabel("epoch")
    axes.set_ylabel("loss")
    axes.set_title("learning curve")
    axes.grid(True, alpha=0.3)
    if history:
        axes.legend()
    figure.tight_layout()
    write_atomically(Path(path), lambda temporary: figure.savefig(temporary, format="png"))
