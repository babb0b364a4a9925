"""The table as a plot: the metric against the bit settings, one line per row label, one panel per model."""
from __future__ import annotations

import io
import math

from ..utils.atomic import atomic_write
from .cells import bits_name, display
from .table import Table, plot_order


def write_plot(table: Table, path: str) -> None:
    """Write ``table`` as a PNG to ``path`` (atomically): per model, our numbers as solid lines, the
    papers' as dashed lines of the same colour, full precision as a dotted line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bits = sorted(table.bits, key=plot_order)
    ncols = min(3, len(table.models))
    nrows = math.ceil(len(table.models) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.8 * ncols, 3.6 * nrows), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, model in zip(axes.flat, table.models):
        for i, label in enumerate(table.labels):
            colour = colours[i % len(colours)]
            ours = [(x, table.entries[(label, model, b)].value) for x, b in enumerate(bits)
                    if (label, model, b) in table.entries and table.entries[(label, model, b)].value is not None]
            theirs = [(x, table.entries[(label, model, b)].paper) for x, b in enumerate(bits)
                      if (label, model, b) in table.entries and table.entries[(label, model, b)].paper is not None]
            if ours:
                ax.plot(*zip(*ours), "o-", color=colour, label=display(label))
            if theirs:
                ax.plot(*zip(*theirs), "s--", color=colour, alpha=0.7, label=f"{display(label)} (paper)")
        if table.has_drop and table.fp.get(model) is not None:
            ax.axhline(table.fp[model], color="gray", ls=":", lw=1, label="FP")
        if table.papers and table.paper_fp.get(model) is not None:
            ax.axhline(table.paper_fp[model], color="gray", ls="--", lw=0.8, alpha=0.6, label="FP (paper)")
        ax.set_xticks(range(len(bits)), [bits_name(b) for b in bits])
        ax.set(title=model, xlabel="bits", ylabel=table.metric)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(table.models):]:
        ax.set_visible(False)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write(path, lambda f: f.write(buf.getvalue()))
