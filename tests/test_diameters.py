import copy

import numpy as np
import pytest
import torch
from torch import nn

from neuralcode.diameters import (
    TABLE_COLUMNS,
    diameter_table,
    random_directions,
    region_segments,
    source_seed,
    stochastic_diameters,
)
from neuralcode.models import MLP, MLPConfig, relu_modules


def set_params(model, block, weight, bias):
    with torch.no_grad():
        linear = model.hidden[block][0]
        linear.weight.copy_(torch.tensor(weight, dtype=torch.float32))
        linear.bias.copy_(torch.tensor(bias, dtype=torch.float32))


def two_unit_model():
    """One hidden layer on 2-D inputs: z1 = x1 - 1 and z2 = x2 + 0.5."""
    model = MLP(MLPConfig(input_dim=2, width=2, depth=1, n_classes=1))
    set_params(model, 0, [[1.0, 0.0], [0.0, 1.0]], [-1.0, 0.5])
    return model


def test_hand_computed_two_units():
    model = two_unit_model()
    x = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0]])
    u = np.array([[0.6, 0.8], [1.0, 0.0], [0.6, 0.8]])
    t_lo, t_hi = region_segments(model, x, u)
    # Row 0: at x = 0, z = (-1, 0.5), bits (0, 1).
    #   z1(t) = -1 + 0.6 t <= 0  <=>  t <= 5/3
    #   z2(t) = 0.5 + 0.8 t > 0  <=>  t > -0.625
    # Row 1: u = e1, z1(t) = -1 + t <= 0 <=> t <= 1; z2 = 0.5 for all t: no bound.
    # Row 2: x on the hyperplane of unit 1, z = (0, 0.5), bits (0, 1) since a
    #   bit is 1 only for z > 0. z1(t) = 0.6 t <= 0 <=> t <= 0, and as above
    #   t > -0.625.
    np.testing.assert_allclose(t_lo, [-0.625, -np.inf, -0.625])
    np.testing.assert_allclose(t_hi, [5 / 3, 1.0, 0.0])
    assert not np.signbit(t_hi[2])  # 0.0, not -0.0


def test_hand_computed_two_layers():
    # 1-D input. Layer 0: z0 = x, z1 = x - 2. Layer 1 on h = relu(z):
    # y0 = h0 - 1, y1 = -h0 + 2.5 (h1 unused).
    model = MLP(MLPConfig(input_dim=1, width=2, depth=2, n_classes=1))
    set_params(model, 0, [[1.0], [1.0]], [0.0, -2.0])
    set_params(model, 1, [[1.0, 0.0], [-1.0, 0.0]], [-1.0, 2.5])
    # At x = 1.5: z = (1.5, -0.5) bits (1, 0); h = (1.5, 0); y = (0.5, 1) bits (1, 1).
    # Along u = +1:  z0 = 1.5 + t > 0  -> t > -1.5
    #                z1 = -0.5 + t <= 0 -> t <= 0.5   (binds t_hi, layer 0)
    #                y0 = 0.5 + t > 0  -> t > -0.5   (binds t_lo, layer 1)
    #                y1 = 1 - t > 0    -> t < 1
    # Along u = -1 the line is reversed: t in (-0.5, 0.5] again, by the same units.
    t_lo, t_hi = region_segments(model, [[1.5], [1.5]], [[1.0], [-1.0]])
    np.testing.assert_allclose(t_lo, [-0.5, -0.5])
    np.testing.assert_allclose(t_hi, [0.5, 0.5])


def random_mlp(depth, batch_norm, seed, input_dim=4, width=6):
    torch.manual_seed(seed)
    model = MLP(
        MLPConfig(
            input_dim=input_dim,
            width=width,
            depth=depth,
            n_classes=3,
            batch_norm=batch_norm,
        )
    )
    if batch_norm:
        with torch.no_grad():
            for block in model.hidden:
                bn = block[1]
                bn.running_mean.normal_(0, 0.5)
                bn.running_var.uniform_(0.3, 2.0)
                bn.weight.normal_(0, 1)  # some gammas negative
                bn.bias.normal_(0, 0.5)
    return model.eval()


def patterns(model, x):
    """Full activation patterns (ReLU output > 0), by a float64 forward pass."""
    ref = copy.deepcopy(model).double().eval()
    bits = []
    handles = [
        module.register_forward_hook(lambda _m, _i, out: bits.append(out > 0))
        for _, module in relu_modules(ref)
    ]
    with torch.no_grad():
        ref(torch.as_tensor(np.asarray(x), dtype=torch.float64))
    for h in handles:
        h.remove()
    return torch.cat(bits, dim=1).numpy()


def same_pattern_along(model, x, u, t):
    """(len(t),) bool: does x + t u share x's pattern, for one x and u."""
    points = x[None, :] + t[:, None] * u[None, :]
    return (patterns(model, points) == patterns(model, x[None, :])).all(axis=1)


