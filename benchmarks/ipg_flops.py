"""How much arithmetic IPG generation is, counted on the meta device (no GPU, no weights, seconds).

Counts the floating-point operations of each stage at official size (512x256 output, 8 poses,
classifier-free guidance) with ``torch.utils.flop_counter``, and the time they would take at a
given matrix rate: the floor under any GPU timing of ``ipg_speed.py``. Only the UNets and the VAE
are counted; TransReID, IFR and PoseGuider are small beside them.

    python -m benchmarks.ipg_flops                     # 8 poses, 20 steps, 790 TFLOP/s
    python -m benchmarks.ipg_flops --rate 400          # another sustained rate (TFLOP/s)
"""

import argparse

import torch
from torch.utils.flop_counter import FlopCounterMode

from pose2id.ipg import build
from pose2id.ipg.reference_attention import ReferenceBank, ReferenceReader, set_reference_attention

# Measured on the H200s lent here: an 8192^3 bf16 matrix product through PyTorch, random data.
H200_BF16_TFLOPS = 790


def count(fn):
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--poses", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rate", type=float, default=H200_BF16_TFLOPS, help="TFLOP/s for the time column")
    args = parser.parse_args(argv)

    meta = torch.device("meta")
    reference_unet, unet, vae = (build(name, meta) for name in ("reference_unet", "denoising_unet", "vae"))
    bank = ReferenceBank()
    set_reference_attention(reference_unet, unet, bank)
    n = args.poses
    tokens = torch.empty(2 * n, 20, 768, device=meta)
    latents = torch.empty(2 * n, 4, 64, 32, device=meta)

    def reference_pass():
        reference_unet(torch.empty(1, 4, 64, 32, device=meta), torch.zeros((), device=meta), encoder_hidden_states=tokens[:1])

    def step():
        bank.num_uncond = n
        unet(latents, torch.tensor(999, device=meta), encoder_hidden_states=tokens)

    stages = {"VAE encode (reference)": count(lambda: vae.encode(torch.empty(1, 3, 512, 256, device=meta)))}
    stages["reference UNet pass (once)"] = count(reference_pass)
    stages[f"denoising step ({n} poses x 2 for guidance)"] = count(step)
    per_step = stages[f"denoising step ({n} poses x 2 for guidance)"]
    stages[f"VAE decode ({n} images)"] = count(lambda: vae.decode(torch.empty(n, 4, 64, 32, device=meta)))
    uncached = ReferenceReader._is_plain_self_attention
    ReferenceReader._is_plain_self_attention = staticmethod(lambda *a: False)  # the per-step re-projection
    try:
        per_step_uncached = count(step)
    finally:
        ReferenceReader._is_plain_self_attention = uncached
    bank.clear()
    per_step_plain = count(step)

    total = sum(stages.values()) + (args.steps - 1) * per_step
    print(f"{'stage':44s} {'TFLOP':>8s}")
    for name, flops in stages.items():
        print(f"{name:44s} {flops / 1e12:8.3f}")
    print(f"{'  same step, no reference attention':44s} {per_step_plain / 1e12:8.3f}")
    print(f"{'  same step, reference K/V every step':44s} {per_step_uncached / 1e12:8.3f}")
    print(f"total, {n} poses, {args.steps} steps: {total / 1e12:.1f} TFLOP = "
          f"{total / (args.rate * 1e12) * 1e3:.0f} ms at {args.rate:g} TFLOP/s")


if __name__ == "__main__":
    main()
