"""The training loop: exact resume, NaN guard, interrupts, checkpoints, AMP, EMA, clipping, schedules."""

import math
import time

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from cvcourse import checkpoint as checkpoint_module
from cvcourse.checkpoint import CheckpointError, read_checkpoint
from cvcourse.history import Every, History
from cvcourse.seeding import seed_everything
from cvcourse.train import NonFiniteLossError, Trainer, supervised_step


class NoisyPoints(Dataset):
    """Two Gaussian blobs with random augmentation drawn from the global RNG, as transforms do."""

    def __init__(self, n: int = 96) -> None:
        generator = torch.Generator().manual_seed(123)
        self.labels = torch.randint(0, 2, (n,), generator=generator)
        self.points = torch.randn(n, 6, generator=generator) + self.labels[:, None] * 1.5

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.points[i] + 0.1 * torch.randn(6), self.labels[i]


def make_model() -> nn.Module:
    return nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 2))


def make_run(tmp_path, *, workers: int = 0, with_generator: bool = False, step_fn=None, **kwargs):
    seed_everything(0)
    model = make_model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=7, gamma=0.5)
    generator = torch.Generator().manual_seed(5) if with_generator else None
    loader = DataLoader(NoisyPoints(), batch_size=16, shuffle=True, num_workers=workers, generator=generator)
    trainer = Trainer(model, optimizer, step_fn or supervised_step(F.cross_entropy), schedulers=scheduler,
                      checkpoint_dir=tmp_path, progress=False, ema_decay=0.9, grad_clip=5.0, **kwargs)
    return trainer, loader


def interrupt_at(step_number: int):
    """A step function that presses Ctrl+C when it reaches ``step_number``."""
    normal = supervised_step(F.cross_entropy)

    def step(batch, ctx):
        if ctx.step + 1 == step_number:
            raise KeyboardInterrupt
        return normal(batch, ctx)

    return step


@pytest.mark.parametrize("workers, with_generator", [(0, False), (2, True)])
def test_interrupted_and_resumed_run_matches_uninterrupted(tmp_path, workers, with_generator):
    total = 20  # 6 batches per epoch: the interrupt falls mid-epoch, the run spans several epochs
    reference, loader = make_run(tmp_path / "a", workers=workers, with_generator=with_generator)
    expected = reference.fit(loader, steps=total).series("loss")[1]

    interrupted, loader = make_run(tmp_path / "b", workers=workers, with_generator=with_generator,
                                   step_fn=interrupt_at(9))
    interrupted.fit(loader, steps=total)
    assert interrupted.step == 8
    assert interrupted.latest_checkpoint().name == "step_0000008.pt"

    seed_everything(999)  # a different process state must not matter once the checkpoint is loaded
    resumed, loader = make_run(tmp_path / "b", workers=workers, with_generator=with_generator)
    losses = resumed.fit(loader, steps=total, resume=True).series("loss")[1]
    assert losses == expected  # exact, not approximately
    for a, b in zip(reference.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)
    for a, b in zip(reference.ema.parameters(), resumed.ema.parameters()):
        assert torch.equal(a, b)


def test_seconds_are_checkpointed_and_summed_over_a_resumed_run(tmp_path):
    def slow(step_fn):
        def step(batch, ctx):
            time.sleep(0.01)
            return step_fn(batch, ctx)
        return step

    interrupted, loader = make_run(tmp_path, step_fn=slow(interrupt_at(5)))
    interrupted.fit(loader, steps=10)
    saved = read_checkpoint(interrupted.latest_checkpoint())["seconds"]
    assert interrupted.step == 4 and 4 * 0.01 <= saved <= interrupted.seconds

    resumed, loader = make_run(tmp_path, step_fn=slow(supervised_step(F.cross_entropy)))
    resumed.load_checkpoint(resumed.latest_checkpoint())
    assert resumed.seconds == saved  # the time before the interruption is kept
    resumed.fit(loader, steps=10, resume=True)
    assert resumed.seconds >= saved + 6 * 0.01  # and the resumed steps' time is added to it


def test_resume_from_periodic_checkpoint_after_a_crash(tmp_path):
    reference, loader = make_run(tmp_path / "a")
    expected = reference.fit(loader, steps=15).series("loss")[1]

    def crash_at_12(batch, ctx):
        if ctx.step + 1 == 12:
            raise RuntimeError("power cut")
        return supervised_step(F.cross_entropy)(batch, ctx)

    crashed, loader = make_run(tmp_path / "b", step_fn=crash_at_12, checkpoint_every=5)
    with pytest.raises(RuntimeError, match="power cut"):
        crashed.fit(loader, steps=15)
    resumed, loader = make_run(tmp_path / "b", checkpoint_every=5)
    assert resumed.fit(loader, steps=15, resume=True).series("loss")[1] == expected
    assert [p.name for p in resumed.checkpoints()] == ["step_0000010.pt", "step_0000015.pt"]  # keeps 2


