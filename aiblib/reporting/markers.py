"""Tables between markers: the tables of ``README.md`` and ``docs/*.md`` that are written from ``results/*.csv``.

A marked table in a page is::

    <!-- table: VIEW results/a.csv [results/b.csv ...] -->
    | ... |
    <!-- end table -->

The paths are relative to the project root. :func:`fill_tables` rewrites what lies between each pair of markers
from the CSV files they name (the markers stay), so a page never holds a number its CSV does not; ``04-report``
calls :func:`fill_page` after writing the CSVs, and a test fails when a page's table and its CSV disagree. A CSV
that is not there yet gives a one-line note instead of the table. The views:

- ``paired``: the rows of one or more paired comparisons (:data:`aiblib.reporting.comparison.COLUMNS`; a file
  written before a column existed shows ``–`` there), one row per experiment and domain, with the folder each
  came from;
- ``table``: the CSV as it is, the columns empty in every row left out;
- ``severity``: ``05-robustness``'s corruptions, mIoU averaged over the corruptions per protocol, method and
  severity (:func:`aiblib.reporting.report.robustness_tables`).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd

from aiblib.errors import ConfigError
from aiblib.reporting.report import markdown_table, robustness_tables
from aiblib.storage import write_text_atomic

__all__ = ["VIEWS", "render", "fill_tables", "fill_page"]

VIEWS = ("paired", "table", "severity")
START = "<!-- table:"
END = "<!-- end table -->"
MARKED = re.compile(r"<!-- table: *(?P<view>\S+) +(?P<paths>[^>]*?) *-->\n(?P<body>.*?)" + re.escape(END), re.S)


def _number(value: object, fmt: str = "{:.2f}") -> str:
    """``value`` with ``fmt``, or a dash for a missing value (NaN, empty)."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
        return "–"
    return fmt.format(value)


def _experiment(row: dict) -> str:
    """``dg, R18, β 0.001, lr=0.2``: the protocol and what else the row recorded of its configuration."""
    parts = [str(row["protocol"])]
    if _number(row.get("depth")) != "–":
        parts.append(f"R{int(row['depth'])}")
    if _number(row.get("beta")) != "–":
        parts.append(f"β {float(row['beta']):g}")
    if isinstance(row.get("recipe"), str) and row["recipe"]:
        parts.append(row["recipe"])
    return ", ".join(parts)


def _paired(frames: list[tuple[str, pd.DataFrame]]) -> pd.DataFrame:
    rows = []
    for path, table in frames:
        for r in table.to_dict("records"):
            rows.append({
                "experiment": _experiment(r), "scored on": r["domain"],
                "baseline": _number(r["baseline_mean"]), "AIBR": _number(r["aibr_mean"]),
                "AIBR − baseline": _number(r["diff_mean"], "{:+.2f}"),
                "95 % interval": f"{_number(r['diff_ci_low'], '{:+.2f}')} to {_number(r['diff_ci_high'], '{:+.2f}')}",
                "seeds": _number(r["seeds"], "{:.0f}"),
                "sd of the differences": _number(r.get("diff_sd")),
                "detectable (80 % power)": _number(r.get("min_detectable_diff")),
                "seeds for 1 point": _number(r.get("seeds_for_1pt"), "{:.0f}"),
                "folder": f"`{Path(path).parent.as_posix()}`",
            })
    return pd.DataFrame(rows)


def _as_is(table: pd.DataFrame) -> pd.DataFrame:
    """The CSV without its empty columns; a float column of fractions (every value within ±1) with three
    significant digits, so that 0.0494 does not print as 0.05 (other floats: :func:`markdown_table`'s two
    decimals)."""
    table = table.dropna(axis=1, how="all")
    for column in table.columns:
        values = table[column]
        if pd.api.types.is_float_dtype(values) and (values.dropna().abs() < 1).all():
            table[column] = [_number(v, "{:.3g}") for v in values]
    return table


def render(view: str, paths: list[str], *, root: Path) -> str:
    """The markdown table of ``view`` from the CSV files ``paths`` (relative to ``root``), or a one-line note
    naming the first file that is not there."""
    if view not in VIEWS:
        raise ConfigError(f"table view {view!r}: expected one of {', '.join(VIEWS)}")
    if not paths:
        raise ConfigError(f"table view {view!r} names no CSV file: expected '<!-- table: {view} results/x.csv -->'")
    missing = [p for p in paths if not (root / p).is_file()]
    if missing:
        return f"*`{missing[0]}` is not there yet: `04-report` writes this table from it.*"
    if view == "paired":
        return markdown_table(_paired([(p, pd.read_csv(root / p)) for p in paths]))
    if view == "severity":
        tables = robustness_tables((root / paths[0]).parent)
        if tables is None:
            return f"*`{Path(paths[0]).parent.as_posix()}/uncertainty.csv` is not there yet.*"
        return markdown_table(tables[0])
    return markdown_table(_as_is(pd.concat([pd.read_csv(root / p) for p in paths], ignore_index=True)))


def fill_tables(text: str, *, root: Path, under: Path | None = None, page: str = "the page") -> str:
    """``text`` with each marked table rewritten from its CSV files (relative to ``root``); with ``under``, only
    the tables that name a file under that folder. Raises ConfigError naming ``page`` for a start marker
    without its end marker, or an unknown view."""
    if text.count(START) != len(MARKED.findall(text)):
        raise ConfigError(f"{page}: a '{START} ...' marker without its '{END}' (or one inside another)")

    def fill(match: re.Match) -> str:
        paths = match["paths"].split()
        if under is not None and not any(_is_under(root / p, under) for p in paths):
            return match[0]
        try:
            table = render(match["view"], paths, root=root)
        except ConfigError as exc:
            raise ConfigError(f"{page}: {exc}") from None
        return f"{START} {match['view']} {' '.join(paths)} -->\n{table}\n{END}"

    return MARKED.sub(fill, text)


def _is_under(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def fill_page(path: Path, *, root: Path, under: Path | None = None) -> bool:
    """Rewrite the marked tables of the page ``path`` (:func:`fill_tables`); the file is written, atomically,
    only when a table changed. Returns whether it did."""
    text = path.read_text()
    filled = fill_tables(text, root=root, under=under, page=str(path))
    if filled != text:
        write_text_atomic(path, filled)
    return filled != text
