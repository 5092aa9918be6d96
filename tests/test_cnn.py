"""The CNNs of Tables 3 and 4 against layer tables written out here by hand.

The expected layers below are derived from the paper's tables and the choices
documented in ``neuralcode.cnn`` without calling that module, so that a change of
the architectures (a missing stage, a stride moved, a width typo) fails a test.
"""

import dataclasses
from functools import cache

import pytest
import torch
from torch import nn

from neuralcode.cnn import (
    ARCHITECTURES,
    CNNConfig,
    build_cnn,
    code_bits,
    native_config,
)
from neuralcode.config import MIN_CNN_IMAGE_SIZE
from neuralcode.models import build_model, relu_modules

# --- Expected layers, by hand -------------------------------------------------
# ("conv", in, out, kernel, stride, groups) and ("fc", in, out), in module order
# (a residual block lists its branch, then its projection shortcut if any).


def conv(n_in, n_out, kernel=3, stride=1, groups=1):
    return ("conv", n_in, n_out, kernel, stride, groups)


def fc(n_in, n_out):
    return ("fc", n_in, n_out)


def basic_stage(n_in, width, blocks, stride):
    """[3x3, width; 3x3, width] x blocks; stride and projection on block 1."""
    layers = [conv(n_in, width, 3, stride), conv(width, width)]
    if stride != 1 or n_in != width:
        layers.append(conv(n_in, width, 1, stride))
    return layers + [conv(width, width), conv(width, width)] * (blocks - 1)


def resnext_stage(n_in, width, blocks, stride):
    """[1x1, width; 3x3, width, C = 8; 1x1, 2 width] x blocks."""
    out = 2 * width
    first = [
        conv(n_in, width, 1),
        conv(width, width, 3, stride, 8),
        conv(width, out, 1),
        conv(n_in, out, 1, stride),  # projection: always, the widths change
    ]
    rest = [conv(out, width, 1), conv(width, width, 3, 1, 8), conv(width, out, 1)]
    return first + rest * (blocks - 1)


def dense_block(n_in):
    """[1x1, 12; 3x3, 3] x 4, each layer seeing all earlier outputs."""
    return [
        layer for k in range(4) for layer in (conv(n_in + 3 * k, 12, 1), conv(12, 3, 3))
    ]


def mnist_stem(width):
    return [conv(1, width, 3, 2)]


EXPECTED_LAYERS = {
    "vgg18": mnist_stem(32)
    + [conv(32, 32)] * 4
    + [conv(32, 64)]
    + [conv(64, 64)] * 3
    + [conv(64, 128)]
    + [conv(128, 128)] * 3
    + [conv(128, 256)]
    + [conv(256, 256)] * 3
    + [fc(256, 10)],
    "resnet18": mnist_stem(32)
    + basic_stage(32, 32, 2, 1)
    + basic_stage(32, 64, 2, 2)
    + basic_stage(64, 128, 2, 2)
    + basic_stage(128, 256, 2, 2)
    + [fc(256, 10)],
    "resnet34": mnist_stem(32)
    + basic_stage(32, 32, 3, 1)
    + basic_stage(32, 64, 4, 2)
    + basic_stage(64, 128, 6, 2)
    + basic_stage(128, 256, 3, 2)
    + [fc(256, 10)],
    "resnext26": mnist_stem(32)
    + resnext_stage(32, 32, 2, 1)
    + resnext_stage(64, 64, 3, 2)
    + resnext_stage(128, 128, 3, 2)
    + [fc(256, 10)],
    # Channels: 6 -> +4x3 = 18 -> transition 9 -> 21 -> transition 10 -> 22.
    "densenet28": mnist_stem(6)
    + dense_block(6)
    + [conv(18, 9, 1)]
    + dense_block(9)
    + [conv(21, 10, 1)]
    + dense_block(10)
    + [fc(22, 10)],
    "vgg19": [conv(3, 32), conv(32, 32), conv(32, 128), conv(128, 128)]
    + [conv(128, 256)]
    + [conv(256, 256)] * 3
    + [conv(256, 512)]
    + [conv(512, 512)] * 7
    + [fc(512, 4096), fc(4096, 4096), fc(4096, 10)],
    "resnet18_cifar": [conv(3, 64)]
    + basic_stage(64, 64, 2, 1)
    + basic_stage(64, 128, 2, 2)
    + basic_stage(128, 256, 2, 2)
    + basic_stage(256, 512, 2, 2)
    + [fc(512, 10)],
    "resnet20": [conv(3, 16)]
    + basic_stage(16, 16, 3, 1)
    + basic_stage(16, 32, 3, 2)
    + basic_stage(32, 64, 3, 2)
    + [fc(64, 10)],
    "resnet32": [conv(3, 16)]
    + basic_stage(16, 16, 5, 1)
    + basic_stage(16, 32, 5, 2)
    + basic_stage(32, 64, 5, 2)
    + [fc(64, 10)],
}

