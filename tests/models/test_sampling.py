"""The deterministic formulations of bilinear sampling and resizing equal PyTorch's own."""

import pytest
import torch
import torch.nn.functional as F

from relight_core.models import sampling


@pytest.mark.parametrize("padding_mode", ["zeros", "border"])
def test_gathers_equal_grid_sample(padding_mode):
    generator = torch.Generator().manual_seed(0)
    image = torch.randn(2, 5, 7, 9, generator=generator, requires_grad=True)
    grid = torch.rand(2, 4, 6, 2, generator=generator) * 2.6 - 1.3  # some points outside the image
    grid[0, 0, :3] = torch.tensor([[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0]])  # corners and the centre
    expected = F.grid_sample(image, grid, mode="bilinear", padding_mode=padding_mode, align_corners=False)
    got = sampling.grid_sample_by_gathers(image, grid, padding_mode)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-6)
    weights = torch.randn(expected.shape, generator=generator)
    (expected_grad,) = torch.autograd.grad((expected * weights).sum(), image)
    (got_grad,) = torch.autograd.grad((got * weights).sum(), image)
    torch.testing.assert_close(got_grad, expected_grad, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("source, size", [(32, 64), (16, 32), (12, 5)])
def test_matrix_resize_equals_antialiased_interpolate(source, size):
    image = torch.randn(2, 3, source, source, generator=torch.Generator().manual_seed(1))
    expected = F.interpolate(image, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    torch.testing.assert_close(sampling.resize_by_matrix(image, size), expected, atol=1e-5, rtol=1e-5)


def test_plain_pytorch_outside_deterministic_cuda():
    image, grid = torch.randn(1, 2, 4, 4), torch.zeros(1, 1, 1, 2)
    assert torch.equal(sampling.grid_sample(image, grid),
                       F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=False))
