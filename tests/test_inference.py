"""Running a trained model: eval mode without gradients, restored afterwards, and predictions over a loader."""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from cvcourse.inference import evaluating, predict


def test_predict_and_evaluating_restore_the_mode():
    model = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 2)).train()
    points, labels = torch.randn(96, 6), torch.randint(0, 2, (96,))
    outputs, targets = predict(model, DataLoader(TensorDataset(points, labels), batch_size=16))
    assert outputs.shape == (96, 2) and torch.equal(targets, labels)
    with torch.no_grad():
        torch.testing.assert_close(outputs, model.eval()(points))  # dropout off: the eval-mode outputs
    model.train()
    assert model.training
    with evaluating(model):
        assert not model.training and not torch.is_grad_enabled()
    assert model.training
