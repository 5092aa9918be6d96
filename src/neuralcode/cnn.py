"""The convolutional networks of the paper's Tables 3 (MNIST) and 4 (CIFAR-10).

The paper reads the neural code of a CNN as the sign pattern of every ReLU output
(every channel at every position). So that :func:`neuralcode.models.relu_modules`
finds those outputs with forward hooks, every ReLU application here is its own
``nn.ReLU`` module, never inplace and never applied twice, and modules are
registered in the order the forward pass runs them: ``named_modules()`` order is
forward order (a residual block's ReLU after the addition is a module of the
block, registered after its branches). Every convolution is followed by
``BatchNorm2d`` before its ReLU, and VGG-19's hidden fully connected layers are
``Linear -> BatchNorm1d -> ReLU -> Dropout(0.5)``, as in the authors' code. A
layer followed by batch norm has no bias (batch norm cancels it).

Every architecture is written below as a table (:data:`ARCHITECTURES`) in the
tables' own terms: a stem, stages of repeated blocks of ``(kernel, width,
groups)`` convolutions, optional fully connected layers. Inputs are ``(n, C, H,
W)`` tensors; the head is a global average pool, so every net runs on its own
dataset's size and on 1x28x28 digits alike.

Choices the tables leave open
-----------------------------
- Padding: every ``k x k`` convolution is padded by ``k // 2`` ("same"), so only
  strides and pools shrink the feature maps.
- MNIST stem (Table 3): "3x3, 32, stride 2" then "maxpool, 3x3" with stride 2
  and padding 1, as in the ImageNet ResNet stem: 28x28 becomes 7x7.
- VGG-18 (MNIST) has no pooling between its four stages: Table 3 lists none
  (Table 4 lists VGG-19's explicitly), and after the stem the 7x7 maps could not
  be halved three more times. All 16 stage convolutions have stride 1.
- ResNet-18 (MNIST) has four stages of two basic blocks, 32, 64, 128 and 256
  channels. Table 3 leaves its 64-channel cell empty, but that would give a
  14-layer net; every other name counts its convolution and fc layers, and the
  standard ResNet-18 has [2, 2, 2, 2] blocks.
- Residual nets: the first block of every stage after the first has stride 2,
  on its first 3x3 convolution (the grouped one in ResNeXt), and a block whose
  input and output shapes differ has a 1x1 convolution + batch norm projection
  shortcut (with that stride); otherwise the shortcut is the identity. The
  ReLU comes after the addition. This also holds for ResNet-20/32, where He et
  al. used zero-padding shortcuts (their option A) instead.
- ResNeXt-26: cardinality C = 8 is a grouped 3x3 convolution; the first
  block's projection takes the stem's 32 channels to 64.
- DenseNet-28 is post-activation like every other net here (conv -> batch norm
  -> ReLU, not the original BN -> ReLU -> conv), so every dense layer and
  transition adds its own ReLU. A dense layer is ``1x1, 12 -> 3x3, 3`` whose
  3 output channels are concatenated to its input. The transition ("conv, 1x1;
  avgpool, 2x2") halves the channels (DenseNet-BC compression 0.5, rounded
  down) and is followed by a 2x2 average pool of stride 2. Transitions sit
  between dense blocks, none after the last.
- VGG-19 (CIFAR-10): each "maxpool, 2x2" has stride 2 and rounds up
  (``ceil_mode``), so 28x28 inputs reach 1x1 instead of 0x0 after five pools
  (32x32 inputs are unaffected). The table lists no average pool: the global
  average pool before fc-4096 is the identity on the 1x1 maps of both sizes.
- CIFAR ResNets (Table 4): the stem is one "3x3" convolution with stride 1 and
  no max pool, as in He et al.'s CIFAR nets.
- ``multiplier`` scales every hidden width (convolutions, DenseNet growth rate
  and bottleneck, VGG-19's fc-4096) to ``round(width * multiplier)``, at least
  1; the widths of a grouped convolution and of the 1x1 convolution feeding it
  are rounded to a multiple of its groups (at least one channel per group) so
  that C = 8 stays valid.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch
from torch import nn

from .models import relu_modules

# Channels and height (= width) of the inputs each architecture was made for.
NATIVE_INPUTS = {"mnist": (1, 28), "cifar10": (3, 32)}

DENSENET_COMPRESSION = 0.5
VGG_DROPOUT = 0.5


class Conv(NamedTuple):
    """One table entry such as "3x3, 32, C = 8": kernel, width and groups."""

    kernel: int
    width: int
    groups: int = 1


class Stage(NamedTuple):
    """A block of convolutions repeated ``repeats`` times (``[...] x n``)."""

    block: tuple[Conv, ...]
    repeats: int


@dataclass(frozen=True)
class Architecture:
    """One column of Table 3 or 4.

    Parameters
    ----------
    family : {"vgg", "resnet", "densenet"}
        How the stage blocks connect: in a chain, around a shortcut, or densely.
    dataset : {"mnist", "cifar10"}
        Dataset of the table, which fixes the native input (:data:`NATIVE_INPUTS`).
    stages : tuple of Stage
        The stages in order.
    stem : int or None
        Width of the 3x3 stem convolution, if any.
    stem_downsample : bool
        MNIST stem: the stem convolution has stride 2 and a 3x3 max pool follows.
    stage_pool : bool
        A 2x2 max pool follows every stage (VGG-19).
    fc : tuple of int
        Widths of the hidden fully connected layers before fc-10.
    """

    family: str
    dataset: str
    stages: tuple[Stage, ...]
    stem: int | None = None
    stem_downsample: bool = False
    stage_pool: bool = False
    fc: tuple[int, ...] = ()


def _basic(width: int, repeats: int) -> Stage:
    return Stage((Conv(3, width), Conv(3, width)), repeats)


def _resnext(width: int, repeats: int) -> Stage:
    return Stage((Conv(1, width), Conv(3, width, 8), Conv(1, 2 * width)), repeats)


def _plain(width: int, repeats: int) -> Stage:
    return Stage((Conv(3, width),), repeats)


_DENSE_BLOCK = Stage((Conv(1, 12), Conv(3, 3)), 4)

ARCHITECTURES: dict[str, Architecture] = {
    # Table 3 (MNIST)
    "vgg18": Architecture(
        "vgg",
        "mnist",
        (_plain(32, 4), _plain(64, 4), _plain(128, 4), _plain(256, 4)),
        stem=32,
        stem_downsample=True,
    ),
    "resnet18": Architecture(
        "resnet",
        "mnist",
        (_basic(32, 2), _basic(64, 2), _basic(128, 2), _basic(256, 2)),
        stem=32,
        stem_downsample=True,
    ),
    "resnet34": Architecture(
        "resnet",
        "mnist",
        (_basic(32, 3), _basic(64, 4), _basic(128, 6), _basic(256, 3)),
        stem=32,
        stem_downsample=True,
    ),
    "resnext26": Architecture(
        "resnet",
        "mnist",
        (_resnext(32, 2), _resnext(64, 3), _resnext(128, 3)),
        stem=32,
        stem_downsample=True,
    ),
    "densenet28": Architecture(
        "densenet",
        "mnist",
        (_DENSE_BLOCK,) * 3,
        stem=6,
        stem_downsample=True,
    ),
    # Table 4 (CIFAR-10)
    "vgg19": Architecture(
        "vgg",
        "cifar10",
        (_plain(32, 2), _plain(128, 2), _plain(256, 4), _plain(512, 4), _plain(512, 4)),
        stage_pool=True,
        fc=(4096, 4096),
    ),
    "resnet18_cifar": Architecture(
        "resnet",
        "cifar10",
        (_basic(64, 2), _basic(128, 2), _basic(256, 2), _basic(512, 2)),
        stem=64,
    ),
    "resnet20": Architecture(
        "resnet", "cifar10", (_basic(16, 3), _basic(32, 3), _basic(64, 3)), stem=16
    ),
    "resnet32": Architecture(
        "resnet", "cifar10", (_basic(16, 5), _basic(32, 5), _basic(64, 5)), stem=16
    ),
}


def _check_name(name: str) -> None:
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown CNN {name!r}; choose one of {sorted(ARCHITECTURES)}")


@dataclass(frozen=True)
class CNNConfig:
    """Which CNN of the paper to build, and for which inputs.

    Parameters
    ----------
    name : str
        A key of :data:`ARCHITECTURES`: "vgg18", "resnet18", "resnet34",
        "resnext26", "densenet28" (Table 3, MNIST) or "vgg19", "resnet18_cifar",
        "resnet20", "resnet32" (Table 4, CIFAR-10).
    in_channels : int
        Channels of the input images.
    image_size : int
        Height (= width) of the input images. The network itself runs on any
        size of at least 28 (its head is a global average pool); this one sets
        the code size (:func:`code_bits`).
    n_classes : int, default=10
        Output units.
    multiplier : float, default=1.0
        Scales every hidden width to ``round(width * multiplier)``, at least 1.
    """

    name: str
    in_channels: int
    image_size: int
    n_classes: int = 10
    multiplier: float = 1.0

    def __post_init__(self):
        _check_name(self.name)
        for field in ("in_channels", "image_size", "n_classes"):
            if getattr(self, field) < 1:
                raise ValueError(f"CNNConfig.{field} must be >= 1, got {self}")
        if not self.multiplier > 0:
            raise ValueError(f"CNNConfig.multiplier must be > 0, got {self}")

    def to_dict(self) -> dict:
        return {"arch": "cnn", **asdict(self)}


def native_config(name: str, multiplier: float = 1.0) -> CNNConfig:
    """The config of ``name`` on the inputs of its own table's dataset."""
    _check_name(name)
    in_channels, image_size = NATIVE_INPUTS[ARCHITECTURES[name].dataset]
    return CNNConfig(name, in_channels, image_size, multiplier=multiplier)


