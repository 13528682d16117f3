"""Where generation draws z from: a Gaussian mixture fit to the training encodings, sampled given the condition.

A VAE trained with a sharp likelihood encodes each signal into a narrow posterior, and the union of those
posteriors (the aggregate posterior) fills N(0, I) unevenly: decoding draws from N(0, I) lands in its holes and
gives blurred, unrealistic signals while reconstructions stay sharp. Fitting a density to the encodings after
training and sampling from it instead is "ex-post density estimation" (Ghosh et al., ICLR 2020). Here the mixture
is fit to (z, condition) jointly, so z is drawn from p(z | condition): the latent code keeps whatever it learned
to carry about the condition consistent with the requested one.

The mixture is exported with the model: it records how many subjects' encodings each component was fit to (each
encoding counted for the component most responsible for it), and with a floor (`model.posterior_mixture_min_subjects`)
no component describes fewer people than that.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.special import logsumexp

FILE = "latent_prior.npz"


def fit_latent_prior(z: np.ndarray, cond: np.ndarray, subjects: np.ndarray, components: int, seed: int,
                     min_subjects: int = 0) -> dict[str, np.ndarray] | None:
    """Full-covariance Gaussian mixture over [z, cond] (cond standardized like the model's input), `subjects` the
    subject id of each row, at most one component per 10 rows. With `min_subjects` > 0 also at most one component
    per `min_subjects` subjects, and a fit with a component of fewer subjects is repeated with fewer components (as
    many as met the floor, at least three quarters as many as before); None when the rows come from fewer than
    `min_subjects` subjects."""
    from sklearn.mixture import GaussianMixture

    people = len(np.unique(subjects))
    if people < min_subjects:
        return None
    joint = np.hstack([z, cond]).astype(np.float64)
    k = max(1, min(components, len(joint) // 10, people // min_subjects if min_subjects else components))
    while True:
        gmm = GaussianMixture(k, covariance_type="full", reg_covar=1e-4, max_iter=200, random_state=seed).fit(joint)
        owner = gmm.predict(joint)
        counts = np.array([len(np.unique(subjects[owner == j])) for j in range(k)])
        if counts.min() >= min_subjects or k == 1:
            break
        k = max(1, min(k - 1, max(int((counts >= min_subjects).sum()), k * 3 // 4)))
    return {"weights": gmm.weights_, "means": gmm.means_, "covariances": gmm.covariances_,
            "latent_dim": np.array(z.shape[1]), "rows": np.array(len(joint)), "subjects": counts,
            "all_subjects": np.array(people)}


class LatentPrior:
    """Samples z given standardized conditions from the fitted joint mixture (Gaussian conditioning per component)."""

    def __init__(self, params: dict[str, np.ndarray]):
        L = int(params["latent_dim"])
        means, cov = params["means"], params["covariances"]
        k, d = means.shape
        if not (0 < L < d and params["weights"].shape == (k,) and cov.shape == (k, d, d)
                and all(np.isfinite(params[key]).all() for key in ("weights", "means", "covariances"))):
            raise ValueError("mixture parameters of inconsistent shapes or not finite")
        subjects = params.get("subjects")   # absent in mixtures exported before the floor
        if subjects is not None and not (subjects.shape == (k,) and subjects.dtype.kind in "iu"):
            raise ValueError("its per-component subject counts do not match its components")
        self.subjects = subjects
        self.components = len(means)
        self.log_weights = np.log(params["weights"])
        self.mean_z, self.mean_c = means[:, :L], means[:, L:]
        s_zc, s_cc = cov[:, :L, L:], cov[:, L:, L:]
        self.cc_inv = np.linalg.inv(s_cc)
        self.cc_logdet = np.linalg.slogdet(s_cc)[1]
        self.gain = s_zc @ self.cc_inv                                   # [k, L, C]
        cond_cov = cov[:, :L, :L] - self.gain @ np.swapaxes(s_zc, 1, 2)  # Szz - Szc Scc^-1 Scz
        self.chol = np.linalg.cholesky(cond_cov + 1e-9 * np.eye(L))

    @classmethod
    def load(cls, model_dir: Path) -> "LatentPrior | None":
        path = Path(model_dir) / FILE
        if not path.is_file():
            return None
        with np.load(path) as npz:
            return cls(dict(npz))

    def sample(self, cond: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One z per row of `cond` [n, C]: a component by its responsibility for the condition, then z from that
        component's Gaussian conditioned on it."""
        diff = cond[:, None, :] - self.mean_c[None]                                  # [n, k, C]
        maha = np.einsum("nki,kij,nkj->nk", diff, self.cc_inv, diff)
        logp = self.log_weights[None] - 0.5 * (maha + self.cc_logdet[None])
        p = np.exp(logp - logsumexp(logp, axis=1, keepdims=True))
        pick = (p.cumsum(axis=1) < rng.random((len(cond), 1))).sum(axis=1).clip(max=self.components - 1)
        rows = np.arange(len(cond))
        mean = self.mean_z[pick] + np.einsum("nlc,nc->nl", self.gain[pick], diff[rows, pick])
        eps = rng.standard_normal(mean.shape)
        return (mean + np.einsum("nlm,nm->nl", self.chol[pick], eps)).astype(np.float32)
