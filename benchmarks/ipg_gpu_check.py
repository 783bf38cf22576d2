"""Does IPGPipeline compute on a CUDA GPU what the official code computes?

1. The public equivalence fixture (small random weights, see ``../shared/fixtures/README.md``) on
   the GPU in float32 (TF32 off), float16 and bfloat16, against the official pipeline's images.
   float32 must stay within the CPU tests' tolerance (1e-4); the half-precision rows are printed
   for the record (rounding, not a bug, moves them).
2. The full-size models (random weights) once through the float16 fast path: every image finite.

    python -m benchmarks.ipg_gpu_check                         # fixtures at ../shared/fixtures
    python -m benchmarks.ipg_gpu_check --fixtures .gpu/fixtures
    python -m benchmarks.ipg_gpu_check --device cpu --no-full-size   # the script itself (float32 only), without a GPU

Exits 1 when a float32 row misses the tolerance or an output is not finite.
"""

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE = 1e-4


def _fixture_module():
    """tests/test_ipg_fixture.py, imported by path (``tests`` is no package)."""
    spec = importlib.util.spec_from_file_location("ipg_fixture_tests", ROOT / "tests" / "test_ipg_fixture.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fixture_rows(fixtures_dir, device, dtypes):
    """(dtype name, max abs, mean abs) of the fixture images against the official ones, for each
    of ``dtypes`` in turn (yielded as each finishes)."""
    tests = _fixture_module()
    fixture = tests.load_fixture(fixtures_dir)
    vectors = fixture["inputs"]["reid_vectors"]
    expected = fixture["expected"]["images"].permute(0, 2, 3, 1).numpy()
    for dtype in dtypes:
        fixture["pipeline"].to(device, dtype)
        out = tests._run(fixture, {}, reid_features=vectors[2], negative_reid_features=vectors[0])
        diff = np.abs(out.images - expected)
        yield str(dtype).split(".")[-1], float(diff.max()), float(diff.mean())


def full_size_finite(device):
    from benchmarks.ipg_speed import random_pipeline, random_reference
    from pose2id.poses import load_standard_poses

    pipeline = random_pipeline(False, device, torch.float16)
    images = pipeline(random_reference(), load_standard_poses(), num_inference_steps=4, output_type="np").images
    return images.shape, bool(np.isfinite(images).all())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fixtures", type=Path, default=ROOT.parent / "shared" / "fixtures",
                        help="folder holding ipg_pipeline/ and transreid/ (default ../shared/fixtures)")
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu (checks this script, not the GPU)")
    parser.add_argument("--no-full-size", action="store_true", help="skip the full-size float16 run")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("no CUDA GPU: this check is for a GPU machine (the CPU path is covered by the tests)")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False

    ok = True
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device: {name}, torch {torch.__version__}")
    print(f"{'fixture dtype':14s} {'max abs':>10s} {'mean abs':>10s}")
    # half precision on a CPU is emulated and takes many minutes: there it checks nothing of the GPU's
    dtypes = (torch.float32,) if device.type == "cpu" else (torch.float32, torch.float16, torch.bfloat16)
    for name, worst, mean in fixture_rows(args.fixtures, device, dtypes):
        verdict = ""
        if name == "float32":
            passed = worst <= TOLERANCE
            ok &= passed
            verdict = f"  {'PASS' if passed else 'FAIL'} (tolerance {TOLERANCE:g})"
        ok &= bool(np.isfinite(worst))
        print(f"{name:14s} {worst:10.2e} {mean:10.2e}{verdict}", flush=True)
    if not args.no_full_size:
        shape, finite = full_size_finite(device)
        ok &= finite
        print(f"full size, float16, 8 poses: images {shape}, {'all finite' if finite else 'NOT FINITE'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
