"""Decomposed self-attention (paper section II; Cb = Cv = 64).

x_att = x + W_f · [S(W_c x, N) (W_v x)^T]^T S(W_b x, C): a global Cb×Cv context, gathered with a
softmax over locations, redistributed to every location with a softmax over channels. Memory is
O(N·C) instead of the O(N²) of full self-attention, which matters on stride-4 features.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class DecomposedSelfAttention(nn.Module):
    def __init__(self, channels: int, basis: int = 64, value: int = 64) -> None:
        super().__init__()
        self.w_b = nn.Conv2d(channels, basis, 1)
        self.w_c = nn.Conv2d(channels, basis, 1)
        self.w_v = nn.Conv2d(channels, value, 1)
        self.w_f = nn.Conv2d(value, channels, 1)
        # Zero output projection: the module starts as the identity, so adding it cannot make the
        # initial network worse than the baseline.
        nn.init.zeros_(self.w_f.weight)
        nn.init.zeros_(self.w_f.bias)

    def factors(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(S(W_b x, C), S(W_c x, N)), both [B, Cb, N]: a location's attention to another is
        the dot product of the first at the querying location with the second at the other."""
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
        """Summed attention of the ``query`` locations (bool [H, W]) to every location, [H, W]."""
        b, c = self.factors(x[:1])
        q = b[0][:, query.flatten()]  # [Cb, |Q|]
        return (q.sum(1) @ c[0]).view(x.shape[-2:])
