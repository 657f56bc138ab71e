"""SSR at Amazon Sports scale: preprocessing time, SSR epoch time ÷ LightGCN epoch time, peak memory.

Interactions: the real Amazon Sports interactions of the MMRec benchmark
(``<shared>/multimodal/sports-interactions/sports.inter``). Features: GENERATED, of the real shapes
(image 18,357 × 4,096, text 18,357 × 384; clustered Gaussian rows, see benchmarks/mm_loading.py), because
the real features are not available here. Generated and converted files live in ``--work``, outside the
repository. Timings only; nothing here says anything about recommendation quality.

One process, measured side by side:
  preprocessing = SSR's construction from a cold kNN cache: truncated SVD of the wide features, both
                  kNN graphs (k = 10) on the reduced coordinates, fixed-signal smoothing, Chebyshev band
                  calibration and the fixed part's bands;
  epoch time    = the training part of RecBole's epoch (``trainer._train_epoch``, including SSR's per-epoch
                  hook: edge resampling, band recalibration) for LightGCN and every SSR setting of
                  ``--settings``, same dataloader and batch size, alternated (LightGCN, SSR settings,
                  LightGCN, ...), or the first ``--batches`` batches of an epoch when given (then stated in
                  the report); the ratio compares each SSR setting with the LightGCN epoch of its round;
  peak memory   = peak RSS of the process (ru_maxrss), plus the RSS just before the SSR model is built.

    nice -n 5 python -m benchmarks.ssr_scale --out benchmarks/results/ssr_scale.md
    nice -n 10 python -m benchmarks.ssr_scale --batches 25 --out /tmp/ssr_scale.md   # a capped epoch

Default settings: ``default`` (properties/model/SSR.yaml: the released configuration since 2026-12-07),
``default, user_modality item_mean``, and ``previous`` (the options that reproduce an earlier version of SSR: free
P_m unnormalised, early item graph, K = 5, masked-output loss, softmax-gated operator, linear encoder on 128 SVD
coordinates, layer mean; measured at 8.1x by the previous code).
"""
import argparse
import json
import os
import platform
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path

from benchmarks.mm_loading import generate_mmrec_folder, peak_rss_mib as rss_mib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

NAME = "sports-generated"
PREVIOUS = {"user_modality": "free", "pref_normalize": False, "pref_reg_weight": 0.0, "chebyshev_order": 5,
            "item_graph_mode": "early", "mask_semantics": "score_masked", "hsno_mode": "softmax_gate", "loss_type": "BCE", "edge_keep_ratio": 1.0,
            # the defaults of that time that SSR.yaml has since changed (2026-12-07: the released configuration)
            "layer_aggregation": "mean", "band_method": "energy", "exact_max_nodes": 2000, "feature_encoder": "linear",
            "feature_rank": 128, "cl_max_items": 256}
SETTINGS = {"default": {}, "default, user_modality item_mean": {"user_modality": "item_mean"}, "previous": PREVIOUS}


def current_rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


class FirstBatches:
    """The first ``n`` batches of a RecBole dataloader (same sampler and batch construction)."""

    def __init__(self, loader, n):
        self.loader, self.n = loader, n

    def __iter__(self):
        return islice(iter(self.loader), self.n)

    def __len__(self):
        return min(self.n, len(self.loader))

    def __getattr__(self, name):
        return getattr(self.loader, name)


def add_scale_arguments(parser):
    """The options every Sports-scale timing script takes."""
    parser.add_argument("--shared", default=os.path.join(ROOT, "..", "shared", "datasets"))
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "ssr_scale"))
    parser.add_argument("--rounds", type=int, default=1, help="alternated epochs per model")
    parser.add_argument("--batches", type=int, default=0, help="time only the first N batches of an epoch (0 = all)")
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None)


