"""edgeped: a pedestrian crop classifier from training data to a vehicle ECU."""

from edgeped.errors import EdgepedError

__version__ = "0.1.0"
__all__ = ["EdgepedError", "__version__"]
