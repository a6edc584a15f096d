"""Spectral index channels, as in the DSTL 3rd-place solution (Iglovikov et al., 2017).

Inputs are WorldView-3 multispectral (M) bands in their order: coastal, blue, green,
yellow, red, red edge, NIR1, NIR2. Divisions are safe (0 where the denominator vanishes)
and results are clipped to ``[-CLIP, CLIP]`` so that no index produces inf or NaN.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

M_BANDS = {"coastal": 0, "blue": 1, "green": 2, "yellow": 3, "red": 4, "rededge": 5, "nir1": 6, "nir2": 7}
CLIP = 10.0


def safe_div(num: np.ndarray, den: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
    out = np.zeros(np.broadcast(num, den).shape)
    ok = np.abs(den) > eps
    np.divide(num, den, out=out, where=ok)
    return out


def ndwi(m: np.ndarray) -> np.ndarray:
    """Normalized difference water index: (G - NIR) / (G + NIR)."""
    g, nir = m[M_BANDS["green"]], m[M_BANDS["nir1"]]
    return safe_div(g - nir, g + nir)


def evi(m: np.ndarray) -> np.ndarray:
    """Enhanced vegetation index: 2.5 (NIR - R) / (NIR + 6 R - 7.5 B + 1)."""
    nir, r, b = m[M_BANDS["nir1"]], m[M_BANDS["red"]], m[M_BANDS["blue"]]
    return 2.5 * safe_div(nir - r, nir + 6 * r - 7.5 * b + 1)


def savi(m: np.ndarray, soil: float = 0.5) -> np.ndarray:
    """Soil-adjusted vegetation index: (1 + L)(NIR - R) / (NIR + R + L), L = 0.5 (NDVI at
    L = 0)."""
    nir, r = m[M_BANDS["nir1"]], m[M_BANDS["red"]]
    return (1 + soil) * safe_div(nir - r, nir + r + soil)


def ndvi(m: np.ndarray) -> np.ndarray:
    return savi(m, soil=0.0)


def ccci(m: np.ndarray) -> np.ndarray:
    """Canopy chlorophyll content index: ((NIR - RE)/(NIR + RE)) / ((NIR - R)/(NIR + R))."""
    nir, re, r = m[M_BANDS["nir1"]], m[M_BANDS["rededge"]], m[M_BANDS["red"]]
    return safe_div(safe_div(nir - re, nir + re), safe_div(nir - r, nir + r))


INDICES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "ndwi": ndwi,
    "evi": evi,
    "savi": savi,
    "ndvi": ndvi,
    "ccci": ccci,
}


def index_channels(m: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """Stack the named indices of the M bands ``m`` (8, H, W) into (len(names), H, W)."""
    if m.shape[0] != 8:
        raise ValueError(f"expected the 8 M bands first, got shape {m.shape}")
    out = [np.clip(INDICES[name](m.astype(np.float64)), -CLIP, CLIP) for name in names]
    return np.stack(out).astype(np.float32) if out else np.zeros((0, *m.shape[1:]), np.float32)
