"""fusion_fer: facial expression recognition from face crops and MediaPipe Face Landmarker mesh points.

    from fusion_fer import load_predictor
    for face in load_predictor().predict("photo.jpg"):    # the default model; or load_predictor("ferplus" | "fer2013")
        print(face.label, face.confidence, face.box)
"""
from .artifacts import model_names
from .labels import CLASSES, FERPLUS_CLASSES
from .faces import Face, FaceConfig, FaceDetector
from .imageio import ImageLoadError, load_image
from .predict import FaceResult, Predictor, load_predictor

__all__ = ["CLASSES", "FERPLUS_CLASSES", "Face", "FaceConfig", "FaceDetector", "FaceResult", "ImageLoadError", "Predictor",
           "load_image", "load_predictor", "model_names"]
__version__ = "0.1.0"
