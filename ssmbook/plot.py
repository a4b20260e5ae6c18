"""One figure style for the book."""
from __future__ import annotations

import matplotlib

PALETTE = ["#1f5fa8", "#d1495b", "#2e933c", "#edae49", "#66456b", "#00798c", "#8c6d31", "#555555"]


def use_style() -> None:
    """Apply the book's matplotlib style (small, clean, colour-blind-friendly cycle)."""
    from cycler import cycler

    matplotlib.rcParams.update({
        "figure.figsize": (6.4, 3.6),
        "figure.dpi": 100,
        "savefig.dpi": 100,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "axes.prop_cycle": cycler(color=PALETTE),
        "font.size": 10,
        "axes.titlesize": 11,
        "legend.frameon": False,
        "image.cmap": "viridis",
    })


def figure(nrows: int = 1, ncols: int = 1, width: float = 6.4, height: float = 3.6, **kw):
    """``plt.subplots`` with the book's default size and a tight layout."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(nrows, ncols, figsize=(width, height), layout="constrained", **kw)
    return fig, ax
