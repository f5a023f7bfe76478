"""Training on several processes: 2 gloo processes on the CPU train as 1 process does on the same global batch, their
checkpoints resume on 1 process and back, a resumed run is exact on every process, and rank 0 alone writes."""

import datetime
import os
import signal
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset, WeightedRandomSampler

import cvcourse.train
from cvcourse.checkpoint import read_checkpoint
from cvcourse.distributed import Replicas, shard_loader
from cvcourse.history import LivePlot
from cvcourse.recipes import appendix_ddp
from cvcourse.seeding import seed_everything
from cvcourse.train import NonFiniteLossError, Trainer, supervised_step

WORLD = 2
BATCH = 8  # the global batch: 4 images on each of the 2 processes
STEPS = 9  # 6 batches a pass: the runs cross into a second pass
HALFWAY = 4  # where runs are interrupted, in the middle of the first pass


def points(n: int = 48) -> TensorDataset:
    generator = torch.Generator().manual_seed(7)
    labels = torch.randint(0, 2, (n,), generator=generator)
    return TensorDataset(torch.randn(n, 6, generator=generator) + labels[:, None], labels)


def make_run(checkpoint_dir, *, dropout: float = 0.0, draw_seed: int = 0, step_fn=None, **options):
    """A trainer and a loader whose global batches are the same on 1 and 2 processes (a DistributedSampler's order);
    ``draw_seed`` seeds the random draws of training (dropout) after the weights are made."""
    seed_everything(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, 2))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=4, gamma=0.5)
    seed_everything(draw_seed)
    dataset = points()
    loader = DataLoader(dataset, batch_size=BATCH, sampler=DistributedSampler(dataset, num_replicas=1, rank=0, seed=3))
    trainer = Trainer(model, optimizer, step_fn or supervised_step(F.cross_entropy), schedulers=scheduler,
                      checkpoint_dir=checkpoint_dir, progress=False, grad_clip=5.0, ema_decay=0.9, **options)
    return trainer, loader


def weights(trainer: Trainer) -> list[torch.Tensor]:
    return [parameter.detach().clone() for parameter in trainer.model.parameters()]


def press_ctrl_c(rank: int, step: int):
    """A step function that sends SIGINT to process ``rank`` alone, during step ``step``."""
    normal = supervised_step(F.cross_entropy)

    def step_fn(batch, ctx):
        if ctx.step + 1 == step and dist.get_rank() == rank:
            os.kill(os.getpid(), signal.SIGINT)
        return normal(batch, ctx)

    return step_fn


def nan_on(rank: int, step: int):
    """A step function whose loss is NaN on process ``rank`` alone, at step ``step``."""
    normal = supervised_step(F.cross_entropy)

    def step_fn(batch, ctx):
        loss = normal(batch, ctx)
        return loss * float("nan") if ctx.step + 1 == step and dist.get_rank() == rank else loss

    return step_fn


