"""What the notebooks use: running them with papermill as ``make`` does (:mod:`.runner`), the one rule
for their parameters (:mod:`.parameters`) and 03's attention browser (:mod:`.widgets`).

Floor 7: imports floors 0-6; only ``aiblib.cli`` and the notebooks import it.
"""

from aiblib.notebooks.parameters import notebook_config
from aiblib.notebooks.runner import (
    NOTEBOOKS,
    RUN_RECORD,
    NotebookFailed,
    code_digest,
    completed,
    notebook_parameters,
    parse_values,
    run_given,
    run_inputs,
    run_notebook,
    run_record,
)
from aiblib.notebooks.widgets import AttentionBrowser, image_names

__all__ = [
    "notebook_config", "NOTEBOOKS", "RUN_RECORD", "NotebookFailed", "code_digest", "completed", "notebook_parameters",
    "parse_values", "run_given", "run_inputs", "run_notebook", "run_record", "AttentionBrowser", "image_names",
]
