"""PyTorch reference for BalanceLab's ResNet18 throughput (backend/examples/gpu_check.rs).

The same model and step as the engine's: two ResNet18 encoders from scratch (1-channel stem
for a 1x257x188 spectrogram; 3-channel for three 3x224x224 frames, encoded per frame and
averaged over time), a linear head per modality, late fusion by one linear layer over the
concatenated features, the multi-loss CE(fused) + sum_m CE(head_m), MLB coefficients
k_m = 1 + tanh(alpha (r_m - 1)) from the heads' true-class confidences scaling each
modality's gradients (encoder, head and its fusion columns), Adam (lr 1e-3, wd 1e-4),
batch 32, 6 classes, and each step's losses read back to the host as the engine does.

Usage: python3 resnet18_throughput.py [--device cuda] [--batch 32] [--steps 200]
       [--max-seconds 150] [--tf32 default|off]
"""

import argparse
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

CLASSES = 6
FEATURES = 512


def resnet18(channels):
    net = torchvision.models.resnet18(weights=None)
    if channels != 3:
        net.conv1 = nn.Conv2d(channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    net.fc = nn.Identity()
    return net


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoders = nn.ModuleList([resnet18(1), resnet18(3)])
        self.heads = nn.ModuleList([nn.Linear(FEATURES, CLASSES) for _ in range(2)])
        self.fusion = nn.Linear(2 * FEATURES, CLASSES)

    def forward(self, audio, frames):
        b, t = frames.shape[:2]
        z_audio = self.encoders[0](audio)
        z_frames = self.encoders[1](frames.flatten(0, 1)).view(b, t, -1).mean(1)
        features = [z_audio, z_frames]
        heads = [head(z) for head, z in zip(self.heads, features)]
        return self.fusion(torch.cat(features, 1)), heads


def mlb_coefficients(confidences, alpha=0.8):
    total = sum(confidences)
    m = len(confidences)
    return [1 + torch.tanh(torch.tensor(alpha * (((total - s) / (m - 1)) / s - 1))).item()
            for s in confidences]


def step(model, optimizer, audio, frames, labels):
    fused, heads = model(audio, frames)
    head_losses = [F.cross_entropy(h, labels) for h in heads]
    loss = F.cross_entropy(fused, labels) + sum(head_losses)
    with torch.no_grad():
        confidences = [F.softmax(h, 1).gather(1, labels[:, None]).mean().item() for h in heads]
    k = mlb_coefficients(confidences)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    with torch.no_grad():
        for m, k_m in enumerate(k):
            for p in list(model.encoders[m].parameters()) + list(model.heads[m].parameters()):
                p.grad.mul_(k_m)
            model.fusion.weight.grad[:, m * FEATURES:(m + 1) * FEATURES].mul_(k_m)
    optimizer.step()
    return loss.item(), [l.item() for l in head_losses]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--max-seconds", type=float, default=150.0)
    parser.add_argument("--tf32", choices=["default", "off"], default="default")
    args = parser.parse_args()
    if args.tf32 == "off":
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = Model().to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    audio = torch.randn(args.batch, 1, 257, 188, device=device)
    frames = torch.randn(args.batch, 3, 3, 224, 224, device=device)
    labels = torch.arange(args.batch, device=device) % CLASSES

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(5):
        step(model, optimizer, audio, frames, labels)
    sync()
    started = time.perf_counter()
    done = 0
    while done < args.steps and time.perf_counter() - started < args.max_seconds:
        step(model, optimizer, audio, frames, labels)
        done += 1
    sync()
    seconds = time.perf_counter() - started
    print(f"PyTorch {torch.__version__} on {args.device} (TF32 {args.tf32}), batch {args.batch}: "
          f"{done * args.batch / seconds:.1f} samples/s, {seconds * 1e3 / done:.1f} ms/step "
          f"over {done} steps")


if __name__ == "__main__":
    main()
