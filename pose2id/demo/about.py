"""Text of the About tab."""

ABOUT = """
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

- Weights (needs internet, about 7 GB): `python -m pose2id download` fetches `yuanc3/Pose2ID`
  (IPG checkpoints and `transformer_20.pth`), `stable-diffusion-v1-5/stable-diffusion-v1-5` and
  `stabilityai/sd-vae-ft-mse` into the Hugging Face cache. Or pass `--ckpt-dir DIR` with the files.
- Market-1501: download it from its authors and start the app with `--data /path/to/Market-1501-v15.09.15`
  (or set `POSE2ID_DATA`). The paper's generated images go in `query_gen/` and `bounding_box_test_gen/`.
- Generation needs a CUDA GPU. On a Hugging Face Space with ZeroGPU the weights are fetched on first use.
"""
