"""The PyTorch side of `cargo bench -p balancelab --bench cpu_training`: the same two-branch
models, objective and optimiser as BalanceLab's, trained on random batches on the CPU.

Models (BalanceLab's encoders, backend/src/engine/encoder.rs and resnet.rs):
  cnn_pool    3 x (conv 3x3 pad 1, no bias; batch norm; ReLU; 2x2 max pool), global average
              pool, linear to 64 + ReLU; 16, 32, 64 channels
  cnn_stride  the same with stride-2 convolutions instead of the pools
  resnet18    torchvision's ResNet18 layout without the classifier, linear to 64 + ReLU is
              not used (BalanceLab's ResNet18 feature is the 512-wide pool)
Heads: a linear unimodal head per branch; late fusion = one linear over the concatenated
features. Objective: MLB (BMVC 2024): fused + unimodal cross-entropies; after backward, each
branch's gradients (encoder, head, its slice of the fusion) are scaled by
k_m = 1 + tanh(alpha (r_m - 1)), r_m from the heads' mean true-class confidences.
Adam, lr 1e-3. Prints one JSON line: {"model", "batch", "steps", "seconds", "samples_per_second"}.

    python scripts/reference/cpu_training.py --model cnn_pool --batch 32 --steps 20 --threads 2
"""
import argparse
import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

CLASSES = 6
FEATURES = 64
SHAPES = [(1, 128, 128), (3, 112, 112)]


def kaiming(conv):
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    return conv


class Cnn(nn.Module):
    def __init__(self, channels_in, stride):
        super().__init__()
        layers, c = [], channels_in
        for i in range(3):
            out = 16 << i
            layers += [kaiming(nn.Conv2d(c, out, 3, stride=2 if stride else 1, padding=1, bias=False)),
                       nn.BatchNorm2d(out), nn.ReLU()]
            if not stride:
                layers.append(nn.MaxPool2d(2))
            c = out
        self.body = nn.Sequential(*layers)
        self.out = nn.Linear(c, FEATURES)
        self.width = FEATURES

    def forward(self, x):
        return F.relu(self.out(self.body(x).mean((2, 3))))


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = kaiming(nn.Conv2d(cin, cout, 3, stride, 1, bias=False))
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = kaiming(nn.Conv2d(cout, cout, 3, 1, 1, bias=False))
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(kaiming(nn.Conv2d(cin, cout, 1, stride, bias=False)), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + (x if self.down is None else self.down(x)))


class ResNet18(nn.Module):
    def __init__(self, channels_in):
        super().__init__()
        self.stem = nn.Sequential(kaiming(nn.Conv2d(channels_in, 64, 7, 2, 3, bias=False)), nn.BatchNorm2d(64),
                                  nn.ReLU(), nn.MaxPool2d(3, 2, 1))
        blocks, c = [], 64
        for i, out in enumerate([64, 128, 256, 512]):
            for j in range(2):
                blocks.append(Block(c, out, 2 if (i > 0 and j == 0) else 1))
                c = out
        self.blocks = nn.Sequential(*blocks)
        self.width = 512

    def forward(self, x):
        return self.blocks(self.stem(x)).mean((2, 3))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", choices=["cnn_pool", "cnn_stride", "resnet18"], required=True)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--alpha", type=float, default=0.8)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    def encoder(channels):
        if args.model == "resnet18":
            return ResNet18(channels)
        return Cnn(channels, stride=args.model == "cnn_stride")

    encoders = nn.ModuleList(encoder(shape[0]) for shape in SHAPES)
    heads = nn.ModuleList(nn.Linear(e.width, CLASSES) for e in encoders)
    fusion = nn.Linear(sum(e.width for e in encoders), CLASSES)
    params = list(encoders.parameters()) + list(heads.parameters()) + list(fusion.parameters())
    optimizer = torch.optim.Adam(params, lr=1e-3)
    inputs = [torch.randn(args.batch, *shape) for shape in SHAPES]
    labels = torch.arange(args.batch) % CLASSES
    widths = [e.width for e in encoders]

    def step():
        features = [e(x) for e, x in zip(encoders, inputs)]
        unimodal = [h(z) for h, z in zip(heads, features)]
        fused = fusion(torch.cat(features, 1))
        loss = F.cross_entropy(fused, labels) + sum(F.cross_entropy(u, labels) for u in unimodal)
        with torch.no_grad():
            s = [F.softmax(u, 1).gather(1, labels[:, None]).mean().item() for u in unimodal]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():
            for m in range(len(encoders)):
                others = (sum(s) - s[m]) / (len(s) - 1)
                k = 1 + torch.tanh(torch.tensor(args.alpha * (others / max(s[m], 1e-300) - 1))).item()
                for p in list(encoders[m].parameters()) + list(heads[m].parameters()):
                    p.grad.mul_(k)
                start = sum(widths[:m])
                fusion.weight.grad[:, start:start + widths[m]].mul_(k)
        optimizer.step()

    for _ in range(args.warmup):
        step()
    started = time.perf_counter()
    for _ in range(args.steps):
        step()
    seconds = time.perf_counter() - started
    print(json.dumps({"model": args.model, "batch": args.batch, "steps": args.steps, "seconds": seconds,
                      "samples_per_second": args.batch * args.steps / seconds}))


if __name__ == "__main__":
    main()
