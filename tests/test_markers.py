"""The tables of README.md and docs/ are written from results/*.csv (aiblib.reporting.markers): they say what the
files say, 04-report rewrites them, and a table that disagrees with its CSV fails here."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pandas as pd
import pytest

from aiblib.config import Config
from aiblib.errors import ConfigError
from aiblib.paths import ROOT_VARIABLE
from aiblib.reporting import markers, report

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_marked_table_of_the_project_says_what_its_csv_says(page):
    text = page.read_text()
    filled = markers.fill_tables(text, root=ROOT, page=str(page))
    stale = [a for a, b in zip(markers.MARKED.finditer(text), markers.MARKED.finditer(filled)) if a[0] != b[0]]
    assert not stale, f"{page.name}: tables that disagree with their CSV (run 04-report): " + \
        "; ".join(m[0].splitlines()[0] for m in stale)


def test_the_verdict_and_the_results_page_are_written_from_files():
    assert "<!-- table: paired results/comparison.csv" in (ROOT / "README.md").read_text()
    results = (ROOT / "docs" / "results.md").read_text()
    assert "<!-- table: table results/summary.csv -->" in results and results.count(markers.START) >= 4


def _page(tmp_path: Path, body: str = "| stale |") -> Path:
    page = tmp_path / "page.md"
    page.write_text(f"# Results\n\n<!-- table: table results/t.csv -->\n{body}\n<!-- end table -->\n\nAfter.\n")
    return page


def test_a_table_is_rewritten_from_its_csv_and_a_changed_csv_makes_it_stale(tmp_path):
    (tmp_path / "results").mkdir()
    pd.DataFrame({"method": ["baseline", "AIBR"], "mIoU": [51.96, 23.9], "ece": [0.0494, 0.12],
                  "empty": [math.nan, math.nan]}).to_csv(tmp_path / "results" / "t.csv", index=False)
    page = _page(tmp_path)
    assert markers.fill_page(page, root=tmp_path)
    text = page.read_text()
    assert text == ("# Results\n\n<!-- table: table results/t.csv -->\n| method | mIoU | ece |\n|---|---|---|\n"
                    "| baseline | 51.96 | 0.0494 |\n| AIBR | 23.90 | 0.12 |\n<!-- end table -->\n\nAfter.\n")
    assert not markers.fill_page(page, root=tmp_path)  # unchanged: not written again
    pd.DataFrame({"method": ["baseline"], "mIoU": [50.0]}).to_csv(tmp_path / "results" / "t.csv", index=False)
    assert markers.fill_tables(text, root=tmp_path) != text  # the page's table no longer says what the CSV says


def test_only_the_tables_of_csvs_under_the_report_folder_are_rewritten(tmp_path):
    (tmp_path / "results").mkdir()
    pd.DataFrame({"x": [1]}).to_csv(tmp_path / "results" / "t.csv", index=False)
    page = _page(tmp_path)
    assert not markers.fill_page(page, root=tmp_path, under=tmp_path / "results" / "sweep-dg")
    assert "| stale |" in page.read_text()
    assert markers.fill_page(page, root=tmp_path, under=tmp_path / "results")
    assert "| stale |" not in page.read_text()


def test_a_csv_not_written_yet_gives_a_note_naming_it(tmp_path):
    filled = markers.fill_tables(_page(tmp_path).read_text(), root=tmp_path)
    assert "*`results/t.csv` is not there yet: `04-report` writes this table from it.*" in filled


def test_paired_rows_from_old_and_new_comparison_files(tmp_path):
    new = {"protocol": "dg", "depth": 18, "beta": 0.001, "recipe": math.nan, "domain": "bdd100k:val",
           "baseline_mean": 15.449, "aibr_mean": 17.557, "diff_mean": 2.1075, "diff_ci_low": -6.2768,
           "diff_ci_high": 10.4919, "seeds": 3, "diff_sd": 3.375, "min_detectable_diff": 11.0166, "seeds_for_1pt": 92}
    old = {k: new[k] for k in ("protocol", "domain", "baseline_mean", "aibr_mean", "diff_mean", "diff_ci_low",
                               "diff_ci_high", "seeds")}
    for folder, row in (("a", new), ("b", old)):
        (tmp_path / folder).mkdir()
        pd.DataFrame([row]).to_csv(tmp_path / folder / "comparison.csv", index=False)
    table = markers.render("paired", ["a/comparison.csv", "b/comparison.csv"], root=tmp_path).splitlines()
    assert table[2] == ("| dg, R18, β 0.001 | bdd100k:val | 15.45 | 17.56 | +2.11 | -6.28 to +10.49 | 3 | 3.38 | 11.02 "
                        "| 92 | `a` |")
    assert table[3] == "| dg | bdd100k:val | 15.45 | 17.56 | +2.11 | -6.28 to +10.49 | 3 | – | – | – | `b` |"


def test_a_marker_without_its_end_or_with_an_unknown_view_is_one_line_naming_the_page(tmp_path):
    with pytest.raises(ConfigError, match=r"^README.md: a '<!-- table: \.\.\.' marker without its '<!-- end table -->'"):
        markers.fill_tables("<!-- table: table results/t.csv -->\n| x |\n", root=tmp_path, page="README.md")
    with pytest.raises(ConfigError, match=r"^README.md: table view 'pivot': expected one of paired, table, severity$"):
        markers.fill_tables("<!-- table: pivot results/t.csv -->\n<!-- end table -->", root=tmp_path, page="README.md")


@pytest.mark.slow
def test_04_report_rewrites_the_marked_tables_of_the_project_pages(tmp_path, monkeypatch):
    import papermill as pm

    project = tmp_path / "project"
    shutil.copytree(ROOT / "notebooks", project / "notebooks", ignore=shutil.ignore_patterns("kernel-*", ".ipynb_*"))
    (project / "README.md").write_text("<!-- table: table results/summary.csv -->\n| old |\n<!-- end table -->\n")
    monkeypatch.setenv(ROOT_VARIABLE, str(project))
    for name, attention in (("dg-baseline", False), ("dg-aib", True)):
        cfg = Config.from_dict({"name": name, "protocol": "dg", "attention": attention, "seed": 0, "iterations": 10})
        (project / "results" / name).mkdir(parents=True)
        report.write_scores(project / "results" / name, cfg, {"cityscapes:val": {
            "mIoU": 40.0 + attention, "mAcc": 0.0, "aAcc": 0.0, "num_images": 2, "per_class": []}}, checkpoint="x.pth")
    pm.execute_notebook(str(project / "notebooks" / "04-report.ipynb"), str(project / "results" / "04-report.ipynb"),
                        kernel_name="python3", cwd=str(project / "notebooks"), progress_bar=False)
    readme = (project / "README.md").read_text()
    assert "| old |" not in readme and "| dg | 50 | AIBR | 0.001 | 1 | 41.00 |" in readme
    assert readme == markers.fill_tables(readme, root=project)
