#!/usr/bin/env python3
"""Goldens for the study statistics (benchmarks/study_stats.*) and the prediction metrics
(src/metrics/calibration.*), computed by SciPy and NumPy on fixed inputs and committed as JSON.

    /usr/bin/python3 tests/reference/study_goldens/generate_study_goldens.py   # Debian: python3-scipy

Writes stats.json and calibration.json beside this script. The C++ tests (tests/cpu/test_study_stats.cpp)
compare within 1e-6 (absolute, or relative for large values). Floats are written with repr (round trip).
"""
import json
import pathlib

import numpy as np
import scipy
from scipy import stats

HERE = pathlib.Path(__file__).resolve().parent


def f(x):
    x = float(x)
    return None if not np.isfinite(x) else x


def stats_goldens():
    out = {"scipy": scipy.__version__, "numpy": np.__version__}
    out["incomplete_beta"] = [
        {"a": a, "b": b, "x": x, "value": f(scipy.special.betainc(a, b, x))}
        for a, b, x in [(0.5, 0.5, 0.3), (2, 0.5, 0.9), (2.5, 0.5, 0.1), (10, 0.5, 0.99), (1, 1, 0.42),
                        (30, 0.5, 0.5), (0.5, 7, 0.02), (50, 50, 0.5), (3.3, 4.4, 0.7)]]
    out["t_cdf"] = [{"t": t, "df": df, "value": f(stats.t.cdf(t, df))}
                    for t, df in [(0.5, 1), (-2.0, 3), (2.776, 4), (1.0, 9), (-0.1, 29), (12.0, 2), (3.5, 100)]]
    out["t_quantile"] = [{"p": p, "df": df, "value": f(stats.t.ppf(p, df))}
                         for p, df in [(0.975, 1), (0.975, 2), (0.975, 4), (0.975, 9), (0.995, 4), (0.9, 14),
                                       (0.025, 4), (0.6, 30)]]
    rng = np.random.default_rng(13)
    samples = [[0.6780, 0.6923, 0.6721], [0.51, 0.52, 0.515, 0.50, 0.525],
               list(np.round(rng.normal(0.6, 0.01, 10), 4)), [1.0, 2.0]]
    out["describe"] = []
    for v in samples:
        v = np.asarray(v, dtype=float)
        lo, hi = stats.t.interval(0.95, len(v) - 1, loc=v.mean(), scale=stats.sem(v))
        out["describe"].append({"values": v.tolist(), "mean": f(v.mean()), "std": f(v.std(ddof=1)),
                                "ci_low": f(lo), "ci_high": f(hi)})
    diffs = [[0.012, 0.020, -0.004, 0.015, 0.009],                 # 5 seeds, no ties: exact Wilcoxon
             [0.01, 0.02, 0.03, 0.04, 0.05],                       # all positive: smallest exact p for n = 5
             [0.003, -0.002, 0.001, 0.004, -0.005, 0.006, 0.007],
             list(np.round(rng.normal(0.005, 0.01, 30), 4)),       # n = 30: normal approximation
             [0.01, -0.01, 0.02, 0.02, 0.0, 0.03, -0.02, 0.01],    # ties and a zero: exact, conditional
             [25, 25, 31, -12, 25],                                # accuracy differences in images, tied
             [7, 7, 7],                                            # all tied, one sign: the floor 2 / 2^3
             [4, -4, 4, -4],                                       # tied, balanced: p = 1
             [10, 10, -3, 10],                                     # n = 4, tied
             [12, 12, 5, -5, 12, 30],                              # n = 6, two tie groups
             list(rng.integers(-40, 60, 26))]                      # n = 26 integers with ties: normal approx.
    out["paired"] = []
    for d in diffs:
        d = np.asarray(d, dtype=float)
        t = stats.ttest_1samp(d, 0.0)
        nz = d[d != 0]
        ties = len(np.unique(np.abs(nz))) != len(nz)
        exact = len(nz) <= 25
        r = stats.rankdata(np.abs(nz))
        if not exact:
            w = stats.wilcoxon(d, zero_method="wilcox", correction=False, method="approx").pvalue
        elif not ties:
            w = stats.wilcoxon(d, zero_method="wilcox", correction=False, method="exact").pvalue
        else:
            # SciPy's exact Wilcoxon refuses ties; the sign-flip permutation test of W+ (every one of the 2^n
            # sign patterns of the mid-ranks) is the exact conditional test.
            ranks = r
            w = stats.permutation_test((nz,), lambda x: np.sum(ranks[x > 0]), permutation_type="samples",
                                       n_resamples=np.inf, alternative="two-sided").pvalue
        lo, hi = stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=stats.sem(d))
        if d.std() == 0:  # every difference equal: no t-test (dropnet's contract; SciPy says t = inf), and
            lo = hi = d.mean()  # the interval is the mean itself (SciPy: NaN)
            t_stat = p_t = None
        else:
            t_stat, p_t = f(t.statistic), f(t.pvalue)
        out["paired"].append({"d": d.tolist(), "mean": f(d.mean()), "ci_low": None if lo is None else f(lo), "ci_high": None if hi is None else f(hi),
                              "t": t_stat, "p_t": p_t, "w_plus": f(r[nz > 0].sum()),
                              "p_wilcoxon": f(w), "wilcoxon_exact": bool(exact),
                              "smallest_p": f(min(1.0, 2.0 / 2 ** len(nz))) if exact else None})
    from statsmodels.stats.multitest import multipletests
    import statsmodels
    out["statsmodels"] = statsmodels.__version__
    out["holm"] = []
    for p in [[0.01, 0.04, 0.03, 0.005], [0.2, 0.01], [0.5], [0.03, 0.03, 0.02, 0.9, 0.04], [0.0022, 0.018]]:
        out["holm"].append({"p": p, "adjusted": multipletests(p, method="holm")[1].tolist()})
    return out


