"""The PyTorch peer of ``train_step.py``: one FixMatch step of WRN-28-2, same shapes and recipe.

Run by ``python benchmarks/train_step.py --peer torch`` with the interpreter of a separate
environment that has PyTorch (never a dependency of assljax):

    python -m venv .venv-torch && .venv-torch/bin/pip install torch numpy

    .venv-torch/bin/python benchmarks/_torch_peer.py --batch 8 --mu 7 --steps 2

Prints one JSON object: the median seconds of a step after one warm-up step.

The step is the FixMatch step of the reference PyTorch port (kekmodel/FixMatch-pytorch):
WRN-28-2 (widths 32/64/128, pre-activation blocks, LeakyReLU 0.1, BatchNorm momentum
0.001 and eps 1e-3, 1x1 projection shortcuts), one forward of the ``B`` labeled and
``mu B`` weak and ``mu B`` strong unlabeled images concatenated, cross-entropy on the
labeled images plus the confidence-masked (0.95) cross-entropy of the strong views
against the weak views' pseudo-labels, backward, Nesterov SGD (momentum 0.9, coupled
weight decay 5e-4 on conv and linear weights) on the FixMatch cosine, and the EMA (0.999)
of the parameters. The images are random and not augmented: the peer has no
augmentation, which ``train_step.py``'s ``baseline_grad_step`` leaves out as well.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time

import torch
from torch import nn
from torch.nn import functional as F


class Block(nn.Module):
  def __init__(self, c_in: int, c_out: int, stride: int, activate_before_residual: bool):
    super().__init__()
    self.bn1 = nn.BatchNorm2d(c_in, momentum=0.001, eps=1e-3)
    self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
    self.bn2 = nn.BatchNorm2d(c_out, momentum=0.001, eps=1e-3)
    self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
    self.shortcut = (nn.Conv2d(c_in, c_out, 1, stride, 0, bias=False)
                     if (c_in != c_out or stride != 1) else None)
    self.activate_before_residual = activate_before_residual

  def forward(self, x):
    h = F.leaky_relu(self.bn1(x), 0.1)
    if self.activate_before_residual:
      x = h
    h = self.conv2(F.leaky_relu(self.bn2(self.conv1(h)), 0.1))
    return h + (self.shortcut(x) if self.shortcut is not None else x)


class WideResNet(nn.Module):
  def __init__(self, num_classes: int = 10, depth: int = 28, widen_factor: int = 2):
    super().__init__()
    n = (depth - 4) // 6
    widths = (16 * widen_factor, 32 * widen_factor, 64 * widen_factor)
    self.stem = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
    blocks, c_in = [], 16
    for stage, (c_out, stride) in enumerate(zip(widths, (1, 2, 2))):
      for i in range(n):
        blocks.append(Block(c_in, c_out, stride if i == 0 else 1, stage == 0 and i == 0))
        c_in = c_out
    self.blocks = nn.Sequential(*blocks)
    self.bn = nn.BatchNorm2d(c_in, momentum=0.001, eps=1e-3)
    self.head = nn.Linear(c_in, num_classes)
    for module in self.modules():
      if isinstance(module, nn.Conv2d):
        nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="leaky_relu")

  def forward(self, x):
    h = F.leaky_relu(self.bn(self.blocks(self.stem(x))), 0.1)
    return self.head(h.mean(dim=(2, 3)))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--mu", type=int, default=7)
  parser.add_argument("--steps", type=int, default=2)
  parser.add_argument("--threads", type=int, default=os.cpu_count())
  args = parser.parse_args()
  torch.set_num_threads(args.threads)
  torch.manual_seed(0)

  model = WideResNet()
  ema = [p.detach().clone() for p in model.parameters()]
  decay = [p for name, p in model.named_parameters() if "bn" not in name and "bias" not in name]
  rest = [p for name, p in model.named_parameters() if "bn" in name or "bias" in name]
  optimizer = torch.optim.SGD([{"params": decay, "weight_decay": 5e-4},
                               {"params": rest, "weight_decay": 0.0}],
                              lr=0.03, momentum=0.9, nesterov=True)
  total_steps = 2 ** 20
  schedule = torch.optim.lr_scheduler.LambdaLR(
      optimizer, lambda step: math.cos(7 * math.pi * step / (16 * total_steps)))
  b, u = args.batch, args.mu * args.batch
  generator = torch.Generator().manual_seed(0)
  x_l = torch.rand(b, 3, 32, 32, generator=generator)
  y_l = torch.randint(0, 10, (b,), generator=generator)
  x_weak = torch.rand(u, 3, 32, 32, generator=generator)
  x_strong = torch.rand(u, 3, 32, 32, generator=generator)
  model.train()

  def step():
    logits = model(torch.cat([x_l, x_weak, x_strong]))
    logits_l, logits_w, logits_s = logits[:b], logits[b:b + u], logits[b + u:]
    probs = torch.softmax(logits_w.detach(), dim=-1)
    confidence, pseudo = probs.max(dim=-1)
    mask = (confidence >= 0.95).float()
    loss = (F.cross_entropy(logits_l, y_l)
            + (F.cross_entropy(logits_s, pseudo, reduction="none") * mask).mean())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    schedule.step()
    with torch.no_grad():
      for shadow, p in zip(ema, model.parameters()):
        shadow.mul_(0.999).add_(p.detach(), alpha=0.001)
    return float(loss)

  step()  # warm-up
  times = []
  for _ in range(args.steps):
    start = time.perf_counter()
    step()
    times.append(time.perf_counter() - start)
  print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(),
                    "python": platform.python_version(), "images_per_step": b + 2 * u,
                    "median_s": statistics.median(times), "all_s": times}))


if __name__ == "__main__":
  main()