def on_two_processes(rank: int, tmp) -> None:
    """Every run of the 2 processes; each saves what the tests compare to ``tmp/rank{rank}.pt``."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{tmp}/rendezvous", rank=rank, world_size=WORLD,
                            timeout=datetime.timedelta(seconds=60))  # a test that hangs fails within a minute
    writes = []
    write = cvcourse.train.write_checkpoint
    cvcourse.train.write_checkpoint = lambda state, path: writes.append(path.name) or write(state, path)
    found = {}

    trainer, loader = make_run(tmp / "two")
    trainer.fit(loader, steps=STEPS)
    found["two"] = dict(weights=weights(trainer), losses=trainer.history.series("loss")[1])
    trainer, loader = make_run(tmp / "two_partial", process_group=dist.group.WORLD)  # the group given explicitly
    trainer.fit(loader, steps=HALFWAY)
    trainer, loader = make_run(tmp / "from_one")  # holds one process's checkpoint of step HALFWAY
    trainer.fit(loader, steps=STEPS, resume=True)
    found["from_one"] = weights(trainer)

    # dropout, with each process drawing its own random numbers
    uninterrupted, loader = make_run(tmp / "dropout", dropout=0.3, draw_seed=100 + rank)
    uninterrupted.fit(loader, steps=STEPS)
    interrupted, loader = make_run(tmp / "interrupted", dropout=0.3, draw_seed=100 + rank, step_fn=press_ctrl_c(1, 4))
    interrupted.fit(loader, steps=STEPS)
    found["interrupted_at"] = interrupted.step
    seed_everything(999)  # another state: the checkpoint must restore each process's own
    resumed, loader = make_run(tmp / "interrupted", dropout=0.3, draw_seed=999)
    resumed.fit(loader, steps=STEPS, resume=True)
    found["dropout"] = dict(uninterrupted=weights(uninterrupted), resumed=weights(resumed))

    trainer, loader = make_run(None, step_fn=nan_on(1, 2))
    try:
        trainer.fit(loader, steps=STEPS)
    except NonFiniteLossError as error:
        found["nan"] = (trainer.step, str(error))
    model = nn.Linear(2, 2)
    shown = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), supervised_step(F.mse_loss), progress=True,
                    live_plot=True)
    found["shows"] = (shown.progress, any(isinstance(callback, LivePlot) for callback in shown.callbacks))
    found["writes"] = writes
    torch.save(found, tmp / f"rank{rank}.pt")
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def runs(tmp_path_factory, one_thread):
    """The runs of 1 process and of 2, and 1 process resuming the 2 processes' checkpoint."""
    tmp = tmp_path_factory.mktemp("distributed")
    one, loader = make_run(tmp / "one")
    one.fit(loader, steps=STEPS)
    partial, loader = make_run(tmp / "from_one")
    partial.fit(loader, steps=HALFWAY)
    mp.spawn(on_two_processes, args=(tmp,), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp / f"rank{rank}.pt", weights_only=False) for rank in range(WORLD)]
    resumed, loader = make_run(tmp / "two_partial")
    resumed.fit(loader, steps=STEPS, resume=True)
    return dict(tmp=tmp, one=dict(weights=weights(one), losses=one.history.series("loss")[1]),
                from_two=weights(resumed), ranks=ranks)


def assert_close(ours: list[torch.Tensor], theirs: list[torch.Tensor]) -> None:
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_two_processes_train_the_weights_one_process_trains_on_the_same_global_batch(runs):
    first, second = runs["ranks"]
    assert all(torch.equal(a, b) for a, b in zip(first["two"]["weights"], second["two"]["weights"]))  # replicas agree
    assert_close(first["two"]["weights"], runs["one"]["weights"])
    assert first["two"]["losses"] == second["two"]["losses"]  # the loss logged is the mean over the processes
    torch.testing.assert_close(first["two"]["losses"], runs["one"]["losses"], rtol=1e-5, atol=1e-6)


def test_a_checkpoint_resumes_on_another_number_of_processes(runs):
    assert_close(runs["ranks"][0]["from_one"], runs["one"]["weights"])  # written by 1 process, resumed by 2
    assert_close(runs["from_two"], runs["one"]["weights"])  # written by 2 processes, resumed by 1


def test_resumed_on_two_processes_each_draws_what_it_would_have_drawn(runs):
    for found in runs["ranks"]:
        assert found["interrupted_at"] == HALFWAY  # Ctrl+C reached process 1 only; both stopped after the same step
        assert all(torch.equal(a, b) for a, b in zip(found["dropout"]["uninterrupted"], found["dropout"]["resumed"]))
    saved = read_checkpoint(runs["tmp"] / "interrupted" / f"step_{HALFWAY:07d}.pt")
    assert len(saved["ranks"]) == WORLD
    assert not torch.equal(saved["ranks"][0]["rng"]["torch"], saved["ranks"][1]["rng"]["torch"])


def test_a_nan_on_one_process_stops_every_process_at_the_same_step(runs):
    for found in runs["ranks"]:
        step, message = found["nan"]
        assert step == 1 and "at step 2" in message


