"""Results across runs: what ``02-evaluate-cross-domain`` writes and ``04-report`` gathers.

Each run folder ``results/<name>/`` gets a ``scores.json``::

    {"name", "protocol", "depth", "output_stride", "attention", "beta", "seed", "iterations",
     ... every key of EXPERIMENT_KEYS ..., "checkpoint",
     "scores": {"<dataset>:<split>": {"mIoU", "mAcc", "aAcc", "num_images"}, ...},
     "attention_stats": {"<dataset>:<split>": {mu_mean, mu_spatial_std, std_mean, selectivity_to_noise, kl_bits,
                         mu_per_class, num_images} or null for a baseline, ...},
     "evaluation": {precision, device, cpu, native_bf16, torch}: where the scoring computed,
     "training": [{iteration, precision, device, cpu, native_bf16, torch}, ...]: where the training did (its log's
                 start event, and each resume elsewhere; empty for a checkpoint trained outside this project)}

:func:`collect` reads them all into one row per run, :func:`summarize` averages over seeds,
:func:`plot_beta` draws mIoU against β per domain and :func:`markdown` writes the report.
:func:`plot_corruptions` and :func:`plot_reliability` draw the tables of ``05-robustness``
(:mod:`aiblib.evaluation.robustness`): mIoU against corruption severity, and reliability diagrams.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from aiblib.errors import MissingFile
from aiblib.storage import training_environment

__all__ = ["write_scores", "per_class_table", "collect", "recipes", "summarize", "plot_beta", "markdown", "markdown_table",
           "plot_corruptions", "plot_reliability", "robustness_tables"]

GROUP = ["protocol", "depth", "method", "beta"]

# The configuration keys that change the trained model, the data it learns from or the data it is scored on,
# besides the method (``attention``) and the ``seed``, which a comparison pairs on. They are Config's keys that a
# resume must keep (those outside RUNTIME_KEYS) less ``multisample`` (the same logits up to rounding), plus the
# RUNTIME_KEYS that still make another experiment: ``protocol``, ``iterations``, ``pretrained`` and the synthetic
# data's ``synthetic`` and ``synth_*``. Left out: where files are, how fast or in what precision a run computes
# (threads, amp, compile, ...), and how a run is scored (test_samples, eval_mode, tta_*, eval_seed).
# write_scores records them all; collect reads a key an older scores.json lacks as UNRECORDED.
EXPERIMENT_KEYS = (
    "protocol", "depth", "num_classes", "output_stride", "beta", "train_samples", "mean_mask", "aspp_channels",
    "skip_channels", "aux_channels", "dropout", "pretrained", "aux_weight", "loss_reduction", "train_dataset",
    "train_split", "crop_size", "base_size", "ratio_range", "cat_max_ratio", "flip_prob", "photometric",
    "images_per_iteration", "iterations", "lr", "momentum", "weight_decay", "poly_power", "min_lr", "synthetic",
    "synth_train", "synth_val", "synth_size", "synth_seed",
)
# a pairing key that is not a configuration key: the precision the run's training computed in (scores.json
# "training"), since one configuration trained in bf16 and in fp32 gives different draws; "mixed" when a resume
# changed it, UNRECORDED for a run scored before it was recorded
PRECISION_KEY = "precision"
PAIRING_KEYS = (*EXPERIMENT_KEYS, PRECISION_KEY)  # a configuration: its experiment keys and its training's precision
ATTENTION_KEYS = ("beta", "train_samples", "mean_mask")  # the keys of EXPERIMENT_KEYS a baseline (no attention) ignores
UNRECORDED = "?"  # a key's value in collect's table when the run's scores.json predates the key: equal only to itself


def write_scores(out_dir: str | Path, cfg: Any, scores: dict[str, dict], *, checkpoint: str | Path) -> dict:
    """Write ``out_dir/scores.json`` for one run; ``scores`` maps "dataset:split" to a metrics dict."""
    summary = {
        "name": cfg.name, "protocol": cfg.protocol, "depth": cfg.depth, "output_stride": cfg.output_stride,
        "attention": cfg.attention, "beta": cfg.beta, "seed": cfg.seed, "iterations": cfg.iterations,
        **{key: getattr(cfg, key) for key in EXPERIMENT_KEYS},
        "checkpoint": str(checkpoint),
        "scores": {t: {k: m.get(k) for k in ("mIoU", "mAcc", "aAcc", "num_images")} for t, m in scores.items()},
        "attention_stats": {t: m.get("attention_stats") for t, m in scores.items()},
        "evaluation": next((m["inference"]["environment"] for m in scores.values()
                            if "environment" in m.get("inference", {})), None),
        "training": training_environment(cfg.resolved_run_dir()),
    }
    path = Path(out_dir) / "scores.json"
    path.write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def per_class_table(scores: dict[str, dict]) -> pd.DataFrame:
    """Per-class IoU (%), one column per "dataset:split" (NaN: class absent from both label and prediction)."""
    columns = {}
    for target, metrics in scores.items():
        columns[target] = {row["class"]: (np.nan if row["IoU"] is None else row["IoU"]) for row in metrics["per_class"]}
    table = pd.DataFrame(columns)
    table.index.name = "class"
    return table


def collect(results_root: str | Path, *, keys: tuple[str, ...] = PAIRING_KEYS) -> pd.DataFrame:
    """One row per ``results_root/*/scores.json``: run identity, the recorded configuration keys ``keys`` (lists as
    tuples; :data:`UNRECORDED` where the file lacks one) and one mIoU column per domain."""
    rows = []
    for path in sorted(Path(results_root).glob("*/scores.json")):
        s = json.loads(path.read_text())
        row = {"name": s["name"], "protocol": s["protocol"], "depth": s["depth"],
               "method": "AIBR" if s["attention"] else "baseline",
               "beta": float(s["beta"]) if s["attention"] else math.nan, "seed": s["seed"],
               "iterations": s["iterations"]}
        recorded = {k: trained_precision(s) if k == PRECISION_KEY else s.get(k, UNRECORDED) for k in keys if k not in row}
        row.update({k: tuple(v) if isinstance(v, list) else v for k, v in recorded.items()})
        for target, m in s["scores"].items():
            row[target] = m["mIoU"]
        rows.append(row)
    if not rows:
        raise MissingFile(f"no */scores.json under {Path(results_root).resolve()}: run 02-evaluate-cross-domain first")
    return pd.DataFrame(rows)


