"""Why did the model decide that? Saliency, Grad-CAM and feature maps for one 28x28 input.

- `saliency`: |d score / d input|, the "vanilla gradient" map (Simonyan et al. 2014): which input
  pixels, nudged, would change the class score most; averaged over a few noisy copies of the input
  (SmoothGrad, Smilkov et al. 2017) so that it shows strokes rather than pixel noise. The score is the class *logit* (the
  output layer's pre-softmax value) when the model ends in a softmax Dense layer, as every preset
  does: the gradient of the softmax probability itself vanishes once the model is sure (p ~ 1).
- `grad_cam`: Grad-CAM (Selvaraju et al. 2017) on the last conv layer, upsampled to 28x28: which
  regions the network's last spatial features used for the class. Coarser than saliency, less noisy.
- `feature_maps`: the activations of the first conv layers for this input (after their BatchNorm and
  ReLU when those are separate layers, so what is shown is what the next layer receives).
- `predict_with_maps`: the class probabilities and those feature maps from one forward pass, so the
  Draw page's prediction of a stroke also yields its feature maps at no extra pass.

Everything runs through `tf.function`s traced once per model object and cached, like
`inference.compiled_call`, so an explanation costs a few milliseconds, not a `model.predict`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class FeatureMaps:
    layer: str  # the conv layer's name
    shown_after: str  # the layer whose output is shown (the conv itself, or its BN/ReLU)
    maps: np.ndarray  # (H, W, C) float32


@dataclass
class _Explainer:
    saliency_fn: Any
    cam_fn: Any | None
    forward_fn: Any  # x -> [probabilities, *shown feature maps]: one pass through the model
    map_layers: list[tuple[str, str]]  # (conv layer name, shown-after layer name)
    last_conv: str | None


SMOOTH_SAMPLES = 16
SMOOTH_SIGMA = 0.15  # noise std in input units ([0, 1] pixels): SmoothGrad's recommended 10-20% of the range



def conv_layers(model: Any) -> list[Any]:
    """The model's 2-D convolution layers, input to output (none for a dense-only model)."""
    import keras

    return [lay for lay in model.layers if isinstance(lay, keras.layers.Conv2D)]


def _shown_layer(model: Any, conv: Any) -> Any:
    """The conv layer, or the last BatchNorm/ReLU/Activation directly after it (what the next layer sees)."""
    import keras

    follow = (keras.layers.BatchNormalization, keras.layers.ReLU, keras.layers.Activation)
    layers = model.layers
    i = layers.index(conv)
    shown = conv
    for lay in layers[i + 1:]:
        if not isinstance(lay, follow):
            break
        shown = lay
    return shown


def _logit_parts(model: Any) -> tuple[Any, Any, Any]:
    """(tensor feeding the output layer, kernel, bias) when the model ends in Dense(softmax), else Nones."""
    import keras

    last = model.layers[-1]
    if isinstance(last, keras.layers.Dense) and getattr(last.activation, "__name__", "") == "softmax":
        return last.input, last.kernel, last.bias
    return None, None, None


