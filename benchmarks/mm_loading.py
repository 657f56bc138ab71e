"""Multimodal loading at Amazon Sports scale: conversion, dataset load, kNN graphs, peak memory.

Interactions: the real Amazon Sports interactions of the MMRec benchmark
(``<shared>/multimodal/sports-interactions/sports.inter``: 35,598 users, 18,357 items, x_label split).
Features: GENERATED, of the real shapes (image 18,357 x 4,096, text 18,357 x 384, float32; clustered
Gaussian rows), because the real MMRec features are not available here. They are written with the
converted data to a work folder outside the repository (default: a temp folder) and labelled GENERATED.
Timings say nothing about recommendation quality.

Each phase runs in its own process so that its peak RSS (``resource.getrusage``) is its own:
  baseline   import torch + recbole + recbole_spectral (the floor every phase pays)
  convert    prepare mmrec (read MMRec folder, cast/check features, write atomic files)
  load-plain RecBole's plain Dataset on the same interaction files (no features) - side by side
  load       MultiModalDataset (interactions + both modalities aligned to internal ids)
  knn        load + kNN graph per modality (k, cosine, tiled), built without cache, then reloaded from cache

Usage: python -m benchmarks.mm_loading [--shared ../shared/datasets] [--work DIR] [--k 10] [--out FILE]
"""
import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAME = "sports-generated"
SHAPES = {"image": 4096, "text": 384}
PHASES = ("baseline", "convert", "load-plain", "load", "knn")


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def generate_mmrec_folder(shared, work, seed=2020):
    """<work>/mmrec/sports: a symlink to the real sports.inter + GENERATED image/text features."""
    import numpy as np

    inter = os.path.join(shared, "multimodal", "sports-interactions", "sports.inter")
    if not os.path.isfile(inter):
        sys.exit(f"error: {inter} not found (pass --shared)")
    folder = os.path.join(work, "mmrec", "sports")
    os.makedirs(folder, exist_ok=True)
    link = os.path.join(folder, "sports.inter")
    if not os.path.lexists(link):
        os.symlink(inter, link)
    n_items = 1 + max(int(line.split("\t")[1]) for line in open(inter).read().splitlines()[1:])
    rng = np.random.default_rng(seed)
    start = time.time()
    for modality, dim in SHAPES.items():
        path = os.path.join(folder, f"{modality}_feat.npy")
        if os.path.isfile(path):
            continue
        centers = rng.standard_normal((64, dim), dtype=np.float32)
        rows = centers[rng.integers(0, 64, n_items)]
        rows += 0.5 * rng.standard_normal((n_items, dim), dtype=np.float32)
        np.save(path, rows)
        del rows
    with open(os.path.join(folder, "GENERATED.txt"), "w") as out:
        out.write(
            "image_feat.npy and text_feat.npy here are GENERATED (clustered Gaussian rows, seed "
            f"{seed}), shaped like the MMRec Amazon Sports features; sports.inter links the real interactions.\n"
        )
    return folder, n_items, time.time() - start


def run_phase(phase, args):
    """Runs in a child process; prints one JSON line with the phase's measurements."""
    t0 = time.time()
    import torch  # noqa: F401  (counted in the floor every phase pays)
    from recbole_spectral.config import SpectralConfig
    from recbole_spectral.data import create_dataset

    result = {"phase": phase, "import_s": time.time() - t0}
    data_dir = os.path.join(args.work, "data")
    settings = {"state": "ERROR", "data_path": data_dir, "use_gpu": False}
    if phase == "convert":
        from recbole_spectral.data.converters.mmrec import convert

        start = time.time()
        convert(os.path.join(args.work, "mmrec", "sports"), NAME, out=data_dir, force=True, log=lambda line: None)
        result["convert_s"] = time.time() - start
    elif phase in ("load", "load-plain", "knn"):
        if phase == "load-plain":
            settings["modalities"] = []  # same files, RecBole's plain Dataset
        start = time.time()
        config = SpectralConfig("BPR", NAME, config_dict=settings)
        dataset = create_dataset(config)
        result["load_s"] = time.time() - start
        result["dataset"] = type(dataset).__name__
        result["users"], result["items"] = dataset.user_num - 1, dataset.item_num - 1
        result["rss_after_load_mib"] = peak_rss_mib()
        if phase == "knn":
            import shutil

            shutil.rmtree(os.path.join(data_dir, NAME, "knn_cache"), ignore_errors=True)
            for modality in dataset.modalities:
                start = time.time()
                graph = dataset.knn_graph(modality, args.k)
                result[f"knn_{modality}_s"] = time.time() - start
                result[f"knn_{modality}_nnz"] = int(graph._nnz())
            dataset._knn_graphs.clear()
            start = time.time()
            for modality in dataset.modalities:
                dataset.knn_graph(modality, args.k)
            result["knn_cached_s"] = time.time() - start
    result["peak_rss_mib"] = peak_rss_mib()
    print(json.dumps(result))


