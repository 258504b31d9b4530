"""The network: ResNet-V1c backbone (:mod:`.backbone`), AIB attention (:mod:`.attention`), DeepLabV3+ and FCN
heads (:mod:`.heads`), the segmentor (:mod:`.segmentor`).

Floor 1: torch, and of aiblib only the ground floor (``aiblib.errors``); reads no file.
"""

from aiblib.model.attention import kl_bits
from aiblib.model.segmentor import AIBRSegmentor, ModelConfig, build_model, multisample_strategy

__all__ = ["AIBRSegmentor", "ModelConfig", "build_model", "multisample_strategy", "kl_bits"]
