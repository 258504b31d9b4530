"""Baseline against AIBR of one configuration, paired by seed: the Student-t interval of the difference and the
power of the paired t-test.

Runs trained with the same seed share their initial weights' seed, sampling order and augmentations, so the
per-seed difference ``AIBR - baseline`` removes much of the seed's noise. A configuration is what a run's
``scores.json`` recorded of :data:`~aiblib.reporting.report.EXPERIMENT_KEYS` and the precision its training computed
in (:func:`~aiblib.reporting.report.trained_precision`) (protocol, depth, β, output stride,
the recipe, ...); each AIBR configuration is paired with the baseline runs that agree with it on every key but
those of ``ATTENTION_KEYS`` (β, train_samples, mean_mask), which a baseline ignores. A key that an older
``scores.json`` lacks reads as ``"?"``, a value of its own: such runs pair and pool only with runs that lack it
too, never with a recorded value. Two runs of one configuration and seed that score a domain differently raise a
:class:`~aiblib.errors.UserError` that names both; the same run gathered twice counts once.

:func:`paired_comparison` turns the runs of :func:`gather` into one row per AIBR configuration and domain::

    protocol, depth, beta, recipe, domain, baseline_mean, aibr_mean, diff_mean, diff_ci_low, diff_ci_high,
    seeds, diff_sd, min_detectable_diff, seeds_for_1pt

``recipe`` lists the other keys in which the configuration differs from another of its protocol and depth in the
table (``lr=0.2, iterations=1050``; empty when none does). mIoU in percent. Over the n paired seeds: the interval
``mean ± t(0.975, n-1) · sd / sqrt(n)`` and ``diff_sd``, the sample sd of the differences (NaN with fewer than 2);
``min_detectable_diff``, the smallest true mean difference that a two-sided paired t-test at the 5 % level detects
with 80 % power over n seeds, and ``seeds_for_1pt``, the paired seeds needed to detect 1 point so (an integer,
missing with fewer than 2 seeds), both taking the observed ``diff_sd`` for the true one (noncentral t:
:func:`t_power`). :func:`plot_comparison` draws the differences with their intervals.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy import optimize, stats

from aiblib.errors import UserError
from aiblib.paths import project_relative
from aiblib.reporting.report import ATTENTION_KEYS, PAIRING_KEYS, UNRECORDED, collect, recipes

__all__ = ["COLUMNS", "t_interval", "t_power", "min_detectable_diff", "seeds_needed", "paired_comparison", "gather",
           "recorded", "plot_comparison"]

SHOWN = ["protocol", "depth", "beta"]  # the configuration keys with a column of their own; the others go in recipe
COLUMNS = [*SHOWN, "recipe", "domain", "baseline_mean", "aibr_mean", "diff_mean", "diff_ci_low", "diff_ci_high",
           "seeds", "diff_sd", "min_detectable_diff", "seeds_for_1pt"]
BASELINE_KEYS = tuple(k for k in PAIRING_KEYS if k not in ATTENTION_KEYS)
POWER, ALPHA = 0.8, 0.05  # of the power columns: 80 % power, two-sided test at the 5 % level


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


def t_power(effect: float, n: int, *, alpha: float = ALPHA) -> float:
    """The power of the two-sided paired t-test at level ``alpha`` over ``n`` pairs whose true mean difference is
    ``effect`` standard deviations of the differences: P(|T| > t(1 - alpha/2, n-1)) for T noncentral t with n-1
    degrees of freedom and noncentrality ``effect · sqrt(n)``. (The lower tail is taken as P(-T > t), by symmetry:
    scipy 1.17's ``nct.cdf`` is NaN far in the tail, e.g. at -1.98 with 99 degrees of freedom and noncentrality 10.)"""
    crit, nc = stats.t.ppf(1 - alpha / 2, n - 1), effect * math.sqrt(n)
    return float(stats.nct.sf(crit, n - 1, nc) + stats.nct.sf(crit, n - 1, -nc))


def min_detectable_diff(sd: float, n: int, *, power: float = POWER, alpha: float = ALPHA) -> float:
    """The smallest true mean difference that ``n`` pairs whose differences have sd ``sd`` detect with ``power``
    (:func:`t_power`, solved for the effect): 0 when ``sd`` is 0, NaN when ``n`` < 2 or ``sd`` is NaN."""
    if n < 2 or not math.isfinite(sd):
        return math.nan
    high = 1.0
    while t_power(high, n, alpha=alpha) < power:
        high *= 2
    return sd * optimize.brentq(lambda effect: t_power(effect, n, alpha=alpha) - power, 0.0, high)


def seeds_needed(diff: float, sd: float, *, power: float = POWER, alpha: float = ALPHA) -> float:
    """The fewest pairs (2 at least) whose differences, of sd ``sd``, detect a true mean difference ``diff`` with
    ``power`` (:func:`t_power`): 2 when ``sd`` is 0, NaN when it is NaN, inf when ``diff`` is 0."""
    if not math.isfinite(sd):
        return math.nan
    if diff == 0:
        return math.inf
    effect = abs(diff) / sd if sd > 0 else math.inf
    low, high = 1, 2  # t_power fails at low (1 pair has no test) and holds at high
    while t_power(effect, high, alpha=alpha) < power:
        low, high = high, 2 * high
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if t_power(effect, mid, alpha=alpha) >= power else (mid, high)
    return high


def _run_name(run: dict) -> str:
    return f"{run.get('name', '?')} ({run['folder']})" if "folder" in run else str(run.get("name", "?"))


def _scores(runs: pd.DataFrame, keys: tuple[str, ...], domains: list[str]) -> dict[tuple, float]:
    """``{(configuration, seed, domain): mIoU}`` of one method's ``runs``, a configuration being a run's values of
    ``keys``; UserError naming both runs when two of one configuration and seed score a domain differently."""
    found: dict[tuple, tuple[float, dict]] = {}
    for run in runs.to_dict("records"):
        config = tuple(run[k] for k in keys)
        for domain in (d for d in domains if not pd.isna(run[d])):
            value, first = found.setdefault((config, run["seed"], domain), (run[domain], run))
            if value != run[domain]:
                shown = ", ".join(f"{k} {run[k]}" for k in SHOWN if k in keys)
                raise UserError(
                    f"{_run_name(first)} and {_run_name(run)} are seed {run['seed']} of one {run['method']} "
                    f"configuration ({shown}) but score {domain} {value:.4f} and {run[domain]:.4f}: keep one of "
                    "them (move the other out of the folders gathered)")
    return {where: value for where, (value, _) in found.items()}


def _row(aibr: np.ndarray, baseline: np.ndarray, confidence: float) -> dict:
    """The numbers of one row from the paired mIoU of the seeds."""
    diff = aibr - baseline
    mean, low, high = t_interval(diff, confidence)
    sd = float(diff.std(ddof=1)) if diff.size > 1 else math.nan
    return {"baseline_mean": float(baseline.mean()), "aibr_mean": float(aibr.mean()), "diff_mean": mean,
            "diff_ci_low": low, "diff_ci_high": high, "seeds": diff.size, "diff_sd": sd,
            "min_detectable_diff": min_detectable_diff(sd, diff.size), "seeds_for_1pt": seeds_needed(1.0, sd)}


def paired_comparison(runs: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """One row per AIBR configuration and domain with a baseline of the same configuration run on at least one of
    its seeds (see the module docstring). ``runs``: :func:`gather`'s table (a run per row: ``method``, ``seed``,
    the keys of EXPERIMENT_KEYS, where a missing column reads as unrecorded, and a mIoU column per domain)."""
    runs = runs.assign(**{k: UNRECORDED for k in PAIRING_KEYS if k not in runs.columns})
    domains = [c for c in runs.columns if ":" in c]
    aibr = _scores(runs[runs["method"] == "AIBR"], PAIRING_KEYS, domains)
    base = _scores(runs[runs["method"] == "baseline"], BASELINE_KEYS, domains)
    configs, rows = [], []
    for config in dict.fromkeys(c for c, _, _ in aibr):
        key = dict(zip(PAIRING_KEYS, config))
        base_config = tuple(key[k] for k in BASELINE_KEYS)
        for domain in domains:
            seeds = sorted(s for c, s, d in aibr if (c, d) == (config, domain) and (base_config, s, d) in base)
            if seeds:
                aibr_miou = np.array([aibr[config, s, domain] for s in seeds])
                base_miou = np.array([base[base_config, s, domain] for s in seeds])
                configs.append(key)
                rows.append({**{k: key[k] for k in SHOWN}, "domain": domain, **_row(aibr_miou, base_miou, confidence)})
    table = pd.DataFrame(rows, columns=COLUMNS).assign(recipe=recipes(configs, shown=tuple(SHOWN)))
    table = table.sort_values([*SHOWN, "recipe"], kind="stable", ignore_index=True)
    return table.astype({"seeds": int, "seeds_for_1pt": "Int64"})


def gather(folders: list[Path], confidence: float = 0.95) -> pd.DataFrame | None:
    """:func:`paired_comparison` of the runs under every folder of ``folders`` that holds
    ``*/scores.json`` (``make seeds`` writes one per protocol); None when none does."""
    found = [Path(f) for f in folders if any(Path(f).glob("*/scores.json"))]
    if not found:
        return None
    runs = [collect(f, keys=PAIRING_KEYS).assign(folder=project_relative(f)) for f in found]
    return paired_comparison(pd.concat(runs, ignore_index=True), confidence)


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
    """AIBR - baseline mIoU per configuration (protocol, depth, β and recipe) and domain, with the 95 % interval
    as an error bar. Returns the figure."""
    fig, ax = plt.subplots(figsize=(1.6 * max(len(table), 2) + 2, 3.6))
    labels = [f"{r.protocol} R{r.depth} β {r.beta:g}" + (f"\n{r.recipe}" if r.recipe else "") + f"\n{r.domain}"
              for r in table.itertuples()]
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
