"""Writing neural codes: forward hooks pack every ReLU's sign pattern on the
device and the batches stream into a zarr store (layout in :mod:`neuralcode.codes`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import torch
import zarr
from zarr.codecs import ZstdCodec

from .checkpoints import load_checkpoint
from .codes import STORE_FORMAT
from .models import relu_modules

logger = logging.getLogger(__name__)

_BIT_WEIGHTS = torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.uint8)


def pack_bits(bits: torch.Tensor) -> torch.Tensor:
    """Pack a boolean (n, n_bits) tensor on its own device, like ``np.packbits``.

    Packing before the copy to the host moves 8x fewer bytes.
    """
    n, n_bits = bits.shape
    pad = (-n_bits) % 8
    b = bits.to(torch.uint8)
    if pad:
        b = torch.nn.functional.pad(b, (0, pad))
    b = b.view(n, -1, 8) * _BIT_WEIGHTS.to(bits.device)
    return b.sum(dim=2, dtype=torch.uint8)


class CodeRecorder:
    """Forward hooks that keep the packed sign pattern of every ReLU output.

    Only one batch of float activations exists at a time: each hook packs its
    layer's output as soon as it is computed.
    """

    def __init__(self, model: torch.nn.Module):
        self.layers = relu_modules(model)
        self.packed: list[torch.Tensor | None] = [None] * len(self.layers)
        self.n_bits: list[int | None] = [None] * len(self.layers)
        self._handles = []

    def __enter__(self):
        for i, (_, module) in enumerate(self.layers):
            self._handles.append(module.register_forward_hook(self._hook(i)))
        return self

    def __exit__(self, *exc):
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def _hook(self, i):
        def hook(_module, _inputs, output):
            flat = output.flatten(1)
            self.n_bits[i] = flat.shape[1]
            self.packed[i] = pack_bits(flat > 0)

        return hook


@torch.no_grad()
def iter_codes(model, images, batch_size=1000, device="cpu"):
    """Yield ``(start, [packed layer arrays])`` over ``images`` in batches.

    Parameters
    ----------
    model : torch.nn.Module
        Network in eval mode.
    images : np.ndarray
        (n, H, W, C) uint8 images, or (n, H, W, C) float32 already in [0, 1].
    """
    model.eval()
    with CodeRecorder(model) as rec:
        for start in range(0, len(images), batch_size):
            chunk = torch.from_numpy(
                np.ascontiguousarray(images[start : start + batch_size])
            )
            x = chunk.to(device).permute(0, 3, 1, 2).float()
            if chunk.dtype == torch.uint8:
                x = x / 255.0
            model(x)
            yield start, rec.n_bits, [p.cpu().numpy() for p in rec.packed]


def extract_codes(
    checkpoint,
    splits: dict,
    store_path,
    *,
    batch_size: int = 1000,
    device=None,
    attrs=None,
    expect=None,
) -> None:
    """Write the neural codes of a checkpoint on several splits to one zarr store.

    The store is built under ``<store_path>.tmp`` and renamed when complete, so
    a killed job never leaves a store that looks finished.

    Parameters
    ----------
    checkpoint : path-like
        Checkpoint written by :mod:`neuralcode.training`.
    splits : dict
        ``{split name: (images, labels)}``; images (n, H, W, C) uint8 (or
        float32 in [0, 1]), labels (n,) int.
    store_path : path-like
        Final store directory; must not exist.
    batch_size : int, default=1000
        Examples per forward pass (bounds memory).
    device : str or torch.device, optional
        Defaults to CUDA when available.
    attrs : dict, optional
        Extra attributes recorded on the store (dataset name...).
    expect : dict, optional
        Values the checkpoint must hold, e.g. ``{"model_id": ..., "epoch": ...}``.
    """
    store_path = Path(store_path)
    if store_path.exists():
        raise FileExistsError(f"{store_path} exists; remove it to recompute")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model, ckpt = load_checkpoint(checkpoint, device=device)
    for key, value in (expect or {}).items():
        if ckpt.get(key) != value:
            raise ValueError(
                f"checkpoint {checkpoint} holds {key}={ckpt.get(key)!r} but "
                f"{value!r} was expected for {store_path}; the file was swapped or "
                "copied by hand. Rerun its training job (`snakemake --forcerun "
                f"{Path(checkpoint).parent.parent}`)"
            )
    names = [name for name, _ in relu_modules(model)]

    tmp = store_path.with_name(store_path.name + ".tmp")
    if tmp.exists():  # debris of a killed run
        shutil.rmtree(tmp)
    root = zarr.open_group(tmp, mode="w", zarr_format=3)
    n_bits_seen = None
    sizes, digests = {}, {}
    # zstd frames carry a checksum, and every array's sha256 goes into the
    # attributes, so a damaged or missing chunk is caught when read back.
    zstd = ZstdCodec(level=3, checksum=True)
    for split, (images, labels) in splits.items():
        group = root.create_group(split)
        labels = np.asarray(labels, dtype=np.int64)
        group.create_array("labels", data=labels, compressors=zstd)
        hashes = {"labels": hashlib.sha256(labels.tobytes()).hexdigest()}
        arrays = None
        for start, n_bits, packed in iter_codes(model, images, batch_size, device):
            if arrays is None:
                arrays = [
                    group.create_array(
                        f"relu{i}",
                        shape=(len(images), p.shape[1]),
                        chunks=(batch_size, p.shape[1]),
                        dtype="uint8",
                        compressors=zstd,
                    )
                    for i, p in enumerate(packed)
                ]
                running = [hashlib.sha256() for _ in packed]
            for arr, h, p in zip(arrays, running, packed, strict=True):
                arr[start : start + len(p)] = p
                h.update(np.ascontiguousarray(p).tobytes())
            n_bits_seen = list(n_bits)
        for arr, h in zip(arrays, running, strict=True):
            hashes[arr.basename] = h.hexdigest()
        digests[split] = hashes
        sizes[split] = len(images)
        logger.info("%s: %d codes of %d bits", split, len(images), sum(n_bits))
    root.attrs.update(
        {
            "format": STORE_FORMAT,
            "model_id": ckpt["model_id"],
            "epoch": ckpt["epoch"],
            "seed": ckpt["seed"],
            "model_config": ckpt["model_config"],
            "layers": [
                {"array": f"relu{i}", "module": name, "n_bits": int(b)}
                for i, (name, b) in enumerate(zip(names, n_bits_seen, strict=True))
            ],
            "splits": sizes,
            "sha256": digests,
            # The network's own loss and accuracy at this epoch, from training.
            "network": ckpt.get("metrics", {}),
            **(attrs or {}),
        }
    )
    os.rename(tmp, store_path)
