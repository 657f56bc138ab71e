"""Catalogue-scale probes on GENERATED data (timings and memory only; no quality claims on generated data).

Every part generates its data into ``--work`` (outside the repository), converts it with the product's own
converters and builds runs through the product's run path (``quick_start.build_run``):

  cascadingrank  one full test-evaluation pass of CascadingRank (``trainer.evaluate``) on a generated funnel
                 (view ⊇ cart ⊇ buy, power-law item popularity) of ``--users`` x ``--items``, or on a prepared
                 real dataset (``--dataset taobao-15k``); prints the metrics, so two code versions can be
                 compared (run it with PYTHONPATH set to each checkout).
  knn            the approximate kNN backend against the exact one on ``--items`` generated rows of ``--dim``
                 (clustered Gaussian): build times and recall@k of the approximate graph on a sample of rows.
  catalogue      ``--items`` x ``--users`` with ``--interactions`` (power-law popularity, ``--dim``-d features):
                 preprocessing (SVD, kNN, bands) time and peak memory, SSR (``--kind mm``) or SpectraMB
                 (``--kind mb``) training time over the first ``--batches`` batches ÷ LightGCN's (alternated,
                 one process), one full evaluation pass of ``--eval-users`` sampled users.

    nice -n 5 python benchmarks/scale.py cascadingrank --users 50000 --items 40000 --out benchmarks/results/scale_cascadingrank.md
    nice -n 5 python benchmarks/scale.py knn --items 100000 --out benchmarks/results/scale_knn.md
    nice -n 5 python benchmarks/scale.py catalogue --kind mm --items 1000000 --users 1000000 --out benchmarks/results/scale_catalogue.md
"""
import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from itertools import islice

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def popularity_draws(rng, n_items, size, exponent=1.0):
    """``size`` item ids in 1..n_items drawn with power-law popularity p(rank r) ∝ r^-exponent (ids shuffled)."""
    cdf = np.cumsum(np.arange(1, n_items + 1, dtype=np.float64) ** -exponent)
    ranks = np.searchsorted(cdf, rng.random(size) * cdf[-1])
    return rng.permutation(n_items)[np.minimum(ranks, n_items - 1)] + 1


def user_pairs(rng, n_users, n_items, per_user):
    """Distinct (user, item) pairs, about ``per_user`` per user (geometric counts), items by popularity."""
    counts = rng.geometric(1.0 / per_user, n_users)
    users = np.repeat(np.arange(1, n_users + 1), counts)
    pairs = np.unique(users.astype(np.int64) * (n_items + 1) + popularity_draws(rng, n_items, len(users)))
    return np.stack([pairs // (n_items + 1), pairs % (n_items + 1)], 1)


def generate_funnel(folder, n_users, n_items, views_per_user, seed=2020):
    """CRGCN layout in ``folder``: views; carts a 25 % sample of views, buys a 40 % sample of carts plus 2 % of
    views; test one pair per user (half a viewed item, half a popularity draw). Returns the row counts."""
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    view = user_pairs(rng, n_users, n_items, views_per_user)
    cart = view[rng.random(len(view)) < 0.25]
    buy = np.unique(np.concatenate([cart[rng.random(len(cart)) < 0.4], view[rng.random(len(view)) < 0.02]]), axis=0)
    first = np.unique(view[:, 0], return_index=True)[1]
    test = view[first].copy()
    fresh = rng.random(len(test)) < 0.5
    test[fresh, 1] = popularity_draws(rng, n_items, int(fresh.sum()))
    for name, rows in (("view", view), ("cart", cart), ("buy", buy), ("test", test)):
        np.savetxt(os.path.join(folder, f"{name}.txt"), rows, fmt="%d")
    with open(os.path.join(folder, "count.txt"), "w") as out:
        json.dump({"user": n_users, "item": n_items}, out)
    return {"view": len(view), "cart": len(cart), "buy": len(buy), "test": len(test)}


def clustered_rows(rng, n, dim, clusters=256):
    """n x dim float32 rows around ``clusters`` random centres (what an encoder's embeddings roughly look like)."""
    centres = rng.standard_normal((clusters, dim), dtype=np.float32)
    rows = centres[rng.integers(0, clusters, n)]
    rows += 0.7 * rng.standard_normal((n, dim), dtype=np.float32)
    return rows


def settings_for(args, data_dir):
    return {"state": "ERROR", "data_path": data_dir, "use_gpu": False, "show_progress": False, "seed": 2020,
            "checkpoint_dir": os.path.join(args.work, "saved"), "knn_cache_dir": os.path.join(args.work, "knn_cache")}


def part_cascadingrank(args):
    import torch

    from recbole_spectral.config import SpectralConfig
    from recbole_spectral.data.converters.crgcn import convert_crgcn
    from recbole_spectral.quick_start import build_run

    if args.dataset:
        data_dir, name, what = os.environ.get("RECBOLE_SPECTRAL_DATA", os.path.join(ROOT, "dataset_atomic")), args.dataset, "real"
    else:
        name = f"funnel-{args.users}x{args.items}"
        data_dir, raw = os.path.join(args.work, "data"), os.path.join(args.work, "raw", name)
        if not os.path.isdir(os.path.join(data_dir, name)):
            rows = generate_funnel(raw, args.users, args.items, args.views_per_user)
            convert_crgcn(raw, name, out=data_dir)
            print(f"generated {name}: {rows}", flush=True)
        what = "GENERATED"
    torch.set_num_threads(args.threads)
    config = SpectralConfig("CascadingRank", name, config_dict=settings_for(args, data_dir))
    dataset, (_, _, test_data), model, trainer = build_run(config)
    wall, cpu = time.perf_counter(), time.process_time()
    result = trainer.evaluate(test_data, load_best_model=False, show_progress=False)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    counts = {b: int(dataset.behavior_matrix(b).nnz) for b in dataset.behaviors}
    return [f"| {what} {name} ({dataset.user_num - 1:,} users × {dataset.item_num - 1:,} items; {counts}) | "
            f"{args.threads} | **{wall:.1f} s** | {cpu:.1f} s | {dict(result)} |"], \
        "| data | torch threads | one full test pass (wall) | CPU time | test metrics |"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["cascadingrank", "knn", "catalogue"])
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "recbole_spectral_scale"))
    parser.add_argument("--users", type=int, default=50000)
    parser.add_argument("--items", type=int, default=40000)
    parser.add_argument("--views-per-user", type=float, default=20.0)
    parser.add_argument("--dataset", default=None, help="cascadingrank: a prepared real dataset instead of generated data")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=None, help="append the result rows (markdown) to this file")
    args = parser.parse_args()
    args.work = os.path.abspath(args.work)
    if os.path.commonpath([args.work, ROOT]) == ROOT:
        sys.exit("error: --work must be outside the repository (generated and converted data are never committed)")
    load = os.getloadavg()[0]
    rows, header = globals()[f"part_{args.part}"](args)
    import recbole_spectral

    lines = [f"\n`{' '.join(['python benchmarks/scale.py'] + sys.argv[1:])}` — code {os.path.dirname(recbole_spectral.__file__)}, "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.machine()} with {os.cpu_count()} cores shared "
             f"(load average {load:.1f} before, {os.getloadavg()[0]:.1f} after), peak RSS {peak_rss_mib():.0f} MiB", "",
             header, "|" + "---|" * (header.count("|") - 1), *rows]
    print("\n".join(lines))
    if args.out:
        with open(args.out, "a") as out:
            out.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
