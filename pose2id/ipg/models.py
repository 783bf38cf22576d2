"""The two small networks Pose2ID adds to Stable Diffusion: PoseGuider and IFR."""

from torch import nn
from torch.nn import functional as F


class PoseGuider(nn.Module):
    """Pose image -> features added to the denoising UNet's ``conv_in`` output.

    ``conv_in`` (3 -> c0), then for each pair of widths (c_i -> c_i, c_i -> c_{i+1} with stride 2),
    then ``conv_out`` (c_last -> conditioning_embedding_channels); 3x3 convs, SiLU after every conv
    except ``conv_out``. Official sizes: block_out_channels (16, 32, 64, 128), 320 output channels.

    forward: poses (B, 3, H, W) in [0, 1] -> (B, C, H / 8, W / 8).
    """

    def __init__(self, conditioning_embedding_channels=320, conditioning_channels=3, block_out_channels=(16, 32, 64, 128)):
        super().__init__()
        self.conv_in = nn.Conv2d(conditioning_channels, block_out_channels[0], 3, padding=1)
        self.blocks = nn.ModuleList()
        for c_in, c_out in zip(block_out_channels[:-1], block_out_channels[1:]):
            self.blocks.append(nn.Conv2d(c_in, c_in, 3, padding=1))
            self.blocks.append(nn.Conv2d(c_in, c_out, 3, padding=1, stride=2))
        self.conv_out = nn.Conv2d(block_out_channels[-1], conditioning_embedding_channels, 3, padding=1)

    def forward(self, poses):
        x = F.silu(self.conv_in(poses))
        for block in self.blocks:
            x = F.silu(block(x))
        return self.conv_out(x)


class IFR(nn.Module):
    """Identity feature redistributor: ReID vector -> ``num_tokens`` condition tokens.

    Linear(in_features -> num_tokens * token_dim), token k = output features
    [k * token_dim, (k + 1) * token_dim), then LayerNorm(token_dim). The tokens take the place of
    the CLIP text embedding as both UNets' ``encoder_hidden_states``.

    forward: (B, in_features) -> (B, num_tokens, token_dim).
    """

    def __init__(self, in_features=3840, num_tokens=20, token_dim=768, layer_norm_eps=1e-5):
        super().__init__()
        self.num_tokens = num_tokens
        self.proj_motion = nn.Linear(in_features, num_tokens * token_dim)
        self.norm_motion = nn.LayerNorm(token_dim, eps=layer_norm_eps)

    def forward(self, reid_features):
        tokens = self.proj_motion(reid_features)
        return self.norm_motion(tokens.reshape(tokens.shape[0], self.num_tokens, -1))
