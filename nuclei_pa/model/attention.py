"""Decomposed self-attention (paper section II; Cb = Cv = 64).

x_att = x + W_f · [S(W_c x, N) (W_v x)^T]^T S(W_b x, C): a global Cb×Cv context, gathered with a
softmax over locations, redistributed to every location with a softmax over channels (the
"efficient attention" factorisation). Memory is O(N·C) instead of full self-attention's O(N²),
which matters on stride-4 features of large images.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class DecomposedSelfAttention(nn.Module):
    """Residual decomposed self-attention; W_b, W_c, W_v, W_f are 1×1 convolutions.

    W_f starts at zero, so the module starts as the identity and the pa model starts exactly as
    the baseline; W_f's gradient is non-zero from the first step, so it does not stay there.
    """

    def __init__(self, channels: int, basis: int = 64, value: int = 64) -> None:
        super().__init__()
        self.w_b = nn.Conv2d(channels, basis, 1)
        self.w_c = nn.Conv2d(channels, basis, 1)
        self.w_v = nn.Conv2d(channels, value, 1)
        self.w_f = nn.Conv2d(value, channels, 1)
        nn.init.zeros_(self.w_f.weight)
        nn.init.zeros_(self.w_f.bias)

    def factors(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(S(W_b x, C), S(W_c x, N)), both [B, Cb, N]: location i's attention to location j is
        the dot product of the first at i with the second at j (each row sums to 1 over j)."""
        b = torch.softmax(self.w_b(x).flatten(2), dim=1)
        c = torch.softmax(self.w_c(x).flatten(2), dim=2)
        return b, c

    def forward(self, x: Tensor) -> Tensor:
        batch, _, h, w = x.shape
        b, c = self.factors(x)
        v = self.w_v(x).flatten(2)  # [B, Cv, N]
        context = torch.bmm(c, v.transpose(1, 2))  # [B, Cb, Cv]
        out = torch.bmm(context.transpose(1, 2), b)  # [B, Cv, N]
        return x + self.w_f(out.view(batch, -1, h, w))

    @torch.no_grad()
    def attention_to(self, x: Tensor, query: Tensor) -> Tensor:
        """Attention of the queried locations to every location of ``x[0]``, [H, W].

        ``query`` ([H, W], bool or float weights) selects the querying locations; their attention
        rows are summed with those weights (the paper's Fig. 1 queries the labelled nuclei).
        """
        b, c = self.factors(x[:1])
        weights = query.to(b.dtype).flatten()  # [N]
        return ((b[0] @ weights) @ c[0]).view(x.shape[-2:])
