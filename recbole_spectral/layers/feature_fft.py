"""Feature-frequency spectral filters: filtering along the embedding (feature) dimension.

For node representations X (n x d, d even) the filter works in the frequency domain of the feature
axis, with the orthonormal real FFT (so the transform preserves energy and an all-ones filter is the
identity):

    X_f = rFFT(X)            (n x (d/2 + 1), complex, along the feature dimension)
    Y   = irFFT(X_f ⊙ W)     (n x d)

``W`` is one learnable complex vector of d/2 + 1 frequencies (:class:`SpectralFilter`, static: the
same filter for every node) or a per-node filter ``W ⊙ (1 + g M + m)`` modulated by a context vector
g of each node (:class:`ContextSpectralFilter`, context-conditioned). Complex weights are stored as
real tensors of shape [..., 2] (real, imaginary) so that checkpoints hold plain real tensors.
"""
import torch
import torch.nn as nn



def n_frequencies(dim):
    """Number of rFFT frequencies of a real signal of length ``dim`` (``dim`` must be even)."""
    if dim % 2:
        raise ValueError(f"feature-frequency filtering needs an even dimension, got {dim}")
    return dim // 2 + 1


def spectral_filter(x, weight):
    """irFFT(rFFT(x) ⊙ weight) along the last dimension, orthonormal.

    ``weight`` is complex of shape [d/2 + 1] (one filter for all rows) or [n, d/2 + 1] (one per row).
    """
    d = x.shape[-1]
    spectrum = torch.fft.rfft(x, dim=-1, norm="ortho")
    return torch.fft.irfft(spectrum * weight, n=d, dim=-1, norm="ortho")


def fused_spectral_filter(xs, weight):
    """irFFT(Π_m rFFT(x_m) ⊙ weight) along the last dimension, orthonormal: the product of the spectra of
    several signals of the same width (SMORE's cross-modality fusion), filtered by ``weight``
    (complex, [d/2 + 1] or [n, d/2 + 1]). With one signal it is :func:`spectral_filter`."""
    d = xs[0].shape[-1]
    spectrum = None
    for x in xs:
        s = torch.fft.rfft(x, dim=-1, norm="ortho")
        spectrum = s if spectrum is None else spectrum * s
    return torch.fft.irfft(spectrum * weight, n=d, dim=-1, norm="ortho")


class SpectralFilter(nn.Module):
    """A static learnable complex filter over the d/2 + 1 feature frequencies (initialised to all-ones,
    i.e. the identity)."""

    def __init__(self, dim):
        super().__init__()
        weight = torch.zeros(n_frequencies(dim), 2)
        weight[:, 0] = 1.0
        self.weight = nn.Parameter(weight)

    def complex_weight(self):
        return torch.view_as_complex(self.weight)

    def forward(self, x, context=None):
        return spectral_filter(x, self.complex_weight())


class ContextSpectralFilter(SpectralFilter):
    """A per-node filter W_n = W ⊙ (1 + g_n M + m): the static filter W modulated by the node's context
    g_n (e.g. its purified global representation); M (d x 2(d/2+1)) and m start at zero, so the filter
    starts as the static one."""

    def __init__(self, dim):
        super().__init__(dim)
        self.modulation = nn.Linear(dim, 2 * n_frequencies(dim))
        nn.init.zeros_(self.modulation.weight)
        nn.init.zeros_(self.modulation.bias)

    def forward(self, x, context=None):
        if context is None:
            return super().forward(x)
        delta = self.modulation(context).view(x.shape[0], -1, 2)
        per_node = self.complex_weight() * (1 + torch.view_as_complex(delta.contiguous()))
        return spectral_filter(x, per_node)