def child(phase, args):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--phase", phase, "--work", args.work, "--k", str(args.k)],
        capture_output=True, text=True, env=env,
    )
    if proc.returncode != 0:
        sys.exit(f"phase {phase} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", default=os.path.join(ROOT, "..", "shared", "datasets"))
    parser.add_argument("--work", default=None, help="folder for generated features + converted data (outside the repo)")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--out", default=None, help="also write the report (markdown) here")
    parser.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        return run_phase(args.phase, args)
    args.work = os.path.abspath(args.work or tempfile.mkdtemp(prefix="mm_loading-"))
    if os.path.commonpath([args.work, ROOT]) == ROOT:
        sys.exit("error: --work must be outside the repository (generated and converted data are never committed)")

    load_before = os.getloadavg()
    folder, n_items, gen_s = generate_mmrec_folder(os.path.abspath(args.shared), args.work)
    results = {phase: child(phase, args) for phase in PHASES}
    load_after = os.getloadavg()

    base = results["baseline"]["peak_rss_mib"]
    plain, mm, knn = results["load-plain"], results["load"], results["knn"]
    feature_mib = n_items * sum(SHAPES.values()) * 4 / 2 ** 20
    lines = [
        "# Multimodal loading at Amazon Sports scale (GENERATED features)",
        "",
        f"Command: `python -m benchmarks.mm_loading --k {args.k}` (work folder {args.work}, outside the repo)",
        "",
        f"Interactions: real Amazon Sports (MMRec) `sports.inter`, {mm['users']:,} users, {mm['items']:,} items. "
        f"Features: **GENERATED** image {n_items:,} x 4,096 and text {n_items:,} x 384 float32 "
        f"(clustered Gaussian rows; {feature_mib:.0f} MiB as float32; generated in {gen_s:.1f} s). "
        "Timings only; no quality claims.",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores shared with other jobs; load average "
        f"{load_before[0]:.1f} before, {load_after[0]:.1f} after. torch threads: default.",
        "",
        "| phase | time (s) | peak RSS (MiB) | peak RSS above the import floor (MiB) |",
        "|---|---:|---:|---:|",
        f"| import floor (torch, recbole, recbole_spectral) | {results['baseline']['import_s']:.1f} | {base:.0f} | 0 |",
        f"| convert MMRec folder -> atomic (prepare mmrec) | {results['convert']['convert_s']:.1f} | "
        f"{results['convert']['peak_rss_mib']:.0f} | {results['convert']['peak_rss_mib'] - base:.0f} |",
        f"| load: RecBole plain Dataset (same interactions, no features) | {plain['load_s']:.1f} | "
        f"{plain['peak_rss_mib']:.0f} | {plain['peak_rss_mib'] - base:.0f} |",
        f"| load: MultiModalDataset (interactions + image + text aligned) | {mm['load_s']:.1f} | "
        f"{mm['peak_rss_mib']:.0f} | {mm['peak_rss_mib'] - base:.0f} |",
        f"| kNN graph image (k={args.k}, 4,096-d, no cache) | {knn['knn_image_s']:.1f} | | |",
        f"| kNN graph text (k={args.k}, 384-d, no cache) | {knn['knn_text_s']:.1f} | | |",
        f"| both kNN graphs again, from the on-disk cache | {knn['knn_cached_s']:.2f} | | |",
        f"| load + both kNN graphs (one process) | {knn['load_s'] + knn['knn_image_s'] + knn['knn_text_s']:.1f} | "
        f"{knn['peak_rss_mib']:.0f} | {knn['peak_rss_mib'] - base:.0f} |",
        "",
        f"Side by side: MultiModalDataset load / plain Dataset load = {mm['load_s'] / plain['load_s']:.2f}x "
        f"(features add {mm['load_s'] - plain['load_s']:.1f} s); kNN edges: image {knn['knn_image_nnz']:,}, "
        f"text {knn['knn_text_nnz']:,} (= items x k).",
    ]
    report = "\n".join(lines) + "\n"
    print(report)
    print(json.dumps(results))
    if args.out:
        with open(args.out, "w") as out:
            out.write(report + "\nRaw measurements:\n\n```json\n" + json.dumps(results, indent=1) + "\n```\n")


if __name__ == "__main__":
    main()
