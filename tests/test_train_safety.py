"""The training loop never hangs, never poisons or loses what it trained, and never mixes two runs' checkpoints."""

import os
import signal

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from cvcourse.checkpoint import CheckpointError, read_checkpoint
from cvcourse.epochs import EmptyLoaderError
from cvcourse.seeding import seed_everything
from cvcourse.train import NonFiniteLossError, Trainer, supervised_step


def batch_norm_model() -> nn.Module:
    return nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 2))


def points(n: int = 64, seed: int = 0) -> TensorDataset:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=generator)
    return TensorDataset(torch.randn(n, 6, generator=generator) + labels[:, None], labels)


def make_trainer(checkpoint_dir=None, step_fn=None, model=None, lr=0.05, **kwargs) -> tuple[Trainer, DataLoader]:
    seed_everything(0)
    model = model or batch_norm_model()
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=lr), step_fn or supervised_step(F.cross_entropy),
                      checkpoint_dir=checkpoint_dir, progress=False, **kwargs)
    loader = DataLoader(points(), batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(1))
    return trainer, loader


def state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.clone() for name, value in model.state_dict().items()}


@pytest.mark.parametrize("how", ["steps", "epochs"])
def test_a_loader_without_batches_stops_at_once_and_says_why(how):
    trainer, _ = make_trainer()
    too_few = DataLoader(points(10), batch_size=16, drop_last=True)  # 10 images, batches of 16: none
    with pytest.raises(EmptyLoaderError, match="smaller batch_size.*drop_last=False"):
        trainer.fit(too_few, **{how: 5})
    assert trainer.step == 0
    with pytest.raises(EmptyLoaderError):
        trainer.fit(DataLoader(points(0), batch_size=4), steps=3)


def test_nan_in_the_data_stops_before_the_weights_and_batch_norm_statistics_change():
    trainer, loader = make_trainer()
    trainer.fit(loader, steps=4)
    before = state(trainer.model)
    poisoned = DataLoader(TensorDataset(torch.full((16, 6), float("nan")), torch.zeros(16, dtype=torch.long)),
                          batch_size=16)
    with pytest.raises(NonFiniteLossError, match="at step 5"):
        trainer.fit(poisoned, steps=5)
    after = state(trainer.model)
    assert all(torch.equal(before[name], after[name]) for name in before)  # running mean/var and the count too
    trainer.model.eval()
    assert torch.isfinite(trainer.model(points()[:8][0])).all()


def sigint_at(step_number: int, times: int = 1):
    """A step function that presses Ctrl+C ``times`` times in the middle of step ``step_number`` (after the forward
    pass has updated the batch-norm statistics, before the weights are updated)."""
    normal = supervised_step(F.cross_entropy)

    def step(batch, ctx):
        loss = normal(batch, ctx)
        if ctx.step + 1 == step_number:
            for _ in range(times):
                os.kill(os.getpid(), signal.SIGINT)
        return loss

    return step


def test_ctrl_c_mid_step_finishes_the_step_and_resumes_exactly(tmp_path, capsys):
    reference, loader = make_trainer(tmp_path / "a")
    reference.fit(loader, steps=12)
    interrupted, loader = make_trainer(tmp_path / "b", step_fn=sigint_at(5))
    interrupted.fit(loader, steps=12)
    assert interrupted.step == 5 and "Interrupted after step 5" in capsys.readouterr().out
    assert read_checkpoint(tmp_path / "b" / "step_0000005.pt")["step"] == 5
    resumed, loader = make_trainer(tmp_path / "b")
    resumed.fit(loader, steps=12, resume=True)
    expected, got = state(reference.model), state(resumed.model)
    assert all(torch.equal(expected[name], got[name]) for name in expected)  # weights and batch-norm statistics
    assert resumed.history.series("loss") == reference.history.series("loss")


def test_a_second_ctrl_c_stops_at_once_and_keeps_the_statistics_of_the_last_whole_step(tmp_path):
    finished, loader = make_trainer(tmp_path / "a")
    finished.fit(loader, steps=4)
    stopped, loader = make_trainer(tmp_path / "b", step_fn=sigint_at(5, times=2))
    stopped.fit(loader, steps=12)
    assert stopped.step == 4
    saved = read_checkpoint(tmp_path / "b" / "step_0000004.pt")["models"]["model"]
    expected = state(finished.model)
    assert all(torch.equal(expected[name], saved[name]) for name in expected)


def test_the_last_step_is_always_checkpointed(tmp_path):
    trainer, loader = make_trainer(tmp_path, checkpoint_every=5)
    trainer.fit(loader, steps=7)
    assert [path.name for path in trainer.checkpoints()] == ["step_0000005.pt", "step_0000007.pt"]


def test_a_fresh_run_replaces_an_earlier_run_of_the_same_configuration(tmp_path, capsys):
    first, loader = make_trainer(tmp_path, checkpoint_every=2)
    first.fit(loader, steps=8)
    second, loader = make_trainer(tmp_path, checkpoint_every=2)
    second.fit(loader, steps=4)
    assert "removed 2 checkpoint(s) of an earlier run" in capsys.readouterr().out
    assert [path.name for path in second.checkpoints()] == ["step_0000002.pt", "step_0000004.pt"]
    continuing, loader = make_trainer(tmp_path)
    continuing.fit(loader, steps=6, resume=True)
    assert continuing.step == 6 and read_checkpoint(continuing.latest_checkpoint())["step"] == 6


def test_another_configurations_checkpoints_are_refused_and_kept(tmp_path):
    first, loader = make_trainer(tmp_path)
    first.fit(loader, steps=3)
    wider = nn.Sequential(nn.Linear(6, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 2))
    for resume in (False, True):
        other, loader = make_trainer(tmp_path, model=wider)
        with pytest.raises(CheckpointError, match="another training configuration .*models' tensors differ"):
            other.fit(loader, steps=3, resume=resume)
    faster, loader = make_trainer(tmp_path, lr=0.5)
    with pytest.raises(CheckpointError, match="optimizers or their hyperparameters differ"):
        faster.fit(loader, steps=3, resume=True)
    assert [path.name for path in first.checkpoints()] == ["step_0000003.pt"]  # nothing of the old run deleted


def test_fit_again_on_the_same_trainer_continues_in_memory(tmp_path):
    trainer, loader = make_trainer(tmp_path, checkpoint_every=2)
    trainer.fit(loader, steps=4)
    trainer.fit(loader, steps=6)  # continue the run in memory: its own checkpoints stay
    assert trainer.step == 6 and [path.name for path in trainer.checkpoints()] == ["step_0000004.pt",
                                                                                 "step_0000006.pt"]