def test_nan_loss_stops_with_step_and_last_checkpoint_and_keeps_weights(tmp_path):
    def nan_at_7(batch, ctx):
        loss = supervised_step(F.cross_entropy)(batch, ctx)
        return loss * float("nan") if ctx.step + 1 == 7 else loss

    trainer, loader = make_run(tmp_path, step_fn=nan_at_7, checkpoint_every=5)
    with pytest.raises(NonFiniteLossError, match=r"step 7.*step_0000005\.pt"):
        trainer.fit(loader, steps=10)
    assert trainer.step == 6
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_inf_in_a_logged_value_is_caught_too(tmp_path):
    def step(batch, ctx):
        loss = supervised_step(F.cross_entropy)(batch, ctx)
        ctx.optimize(loss)
        return {"loss": loss, "ratio": torch.tensor(math.inf)}

    trainer, loader = make_run(tmp_path, step_fn=step)
    with pytest.raises(NonFiniteLossError, match="ratio became inf at step 1"):
        trainer.fit(loader, steps=3)


def test_keyboard_interrupt_saves_and_returns(tmp_path, capsys):
    trainer, loader = make_run(tmp_path, step_fn=interrupt_at(4))
    history = trainer.fit(loader, steps=10)
    assert len(history.series("loss")[0]) == 3
    assert "Interrupted after step 3" in capsys.readouterr().out
    assert read_checkpoint(tmp_path / "step_0000003.pt")["step"] == 3


def test_checkpoint_is_loaded_weights_only_onto_the_cpu(tmp_path, monkeypatch):
    trainer, loader = make_run(tmp_path)
    trainer.fit(loader, steps=2)
    path = trainer.save_checkpoint()
    seen = {}
    real_load = torch.load

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(checkpoint_module.torch, "load", spy)
    read_checkpoint(path)
    assert seen == {"map_location": "cpu", "weights_only": True}


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_corrupt_checkpoint_gives_a_clear_error(tmp_path, damage):
    trainer, loader = make_run(tmp_path)
    trainer.fit(loader, steps=2)
    path = trainer.save_checkpoint()
    data = path.read_bytes()
    path.write_bytes({"garbage": b"not a checkpoint" * 10, "truncated": data[: len(data) // 2], "empty": b""}[damage])
    with pytest.raises(CheckpointError, match="damaged"):
        trainer.load_checkpoint(path)


class Payload:
    """Any pickled object that is not plain data: weights_only loading must refuse it."""


def test_unsafe_or_foreign_files_are_refused(tmp_path):
    torch.save({"format": "cvcourse-checkpoint-v1", "x": Payload()}, tmp_path / "unsafe.pt")
    with pytest.raises(CheckpointError, match="Cannot read checkpoint"):
        read_checkpoint(tmp_path / "unsafe.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a cvcourse training checkpoint"):
        read_checkpoint(tmp_path / "foreign.pt")
    with pytest.raises(FileNotFoundError, match="No checkpoint at"):
        read_checkpoint(tmp_path / "missing.pt")


def test_checkpoint_of_another_model_does_not_fit(tmp_path):
    trainer, loader = make_run(tmp_path)
    trainer.fit(loader, steps=2)
    path = trainer.save_checkpoint()
    other = nn.Linear(6, 2)
    with pytest.raises(CheckpointError, match="does not fit"):
        Trainer(other, torch.optim.SGD(other.parameters(), lr=0.1), supervised_step(F.cross_entropy),
                progress=False).load_checkpoint(path)


def test_two_optimizers_step_each_player(tmp_path):
    seed_everything(0)
    generator_net, critic = nn.Linear(6, 6), nn.Linear(6, 1)
    before = {name: [p.clone() for p in net.parameters()] for name, net in (("G", generator_net), ("D", critic))}

    def step(batch, ctx):
        real, _ = batch
        fake = ctx.models["G"](torch.randn_like(real))
        d_loss = F.softplus(-ctx.models["D"](real)).mean() + F.softplus(ctx.models["D"](fake.detach())).mean()
        ctx.optimize(d_loss, "D")
        g_loss = F.softplus(-ctx.models["D"](fake)).mean()
        ctx.optimize(g_loss, "G")
        return {"d_loss": d_loss, "g_loss": g_loss}

    optimizers = {"G": torch.optim.SGD(generator_net.parameters(), lr=0.1),
                  "D": torch.optim.SGD(critic.parameters(), lr=0.1)}
    trainer = Trainer({"G": generator_net, "D": critic}, optimizers, step, progress=False)
    history = trainer.fit(DataLoader(NoisyPoints(), batch_size=16), steps=3)
    assert history.names() == ["d_loss", "g_loss"]
    for name, net in (("G", generator_net), ("D", critic)):
        assert any(not torch.equal(a, b) for a, b in zip(before[name], net.parameters()))


def test_several_optimizers_need_explicit_optimize():
    a, b = nn.Linear(6, 2), nn.Linear(6, 2)
    trainer = Trainer({"a": a, "b": b}, {"a": torch.optim.SGD(a.parameters(), 0.1),
                                         "b": torch.optim.SGD(b.parameters(), 0.1)},
                      lambda batch, ctx: ctx.models["a"](batch[0]).sum(), progress=False)
    with pytest.raises(ValueError, match="ctx.optimize"):
        trainer.fit(DataLoader(NoisyPoints(), batch_size=16), steps=1)


def test_ema_follows_the_paper_update():
    seed_everything(0)
    model, decay = nn.Linear(6, 2), 0.8
    snapshots = []
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.5), supervised_step(F.cross_entropy),
                      ema_decay=decay, progress=False,
                      callbacks=[Every(1, lambda t: snapshots.append(t.model.weight.detach().clone()))])
    trainer.fit(DataLoader(NoisyPoints(), batch_size=16), steps=5)
    expected = snapshots[0]  # the first update copies the weights
    for weight in snapshots[1:]:
        expected = decay * expected + (1 - decay) * weight
    torch.testing.assert_close(trainer.ema.module.weight, expected)


def test_gradient_clipping_bounds_the_update_and_logs_the_norm():
    seed_everything(0)
    model = nn.Linear(6, 2)
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=1.0), supervised_step(F.cross_entropy),
                      grad_clip=1e-3, progress=False)
    history = trainer.fit(DataLoader(NoisyPoints(), batch_size=16), steps=1)
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert history.last("grad_norm") > 1e-3  # the norm before clipping is logged
    assert (after - before).norm() <= 1e-3 + 1e-7


