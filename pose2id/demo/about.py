"""Text of the About tab. What ``python -m pose2id download`` fetches is read from
:mod:`pose2id.ipg.weights`, which the command uses, so the two cannot disagree."""

from pose2id.ipg.weights import DOWNLOAD_COMMAND, POSE2ID_FILES, POSE2ID_REPO, VAE_FILES, VAE_REPO

# Sizes from the checkpoints' tensor shapes (shared/data/checkpoint_manifests) at 4 bytes per value
# (float32); the VAE's from its config (83.7 M values).
_SIZES = {"denoising_unet.pth": "3.44 GB", "reference_unet.pth": "3.44 GB", "pose_guider.pth": "2 MB",
          "IFR.pth": "236 MB", "transformer_20.pth": "415 MB", "config.json": "1 KB",
          "diffusion_pytorch_model.safetensors": "335 MB"}
_FILES = "\n".join(
    [f"  - `{POSE2ID_REPO}/{name}` ({_SIZES[name]})" for name in POSE2ID_FILES.values()]
    + [f"  - `{VAE_REPO}/{name}` ({_SIZES[name]})" for name in VAE_FILES])

ABOUT = f"""
## What Pose2ID does

**From Poses to Identity** (Yuan et al., CVPR 2025) improves person re-identification **without training
the ReID model**. It makes each image's feature closer to its identity's centre (*feature centralization*)
in two ways, and measures how central features are with **ID²** (identity density: the mean squared distance
of normalized features to their identity centre; lower is more centralized).

1. **IPG, identity-guided pedestrian generation.** A diffusion model (Stable Diffusion 1.5 UNets with
   reference attention, a PoseGuider for OpenPose skeletons, and the ReID feature as its condition) draws the
   same person in 8 standard poses. The image's feature is fused with its generated images' features:
   `normalize(f + eta · mean(g))`. Pose and viewpoint noise averages out; the identity stays.
2. **NFC, neighbour feature centralization.** Each feature is averaged with its mutual nearest neighbours
   (`k1`, `k2`), separately within the query set and within the gallery set — no labels, no training.
3. **Evaluation** follows Market-1501: mAP and CMC (Rank-1/5/10), with optional k-reciprocal re-ranking.

On Market-1501 with the paper's TransReID and generated images, mAP rises from 79.88 (Base) to 90.39 (+NFC+IPG).

## This demo offline

Without weights or a GPU, the Retrieve and Feature-space tabs use **SynthPed**, a procedurally rendered,
clearly **synthetic** benchmark, with training-free colour/texture features; its "+IPG" images come from the
**SynthPed oracle** (it re-renders a synthetic identity in the 8 poses; it is not a model). The effects of
NFC and IPG on mAP and ID² are real computations you can rerun with `python -m pose2id eval --dataset synthped`.

## Getting the real weights and data

- Weights (needs internet, about 7.9 GB): `{DOWNLOAD_COMMAND}` fetches exactly these 7 files:
{_FILES}

  into the Hugging Face cache (`~/.cache/huggingface/hub`, or where `HF_HUB_CACHE` / `HF_HOME` point); files
  already there are kept. The Stable Diffusion 1.5 UNet *config* ships with this package, so the 4 GB SD-1.5
  weights are never downloaded. Or pass `--ckpt-dir DIR`, a folder with the five Pose2ID files (the VAE then
  still comes from the cache). Sizes are computed from the checkpoints' tensor shapes, 4 bytes per value.
- Market-1501: download it from its authors and start the app with `--data /path/to/Market-1501-v15.09.15`
  (or set `POSE2ID_DATA`). The paper's generated images go in `query_gen/` and `bounding_box_test_gen/`.
- Generation needs a CUDA GPU: 8 poses (20 steps) took 1.1 s on an H200 in float16, with 5.7 GiB of GPU memory.
  GPUs under 12 GiB use a low-memory mode: 1.8 GiB, 6.2 s on the same GPU (`benchmarks/README.md`).
  On a Hugging Face Space with ZeroGPU the weights are fetched on first use.
"""
