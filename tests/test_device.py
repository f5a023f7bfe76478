"""Tests for cvcourse.device: device choice, AMP policy, loaders, moving data, reports."""

import os
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchvision import tv_tensors

from cvcourse import device as dev

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def no_device_env_var(monkeypatch):
    monkeypatch.delenv(dev.DEVICE_ENV_VAR, raising=False)


def fake_machine(monkeypatch, cuda_count: int = 0, mps: bool = False, bf16: bool = True) -> None:
    """Pretend the machine has ``cuda_count`` GPUs (natively bf16-capable or not) and maybe MPS."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda_count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: cuda_count)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0) if bf16 else (7, 5))
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


# pick_device ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cuda_count", "mps", "expected"),
    [(1, True, "cuda"), (0, True, "mps"), (0, False, "cpu")],
)
def test_pick_device_prefers_cuda_then_mps_then_cpu(monkeypatch, cuda_count, mps, expected):
    fake_machine(monkeypatch, cuda_count=cuda_count, mps=mps)
    assert dev.pick_device() == torch.device(expected)


def test_pick_device_reads_env_var_and_preferred_wins(monkeypatch):
    fake_machine(monkeypatch, cuda_count=2)
    monkeypatch.setenv(dev.DEVICE_ENV_VAR, "cuda:1")
    assert dev.pick_device() == torch.device("cuda:1")
    assert dev.pick_device("cpu") == torch.device("cpu")
    assert dev.pick_device(torch.device("cuda:0")) == torch.device("cuda:0")
    monkeypatch.setenv(dev.DEVICE_ENV_VAR, "")  # empty means unset
    assert dev.pick_device() == torch.device("cuda")


def test_pick_device_unavailable_names_what_is_available(monkeypatch):
    fake_machine(monkeypatch, cuda_count=2)
    with pytest.raises(RuntimeError, match=r"'cuda:3' is not available.*available: cuda:0, cuda:1, cpu"):
        dev.pick_device("cuda:3")
    fake_machine(monkeypatch, cuda_count=0)
    monkeypatch.setenv(dev.DEVICE_ENV_VAR, "mps")
    with pytest.raises(RuntimeError, match=r"'mps' \(from \$CVCOURSE_DEVICE\).*available: cpu.*unset"):
        dev.pick_device()


@pytest.mark.parametrize(
    ("bad", "message"),
    [("gpu", r"unknown device 'gpu'; use one of 'cuda'"), ("xpu", r"'xpu' is not supported.*use one of")],
)
def test_pick_device_rejects_unknown_device(bad, message):
    with pytest.raises(ValueError, match=message):
        dev.pick_device(bad)


# amp_policy ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("device", "kwargs", "bf16_gpu", "dtype", "use_scaler", "description"),
    [
        ("cuda", {}, True, torch.bfloat16, False, "bf16 autocast on cuda"),
        ("cuda", {}, False, torch.float16, True, "fp16 autocast + GradScaler on cuda"),
        ("cuda", {"dtype": "fp16"}, True, torch.float16, True, "fp16 autocast + GradScaler on cuda"),
        ("cuda:1", {"dtype": torch.bfloat16}, False, torch.bfloat16, False, "bf16 autocast on cuda"),
        ("cuda", {"enabled": False}, True, None, False, "off (float32) on cuda"),
        ("cpu", {}, True, None, False, "off (float32) on cpu"),
        ("cpu", {"enabled": True}, True, torch.bfloat16, False, "bf16 autocast on cpu"),
        ("cpu", {"dtype": "bfloat16"}, True, torch.bfloat16, False, "bf16 autocast on cpu"),
        ("cpu", {"enabled": False, "dtype": "fp16"}, True, None, False, "off (float32) on cpu"),
        ("mps", {}, True, None, False, "off (float32) on mps"),
        ("mps", {"enabled": True}, True, torch.float16, False, "fp16 autocast on mps"),
    ],
)
def test_amp_policy_branches(monkeypatch, device, kwargs, bf16_gpu, dtype, use_scaler, description):
    fake_machine(monkeypatch, cuda_count=2, bf16=bf16_gpu)
    policy = dev.amp_policy(device, **kwargs)
    assert policy.device_type == torch.device(device).type
    assert (policy.dtype, policy.use_scaler) == (dtype, use_scaler)
    assert policy.enabled == (dtype is not None)
    assert policy.describe() == description


def test_amp_policy_ignores_emulated_bf16(monkeypatch):
    # Recent torch reports bf16 on pre-Ampere GPUs (e.g. the T4, capability 7.5) as supported through
    # slow emulation; the policy asks for native support (capability 8.0 or newer).
    fake_machine(monkeypatch, cuda_count=1, bf16=False)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert dev.amp_policy("cuda").dtype == torch.float16


@pytest.mark.parametrize(
    ("device", "dtype", "message"),
    [
        ("cpu", "fp16", r"float16 mixed precision is not supported on cpu.*dtype='bf16'"),
        ("cpu", "int8", r"unknown mixed-precision dtype 'int8'; use 'bf16' or 'fp16'"),
        ("cuda", torch.float32, r"unknown mixed-precision dtype torch.float32.*enabled=False"),
    ],
)
def test_amp_policy_rejects_bad_dtype(device, dtype, message):
    with pytest.raises(ValueError, match=message):
        dev.amp_policy(device, dtype=dtype)


def test_amp_policy_is_frozen():
    with pytest.raises(AttributeError):
        dev.amp_policy("cpu").dtype = torch.bfloat16


def test_cpu_autocast_gives_bf16_only_when_enabled():
    layer = nn.Linear(8, 4)
    inputs = torch.randn(2, 8)
    with dev.amp_policy("cpu", enabled=True).autocast():
        assert layer(inputs).dtype == torch.bfloat16
    with dev.amp_policy("cpu").autocast():
        assert layer(inputs).dtype == torch.float32


@pytest.mark.parametrize(
    ("device", "bf16_gpu", "scaler_on"), [("cuda", False, True), ("cuda", True, False), ("cpu", True, False)]
)
def test_grad_scaler_enabled_only_for_fp16_on_cuda(monkeypatch, device, bf16_gpu, scaler_on):
    fake_machine(monkeypatch, cuda_count=1, bf16=bf16_gpu)
    assert dev.amp_policy(device, enabled=True).make_scaler().is_enabled() == scaler_on


# loader_kwargs -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("device", "cpus", "num_workers", "expected"),
    [
        ("cpu", 8, None, {"num_workers": 0, "pin_memory": False, "persistent_workers": False}),
        ("mps", 8, None, {"num_workers": 0, "pin_memory": False, "persistent_workers": False}),
        ("cuda", 8, None, {"num_workers": 4, "pin_memory": True, "persistent_workers": True}),
        ("cuda", 2, None, {"num_workers": 1, "pin_memory": True, "persistent_workers": True}),
        ("cuda", 1, None, {"num_workers": 0, "pin_memory": True, "persistent_workers": False}),
        ("cpu", 8, 2, {"num_workers": 2, "pin_memory": False, "persistent_workers": True}),
    ],
)
def test_loader_kwargs_per_device(monkeypatch, device, cpus, num_workers, expected):
    monkeypatch.setattr(dev, "_usable_cpu_count", lambda: cpus)
    assert dev.loader_kwargs(device, num_workers) == expected


def test_loader_kwargs_work_with_a_dataloader():
    dataset = TensorDataset(torch.arange(6.0))
    batches = list(DataLoader(dataset, batch_size=4, **dev.loader_kwargs("cpu")))
    assert [batch[0].tolist() for batch in batches] == [[0.0, 1.0, 2.0, 3.0], [4.0, 5.0]]


@pytest.mark.parametrize("num_workers", [-1, 1.5, True])
def test_loader_kwargs_rejects_bad_num_workers(num_workers):
    with pytest.raises(ValueError, match=r"expected num_workers to be an int >= 0.*pass 0"):
        dev.loader_kwargs("cpu", num_workers)


# to_device -----------------------------------------------------------------------------------

Batch = namedtuple("Batch", ["images", "targets"])


def detection_batch() -> Batch:
    boxes = tv_tensors.BoundingBoxes([[1, 2, 5, 6]], format="XYXY", canvas_size=(8, 8))
    target = {"boxes": boxes, "labels": torch.tensor([3]), "image_id": "img-0"}
    return Batch(images=[tv_tensors.Image(torch.rand(3, 8, 8))], targets=(target, None))


def check_moved(moved: Batch, original: Batch, device: torch.device) -> None:
    assert isinstance(moved, Batch) and isinstance(moved.images, list) and isinstance(moved.targets, tuple)
    assert type(moved.images[0]) is tv_tensors.Image
    boxes = moved.targets[0]["boxes"]
    assert type(boxes) is tv_tensors.BoundingBoxes
    assert boxes.format == tv_tensors.BoundingBoxFormat.XYXY and boxes.canvas_size == (8, 8)
    assert boxes.device.type == moved.targets[0]["labels"].device.type == device.type
    assert torch.equal(boxes.cpu(), original.targets[0]["boxes"])
    assert moved.targets[0]["image_id"] == "img-0" and moved.targets[1] is None


def test_to_device_moves_nested_structures_and_keeps_tv_tensors():
    batch = detection_batch()
    check_moved(dev.to_device(batch, "cpu"), batch, torch.device("cpu"))
    assert dev.to_device(3.5, "cpu") == 3.5


def test_to_device_rejects_unknown_device():
    with pytest.raises(ValueError, match="unknown device 'gpu0'"):
        dev.to_device(torch.zeros(1), "gpu0")


# models --------------------------------------------------------------------------------------


def test_use_channels_last_changes_conv_weight_memory_format():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())
    assert not model[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert dev.use_channels_last(model) is model
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)


def test_maybe_compile():
    model = nn.Linear(4, 2)
    assert dev.maybe_compile(model, enabled=False) is model
    compiled = dev.maybe_compile(model, enabled=True, backend="eager")
    assert compiled is not model
    inputs = torch.randn(3, 4)
    torch.testing.assert_close(compiled(inputs), model(inputs))


@pytest.mark.parametrize("function", [dev.use_channels_last, lambda model: dev.maybe_compile(model, False)])
def test_model_helpers_reject_non_modules(function):
    with pytest.raises(TypeError, match=r"expects a torch.nn.Module, got str; pass the model itself"):
        function("resnet18")


# reports -------------------------------------------------------------------------------------


def test_memory_report_cpu_mentions_size():
    assert dev.memory_report("cpu").startswith("cpu: process peak RSS ")
    assert dev.memory_report("cpu").endswith((" MB", " GB"))


def test_memory_report_without_resource_module(monkeypatch):
    monkeypatch.setattr(dev, "resource", None)
    assert "not available on this platform" in dev.memory_report("cpu")


def test_environment_report_cpu(monkeypatch):
    monkeypatch.setenv("CVCOURSE_PROFILE", "smoke")
    report = dev.environment_report("cpu")
    assert report["torch"] == torch.__version__ and report["torchvision"] == torchvision.__version__
    assert report["python"] == ".".join(map(str, sys.version_info[:3]))
    assert (report["device"], report["gpu_name"], report["amp"]) == ("cpu", None, "off (float32) on cpu")
    assert report["cpu_count"] >= 1
    monkeypatch.setenv("CVCOURSE_PROFILE", "full")
    assert dev.environment_report("cpu") == report


def test_check_command_runs_nms(capsys):
    assert dev.main(["--check", "--device", "cpu"]) == 0
    output = capsys.readouterr().out
    assert "torchvision: " + torchvision.__version__ in output
    assert "torchvision.ops.nms runs on cpu: OK" in output


def test_check_command_explains_mismatched_torchvision(monkeypatch, capsys):
    def broken_nms(*args, **kwargs):
        raise RuntimeError("operator torchvision::nms does not exist")

    monkeypatch.setattr(torchvision.ops, "nms", broken_nms)
    assert dev.main(["--check", "--device", "cpu"]) == 1
    error = capsys.readouterr().err
    assert "operator torchvision::nms does not exist" in error
    assert "mismatched builds" in error
    assert "pip install -c requirements/torch-pair.txt -e .[dev]" in error and "make install" in error


def test_check_command_explains_torchvision_import_failure(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torchvision", None)
    assert dev.main(["--check", "--device", "cpu"]) == 1
    assert "requirements/torch-pair.txt" in capsys.readouterr().err


def test_check_command_as_module(monkeypatch):
    def run(device: str) -> subprocess.CompletedProcess:
        env = {**os.environ, dev.DEVICE_ENV_VAR: device}
        command = [sys.executable, "-m", "cvcourse.device", "--check"]
        return subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60)

    assert run("cpu").returncode == 0
    unavailable = run("cuda:99")
    assert unavailable.returncode == 1
    assert "'cuda:99' (from $CVCOURSE_DEVICE) is not available" in unavailable.stderr


# real CUDA -----------------------------------------------------------------------------------


@needs_cuda
def test_cuda_fp16_autocast_and_scaler_step():
    dev.seed_everything(0)
    policy = dev.amp_policy("cuda", dtype="fp16")
    model = nn.Linear(8, 1).cuda()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = policy.make_scaler()
    assert scaler.is_enabled()
    before = model.weight.detach().clone()
    inputs, targets = torch.randn(16, 8, device="cuda"), torch.randn(16, 1, device="cuda")
    for _ in range(5):  # a step whose scaled gradients overflow float16 is skipped, so take a few
        optimizer.zero_grad()
        with policy.autocast():
            outputs = model(inputs)
            assert outputs.dtype == torch.float16
            loss = nn.functional.mse_loss(outputs.float(), targets)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    assert model.weight.dtype == torch.float32 and not torch.equal(model.weight, before)
    assert scaler.get_scale() > 0


@needs_cuda
def test_cuda_default_policy_and_bf16_autocast():
    policy = dev.amp_policy(dev.pick_device())
    expected = torch.bfloat16 if torch.cuda.get_device_capability()[0] >= 8 else torch.float16
    assert policy.dtype == expected and policy.use_scaler == (expected == torch.float16)
    with policy.autocast():
        assert nn.Linear(8, 4).cuda()(torch.randn(2, 8, device="cuda")).dtype == expected


@needs_cuda
def test_cuda_to_device_loader_and_reports(capsys):
    batch = detection_batch()
    check_moved(dev.to_device(batch, "cuda", non_blocking=True), batch, torch.device("cuda"))
    kwargs = dev.loader_kwargs("cuda")
    assert kwargs["pin_memory"]
    loader = DataLoader(TensorDataset(torch.arange(8.0)), batch_size=4, **kwargs)
    moved = [dev.to_device(numbers, "cuda", non_blocking=True)[0] for numbers in loader]
    assert torch.cat(moved).sum().item() == 28.0 and moved[0].is_cuda
    name = torch.cuda.get_device_name()
    assert name in dev.memory_report("cuda") and "peak allocated" in dev.memory_report("cuda")
    assert dev.environment_report()["gpu_name"] == name
    assert dev.main(["--check"]) == 0
    assert "torchvision.ops.nms runs on cuda: OK" in capsys.readouterr().out


def test_autocast_enabled_answers_for_the_device_type_asked():
    assert not dev.autocast_enabled("cpu") and not dev.autocast_enabled("cuda")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert dev.autocast_enabled("cpu") and not dev.autocast_enabled("cuda")