def entropy(p):
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.sum(np.where(p > 0, p * np.log(p), 0.0), axis=-1)


def calibration_goldens():
    rng = np.random.default_rng(2024)
    out = {"numpy": np.__version__, "scipy": scipy.__version__, "cases": []}
    for name, n, k, t, temp in [("small", 12, 3, 4, 1.0), ("cifar_like", 200, 10, 6, 0.5), ("sharp", 100, 10, 5, 0.1)]:
        logits = rng.normal(size=(t, n, k)) / temp + rng.normal(size=(1, n, k)) * 2
        passes = np.exp(logits - logits.max(-1, keepdims=True))
        passes /= passes.sum(-1, keepdims=True)
        passes = np.round(passes, 6)                                  # exact in the JSON text
        passes /= passes.sum(-1, keepdims=True)
        labels = rng.integers(0, k, n)
        # Make about half the records right, so that AUROC has both classes.
        right = rng.random(n) < 0.5
        labels = np.where(right, passes.mean(0).argmax(-1), labels)
        p = passes.mean(0)
        conf, pred = p.max(-1), p.argmax(-1)
        correct = (pred == labels).astype(float)
        bins = 15
        idx = np.minimum(np.floor(conf * bins).astype(int), bins - 1)
        ece = sum(np.sum(idx == b) / n * abs(correct[idx == b].mean() - conf[idx == b].mean())
                  for b in range(bins) if np.any(idx == b))
        onehot = np.eye(k)[labels]
        h = entropy(p)
        mi = h - entropy(passes).mean(0)
        wrong = 1.0 - correct
        u = stats.mannwhitneyu(h[wrong == 1], h[wrong == 0], alternative="two-sided").statistic
        auroc = u / (wrong.sum() * (n - wrong.sum()))
        out["cases"].append({
            "name": name, "n": n, "k": k, "passes": passes.reshape(t, -1).tolist(), "labels": labels.tolist(),
            "accuracy": f(correct.mean()), "nll": f(-np.mean(np.log(np.maximum(p[np.arange(n), labels], 1e-12)))),
            "brier": f(np.mean(np.sum((p - onehot) ** 2, -1))), "ece": f(ece),
            "mean_entropy": f(h.mean()), "mean_mutual_information": f(mi.mean()), "auroc_entropy": f(auroc),
            "single_pass": {"accuracy": f((passes[0].argmax(-1) == labels).mean()),
                            "nll": f(-np.mean(np.log(np.maximum(passes[0][np.arange(n), labels], 1e-12)))),
                            "mean_entropy": f(entropy(passes[0]).mean())}})
    # ECE on bin edges: confidences exactly b / 15 (as float64) and 1.0, where the conventions part. dropnet:
    # [lo, hi) with 1.0 in the last bin (np.digitize against the inner edges); Guo et al. 2017: (lo, hi];
    # torchmetrics: 1.0 in a bin of its own beyond the last. Labels make the bins' accuracies differ.
    bins, k = 15, 10
    confs = [3 / 15, 4 / 15, 6 / 15, 9 / 15, 12 / 15, 1.0, 1.0, 0.55, 0.9, 0.13, 10 / 15, 0.7, 0.95]
    wrong = {0, 3, 5, 6, 9}
    rows, labels = [], []
    for i, c in enumerate(confs):
        row = np.full(k, (1.0 - c) / (k - 1))
        row[i % k] = c
        rows.append(row)
        labels.append((i + 1) % k if i in wrong else i % k)
    probs = np.array(rows)
    conf, pred = probs.max(-1), probs.argmax(-1)
    correct = (pred == np.array(labels)).astype(float)
    edges = np.arange(bins + 1) / bins
    def ece_of(idx, nb):
        return sum(np.sum(idx == b) / len(conf) * abs(correct[idx == b].mean() - conf[idx == b].mean())
                   for b in range(nb) if np.any(idx == b))
    ours = np.digitize(conf, edges[1:-1], right=False)                 # [lo, hi), 1.0 -> bin 14
    guo = np.maximum(np.digitize(conf, edges[1:-1], right=True), 0)    # (lo, hi], 0 -> bin 0
    torchm = np.where(conf == 1.0, bins, np.digitize(conf, edges[1:-1], right=False))
    out["ece_edges"] = {"k": k, "probs": probs.reshape(-1).tolist(), "labels": labels, "bins": ours.tolist(),
                        "ece": f(ece_of(ours, bins)), "ece_guo": f(ece_of(guo, bins)),
                        "ece_torchmetrics_style": f(ece_of(torchm, bins + 1))}
    # AUROC with ties (scores rounded), against the Mann-Whitney U statistic.
    s = np.round(rng.normal(size=50), 1)
    y = rng.random(50) < 0.3
    u = stats.mannwhitneyu(s[y], s[~y], alternative="two-sided").statistic
    out["auroc_ties"] = {"score": s.tolist(), "positive": y.tolist(), "value": f(u / (y.sum() * (~y).sum()))}
    return out


if __name__ == "__main__":
    (HERE / "stats.json").write_text(json.dumps(stats_goldens(), indent=1) + "\n")
    (HERE / "calibration.json").write_text(json.dumps(calibration_goldens()) + "\n")
    print("wrote", HERE / "stats.json", HERE / "calibration.json")
