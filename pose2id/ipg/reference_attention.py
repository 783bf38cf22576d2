"""Reference attention as diffusers attention processors.

The reference UNet runs once on the reference image's latent; a :class:`ReferenceWriter` on each
of its self-attention layers (``attn1``) records the layer's input, i.e. the transformer block's
``norm1`` output. The denoising UNet's ``attn1`` layers get a :class:`ReferenceReader`: for the
conditional rows, keys and values are computed from ``cat([own tokens, recorded tokens of the
same-named block])`` so the generated person can copy appearance from the reference; the
unconditional rows attend to themselves only. Everything else is diffusers' stock SDPA processor.

The recorded tokens do not change during a generation, so each reader projects them to keys and
values once (on its first call after the reference pass) and reuses them for every step and every
pose; ``to_k(cat([x, r])) == cat([to_k(x), to_k(r)])`` row by row, so this changes nothing but the
work done.
"""

import torch
from diffusers.models.attention_processor import AttnProcessor2_0
from torch.nn import functional as F


class ReferenceBank:
    """Recorded reference tokens, ``{block name: (R, L, C)}``, and how the reader splits its batch.

    ``num_uncond`` is the number of leading rows of the denoising batch that are unconditional
    (classifier-free guidance order [uncond; cond]); the remaining rows read the bank.
    ``rows`` says which recorded reference each conditional row reads: None when R is 1 (one
    reference shared by every row) or when R equals the number of conditional rows (row i reads
    reference i); otherwise a LongTensor of reference indices, one per conditional row.
    ``projected`` caches each reader's keys and values of the recorded tokens,
    ``{block name: (key, value)}`` of shape (R, heads, L, head_dim); :meth:`clear` empties both.
    """

    def __init__(self):
        self.features = {}
        self.projected = {}
        self.num_uncond = 0
        self.rows = None

    def clear(self):
        self.features.clear()
        self.projected.clear()
        self.rows = None

    def for_rows(self, reference, rows):
        """(R, ...) recorded tensor -> (rows, ...): one reference per conditional row."""
        if self.rows is not None:
            return reference.index_select(0, self.rows.to(reference.device))
        if reference.shape[0] == 1:
            return reference.expand(rows, *reference.shape[1:])
        if reference.shape[0] != rows:
            raise ValueError(f"the bank holds {reference.shape[0]} references for {rows} conditional rows: "
                             "set ReferenceBank.rows")
        return reference


def _attn1_names(unet):
    return [name for name, _ in unet.attn_processors.items() if name.endswith("attn1.processor")]


def _split_heads(attn, x):
    """(B, L, heads * d) -> (B, heads, L, d)."""
    return x.unflatten(-1, (attn.heads, -1)).transpose(1, 2)


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
        self.bank.projected.pop(self.name, None)
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
        if not self._is_plain_self_attention(attn, hidden_states, attention_mask):
            return self._uncached(attn, hidden_states, reference, attention_mask)
        n = self.bank.num_uncond
        query, key, value = (_split_heads(attn, proj(hidden_states)) for proj in (attn.to_q, attn.to_k, attn.to_v))
        ref_key, ref_value = self._reference_keys_values(attn, reference, query.dtype)
        rows = hidden_states.shape[0] - n
        out_cond = F.scaled_dot_product_attention(
            query[n:],
            torch.cat([key[n:], self.bank.for_rows(ref_key, rows)], dim=2),
            torch.cat([value[n:], self.bank.for_rows(ref_value, rows)], dim=2),
        )
        if n:
            out_uncond = F.scaled_dot_product_attention(query[:n], key[:n], value[:n])
            out = torch.cat([out_uncond, out_cond])
        else:
            out = out_cond
        out = attn.to_out[1](attn.to_out[0](out.transpose(1, 2).flatten(2)))
        return out / attn.rescale_output_factor

    def _reference_keys_values(self, attn, reference, dtype):
        cached = self.bank.projected.get(self.name)
        if cached is None or cached[0].dtype != dtype or cached[0].device != reference.device:
            reference = reference.to(dtype)
            cached = (_split_heads(attn, attn.to_k(reference)), _split_heads(attn, attn.to_v(reference)))
            self.bank.projected[self.name] = cached
        return cached

    @staticmethod
    def _is_plain_self_attention(attn, hidden_states, attention_mask):
        """SD-1.5's attn1: (B, L, C) tokens, no mask, no extra norms, no residual inside."""
        return (
            hidden_states.ndim == 3
            and attention_mask is None
            and attn.spatial_norm is None
            and attn.group_norm is None
            and attn.norm_q is None
            and attn.norm_k is None
            and not attn.residual_connection
        )

    def _uncached(self, attn, hidden_states, reference, attention_mask):
        """Any other attention layout: stock processor on cat([own, reference]) for the cond rows."""
        n = self.bank.num_uncond
        uncond, cond = hidden_states[:n], hidden_states[n:]
        reference = self.bank.for_rows(reference.to(cond.dtype), cond.shape[0])
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
