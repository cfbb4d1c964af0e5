"""redegkit: real-degradation data synthesis for blind super-resolution (ReDegNet, ECCV 2022)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("redegkit")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.1.0"

__all__ = ["__version__"]
