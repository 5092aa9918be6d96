import numpy as np
import pytest
import torch
import zarr

from neuralcode.checkpoints import save_checkpoint
from neuralcode.codes import read_codes
from neuralcode.extraction import extract_codes, pack_bits
from neuralcode.models import MLP, MLPConfig


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.mark.parametrize("n_bits", [1, 3, 8, 13, 64, 100])
def test_pack_bits_matches_numpy(rng, n_bits):
    bits = rng.random((9, n_bits)) > 0.5
    packed = pack_bits(torch.from_numpy(bits))
    assert packed.dtype == torch.uint8
    np.testing.assert_array_equal(packed.numpy(), np.packbits(bits, axis=1))


def hand_built_mlp():
    """Two hidden layers of widths 3 and 2 on 2-pixel inputs, weights by hand."""
    model = MLP(MLPConfig(input_dim=2, width=3, depth=2, n_classes=2))
    with torch.no_grad():
        # layer 0: units x0 - x1, x1 - 0.5, -x0 + 0.25 (last block's ReLU reads 3)
        model.hidden[0][0].weight.copy_(torch.tensor([[1.0, -1], [0, 1], [-1, 0]]))
        model.hidden[0][0].bias.copy_(torch.tensor([0.0, -0.5, 0.25]))
        # layer 1 takes the 3 ReLU outputs h: units h0 - h1 and h2 - 0.1
        w1 = torch.tensor([[1.0, -1, 0], [0, 0, 1], [0, 0, 0]])
        model.hidden[1][0].weight.copy_(w1)
        model.hidden[1][0].bias.copy_(torch.tensor([0.0, -0.1, -1.0]))
    return model


def hand_codes(x):
    """The same network's sign pattern, computed by hand with numpy."""
    x0, x1 = x[:, 0], x[:, 1]
    h = np.stack([x0 - x1, x1 - 0.5, -x0 + 0.25], axis=1)
    h = np.maximum(h, 0)
    g = np.stack([h[:, 0] - h[:, 1], h[:, 2] - 0.1, np.full(len(x), -1.0)], axis=1)
    return [(h > 0).astype(np.uint8), (g > 0).astype(np.uint8)]


def write_store(tmp_path, model, images, labels, batch_size):
    ckpt = tmp_path / "m.pt"
    save_checkpoint(
        ckpt,
        model=model,
        model_id="hand",
        model_config=model.config.to_dict(),
        seed=0,
        epoch=0,
    )
    store = tmp_path / "codes.zarr"
    extract_codes(
        ckpt, {"test": (images, labels)}, store, batch_size=batch_size, device="cpu"
    )
    return store


@pytest.mark.parametrize("batch_size", [1, 4, 64])
def test_codes_of_hand_built_network(tmp_path, rng, batch_size):
    # Pixels in [0, 1] as (n, 1, 2, 1) float images; away from the kinks.
    x = rng.choice(np.linspace(0.01, 0.99, 13), size=(17, 2)).astype(np.float32)
    images = x.reshape(-1, 1, 2, 1)
    labels = rng.integers(0, 2, size=17)
    store = write_store(tmp_path, hand_built_mlp(), images, labels, batch_size)

    expected = hand_codes(x.astype(np.float64))
    root = zarr.open_group(store, mode="r")
    layers = root.attrs["layers"]
    assert [m["n_bits"] for m in layers] == [3, 3]
    assert root.attrs["splits"] == {"test": 17}
    assert root.attrs["model_id"] == "hand"
    for meta, exp in zip(layers, expected, strict=True):
        got = np.unpackbits(root["test"][meta["array"]][:], axis=1, count=3)
        np.testing.assert_array_equal(got, exp)
    codes = read_codes(store, "test")
    assert codes.n_bits == 6
    np.testing.assert_array_equal(
        np.unpackbits(codes.packed, axis=1, count=6), np.concatenate(expected, 1)
    )
    np.testing.assert_array_equal(codes.labels, labels)
    # A layer subset keeps only that layer's bits.
    last = read_codes(store, "test", layers=[1])
    np.testing.assert_array_equal(
        np.unpackbits(last.packed, axis=1, count=3), expected[1]
    )
    assert not store.with_name(store.name + ".tmp").exists()


