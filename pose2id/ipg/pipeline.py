"""IPGPipeline: identity-guided pedestrian generation (Pose2ID, CVPR 2025) as a diffusers pipeline.

Reference photo(s) + a list of poses -> the same person in each pose. The whole inference, top to
bottom, is in :meth:`IPGPipeline.__call__`:

1. identity: TransReID vector of each reference (and of a mid-grey image for the unconditional
   branch, computed once and cached) -> IFR -> 20 condition tokens;
2. reference: VAE latent of each reference -> reference UNet once, at t = 0, on the conditional
   tokens; every self-attention layer records its input (``ReferenceWriter``);
3. poses: rendered skeletons -> PoseGuider -> features added after the denoising UNet's ``conv_in``;
4. denoising: DDIM with classifier-free guidance, every (reference, pose) pair in one batch
   [uncond; cond] (or ``pose_batch_size`` rows per UNet call); the conditional rows'
   self-attention also attends to the recorded tokens of their own reference (``ReferenceReader``);
5. decode with the VAE.

The pipeline is a ``diffusers.DiffusionPipeline``: ``save_pretrained`` / ``from_pretrained``,
``enable_model_cpu_offload`` / ``enable_sequential_cpu_offload`` / ``enable_group_offload``,
``set_progress_bar_config``,
``callback_on_step_end`` and ``interrupt`` work as in every diffusers pipeline.
"""

from dataclasses import dataclass

import PIL.Image
import torch
from diffusers import DiffusionPipeline
from diffusers.image_processor import VaeImageProcessor
from diffusers.utils import BaseOutput
from PIL import Image

from pose2id.ipg.models import ReIDModel
from pose2id.ipg.reference_attention import ReferenceBank, set_reference_attention

# A fixed linear map from SD latents to RGB (in [-1, 1]); good enough to watch a picture form.
LATENT_RGB_FACTORS = torch.tensor(
    [
        [0.298, 0.207, 0.208],
        [0.187, 0.286, 0.173],
        [-0.158, 0.189, 0.264],
        [-0.184, -0.271, -0.473],
    ]
)

OUTPUT_TYPES = ("pil", "np", "pt", "latent")


@dataclass
class IPGPipelineOutput(BaseOutput):
    """Output of :class:`IPGPipeline`.

    images : for R references and P poses, R * P images in reference-major order (image
        ``r * P + p`` is reference r in pose p): a list of PIL images ("pil"), a (R*P, H, W, 3)
        float32 array in [0, 1] ("np"), a (R*P, 3, H, W) tensor in [0, 1] ("pt"), or the final
        (R*P, 4, H / 8, W / 8) latents ("latent").
    """

    images: object


def _as_list(value):
    return list(value) if isinstance(value, (list, tuple)) else [value]


