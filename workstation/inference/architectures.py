"""Network architectures the model manifests may name (torch).

A manifest says ``"architecture": "heatmap-unet/1"`` and gives keyword
parameters; :func:`build` looks the name up in the fixed :data:`ARCHITECTURES`
table. Nothing from a manifest is imported or executed: unknown names and
unknown or ill-typed parameters are errors.

Only modules that run inference import this one (it imports torch).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _block(cin: int, cout: int) -> nn.Sequential:
    """Two 3x3 convolutions, each followed by batch norm and ReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class HeatmapUNet(nn.Module):
    """Compact 2-D U-Net: (B, in_channels, h, w) -> (B, 1, h, w) logits.

    ``widths`` are the feature counts per resolution level, the last one being
    the bottleneck; each further level halves the resolution. Inputs of any
    size are accepted (edge-padded to a multiple of ``2**(levels-1)`` and
    cropped back).
    """

    def __init__(self, in_channels: int = 3, widths: tuple[int, ...] | list[int] = (12, 24, 48, 96),
                 prior: float = 0.01):
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if int(in_channels) < 1 or len(widths) < 2 or min(widths) < 1:
            raise ValueError("need in_channels >= 1 and at least two positive widths")
        self.in_channels, self.widths = int(in_channels), widths
        self.encoders = nn.ModuleList()
        cin = self.in_channels
        for w in widths:
            self.encoders.append(_block(cin, w))
            cin = w
        self.decoders = nn.ModuleList()
        for w in reversed(widths[:-1]):
            self.decoders.append(_block(cin + w, w))
            cin = w
        self.head = nn.Conv2d(cin, 1, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.constant_(self.head.bias, float(torch.logit(torch.tensor(float(prior)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        m = 2 ** (len(self.widths) - 1)
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        skips = []
        for i, enc in enumerate(self.encoders):
            if i:
                x = F.max_pool2d(x, 2)
            x = enc(x)
            skips.append(x)
        skips.pop()
        for dec in self.decoders:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            x = dec(torch.cat([x, skips.pop()], dim=1))
        return self.head(x)[..., :h, :w]


ARCHITECTURES: dict[str, type[nn.Module]] = {"heatmap-unet/1": HeatmapUNet}

_PARAMS = {"heatmap-unet/1": {"in_channels": int, "widths": list, "prior": float}}


def build(name: str, params: dict) -> nn.Module:
    """Instantiate the architecture ``name`` from the fixed table with ``params``."""
    try:
        cls = ARCHITECTURES[name]
    except KeyError:
        raise ValueError(f"unknown architecture {name!r}; known: {sorted(ARCHITECTURES)}") from None
    allowed = _PARAMS[name]
    kwargs = {}
    for key, value in dict(params or {}).items():
        if key not in allowed:
            raise ValueError(f"architecture {name}: unknown parameter {key!r}")
        kind = allowed[key]
        if kind is list:
            if not isinstance(value, (list, tuple)) or not all(
                    isinstance(v, int) and not isinstance(v, bool) for v in value):
                raise ValueError(f"architecture {name}: {key} must be a list of integers")
            value = tuple(value)
        elif kind is int:
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"architecture {name}: {key} must be an integer")
        elif kind is float:
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise ValueError(f"architecture {name}: {key} must be a number")
            value = float(value)
        kwargs[key] = value
    return cls(**kwargs)
