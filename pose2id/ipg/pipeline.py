"""IPGPipeline: identity-guided pedestrian generation (Pose2ID, CVPR 2025) on stock diffusers.

One reference photo + a list of poses -> the same person in each pose. The whole inference,
top to bottom, is in :meth:`IPGPipeline.__call__`:

1. identity: TransReID vector of the reference (and of a mid-grey image for the unconditional
   branch, computed once and cached) -> IFR -> 20 condition tokens;
2. reference: VAE latent of the reference -> reference UNet once, at t = 0, on the conditional
   tokens; every self-attention layer records its input (``ReferenceWriter``);
3. poses: rendered skeletons -> PoseGuider -> features added after the denoising UNet's ``conv_in``;
4. denoising: DDIM with classifier-free guidance, all poses in one batch [uncond; cond]; the
   conditional rows' self-attention also attends to the recorded reference tokens
   (``ReferenceReader``);
5. decode with the VAE.
"""

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

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


@dataclass
class IPGPipelineOutput:
    """``images``: list of PIL images, or (B, H, W, 3) float32 array in [0, 1] for output_type "np"."""

    images: object


class IPGPipeline:
    """Generate a pedestrian in new poses with the identity of a reference photo.

    Parameters
    ----------
    vae : diffusers.AutoencoderKL (sd-vae-ft-mse)
    reference_unet, denoising_unet : diffusers.UNet2DConditionModel (the reference one without
        ``conv_out``); their self-attention processors are replaced here.
    pose_guider : pose2id.ipg.PoseGuider
    ifr : pose2id.ipg.IFR
    reid : pose2id.reid.TransReID, or None when identity vectors are always passed in.
    scheduler : diffusers.DDIMScheduler (zero-SNR, trailing, v-prediction)
    width, height : output size (256 x 512 for the official weights).
    """

    latent_scale = 0.18215

    def __init__(self, vae, reference_unet, denoising_unet, pose_guider, ifr, reid, scheduler, width=256, height=512):
        self.vae = vae
        self.reference_unet = reference_unet
        self.denoising_unet = denoising_unet
        self.pose_guider = pose_guider
        self.ifr = ifr
        self.reid = reid
        self.scheduler = scheduler
        self.width, self.height = width, height
        self.bank = ReferenceBank()
        set_reference_attention(reference_unet, denoising_unet, self.bank)
        self._pose_features = None
        denoising_unet.conv_in.register_forward_hook(self._add_pose_features)
        self._negative_tokens = None
        self._low_memory = False
        self._pose_chunk = None
        self.execution_device = next(denoising_unet.parameters()).device
        self.progress = True

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
        """Load the official Pose2ID weights.

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
        """
        import warnings

        from diffusers import AutoencoderKL, DDIMScheduler

        from pose2id.configs import load_config
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
        files = weights.resolve_files(ckpt_dir, vae, local_files_only=local_files_only)
        unet_config = weights.unet_config(base_model)
        components = {
            name: weights.load_component(name, files[name], device, dtype, unet_config=unet_config)
            for name in weights.POSE2ID_FILES
        }
        return cls(
            # low_cpu_mem_usage=False: the VAE is small, and the default asks for `accelerate`.
            vae=AutoencoderKL.from_pretrained(files["vae"], torch_dtype=dtype, low_cpu_mem_usage=False).to(device).eval(),
            reference_unet=components["reference_unet"],
            denoising_unet=components["denoising_unet"],
            pose_guider=components["pose_guider"],
            ifr=components["ifr"],
            reid=components["transreid"],
            scheduler=DDIMScheduler(**load_config("scheduler_config")),
        )

    # ----------------------------------------------------------------- placement and memory
    @property
    def dtype(self):
        return next(self.denoising_unet.parameters()).dtype

    @property
    def models(self):
        return {
            "vae": self.vae,
            "reference_unet": self.reference_unet,
            "denoising_unet": self.denoising_unet,
            "pose_guider": self.pose_guider,
            "ifr": self.ifr,
            "reid": self.reid,
        }

    def to(self, device=None, dtype=None):
        """Move (and cast) every model; returns self."""
        for model in self.models.values():
            if model is not None:
                torch.nn.Module.to(model, device=device, dtype=dtype)
        if device is not None:
            self.execution_device = torch.device(device)
        self._negative_tokens = None
        return self

    @property
    def low_memory(self):
        """True after :meth:`enable_low_memory`."""
        return self._low_memory

    def enable_low_memory(self, pose_chunk=2):
        """Fit small GPUs (8 GB): models stay on the CPU and visit the GPU one at a time,
        the UNet runs ``pose_chunk`` poses at a time and the VAE decodes one image at a time.
        Call after choosing the device with ``.to(device)``; slower than the default."""
        self._low_memory = True
        self._pose_chunk = pose_chunk
        for model in self.models.values():
            if model is not None:
                torch.nn.Module.to(model, device="cpu")
        return self

    @contextmanager
    def _on_device(self, model):
        """Use ``model`` on the execution device; in low-memory mode it goes back to the CPU after."""
        if self._low_memory:
            torch.nn.Module.to(model, device=self.execution_device)
        try:
            yield model
        finally:
            if self._low_memory:
                torch.nn.Module.to(model, device="cpu")
                if self.execution_device.type == "cuda":
                    torch.cuda.empty_cache()

    # ----------------------------------------------------------------- building blocks
    def _add_pose_features(self, module, inputs, output):
        # Forward hook on denoising_unet.conv_in: the pose features join before the first skip.
        if self._pose_features is None:
            return output
        return output + self._pose_features

    def image_to_tensor(self, image, normalize):
        """PIL -> (1, 3, height, width) in [0, 1] (or [-1, 1] with ``normalize``), Lanczos-resized.

        The tensor keeps the HWC memory layout of the decoded array (as diffusers' image processor
        does), which makes CPU convolutions round exactly like the reference pipeline.
        """
        array = np.asarray(image.convert("RGB").resize((self.width, self.height), Image.LANCZOS))
        x = torch.from_numpy(array.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
        return x * 2.0 - 1.0 if normalize else x

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
        """Reference photo -> TransReID vector (1, D)."""
        from pose2id.reid import preprocess

        if self.reid is None:
            raise ValueError("this pipeline has no ReID model: pass reid_features")
        with self._on_device(self.reid) as reid:
            x = preprocess([reference_image]).to(self.execution_device, self.dtype)
            return reid(x)

    @torch.no_grad()
    def negative_tokens(self):
        """IFR tokens of the unconditional branch: ReID of an all-zero (mid-grey) input. Cached."""
        if self._negative_tokens is None:
            if self.reid is None:
                raise ValueError("this pipeline has no ReID model: pass negative_reid_features")
            cfg = self.reid.config
            with self._on_device(self.reid) as reid:
                vector = reid(torch.zeros(1, 3, *cfg.img_size, device=self.execution_device, dtype=self.dtype))
            with self._on_device(self.ifr) as ifr:
                self._negative_tokens = ifr(vector)
        return self._negative_tokens

    def decode_preview(self, latents, scale=2):
        """(B, 4, h, w) latents -> list of small PIL previews (``scale`` x the latent size)."""
        factors = LATENT_RGB_FACTORS.to(latents.device, torch.float32)
        rgb = torch.einsum("bchw,cr->brhw", latents.float(), factors)
        rgb = ((rgb + 1) / 2).clamp(0, 1).mul(255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
        size = (latents.shape[3] * scale, latents.shape[2] * scale)
        return [Image.fromarray(a).resize(size, Image.BILINEAR) for a in rgb]

    # ----------------------------------------------------------------- inference
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
        callback_on_step_end=None,
        reid_features=None,
        negative_reid_features=None,
    ):
        """Generate one image per pose.

        Parameters
        ----------
        reference_image : PIL image of the person.
        poses : list of pose2id.poses.Pose (rendered at the output size) or of rendered pose
            images (PIL, fed as given).
        num_inference_steps : int, DDIM steps.
        guidance_scale : float, classifier-free guidance (<= 1 disables it).
        generator : torch.Generator for the initial noise.
        latents : optional initial noise (B, 4, height / 8, width / 8).
        output_type : "pil" or "np".
        callback_on_step_end : ``f(pipeline, step_index, timestep, callback_kwargs) -> dict``;
            callback_kwargs has "latents" and "preview" (one small PIL per pose). A returned
            "latents" replaces the current ones.
        reid_features, negative_reid_features : optional (D,) or (1, D) identity vectors in place
            of the ReID of ``reference_image`` / of the mid-grey image.

        Returns
        -------
        IPGPipelineOutput with ``.images``.
        """
        if not isinstance(reference_image, Image.Image):
            raise ValueError(f"reference_image must be a PIL image, got {type(reference_image).__name__}")
        if isinstance(poses, (Image.Image,)) or not hasattr(poses, "__len__") or len(poses) == 0:
            raise ValueError("poses must be a non-empty list of Pose objects or PIL images")
        if output_type not in ("pil", "np"):
            raise ValueError(f"output_type must be 'pil' or 'np', got {output_type!r}")
        if not isinstance(num_inference_steps, int) or num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be a positive integer, got {num_inference_steps!r}")
        device, dtype = self.execution_device, self.dtype
        batch = len(poses)
        do_cfg = guidance_scale > 1.0
        latent_shape = (batch, 4, self.height // 8, self.width // 8)

        # 1. Identity tokens: [uncond; cond], uncond cached.
        if reid_features is None:
            reid_features = self.encode_identity(reference_image)
        with self._on_device(self.ifr) as ifr:
            tokens = ifr(torch.as_tensor(reid_features).reshape(1, -1).to(device, dtype))
            if do_cfg and negative_reid_features is not None:
                negative = ifr(torch.as_tensor(negative_reid_features).reshape(1, -1).to(device, dtype))
        if do_cfg and negative_reid_features is None:
            negative = self.negative_tokens()

        # 2. Reference pass, once, on the conditional tokens only (the only rows ever read).
        with self._on_device(self.vae) as vae:
            reference = self.image_to_tensor(reference_image, normalize=True).to(device, dtype)
            reference_latents = vae.encode(reference).latent_dist.mean * self.latent_scale
        self.bank.clear()
        with self._on_device(self.reference_unet) as reference_unet:
            reference_unet(reference_latents, torch.zeros((), device=device), encoder_hidden_states=tokens)

        # 3. Pose features for every pose.
        pose_images = self.render_poses(poses)
        with self._on_device(self.pose_guider) as pose_guider:
            pose_pixels = torch.cat([self.image_to_tensor(p, normalize=False) for p in pose_images]).to(device, dtype)
            pose_features = pose_guider(pose_pixels)

        # 4. Denoising loop.
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        if latents is None:
            noise_device = generator.device if generator is not None else "cpu"
            latents = torch.randn(latent_shape, generator=generator, device=noise_device, dtype=torch.float32)
        elif tuple(latents.shape) != latent_shape:
            raise ValueError(f"latents must have shape {latent_shape}, got {tuple(latents.shape)}")
        latents = latents.to(device, dtype) * self.scheduler.init_noise_sigma
        chunk = self._pose_chunk or batch
        with self._on_device(self.denoising_unet) as unet:
            for i, t in enumerate(self._progress(self.scheduler.timesteps)):
                noise_pred = torch.cat(
                    [
                        self._predict_noise(unet, latents[s:s + chunk], t, tokens, negative if do_cfg else None,
                                            pose_features[s:s + chunk], guidance_scale)
                        for s in range(0, batch, chunk)
                    ]
                )
                latents = self.scheduler.step(noise_pred, t, latents, return_dict=False)[0]
                if callback_on_step_end is not None:
                    callback_kwargs = {"latents": latents, "preview": self.decode_preview(latents)}
                    result = callback_on_step_end(self, i, t, callback_kwargs) or {}
                    latents = result.get("latents", latents)
        self.bank.clear()
        self._pose_features = None

        # 5. Decode (one image at a time in low-memory mode).
        step = 1 if self._low_memory else batch
        with self._on_device(self.vae) as vae:
            images = torch.cat(
                [vae.decode(latents[s:s + step] / self.latent_scale).sample for s in range(0, batch, step)]
            )
        images = (images / 2 + 0.5).clamp(0, 1).float().permute(0, 2, 3, 1).cpu().numpy()
        if output_type == "pil":
            images = [Image.fromarray((image * 255).round().astype(np.uint8)) for image in images]
        return IPGPipelineOutput(images=images)

    def _predict_noise(self, unet, latents, t, tokens, negative, pose_features, guidance_scale):
        """One UNet call on [uncond; cond] rows of a chunk of poses, then guidance."""
        n = latents.shape[0]
        if negative is None:
            self.bank.num_uncond = 0
            self._pose_features = pose_features
            return unet(latents, t, encoder_hidden_states=tokens.expand(n, -1, -1)).sample
        self.bank.num_uncond = n
        self._pose_features = torch.cat([pose_features, pose_features])
        hidden = torch.cat([negative.expand(n, -1, -1), tokens.expand(n, -1, -1)])
        # scale_model_input is the identity for DDIM.
        out = unet(torch.cat([latents, latents]), t, encoder_hidden_states=hidden).sample
        uncond, cond = out.chunk(2)
        return uncond + guidance_scale * (cond - uncond)

    def _progress(self, iterable):
        if not self.progress:
            return iterable
        from tqdm.auto import tqdm

        return tqdm(iterable, desc="IPG", leave=False)
