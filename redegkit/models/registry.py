"""Registers every architecture in :data:`redegkit.models.archs.ARCHS`. One import line per model module.

:mod:`.checkpoints` imports this module at its top, so the table is complete whenever a
checkpoint is built or detected; the model modules import only :mod:`.archs`, never the loader.
"""

from . import rrdb, discriminators  # noqa: F401,I001
from . import redeg  # noqa: F401,I001
