"""Where the official weights live and how they are fetched and loaded.

Sources are local folders or Hugging Face Hub ids. Hub files go to the ordinary Hub cache
(``huggingface_hub.hf_hub_download``, with its progress bar); ``python -m pose2id download``
fills it ahead of time. Offline (``HF_HUB_OFFLINE=1`` or no network), only cached files are used
and anything absent is reported at once in a :class:`MissingWeightsError`.
"""

import os
from pathlib import Path

POSE2ID_REPO = "yuanc3/Pose2ID"
SD15_REPO = "stable-diffusion-v1-5/stable-diffusion-v1-5"
VAE_REPO = "stabilityai/sd-vae-ft-mse"

# component -> file name in yuanc3/Pose2ID (a .safetensors of the same stem is accepted locally).
POSE2ID_FILES = {
    "denoising_unet": "denoising_unet.pth",
    "reference_unet": "reference_unet.pth",
    "pose_guider": "pose_guider.pth",
    "ifr": "IFR.pth",
    "transreid": "transformer_20.pth",
}
VAE_FILES = ("config.json", "diffusion_pytorch_model.safetensors")
DOWNLOAD_COMMAND = "python -m pose2id download"


class MissingWeightsError(FileNotFoundError):
    """Some weight files are neither in the given folder nor in the Hugging Face cache."""

    def __init__(self, missing):
        self.missing = list(missing)  # [(file name, where it was looked for)]
        lines = "\n".join(f"  - {name}  (looked in {where})" for name, where in self.missing)
        super().__init__(
            f"{len(self.missing)} weight file(s) missing:\n{lines}\n"
            f"Download them (several GB, needs internet) with:\n  {DOWNLOAD_COMMAND}\n"
            "or pass ckpt_dir= / --ckpt-dir pointing at a folder that holds them."
        )


def hub_cache_dir():
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def is_local(source):
    return Path(os.path.expanduser(str(source))).is_dir()


def describe(source):
    if is_local(source):
        return str(Path(os.path.expanduser(str(source))).resolve())
    return f"Hugging Face Hub '{source}' (cache {hub_cache_dir()})"


def fetch(source, filename, local_files_only=None):
    """Path of ``filename`` from a local folder or a Hub repo (downloaded if allowed), or None."""
    if is_local(source):
        folder = Path(os.path.expanduser(str(source)))
        for candidate in (folder / filename, (folder / filename).with_suffix(".safetensors")):
            if candidate.is_file():
                return candidate
        return None
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(hf_hub_download(source, filename, local_files_only=bool(local_files_only)))
    except (LocalEntryNotFoundError, EntryNotFoundError, HfHubHTTPError, OSError):
        return None


def resolve_files(ckpt_dir=None, vae=None, local_files_only=None):
    """{component: Path} for the five Pose2ID files and the VAE folder; MissingWeightsError otherwise."""
    ckpt_dir = ckpt_dir or POSE2ID_REPO
    vae = vae or VAE_REPO
    found, missing = {}, []
    for component, filename in POSE2ID_FILES.items():
        path = fetch(ckpt_dir, filename, local_files_only)
        if path is None:
            missing.append((filename, describe(ckpt_dir)))
        found[component] = path
    for filename in VAE_FILES:
        path = fetch(vae, filename, local_files_only)
        if path is None and filename.endswith(".safetensors"):
            path = fetch(vae, "diffusion_pytorch_model.bin", local_files_only)
        if path is None:
            missing.append((filename, describe(vae)))
        else:
            found["vae"] = path.parent
    if missing:
        raise MissingWeightsError(missing)
    return found


def load_component(component, path, device="cpu", dtype=None, unet_config=None):
    """Build ``component`` without allocating random weights and load an official file into it.

    unet_config : UNet config dict for the two UNets (None = the shipped SD-1.5 config).
    """
    import torch

    from pose2id.ipg.components import build, build_unet, convert_official
    from pose2id.reid.transreid import load_state_dict_file

    dtype = torch.float32 if dtype is None else dtype
    if component in ("denoising_unet", "reference_unet") and unet_config is not None:
        with torch.device("meta"):
            module = build_unet(unet_config, reference=component == "reference_unet")
    else:
        module = build(component, device="meta")
    state = convert_official(component, load_state_dict_file(path))
    result = module.load_state_dict(state, strict=False, assign=True)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(
            f"{path} is not the official {component} checkpoint: missing {len(result.missing_keys)} keys "
            f"{result.missing_keys[:6]}, unexpected {len(result.unexpected_keys)} keys {result.unexpected_keys[:6]}"
        )
    return torch.nn.Module.to(module, device=device, dtype=dtype).eval()


def unet_config(base_model):
    """SD-1.5 UNet config: shipped with the package, or ``unet/config.json`` of another source."""
    import json

    from pose2id.configs import load_config

    if base_model in (None, SD15_REPO):
        return load_config("sd15_unet")
    path = fetch(base_model, "unet/config.json")
    if path is None:
        raise MissingWeightsError([("unet/config.json", describe(base_model))])
    return json.loads(Path(path).read_text())


def download(ckpt_dir=POSE2ID_REPO, vae=VAE_REPO):
    """Fetch every weight file into the Hub cache (with progress bars). Returns {name: path}."""
    from huggingface_hub import hf_hub_download

    paths = {}
    for filename in POSE2ID_FILES.values():
        paths[filename] = hf_hub_download(ckpt_dir, filename)
    for filename in VAE_FILES:
        paths[f"{vae}/{filename}"] = hf_hub_download(vae, filename)
    return paths
