"""The configuration-keyed cache: hits, misses, stale and damaged entries, trained models and their checkpoints."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from cvcourse import cache
from cvcourse.cache import (
    CACHE_ENV,
    cache_root,
    cached,
    cached_model,
    config_key,
    tensor_digest,
)
from cvcourse.seeding import seed_everything
from cvcourse.train import Trainer, supervised_step


class Counter:
    """A ``make`` that counts its calls."""

    def __init__(self, value: float = 1.0) -> None:
        self.calls, self.value = 0, value

    def __call__(self) -> dict:
        self.calls += 1
        return {"weights": torch.full((3,), self.value), "score": 0.5, "note": "ok", "nested": {"list": [1, 2]}}


def test_config_key_is_short_stable_and_order_independent():
    key = config_key({"lr": 1e-3, "steps": 100})
    assert key == config_key({"steps": 100, "lr": 0.001}) and len(key) == 12
    assert key != config_key({"lr": 1e-3, "steps": 101})
    with pytest.raises(TypeError, match="JSON values"):
        config_key({"path": object()})
    with pytest.raises(TypeError, match="mapping"):
        config_key([("lr", 1e-3)])


def test_tensor_digest_changes_with_values_dtype_and_shape():
    values = torch.arange(6.0)
    assert tensor_digest(values) == tensor_digest(torch.arange(6.0)) and len(tensor_digest(values)) == 12
    others = [values + 1e-6, values.double(), values.reshape(2, 3), values.reshape(3, 2).t()]
    assert len({tensor_digest(values), *map(tensor_digest, others)}) == 5
    assert tensor_digest(values, values) != tensor_digest(values)
    with pytest.raises(TypeError, match="expects tensors"):
        tensor_digest([1.0, 2.0])


def test_cache_root_honours_the_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "elsewhere"))
    assert cache_root() == tmp_path / "elsewhere"
    make = Counter()
    cached("thing", {"a": 1}, make)
    assert (tmp_path / "elsewhere" / f"thing-{config_key({'a': 1})}.pt").is_file()
    monkeypatch.delenv(CACHE_ENV)
    assert cache_root() == cache.Path.home() / ".cache" / "cvcourse"


def test_miss_builds_then_hit_loads_on_the_cpu(tmp_path, capsys):
    make = Counter()
    first = cached("thing", {"a": 1}, make, root=tmp_path)
    assert "no cached entry yet" in capsys.readouterr().out
    second = cached("thing", {"a": 1}, make, root=tmp_path)
    assert make.calls == 1 and capsys.readouterr().out == ""
    assert torch.equal(first["weights"], second["weights"]) and second["weights"].device.type == "cpu"
    assert second["score"] == 0.5 and second["note"] == "ok" and second["nested"] == {"list": [1, 2]}


def test_a_changed_config_is_a_new_entry(tmp_path):
    make = Counter()
    cached("thing", {"a": 1}, make, root=tmp_path)
    cached("thing", {"a": 2}, make, root=tmp_path)
    assert make.calls == 2 and len(list(tmp_path.glob("thing-*.pt"))) == 2


def test_rebuild_builds_again(tmp_path, capsys):
    cached("thing", {"a": 1}, Counter(1.0), root=tmp_path)
    rebuilt = cached("thing", {"a": 1}, Counter(2.0), rebuild=True, root=tmp_path)
    assert "rebuild=True" in capsys.readouterr().out
    assert torch.equal(rebuilt["weights"], torch.full((3,), 2.0))
    assert torch.equal(cached("thing", {"a": 1}, Counter(3.0), root=tmp_path)["weights"], torch.full((3,), 2.0))


def test_damaged_entry_is_rebuilt(tmp_path, capsys):
    cached("thing", {"a": 1}, Counter(), root=tmp_path)
    path = next(tmp_path.glob("thing-*.pt"))
    path.write_bytes(path.read_bytes()[:40])  # an interrupted copy
    make = Counter(5.0)
    assert torch.equal(cached("thing", {"a": 1}, make, root=tmp_path)["weights"], torch.full((3,), 5.0))
    assert make.calls == 1 and "damaged" in capsys.readouterr().out


def test_stale_format_and_foreign_config_are_rebuilt(tmp_path, capsys):
    cached("thing", {"a": 1}, Counter(), root=tmp_path)
    path = next(tmp_path.glob("thing-*.pt"))
    entry = torch.load(path, weights_only=True)
    torch.save({**entry, "format": "cvcourse-cache-v0"}, path)
    make = Counter()
    cached("thing", {"a": 1}, make, root=tmp_path)
    assert make.calls == 1 and "format 'cvcourse-cache-v0'" in capsys.readouterr().out
    torch.save({**entry, "config": {"a": 2}}, path)  # as if two configs shared a key
    cached("thing", {"a": 1}, make, root=tmp_path)
    assert make.calls == 2 and "another configuration" in capsys.readouterr().out


class Opaque:
    """A class that ``torch.load(weights_only=True)`` refuses to unpickle."""


def test_entries_load_with_weights_only_and_unsafe_values_are_refused(tmp_path):
    with pytest.raises(TypeError, match=r"make\(\)\['bad'\] is a Opaque"):
        cached("thing", {"a": 1}, lambda: {"bad": Opaque()}, root=tmp_path)
    with pytest.raises(TypeError, match="must return a dict"):
        cached("thing", {"a": 1}, lambda: [1, 2], root=tmp_path)
    assert not list(tmp_path.iterdir())  # nothing written, not even a temporary file
    path = tmp_path / f"thing-{config_key({'a': 1})}.pt"
    torch.save({"format": cache.CACHE_FORMAT, "name": "thing", "config": {"a": 1}, "payload": Opaque()}, path)
    make = Counter()
    cached("thing", {"a": 1}, make, root=tmp_path)  # weights_only refuses the pickled class: rebuilt
    assert make.calls == 1


def test_an_interrupted_write_keeps_the_old_entry(tmp_path, monkeypatch):
    cached("thing", {"a": 1}, Counter(1.0), root=tmp_path)

    def interrupted_save(obj, path):
        open(path, "wb").write(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(cache.torch, "save", interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        cached("thing", {"a": 1}, Counter(2.0), rebuild=True, root=tmp_path)
    monkeypatch.undo()
    assert [path.suffix for path in tmp_path.iterdir()] == [".pt"]
    assert torch.equal(cached("thing", {"a": 1}, Counter(3.0), root=tmp_path)["weights"], torch.full((3,), 1.0))


def test_bad_names_are_explained(tmp_path):
    with pytest.raises(ValueError, match="must be letters, digits"):
        cached("../escape", {}, Counter(), root=tmp_path)


def points(n: int = 64) -> TensorDataset:
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 2, (n,), generator=generator)
    return TensorDataset(torch.randn(n, 4, generator=generator) + 2.0 * labels[:, None], labels)


class Training:
    """A ``train(model, checkpoint_dir)`` that fits with the course Trainer; Ctrl+C is pressed at ``interrupt_at``."""

    def __init__(self, steps: int = 6, interrupt_at: int | None = None) -> None:
        self.steps, self.interrupt_at = steps, interrupt_at
        self.calls, self.checkpoint_dirs, self.steps_trained = 0, [], 0

    def __call__(self, model: nn.Module, checkpoint_dir):
        self.calls += 1
        self.checkpoint_dirs.append(checkpoint_dir)
        seed_everything(0)
        loader = DataLoader(points(), batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(0))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        trainer = Trainer(model, optimizer, supervised_step(F.cross_entropy), device="cpu", progress=False,
                          checkpoint_dir=checkpoint_dir, checkpoint_every=2, callbacks=[self])
        trainer.fit(loader, steps=self.steps, resume=True)
        if trainer.step < self.steps:
            raise KeyboardInterrupt
        return {"steps": trainer.step}

    def on_step_end(self, trainer: Trainer) -> None:
        self.steps_trained += 1
        if trainer.step == self.interrupt_at:
            raise KeyboardInterrupt


def linear(width: int = 4) -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(width, 2))


def test_cached_model_trains_once_then_loads(tmp_path, capsys):
    training = Training()
    model, info = cached_model("model", {"steps": 6}, linear, training, root=tmp_path)
    assert training.calls == 1 and info["steps"] == 6 and not model.training
    loaded, loaded_info = cached_model("model", {"steps": 6}, linear, training, root=tmp_path)
    assert training.calls == 1 and loaded_info == info and next(loaded.parameters()).device.type == "cpu"
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    assert not torch.equal(loaded[0].weight, linear()[0].weight)  # the trained weights, not the initial ones


def test_checkpoint_dir_is_next_to_the_entry_and_removed_afterwards(tmp_path):
    training = Training()
    cached_model("model", {"steps": 6}, linear, training, root=tmp_path)
    (checkpoint_dir,) = training.checkpoint_dirs
    assert checkpoint_dir == tmp_path / f"model-{config_key({'steps': 6})}.checkpoints"
    assert not checkpoint_dir.exists() and [path.suffix for path in tmp_path.iterdir()] == [".pt"]


def test_an_interrupted_training_resumes_from_its_checkpoint(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        cached_model("model", {"steps": 6}, linear, Training(interrupt_at=4), root=tmp_path)
    assert not list(tmp_path.glob("*.pt"))
    assert len(list(tmp_path.glob("*.checkpoints/step_*.pt"))) == 2  # nothing cached, checkpoints kept
    training = Training()
    resumed, info = cached_model("model", {"steps": 6}, linear, training, root=tmp_path)
    assert training.steps_trained == 2 and info["steps"] == 6  # steps 5 and 6 only
    uninterrupted, _ = cached_model("model", {"steps": 6}, linear, Training(), root=tmp_path / "other")
    assert torch.allclose(resumed[0].weight, uninterrupted[0].weight)


def test_rebuild_and_unusable_checkpoints_train_from_the_start(tmp_path, capsys):
    with pytest.raises(KeyboardInterrupt):
        cached_model("model", {"steps": 6}, linear, Training(interrupt_at=4), root=tmp_path)
    training = Training()
    cached_model("model", {"steps": 6}, linear, training, rebuild=True, root=tmp_path)
    assert training.steps_trained == 6
    with pytest.raises(KeyboardInterrupt):
        cached_model("model", {"steps": 7}, linear, Training(steps=7, interrupt_at=4), root=tmp_path)
    capsys.readouterr()
    training = Training(steps=7)  # the model changed while its training was interrupted
    model, info = cached_model("model", {"steps": 7}, lambda: linear(width=4).append(nn.Linear(2, 2)), training,
                               root=tmp_path)
    assert "cannot resume" in capsys.readouterr().out
    assert training.calls == 2 and training.steps_trained == 7 and info["steps"] == 7 and len(model) == 2


def test_an_architecture_change_retrains(tmp_path, capsys):
    cached_model("model", {"steps": 6}, linear, Training(), root=tmp_path)
    capsys.readouterr()
    training = Training()
    model, _ = cached_model("model", {"steps": 6}, lambda: nn.Sequential(nn.Linear(4, 2), nn.Tanh(), nn.Linear(2, 2)),
                            training, root=tmp_path)
    assert training.calls == 1 and "stale" in capsys.readouterr().out
    assert isinstance(model[2], nn.Linear) and not model.training


def test_cached_model_needs_a_module(tmp_path):
    with pytest.raises(TypeError, match="must return a torch.nn.Module"):
        cached_model("model", {}, lambda: "not a model", Training(), root=tmp_path)
