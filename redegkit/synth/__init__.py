"""`synthesize`: HQ images -> aligned (LQ, HQ) pairs in WebDataset shards.

The package, by dependency (each module imports only those above it)::

    core        SynthConfig, crops, the shard loop, resume, the run report (knows no producer)
    classical   the preset producer (CPU worker processes; numpy/OpenCV, no torch)
    learned     the bank producer (torch; imported only for a bank run, never by this package)
    api         synthesize(): picks the producer for the config and runs the core

Per input image: decode once, cut crops (patch grid with a stride, or the whole image), degrade
each crop so that ``hq = scale × lq`` in pixels, and stream the samples into shards. One seed gives
byte-identical shards whatever the number of workers; ``--resume`` continues a run.
"""

from .api import choose_producer, synthesize
from .classical import PresetDegrader, classical_results, encode_sample, process_image
from .core import (
    INPUT_ERRORS,
    Crops,
    ImageResult,
    Producer,
    SynthConfig,
    SynthResult,
    crop_boxes,
    cut_crops,
    dist_rank_world,
    pad_to,
    run_fingerprint,
    run_synthesis,
)

__all__ = [
    "INPUT_ERRORS",
    "Crops",
    "ImageResult",
    "PresetDegrader",
    "Producer",
    "SynthConfig",
    "SynthResult",
    "choose_producer",
    "classical_results",
    "crop_boxes",
    "cut_crops",
    "dist_rank_world",
    "encode_sample",
    "pad_to",
    "process_image",
    "run_fingerprint",
    "run_synthesis",
    "synthesize",
]
