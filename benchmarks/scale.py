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

    nice -n 5 python -m benchmarks.scale cascadingrank --users 50000 --items 40000 --out benchmarks/results/scale_cascadingrank.md
    nice -n 5 python -m benchmarks.scale knn --items 100000 --out benchmarks/results/scale_knn.md
    nice -n 5 python -m benchmarks.scale catalogue --kind mm --items 1000000 --users 1000000 --out benchmarks/results/scale_catalogue.md
"""
import argparse
import json
import os
import platform
import sys
import tempfile
import time
from itertools import islice

import numpy as np

from benchmarks.mm_loading import peak_rss_mib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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


def embedding_rows(rng, n, dim, clusters=256, latent=24):
    """n x dim float32 rows like an encoder's: a mixture of ``clusters`` Gaussians in a ``latent``-d space,
    projected to ``dim`` with a little isotropic noise (low intrinsic dimension, as real embeddings have)."""
    centres = rng.standard_normal((clusters, latent), dtype=np.float32)
    z = centres[rng.integers(0, clusters, n)] + 0.5 * rng.standard_normal((n, latent), dtype=np.float32)
    rows = z @ rng.standard_normal((latent, dim), dtype=np.float32)
    rows += 0.1 * rng.standard_normal((n, dim), dtype=np.float32)
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
    users = dataset.user_num - 1
    wall, cpu = time.perf_counter(), time.process_time()
    if args.sample:  # score the first --sample users (as evaluation batches would), project to all users
        with torch.no_grad():
            model.eval()
            for start in range(1, args.sample + 1, 1024):
                model.score_users(torch.arange(start, min(start + 1024, args.sample + 1)))
        result, scale = f"(scores of {args.sample:,} users; × {users / args.sample:.1f} projected)", users / args.sample
    else:
        result, scale = dict(trainer.evaluate(test_data, load_best_model=False, show_progress=False)), 1.0
    wall, cpu = scale * (time.perf_counter() - wall), scale * (time.process_time() - cpu)
    counts = {b: int(dataset.behavior_matrix(b).nnz) for b in dataset.behaviors}
    return [f"| {what} {name} ({users:,} users × {dataset.item_num - 1:,} items; {counts}) | "
            f"{args.threads} | **{wall:.1f} s** | {cpu:.1f} s | {result} |"], \
        "| data | torch threads | one full test pass (wall) | CPU time | test metrics |"


def part_knn(args):
    import torch

    from recbole_spectral.layers import knn

    torch.set_num_threads(args.threads)
    rows = embedding_rows(np.random.default_rng(2020), args.items, args.dim)
    timed = {}
    for method, n in (("approximate", args.items), ("exact", min(args.items, args.exact_items))):
        start, cpu = time.perf_counter(), time.process_time()
        edges = knn.approximate_knn_edges(rows[:n], args.k) if method == "approximate" else knn.knn_edges(rows[:n], args.k)
        timed[method] = (n, time.perf_counter() - start, time.process_time() - cpu, edges[-1] if method == "approximate" else None)
    (n_a, wall_a, cpu_a, info), (n_e, wall_e, cpu_e, _) = timed["approximate"], timed["exact"]
    return [f"| approximate ({info['index']}) | {n_a:,} × {args.dim} | **{wall_a:.1f} s** | {cpu_a:.1f} s | "
            f"**{info['recall']:.4f}** on {info['sampled']:,} random rows |",
            f"| exact (tiled) | {n_e:,} × {args.dim} | {wall_e:.1f} s | {cpu_e:.1f} s | 1 (O(n²·d): × {(n_a / n_e) ** 2:.0f} "
            f"at {n_a:,} items ≈ {wall_e * (n_a / n_e) ** 2 / 60:.0f} min) |"], \
        f"| kNN graph (k={args.k}, GENERATED embedding-like rows) | items × dim | build (wall) | CPU time | recall@{args.k} against exact |"


def prepare_catalogue(args, name, data_dir):
    """Generate and convert the catalogue (in a child process, so its peak memory is not the run's)."""
    import pandas as pd

    from recbole_spectral.data.converters.crgcn import convert_crgcn
    from recbole_spectral.data.converters.mmrec import convert

    raw = os.path.join(args.work, "raw", name)
    rng = np.random.default_rng(2020)
    if args.kind == "mb":  # views + carts (1/4) + buys (1/10 + 1/50) ≈ 1.37 × views
        generate_funnel(raw, args.users, args.items, args.interactions / args.users / 1.37)
        convert_crgcn(raw, name, out=data_dir)
        return
    os.makedirs(raw, exist_ok=True)
    pairs = user_pairs(rng, args.users, args.items, args.interactions / args.users) - 1  # MMRec ids are 0-based
    frame = pd.DataFrame({"userID": pairs[:, 0], "itemID": pairs[:, 1], "rating": 1, "timestamp": 0,
                          "x_label": rng.choice(3, len(pairs), p=[0.8, 0.1, 0.1])})
    frame.to_csv(os.path.join(raw, f"{name}.inter"), sep="\t", index=False)
    np.save(os.path.join(raw, "text_feat.npy"), embedding_rows(rng, args.items, args.dim))
    del frame, pairs
    convert(raw, name, out=data_dir, force=True, log=lambda line: None)


def part_catalogue(args):
    import multiprocessing

    name = f"catalogue-{args.kind}-{args.users}x{args.items}"
    data_dir = os.path.join(args.work, "data")
    if not os.path.isdir(os.path.join(data_dir, name)):
        start = time.perf_counter()
        child = multiprocessing.get_context("fork").Process(target=prepare_catalogue, args=(args, name, data_dir))
        child.start()
        child.join()
        if child.exitcode != 0:
            sys.exit(f"generating {name} failed")
        print(f"generated and converted {name} in {time.perf_counter() - start:.0f} s", flush=True)
    import torch

    from recbole_spectral.config import SpectralConfig
    from recbole_spectral.quick_start import build_run
    from recbole_spectral.registry import get_model
    from recbole_spectral.trainer import trainer_class

    torch.set_num_threads(args.threads)
    settings = {**settings_for(args, data_dir), "train_batch_size": args.batch_size}
    timings, model_name = {}, "SSR" if args.kind == "mm" else "SpectraMB"
    start = time.perf_counter()
    lconfig = SpectralConfig("LightGCN", name, config_dict=settings)
    dataset, (train, _, _), lightgcn, ltrainer = build_run(lconfig)
    timings["load + LightGCN build (run path)"] = time.perf_counter() - start
    rss_loaded = peak_rss_mib()
    config = SpectralConfig(model_name, name, config_dict={**settings, "knn_method": args.knn_method})
    train_set = train._dataset
    if args.kind == "mm":  # the stages SSR's construction would run first, timed one by one (cached in the dataset)
        for modality in train_set.modalities:
            start = time.perf_counter()
            train_set.reduced_features(modality, config["feature_rank"])
            timings[f"truncated SVD of {modality} to {config['feature_rank']}"] = time.perf_counter() - start
            start = time.perf_counter()
            train_set.knn_graph(modality, config["knn_k"], config["feature_rank"])
            timings[f"kNN graph of {modality} (k={config['knn_k']}, knn_method {args.knn_method})"] = time.perf_counter() - start
    start = time.perf_counter()
    model = get_model(model_name)(config, train_set)
    timings[f"{model_name} construction" + (" (the rest: fixed signal, band calibration, fixed bands)" if args.kind == "mm" else "")] = \
        time.perf_counter() - start
    trainers = {"LightGCN": ltrainer, model_name: trainer_class(config)(config, model)}
    batches = list(islice(iter(train), args.batches))  # the same batches for both, drawn once
    epoch, hook = {name_: [] for name_ in trainers}, []
    for round_ in range(args.rounds):
        for label, trainer in trainers.items():
            start = time.perf_counter()
            trainer._train_epoch(batches, round_ + 1, show_progress=False)  # with the model's per-epoch hook
            epoch[label].append(time.perf_counter() - start)
            if label == model_name:  # the hook once more on its own: what of the time above is per epoch
                start = time.perf_counter()
                getattr(model, "on_train_epoch_start", lambda *a: None)(round_ + 1, train)
                hook.append(time.perf_counter() - start)
            print(f"round {round_} {label}: {epoch[label][-1]:.1f} s", flush=True)
    users = torch.randperm(dataset.user_num - 1, generator=torch.Generator().manual_seed(0))[:args.eval_users] + 1
    per_batch = max(1, 2 ** 24 // dataset.item_num)  # the run path's eval_score_budget
    evaluation = {}
    for label, m in (("LightGCN", lightgcn), (model_name, model)):
        m.eval()
        start = time.perf_counter()
        with torch.no_grad():
            for i in range(0, len(users), per_batch):
                m.full_sort_predict({"user_id": users[i:i + per_batch]}).view(-1, dataset.item_num).topk(20, dim=1)
        evaluation[label] = time.perf_counter() - start
    ratio = [a / b for a, b in zip(epoch[model_name], epoch["LightGCN"])]
    per_batch = [(a - h) / b for a, h, b in zip(epoch[model_name], hook, epoch["LightGCN"])]
    whole = [(a - h + h * args.batches / len(train)) / b for a, h, b in zip(epoch[model_name], hook, epoch["LightGCN"])]
    preprocessing = sum(v for k, v in timings.items() if not k.startswith("load"))
    rows = [f"| {k} | {v:.1f} s |" for k, v in timings.items()]
    rows += [f"| **preprocessing** ({model_name}: {'SVD + kNN + construction' if args.kind == 'mm' else 'construction'}) | "
             f"**{preprocessing:.1f} s** (target ≤ 1,200 s) |",
             f"| peak RSS after loading / at the end | {rss_loaded:,.0f} MiB / **{peak_rss_mib():,.0f} MiB** (target ≤ 16,384) |",
             f"| first {args.batches} batches of {len(train):,} (batch {args.batch_size}): LightGCN / {model_name} | "
             f"{', '.join(f'{x:.1f}' for x in epoch['LightGCN'])} s / {', '.join(f'{x:.1f}' for x in epoch[model_name])} s |",
             f"| {model_name} ÷ LightGCN over these batches, with {model_name}'s per-epoch hook (timed alone: "
             f"{', '.join(f'{x:.1f}' for x in hook)} s) | {', '.join(f'{x:.2f}' for x in ratio)} |",
             f"| **{model_name} ÷ LightGCN per batch** (hook excluded) / **per epoch** (hook once per {len(train):,} batches) | "
             f"**{', '.join(f'{x:.2f}' for x in per_batch)}** / **{', '.join(f'{x:.2f}' for x in whole)}** |",
             f"| full-sort scores + top-20 of {len(users):,} sampled users ({per_batch} per batch): LightGCN / {model_name} | "
             f"{evaluation['LightGCN']:.1f} s / {evaluation[model_name]:.1f} s (all {dataset.user_num - 1:,} users ≈ "
             f"{evaluation[model_name] * (dataset.user_num - 1) / len(users) / 3600:.1f} h for {model_name}) |"]
    what = (f"{len(train_set):,} training rows, {args.dim}-d features" if args.kind == "mm" else
            f"{len(train_set):,} training target rows of {sum(train_set.behavior_matrix(b).nnz for b in train_set.behaviors):,} "
            f"rows of {', '.join(train_set.behaviors)}")
    return rows, f"| GENERATED {name}: {dataset.user_num - 1:,} users × {dataset.item_num - 1:,} items, {what} | value |"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["cascadingrank", "knn", "catalogue"])
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "recbole_spectral_scale"))
    parser.add_argument("--users", type=int, default=50000)
    parser.add_argument("--items", type=int, default=40000)
    parser.add_argument("--views-per-user", type=float, default=20.0)
    parser.add_argument("--sample", type=int, default=0, help="cascadingrank: time the scores of this many users only")
    parser.add_argument("--dataset", default=None, help="cascadingrank: a prepared real dataset instead of generated data")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--kind", choices=["mm", "mb"], default="mm", help="catalogue: SSR on a multimodal one or SpectraMB on a funnel")
    parser.add_argument("--interactions", type=int, default=20_000_000)
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--eval-users", type=int, default=256)
    parser.add_argument("--knn-method", default="auto")
    parser.add_argument("--exact-items", type=int, default=20000, help="knn: rows of the exact build timed beside")
    parser.add_argument("--out", default=None, help="append the result rows (markdown) to this file")
    args = parser.parse_args()
    args.work = os.path.abspath(args.work)
    if os.path.commonpath([args.work, ROOT]) == ROOT:
        sys.exit("error: --work must be outside the repository (generated and converted data are never committed)")
    load = os.getloadavg()[0]
    rows, header = globals()[f"part_{args.part}"](args)
    import recbole_spectral

    lines = [f"\n`{' '.join(['python -m benchmarks.scale'] + sys.argv[1:])}` — code {os.path.dirname(recbole_spectral.__file__)}, "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.machine()} with {os.cpu_count()} cores shared "
             f"(load average {load:.1f} before, {os.getloadavg()[0]:.1f} after), peak RSS {peak_rss_mib():.0f} MiB", "",
             header, "|" + "---|" * (header.count("|") - 1), *rows]
    print("\n".join(lines))
    if args.out:
        with open(args.out, "a") as out:
            out.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
