"""ReLU networks whose activation patterns are the neural codes.

Every ReLU of a model is its own ``nn.ReLU`` module, so the code of an example can
be read with forward hooks (:func:`relu_modules`) whatever the architecture.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class MLPConfig:
    """Shape of a fully connected ReLU classifier.

    Parameters
    ----------
    input_dim : int
        Number of input features (flattened image size).
    width : int
        Units in every hidden layer (the paper's "width").
    depth : int, default=1
        Number of hidden layers.
    n_classes : int, default=10
        Output units.
    batch_norm : bool, default=False
        Insert ``BatchNorm1d`` between every linear layer and its ReLU.
    """

    input_dim: int
    width: int
    depth: int = 1
    n_classes: int = 10
    batch_norm: bool = False

    def to_dict(self) -> dict:
        return {"arch": "mlp", **asdict(self)}


class MLP(nn.Module):
    """Linear -> (BatchNorm) -> ReLU per hidden layer, then a linear classifier.

    The softmax of the paper's models lives in the loss (``cross_entropy``).
    """

    def __init__(self, config: MLPConfig):
        super().__init__()
        self.config = config
        blocks = []
        n_in = config.input_dim
        for _ in range(config.depth):
            # BatchNorm subtracts the batch mean, so a bias before it has a zero
            # gradient that Adam would turn into noise-driven steps: leave it out.
            layers = [nn.Linear(n_in, config.width, bias=not config.batch_norm)]
            if config.batch_norm:
                layers.append(nn.BatchNorm1d(config.width))
            layers.append(nn.ReLU())
            blocks.append(nn.Sequential(*layers))
            n_in = config.width
        self.hidden = nn.Sequential(*blocks)
        self.head = nn.Linear(n_in, config.n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.hidden(x.flatten(1)))


def build_model(config: dict) -> nn.Module:
    """Build a model from the dictionary stored in a checkpoint.

    Parameters
    ----------
    config : dict
        Output of ``MLPConfig.to_dict()`` or ``CNNConfig.to_dict()``; the ``arch``
        key selects the class.
    """
    config = dict(config)
    arch = config.pop("arch", None)
    if arch == "mlp":
        return MLP(MLPConfig(**config))
    if arch == "cnn":
        # Imported here because .cnn imports relu_modules from this module.
        from .cnn import CNNConfig, build_cnn

        return build_cnn(CNNConfig(**config))
    raise ValueError(f"unknown architecture {arch!r} in model config {config}")


def relu_modules(model: nn.Module) -> list[tuple[str, nn.ReLU]]:
    """The ReLU modules of ``model`` in forward order, with their qualified names.

    Raises
    ------
    ValueError
        If a ReLU is ``inplace`` (its hook would see the overwritten input) or the
        model has none.
    """
    found = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.ReLU)]
    if not found:
        raise ValueError(f"{type(model).__name__} has no nn.ReLU module")
    for name, module in found:
        if module.inplace:
            raise ValueError(f"ReLU {name!r} is inplace; codes need its output")
    return found
