"""The attention's diagnostics across runs: what 03 draws and 04 tabulates from each run's ``scores.json``.

``02-evaluate-cross-domain`` records, per split, the statistics of :mod:`aiblib.evaluation.attention_stats`
(``attention_stats`` in ``scores.json``). Here:

- :func:`attention_runs`: one row per AIBR run and domain (protocol, depth, β, seed, domain, the statistics);
- :func:`attention_by_beta`: their mean and standard deviation over seeds per protocol, depth, β and domain;
- :func:`mu_per_class` and :func:`plot_mu_per_class`: where the attention is high and low, class by class and
  domain by domain (day against dusk);
- :func:`plot_against_beta`: mIoU and selectivity against β per domain.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

__all__ = ["attention_runs", "attention_by_beta", "mu_per_class", "plot_mu_per_class", "plot_against_beta"]

KEYS = ["protocol", "depth", "beta", "domain"]
# the scalar statistics of aiblib.evaluation.attention_stats (named here too: reports sit below evaluation; a test
# keeps the two lists equal)
STAT_KEYS = ("mu_mean", "mu_spatial_std", "std_mean", "selectivity_to_noise", "kl_bits")


def attention_runs(results_root: str | Path) -> pd.DataFrame:
    """One row per AIBR run under ``results_root`` (``*/scores.json``) and scored domain that recorded the
    attention's statistics: ``name``, protocol, depth, beta, seed, domain, ``mIoU`` and :data:`STAT_KEYS`.
    Empty (with those columns) when none did."""
    rows = []
    for path in sorted(Path(results_root).glob("*/scores.json")):
        s = json.loads(path.read_text())
        for domain, stats in (s.get("attention_stats") or {}).items():
            if stats:
                rows.append({"name": s["name"], "protocol": s["protocol"], "depth": s["depth"], "beta": float(s["beta"]),
                             "seed": s["seed"], "domain": domain, "mIoU": s["scores"][domain]["mIoU"],
                             **{k: stats[k] for k in STAT_KEYS}})
    return pd.DataFrame(rows, columns=["name", "protocol", "depth", "beta", "seed", "domain", "mIoU", *STAT_KEYS])


def attention_by_beta(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds (``<key> mean``, ``<key> std``; std NaN for one seed) of mIoU and
    each statistic, per protocol, depth, β and domain, with the number of ``seeds``."""
    rows = []
    for key, group in runs.groupby(KEYS, sort=True):
        row = dict(zip(KEYS, key), seeds=len(group))
        for column in ["mIoU", *STAT_KEYS]:
            values = group[column].astype(float).replace([np.inf], np.nan).dropna()
            row[f"{column} mean"] = values.mean() if len(values) else math.nan
            row[f"{column} std"] = values.std(ddof=1) if len(values) > 1 else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def mu_per_class(scores: dict) -> pd.DataFrame | None:
    """Mean ``mu`` per class (rows) and domain (columns) of one run's ``scores.json`` content; None for a run
    without attention statistics (a baseline, or a file written before they were recorded)."""
    stats = {d: s for d, s in (scores.get("attention_stats") or {}).items() if s}
    if not stats:
        return None
    table = pd.DataFrame({d: {c: (math.nan if v is None else v) for c, v in s["mu_per_class"].items()}
                          for d, s in stats.items()})
    table.index.name = "class"
    return table


def plot_mu_per_class(table: pd.DataFrame, *, title: str = ""):
    """Grouped bars: the mean ``mu`` of each class (x) in each domain (one bar each); returns the figure."""
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(table) + 2), 3.8))
    width = 0.8 / max(len(table.columns), 1)
    x = np.arange(len(table))
    for i, domain in enumerate(table.columns):
        ax.bar(x + (i - (len(table.columns) - 1) / 2) * width, table[domain].to_numpy(), width, label=domain)
    ax.set_xticks(x, table.index, rotation=45, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("mean attention mu")
    ax.legend(fontsize=8)
    ax.set_title(title or "attention mu per class (labelled pixels; no bar: class absent)")
    fig.tight_layout()
    return fig


def plot_against_beta(table: pd.DataFrame, *, summary: pd.DataFrame | None = None, title: str = ""):
    """Two panels against β (log axis; β = 0 drawn at the left edge): mIoU and the selectivity
    (``mu_spatial_std``) with the noise (``std_mean``), one line per domain, error bars the std over seeds.
    ``table``: :func:`attention_by_beta` rows of one protocol and depth. ``summary``
    (:func:`aiblib.reporting.report.summarize`): its baseline of that protocol and depth is drawn dashed.
    Returns the figure."""
    betas = sorted(table["beta"].unique())
    positive = [b for b in betas if b > 0]
    zero_at = min(positive) / 10 if positive else 1e-5
    baseline = None
    if summary is not None:
        protocol, depth = table["protocol"].iloc[0], table["depth"].iloc[0]
        baseline = summary[(summary["protocol"] == protocol) & (summary["depth"] == depth)
                           & (summary["method"] == "baseline")]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for i, (domain, rows) in enumerate(table.groupby("domain", sort=True)):
        rows = rows.sort_values("beta")
        x = rows["beta"].where(rows["beta"] > 0, zero_at)
        color = f"C{i}"
        axes[0].errorbar(x, rows["mIoU mean"], yerr=rows["mIoU std"].fillna(0), marker="o", capsize=3, color=color,
                         label=domain)
        axes[1].errorbar(x, rows["mu_spatial_std mean"], yerr=rows["mu_spatial_std std"].fillna(0), marker="o",
                         capsize=3, color=color, label=f"{domain}: selectivity")
        axes[1].plot(x, rows["std_mean mean"], linestyle=":", color=color, label=f"{domain}: noise")
        if baseline is not None and f"{domain} mean" in baseline:
            for value in baseline[f"{domain} mean"].dropna():
                axes[0].axhline(value, color=color, linestyle="--", linewidth=1)
    for ax, label in zip(axes, ("mIoU (%)  (dashed: baseline)", "spatial std of mu / mean std")):
        ax.set_xscale("log")
        ax.set_xlabel("β (β = 0 at the left edge)")
        ax.set_ylabel(label)
        ax.legend(fontsize=7)
    fig.suptitle(title or "AIBR against β")
    fig.tight_layout()
    return fig
