"""JupyterLab for this project (``make lab`` puts this folder on JUPYTER_CONFIG_PATH).

- serves the project root, so notebooks/, results/, runs/ and params/ are all in the file browser,
  and opens on notebooks/;
- runs as root too (a container, CI);
- saves the notebooks of notebooks/ as they are committed: no outputs, no execution counts, no
  kernel details beyond the language name (executed copies with their outputs belong in results/,
  where ``make`` writes them); opened and saved without edits, a notebook stays clean in git.
"""

import warnings
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
CLEAN_FOLDER = "notebooks/"  # notebooks saved clean, as committed
VOLATILE_CELL_METADATA = ("execution", "scrolled", "collapsed", "trusted")


def save_clean(model, path, **kwargs):
    """pre_save_hook: strip what running and opening a notebook add, for notebooks under notebooks/."""
    if model.get("type") != "notebook" or not path.lstrip("/").startswith(CLEAN_FOLDER):
        return
    nb = model["content"]
    nb["metadata"].pop("widgets", None)
    language = nb["metadata"].get("language_info", {}).get("name", "python")
    nb["metadata"]["language_info"] = {"name": language}
    for cell in nb["cells"]:
        for key in VOLATILE_CELL_METADATA:
            cell["metadata"].pop(key, None)
        if cell["cell_type"] == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
        elif not cell.get("attachments"):
            cell.pop("attachments", None)


c = get_config()  # noqa: F821 - provided by Jupyter when it reads this file
c.ServerApp.root_dir = str(PROJECT)
c.ServerApp.allow_root = True
c.LabApp.default_url = "/lab/tree/notebooks"
c.ContentsManager.pre_save_hook = save_clean
# the server applies its configuration twice, and traitlets warns that the hook replaces itself
warnings.filterwarnings("ignore", message=r"Overriding existing pre_save_hook \(save_clean\)")