def prepare_scale_data(args):
    """Generated features of the real shapes beside the real Sports interactions, converted once into
    ``args.work`` (outside the repository); returns the run settings every model shares."""
    args.work = os.path.abspath(args.work)
    if os.path.commonpath([args.work, ROOT]) == ROOT:
        sys.exit("error: --work must be outside the repository (generated and converted data are never committed)")
    import torch

    torch.set_num_threads(args.threads)
    from recbole_spectral.data.converters.mmrec import convert

    folder, n_items, _ = generate_mmrec_folder(os.path.abspath(args.shared), args.work)
    data_dir = os.path.join(args.work, "data")
    if not os.path.isdir(os.path.join(data_dir, NAME)):
        convert(folder, NAME, out=data_dir, force=True, log=lambda line: None)
    settings = {"state": "ERROR", "data_path": data_dir, "use_gpu": False,
                "knn_cache_dir": os.path.join(args.work, "knn_cache"), "train_batch_size": args.batch_size,
                "seed": 2020, "show_progress": False, "checkpoint_dir": os.path.join(args.work, "saved")}
    return settings, n_items


def data_description(result, n_items):
    """The report line saying what the data is (real interactions, GENERATED features)."""
    return (f"Interactions: real Amazon Sports (MMRec) `sports.inter`: {result['users']:,} users, {result['items']:,} "
            f"items, {result['train_interactions']:,} training interactions. Features: **GENERATED** image "
            f"{n_items:,} × 4,096 and text {n_items:,} × 384 (clustered Gaussian rows). No quality claims.")