def _conv_bn(
    n_in: int, n_out: int, kernel: int, stride: int = 1, groups: int = 1
) -> list[nn.Module]:
    """A "same"-padded convolution (no bias) and its batch norm."""
    conv = nn.Conv2d(
        n_in, n_out, kernel, stride, padding=kernel // 2, groups=groups, bias=False
    )
    return [conv, nn.BatchNorm2d(n_out)]


def _conv_bn_relu(*args, **kwargs) -> list[nn.Module]:
    """:func:`_conv_bn` and a ReLU of its own."""
    return [*_conv_bn(*args, **kwargs), nn.ReLU()]


class ResidualBlock(nn.Module):
    """``relu(branch(x) + shortcut(x))``; the final ReLU is the block's own."""

    def __init__(self, branch: nn.Sequential, shortcut: nn.Module):
        super().__init__()
        self.branch = branch
        self.shortcut = shortcut
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.branch(x) + self.shortcut(x))


class DenseLayer(nn.Module):
    """Concatenate the input with the output of ``body`` along the channels."""

    def __init__(self, body: nn.Sequential):
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.body(x)], dim=1)


class _Widths:
    """Applies ``multiplier`` to the widths of the tables."""

    def __init__(self, multiplier: float):
        self.multiplier = multiplier

    def __call__(self, width: int, multiple_of: int = 1) -> int:
        return multiple_of * max(1, round(width * self.multiplier / multiple_of))

    def block(self, block: tuple[Conv, ...]) -> list[int]:
        """Output widths of the convolutions of ``block``.

        A grouped convolution needs its input and output widths to be multiples
        of its groups, so its width and that of the convolution feeding it are.
        """
        groups = [conv.groups for conv in block] + [1]
        return [
            self(conv.width, math.lcm(conv.groups, groups[i + 1]))
            for i, conv in enumerate(block)
        ]


