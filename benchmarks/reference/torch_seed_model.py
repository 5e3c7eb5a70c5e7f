#!/usr/bin/env python3
"""PyTorch eager reference for dropnet's benchmarks, run on the same device in the same sitting: on a GPU
(issue 3, scripts/gpu-check.sh) or on the CPU (--device cpu, issue 20: benchmarks/cpu-sitting.sh runs it
beside `dropnet-bench throughput --device cpu` and prints the ratio).

1. The seed model (dropnet's `dropnet train` model, src/cli/seed_model.cpp) in PyTorch eager:
     Conv2D(64, 3x3, valid, relu) - MaxPool 2x2 - Dropout(0.5) - Conv2D(64, 3x3, valid, relu) - MaxPool 2x2 -
     Dropout(0.5) - Flatten - Dense(256, relu) - Dense(10, softmax)
   trained with Adam (lr 1e-3, betas 0.9/0.999, eps 1e-7: Keras' defaults) and softmax cross-entropy,
   max-norm 2.0 applied after every step as Keras' MaxNorm(axis=0) does on the Keras kernel layouts
   (a Conv2D kernel (KH, KW, C, K) normed over KH; a Dense kernel (IN, OUT) normed over IN).
   Batch 250, float32, TF32 off in cuDNN and cuBLAS (dropnet's default numerics), cuDNN's default
   algorithm choice (torch.backends.cudnn.benchmark False: PyTorch eager as it comes) unless
   --cudnn-benchmark. Reports images/s (median step time) and torch.cuda.max_memory_allocated for one
   training step (the batch resident on the GPU, no dataset). On the CPU (--device cpu): the same step in
   float32 with --threads intra-op threads (default: all cores, as dropnet uses them), no memory figure.
2. (GPU only) F.dropout forward and its backward (aten native_dropout_backward) on a large tensor against a
   device-to-device copy of the same size, counted as dropnet-bench kernels counts: bytes of x read + y
   written (torch also writes a 1-byte mask in forward and reads it in backward; those bytes are not
   counted, as dropnet's kernels have no mask to move).

Data: with --data DIR (cifar-10-batches-bin), the batches come from data_batch_1.bin; else random
pixels with the same shape (the timing does not depend on the values).

Writes the figures as JSON (--json FILE) and a short table on stdout.
"""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class SeedModel(nn.Module):
    def __init__(self, rate: float):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3)
        self.conv2 = nn.Conv2d(64, 64, 3)
        self.fc1 = nn.Linear(6 * 6 * 64, 256)
        self.fc2 = nn.Linear(256, 10)
        self.rate = rate
        for layer in (self.conv1, self.conv2, self.fc1):  # he_uniform, zero bias (Keras)
            nn.init.kaiming_uniform_(layer.weight, nonlinearity="relu")
            nn.init.zeros_(layer.bias)
        nn.init.xavier_uniform_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, x):
        x = F.dropout(F.max_pool2d(F.relu(self.conv1(x)), 2), self.rate, self.training)
        x = F.dropout(F.max_pool2d(F.relu(self.conv2(x)), 2), self.rate, self.training)
        # Flatten in Keras' channels_last order, so the Dense weights see the same layout as dropnet's.
        x = x.permute(0, 2, 3, 1).flatten(1)
        return self.fc2(F.relu(self.fc1(x)))  # logits; softmax is inside the loss


@torch.no_grad()
def max_norm_(model: SeedModel, max_value: float):
    # Keras MaxNorm(axis=0): Conv2D kernel (KH, KW, C, K) -> torch (K, C, KH, KW), KH is dim 2;
    # Dense kernel (IN, OUT) -> torch (OUT, IN), IN is dim 1.
    for w, dim in ((model.conv1.weight, 2), (model.conv2.weight, 2), (model.fc1.weight, 1)):
        norms = w.pow(2).sum(dim=dim, keepdim=True).sqrt()
        w.mul_(norms.clamp(0, max_value) / (1e-7 + norms))


