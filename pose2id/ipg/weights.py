"""Where the official weights live and how they are fetched and loaded.

Sources are local folders or Hugging Face Hub ids: ``ckpt_dir`` is always a folder, ``vae`` and
``base_model`` are folders when they look like a path (:func:`looks_like_path`). A folder that
does not exist raises :class:`NoSuchFolderError` and is never looked up on the Hub. Hub files go
to the ordinary Hub cache (``huggingface_hub.hf_hub_download``, with its progress bar); ``python -m pose2id download``
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


def _listed(names):
    return ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0]


# kind of source -> (what it is called, the files it holds, a Hub id it may be instead)
FOLDERS = {
    "ckpt_dir": ("Pose2ID weights folder", tuple(POSE2ID_FILES.values()), None),
    "vae": ("VAE folder", VAE_FILES, VAE_REPO),
    "base_model": ("Stable Diffusion base model folder", ("unet/config.json",), SD15_REPO),
}


class NoSuchFolderError(MissingWeightsError):
    """A weight source given as a folder that does not exist (or is a file): ``ckpt_dir``, or a
    ``vae`` / ``base_model`` that looks like a path rather than a Hugging Face Hub id.

    Attributes: ``path`` (absolute, ``~`` expanded), ``detail`` ("no such folder (it should hold ...)"),
    for a message that names the source as its caller knows it (the CLI: ``--ckpt-dir PATH: detail``).
    """

    def __init__(self, kind, path):
        what, files, hub_id = FOLDERS[kind]
        self.kind, self.path = kind, Path(os.path.abspath(path))
        self.missing = [(name, str(self.path)) for name in files]
        should = f"it should hold {_listed(files)}"
        if hub_id is not None:
            should += f", or be a Hugging Face Hub id such as {hub_id}"
        exists = self.path.exists()  # a file
        self.detail = f"{'not a folder' if exists else 'no such folder'} ({should})"
        FileNotFoundError.__init__(self, f"{what} {self.path} {'is not a folder' if exists else 'does not exist'} "
                                         f"({should})")


def looks_like_path(source):
    """Whether ``source`` names a folder rather than a Hugging Face Hub id ("namespace/name"):
    a Path, an absolute path, one starting with "." or "~", ending with a separator, with more
    than one "/" (or any other separator of this system), or anything that is no valid Hub id."""
    if isinstance(source, os.PathLike):
        return True
    text = str(source)
    separators = tuple({os.sep, os.altsep or os.sep})
    if os.path.isabs(text) or text.startswith((".", "~")) or text.endswith(separators):
        return True
    if text.count("/") > 1 or any(sep != "/" and sep in text for sep in separators):
        return True
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(text)
    except HFValidationError:
        return True
    return False


def local_folder(source, kind):
    """``source`` as an existing local folder (``~`` expanded), or None for a Hugging Face Hub id.

    kind : "ckpt_dir" (always a folder), "vae" or "base_model" (a folder when it exists or looks
        like a path, else a Hub id). NoSuchFolderError for a folder that does not exist.
    """
    path = Path(os.path.expanduser(os.fspath(source) if isinstance(source, os.PathLike) else str(source)))
    if path.is_dir():
        return path
    if kind == "ckpt_dir" or looks_like_path(source):
        raise NoSuchFolderError(kind, path)
    return None


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
    """{component: Path} for the five Pose2ID files and the VAE folder; MissingWeightsError otherwise
    (NoSuchFolderError, its subclass, when ``ckpt_dir`` or a path-like ``vae`` is not an existing folder)."""
    ckpt_dir = local_folder(ckpt_dir, "ckpt_dir") if ckpt_dir else POSE2ID_REPO
    vae = (local_folder(vae, "vae") or vae) if vae else VAE_REPO
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


def load_official_components(ckpt_dir=None, base_model=SD15_REPO, vae=VAE_REPO, device="cpu", dtype=None,
                             local_files_only=None):
    """The official Pose2ID networks, the VAE and the DDIM scheduler, as keyword arguments of
    :class:`pose2id.ipg.IPGPipeline` (see :meth:`~pose2id.ipg.IPGPipeline.from_official`)."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler

    from pose2id.configs import load_config

    dtype = torch.float32 if dtype is None else dtype
    files = resolve_files(ckpt_dir, vae, local_files_only=local_files_only)
    config = unet_config(base_model)
    components = {name: load_component(name, files[name], device, dtype, unet_config=config) for name in POSE2ID_FILES}
    # low_cpu_mem_usage=False: the VAE is small, and this works without `accelerate`.
    vae_model = AutoencoderKL.from_pretrained(files["vae"], torch_dtype=dtype, low_cpu_mem_usage=False)
    return {
        "vae": torch.nn.Module.to(vae_model, device=device).eval(),
        "reference_unet": components["reference_unet"],
        "denoising_unet": components["denoising_unet"],
        "pose_guider": components["pose_guider"],
        "ifr": components["ifr"],
        "reid": components["transreid"],
        "scheduler": DDIMScheduler(**load_config("scheduler_config")),
    }


def unet_config(base_model):
    """SD-1.5 UNet config: shipped with the package, or ``unet/config.json`` of another source."""
    import json

    from pose2id.configs import load_config

    if base_model in (None, SD15_REPO):
        return load_config("sd15_unet")
    base_model = local_folder(base_model, "base_model") or base_model
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
