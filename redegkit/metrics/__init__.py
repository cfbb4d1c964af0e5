"""Pure measurements, used by bake, fit, train-sr and eval alike (numpy/OpenCV; torch only in .perceptual).

- :mod:`.quality`: PSNR and SSIM with BasicSR's conventions;
- :mod:`.stats`: degradation statistics (noise level, blockiness, sharpness, ...) and their
  paired distances;
- :mod:`.perceptual`: LPIPS and DISTS (VGG16 perceptual metrics). That one module is torch-based
  and is not imported here: ``from redegkit.metrics.perceptual import ...`` loads it on demand.

Below every stage in the import graph: ``bank`` (calibration) and ``eval`` both import it.
"""

from .quality import psnr, rgb_to_y, ssim

__all__ = ["psnr", "rgb_to_y", "ssim"]