def _residual_block(
    block: tuple[Conv, ...], n_in: int, stride: int, widths: _Widths
) -> tuple[nn.Module, int]:
    """A residual block and its output channels; the stride sits on its first 3x3."""
    stride_at = next(i for i, c in enumerate(block) if c.kernel == 3)
    layers = []
    n = n_in
    for i, (conv, n_out) in enumerate(zip(block, widths.block(block), strict=True)):
        s = stride if i == stride_at else 1
        # The last convolution's ReLU comes after the addition, in the block.
        make = _conv_bn_relu if i < len(block) - 1 else _conv_bn
        layers.append(nn.Sequential(*make(n, n_out, conv.kernel, s, conv.groups)))
        n = n_out
    if stride == 1 and n == n_in:
        shortcut = nn.Identity()
    else:
        shortcut = nn.Sequential(*_conv_bn(n_in, n, 1, stride))
    return ResidualBlock(nn.Sequential(*layers), shortcut), n


def _chain_block(
    block: tuple[Conv, ...], n_in: int, stride: int, widths: _Widths
) -> tuple[nn.Module, int]:
    """Convolutions one after another, each with its batch norm and ReLU (VGG)."""
    layers = []
    n = n_in
    for conv, n_out in zip(block, widths.block(block), strict=True):
        layers += _conv_bn_relu(n, n_out, conv.kernel, stride, conv.groups)
        n = n_out
    return nn.Sequential(*layers), n