class IPGPipeline(DiffusionPipeline):
    """Generate a pedestrian in new poses with the identity of a reference photo.

    Parameters
    ----------
    vae : diffusers.AutoencoderKL (sd-vae-ft-mse)
    reference_unet : pose2id.ipg.models.ReferenceUNet2DConditionModel (a UNet without output head)
    denoising_unet : diffusers.UNet2DConditionModel. The self-attention processors of both UNets
        are replaced here (reference attention).
    pose_guider : pose2id.ipg.PoseGuider
    ifr : pose2id.ipg.IFR
    scheduler : diffusers.DDIMScheduler (zero-SNR, trailing, v-prediction)
    reid : pose2id.ipg.models.ReIDModel (a plain pose2id.reid.TransReID is wrapped), or None when
        identity vectors are always passed in.
    width, height : output size (256 x 512 for the official weights); saved in model_index.json.
    """

    model_cpu_offload_seq = "reid->ifr->reference_unet->pose_guider->denoising_unet->vae"
    _optional_components = ["reid"]
    _callback_tensor_inputs = ["latents", "noise_pred"]
    # Not a tensor, but a callback may ask for it: one small PIL preview per image.
    _callback_extra_inputs = ["preview"]

    def __init__(self, vae, reference_unet, denoising_unet, pose_guider, ifr, scheduler, reid=None, width=256,
                 height=512):
        super().__init__()
        if reid is not None and not isinstance(reid, ReIDModel):
            reid = ReIDModel.wrap(reid)
        self.register_modules(vae=vae, reference_unet=reference_unet, denoising_unet=denoising_unet,
                              pose_guider=pose_guider, ifr=ifr, reid=reid, scheduler=scheduler)
        self.register_to_config(width=width, height=height)
        self.width, self.height = width, height
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1)
        self.image_processor = VaeImageProcessor(vae_scale_factor=self.vae_scale_factor, do_convert_rgb=True)
        self.pose_processor = VaeImageProcessor(vae_scale_factor=self.vae_scale_factor, do_convert_rgb=True,
                                                do_normalize=False)
        self.bank = ReferenceBank()
        set_reference_attention(reference_unet, denoising_unet, self.bank)
        self._pose_features = None
        denoising_unet.conv_in.register_forward_hook(self._add_pose_features)
        self._negative_tokens = None
        self._low_memory = False
        self._offload = None  # "model", "sequential" or "group" once an offload mode is on
        self._interrupt = False
        self.pose_batch_size = None

    @classmethod
    def from_official(
        cls,
        ckpt_dir=None,
        base_model="stable-diffusion-v1-5/stable-diffusion-v1-5",
        vae="stabilityai/sd-vae-ft-mse",
        device=None,
        dtype=None,
        allow_cpu=False,
        local_files_only=None,
    ):
        """Load the official Pose2ID weights (the authors' five ``.pth`` files and the VAE).

        Parameters
        ----------
        ckpt_dir : folder holding denoising_unet.pth, reference_unet.pth, pose_guider.pth, IFR.pth,
            transformer_20.pth (.safetensors accepted); None = the Hub's ``yuanc3/Pose2ID`` (its
            cache, or downloaded).
        base_model : source of the UNet config (a folder with ``unet/config.json``, or a Hub id);
            the SD-1.5 default is shipped with the package, so none of its (4 GB) weights are downloaded.
        vae : folder or Hub id of ``stabilityai/sd-vae-ft-mse``. A source that looks like a path
            (absolute, starting with "." or "~", ...) is a folder, anything else a Hub id.
        device : None = "cuda" when available. Generation on the CPU takes many minutes per
            image, so it needs ``allow_cpu=True``.
        dtype : None = float16 on CUDA, float32 on the CPU.

        Raises MissingWeightsError (listing every missing file) when weights are absent offline;
        its subclass ``weights.NoSuchFolderError`` when ``ckpt_dir`` (or a path-like ``vae`` /
        ``base_model``) is not an existing folder.

        ``python -m pose2id convert`` writes the same pipeline once as a ``save_pretrained``
        folder, which :meth:`from_pretrained` then loads.
        """
        import warnings

        from pose2id.ipg import weights

        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        device = torch.device(device)
        if device.type == "cpu":
            if not allow_cpu:
                raise RuntimeError(
                    "IPG generation needs a CUDA GPU (two Stable-Diffusion-size UNets); none was found. "
                    "Pass allow_cpu=True (CLI: --cpu) to run on the CPU anyway: expect several minutes per image."
                )
            warnings.warn("running IPG on the CPU in float32: expect several minutes per image", stacklevel=2)
        if dtype is None:
            dtype = torch.float16 if device.type == "cuda" else torch.float32
        return cls(**weights.load_official_components(ckpt_dir, base_model, vae, device, dtype, local_files_only))

    # ----------------------------------------------------------------- placement and memory
    @property
    def dtype(self):
        return self.denoising_unet.dtype

    @property
    def execution_device(self):
        """The device the models compute on (with CPU offload: the accelerator they visit)."""
        return self._execution_device

    @property
    def latent_scale(self):
        """The VAE's ``scaling_factor`` (0.18215 for SD-1.5)."""
        return self.vae.config.scaling_factor

    @property
    def models(self):
        """{name: module} of the six networks (``reid`` may be None)."""
        return {name: getattr(self, name) for name in
                ("vae", "reference_unet", "denoising_unet", "pose_guider", "ifr", "reid")}

    @property
    def progress(self):
        """Whether calls show a progress bar (``set_progress_bar_config(disable=...)``)."""
        return not getattr(self, "_progress_bar_config", {}).get("disable", False)

    @progress.setter
    def progress(self, value):
        self.set_progress_bar_config(**{**getattr(self, "_progress_bar_config", {}), "disable": not value})

    def to(self, *args, **kwargs):
        """``DiffusionPipeline.to`` (device and/or dtype of every model); returns self."""
        from diffusers.utils import logging

        # Casting is what this method is for: no "set torch_dtype in from_pretrained" warning per model.
        verbosity = logging.get_verbosity()
        logging.set_verbosity_error()
        try:
            super().to(*args, **kwargs)
        finally:
            logging.set_verbosity(verbosity)
        self._negative_tokens = None
        return self

    @property
    def low_memory(self):
        """True after :meth:`enable_low_memory`, :meth:`enable_model_cpu_offload`,
        :meth:`enable_sequential_cpu_offload` or :meth:`enable_group_offload`."""
        return self._low_memory

    def enable_model_cpu_offload(self, gpu_id=None, device=None):
        """diffusers' model offload: every model waits on the CPU and visits the accelerator when it runs."""
        super().enable_model_cpu_offload(gpu_id=gpu_id, device=device)
        self._low_memory = True
        self._offload = "model"
        self._negative_tokens = None

    def enable_sequential_cpu_offload(self, gpu_id=None, device=None):
        """diffusers' sequential offload: weights visit the accelerator layer by layer (least memory, slowest)."""
        super().enable_sequential_cpu_offload(gpu_id=gpu_id, device=device)
        self._low_memory = True
        self._offload = "sequential"
        self._negative_tokens = None

    def enable_group_offload(self, onload_device, offload_device="cpu", offload_type="block_level",
                             num_blocks_per_group=1, use_stream=False, non_blocking=False, record_stream=False,
                             low_cpu_mem_usage=False, exclude=()):
        """diffusers' group offloading: every network's weights wait on ``offload_device`` and move to
        ``onload_device`` one group of layers at a time, just before the group runs.

        Between :meth:`enable_model_cpu_offload` (a whole network at a time) and
        :meth:`enable_sequential_cpu_offload` (one layer at a time) in memory and speed; with
        ``use_stream=True`` the next group is copied while the current one computes, which hides
        most of the transfer time. The images are the same as without offloading.

        Parameters
        ----------
        onload_device : str or torch.device
            Where the layers compute, e.g. ``"cuda"`` (``"cpu"`` is accepted: nothing moves).
        offload_device : str or torch.device
            Where the weights wait (default ``"cpu"``).
        offload_type : {"block_level", "leaf_level"}
            ``"block_level"``: groups of ``num_blocks_per_group`` top-level blocks (each ``ModuleList``
            or ``Sequential`` entry, e.g. a UNet down block); ``"leaf_level"``: every leaf layer on its
            own (least memory).
        num_blocks_per_group : int >= 1
            Blocks per group with ``"block_level"`` (default 1); ignored with ``"leaf_level"``.
        use_stream : bool
            Overlap transfers and compute on a CUDA stream (needs an accelerator as ``onload_device``).
        non_blocking, record_stream, low_cpu_mem_usage : bool
            Passed to ``diffusers.hooks.apply_group_offloading`` (``record_stream`` needs ``use_stream``;
            ``low_cpu_mem_usage`` skips pinning CPU copies of the weights).
        exclude : iterable of str
            Networks (names from :attr:`models`) to keep whole on ``onload_device`` instead.

        Returns
        -------
        IPGPipeline
            self.
        """
        from diffusers.hooks import apply_group_offloading

        try:
            onload = torch.device(onload_device)
        except (RuntimeError, TypeError):
            raise ValueError(f"onload_device: {onload_device!r} is not a torch device (e.g. 'cuda', 'cuda:0', "
                             "'cpu')") from None
        try:
            offload = torch.device(offload_device)
        except (RuntimeError, TypeError):
            raise ValueError(f"offload_device: {offload_device!r} is not a torch device (e.g. 'cpu')") from None
        if offload_type not in ("block_level", "leaf_level"):
            raise ValueError(f"offload_type: {offload_type!r} is not 'block_level' or 'leaf_level'")
        if offload_type == "block_level" and (isinstance(num_blocks_per_group, bool)
                                              or not isinstance(num_blocks_per_group, int)
                                              or num_blocks_per_group < 1):
            raise ValueError(f"num_blocks_per_group: {num_blocks_per_group!r} must be an integer >= 1")
        if use_stream and onload.type == "cpu":
            raise ValueError(f"use_stream=True needs an accelerator as onload_device (got {onload}); pass "
                             "use_stream=False")
        if record_stream and not use_stream:
            raise ValueError("record_stream=True needs use_stream=True")
        exclude = [exclude] if isinstance(exclude, str) else list(exclude)
        unknown = sorted(set(exclude) - set(self.models))
        if unknown:
            raise ValueError(f"exclude: {', '.join(unknown)} not among {', '.join(self.models)}")
        if self._offload is not None:
            raise ValueError(f"enable_group_offload: this pipeline already uses {self._offload} offload; "
                             "diffusers cannot combine two offload modes (build a fresh pipeline)")
        options = dict(onload_device=onload, offload_device=offload, offload_type=offload_type,
                       num_blocks_per_group=num_blocks_per_group if offload_type == "block_level" else None,
                       non_blocking=non_blocking, use_stream=use_stream, record_stream=record_stream,
                       low_cpu_mem_usage=low_cpu_mem_usage)
        for name, module in self.models.items():
            if module is None:
                continue
            if name in exclude:
                module.to(onload)
            elif getattr(module, "_supports_group_offloading", False):
                module.enable_group_offload(**options)
            else:
                # plain torch modules (and models that opt out of ModelMixin's check): the hook itself
                apply_group_offloading(module, **options)
        self._low_memory = True
        self._offload = "group"
        self._negative_tokens = None
        return self

    def enable_low_memory(self, pose_chunk=2):
        """Fit small GPUs (8 GB): :meth:`enable_model_cpu_offload` (models wait on the CPU and visit
        the GPU one at a time), ``vae.enable_slicing()`` (one image decoded at a time) and
        ``pose_batch_size = pose_chunk`` (poses per UNet call). Call after choosing the device
        with ``.to(device)``; on a CPU-only pipeline there is nothing to offload and only the last
        two apply. Slower than the default; the images are the same. Returns self."""
        device = self._execution_device
        if device.type != "cpu" and not self._low_memory:
            self.enable_model_cpu_offload(device=device)
        self._low_memory = True
        self.vae.enable_slicing()
        self.pose_batch_size = pose_chunk
        return self

    def compile(self, mode="reduce-overhead", **kwargs):
        """Opt-in ``torch.compile`` of the denoising UNet (the 20-step loop's cost), in place
        (``nn.Module.compile``: the module, its hooks and ``save_pretrained`` stay as they are).
        ``mode``: "reduce-overhead" (CUDA graphs: fewer kernel launches on the small latents),
        "max-autotune", or "default"; other keyword arguments go to ``torch.compile``. The first
        call after this compiles (minutes); later calls of the same shape are fast. Returns self."""
        self.denoising_unet.compile(mode=mode, **kwargs)
        return self

    @property
    def interrupt(self):
        """True once a step callback set ``pipe._interrupt = True``: the remaining steps are
        skipped and the current latents decoded (reset when the next call starts)."""
        return self._interrupt

    @property
    def num_timesteps(self):
        return getattr(self, "_num_timesteps", 0)

    # ----------------------------------------------------------------- building blocks
    def _add_pose_features(self, module, inputs, output):
        # Forward hook on denoising_unet.conv_in: the pose features join before the first skip.
        if self._pose_features is None:
            return output
        return output + self._pose_features.to(output.device)

    def image_to_tensor(self, image, normalize):
        """PIL image(s) -> (N, 3, height, width) in [0, 1] (or [-1, 1] with ``normalize``),
        Lanczos-resized by diffusers' ``VaeImageProcessor``.

        The tensor keeps the HWC memory layout of the decoded arrays (as the image processor
        returns it), which makes CPU convolutions round exactly like the reference pipeline.
        """
        processor = self.image_processor if normalize else self.pose_processor
        return processor.preprocess(_as_list(image), height=self.height, width=self.width)

    def render_poses(self, poses):
        """Pose objects are rendered at the output size; images are used as given."""
        from pose2id.poses import Pose, render

        images = []
        for i, pose in enumerate(poses):
            if isinstance(pose, Pose):
                images.append(render(pose.fit(self.width, self.height), self.width, self.height))
            elif isinstance(pose, Image.Image):
                images.append(pose)
            else:
                raise ValueError(f"poses[{i}] must be a pose2id.poses.Pose or a PIL image, got {type(pose).__name__}")
        return images

    @torch.no_grad()
    def encode_identity(self, reference_image):
        """Reference photo(s) -> TransReID vectors (R, D)."""
        from pose2id.reid import preprocess

        if self.reid is None:
            raise ValueError("this pipeline has no ReID model: pass reid_features")
        x = preprocess(_as_list(reference_image)).to(self._execution_device, self.dtype)
        return self.reid(x)

    @torch.no_grad()
    def negative_tokens(self):
        """IFR tokens (1, T, C) of the unconditional branch: ReID of an all-zero (mid-grey) input. Cached."""
        device = self._execution_device
        cached = self._negative_tokens
        if cached is None or cached.device != device or cached.dtype != self.dtype:
            if self.reid is None:
                raise ValueError("this pipeline has no ReID model: pass negative_reid_features")
            vector = self.reid(torch.zeros(1, 3, *self.reid.img_size, device=device, dtype=self.dtype))
            self._negative_tokens = self.ifr(vector)
        return self._negative_tokens

    def decode_preview(self, latents, scale=2):
        """(B, 4, h, w) latents -> list of small PIL previews (``scale`` x the latent size)."""
        factors = LATENT_RGB_FACTORS.to(latents.device, torch.float32)
        rgb = torch.einsum("bchw,cr->brhw", latents.float(), factors)
        rgb = ((rgb + 1) / 2).clamp(0, 1).mul(255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
        size = (latents.shape[3] * scale, latents.shape[2] * scale)
        return [Image.fromarray(a).resize(size, Image.BILINEAR) for a in rgb]

    def prepare_latents(self, shape, generator, latents=None):
        """Initial noise of ``shape`` (B, 4, h, w) in float32, unscaled.

        generator : None, one torch.Generator for the whole batch (drawn on its device), or a
            list of B generators, one per image (row i drawn from generator[i] alone, so an
            image's noise does not depend on the other images in the batch).
        """
        if latents is not None:
            if tuple(latents.shape) != tuple(shape):
                raise ValueError(f"latents must have shape {tuple(shape)}, got {tuple(latents.shape)}")
            return latents
        if isinstance(generator, (list, tuple)):
            if len(generator) != shape[0]:
                raise ValueError(f"generator is a list of {len(generator)} generators, but {shape[0]} images are "
                                 "made (one generator per image: references x poses)")
            return torch.cat([
                torch.randn((1, *shape[1:]), generator=g, device=g.device, dtype=torch.float32).cpu()
                for g in generator
            ])
        if generator is not None and not isinstance(generator, torch.Generator):
            raise ValueError(f"generator must be a torch.Generator or a list of them, got {type(generator).__name__}")
        noise_device = generator.device if generator is not None else "cpu"
        return torch.randn(shape, generator=generator, device=noise_device, dtype=torch.float32)

    # ----------------------------------------------------------------- inference
    def check_inputs(self, references, poses, num_inference_steps, output_type, callback_inputs, pose_batch_size):
        for i, image in enumerate(references):
            if not isinstance(image, PIL.Image.Image):
                where = "reference_image" if len(references) == 1 else f"reference_image[{i}]"
                raise ValueError(f"{where} must be a PIL image, got {type(image).__name__}")
        if not references:
            raise ValueError("reference_image must be a PIL image or a non-empty list of them")
        if isinstance(poses, Image.Image) or not hasattr(poses, "__len__") or len(poses) == 0:
            raise ValueError("poses must be a non-empty list of Pose objects or PIL images")
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {', '.join(map(repr, OUTPUT_TYPES))}, got {output_type!r}")
        if not isinstance(num_inference_steps, int) or num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be a positive integer, got {num_inference_steps!r}")
        if pose_batch_size is not None and (not isinstance(pose_batch_size, int) or pose_batch_size < 1):
            raise ValueError(f"pose_batch_size must be a positive integer or None, got {pose_batch_size!r}")
        allowed = self._callback_tensor_inputs + self._callback_extra_inputs
        unknown = [name for name in callback_inputs if name not in allowed]
        if unknown:
            raise ValueError(f"callback_on_step_end_tensor_inputs: {unknown} not among {allowed}")

    @staticmethod
    def _rows(vectors, count, what):
        """(D,) / (1, D) / (count, D) -> (1 or count, D)."""
        vectors = torch.as_tensor(vectors)
        vectors = vectors.reshape(1, -1) if vectors.ndim == 1 else vectors
        if vectors.ndim != 2 or vectors.shape[0] not in (1, count):
            raise ValueError(f"{what} must have shape (D,), (1, D) or ({count}, D) for {count} reference(s), "
                             f"got {tuple(vectors.shape)}")
        return vectors

    @torch.no_grad()
    def __call__(
        self,
        reference_image,
        poses,
        num_inference_steps=20,
        guidance_scale=3.5,
        generator=None,
        latents=None,
        output_type="pil",
        return_dict=True,
        callback_on_step_end=None,
        callback_on_step_end_tensor_inputs=("latents", "preview"),
        reid_features=None,
        negative_reid_features=None,
        pose_batch_size=None,
    ):
        """Generate one image per (reference, pose).

        Parameters
        ----------
        reference_image : PIL image of the person, or a list of R of them (each gets every pose).
        poses : list of P pose2id.poses.Pose (rendered at the output size) or rendered pose
            images (PIL, fed as given).
        num_inference_steps : int, DDIM steps.
        guidance_scale : float, classifier-free guidance (<= 1 disables it).
        generator : torch.Generator for the initial noise of the whole batch, or a list of R * P
            generators, one per image in output order (see :func:`pose2id.ipg.pose_generator`).
        latents : optional initial noise (R * P, 4, height / 8, width / 8).
        output_type : "pil", "np", "pt" or "latent" (see :class:`IPGPipelineOutput`).
        return_dict : False returns the tuple ``(images,)``.
        callback_on_step_end : ``f(pipeline, step_index, timestep, callback_kwargs) -> dict`` (or a
            diffusers ``PipelineCallback``); callback_kwargs holds the names in
            ``callback_on_step_end_tensor_inputs``: "latents", "noise_pred", and "preview" (one
            small PIL per image). A returned "latents" replaces the current ones; setting
            ``pipeline._interrupt = True`` skips the remaining steps.
        reid_features, negative_reid_features : optional identity vectors, (D,), (1, D) or (R, D),
            in place of the ReID of ``reference_image`` / of the mid-grey image.
        pose_batch_size : images per UNet call (None = all, or the :meth:`enable_low_memory` value).

        Returns
        -------
        IPGPipelineOutput with ``.images`` (R * P of them, reference-major), or ``(images,)``.
        """
        from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback

        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        references = _as_list(reference_image)
        pose_batch_size = pose_batch_size or self.pose_batch_size
        self.check_inputs(references, poses, num_inference_steps, output_type, callback_on_step_end_tensor_inputs,
                          pose_batch_size)
        device, dtype = self._execution_device, self.dtype
        num_refs, num_poses = len(references), len(poses)
        batch = num_refs * num_poses
        do_cfg = guidance_scale > 1.0
        latent_shape = (batch, 4, self.height // self.vae_scale_factor, self.width // self.vae_scale_factor)
        pose_images = self.render_poses(poses)
        latents = self.prepare_latents(latent_shape, generator, latents)
        self._interrupt = False

        # 1. Identity tokens: (R, T, C) conditional, (1 or R, T, C) unconditional (cached).
        if reid_features is None:
            reid_features = self.encode_identity(references)
        tokens = self.ifr(self._rows(reid_features, num_refs, "reid_features").to(device, dtype))
        negative = None
        if do_cfg and negative_reid_features is not None:
            negative = self.ifr(self._rows(negative_reid_features, num_refs, "negative_reid_features").to(device, dtype))
        elif do_cfg:
            negative = self.negative_tokens()

        # 2. Reference pass, once, on the conditional tokens only (the only rows ever read).
        reference = self.image_to_tensor(references, normalize=True).to(device, dtype)
        reference_latents = self.vae.encode(reference).latent_dist.mean * self.latent_scale
        self.bank.clear()
        self.reference_unet(reference_latents, torch.zeros((), device=device), encoder_hidden_states=tokens)

        # 3. Pose features, once per pose.
        pose_pixels = self.image_to_tensor(pose_images, normalize=False).to(device, dtype)
        pose_features = self.pose_guider(pose_pixels)

        # 4. Denoising loop; image i is reference i // P in pose i % P.
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps
        self._num_timesteps = len(timesteps)
        latents = latents.to(device, dtype) * self.scheduler.init_noise_sigma
        chunk = pose_batch_size or batch
        index = torch.arange(batch, device=device)
        ref_rows, pose_rows = index // num_poses, index % num_poses
        try:
            with self.progress_bar(total=num_inference_steps) as progress_bar:
                for i, t in enumerate(timesteps):
                    if self.interrupt:
                        continue
                    noise_pred = torch.cat([
                        self._predict_noise(latents[s:s + chunk], t, tokens, negative, pose_features,
                                            ref_rows[s:s + chunk], pose_rows[s:s + chunk], num_refs, guidance_scale)
                        for s in range(0, batch, chunk)
                    ])
                    latents = self.scheduler.step(noise_pred, t, latents, return_dict=False)[0]
                    if callback_on_step_end is not None:
                        callback_kwargs = {}
                        for name in callback_on_step_end_tensor_inputs:
                            callback_kwargs[name] = (self.decode_preview(latents) if name == "preview"
                                                     else locals()[name])
                        result = callback_on_step_end(self, i, t, callback_kwargs) or {}
                        latents = result.get("latents", latents)
                    progress_bar.update()
        finally:
            self.bank.clear()
            self._pose_features = None

        # 5. Decode (one image at a time after vae.enable_slicing()).
        if output_type == "latent":
            images = latents
        else:
            decoded = self.vae.decode(latents / self.latent_scale).sample
            images = self.image_processor.postprocess(decoded, output_type=output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (images,)
        return IPGPipelineOutput(images=images)

    def _predict_noise(self, latents, t, tokens, negative, pose_features, ref_rows, pose_rows, num_refs,
                       guidance_scale):
        """One UNet call on [uncond; cond] rows of a chunk of images, then guidance."""
        n = latents.shape[0]
        features = pose_features[pose_rows] if pose_features.shape[0] > 1 else pose_features.expand(n, -1, -1, -1)
        cond = tokens[ref_rows] if num_refs > 1 else tokens.expand(n, -1, -1)
        self.bank.rows = ref_rows if num_refs > 1 else None
        if negative is None:
            self.bank.num_uncond = 0
            self._pose_features = features
            return self.denoising_unet(latents, t, encoder_hidden_states=cond).sample
        self.bank.num_uncond = n
        self._pose_features = torch.cat([features, features])
        uncond = negative[ref_rows] if negative.shape[0] > 1 else negative.expand(n, -1, -1)
        # scale_model_input is the identity for DDIM.
        out = self.denoising_unet(torch.cat([latents, latents]), t, encoder_hidden_states=torch.cat([uncond, cond])).sample
        uncond_out, cond_out = out.chunk(2)
        return uncond_out + guidance_scale * (cond_out - uncond_out)
