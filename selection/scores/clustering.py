"""Scores that fit class or cluster structure to target features: N-LEEP (Li et al.) and
SFDA (Shao et al.), both as TencentARC/SFDA ``metrics.py``."""
from __future__ import annotations

import math
import numbers

import numpy as np
from scipy import linalg, sparse
from scipy.special import logsumexp, softmax
from sklearn.cluster import KMeans

from selection.scores.reference_mode import check_as_reference, reference_value
from selection.scores.registry import class_sums, finite_score, register, validate

# --------------------------------------------------------------------------- N-LEEP

NLEEP_PCA_VARIANCE = 0.8    # PCA(n_components=0.8)
GMM_REG_COVAR = 1e-6        # sklearn GaussianMixture defaults
GMM_TOL = 1e-3
GMM_MAX_ITER = 100
_LOG_2PI = math.log(2.0 * math.pi)
_GMM_FAILED = ("nleep: a GMM component has an ill-defined covariance (collapsed samples); "
               "as sklearn GaussianMixture, the fit fails")


def _pca_variance(f: np.ndarray, fraction: float) -> np.ndarray:
    """Scores on the fewest principal axes explaining more than ``fraction`` of the variance,
    as sklearn ``PCA(n_components=fraction)`` (exact solver; axes up to sign), from the
    eigendecomposition of the smaller of Xc^T Xc and Xc Xc^T."""
    xc = f - f.mean(axis=0, keepdims=True)
    n, d = xc.shape
    gram = xc.T @ xc if d <= n else xc @ xc.T
    vals, vecs = linalg.eigh(gram, driver="evr", check_finite=False)
    vals, vecs = np.clip(vals[::-1], 0.0, None), vecs[:, ::-1]
    total = vals.sum()
    if not total > 0:
        raise ValueError("nleep: features have zero variance; PCA undefined")
    k = int(np.searchsorted(np.cumsum(vals / total), fraction, side="right")) + 1
    k = min(k, vals.shape[0])
    if d <= n:
        return xc @ vecs[:, :k]
    return vecs[:, :k] * np.sqrt(vals[:k])


def _kmeans_plusplus_from_gram(gram: np.ndarray, sq: np.ndarray):
    """sklearn's ``_kmeans_plusplus`` (greedy, 2 + int(log K) local trials, the same draws
    from ``random_state``) as a KMeans ``init`` callable, with squared distances
    ||x_i||^2 + ||x_j||^2 - 2 <x_i, x_j> read from the Gram matrix instead of recomputed
    in feature space (O(N) per candidate instead of O(N k))."""
    def init(x, n_clusters, random_state):
        n = x.shape[0]
        n_trials = 2 + int(np.log(n_clusters))
        weight = np.ones(n)
        indices = np.empty(n_clusters, dtype=np.intp)
        indices[0] = random_state.choice(n, p=weight / weight.sum())
        closest = np.maximum(sq[indices[0]] - 2.0 * gram[indices[0]] + sq, 0.0)
        potential = closest @ weight
        for c in range(1, n_clusters):
            rand_vals = random_state.uniform(size=n_trials) * potential
            candidates = np.searchsorted(np.cumsum(weight * closest), rand_vals)
            np.clip(candidates, None, n - 1, out=candidates)
            dist = np.maximum(sq[candidates, None] - 2.0 * gram[candidates] + sq[None, :], 0.0)
            np.minimum(closest, dist, out=dist)
            pots = dist @ weight
            best = int(np.argmin(pots))
            potential, closest = pots[best], dist[best]
            indices[c] = candidates[best]
        return x[indices]
    return init