def load_batch(data_dir, batch, device):
    if data_dir:
        path = os.path.join(data_dir, "data_batch_1.bin")
        raw = np.fromfile(path, dtype=np.uint8).reshape(-1, 3073)[:batch]
        labels = torch.from_numpy(raw[:, 0].astype(np.int64))
        pixels = torch.from_numpy(raw[:, 1:].reshape(-1, 3, 32, 32).astype(np.float32) / 255.0)
    else:
        g = torch.Generator().manual_seed(0)
        pixels = torch.rand(batch, 3, 32, 32, generator=g)
        labels = torch.randint(0, 10, (batch,), generator=g)
    return pixels.to(device).contiguous(), labels.to(device)


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_training(args, device):
    torch.manual_seed(1)
    model = SeedModel(args.dropout).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-7)
    x, y = load_batch(args.data, args.batch_size, device)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        max_norm_(model, args.max_norm)
        return loss

    model.train()
    for _ in range(args.warmup):
        step()
    synchronize(device)
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated() if cuda else 0
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        loss = step()
        synchronize(device)
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    result = {
        "step_ms_median": median * 1e3,
        "step_ms_min": min(times) * 1e3,
        "step_ms_max": max(times) * 1e3,
        "images_per_second": args.batch_size / median,
        "final_loss": float(loss),
    }
    if cuda:
        result["max_memory_allocated_bytes"] = torch.cuda.max_memory_allocated()
        result["memory_allocated_before_steps_bytes"] = base
    return result


def cuda_time(fn, warmup, repeats):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return statistics.median(times)


def time_dropout(args, device):
    n = args.dropout_size
    x = torch.rand(n, device=device) + 0.5
    y = torch.empty_like(x)
    copy_s = cuda_time(lambda: y.copy_(x), 3, args.repeats)
    fwd_s = cuda_time(lambda: F.dropout(x, 0.5, training=True), 3, args.repeats)
    _, mask = torch.ops.aten.native_dropout(x, 0.5, True)
    bwd_s = cuda_time(lambda: torch.ops.aten.native_dropout_backward(x, mask, 2.0), 3, args.repeats)
    bytes_moved = 2 * n * 4
    gbs = lambda s: bytes_moved / s / 1e9
    return {
        "elements": n,
        "copy_gbs": gbs(copy_s),
        "dropout_forward_gbs": gbs(fwd_s),
        "dropout_backward_gbs": gbs(bwd_s),
        "dropout_forward_ms": fwd_s * 1e3,
        "dropout_backward_ms": bwd_s * 1e3,
        "copy_ms": copy_s * 1e3,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="cifar-10-batches-bin directory (default: random pixels)")
    p.add_argument("--batch-size", type=int, default=250)
    p.add_argument("--dropout", type=float, default=0.5)
    p.add_argument("--max-norm", type=float, default=2.0)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--dropout-size", type=int, default=64 * 1024 * 1024, help="floats in the dropout tensor")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--allow-tf32", action="store_true", help="let cuDNN and cuBLAS use TF32 (off: float32)")
    p.add_argument("--cudnn-benchmark", action="store_true", help="torch.backends.cudnn.benchmark = True")
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help="where to run (default: cuda)")
    p.add_argument("--threads", type=int, default=os.cpu_count(),
                   help="CPU: torch intra-op threads (default: every core)")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args()

    if args.device == "cpu":
        return main_cpu(args)
    if not torch.cuda.is_available():
        print("torch_seed_model.py: no CUDA device", file=sys.stderr)
        return 2
    torch.backends.cudnn.allow_tf32 = args.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = args.allow_tf32
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    device = torch.device("cuda")

    result = {
        "device": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "cudnn": torch.backends.cudnn.version(),
        "batch_size": args.batch_size,
        "tf32": args.allow_tf32,
        "cudnn_benchmark": args.cudnn_benchmark,
        "training": time_training(args, device),
        "dropout": time_dropout(args, device),
    }
    t, d = result["training"], result["dropout"]
    print(f"device: {result['device']} (torch {result['torch']}, cuDNN {result['cudnn']})")
    print(f"seed model, batch {args.batch_size}, fp32{' +TF32' if args.allow_tf32 else ''}: "
          f"{t['step_ms_median']:.2f} ms/step = {t['images_per_second']:.0f} images/s, "
          f"max_memory_allocated {t['max_memory_allocated_bytes'] / 2**20:.1f} MiB")
    print(f"F.dropout on {d['elements']} floats: forward {d['dropout_forward_gbs']:.0f} GB/s, "
          f"backward {d['dropout_backward_gbs']:.0f} GB/s, copy {d['copy_gbs']:.0f} GB/s "
          f"(x read + y written)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def main_cpu(args):
    torch.set_num_threads(args.threads)
    result = {
        "device": f"CPU ({cpu_name()}, {args.threads} threads)",
        "torch": torch.__version__,
        "batch_size": args.batch_size,
        "training": time_training(args, torch.device("cpu")),
    }
    t = result["training"]
    print(f"device: {result['device']} (torch {result['torch']})")
    print(f"seed model, batch {args.batch_size}, fp32: median step {t['step_ms_median']:.1f} ms over {args.steps} steps "
          f"(min {t['step_ms_min']:.1f}, max {t['step_ms_max']:.1f}) = {t['images_per_second']:.0f} images/s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
