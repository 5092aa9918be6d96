"""Device choice of workflow jobs on a machine without a GPU."""

import logging

import pytest
import torch

from neuralcode.devices import job_device

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible")


def test_job_without_gpu_request_runs_on_cpu_quietly(caplog):
    with caplog.at_level(logging.WARNING):
        assert job_device(0, False, environ={}).type == "cpu"
    assert caplog.records == []


@pytest.mark.parametrize("gpus", [1, "2"])
def test_job_given_a_gpu_it_cannot_see_fails(gpus):
    with pytest.raises(RuntimeError, match="asked for a GPU but torch sees none"):
        job_device(gpus, allow_cpu_fallback=False)


def test_fallback_runs_on_cpu_and_says_so(caplog):
    env = {"CUDA_VISIBLE_DEVICES": "0"}
    with caplog.at_level(logging.WARNING):
        assert job_device(1, allow_cpu_fallback=True, environ=env).type == "cpu"
    (record,) = caplog.records
    assert "given a GPU" in record.getMessage() and "'0'" in record.getMessage()


def test_slurm_job_that_lost_its_gpu_request_warns(caplog):
    with caplog.at_level(logging.WARNING):
        assert job_device(0, False, environ={"SLURM_JOB_ID": "7"}).type == "cpu"
    (record,) = caplog.records
    assert "Slurm job 7" in record.getMessage()
    assert "--set-resources" in record.getMessage()