CASES = [(d, bn) for d in (1, 2, 3) for bn in (False, True)]


@pytest.mark.parametrize("depth, batch_norm", CASES)
def test_matches_dense_sampling(depth, batch_norm):
    model = random_mlp(depth, batch_norm, seed=10 * depth + batch_norm)
    rng = np.random.default_rng(depth)
    n, half_width, step = 6, 8.0, 1e-3
    x = rng.standard_normal((n, 4))
    u = random_directions(n, 4, seed=depth)
    t_lo, t_hi = region_segments(model, x, u)
    assert np.all(t_lo <= 0) and np.all(t_hi >= 0)
    k = int(round(half_width / step))
    grid = np.arange(-k, k + 1) * step  # contains t = 0 exactly, at index k
    finite = 0
    for i in range(n):
        same = same_pattern_along(model, x[i], u[i], grid)
        # The contiguous run of x's pattern around t = 0 ...
        hi = k
        while hi + 1 < grid.size and same[hi + 1]:
            hi += 1
        lo = k
        while lo > 0 and same[lo - 1]:
            lo -= 1
        # ... ends within a grid step of the exact segment, or at the grid edge
        # where the segment reaches past it.
        if hi + 1 < grid.size:
            assert grid[hi] <= t_hi[i] + 1e-9 and t_hi[i] <= grid[hi + 1] + 1e-9
            finite += 1
        else:
            assert t_hi[i] >= grid[-1]
        if lo > 0:
            assert grid[lo - 1] - 1e-9 <= t_lo[i] and t_lo[i] <= grid[lo] + 1e-9
            finite += 1
        else:
            assert t_lo[i] <= grid[0]
        # Stronger: regions are convex, so on the whole grid the pattern is x's
        # exactly inside the segment and nowhere outside it.
        tol = 1e-9
        inside = (grid > t_lo[i] + tol) & (grid < t_hi[i] - tol)
        outside = (grid < t_lo[i] - tol) | (grid > t_hi[i] + tol)
        assert same[inside].all()
        assert not same[outside].any()
    assert finite >= n  # the grid resolved most ends: the test has teeth


@pytest.mark.parametrize("depth, batch_norm", CASES)
def test_interior_and_just_outside(depth, batch_norm):
    model = random_mlp(depth, batch_norm, seed=100 + depth, input_dim=5, width=7)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((8, 5))
    u = random_directions(8, 5, seed=8)
    t_lo, t_hi = region_segments(model, x, u)
    fractions = np.array([1e-6, 0.01, 0.3, 0.5, 0.7, 0.99, 1 - 1e-6])
    for i in range(len(x)):
        lo = max(t_lo[i], -1e3)
        hi = min(t_hi[i], 1e3)
        t = lo + fractions * (hi - lo)
        assert same_pattern_along(model, x[i], u[i], t).all()
        outside = [
            b + s * 1e-7 * max(1.0, abs(b))
            for b, s in ((t_hi[i], 1), (t_lo[i], -1))
            if np.isfinite(b)
        ]
        assert not same_pattern_along(model, x[i], u[i], np.array(outside)).any()


def test_accepts_image_shaped_inputs():
    model = random_mlp(2, True, seed=3, input_dim=12)
    x = np.random.default_rng(0).random((5, 3, 2, 2), dtype=np.float32)
    u = random_directions(5, 12, seed=1)
    flat = region_segments(model, x.reshape(5, 12), u)
    shaped = region_segments(model, x, u)
    np.testing.assert_array_equal(flat[0], shaped[0])
    np.testing.assert_array_equal(flat[1], shaped[1])


def test_batches_do_not_change_the_result():
    model = random_mlp(3, True, seed=4)
    x = np.random.default_rng(0).standard_normal((11, 4))
    u = random_directions(11, 4, seed=2)
    whole = region_segments(model, x, u)
    chunked = region_segments(model, x, u, batch_size=3)
    np.testing.assert_array_equal(whole[0], chunked[0])
    np.testing.assert_array_equal(whole[1], chunked[1])


