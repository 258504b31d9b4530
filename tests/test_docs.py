"""The front door: a README read in minutes, docs/ whose links lead somewhere, prose about the project (not a work
log), and the license and citation that pyproject.toml names."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PROSE = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "benchmarks").glob("*.md"))]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
LINK = re.compile(r"\]\((?!https?://|mailto:)([^)\s]+)\)")
# work-log words: issue numbers, rounds, "this round"; how numbers moved belongs in CHANGELOG.md
PROCESS = re.compile(r"\bissues? \d+|\bround \d|\bthis round\b|\bthis session\b", re.IGNORECASE)


def test_readme_is_short_and_opens_with_what_it_is():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines: move the detail into docs/"
    assert lines[0] == "# AIBR Notebooks" and "![" in "\n".join(lines[:12])
    text = "\n".join(lines)
    for needed in ("github.com/ashleylqx/AIBR", "CITATION.cff", "```bibtex", "## The verdict", "## Quick start",
                   "make reproduce", "make lab", "make sweep", "torchrun", "docs/real-data.md"):
        assert needed in text, f"README.md lacks {needed!r}"


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors of the page's headings: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#+ (.+)$", page.read_text(), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("page", PROSE, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_leads_to_a_file_and_heading_that_exist(page):
    for target in LINK.findall(page.read_text()):
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        assert file.exists(), f"{page.name}: link to {target}, which is not there"
        if anchor and file.suffix == ".md":
            assert anchor in _anchors(file), f"{page.name}: link to {target}, a heading {file.name} does not have"


@pytest.mark.parametrize("page", [*PROSE, ROOT / "CHANGELOG.md"], ids=lambda p: p.relative_to(ROOT).as_posix())
def test_prose_speaks_of_the_project_not_of_a_work_log(page):
    found = PROCESS.findall(page.read_text())
    assert not found, f"{page.name}: work-log words {found}: say what the project does; history goes in CHANGELOG.md"


def test_the_license_file_is_the_one_pyproject_names():
    assert PYPROJECT["license"] == {"text": "Apache-2.0"}
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text and "END OF TERMS AND CONDITIONS" in text


def test_citation_names_this_version_its_license_and_the_paper():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["version"] == PYPROJECT["version"] and cff["license"] == "Apache-2.0"
    paper = cff["preferred-citation"]
    assert paper["title"].startswith("Information Bottleneck-Inspired Spatial Attention") and paper["year"] == 2024
    assert paper["repository-code"] == "https://github.com/ashleylqx/AIBR"
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"## {PYPROJECT['version']} ({cff['date-released']})" in changelog
