"""The group-level steps of the workflow on tiny hand-made inputs."""

import numpy as np
import pandas as pd
import pytest
import torch

from neuralcode.checkpoints import save_checkpoint
from neuralcode.codes import read_codes
from neuralcode.data import Dataset, save_dataset
from neuralcode.models import MLP, MLPConfig
from neuralcode.stages.extract import run_extraction
from neuralcode.stages.measure import layer_sets, run_metrics
from neuralcode.views import training_view

SETTINGS = {
    "knn_k": 3,
    "kmeans_clusters": 2,
    "kmeans_n_init": 2,
    "logreg": True,
    "logreg_scheme": "multinomial",
    "logreg_max_iter": 200,
    "drop_constant_columns": False,
    "seed": 0,
}


def test_layer_sets_name_single_first_and_last_layers():
    assert layer_sets(3, False) == {"all": [0, 1, 2]}
    sets = layer_sets(3, True)
    assert sets["layer2"] == [1]
    assert sets["first2"] == [0, 1] and sets["last2"] == [1, 2]
    assert sets["first3"] == sets["last3"] == sets["all"]
    assert len(sets) == 1 + 3 * 3


@pytest.fixture
def tiny_group(tmp_path):
    """A 3-hidden-layer MLP on 4-pixel images, trained on a noisy subset."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(60, 2, 2, 1), dtype=np.uint8)
    y = rng.integers(0, 3, size=60)
    ds = Dataset.from_arrays("tiny", x[:40], y[:40], x[40:], y[40:], n_classes=3)
    data = tmp_path / "tiny.npz"
    save_dataset(ds, data)

    torch.manual_seed(0)
    config = MLPConfig(input_dim=4, width=5, depth=3, n_classes=3)
    view = {"train_size": 12, "label_noise": 0.25, "seed": 7}
    save_checkpoint(
        tmp_path / "models/m0/e1.pt",
        model=MLP(config),
        model_id="m0",
        model_config=config.to_dict(),
        seed=0,
        epoch=1,
        view=view,
    )
    model = {"model_id": "m0", "regulariser": "none", "view": view}
    run_extraction(
        tmp_path / "models", data, tmp_path / "codes", [["m0", 1]], probes=["ball"]
    )
    return tmp_path, ds, view, model


def test_train_codes_are_the_subset_with_the_labels_the_model_saw(tiny_group):
    tmp_path, ds, view, _ = tiny_group
    store = tmp_path / "codes/m0/e1.zarr"
    expected = training_view(ds.y_train, 3, **view)
    train = read_codes(store, "train")
    np.testing.assert_array_equal(train.labels, expected.labels[expected.examples])
    assert len(train.labels) == 12
    # 25 % of the 12 kept labels are wrong.
    assert (train.labels != ds.y_train[expected.examples]).sum() == 3
    probe = read_codes(store, "ball")
    assert len(probe.labels) == 20 and (probe.labels == -1).all()
    assert (tmp_path / "codes/stores.json").read_text().split() == [
        "[",
        '"m0/e1.zarr"',
        "]",
    ]


def _redundancy(bits):
    return 1 - len(np.unique(bits, axis=0)) / len(bits)


def test_metrics_of_layer_sets_match_a_recount(tiny_group):
    tmp_path, ds, view, model = tiny_group
    out = tmp_path / "metrics.csv"
    run_metrics(tmp_path / "codes", [model], [1], SETTINGS, "exp", out, layers=True)
    df = pd.read_csv(out)
    store = tmp_path / "codes/m0/e1.zarr"
    for name, chosen in layer_sets(3, True).items():
        for split in ("train", "test", "ball"):
            codes = read_codes(store, split, chosen)
            bits = np.unpackbits(codes.packed, axis=1, count=codes.n_bits)
            row = df[
                (df["layers"] == name)
                & (df["split"] == split)
                & (df["metric"] == "redundancy")
            ]
            assert len(row) == 1, (name, split)
            assert row["value"].item() == pytest.approx(_redundancy(bits))
            assert row["n_bits"].item() == 5 * len(chosen)
    # Random probes get the redundancy ratio only.
    assert set(df[df["split"] == "ball"]["metric"]) == {"redundancy"}
    assert set(df["train_size"]) == {12} and set(df["label_noise"]) == {0.25}
    assert set(df["regulariser"]) == {"none"}


def test_a_store_of_another_model_is_refused(tiny_group):
    tmp_path, _, _, model = tiny_group
    other = {**model, "model_id": "m9"}
    (tmp_path / "codes/m9").mkdir()
    (tmp_path / "codes/m0/e1.zarr").rename(tmp_path / "codes/m9/e1.zarr")
    with pytest.raises(ValueError, match="holds model 'm0', not 'm9'"):
        run_metrics(
            tmp_path / "codes", [other], [1], SETTINGS, "exp", tmp_path / "o.csv"
        )
