"""Where a job computes: the GPU when there is one, or when it was promised."""

import os

import torch


def gpu_required(requested_gpus, allow_cpu_fallback: bool) -> bool:
    """Whether a job must fail when it sees no GPU: the scheduler was asked
    for one (the rule's ``gpu`` resource) and the config allows no fallback."""
    return int(requested_gpus or 0) > 0 and not allow_cpu_fallback


def pick_device(require_gpu: bool = False) -> torch.device:
    """CUDA when present, else the CPU; raise if a GPU was required but absent."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if require_gpu:
        raise RuntimeError(
            "this job asked for a GPU but torch sees none "
            f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}); "
            "request one from the scheduler or allow CPU fallback in the config"
        )
    return torch.device("cpu")