# Code bits (channels x H x W summed over every ReLU) on the native input.
EXPECTED_BITS = {
    # MNIST: the stem gives 32 x 14 x 14 = 6272, the max pool 7 x 7.
    "vgg18": 6272 + 4 * (32 + 64 + 128 + 256) * 49,
    # Two ReLUs per basic block; stages at 7x7, 4x4, 2x2, 1x1.
    "resnet18": 6272 + 4 * (32 * 49 + 64 * 16 + 128 * 4 + 256 * 1),
    "resnet34": 6272 + 6 * 32 * 49 + 8 * 64 * 16 + 12 * 128 * 4 + 6 * 256,
    # Three ReLUs per block; a stage's first 1x1 runs before the stride.
    "resnext26": 6272
    + 2 * (32 + 32 + 64) * 49
    + (64 * 49 + (64 + 128) * 16)
    + 2 * (64 + 64 + 128) * 16
    + (128 * 16 + (128 + 256) * 4)
    + 2 * (128 + 128 + 256) * 4,
    # Stem 6 x 14 x 14; blocks at 7x7, 3x3, 1x1 (transitions before the pool).
    "densenet28": 6 * 196 + 4 * 15 * 49 + 9 * 49 + 4 * 15 * 9 + 10 * 9 + 4 * 15,
    # CIFAR-10: VGG-19 stages at 32, 16, 8, 4, 2, then two fc-4096.
    "vgg19": 2 * 32 * 1024
    + 2 * 128 * 256
    + 4 * 256 * 64
    + 4 * 512 * 16
    + 4 * 512 * 4
    + 2 * 4096,
    "resnet18_cifar": 64 * 1024 + 4 * (64 * 1024 + 128 * 256 + 256 * 64 + 512 * 16),
    "resnet20": 16 * 1024 + 6 * (16 * 1024 + 32 * 256 + 64 * 64),
    "resnet32": 16 * 1024 + 10 * (16 * 1024 + 32 * 256 + 64 * 64),
}


