"""Reference attention as diffusers attention processors.

The reference UNet runs once on the reference image's latent; a :class:`ReferenceWriter` on each
of its self-attention layers (``attn1``) records the layer's input, i.e. the transformer block's
``norm1`` output. The denoising UNet's ``attn1`` layers get a :class:`ReferenceReader`: for the
conditional rows, keys and values are computed from ``cat([own tokens, recorded tokens of the
same-named block])`` so the generated person can copy appearance from the reference; the
unconditional rows attend to themselves only. Everything else is diffusers' stock SDPA processor.
"""

import torch
from diffusers.models.attention_processor import AttnProcessor2_0


class ReferenceBank:
    """Recorded reference tokens, ``{block name: (R, L, C)}``, and how the reader splits its batch.

    ``num_uncond`` is the number of leading rows of the denoising batch that are unconditional
    (classifier-free guidance order [uncond; cond]); the remaining rows read the bank. R is 1 (one
    reference shared by every pose) or equal to the number of conditional rows.
    """

    def __init__(self):
        self.features = {}
        self.num_uncond = 0

    def clear(self):
        self.features.clear()


def _attn1_names(unet):
    return [name for name, _ in unet.attn_processors.items() if name.endswith("attn1.processor")]


class ReferenceWriter(AttnProcessor2_0):
    """Plain self-attention that also stores its input hidden states in the bank."""

    def __init__(self, bank, name):
        super().__init__()
        self.bank, self.name = bank, name

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, *args, **kwargs):
        recorded = hidden_states
        if recorded.dtype == torch.float32:
            # The reference implementation hands its bank over in float16; keep that rounding.
            recorded = recorded.to(torch.float16).to(torch.float32)
        self.bank.features[self.name] = recorded
        return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, temb)


class ReferenceReader(AttnProcessor2_0):
    """Self-attention whose conditional rows also attend to the recorded reference tokens."""

    def __init__(self, bank, name):
        super().__init__()
        self.bank, self.name = bank, name

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, *args, **kwargs):
        reference = self.bank.features.get(self.name)
        if reference is None:
            return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        n = self.bank.num_uncond
        uncond, cond = hidden_states[:n], hidden_states[n:]
        reference = reference.to(cond.dtype).expand(cond.shape[0], -1, -1)
        out_cond = super().__call__(attn, cond, torch.cat([cond, reference], dim=1), attention_mask)
        if n == 0:
            return out_cond
        out_uncond = super().__call__(attn, uncond, None, attention_mask)
        return torch.cat([out_uncond, out_cond])


def set_reference_attention(reference_unet, denoising_unet, bank):
    """Install writers on ``reference_unet`` and readers on ``denoising_unet``, paired by name."""
    writers = _attn1_names(reference_unet)
    readers = _attn1_names(denoising_unet)
    if writers != readers:
        raise ValueError("reference_unet and denoising_unet must have the same self-attention layers")
    reference_unet.set_attn_processor(
        {name: ReferenceWriter(bank, name) if name in writers else AttnProcessor2_0() for name in reference_unet.attn_processors}
    )
    denoising_unet.set_attn_processor(
        {name: ReferenceReader(bank, name) if name in readers else AttnProcessor2_0() for name in denoising_unet.attn_processors}
    )