def test_random_directions():
    u = random_directions(50, 7, seed=5)
    assert u.shape == (50, 7) and u.dtype == np.float64
    np.testing.assert_allclose(np.linalg.norm(u, axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(u, random_directions(50, 7, seed=5))
    assert not np.array_equal(u, random_directions(50, 7, seed=6))


def test_cap_clips_and_flags():
    model = two_unit_model()
    x = np.zeros((400, 2))
    plain = stochastic_diameters(model, x, seed=0)
    np.testing.assert_allclose(plain["diameter"], plain["t_hi"] - plain["t_lo"])
    assert not plain["capped"].any()
    # At x = 0 both units bound the same side when sign(u1) = -sign(u2), leaving
    # the other side unbounded (z1 = -1 + u1 t <= 0, z2 = 0.5 + u2 t > 0).
    unbounded = np.isinf(plain["diameter"])
    assert unbounded.any() and not unbounded.all()
    cap = 2.0
    capped = stochastic_diameters(model, x, seed=0, cap=cap)
    expect_lo = np.maximum(plain["t_lo"], -cap)
    expect_hi = np.minimum(plain["t_hi"], cap)
    np.testing.assert_array_equal(capped["t_lo"], expect_lo)
    np.testing.assert_array_equal(capped["t_hi"], expect_hi)
    np.testing.assert_array_equal(capped["diameter"], expect_hi - expect_lo)
    flag = (plain["t_lo"] < -cap) | (plain["t_hi"] > cap)
    np.testing.assert_array_equal(capped["capped"], flag)
    assert flag.any() and not flag.all() and flag[unbounded].all()
    assert capped["diameter"].max() <= 2 * cap


def test_cap_bounds_an_infinite_side():
    model = two_unit_model()
    # Rows with u = e1 have t_lo = -inf (see test_hand_computed_two_units).
    t_lo, t_hi = region_segments(model, [[0.0, 0.0]], [[1.0, 0.0]])
    assert np.isneginf(t_lo[0]) and t_hi[0] == 1.0
    with pytest.raises(ValueError, match="cap"):
        stochastic_diameters(model, np.zeros((1, 2)), seed=0, cap=0)


def test_training_flags_restored():
    model = random_mlp(2, True, seed=1)
    x = np.random.default_rng(0).standard_normal((4, 4))
    u = random_directions(4, 4, seed=0)
    in_eval = region_segments(model, x, u)
    model.train()
    model.hidden[1].eval()  # mixed flags come back as they were
    flags = {name: m.training for name, m in model.named_modules()}
    in_train = region_segments(model, x, u)
    assert flags == {name: m.training for name, m in model.named_modules()}
    # Batch norm was read with its running statistics either way.
    np.testing.assert_array_equal(in_eval[0], in_train[0])
    np.testing.assert_array_equal(in_eval[1], in_train[1])
    model.eval()
    region_segments(model, x, u)
    assert not any(m.training for m in model.modules())


def test_rejects_unknown_models_and_shapes():
    x, u = np.zeros((2, 4)), random_directions(2, 4, seed=0)
    with pytest.raises(ValueError, match="MLP"):
        region_segments(nn.Sequential(nn.Linear(4, 3), nn.ReLU()), x, u)
    model = random_mlp(2, False, seed=0)
    model.hidden[1][1] = nn.Tanh()
    with pytest.raises(ValueError, match="Linear -> Tanh"):
        region_segments(model, x, u)
    model = random_mlp(1, True, seed=0)
    model.hidden[0][1] = nn.BatchNorm1d(6, track_running_stats=False)
    with pytest.raises(ValueError, match="running statistics"):
        region_segments(model, x, u)
    model = random_mlp(1, False, seed=0)
    with pytest.raises(ValueError, match="features"):
        region_segments(model, np.zeros((2, 5)), random_directions(2, 5, seed=0))
    with pytest.raises(ValueError, match="directions"):
        region_segments(model, x, u[:1])
    with pytest.raises(ValueError, match="finite"):
        region_segments(model, np.full((2, 4), np.nan), u)


def test_diameter_table():
    model = random_mlp(2, True, seed=2, input_dim=12)
    rng = np.random.default_rng(0)
    test = rng.random((10, 3, 2, 2), dtype=np.float32)
    sources = {"test": test, "ball": test[:3], "uniform": test}
    table = diameter_table(model, sources, n_examples=5, seed=9, cap=5.0)
    assert list(table.columns) == list(TABLE_COLUMNS)
    assert table["source"].tolist() == ["test"] * 5 + ["ball"] * 3 + ["uniform"] * 5
    assert table["example"].tolist() == [0, 1, 2, 3, 4, 0, 1, 2, 0, 1, 2, 3, 4]
    assert table["capped"].dtype == bool
    assert (table["diameter"] <= 10).all() and (table["diameter"] >= 0).all()
    np.testing.assert_allclose(table["diameter"], table["t_hi"] - table["t_lo"])
    # Each source's directions come from source_seed(seed, its index).
    for index, name in enumerate(sources):
        expect = stochastic_diameters(
            model, sources[name][:5], source_seed(9, index), cap=5.0
        )
        rows = table[table["source"] == name]
        np.testing.assert_array_equal(rows["diameter"], expect["diameter"])
    # Same examples, other source: other directions.
    first, last = table[table["source"] == "test"], table[table["source"] == "uniform"]
    assert not np.array_equal(first["diameter"], last["diameter"])
    again = diameter_table(model, sources, n_examples=5, seed=9, cap=5.0)
    assert again.equals(table)
    empty = diameter_table(model, {}, n_examples=5, seed=9, cap=None)
    assert list(empty.columns) == list(TABLE_COLUMNS) and len(empty) == 0
