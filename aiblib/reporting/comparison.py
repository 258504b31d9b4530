"""Baseline against AIBR, paired by seed, with a Student-t confidence interval of the difference.

Runs trained with the same seed share their initial weights' seed, sampling order and
augmentations, so the per-seed difference ``AIBR - baseline`` removes much of the seed's noise.
:func:`paired_comparison` turns the runs of :func:`aiblib.reporting.report.collect` into one row per
protocol and domain::

    protocol, domain, baseline_mean, aibr_mean, diff_mean, diff_ci_low, diff_ci_high, seeds

(mIoU in percent; the interval is ``mean ± t(0.975, n-1) · sd / sqrt(n)`` over the n paired
seeds, NaN with fewer than 2). :func:`plot_comparison` draws the differences with their intervals.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy import stats

from aiblib.reporting.report import collect

__all__ = ["COLUMNS", "t_interval", "paired_comparison", "gather", "recorded", "plot_comparison"]

COLUMNS = ["protocol", "domain", "baseline_mean", "aibr_mean", "diff_mean", "diff_ci_low", "diff_ci_high", "seeds"]


def t_interval(values: list[float] | np.ndarray, confidence: float = 0.95) -> tuple[float, float, float]:
    """``(mean, low, high)``: the Student-t interval of the mean of ``values`` (NaN bounds for fewer than 2)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if x.size < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + confidence / 2, df=x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return mean, mean - half, mean + half


def _pairs(runs: pd.DataFrame, protocol: str, domain: str) -> pd.DataFrame:
    """Columns ``baseline`` and ``aibr``: the domain's mIoU of each seed run by both methods."""
    sub = runs[(runs["protocol"] == protocol) & runs[domain].notna()]
    wide = sub.pivot_table(index="seed", columns="method", values=domain, aggfunc="mean")
    if not {"baseline", "AIBR"} <= set(wide.columns):
        return pd.DataFrame(columns=["baseline", "aibr"])
    return wide[["baseline", "AIBR"]].dropna().rename(columns={"AIBR": "aibr"})


def paired_comparison(runs: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """One row per protocol and domain with both methods run on at least one common seed (see the module
    docstring). ``runs``: :func:`aiblib.reporting.report.collect`'s table; every AIBR run of a protocol is taken
    as one method, so give it the runs of one β."""
    rows = []
    for protocol in sorted(runs["protocol"].unique()):
        for domain in [c for c in runs.columns if ":" in c]:
            pairs = _pairs(runs, protocol, domain)
            if pairs.empty:
                continue
            mean, low, high = t_interval(pairs["aibr"] - pairs["baseline"], confidence)
            rows.append({"protocol": protocol, "domain": domain, "baseline_mean": float(pairs["baseline"].mean()),
                         "aibr_mean": float(pairs["aibr"].mean()), "diff_mean": mean, "diff_ci_low": low,
                         "diff_ci_high": high, "seeds": len(pairs)})
    return pd.DataFrame(rows, columns=COLUMNS)


def gather(folders: list[Path], confidence: float = 0.95) -> pd.DataFrame | None:
    """:func:`paired_comparison` of the runs under every folder of ``folders`` that holds
    ``*/scores.json`` (``make seeds`` writes one per protocol); None when none does."""
    found = [f for f in folders if any(Path(f).glob("*/scores.json"))]
    if not found:
        return None
    return paired_comparison(pd.concat([collect(f) for f in found], ignore_index=True), confidence)


def recorded(results_root: Path) -> pd.DataFrame | None:
    """The ``comparison.csv`` of every folder under ``results_root`` that ``benchmarks/cuda_seeds.py``
    wrote (it leaves ``device.json`` beside it), with the ``folder`` and the ``device`` it ran on in front;
    None when there is none."""
    tables = []
    for csv in sorted(Path(results_root).glob("*/comparison.csv")):
        device = csv.parent / "device.json"
        if device.is_file():
            table = pd.read_csv(csv)
            table.insert(0, "device", json.loads(device.read_text())["device"])
            table.insert(0, "folder", csv.parent.name)
            tables.append(table)
    return pd.concat(tables, ignore_index=True) if tables else None


def plot_comparison(table: pd.DataFrame, title: str = ""):
    """AIBR - baseline mIoU per protocol and domain, with the 95 % interval as an error bar. Returns the figure."""
    fig, ax = plt.subplots(figsize=(1.6 * max(len(table), 2) + 2, 3.6))
    labels = [f"{p}\n{d}" for p, d in zip(table["protocol"], table["domain"])]
    x = np.arange(len(table))
    low = (table["diff_mean"] - table["diff_ci_low"]).fillna(0).to_numpy()
    high = (table["diff_ci_high"] - table["diff_mean"]).fillna(0).to_numpy()
    ax.errorbar(x, table["diff_mean"], yerr=[low, high], fmt="o", capsize=5, color="C3")
    ax.axhline(0.0, color="0.5", linewidth=1, linestyle="--")
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_xlim(-0.5, len(table) - 0.5)
    ax.set_ylabel("AIBR − baseline mIoU (points)")
    ax.set_title(title or f"paired by seed, 95 % t interval (n = {', '.join(map(str, sorted(set(table['seeds']))))})")
    fig.tight_layout()
    return fig
