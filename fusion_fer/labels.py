"""The expression classes, in the order every model's outputs and every label file use."""

CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")  # FER2013 `emotion` order
# The FER+ model's classes: FER2013's, in the same order, plus contempt.
FERPLUS_CLASSES = CLASSES + ("contempt",)