def test_scheduler_steps_once_per_training_step():
    model = nn.Linear(6, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    Trainer(model, optimizer, supervised_step(F.cross_entropy), schedulers=scheduler,
            progress=False).fit(DataLoader(NoisyPoints(), batch_size=16), steps=6)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.125)


def test_cpu_bf16_autocast_trains():
    seed_everything(0)
    model = nn.Linear(6, 2)
    dtypes = []

    def step(batch, ctx):
        inputs, labels = batch
        with ctx.autocast():
            logits = ctx.model(inputs)
        dtypes.append(logits.dtype)
        return F.cross_entropy(logits.float(), labels)

    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), step, amp=True, progress=False)
    history = trainer.fit(DataLoader(NoisyPoints(), batch_size=16), steps=4)
    assert set(dtypes) == {torch.bfloat16}
    assert model.weight.dtype == torch.float32
    assert all(math.isfinite(v) for v in history.series("loss")[1])


def test_epochs_count_passes_and_argument_errors():
    model = nn.Linear(6, 2)
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), supervised_step(F.cross_entropy),
                      progress=False)
    loader = DataLoader(NoisyPoints(), batch_size=16)
    trainer.fit(loader, epochs=2)
    assert trainer.step == 12 and trainer.epoch == 2
    with pytest.raises(ValueError, match="exactly one of steps= or epochs="):
        trainer.fit(loader, steps=3, epochs=1)
    with pytest.raises(ValueError, match="steps must be >= 1"):
        trainer.fit(loader, steps=0)


def test_history_records_and_round_trips():
    history = History()
    history.log(1, loss=2.0)
    history.log(2, loss=1.0, accuracy=0.5)
    assert history.series("loss") == ([1, 2], [2.0, 1.0])
    assert history.mean("loss") == 1.5 and history.mean("loss", last=1) == 1.0
    copy = History()
    copy.load_state_dict(history.state_dict())
    assert copy.names() == ["loss", "accuracy"] and copy.last("accuracy") == 0.5
    with pytest.raises(KeyError, match="logged: loss, accuracy"):
        history.series("dice")


def test_live_plot_updates_one_display(monkeypatch):
    import IPython.display

    shown = []

    class Handle:
        def update(self, figure):
            shown.append("update")

    monkeypatch.setattr(IPython.display, "display", lambda figure, display_id: shown.append("new") or Handle())
    model = nn.Linear(6, 2)
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), supervised_step(F.cross_entropy),
                      progress=False, live_plot=True, plot_every=2)
    trainer.fit(DataLoader(NoisyPoints(), batch_size=16), steps=4)
    assert shown == ["new", "update", "update"]  # steps 2 and 4, then the final picture


def test_a_checkpointed_scheduler_state_holds_no_functions_and_loads_with_weights_only(tmp_path):
    from cvcourse.checkpoint import scheduler_state

    model = nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps=10)
    state = scheduler_state(scheduler)
    assert not any(callable(value) for value in state.values())
    torch.save(state, tmp_path / "scheduler.pt")
    again = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps=10)
    again.load_state_dict(torch.load(tmp_path / "scheduler.pt", weights_only=True))
    assert again.get_last_lr() == scheduler.get_last_lr()