def test_only_rank_zero_writes_checkpoints_and_shows_progress(runs):
    first, second = runs["ranks"]
    assert "step_0000009.pt" in first["writes"] and second["writes"] == []
    assert first["shows"] == (True, True) and second["shows"] == (False, False)
    assert [path.name for path in (runs["tmp"] / "two").glob("*.pt")] == ["step_0000009.pt"]


def test_a_loader_is_shared_out_into_the_global_batches_of_one_process():
    dataset = points(40)
    one = DataLoader(dataset, batch_size=BATCH, sampler=DistributedSampler(dataset, num_replicas=1, rank=0, seed=3))
    shares = [shard_loader(one, rank, WORLD) for rank in range(WORLD)]
    for epoch in range(2):
        for loader in [one, *shares]:
            loader.sampler.set_epoch(epoch)
        for (images, _), *parts in zip(one, *shares, strict=True):
            assert all(len(part[0]) == BATCH // WORLD for part in parts)
            assert sorted(images.sum(1).tolist()) == sorted(torch.cat([part[0] for part in parts]).sum(1).tolist())
    shuffled = DataLoader(dataset, batch_size=BATCH, shuffle=True, generator=torch.Generator().manual_seed(5))
    assert shard_loader(shuffled, 1, WORLD).sampler.seed == 5
    assert shard_loader(shares[0], 0, WORLD) is shares[0]  # already shared out


def test_each_pass_of_a_distributed_sampler_is_shuffled_anew():
    seen = []

    def remember(batch, ctx):
        seen.append(batch[0].sum(1))
        return supervised_step(F.cross_entropy)(batch, ctx)

    trainer, loader = make_run(None, step_fn=remember)
    trainer.fit(loader, epochs=2)
    first, second = torch.cat(seen[:len(loader)]), torch.cat(seen[len(loader):])
    assert sorted(first.tolist()) == sorted(second.tolist()) and not torch.equal(first, second)


def test_a_loader_that_cannot_be_shared_out_says_how_to_fix_it():
    dataset = points(40)
    with pytest.raises(ValueError, match="multiple of 3"):
        shard_loader(DataLoader(dataset, batch_size=BATCH), 0, 3)
    with pytest.raises(TypeError, match="DistributedSampler"):
        shard_loader(DataLoader(dataset, batch_size=BATCH, sampler=WeightedRandomSampler([1.0] * 40, 40)), 0, WORLD)
    with pytest.raises(TypeError, match="needs a torch DataLoader"):
        shard_loader([dataset[0]], 0, WORLD)


def test_one_process_alone_is_left_as_it_is():
    alone = Replicas()
    loader, models, state = DataLoader(points(8), batch_size=4), {"model": nn.Linear(2, 2)}, {"rng": 1}
    assert (alone.rank, alone.world_size, alone.is_main) == (0, 1, True)
    assert alone.shard(loader) is loader and alone.wrap(models) == models and alone.unwrap(models) == models
    assert alone.mean(2.5) == 2.5 and alone.any(False) is False and alone.on_main(len) is len
    assert alone.with_rank_states(state) is state and alone.own_rank_states(state) is state


def test_torchrun_starts_the_script_on_two_processes_that_train_as_one(tmp_path, one_thread):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
               "cvcourse.recipes.appendix_ddp", "--out", str(tmp_path), "--profile", "smoke", "--device", "cpu"]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-2000:]
    two = appendix_ddp.read_results(tmp_path)
    assert (two["processes"], two["backend"], two["threads_per_process"]) == (2, "gloo", 1)
    cfg = appendix_ddp.load("smoke", "cpu")
    one, _ = appendix_ddp.train_cells(cfg, progress=False)
    assert two["steps"] == one.step == cfg.steps
    torch.testing.assert_close(two["losses"][:5], one.history.series("loss")[1][:5], rtol=1e-5, atol=1e-6)
    assert appendix_ddp.trained_unet(cfg, tmp_path).state_dict().keys() == one.model.state_dict().keys()
