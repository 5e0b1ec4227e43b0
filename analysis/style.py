"""One look for every figure: a colour-blind-safe palette with one colour per method across
all figures of a report, class names where the dataset has them, layout checked so that no
text leaves the canvas, PNG + PDF.
"""
from __future__ import annotations

import functools
from pathlib import Path

import matplotlib

# Okabe & Ito (2008), distinguishable under the common colour-vision deficiencies; yellow
# last (weak on white). Paul Tol's "muted" scheme continues it for studies with more methods.
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000",
             "#F0E442")
TOL_MUTED = ("#332288", "#88CCEE", "#44AA99", "#117733", "#999933", "#DDCC77", "#CC6677",
             "#882255", "#AA4499", "#DDDDDD")
PALETTE = OKABE_ITO + TOL_MUTED

RC = {"font.size": 9, "axes.titlesize": 9, "axes.labelsize": 9, "legend.fontsize": 8,
      "xtick.labelsize": 8, "ytick.labelsize": 8, "axes.spines.top": False,
      "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3, "savefig.dpi": 130,
      "figure.constrained_layout.use": True, "pdf.fonttype": 42}

# The datasets' own class names, in label order (torchvision's and the datasets' papers').
CLASS_NAMES = {
    "fashion_mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                      "Shirt", "Sneaker", "Bag", "Ankle boot"),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                "ship", "truck"),
}


class ClippedFigure(RuntimeError):
    """A figure whose text still leaves the canvas after the layout was given room."""


def class_names(dataset: str, num_classes: int) -> list[str]:
    """Names of the classes of ``dataset`` in label order; indices where it has none."""
    names = CLASS_NAMES.get(dataset)
    if names is None or len(names) != num_classes:
        return [str(i) for i in range(num_classes)]
    return list(names)


def colours(labels) -> dict:
    """label -> colour, in first-seen order; the report builds it once over the whole study
    (methods and series names) and hands it to every figure, so a method keeps its colour."""
    out = {}
    for label in labels:
        if label not in out:
            out[label] = PALETTE[len(out) % len(PALETTE)]
    return out


# Never set on import (matplotlib.rcParams stay the user's): every figure of the package is
# drawn inside ``styled``, which lends RC for the call and gives the user's settings back.
def styled(draw):
    """Decorator: ``draw`` (a function that makes, fills and saves figures) runs inside
    ``matplotlib.rc_context(RC)``, so its figures get the project's look and the caller's
    rcParams are as they were afterwards."""
    @functools.wraps(draw)
    def under_rc(*args, **kwargs):
        with matplotlib.rc_context(RC):
            return draw(*args, **kwargs)
    return under_rc


_FIGURE_KW = ("figsize", "dpi", "facecolor", "layout")   # Figure's; the rest: its subplots


def figure(*args, **kwargs):
    """``plt.subplots``'s (figure, axes) under the project's style (constrained layout), as a
    Figure on its own Agg canvas: no pyplot, so no backend is chosen for the caller (a
    notebook keeps its inline one) and nothing is left open. The figure's text keeps the
    style where the drawing function is ``styled``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    with matplotlib.rc_context(RC):
        fig = Figure(**{k: kwargs.pop(k) for k in _FIGURE_KW if k in kwargs})
        FigureCanvasAgg(fig)
        return fig, fig.subplots(*args, **kwargs)


def legend(fig, ax) -> None:
    """Legend inside the axes for a few entries, outside on the right for more (so it never
    hides the data)."""
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return
    if len(handles) <= 3:
        ax.legend(handles, labels, loc="best")
    else:
        fig.legend(handles, labels, loc="outside right upper")


def overflow(fig) -> tuple[float, float, float, float]:
    """How far (inches) the drawn artists reach beyond the left, bottom, right and top edges
    of the canvas (matplotlib's tight bbox vs the figure bbox); all <= 0 when nothing is cut."""
    fig.canvas.draw()
    tight = fig.get_tightbbox(fig.canvas.get_renderer())
    w, h = fig.get_size_inches()
    return (-tight.x0, -tight.y0, tight.x1 - w, tight.y1 - h)


def fit_canvas(fig, tries: int = 4, tol: float = 0.01) -> None:
    """Grow the figure until nothing leaves it (long tick labels such as
    'ELM + DRW (λ=0.5)' under bars); raise ClippedFigure if that does not converge."""
    for _ in range(tries):
        left, bottom, right, top = overflow(fig)
        if max(left, bottom, right, top) <= tol:
            return
        w, h = fig.get_size_inches()
        fig.set_size_inches(w + max(left, 0) + max(right, 0) + 0.1,
                            h + max(bottom, 0) + max(top, 0) + 0.1)
        if not fig.get_constrained_layout():
            fig.tight_layout()
    if max(overflow(fig)) > tol:
        raise ClippedFigure(f"text leaves the canvas of '{fig.get_label() or 'figure'}' "
                            f"by {max(overflow(fig)):.2f} in")


def save(fig, out) -> Path:
    """Check the layout, write ``out``.png and ``out``.pdf, close; returns the PNG path."""
    out = Path(out).with_suffix("")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.set_label(out.name)
    fit_canvas(fig)
    fig.canvas.draw()
    tight = fig.get_tightbbox(fig.canvas.get_renderer())
    w, h = fig.get_size_inches()
    # the layout check's numbers travel in the PNG (tEXt chunks), so a saved figure can be
    # checked without the code that drew it
    meta = {"elm:tightbbox": ",".join(f"{v:.4f}" for v in (tight.x0, tight.y0, tight.x1,
                                                          tight.y1)),
            "elm:figsize": f"{w:.4f},{h:.4f}"}
    fig.savefig(str(out) + ".png", metadata=meta)
    fig.savefig(str(out) + ".pdf")
    return Path(str(out) + ".png")