def test_uint8_images_are_scaled(tmp_path):
    model = hand_built_mlp()
    images = np.array([[[[255], [0]]], [[[0], [255]]]], dtype=np.uint8)
    store = write_store(tmp_path, model, images, np.array([0, 1]), 2)
    codes = read_codes(store, "test")
    x = np.array([[1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_array_equal(
        np.unpackbits(codes.packed, axis=1, count=6),
        np.concatenate(hand_codes(x), axis=1),
    )


def test_extract_refuses_to_overwrite(tmp_path):
    model = hand_built_mlp()
    images = np.zeros((2, 1, 2, 1), dtype=np.uint8)
    store = write_store(tmp_path, model, images, np.array([0, 1]), 2)
    with pytest.raises(FileExistsError):
        extract_codes(tmp_path / "m.pt", {"test": (images, [0, 1])}, store)


def test_unfinished_store_is_rejected(tmp_path):
    zarr.open_group(tmp_path / "half.zarr", mode="w")
    with pytest.raises(ValueError, match="rerun the workflow"):
        read_codes(tmp_path / "half.zarr", "train")


def chunk_files(store):
    return sorted(p for p in (store / "test" / "relu0" / "c").rglob("*") if p.is_file())


@pytest.mark.parametrize("damage", ["flip", "delete", "truncate"])
def test_damaged_store_is_refused(tmp_path, rng, damage):
    images = rng.integers(0, 256, size=(40, 1, 2, 1), dtype=np.uint8)
    store = write_store(tmp_path, hand_built_mlp(), images, np.zeros(40), 8)
    read_codes(store, "test")  # intact: reads
    files = chunk_files(store)
    target = files[len(files) // 2]
    raw = bytearray(target.read_bytes())
    if damage == "flip":
        raw[len(raw) // 2] ^= 0xFF
        target.write_bytes(bytes(raw))
    elif damage == "delete":
        target.unlink()
    else:
        target.write_bytes(bytes(raw[: len(raw) // 2]))
    with pytest.raises(ValueError, match="damaged.*rerun the workflow"):
        read_codes(store, "test")


def test_swapped_checkpoint_is_refused(tmp_path):
    model = hand_built_mlp()
    images = np.zeros((2, 1, 2, 1), dtype=np.uint8)
    write_store(tmp_path, model, images, np.array([0, 1]), 2)
    with pytest.raises(ValueError, match="model_id='hand' but 'other'"):
        extract_codes(
            tmp_path / "m.pt",
            {"test": (images, [0, 1])},
            tmp_path / "other.zarr",
            expect={"model_id": "other", "epoch": 0},
        )


def test_verify_finds_a_damaged_store_and_names_its_group(tmp_path, rng, capsys):
    import shutil

    from neuralcode.data import Dataset, save_dataset
    from neuralcode.verify import main, verify

    images = rng.integers(0, 256, size=(40, 1, 2, 1), dtype=np.uint8)
    made = write_store(tmp_path, hand_built_mlp(), images, np.zeros(40), 8)
    results = tmp_path / "results"
    store = results / "codes/exp/s0-g0/hand/e0.zarr"
    shutil.copytree(made, store)
    x = rng.integers(0, 256, size=(6, 2, 2, 1), dtype=np.uint8)
    y = np.array([0, 1, 0, 1, 0, 1])
    ds = Dataset.from_arrays("tiny", x[:4], y[:4], x[4:], y[4:], n_classes=2)
    save_dataset(ds, results / "data/tiny.npz")
    assert verify(results) == (2, [])
    assert main([str(results)]) == 0

    chunk_files(store)[0].unlink()
    checked, problems = verify(results)
    assert checked == 2 and len(problems) == 1
    assert "e0.zarr is damaged" in problems[0]
    assert f"--forcerun {results / 'codes/exp/s0-g0'}" in problems[0]
    assert main([str(results)]) == 1
    assert "1 problem" in capsys.readouterr().err

    # A store the group's list names but that is gone.
    (store.parent.parent / "stores.json").write_text('["hand/e0.zarr", "hand/e5.zarr"]')
    checked, problems = verify(results)
    assert len(problems) == 2
    assert "hand/e5.zarr is missing" in problems[1]
