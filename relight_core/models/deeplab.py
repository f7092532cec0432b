"""DeepLabV3 feature extractor without normalisation: a dilated basic-block ResNet and ASPP.

This is the layout the released albedo encoder uses (segmentation-models-pytorch DeepLabV3 on
ResNet-34 with every BatchNorm replaced by identity, output stride 8, no segmentation head):

* stem: 7x7/2 conv (no bias) -> ReLU -> 3x3/2 max-pool              (stride 4)
* stage 1: basic blocks, stride 1; stage 2: stride 2                (stride 8)
* stages 3 and 4: stride 1 with dilation 2 and 4                    (stride 8)
* ASPP: 1x1, three atrous 3x3 and an image-pooling branch -> 1x1 projection -> 3x3 conv.

No convolution in this file has a bias, and ReLU follows every conv where a BatchNorm was.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _conv3x3(c_in: int, c_out: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)


class BasicBlock(nn.Module):
    """ResNet basic block without BatchNorm: relu(conv2(relu(conv1(x))) + shortcut(x)).

    [B, c_in, H, W] -> [B, c_out, H/stride, W/stride]
    """

    def __init__(self, c_in: int, c_out: int, stride: int, dilation: int, shortcut: bool):
        super().__init__()
        self.conv1 = _conv3x3(c_in, c_out, stride, dilation)
        self.conv2 = _conv3x3(c_out, c_out, 1, dilation)
        # 1x1 projection on the skip path (a 1x1 kernel is unaffected by dilation).
        self.shortcut = nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False) if shortcut else None

    def forward(self, x: Tensor) -> Tensor:
        skip = x if self.shortcut is None else self.shortcut(x)
        y = self.conv2(F.relu(self.conv1(x)))
        return F.relu(y + skip)


class DilatedResNet(nn.Module):
    """Basic-block ResNet with output stride 8 (stages 3 and 4 dilated instead of strided).

    [B, c_in, H, W] -> [B, widths[-1], H/8, W/8]
    """

    STRIDES = (1, 2, 1, 1)
    DILATIONS = (1, 1, 2, 4)

    def __init__(self, in_channels: int, widths: tuple[int, ...], blocks: tuple[int, ...]):
        super().__init__()
        if len(widths) != 4 or len(blocks) != 4:
            raise ValueError("DilatedResNet needs exactly four stages")
        self.stem = nn.Conv2d(in_channels, widths[0], 7, stride=2, padding=3, bias=False)
        stages = []
        c_in = widths[0]
        for index, (width, count) in enumerate(zip(widths, blocks)):
            stride, dilation = self.STRIDES[index], self.DILATIONS[index]
            # ResNet builds stages 2-4 with stride 2, so their first block always has a
            # projection shortcut, even where the dilation later replaced that stride.
            shortcut = index > 0 or c_in != width
            layers = [BasicBlock(c_in, width, stride, dilation, shortcut)]
            layers += [BasicBlock(width, width, 1, dilation, False) for _ in range(count - 1)]
            stages.append(nn.Sequential(*layers))
            c_in = width
        self.stages = nn.ModuleList(stages)

    def forward(self, x: Tensor) -> Tensor:
        x = F.max_pool2d(F.relu(self.stem(x)), kernel_size=3, stride=2, padding=1)
        for stage in self.stages:
            x = stage(x)
        return x


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling plus DeepLabV3's trailing 3x3 conv (all followed by ReLU).

    [B, c_in, H, W] -> [B, channels, H, W]
    """

    def __init__(self, in_channels: int, channels: int, rates: tuple[int, ...]):
        super().__init__()
        branches = [nn.Conv2d(in_channels, channels, 1, bias=False)]
        branches += [_conv3x3(in_channels, channels, 1, rate) for rate in rates]
        self.branches = nn.ModuleList(branches)
        self.pool_conv = nn.Conv2d(in_channels, channels, 1, bias=False)
        self.project = nn.Conv2d(channels * (len(branches) + 1), channels, 1, bias=False)
        self.dropout = nn.Dropout(0.5)
        self.refine = _conv3x3(channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        outs = [F.relu(branch(x)) for branch in self.branches]
        pooled = F.relu(self.pool_conv(x.mean(dim=(2, 3), keepdim=True)))
        # Bilinear upsampling of a 1x1 map (align_corners=False) is a plain broadcast.
        outs.append(pooled.expand(-1, -1, x.shape[2], x.shape[3]))
        x = self.dropout(F.relu(self.project(torch.cat(outs, dim=1))))
        return F.relu(self.refine(x))
