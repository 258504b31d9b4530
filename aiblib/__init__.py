"""aiblib: AIBR (information-bottleneck spatial attention) on DeepLabV3+ / ResNet-V1c.

A house with floors, each importing only from the floors below it:

0. ``errors``, ``paths``: what every floor may use;
1. ``aiblib.model``: the network (torch only);
2. ``aiblib.data``: dataset facts, files, datasets, transforms, the synthetic generator;
3. ``losses``, ``metrics``, ``config``, ``checkpoint``, ``runlog``, ``viz``;
4. ``runtime``, ``inference``, ``evaluate``, ``sampling``, ``trainstats``, ``train``, ``launch``;
5. ``report``, ``prepare``, ``bench``, ``notebooks``;
6. ``aiblib.cli`` and ``python -m aiblib``.
"""

__version__ = "0.1.0"
