"""Network inputs shared by the extraction and diameter stages."""

from __future__ import annotations


def float_images(images):
    """uint8 (n, H, W, C) -> float32 (n, C, H, W) in [0, 1]."""
    import numpy as np

    return np.ascontiguousarray(images.transpose(0, 3, 1, 2), dtype=np.float32) / 255


def probe_images(kind, n, input_shape, seed):
    """Random inputs of ``kind`` shaped like images (n, H, W, C), float32."""
    from ..probes import random_inputs

    h, w, c = input_shape
    return random_inputs(kind, n, (c, h, w), seed).transpose(0, 2, 3, 1)
