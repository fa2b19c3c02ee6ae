"""How much the common runner adds to a hand-written PyTorch loop (goal: at most 3%, CPU).

Same model, data, optimizer and batch size; the runner path is ftrecipe's own training loop
(Accelerate, epoch sampler, gradient clipping, logging) driven in-process. Step time is measured in
the steady state on both sides (the runner's own throughput log, its first window excluded; the
plain loop's clock started after the same number of steps), so one-off set-up and the final
checkpoint are not counted. Prints the ratio.

    python bench/runner_overhead.py [--steps 400] [--width 512]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from ftrecipe.runner.outputs import MetricsLog
from ftrecipe.runner.progress import Reporter
from ftrecipe.sections import DataSection, ModelSection, RecipeBase
from ftrecipe.task import DataBundle, EvalResult, ModalityTask, TaskContext


class BenchModel(ModelSection):
    modality: str = "bench"


class BenchData(DataSection):
    format: str = "tensors"


def make_model(width: int) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(64, width), torch.nn.GELU(), torch.nn.Linear(width, width), torch.nn.GELU(), torch.nn.Linear(width, 1)
    )


class TensorRows(torch.utils.data.Dataset):
    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        return self.x[i], self.y[i]


def collate(items):
    xs, ys = zip(*items)
    return {"x": torch.stack(xs), "y": torch.stack(ys)}


class BenchTask(ModalityTask):
    width = 512
    dataset: TensorRows

    def build_model(self):
        return make_model(self.width)

    def build_data(self):
        return DataBundle(train=self.dataset, eval=None, collate=collate)

    def compute_loss(self, model, batch):
        return torch.nn.functional.mse_loss(model(batch["x"]).squeeze(-1), batch["y"])

    def evaluate(self, model, data, *, max_examples):  # no eval split in the benchmark
        return EvalResult({})

    def save(self, model, directory):
        pass


def plain_loop(dataset: TensorRows, width: int, steps: int, batch: int, lr: float) -> float:
    """Seconds per optimizer step of a hand-written loop."""
    model = make_model(width)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(0)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True, generator=generator, collate_fn=collate)
    done = 0
    warmup = steps // 10
    start = time.perf_counter()
    while done < steps:
        for b in loader:
            loss = torch.nn.functional.mse_loss(model(b["x"]).squeeze(-1), b["y"])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            done += 1
            if done == warmup:
                start = time.perf_counter()
            if done == steps:
                break
    return (time.perf_counter() - start) / (steps - warmup)


def runner_loop(dataset: TensorRows, width: int, steps: int, batch: int, lr: float) -> float:
    """Seconds per optimizer step of ftrecipe's loop, from its throughput log."""
    from accelerate import Accelerator

    from ftrecipe.runner.loop import train

    recipe = RecipeBase.model_validate(
        {
            "model": {"modality": "bench", "base": "scratch"},
            "data": {"format": "tensors"},
            "training": {"max_steps": steps, "batch_size": batch, "learning_rate": lr, "log_every": steps // 10, "scheduler": "constant",
                         "checkpoint_every": 10 * steps},  # the plain loop does not checkpoint either
            "hardware": {"accelerator": "cpu", "dataloader_workers": 0},
            "evaluation": {"before_training": False},
        }
    )
    with tempfile.TemporaryDirectory() as out:
        ctx = TaskContext(recipe=recipe, registry=None, base_dir=Path("."), output_dir=Path(out))  # type: ignore[arg-type]
        task = BenchTask(ctx)
        task.width, task.dataset = width, dataset
        accelerator = Accelerator(cpu=True)
        log = MetricsLog(Path(out) / "m.jsonl")
        train(
            task=task, accelerator=accelerator, output_dir=Path(out), reporter=Reporter(enabled=False, quiet=True),
            metrics_log=log, data=task.build_data(), resume=False, max_steps=None, callbacks=[],
        )
        windows = [r for r in log.records() if r["kind"] == "train"][1:]
        return sum(batch / r["samples_per_second"] for r in windows) / len(windows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    x = torch.randn(4096, 64)
    dataset = TensorRows(x, x.sum(dim=1))
    plain, runner = [], []
    for _ in range(args.repeats):  # interleaved, best of N: the machine's noise hits both alike
        plain.append(plain_loop(dataset, args.width, args.steps, args.batch, 1e-3))
        runner.append(runner_loop(dataset, args.width, args.steps, args.batch, 1e-3))
    p, r = min(plain), min(runner)
    print(f"plain PyTorch loop : {1000 * p:.3f} ms/step")
    print(f"ftrecipe runner    : {1000 * r:.3f} ms/step")
    print(f"ratio runner/plain : {r / p:.3f}  (goal <= 1.03)")


if __name__ == "__main__":
    main()
