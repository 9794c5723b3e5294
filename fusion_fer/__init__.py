"""fusion_fer: facial expression recognition from face crops and MediaPipe Face Landmarker mesh points.

    from fusion_fer import load_predictor
    for face in load_predictor().predict("photo.jpg"):    # the default model; or load_predictor("ferplus" | "fer2013")
        print(face.label, face.confidence, face.box)
"""
import os as _os

# Torch's OpenMP workers (GNU OpenMP, Linux) spin for about 300,000 rounds after each parallel region, holding
# the core the Face Landmarker needs while it runs beside the network (`predict._log_probs`). A tenth of that
# keeps consecutive regions quick and frees the core soon after. Read when torch loads: import fusion_fer first.
_os.environ.setdefault("GOMP_SPINCOUNT", "30000")

from .artifacts import model_names  # noqa: E402
from .labels import CLASSES, FERPLUS_CLASSES  # noqa: E402
from .faces import Face, FaceConfig, FaceDetector  # noqa: E402
from .imageio import ImageLoadError, load_image  # noqa: E402
from .predict import FaceResult, Predictor, load_predictor  # noqa: E402

__all__ = ["CLASSES", "FERPLUS_CLASSES", "Face", "FaceConfig", "FaceDetector", "FaceResult", "ImageLoadError", "Predictor",
           "load_image", "load_predictor", "model_names"]
__version__ = "0.1.0"
