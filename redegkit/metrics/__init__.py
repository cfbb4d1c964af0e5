"""Pure measurements, used by bake, fit, train-sr and eval alike (numpy/OpenCV, no torch).

- :mod:`.quality`: PSNR and SSIM with BasicSR's conventions;
- :mod:`.stats`: degradation statistics (noise level, blockiness, sharpness, ...) and their
  paired distances.

Below every stage in the import graph: ``bank`` (calibration) and ``eval`` both import it.
"""

from .quality import psnr, rgb_to_y, ssim

__all__ = ["psnr", "rgb_to_y", "ssim"]
