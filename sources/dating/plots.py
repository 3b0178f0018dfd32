"""PNG plots of a training report: confusion matrix and reliability diagram (matplotlib, Agg backend)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np


def _figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt, *plt.subplots(figsize=(width, height), dpi=100)


def _png(plt, fig) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def confusion_png(report: dict[str, Any]) -> bytes:
    """Row-normalised confusion matrix of test passages, with counts in the cells."""
    plt, fig, ax = _figure(6.5, 5.5)
    counts = np.asarray(report.get("confusion") or [[0]], dtype=float)
    classes = list(report.get("classes", []))
    rows = classes + (["untrained"] if counts.shape[0] > len(classes) else [])
    shares = counts / np.clip(counts.sum(axis=1, keepdims=True), 1, None)
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for (i, j), count in np.ndenumerate(counts):
        if count:
            color = "white" if shares[i, j] > 0.6 else "black"
            ax.text(j, i, f"{int(count)}", ha="center", va="center", fontsize=7, color=color)
    ax.set_xticks(range(len(classes)), classes, rotation=45)
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("predicted century")
    ax.set_ylabel("true century")
    accuracy = report.get("accuracy")
    ax.set_title(f"Held-out passages: accuracy {accuracy:.3f}" if accuracy is not None else "no test passages")
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of the true century's passages")
    return _png(plt, fig)


def reliability_png(report: dict[str, Any]) -> bytes:
    """Accuracy against confidence per bin, before and after temperature scaling; the diagonal is perfect."""
    plt, fig, ax = _figure(5.5, 5)
    bins = report.get("reliability") or {}
    edges = np.asarray(bins.get("edges", np.linspace(0, 1, 16)))
    centers = (edges[:-1] + edges[1:]) / 2
    width = edges[1] - edges[0]
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect calibration")
    before = f"softmax, T=1 (ECE {report.get('ece_uncalibrated') or 0:.3f})"
    after = f"temperature T={report.get('temperature', 1):.2f} (ECE {report.get('ece') or 0:.3f})"
    for prefix, label, color, shift in (
        ("_uncalibrated", before, "tab:orange", -width / 4),
        ("", after, "tab:blue", width / 4),
    ):
        counts = np.asarray(bins.get("counts" + prefix, []))
        if counts.size == 0:
            continue
        used = counts > 0
        accuracy = np.asarray(bins["accuracy" + prefix])
        ax.bar(centers[used] + shift, accuracy[used], width=width / 2, color=color, alpha=0.8, label=label)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (top-1 probability)")
    ax.set_ylabel("accuracy")
    ax.set_title("Reliability on held-out passages")
    ax.legend(loc="upper left", fontsize=8)
    return _png(plt, fig)