def expected_parameters(layers):
    """Weights plus batch norm (2 per channel) after every conv and hidden fc."""
    total = 0
    for i, layer in enumerate(layers):
        if layer[0] == "conv":
            _, n_in, n_out, kernel, _, groups = layer
            total += kernel * kernel * (n_in // groups) * n_out + 2 * n_out
        elif i < len(layers) - 1:  # hidden fc: no bias, batch norm
            total += layer[1] * layer[2] + 2 * layer[2]
        else:  # fc-10 with its bias
            total += layer[1] * layer[2] + layer[2]
    return total


# --- Helpers ----------------------------------------------------------------


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny forward passes: extra threads only contend (20 s instead of 3 s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@cache
def native_model(name):
    torch.manual_seed(0)
    return build_cnn(native_config(name))


def layer_table(model):
    table = []
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            k, s = module.kernel_size, module.stride
            assert k[0] == k[1] and s[0] == s[1]
            assert module.padding == (k[0] // 2, k[0] // 2)
            table.append(
                conv(module.in_channels, module.out_channels, k[0], s[0], module.groups)
            )
        elif isinstance(module, nn.Linear):
            table.append(fc(module.in_features, module.out_features))
    return table


def forward_relus(model, x):
    """Names and output sizes (per example) of ReLU modules as they fire."""
    fired = []
    hooks = [
        module.register_forward_hook(
            lambda _m, _i, out, name=name: fired.append((name, out[0].numel()))
        )
        for name, module in model.named_modules()
        if isinstance(module, nn.ReLU)
    ]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for hook in hooks:
            hook.remove()
    return fired


def images(config, size=None, n=2):
    size = size or config.image_size
    return torch.rand(n, config.in_channels, size, size)


NAMES = sorted(ARCHITECTURES)


def test_every_architecture_has_a_hand_table():
    assert set(EXPECTED_LAYERS) == set(ARCHITECTURES) == set(EXPECTED_BITS)


# --- Tests ------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_layers_and_parameter_count_match_the_tables(name):
    model = native_model(name)
    assert layer_table(model) == EXPECTED_LAYERS[name]
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == expected_parameters(EXPECTED_LAYERS[name])


def test_cifar_resnet18_has_its_well_known_parameter_count():
    # The common PyTorch CIFAR ResNet-18 (3x3 stem, projection shortcuts).
    assert sum(p.numel() for p in native_model("resnet18_cifar").parameters()) == (
        11_173_962
    )


@pytest.mark.parametrize("name", NAMES)
def test_every_convolution_has_batch_norm_before_its_relu(name):
    model = native_model(name)
    kinds = [
        type(m)
        for m in model.modules()
        if isinstance(m, nn.Conv2d | nn.BatchNorm2d | nn.Linear | nn.BatchNorm1d)
    ]
    n_conv = kinds.count(nn.Conv2d)
    assert kinds.count(nn.BatchNorm2d) == n_conv
    pairs = zip(kinds, kinds[1:], strict=False)
    assert all(b is nn.BatchNorm2d for a, b in pairs if a is nn.Conv2d)
    assert all(m.bias is None for m in model.modules() if isinstance(m, nn.Conv2d))


def test_vgg19_hidden_fc_layers_have_batch_norm_and_dropout():
    hidden = [
        m for m in native_model("vgg19").classifier if isinstance(m, nn.Sequential)
    ]
    assert [[type(m) for m in block] for block in hidden] == [
        [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Dropout]
    ] * 2
    assert all(block[3].p == 0.5 for block in hidden)


@pytest.mark.parametrize("name", NAMES)
def test_relu_modules_fire_once_each_in_forward_order(name):
    model = native_model(name).eval()
    config = model.config
    fired = forward_relus(model, images(config))
    names = [n for n, _ in relu_modules(model)]
    assert [n for n, _ in fired] == names
    assert not any(m.inplace for _, m in relu_modules(model))
    assert sum(bits for _, bits in fired) == EXPECTED_BITS[name]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", ["native", 28])
def test_output_shape_on_native_and_digit_inputs(name, size):
    config = native_config(name, multiplier=0.25)
    if size != "native":
        config = dataclasses.replace(config, in_channels=1, image_size=size)
    model = build_cnn(config).train()
    assert model(images(config)).shape == (2, 10)


@pytest.mark.parametrize("name", NAMES)
def test_smallest_image_size_in_the_config_check_is_exact(name):
    """config.MIN_CNN_IMAGE_SIZE (used before any job starts) is the smallest
    size a forward pass in training mode takes."""
    smallest = MIN_CNN_IMAGE_SIZE.get(name, 1)
    config = dataclasses.replace(
        native_config(name, multiplier=0.25), in_channels=1, image_size=smallest
    )
    assert build_cnn(config).train()(images(config)).shape == (2, 10)
    if smallest > 1:
        too_small = dataclasses.replace(config, image_size=smallest - 1)
        with pytest.raises(RuntimeError):
            build_cnn(too_small).train()(images(too_small))


@pytest.mark.parametrize("name", NAMES)
def test_code_bits_equal_the_hooked_output_sizes(name):
    config = CNNConfig(name, in_channels=1, image_size=28, multiplier=0.25)
    model = build_cnn(config).eval()
    assert code_bits(config) == forward_relus(model, images(config))


def test_code_bits_on_native_inputs():
    bits = code_bits(native_config("resnet20"))
    assert len(bits) == 19
    assert sum(n for _, n in bits) == EXPECTED_BITS["resnet20"]


@pytest.mark.parametrize("name", NAMES)
def test_multiplier_shrinks_every_width(name):
    full = layer_table(native_model(name))
    small = layer_table(build_cnn(native_config(name, multiplier=0.25)))
    assert len(small) == len(full)
    for big, little in zip(full[:-1], small[:-1], strict=True):
        assert little[2] < big[2] or big[2] == 1
    assert small[-1][2] == 10  # the output layer keeps its classes
    groups = [layer[5] for layer in small if layer[0] == "conv"]
    assert groups == [layer[5] for layer in full if layer[0] == "conv"]


def test_tiny_multiplier_keeps_grouped_convolutions_valid():
    config = CNNConfig("resnext26", in_channels=1, image_size=28, multiplier=0.05)
    assert build_cnn(config)(images(config)).shape == (2, 10)


@pytest.mark.parametrize("name", NAMES)
def test_build_model_rebuilds_the_architecture(name):
    config = native_config(name, multiplier=0.25)
    config_dict = config.to_dict()
    assert config_dict["arch"] == "cnn"
    rebuilt = build_model(config_dict)
    original = build_cnn(config)
    assert rebuilt.config == config
    shapes = {k: v.shape for k, v in original.state_dict().items()}
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == shapes


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"name": "vgg16"}, "unknown CNN"),
        ({"in_channels": 0}, "in_channels"),
        ({"multiplier": 0.0}, "multiplier"),
    ],
)
def test_invalid_configs_are_refused(kwargs, message):
    fields = {"name": "resnet20", "in_channels": 3, "image_size": 32, **kwargs}
    with pytest.raises(ValueError, match=message):
        CNNConfig(**fields)
