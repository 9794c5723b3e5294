"""fusion_fer: facial expression recognition from face crops and Face Mesh landmarks."""
from .data import CLASSES
from .faces import Face, FaceConfig, FaceDetector
from .imageio import ImageLoadError, load_image

__all__ = ["CLASSES", "Face", "FaceConfig", "FaceDetector", "ImageLoadError", "load_image"]
__version__ = "0.1.0"
