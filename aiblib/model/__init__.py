"""The network, torch only: ResNet-V1c backbone, AIB attention, DeepLabV3+ and FCN heads, the segmentor."""

from aiblib.model.segmentor import AIBRSegmentor, ModelConfig, build_model

__all__ = ["AIBRSegmentor", "ModelConfig", "build_model"]
