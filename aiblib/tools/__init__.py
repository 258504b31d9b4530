"""Commands' engines that use the whole library: data preparation (:mod:`.preparation`), the CamVid folder's check
(:mod:`.camvidcheck`), every image and label decoded in parallel (:mod:`.imagecheck`), the speed and memory table
(:mod:`.bench`), the training data pipeline's table (:mod:`.databench`), the CUDA check of the paper's recipe
(:mod:`.gpucheck`), the training iteration's profile (:mod:`.profiling`) and a model on your own images
(:mod:`.inferencer`).

Floor 7: imports floors 0-6; only ``aiblib.cli`` imports it.
"""

from aiblib.tools import preparation
from aiblib.tools.bench import MODES, compare_modes, count_flops, default_modes, format_table, parameter_counts
from aiblib.tools.camvidcheck import check_camvid
from aiblib.tools.databench import data_rows, format_data_table, scene
from aiblib.tools.gpucheck import cuda_plan, format_report, run_gpu_check, tiny_plan
from aiblib.tools.imagecheck import check_images
from aiblib.tools.inferencer import image_files, predict_images
from aiblib.tools.preparation import PROBLEMS, SUMMARY, prepare
from aiblib.tools.profiling import VARIANTS, ProfilePlan, format_profile, profile_training, tiny_profile_plan

__all__ = [
    "preparation", "check_camvid", "check_images", "image_files", "predict_images", "PROBLEMS", "SUMMARY", "prepare", "MODES", "compare_modes", "count_flops", "default_modes", "format_table", "parameter_counts",
    "cuda_plan", "format_report", "run_gpu_check", "tiny_plan", "data_rows", "format_data_table", "scene",
    "VARIANTS", "ProfilePlan", "format_profile", "profile_training", "tiny_profile_plan",
]
