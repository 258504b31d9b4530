"""aiblib: AIBR (information-bottleneck spatial attention) on DeepLabV3+ / ResNet-V1c.

A house with floors; each floor is a package that imports only from the floors below it:

0. ``aiblib.errors``, ``aiblib.paths``: what every floor may use (the only top-level modules);
1. ``aiblib.model``: the network (torch only);
2. ``aiblib.data``: dataset facts, files, datasets, transforms, the synthetic generator, corruptions;
3. ``aiblib.storage`` (atomic files, checkpoints, run log and lock), ``aiblib.config`` (configuration, runtime);
4. ``aiblib.reporting``: tables and pictures of what they are handed;
5. ``aiblib.evaluation``: inference, metrics, evaluation, calibration, robustness;
6. ``aiblib.training``: the loop and what it is built from;
7. ``aiblib.tools`` (prepare, bench, gpu-check), ``aiblib.notebooks`` (papermill runner, parameters, widgets);
8. ``aiblib.cli``, and ``python -m aiblib`` above it.
"""

__version__ = "0.1.0"
