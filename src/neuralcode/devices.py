"""Where a job computes: the GPU when there is one, or when it was promised."""

import logging
import os

import torch

logger = logging.getLogger(__name__)


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


def job_device(requested_gpus=0, allow_cpu_fallback=False, environ=None):
    """The device of a workflow job whose rule asked for ``requested_gpus``.

    A job given a GPU that torch cannot see fails, unless the config allows
    CPU fallback (then it warns). A job inside Slurm that asked for no GPU
    warns too: profiles/slurm asks one for training and extraction, and a
    ``--set-resources`` given on the command line replaces that request.
    """
    requested = int(requested_gpus or 0) > 0
    if torch.cuda.is_available() or (requested and not allow_cpu_fallback):
        return pick_device(require_gpu=requested)
    env = os.environ if environ is None else environ
    if requested:
        logger.warning(
            "this job was given a GPU but torch sees none "
            "(CUDA_VISIBLE_DEVICES=%r); running on the CPU because "
            "compute.allow_cpu_fallback is true",
            env.get("CUDA_VISIBLE_DEVICES"),
        )
    elif "SLURM_JOB_ID" in env:
        logger.warning(
            "running on the CPU in Slurm job %s, which asked for no GPU: "
            "profiles/slurm asks one for this rule, and --set-resources on the "
            "command line replaces the profile's whole list (repeat "
            "train:gpu=1 extract_codes:gpu=1 there)",
            env["SLURM_JOB_ID"],
        )
    return torch.device("cpu")