class _GramGMM:
    """sklearn ``GaussianMixture`` (full covariances, reg_covar 1e-6, tol 1e-3, max_iter 100,
    k-means init, one init) on the rows of Z, run through the Gram matrix G = Z Z^T.

    A component's covariance is D^T D + reg I with D = sqrt(r_ij / n_j) (z_i - mu_j) over the
    m samples with non-zero responsibility (zero ones add nothing). When m < k (the usual
    case: few samples per component in many PCA dims) the Mahalanobis terms and
    log-determinant come from the m x m matrix reg I + D D^T (Woodbury, determinant lemma)
    whose entries are Gram-matrix entries (components with equal m batched); otherwise from
    the k x k covariance as sklearn. Same iterations and result as sklearn, up to rounding.
    A component whose m x m Cholesky fails goes through the k x k path too (large features:
    Gram entries ~|z|^2 round off more than reg_covar), and only a failure there, where sklearn
    fails as well, is "collapsed samples".
    """

    def __init__(self, z: np.ndarray, gram: np.ndarray):
        self.z, self.gram = z, gram
        self.sq = np.diag(gram).copy()
        self.n, self.k = z.shape

    def m_step(self, resp: np.ndarray, initial: bool) -> None:
        n, k = self.n, self.k
        n_comp = resp.shape[1]
        nk = resp.sum(axis=0) + 10 * np.finfo(np.float64).eps
        self.weights = nk / (n if initial else nk.sum())
        a = sparse.csc_array(resp / nk)                   # non-zero weights r_ij / n_j per column
        if a.nnz < 2 * n_comp * k:                         # means as sparse combinations of rows
            self.zmu = np.asarray((a.T @ self.gram).T)               # <z_i, mu_j>   (N, K)
            self.musq = np.asarray(a.multiply(self.zmu).sum(axis=0)).ravel()
            self.means = None
        else:
            self.means = np.asarray(a.T @ self.z)
            self.zmu = self.z @ self.means.T
            self.musq = np.einsum("jk,jk->j", self.means, self.means)
        sizes = np.diff(a.indptr)
        self.log_det = np.empty(n_comp)
        self.groups, self.full = [], []
        fallback = []
        # Woodbury components, batched by their number m of non-zero rows
        for m in np.unique(sizes[sizes < k]):
            comps = np.flatnonzero(sizes == m)
            if m == 0:                                     # no mass: mean 0, covariance reg I
                self.log_det[comps] = k * math.log(GMM_REG_COVAR)
                continue
            pos = a.indptr[comps][:, None] + np.arange(m)
            rows, w = a.indices[pos], np.sqrt(a.data[pos])                  # (g, m)
            zm = self.zmu[rows, comps[:, None]]
            inner = self.gram[rows[:, :, None], rows[:, None, :]] - zm[:, :, None] - zm[:, None, :]
            inner += self.musq[comps][:, None, None]                         # (z_r - mu).(z_s - mu)
            small = w[:, :, None] * inner * w[:, None, :]
            small[:, np.arange(m), np.arange(m)] += GMM_REG_COVAR            # reg I + D D^T
            try:
                chol = np.linalg.cholesky(small)
            except np.linalg.LinAlgError:        # rounding of large Gram entries: sklearn's k x k path
                fallback.extend(comps)
                continue
            self.log_det[comps] = (2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
                                   + (k - m) * math.log(GMM_REG_COVAR))
            # u^T (reg I + D D^T)^-1 u = ||L^-1 u||^2 with u = diag(w) (raw inner products)
            self.groups.append((comps, rows, w[:, :, None] * np.linalg.inv(chol).transpose(0, 2, 1)))
        for j in [*np.flatnonzero(sizes >= k), *fallback]:  # as sklearn: k x k covariance
            mu = self.means[j] if self.means is not None else np.asarray(a[:, [j]].T @ self.z).ravel()
            diff = self.z - mu
            cov = (a[:, [j]].toarray().ravel() * diff.T) @ diff
            cov.flat[:: k + 1] += GMM_REG_COVAR
            try:
                chol = linalg.cholesky(cov, lower=True, check_finite=False)
            except linalg.LinAlgError:
                raise ValueError(_GMM_FAILED) from None
            self.log_det[j] = 2.0 * np.log(np.diag(chol)).sum()
            self.full.append((j, mu, chol))

    def e_step(self) -> tuple[float, np.ndarray]:
        n = self.n
        # ||z_i - mu_j||^2; Woodbury: maha = (||v||^2 - u^T (reg I + D D^T)^-1 u) / reg
        dist2 = self.sq[:, None] - 2.0 * self.zmu + self.musq
        maha = dist2 / GMM_REG_COVAR
        for comps, rows, maps in self.groups:
            g, m = rows.shape
            cross = self.gram[:, rows.ravel()].reshape(n, g, m) - self.zmu[:, comps][:, :, None]
            cross -= self.zmu[rows, comps[:, None]] - self.musq[comps][:, None]
            proj = np.einsum("ngp,gpq->ngq", cross, maps)
            quad = np.einsum("ngq,ngq->ng", proj, proj)
            maha[:, comps] = np.maximum(dist2[:, comps] - quad, 0.0) / GMM_REG_COVAR
        for j, mu, chol in self.full:
            proj = linalg.solve_triangular(chol, (self.z - mu).T, lower=True, check_finite=False)
            maha[:, j] = np.einsum("ij,ij->j", proj, proj)
        weighted = -0.5 * (self.k * _LOG_2PI + maha + self.log_det) + np.log(self.weights)
        log_norm = logsumexp(weighted, axis=1)
        with np.errstate(under="ignore"):
            log_resp = weighted - log_norm[:, None]
        return float(np.mean(log_norm)), log_resp

    def fit_predict_proba(self, labels0: np.ndarray, n_components: int) -> np.ndarray:
        resp = np.zeros((self.n, n_components))
        resp[np.arange(self.n), labels0] = 1.0
        self.m_step(resp, initial=True)
        lower_bound = -np.inf
        for _ in range(GMM_MAX_ITER):
            previous = lower_bound
            lower_bound, log_resp = self.e_step()
            self.m_step(np.exp(log_resp), initial=False)
            if abs(lower_bound - previous) < GMM_TOL:
                break
        return np.exp(self.e_step()[1])


