import numpy as np
import pytest
from scipy import stats

from neuralcode.probes import PROBE_KINDS, random_inputs


@pytest.mark.parametrize("kind", PROBE_KINDS)
def test_shape_and_dtype(kind):
    x = random_inputs(kind, 7, (1, 28, 28), seed=0)
    assert x.shape == (7, 1, 28, 28)
    assert x.dtype == np.float32
    assert random_inputs(kind, 0, (3, 4, 4), seed=0).shape == (0, 3, 4, 4)


@pytest.mark.parametrize("kind", PROBE_KINDS)
def test_same_seed_same_inputs(kind):
    a = random_inputs(kind, 20, (1, 5, 5), seed=3)
    b = random_inputs(kind, 20, (1, 5, 5), seed=3)
    c = random_inputs(kind, 20, (1, 5, 5), seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def ball_norms(n, shape, seed=0):
    x = random_inputs("ball", n, shape, seed=seed)
    return np.linalg.norm(x.reshape(n, -1).astype(np.float64), axis=1)


def test_ball_radius_law_low_dimension():
    # Uniform in the 5-ball: P(|x| <= s) = s**5, so |x|**5 ~ U(0, 1).
    norms = ball_norms(4000, (5, 1, 1))
    assert norms.max() <= 1 + 1e-6
    assert stats.kstest(norms**5, "uniform").pvalue > 1e-3


def test_ball_directions_are_isotropic():
    x = random_inputs("ball", 4000, (1, 1, 3), seed=1).reshape(4000, 3)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    # On the sphere in R^3 each coordinate is U(-1, 1) (Archimedes).
    assert stats.kstest(unit[:, 0], "uniform", args=(-1, 2)).pvalue > 1e-3


def test_ball_in_pixel_space_concentrates_near_the_sphere():
    norms = ball_norms(2000, (1, 28, 28), seed=2)
    assert norms.max() <= 1 + 1e-6
    # P(|x| < 0.98) = 0.98**784, about 1e-7.
    assert np.mean(norms >= 0.98) > 0.99


def test_uniform_pixels():
    x = random_inputs("uniform", 500, (1, 28, 28), seed=0)
    assert x.min() >= 0 and x.max() < 1
    assert abs(x.mean() - 0.5) < 0.01
    assert stats.kstest(x[:3].ravel(), "uniform").pvalue > 1e-3


def test_unknown_kind_names_the_allowed_ones():
    with pytest.raises(ValueError, match="ball.*uniform"):
        random_inputs("gaussian", 3, (1, 2, 2), seed=0)


@pytest.mark.parametrize(
    "n, shape", [(-1, (1, 2, 2)), (2.5, (1, 2, 2)), (3, ()), (3, (1, 0, 2))]
)
def test_bad_sizes(n, shape):
    with pytest.raises(ValueError):
        random_inputs("uniform", n, shape, seed=0)