def write_report(lines, out=None):
    print("\n".join(lines))
    if out:
        Path(out).write_text("\n".join(lines))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_scale_arguments(parser)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--raw-knn", action="store_true", help="also time the dataset's kNN graphs of the raw features")
    parser.add_argument("--settings", default=json.dumps(SETTINGS),
                        help="JSON mapping label -> SSR overrides; the first is the one whose preprocessing is timed")
    args = parser.parse_args()
    settings, n_items = prepare_scale_data(args)
    cache = settings["knn_cache_dir"]

    from recbole_spectral.config import SpectralConfig
    from recbole_spectral.quick_start import build_data, build_model

    load_before = os.getloadavg()
    result = {"batch_size": args.batch_size, "threads": args.threads, "batches": args.batches or "all"}

    ssr_settings = json.loads(args.settings)
    labels = list(ssr_settings)
    result["ssr_settings"] = ssr_settings
    start = time.perf_counter()
    config = SpectralConfig("SSR", NAME, config_dict={**settings, **ssr_settings[labels[0]]})
    dataset, (train_data, valid_data, _) = build_data(config)
    result["load_s"] = time.perf_counter() - start
    result["users"], result["items"] = dataset.user_num - 1, dataset.item_num - 1
    result["train_interactions"] = len(train_data._dataset)
    result["rss_after_load_mib"] = current_rss_mib()

    # preprocessing = SSR construction from a cold kNN cache (first setting): truncated SVD of the wide
    # features, kNN graphs on the reduced coordinates, the fixed feature signal (user means, propagation,
    # item graph), band calibration, the fixed part's bands
    import shutil

    shutil.rmtree(cache, ignore_errors=True)
    result["rss_before_models_mib"] = current_rss_mib()
    models, configs, trainers = {}, {}, {}
    for i, label in enumerate(labels):
        configs[label] = SpectralConfig("SSR", NAME, config_dict={**settings, **ssr_settings[label]})
        t = time.perf_counter()
        models[label], trainers[label] = build_model(configs[label], train_data)
        if i == 0:
            result["ssr_build_s"] = time.perf_counter() - t
    ssr = models[labels[0]]
    if args.raw_knn:  # for reference: the dataset's kNN graphs of the raw 4,096-d / 384-d rows (not used by SSR)
        for modality in dataset.modalities:
            t = time.perf_counter()
            train_data._dataset.knn_graph(modality, config["knn_k"])
            result[f"raw_knn_{modality}_s"] = time.perf_counter() - t
    t = time.perf_counter()
    ssr.calibrate_bands()
    result["calibration_s"] = time.perf_counter() - t  # what each scheduled recalibration costs
    result["preprocessing_s"] = result["ssr_build_s"]
    result["band_borders_lambda"] = [round(float(x), 4) for x in ssr.bands.borders_lambda()]
    result["band_shares"] = [round(float(x), 4) for x in ssr.bands.shares]
    result["ssr_params"] = {label: sum(p.numel() for p in m.parameters() if p.requires_grad) for label, m in models.items()}

    lconfig = SpectralConfig("LightGCN", NAME, config_dict=settings)
    lightgcn, lightgcn_trainer = build_model(lconfig, train_data)
    result["lightgcn_params"] = sum(p.numel() for p in lightgcn.parameters() if p.requires_grad)
    trainers = {"LightGCN": lightgcn_trainer, **trainers}
    loader = FirstBatches(train_data, args.batches) if args.batches else train_data
    result["batches_per_epoch"] = len(train_data)
    times = {name: [] for name in trainers}
    for round_ in range(args.rounds):
        for name, trainer in trainers.items():
            t = time.perf_counter()
            epoch = round_ + 1  # > 0: the hook in _train_epoch runs SSR's per-epoch work (recalibration, resampling)
            trainer._train_epoch(loader, epoch, show_progress=False)
            times[name].append(time.perf_counter() - t)
            print(f"round {round_} {name}: {times[name][-1]:.1f} s", flush=True)
    result["epoch_s"] = times
    ratios = {label: [s / l for s, l in zip(times[label], times["LightGCN"])] for label in labels}
    result["ratio"] = ratios
    result["peak_rss_mib"] = rss_mib()
    load_after = os.getloadavg()

    scope = "one full epoch" if not args.batches else f"the first {args.batches} of {len(train_data)} batches of an epoch"
    lines = [
        "# SSR at Amazon Sports scale (GENERATED features; timings only)", "",
        "Command: `nice -n 10 python -m benchmarks.ssr_scale " + " ".join(sys.argv[1:]) + "` "
        f"(work folder {args.work}, outside the repo)", "",
        data_description(result, n_items), "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores shared with other sessions (load average "
        f"{load_before[0]:.1f} before, {load_after[0]:.1f} after); torch threads {args.threads}; "
        f"train_batch_size {args.batch_size} for every model; timed: {scope} (with the per-epoch hook), "
        f"{args.rounds} round(s), alternated.", "",
        "| measurement | value | target |", "|---|---:|---|",
        f"| **preprocessing** = SSR construction ({labels[0]}), cold cache: "
        + (f"truncated SVD to {config['feature_rank']} coordinates" if config["feature_rank"] else "raw features") + ", "
        f"kNN graphs (k={config['knn_k']}) on them, fixed feature signal, band calibration, fixed bands | "
        f"**{result['preprocessing_s']:.1f} s** | ≤ 60 s |",
        f"| one scheduled recalibration ({labels[0]}) | {result['calibration_s']:.1f} s | |",
        f"| LightGCN time ({scope}) | {', '.join(f'{x:.1f}' for x in times['LightGCN'])} s | |",
    ]
    for label in labels:
        lines.append(f"| SSR {label}: time ({scope}) | {', '.join(f'{x:.1f}' for x in times[label])} s | |")
        lines.append(f"| **SSR {label} ÷ LightGCN** | **{', '.join(f'{x:.2f}' for x in ratios[label])}** | ≤ 2 |")
    lines += [
        f"| peak RSS of the process (dataset + graphs + all models + training) | {result['peak_rss_mib']:.0f} MiB | ≤ 4 GB |",
        f"| RSS after loading the dataset | {result['rss_after_load_mib']:.0f} MiB | |",
        *([f"| for reference: dataset kNN graphs of the raw rows (image {result.get('raw_knn_image_s', 0):.1f} s, "
           f"text {result.get('raw_knn_text_s', 0):.1f} s; not used by SSR) | | |"] if args.raw_knn else []),
        "", f"SSR settings: {json.dumps(ssr_settings)}.", "",
        f"Band borders (λ, {labels[0]}) {result['band_borders_lambda']}, energy shares {result['band_shares']}; "
        f"parameters SSR {result['ssr_params']}, LightGCN {result['lightgcn_params']:,}.", "",
        "Raw:", "", "```json", json.dumps(result, indent=1), "```", "",
    ]
    write_report(lines, args.out)


if __name__ == "__main__":
    main()