def _check_int(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}; got {value!r}")
    return int(value)


@register("nleep")
def nleep(*, features, labels, seed=0, component_ratio=5, log=False, as_reference=False) -> float:
    """N-LEEP (Li et al. 2021); follows TencentARC/SFDA ``metrics.py`` ``NLEEP``.

    PCA keeping 80% of the variance (sklearn ``PCA(0.8)``: the fewest axes whose cumulative
    explained-variance ratio exceeds 0.8), a Gaussian mixture with ``component_ratio`` * C
    components fitted as sklearn ``GaussianMixture`` (full covariances, k-means init) with
    ``random_state=seed`` (the reference leaves it unseeded), and LEEP on its posteriors
    p(v | x_i): P(y, v) = (1/N) sum_{i: y_i = y} p(v | x_i), P(y | v) = P(y, v) / P(v),
    N-LEEP = (1/N) sum_i sum_v P(y_i | v) p(v | x_i). As the reference this averages the
    expected empirical prediction without the log of Li et al.'s LEEP form (so it lies in
    (0, 1]); components with no posterior mass get P(y | v) = 0 (the reference: NaN).
    The GMM runs on the PCA Gram matrix with low-rank covariance algebra (``_GramGMM``)
    and the k-means++ seeding reads that Gram matrix: the same fit, far fewer flops.
    Needs N >= component_ratio * C samples, as GaussianMixture does. Large features (e.g. |x| ~ 3e4)
    no longer fail as "collapsed samples" where GaussianMixture fits them (k x k fallback).
    features (N, D), labels (N,); returns a mean probability in (0, 1], higher = better.
    ``log=True``: the LEEP form in which Li et al. 2021 (CVPR) define N-LEEP, the mean *log*
    expected empirical prediction (<= 0; as google-research
    ``stable_transfer/transferability/nleep.py``, commit 8d8a4f1, which feeds the GMM
    posteriors to its LEEP).

    ``as_reference=True``: the value of TencentARC/SFDA ``NLEEP`` (commit 3b7edf7) with its
    unseeded mixture seeded: sklearn ``PCA(n_components=0.8)`` and ``GaussianMixture(
    n_components, random_state=seed)`` themselves (the reference's global-state draws after
    ``np.random.seed(seed)`` are the same), no log unless ``log=True``, and NaN when a
    component has no posterior mass (0 / 0 there). Raises ValueError for N < component_ratio * C,
    a GMM fit that fails (collapsed samples) or bad inputs.
    """
    exact = check_as_reference(as_reference)
    seed = _check_int(seed, "seed", 0)
    ratio = _check_int(component_ratio, "component_ratio", 1)
    checked = validate(features=features, labels=labels)
    y, n_classes = checked.labels, checked.n_classes
    n = y.shape[0]
    n_components = ratio * n_classes
    if n < n_components:
        raise ValueError(f"nleep needs at least component_ratio * n_classes = {n_components} "
                         f"samples for its Gaussian mixture; got {n}")
    if not isinstance(log, (bool, np.bool_)):
        raise ValueError(f"log must be true or false; got {log!r}")
    if exact:
        return _nleep_sfda(checked.features, y, n_classes, n_components, seed, bool(log))
    z = _pca_variance(checked.features, NLEEP_PCA_VARIANCE)
    gram = z @ z.T
    gmm = _GramGMM(z, gram)
    kmeans = KMeans(n_clusters=n_components, n_init=1, init=_kmeans_plusplus_from_gram(gram, gmm.sq),
                    random_state=np.random.RandomState(seed)).fit(z)
    prob = gmm.fit_predict_proba(kmeans.labels_, n_components)

    joint = class_sums(prob, y, n_classes) / n                       # P(y, v)
    marginal = joint.sum(axis=0)
    cond = np.divide(joint, marginal, out=np.zeros_like(joint), where=marginal > 0)
    eep = np.einsum("iv,iv->i", prob, cond[y])
    return finite_score(np.mean(np.log(eep) if log else eep), "nleep")