def _dense_block(
    block: tuple[Conv, ...], n_in: int, stride: int, widths: _Widths
) -> tuple[nn.Module, int]:
    """A dense layer: the chain of ``block``, concatenated to its input."""
    body, n_new = _chain_block(block, n_in, stride, widths)
    return DenseLayer(body), n_in + n_new


_BLOCK_BUILDERS = {
    "vgg": _chain_block,
    "resnet": _residual_block,
    "densenet": _dense_block,
}


def _stem(
    arch: Architecture, n_in: int, widths: _Widths
) -> tuple[list[nn.Module], int]:
    """The stem (if any) as a list of zero or one module, and its channels."""
    if arch.stem is None:
        return [], n_in
    n = widths(arch.stem)
    stride = 2 if arch.stem_downsample else 1
    layers = _conv_bn_relu(n_in, n, 3, stride)
    if arch.stem_downsample:
        layers.append(nn.MaxPool2d(3, stride=2, padding=1))
    return [nn.Sequential(*layers)], n


def _stages(
    arch: Architecture, n_in: int, widths: _Widths
) -> tuple[list[nn.Module], int]:
    """The stages, with the pools or transitions that follow them."""
    build_block = _BLOCK_BUILDERS[arch.family]
    stages = []
    n = n_in
    for index, stage in enumerate(arch.stages):
        blocks = []
        for repeat in range(stage.repeats):
            downsample = arch.family == "resnet" and index > 0 and repeat == 0
            block, n = build_block(stage.block, n, 2 if downsample else 1, widths)
            blocks.append(block)
        if arch.stage_pool:
            blocks.append(nn.MaxPool2d(2, ceil_mode=True))
        if arch.family == "densenet" and index < len(arch.stages) - 1:
            n_out = max(1, int(n * DENSENET_COMPRESSION))
            transition = [*_conv_bn_relu(n, n_out, 1), nn.AvgPool2d(2)]
            blocks.append(nn.Sequential(*transition))
            n = n_out
        stages.append(nn.Sequential(*blocks))
    return stages, n


def _classifier(
    arch: Architecture, n_in: int, n_classes: int, widths: _Widths
) -> nn.Sequential:
    """Global average pool, the hidden fc layers, then fc-``n_classes``."""
    layers = [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    n = n_in
    for width in arch.fc:
        n_out = widths(width)
        layers.append(
            nn.Sequential(
                nn.Linear(n, n_out, bias=False),
                nn.BatchNorm1d(n_out),
                nn.ReLU(),
                nn.Dropout(VGG_DROPOUT),
            )
        )
        n = n_out
    layers.append(nn.Linear(n, n_classes))
    return nn.Sequential(*layers)


class CNN(nn.Module):
    """``features`` (stem and stages) then ``classifier`` (pool, fc layers).

    The softmax of the paper's models lives in the loss (``cross_entropy``).
    """

    def __init__(self, config: CNNConfig):
        super().__init__()
        self.config = config
        arch = ARCHITECTURES[config.name]
        widths = _Widths(config.multiplier)
        stem, n = _stem(arch, config.in_channels, widths)
        stages, n = _stages(arch, n, widths)
        self.features = nn.Sequential(*stem, *stages)
        self.classifier = _classifier(arch, n, config.n_classes, widths)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def build_cnn(config: CNNConfig) -> CNN:
    """Build the network that ``config`` names (see :data:`ARCHITECTURES`)."""
    return CNN(config)


@torch.no_grad()
def code_bits(config: CNNConfig) -> list[tuple[str, int]]:
    """Code bits of each ReLU module for one input, in forward order.

    A ReLU's bits are its output's channels x height x width on an input of
    ``config.in_channels x config.image_size x config.image_size``, found by a
    forward pass of a zero image through the model in eval mode.

    Returns
    -------
    list of (str, int)
        Qualified module name and bit count of every ReLU.
    """
    model = build_cnn(config).eval()
    bits = []
    handles = [
        module.register_forward_hook(
            lambda _m, _i, out, name=name: bits.append((name, out[0].numel()))
        )
        for name, module in relu_modules(model)
    ]
    try:
        size = config.image_size
        model(torch.zeros(1, config.in_channels, size, size))
    finally:
        for handle in handles:
            handle.remove()
    return bits
