"""The attention browser of ``03-visualize-attention``: pick a domain, an image (by file name,
every image of the split), a map and an opacity; see the baseline's and AIBR's map side by side
over the image, on the map's fixed scale with its colourbar (the class legend for predictions).

The maps come from a function the notebook hands over, ``maps_for(domain, index) -> {"image",
"name", "baseline", "AIBR"}`` (each model's :func:`aiblib.evaluation.inference.image_maps`), so this
module computes nothing itself; pictures are drawn by :func:`aiblib.reporting.viz.compare_figure`.
Every control carries a CSS class (``aibr-domain``, ``aibr-image``, ``aibr-map``,
``aibr-opacity``, ``aibr-picture``) for the browser test.
"""

from __future__ import annotations

import html
import io
from collections.abc import Callable
from pathlib import Path

import ipywidgets as widgets
import matplotlib.pyplot as plt

from aiblib.reporting import viz

__all__ = ["image_names", "AttentionBrowser"]


def image_names(dataset) -> list[str]:
    """The image file names of a dataset built by :func:`aiblib.data.build_dataset`, in its order."""
    return [Path(image).name for image, _ in dataset.files]


def figure_png(fig, *, dpi: int = 90) -> bytes:
    """A figure as PNG bytes (the figure is closed)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


class AttentionBrowser:
    """domain / image / map / opacity controls and the picture they select; display it as a cell's value.

    ``images`` maps each domain (e.g. ``"cityscapes:val"``) to its image names (:func:`image_names`);
    ``maps_for(domain, index)`` returns the image (``"image"``, (3, H, W) uint8), its ``"name"`` and
    the two models' maps (``"baseline"``, ``"AIBR"``).
    """

    def __init__(self, images: dict[str, list[str]], maps_for: Callable[[str, int], dict], *,
                 map_name: str = "entropy", opacity: float = 0.6, dpi: int = 90) -> None:
        self.images, self.maps_for, self.dpi = images, maps_for, dpi
        first = next(iter(images))
        self.domain = widgets.Dropdown(options=list(images), value=first, description="domain")
        self.image = widgets.Dropdown(options=self._image_options(first), value=0, description="image",
                                      layout=widgets.Layout(width="420px"))
        self.map = widgets.ToggleButtons(options=list(viz.MAP_NAMES), value=map_name, style={"button_width": "auto"})
        self.opacity = widgets.FloatSlider(value=opacity, min=0.0, max=1.0, step=0.05, description="opacity",
                                           continuous_update=False, readout_format=".2f")
        self.caption = widgets.HTML()
        self.picture = widgets.Image(format="png", layout=widgets.Layout(width="100%", max_width="1000px"))
        for control, name in ((self.domain, "domain"), (self.image, "image"), (self.map, "map"),
                              (self.opacity, "opacity"), (self.picture, "picture"), (self.caption, "caption")):
            control.add_class(f"aibr-{name}")
        self._switching = False  # True while the image list is replaced for a new domain
        self.domain.observe(self._on_domain, names="value")
        for control in (self.image, self.map, self.opacity):
            control.observe(lambda _change: None if self._switching else self.render(), names="value")
        label = widgets.HTML('<div style="width: 82px; text-align: right; padding-right: 8px">map</div>')
        self.widget = widgets.VBox([widgets.HBox([self.domain, self.image]), widgets.HBox([label, self.map]),
                                    self.opacity, self.caption, self.picture])
        self.render()

    def _image_options(self, domain: str) -> list[tuple[str, int]]:
        return [(name, i) for i, name in enumerate(self.images[domain])]

    def _on_domain(self, change: dict) -> None:
        self._switching = True
        try:
            self.image.options = self._image_options(change["new"])
            self.image.value = 0
        finally:
            self._switching = False
        self.render()

    def render(self) -> None:
        """Draw the selected map of both models into the picture; a failure is shown in the caption."""
        domain, index, name = self.domain.value, self.image.value, self.map.value
        count = len(self.images[domain])
        try:
            m = self.maps_for(domain, index)
            fig = viz.compare_figure(m["image"], m["baseline"], m["AIBR"], name, opacity=self.opacity.value)
            self.picture.value = figure_png(fig, dpi=self.dpi)
        except Exception as exc:  # noqa: BLE001 - shown to the user instead of vanishing in the kernel log
            self.caption.value = f"<b>could not draw {html.escape(name)}</b>: {html.escape(repr(exc))}"
            return
        key = viz.MAP_NAMES[name]
        scale = "class colours" if key == "pred" else viz.MAP_STYLES[key].label
        self.caption.value = (f"<b>{html.escape(self.images[domain][index])}</b> ({index + 1} of {count}, {domain})"
                              f" &middot; {html.escape(name)}: {html.escape(scale)}")

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)
