"""Scoring models: inference on one image (:mod:`.inference`), a split's confusion-matrix metrics
(:mod:`.metrics`), the attention's diagnostics over a split (:mod:`.attention_stats`), evaluation of a model or checkpoint (:mod:`.evaluate`), calibration of the
uncertainty (:mod:`.calibration`), and robustness under corruptions (:mod:`.robustness`, imported by its own
path as ``from aiblib.evaluation import robustness``: it loads imagecorruptions, which a GPU box may lack).

Floor 5: imports floors 0-4; never ``aiblib.training`` (training calls evaluation, not the reverse).
"""

from aiblib.evaluation.attention_stats import STAT_KEYS, AttentionStats, attention_outputs, has_attention
from aiblib.evaluation.calibration import (
    expected_calibration_error,
    misclassification_auroc,
    pixel_sample,
    reliability_bins,
)
from aiblib.evaluation.evaluate import (
    checkpoint_config,
    evaluate_checkpoint,
    evaluation_amp,
    score_dataset,
    test_pipeline,
    tta_enabled,
)
from aiblib.evaluation.inference import (
    forward,
    image_maps,
    noise_generator,
    predict_logits,
    predict_probs,
    prediction,
    uncertainty,
)
from aiblib.evaluation.metrics import class_names, confusion_matrix, format_table, metrics_from_confusion, split_metrics

__all__ = [
    "STAT_KEYS", "AttentionStats", "attention_outputs", "has_attention",
    "expected_calibration_error", "misclassification_auroc", "pixel_sample", "reliability_bins",
    "checkpoint_config", "evaluate_checkpoint", "evaluation_amp", "score_dataset", "test_pipeline", "tta_enabled",
    "forward", "image_maps", "noise_generator", "predict_logits", "predict_probs", "prediction", "uncertainty",
    "class_names", "confusion_matrix", "format_table", "metrics_from_confusion", "split_metrics",
]
