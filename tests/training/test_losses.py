import torch

from plumenet.training.losses import tversky_loss


def test_tversky_loss_values():
    target = torch.tensor([[[0, 1], [2, 255]]])
    perfect = torch.nn.functional.one_hot(target.clamp(max=2), 3).permute(0, 3, 1, 2).float() * 50
    w = torch.ones(3)
    assert tversky_loss(perfect, target, 0.3, 0.7, w).item() < 1e-3
    wrong = perfect.roll(1, dims=1)
    assert tversky_loss(wrong, target, 0.3, 0.7, w).item() > 0.5
