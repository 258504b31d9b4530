"""Tables and pictures of what they are handed (arrays, score files, run folders); they run no model.
:mod:`.report` gathers runs' scores, :mod:`.comparison` pairs baseline and AIBR by seed, :mod:`.attention_report`
tabulates the attention's diagnostics, :mod:`.markers` writes the tables of README.md and docs/ from the CSVs,
:mod:`.viz` draws.

Floor 4: imports only floors 0-3 (``aiblib.data``, ``aiblib.storage``, ``aiblib.config``, ...), so that
evaluation and training, above it, can write their maps and tables with it.
"""

from aiblib.reporting import attention_report, comparison, markers, report, viz
from aiblib.reporting.comparison import COLUMNS, paired_comparison, plot_comparison, recorded, t_interval
from aiblib.reporting.report import markdown_table

__all__ = [
    "attention_report", "comparison", "markers", "report", "viz",
    "COLUMNS", "paired_comparison", "plot_comparison", "recorded", "t_interval", "markdown_table",
]
