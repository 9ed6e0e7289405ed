"""plumenet: VIGIA-PlumeNet segmentation of volcano webcam archives.

Nothing is imported here at import time beyond the light taxonomy: torch,
transformers and zarr load only when a function that needs them runs.
"""

from plumenet.classes import LABEL_CLASSES, MODEL_CLASSES

__all__ = ["LABEL_CLASSES", "MODEL_CLASSES", "__version__"]
__version__ = "0.1.0"
