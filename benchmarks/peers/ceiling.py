"""How far bandit feedback can go on llmrouter-9 if the router knew each prompt's task (an oracle feature).

    LITELLM_LOCAL_MODEL_COST_MAP=True HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/peers/ceiling.py \
        [--dials 0,0.03,0.06,0.1,0.2] [--policy linucb] ['--settings {json}']

The prompt vector is replaced by other features: a one-hot of the prompt's task label (14 tasks; the label comes
from the data set, which a deployed router does not have), alone or beside the MiniLM vector (as is, or scaled by
0.3 so the task dominates the ridge fit), and, from prompt text only: a one-hot of the prompt's k-means cluster
(20 centres fitted in advance on the MiniLM vectors of all prompts, or of the train split's), and 16 principal
components of the MiniLM vectors beside 13 surface features of the text (`surface`), and 0.3 x MiniLM beside a
one-hot of the prompt's k-means cluster (14, 32 or 64 centres fitted on all prompts) of character 2-4-gram TF-IDF
vectors reduced to 64 dimensions (`char_codes`: the surface form of the request, which tells templates apart).
Each variant runs our Router with bandit feedback over compare.py's streams (seeds 0-2), and the
full-information ridge router on the same features gives the ceiling with every model's score. Prints each
variant's dials and its per-seed frontier at the 44% target (the mean over seeds), as variants.py does.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA, TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import adjusted_rand_score
from sklearn.preprocessing import normalize

from compare import DEFAULT_ENCODER, Curve, SweepSpec, at_cost, load_table, sweep_curve, vectors_of  # noqa: I001
from bandit_router.evaluation.references import full_info_ridge_run

TARGET = 44


def surface(prompt: str) -> list[float]:
    """Generic shape-of-the-request features: length, lines, digits, capitals, symbols, question mark, lower-case
    start, LaTeX, code, long comma lists, "Q:" and "\\boxed" prompts, "Write a function"."""
    n = max(len(prompt), 1)
    return [np.log1p(len(prompt)), prompt.count("\n") / (1 + n / 80), sum(c.isdigit() for c in prompt) / n,
            sum(c.isupper() for c in prompt) / n, sum(not (c.isalnum() or c.isspace()) for c in prompt) / n,
            float(prompt.strip().endswith("?")), float(prompt[:1].islower()), float("$" in prompt),
            float("def " in prompt or "return" in prompt), float(prompt.count(",") > 8),
            float(prompt.startswith("Q:")), float("\\boxed" in prompt), float("Write a function" in prompt)]


def char_codes(prompts: list[str], centres: int) -> np.ndarray:
    """Each prompt's k-means cluster (one-hot) of its character 2-4-gram TF-IDF vector, reduced to 64 dimensions."""
    tfidf = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), min_df=5, sublinear_tf=True, lowercase=False)
    reduced = normalize(TruncatedSVD(64, random_state=0).fit_transform(tfidf.fit_transform(prompts)))
    return np.eye(centres)[KMeans(centres, n_init=4, random_state=0).fit_predict(reduced)]


def report(curve: Curve, dials: list[float]) -> None:
    """The curve's mean point per dial and the mean over seeds of each seed's frontier at TARGET % cost."""
    points = "  ".join(f"w{d:g}:{s.mean():.3f}@{c.mean():.0f}%" for d, s, c in zip(dials, curve.score, curve.cost))
    print(f"{curve.label} | {points} | frontier at {TARGET}%: {at_cost(curve, TARGET).mean():.3f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dials", default="0,0.03,0.06,0.1,0.2")
    parser.add_argument("--policy", default="linucb")
    parser.add_argument("--settings", default="{}")
    args = parser.parse_args()
    dials = [float(d) for d in args.dials.split(",")]
    seeds = [0, 1, 2]
    table = load_table("/work/shared/data/llmrouter-9")
    ref = table.costs[:, table.best].mean()
    tasks = sorted(set(table.tasks))
    onehot = np.eye(len(tasks))[[tasks.index(t) for t in table.tasks]]
    minilm = vectors_of(table)
    clusters = KMeans(20, n_init=4, random_state=0).fit_predict(minilm)
    train = np.array([split == "train" for split in table.splits])
    train_clusters = KMeans(20, n_init=4, random_state=0).fit(minilm[train]).predict(minilm)
    for name, labels in (("all prompts", clusters), ("train split", train_clusters)):
        print(f"k-means-20 on {name}: adjusted Rand index against the task labels "
              f"{adjusted_rand_score(table.tasks, labels):.2f}")
    shape = np.array([surface(p) for p in table.prompts])
    shape = 0.1 * (shape - shape.mean(axis=0)) / (shape.std(axis=0) + 1e-9)
    pca = PCA(16, random_state=0).fit_transform(minilm)
    features = {"MiniLM (the default)": minilm, "task one-hot": onehot,
                "MiniLM + task one-hot": np.hstack([minilm, onehot]),
                "0.3 MiniLM + task one-hot": np.hstack([0.3 * minilm, onehot]),
                "k-means-20 one-hot (prompt text only)": np.eye(20)[clusters],
                "0.3 MiniLM + k-means-20 one-hot fitted on the train split": np.hstack([0.3 * minilm,
                                                                                       np.eye(20)[train_clusters]]),
                "16 PCA components + surface features": np.hstack([0.1 * pca / pca.std(), shape])}
    for centres in (14, 32, 64):
        codes = char_codes(table.prompts, centres)
        print(f"character n-gram k-means-{centres}: adjusted Rand index against the task labels "
              f"{adjusted_rand_score(table.tasks, codes.argmax(axis=1)):.2f}")
        features[f"0.3 MiniLM + character n-gram k-means-{centres} one-hot"] = np.hstack([0.3 * minilm, codes])
    sweep = SweepSpec([args.policy], [], [], {args.policy: json.loads(args.settings)})
    for name, vectors in features.items():
        report(sweep_curve(table, vectors, f"{name}, {args.policy} {args.settings}, bandit feedback", sweep, dials,
                           seeds, ref, encoder_name=f"{DEFAULT_ENCODER}+{name}"), dials)
        full = [[full_info_ridge_run(table, vectors, d, s) for s in seeds] for d in dials]
        report(Curve(f"{name}, full-information ridge", [], np.array([[r.mean_score for r in row] for row in full]),
                     np.array([[r.mean_cost for r in row] for row in full]) / ref * 100), dials)


if __name__ == "__main__":
    main()