def _nleep_sfda(f: np.ndarray, y: np.ndarray, n_classes: int, n_components: int, seed: int,
                log: bool) -> float:
    """TencentARC/SFDA ``NLEEP`` run on sklearn's own PCA and GaussianMixture (see ``nleep``)."""
    from sklearn.decomposition import PCA
    from sklearn.mixture import GaussianMixture

    z = PCA(n_components=NLEEP_PCA_VARIANCE).fit(f).transform(f)
    try:
        prob = GaussianMixture(n_components=n_components, random_state=seed).fit(z).predict_proba(z)
    except ValueError as err:
        raise ValueError(f"nleep: {err}") from None
    joint = class_sums(prob, y, n_classes) / y.shape[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        cond = joint / joint.sum(axis=0)
        eep = np.einsum("iv,iv->i", prob, cond[y])
        return reference_value(np.mean(np.log(eep) if log else eep))


# --------------------------------------------------------------------------- SFDA

def _power_top_eigenvalue(matvec, d: int, iterations: int = 3) -> float:
    """SFDA ``utils.iterative_A``: 3 rounds of two power steps from x = A 1, then x^T A y;
    ``matvec(v)`` = A v for the (d, d) matrix A."""
    x = matvec(np.ones(d))
    for _ in range(iterations):
        t = matvec(x)
        yv = t / np.linalg.norm(t)
        t = matvec(yv)
        x = t / np.linalg.norm(t)
    return float(x @ matvec(yv))


def _sfda_probs(x: np.ndarray, y: np.ndarray, n_classes: int, shrinkage: float | None):
    """SFDA().fit(X, y).predict_proba(X) of the reference, and the shrinkage it used.

    Sw = sum_c prior_c cov_c (population covariances), shrinkage (if not given)
    max(exp(-5 lambda), 1e-10) with lambda SFDA's 3-step power estimate of Sw's top
    eigenvalue, Sw_s = (1 - s) Sw + s (trace(Sw)/D) I. The reference keeps all D
    generalised eigenvectors E of (Sb, Sw_s), normalised E^T Sw_s E = I, so
    coef = means E E^T = means Sw_s^-1 whatever Sb is: one solve replaces eigh.
    Sw = Xw^T Xw / N with Xw the features less their class means: N >= D, one Cholesky
    solve with the D x D Sw_s; N < D (the usual probe set), Woodbury's identity
    Sw_s^-1 M = (M - Xw^T K^-1 Xw M) / r with r = s trace(Sw)/D, K = r N / (1 - s) I + Xw Xw^T
    (N x N), so nothing D x D is formed.
    Scores x coef^T - 1/2 diag(means coef^T) + log prior, softmax over classes.
    """
    n, d = x.shape
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    means = class_sums(x, y, n_classes) / counts[:, None]
    xw = x - means[y]
    mu = float(np.vdot(xw, xw)) / (n * d)                                         # trace(Sw) / D
    if not mu > 0:
        raise ValueError("sfda: within-class scatter is zero (features constant within every "
                         "class); the discriminant is undefined")
    sw = (xw.T @ xw) / n if d <= n else None
    if shrinkage is None:
        matvec = sw.__matmul__ if sw is not None else (lambda v: xw.T @ (xw @ v) / n)
        shrinkage = max(math.exp(-5.0 * _power_top_eigenvalue(matvec, d)), 1e-10)
    ridge = shrinkage * mu
    try:
        if sw is not None:
            sw *= 1.0 - shrinkage
            sw.flat[:: d + 1] += ridge
            coef = linalg.cho_solve(linalg.cho_factor(sw, lower=True, check_finite=False), means.T,
                                    check_finite=False).T                        # (C, D)
        elif shrinkage >= 1.0:
            coef = means / ridge
        else:
            k = xw @ xw.T
            k.flat[:: n + 1] += ridge * n / (1.0 - shrinkage)
            inner = linalg.cho_solve(linalg.cho_factor(k, lower=True, check_finite=False), xw @ means.T,
                                     check_finite=False)                         # (N, C)
            coef = (means - inner.T @ xw) / ridge
    except linalg.LinAlgError:
        raise ValueError("sfda: regularised within-class scatter is not positive definite") from None
    intercept = -0.5 * np.einsum("cd,cd->c", means, coef) + np.log(counts / n)
    return softmax(x @ coef.T + intercept, axis=1), shrinkage, means


@register("sfda")
def sfda(*, features, labels) -> float:
    """SFDA (Shao et al. 2022); follows TencentARC/SFDA ``metrics.py`` ``SFDA_Score``.

    1. Regularised Fisher discriminant (``_sfda_probs``) with the adaptive
       shrinkage s = max(exp(-5 lambda_max(Sw)), 1e-10) -> p(y | x_i).
    2. Soften: q_i = softmax(p(. | x_i)) (the reference applies softmax to probabilities).
    3. ConfMix: x_i <- q_i[y_i] x_i + (1 - q_i[y_i]) mean_{c != y_i} mu_c, mu_c the class
       means of the original features (the mean of the other classes' means).
    4. Refit with the same s on the mixed features; SFDA = (1/N) sum_i p'(y_i | x_i')
       (no log, as the reference).
    """
    checked = validate(features=features, labels=labels)
    x, y, n_classes = checked.features, checked.labels, checked.n_classes
    prob, shrinkage, means = _sfda_probs(x, y, n_classes, None)
    soft = softmax(prob, axis=1)[np.arange(y.shape[0]), y][:, None]
    others = (means.sum(axis=0) - means) / (n_classes - 1)
    mixed = soft * x + (1.0 - soft) * others[y]
    prob2, _, _ = _sfda_probs(mixed, y, n_classes, shrinkage)
    return finite_score(np.mean(prob2[np.arange(y.shape[0]), y]), "sfda")
