"""`synthesize`: HQ images -> aligned (LQ, HQ) pairs in WebDataset shards.

The package, by dependency (each module imports only those above it)::

    config      SynthConfig (the recipe table [synthesize]; the CLI reads its defaults from it)
    messages    WorkItem, InputDone, EncodedChunk: what producers hand the shard writer
    crops       decode once, cut the patch grid, provenance records
    core        the run: resume, the worker pool, the shard writer, the report (knows no producer)
    classical   the preset producer (CPU worker processes; numpy/OpenCV, no torch)
    learned/    the bank producer, as stages: plan, source, device, sink (torch; imported only for
                a bank run, never by this package)
    api         synthesize(): picks the producer for the config and runs the core

One seed gives byte-identical shards whatever the number of workers and the batch size;
``--resume`` continues a run.
"""

from .api import choose_producer, synthesize
from .classical import ClassicalProducer, PresetDegrader
from .config import SynthConfig
from .core import Producer, SynthResult, dist_rank_world, run_fingerprint, run_synthesis
from .crops import INPUT_ERRORS, Crops, crop_boxes, cut_crops, pad_to

__all__ = [
    "INPUT_ERRORS",
    "ClassicalProducer",
    "Crops",
    "PresetDegrader",
    "Producer",
    "SynthConfig",
    "SynthResult",
    "choose_producer",
    "crop_boxes",
    "cut_crops",
    "dist_rank_world",
    "pad_to",
    "run_fingerprint",
    "run_synthesis",
    "synthesize",
]