def trained_precision(scores: dict) -> str:
    """The precision a run's training computed in, from its ``scores.json`` content: "bf16" or "fp32", "mixed"
    when resumes changed it, :data:`UNRECORDED` when the file does not say."""
    found = {env.get("precision") for env in scores.get("training") or []}
    if not found or None in found:
        return UNRECORDED
    return found.pop() if len(found) == 1 else "mixed"


def _domains(runs: pd.DataFrame) -> list[str]:
    return [c for c in runs.columns if ":" in c]


def recipes(configs: list[dict], *, shown: tuple[str, ...]) -> list[str]:
    """For each configuration (a dict of :data:`PAIRING_KEYS`), the keys beyond ``shown`` in which it differs from
    another configuration of its protocol and depth, as ``key=value`` (empty when none)."""
    text = [{k: str(list(v)) if isinstance(v, tuple) else str(v) for k, v in c.items()} for c in configs]
    labels = []
    for c in text:
        peers = [o for o in text if (o["protocol"], o["depth"]) == (c["protocol"], c["depth"])]
        varied = [k for k in PAIRING_KEYS if k in c and k not in shown and len({o.get(k) for o in peers}) > 1]
        labels.append(", ".join(f"{k}={c[k]}" for k in varied))
    return labels


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and std (over seeds) of each domain's mIoU per configuration: protocol / backbone / method / β and the
    rest of :data:`PAIRING_KEYS` that ``runs`` holds, so runs of different recipes or precisions are never averaged
    together; ``recipe`` names the keys in which a configuration differs from another of its protocol and depth.

    Columns: the group keys, ``recipe``, ``seeds``, then ``<domain> mean`` and ``<domain> std`` for each
    domain (std is NaN with a single seed).
    """
    keys = [*GROUP, *(k for k in PAIRING_KEYS if k in runs.columns and k not in GROUP)]
    keyed = runs.assign(beta=runs["beta"].fillna(-1.0))  # groupby drops NaN keys: the baseline has no β
    rows, configs = [], []
    for key, group in keyed.groupby(keys, sort=True, dropna=False):
        config = dict(zip(keys, key))
        row = {k: config[k] for k in GROUP}
        row["beta"] = math.nan if row["beta"] == -1.0 else row["beta"]
        row["seeds"] = len(group)
        for domain in _domains(runs):
            values = group[domain].dropna()
            row[f"{domain} mean"] = values.mean() if len(values) else math.nan
            row[f"{domain} std"] = values.std(ddof=1) if len(values) > 1 else math.nan
        rows.append(row)
        configs.append({k: v for k, v in config.items() if k not in ATTENTION_KEYS})
    summary = pd.DataFrame(rows)
    summary.insert(len(GROUP), "recipe", recipes(configs, shown=tuple(GROUP)) if rows else [])
    return summary


def _panels(runs: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """The runs split by configuration (:data:`PAIRING_KEYS` but the attention's): a title and its runs, baseline
    and AIBR of one recipe together, two recipes or precisions apart."""
    keys = [k for k in PAIRING_KEYS if k in runs.columns and k not in ATTENTION_KEYS]
    groups = list(runs.groupby(keys, sort=True, dropna=False))
    labels = recipes([dict(zip(keys, key)) for key, _ in groups], shown=("protocol", "depth"))
    return [(f"protocol {group['protocol'].iloc[0]}, ResNet-{group['depth'].iloc[0]}" + (f"\n{label}" if label else ""),
             group) for (_, group), label in zip(groups, labels)]


def plot_beta(runs: pd.DataFrame):
    """mIoU against β per domain, one panel per configuration (protocol, backbone, recipe); the baseline of the
    same configuration as a dashed line. Returns the figure."""
    panels = _panels(runs)
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False)
    for ax, (title, sub) in zip(axes[0], panels):
        aib = sub[sub["method"] == "AIBR"]
        betas = sorted(aib["beta"].unique())
        positive = [b for b in betas if b > 0]
        zero_at = min(positive) / 10 if positive else 1e-5
        for i, domain in enumerate(d for d in _domains(sub) if sub[d].notna().any()):
            color = f"C{i}"
            stats = aib.groupby("beta")[domain].agg(["mean", "std"]).reindex(betas)
            x = [b if b > 0 else zero_at for b in betas]
            ax.errorbar(x, stats["mean"], yerr=stats["std"].fillna(0), marker="o", capsize=3, color=color, label=domain)
            base = sub.loc[sub["method"] == "baseline", domain].dropna()
            if len(base):
                ax.axhline(base.mean(), color=color, linestyle="--", linewidth=1)
        ax.set_xscale("log")
        ax.set_xlabel("β (β = 0 drawn at the left edge)")
        ax.set_ylabel("mIoU (%)")
        ax.set_title(title, fontsize=9 if "\n" in title else None)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        return f"{value:.2f}" if abs(value) >= 0.01 or value == 0 else f"{value:g}"
    return str(value)


def markdown_table(df: pd.DataFrame) -> str:
    """A GitHub markdown table of ``df`` (floats with two decimals, NaN as a dash)."""
    head = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def markdown(runs: pd.DataFrame, summary: pd.DataFrame) -> str:
    """The text of ``results/README.md``: the summary table, every run, and where the files are."""
    lines = [
        "# Results",
        "",
        "Written by `notebooks/04-report.ipynb` from every `*/scores.json` under this folder.",
        "mIoU in percent on each `dataset:split`; mean and std over seeds (std needs two or more seeds).",
        "",
        "## Summary",
        "",
        markdown_table(summary),
        "",
        "## Runs",
        "",
        markdown_table(runs[[c for c in runs.columns if c in GROUP or c not in PAIRING_KEYS]]),
        "",
        "Each run folder holds the executed notebooks (`01-train.ipynb`, `02-evaluate-cross-domain.ipynb`),",
        "its `config.yaml`, `scores.json`, `per_class.csv` and figures; `*-attention/` folders hold the",
        "attention and uncertainty figures of `03-visualize-attention.ipynb`.",
        "",
    ]
    return "\n".join(lines)


def _methods(table: pd.DataFrame) -> list[str]:
    """The methods of ``table``, the baseline first."""
    return sorted(table["method"].unique(), key=lambda m: (m != "baseline", m))


def plot_corruptions(table: pd.DataFrame, *, title: str = ""):
    """mIoU against severity (0 = clean), one panel per corruption and one for their mean, a line per method.

    ``table``: rows ``method, corruption, severity, mIoU`` of one protocol. Returns the figure.
    """
    corruptions = list(dict.fromkeys(table["corruption"]))
    panels = corruptions + ["mean over corruptions"]
    ncols = min(len(panels), 5)
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.8 * nrows), sharey=True, squeeze=False)
    mean = table.groupby(["method", "severity"], as_index=False)["mIoU"].mean()
    for ax, panel in zip(axes.flat, panels):
        sub = mean if panel == panels[-1] else table[table["corruption"] == panel]
        for i, method in enumerate(_methods(table)):
            line = sub[sub["method"] == method].sort_values("severity")
            ax.plot(line["severity"], line["mIoU"], marker="o", color=f"C{i}", label=method)
        ax.set_title(panel.replace("_", " "), fontsize=10)
        ax.set_xticks(sorted(table["severity"].unique()))
        ax.set_xlabel("severity (0 = clean)")
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel("mIoU (%)")
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_reliability(bins: pd.DataFrame, scores: pd.DataFrame, *, title: str = ""):
    """Reliability diagrams, one column per domain: accuracy against mean confidence per bin (a line per
    method, ECE in the legend; the diagonal is perfect calibration), and below the share of pixels per bin.

    ``bins``: rows ``method, domain, lower, upper, count, confidence, accuracy``; ``scores``: rows
    ``method, domain, ece``. Returns the figure.
    """
    domains = list(dict.fromkeys(bins["domain"]))
    fig, axes = plt.subplots(2, len(domains), figsize=(4.5 * len(domains), 6), squeeze=False,
                             gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    methods = _methods(bins)
    for col, domain in enumerate(domains):
        top, bottom = axes[0, col], axes[1, col]
        top.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1)
        for i, method in enumerate(methods):
            b = bins[(bins["domain"] == domain) & (bins["method"] == method)]
            ece = scores.loc[(scores["domain"] == domain) & (scores["method"] == method), "ece"]
            label = f"{method} (ECE {ece.iloc[0]:.3f})" if len(ece) else method
            top.plot(b["confidence"], b["accuracy"], marker="o", markersize=4, color=f"C{i}", label=label)
            width = (b["upper"] - b["lower"]) / (len(methods) + 1)
            bottom.bar(b["lower"] + width * (i + 0.5), b["count"] / b["count"].sum(), width=width, color=f"C{i}",
                       align="edge")
        top.set_title(domain)
        top.set_xlim(0, 1)
        top.set_ylim(0, 1)
        top.set_ylabel("accuracy")
        top.legend(fontsize=8, loc="upper left")
        bottom.set_xlabel("confidence (max softmax)")
        bottom.set_ylabel("share of pixels")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def robustness_tables(folder: str | Path) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """What ``05-robustness`` wrote in ``folder``, for the report: mIoU per protocol, method and severity
    averaged over the corruptions (severity 0 = clean), and the uncertainty scores; None before 05 ran."""
    corruptions, uncertainty = Path(folder) / "corruptions.csv", Path(folder) / "uncertainty.csv"
    if not corruptions.is_file() or not uncertainty.is_file():
        return None
    table = pd.read_csv(corruptions)
    means = table.pivot_table(index=["protocol", "method"], columns="severity", values="mIoU", aggfunc="mean")
    means.columns = [f"severity {c}" for c in means.columns]
    return means.reset_index(), pd.read_csv(uncertainty)
