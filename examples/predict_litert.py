"""Classify a picture of a digit with an mnist-studio LiteRT export, without TensorFlow.

    pip install ai-edge-litert numpy pillow
    python predict_litert.py model.tflite digit.png

Works with `model.tflite` and `model_quant.tflite` alike (both take float32 input).
"""

import sys

import numpy as np
from ai_edge_litert.interpreter import Interpreter
from PIL import Image, ImageOps


def load_digit(path: str) -> np.ndarray:
    """(1, 28, 28, 1) float32 in [0, 1], a light digit on black as in MNIST. A simple recipe: grayscale,
    invert a light background, resize. The app's mnist_core.preprocess does the full one (crop to the ink,
    fit it in 20x20, centre of mass), which photos and drawings that are not MNIST-like need."""
    img = Image.open(path).convert("L")
    if np.asarray(img).mean() > 127:  # mostly light: a dark digit on paper, the reverse of MNIST
        img = ImageOps.invert(img)
    if img.size != (28, 28):
        img = img.resize((28, 28), Image.Resampling.LANCZOS)
    return (np.asarray(img, np.float32) / 255.0).reshape(1, 28, 28, 1)


interpreter = Interpreter(model_path=sys.argv[1])
interpreter.allocate_tensors()
interpreter.set_tensor(interpreter.get_input_details()[0]["index"], load_digit(sys.argv[2]))
interpreter.invoke()
probs = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])[0]
print(f"digit {probs.argmax()} (probability {probs.max():.3f})")
print("probabilities:", " ".join(f"{p:.6f}" for p in probs))
