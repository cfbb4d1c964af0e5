"""Networks (ReDegNet, RRDBNet, discriminators, VGG19 features) and checkpoint loading.

``load_checkpoint(path)`` is the public loader: it detects the architecture (ours or official
weights) and returns the module in eval mode.
"""

from .checkpoints import CheckpointError, load_checkpoint, save_checkpoint

__all__ = ["CheckpointError", "load_checkpoint", "save_checkpoint"]
