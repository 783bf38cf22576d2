"""The networks Pose2ID adds to Stable Diffusion, as diffusers models (``ModelMixin`` +
``ConfigMixin``: each saves and loads with its config through ``save_pretrained`` /
``from_pretrained``).

* :class:`PoseGuider`: diffusers' ``ControlNetConditioningEmbedding`` (same module names, so the
  official ``pose_guider.pth`` loads strictly);
* :class:`IFR`: ReID vector -> condition tokens;
* :class:`ReferenceUNet2DConditionModel`: a stock SD UNet without the output head;
* :class:`ReIDModel`: the TransReID identity encoder with a diffusers config.
"""

import functools

import torch

from diffusers import ConfigMixin, ModelMixin, UNet2DConditionModel
from diffusers.configuration_utils import register_to_config
try:
    from diffusers.models.controlnets.controlnet import ControlNetConditioningEmbedding
except ImportError:  # diffusers < 0.31
    from diffusers.models.controlnet import ControlNetConditioningEmbedding
from torch import nn

from pose2id.reid.transreid import TransReID, TransReIDConfig


class PoseGuider(ControlNetConditioningEmbedding, ModelMixin, ConfigMixin):
    """Pose image -> features added to the denoising UNet's ``conv_in`` output.

    diffusers' ``ControlNetConditioningEmbedding``: ``conv_in`` (3 -> c0), then for each pair of
    widths (c_i -> c_i, c_i -> c_{i+1} with stride 2), then ``conv_out`` (c_last ->
    conditioning_embedding_channels, zero at initialisation); 3x3 convs, SiLU after every conv
    except ``conv_out``. Official sizes: block_out_channels (16, 32, 64, 128), 320 output channels.

    forward: poses (B, 3, H, W) in [0, 1] -> (B, C, H / 8, W / 8).
    """

    @register_to_config
    def __init__(self, conditioning_embedding_channels=320, conditioning_channels=3, block_out_channels=(16, 32, 64, 128)):
        super().__init__(conditioning_embedding_channels, conditioning_channels, tuple(block_out_channels))


class IFR(ModelMixin, ConfigMixin):
    """Identity feature redistributor: ReID vector -> ``num_tokens`` condition tokens.

    Linear(in_features -> num_tokens * token_dim), token k = output features
    [k * token_dim, (k + 1) * token_dim), then LayerNorm(token_dim). The tokens take the place of
    the CLIP text embedding as both UNets' ``encoder_hidden_states``.

    forward: (B, in_features) -> (B, num_tokens, token_dim).
    """

    @register_to_config
    def __init__(self, in_features=3840, num_tokens=20, token_dim=768, layer_norm_eps=1e-5):
        super().__init__()
        self.num_tokens = num_tokens
        self.proj_motion = nn.Linear(in_features, num_tokens * token_dim)
        self.norm_motion = nn.LayerNorm(token_dim, eps=layer_norm_eps)

    def forward(self, reid_features):
        tokens = self.proj_motion(reid_features)
        return self.norm_motion(tokens.reshape(tokens.shape[0], self.num_tokens, -1))


def strip_reference_head(unet):
    """The reference UNet's output is never used, and the official file has no
    ``conv_norm_out``/``conv_out``: drop them so its keys match (682 at SD-1.5 size)."""
    unet.conv_norm_out = None
    unet.conv_out = nn.Identity()
    return unet


class ReferenceUNet2DConditionModel(UNet2DConditionModel):
    """``UNet2DConditionModel`` without ``conv_norm_out`` / ``conv_out``: the reference UNet only
    runs for the self-attention inputs it records, and its official weights have no output head.
    Same config as the stock UNet; ``save_pretrained`` / ``from_pretrained`` keep the head off.

    forward returns the last up block's features (B, block_out_channels[0], h, w) as ``.sample``.
    """

    @functools.wraps(UNet2DConditionModel.__init__)
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        strip_reference_head(self)


_REID_FIELDS = tuple(TransReIDConfig.__dataclass_fields__)


class ReIDModel(ModelMixin, ConfigMixin):
    """The TransReID (JPM) identity encoder as a diffusers model; ``encoder`` is the
    :class:`pose2id.reid.TransReID` (its state-dict keys are the official ones under ``encoder.``).

    forward: images (B, 3, H, W) normalized with mean/std 0.5 -> (B, 5 * embed_dim).
    """

    @register_to_config
    def __init__(self, embed_dim=768, depth=12, num_heads=12, mlp_ratio=4.0, img_size=(256, 128), patch=16, stride=12,
                 shift=5, shuffle_groups=2, num_parts=4, eps=1e-6):
        super().__init__()
        self.encoder = TransReID(TransReIDConfig(
            embed_dim=embed_dim, depth=depth, num_heads=num_heads, mlp_ratio=mlp_ratio, img_size=tuple(img_size),
            patch=patch, stride=stride, shift=shift, shuffle_groups=shuffle_groups, num_parts=num_parts, eps=eps))

    @property
    def img_size(self):
        """(height, width) of the encoder's input."""
        return tuple(self.encoder.config.img_size)

    @classmethod
    def wrap(cls, transreid):
        """A ReIDModel around an existing :class:`pose2id.reid.TransReID` (its weights are shared, not copied)."""
        cfg = transreid.config
        with torch.device("meta"):  # the encoder built here is replaced at once
            model = cls(**{name: getattr(cfg, name) for name in _REID_FIELDS})
        model.encoder = transreid
        return model.train(transreid.training)

    def forward(self, images):
        return self.encoder(images)