def _build(model: Any, max_map_layers: int) -> _Explainer:
    import keras
    import tensorflow as tf

    convs = conv_layers(model)
    penult, kernel, bias = _logit_parts(model)
    last_conv = convs[-1] if convs else None
    outputs = [penult if penult is not None else model.outputs[0]]
    if last_conv is not None:
        outputs.append(last_conv.output)
    trunk = keras.Model(model.inputs[0], outputs)

    def logits_and_conv(x):
        outs = trunk(x, training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        head = outs[0]
        if kernel is not None:
            logits = tf.matmul(head, kernel) + bias
        else:  # not a softmax head: explain the output itself
            logits = head
        return logits, (outs[1] if len(outs) > 1 else None)

    spec = [tf.TensorSpec([1, 28, 28, 1], tf.float32), tf.TensorSpec([], tf.int32)]
    # logits_and_conv also sees batches of SMOOTH_SAMPLES noisy copies (below)

    def pick(logits, cls):  # cls < 0 means "the predicted class"
        return tf.where(cls < 0, tf.argmax(logits[0], output_type=tf.int32), cls)

    @tf.function(input_signature=spec + [tf.TensorSpec([], tf.float32)])
    def saliency_fn(x, cls, sigma):
        logits, _ = logits_and_conv(x)
        cls = pick(logits, cls)
        # SmoothGrad: the mean |gradient| over copies of the input with Gaussian noise (a fixed seed, so
        # one drawing always gives one map). sigma = 0 gives the plain gradient.
        noise = tf.random.stateless_normal([SMOOTH_SAMPLES, 28, 28, 1], seed=[6, 28], dtype=tf.float32)
        xs = tf.repeat(x, SMOOTH_SAMPLES, axis=0) + sigma * noise
        with tf.GradientTape() as tape:
            tape.watch(xs)
            noisy_logits, _ = logits_and_conv(xs)
            score = tf.reduce_sum(tf.gather(noisy_logits, cls, axis=1))
        grads = tf.abs(tape.gradient(score, xs))
        return tf.reduce_mean(grads, axis=0)[:, :, 0], cls

    cam_fn = None
    if last_conv is not None:
        @tf.function(input_signature=spec)
        def cam_fn(x, cls):
            with tf.GradientTape() as tape:
                logits, conv_out = logits_and_conv(x)
                score = tf.gather(logits[0], pick(logits, cls))
            grads = tape.gradient(score, conv_out)[0]  # (h, w, c)
            weights = tf.reduce_mean(grads, axis=(0, 1))  # global-average-pooled gradients
            cam = tf.nn.relu(tf.reduce_sum(conv_out[0] * weights, axis=-1))
            return tf.image.resize(cam[..., None], (28, 28), method="bilinear")[..., 0]

    map_layers: list[tuple[str, str]] = []
    shown_outputs = []
    chosen = convs[:max_map_layers]
    if chosen:
        shown = [_shown_layer(model, c) for c in chosen]
        map_layers = [(c.name, s.name) for c, s in zip(chosen, shown, strict=True)]
        shown_outputs = [s.output for s in shown]
    # The output and the shown layers in one graph: the feature maps come with the prediction.
    forward_model = keras.Model(model.inputs[0], [model.outputs[0], *shown_outputs])
    forward_fn = tf.function(lambda x: forward_model(x, training=False),
                             input_signature=[tf.TensorSpec([1, 28, 28, 1], tf.float32)])

    return _Explainer(saliency_fn, cam_fn, forward_fn, map_layers,
                      last_conv.name if last_conv is not None else None)


def explainer(model: Any, max_map_layers: int = 2) -> _Explainer:
    """The traced explanation functions for `model` (built once per model object and kept)."""
    # Kept on the model object (like inference.compiled_call), so the traced functions live exactly as
    # long as the model: a module-level cache would keep every model ever loaded alive.
    cache = getattr(model, "_mnist_studio_explainers", None)
    if cache is None:
        cache = {}
        object.__setattr__(model, "_mnist_studio_explainers", cache)  # bypass Keras attribute tracking
    if max_map_layers not in cache:
        cache[max_map_layers] = _build(model, max_map_layers)
    return cache[max_map_layers]


def _as_input(image28: np.ndarray) -> np.ndarray:
    x = np.asarray(image28, np.float32)
    if x.shape != (28, 28):
        raise ValueError(f"expected a (28, 28) image, got {x.shape}")
    return x.reshape(1, 28, 28, 1)


def _normalise(a: np.ndarray) -> np.ndarray:
    a = np.nan_to_num(np.asarray(a, np.float32), nan=0.0, posinf=0.0, neginf=0.0).clip(0, None)
    peak = float(a.max())
    return a / peak if peak > 0 else a


def saliency(model: Any, image28: np.ndarray, cls: int | None = None,
             smooth: float = SMOOTH_SIGMA) -> tuple[np.ndarray, int]:
    """(|gradient of the class logit w.r.t. each input pixel| scaled to [0, 1] (28, 28), the class).
    `cls` defaults to the predicted class. `smooth` is SmoothGrad's noise level (0: the plain gradient,
    which on a real CNN is speckled with pixel-level noise)."""
    import tensorflow as tf

    ex = explainer(model)
    grad, used = ex.saliency_fn(tf.constant(_as_input(image28)), tf.constant(-1 if cls is None else int(cls)),
                                tf.constant(float(smooth)))
    return _normalise(grad.numpy()), int(used)


def grad_cam(model: Any, image28: np.ndarray, cls: int | None = None) -> np.ndarray | None:
    """Grad-CAM of the last conv layer for `cls` (default: predicted), 28x28 in [0, 1]; None when the
    model has no conv layer."""
    import tensorflow as tf

    ex = explainer(model)
    if ex.cam_fn is None:
        return None
    cam = ex.cam_fn(tf.constant(_as_input(image28)), tf.constant(-1 if cls is None else int(cls)))
    return _normalise(cam.numpy())


def last_conv_name(model: Any) -> str | None:
    return explainer(model).last_conv


def predict_with_maps(model: Any, image28: np.ndarray, max_layers: int = 2) -> tuple[np.ndarray, list[FeatureMaps]]:
    """(the 10 class probabilities, the activations of the first `max_layers` conv layers) for one
    28x28 input in [0, 1], from a single forward pass; the list is [] for a model with no conv layer
    (the mlp preset). The probabilities are the model's output, as `inference.predict_one` gives."""
    import tensorflow as tf

    ex = explainer(model, max_layers)
    outs = ex.forward_fn(tf.constant(_as_input(image28)))
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    probs = np.asarray(outs[0].numpy()[0], np.float32)
    maps = [FeatureMaps(conv, shown, np.asarray(o.numpy()[0], np.float32))
            for (conv, shown), o in zip(ex.map_layers, outs[1:], strict=True)]
    return probs, maps


def feature_maps(model: Any, image28: np.ndarray, max_layers: int = 2) -> list[FeatureMaps]:
    """The activations of the first `max_layers` conv layers for this input; [] for a model with no
    conv layer (the mlp preset)."""
    return predict_with_maps(model, image28, max_layers)[1]
