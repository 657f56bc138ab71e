"""Mutation testing of the models and building blocks: how many deliberately broken versions of each file
of ``recbole_spectral/model`` and ``recbole_spectral/layers`` the tests catch.

    pip install -e .[dev]                       # mutmut
    nice -n 10 python tools/mutation.py         # every file, most important first (hours on 2 cores)
    python tools/mutation.py --files recbole_spectral/model/multimodal/smore.py --out /tmp/m.md

For each file, in a scratch copy of the committed tree (``git archive HEAD``: uncommitted edits are not
seen), mutmut (3.8) mutates that file only and runs, per mutant, the tests that reach the mutated function
(``TESTS`` below: the file's own unit and reference tests, never the slow end-to-end ones), one mutant
at a time, one torch thread. Each finished file's score and its surviving mutants (the diff) are
appended to the results file (default ``docs/verification/mutation.md``) at once, so a run stopped
part-way keeps what finished. Not run in CI (too slow).

Statuses are mutmut's: killed (a test failed), survived (all passed), timeout (a test hung), no tests (no
selected test reaches the function), crashed (the test process aborted), suspicious/segfault. Score =
caught / (caught + survived), caught = killed + timeout + crashed. A survivor is listed with its diff, and
with one line why when a rule of ``EQUIVALENT`` (or the device/dtype/default-argument checks of ``explain``)
says it cannot change what a test observes. ``--rerender`` re-applies the rules to the results file.
"""
import argparse
import difflib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

MODEL = "recbole_spectral/model"
LAYERS = "recbole_spectral/layers"
MM_TESTS = ["tests/test_reference_mm.py", "tests/test_mm_baselines.py"]
MB_TESTS = ["tests/test_reference_mb.py", "tests/test_mb_baselines.py"]

# most important first: the models' forward and loss, then the blocks they are built from
TESTS = {
    f"{MODEL}/multimodal/smore.py": MM_TESTS,
    f"{MODEL}/multimodal/lgmrec.py": MM_TESTS,
    f"{MODEL}/multimodal/freedom.py": MM_TESTS,
    f"{MODEL}/multimodal/vbpr.py": MM_TESTS,
    f"{MODEL}/multibehavior/spectramb.py": ["tests/test_reference_mb.py", "tests/test_spectramb.py"],  # diagnose: test_diagnose.py
    f"{MODEL}/multibehavior/crgcn.py": MB_TESTS,
    f"{MODEL}/multibehavior/mbcgcn.py": MB_TESTS,
    f"{MODEL}/multibehavior/mule.py": MB_TESTS,
    f"{MODEL}/multibehavior/historypop.py": MB_TESTS,
    f"{MODEL}/multibehavior/cascadingrank.py": MB_TESTS,
    f"{MODEL}/multimodal/ssr.py": ["tests/test_reference_mm.py", "tests/test_reference_blocks.py", "tests/test_ssr.py"],
    f"{LAYERS}/multimodal/hsno.py": ["tests/test_reference_blocks.py", "tests/test_hsno.py", "tests/test_reference_mm.py",
                                     "tests/test_ssr.py"],  # test_ssr: the released operator without context scale
    f"{LAYERS}/contrastive.py": ["tests/test_reference_blocks.py", "tests/test_contrastive.py", "tests/test_reference_mm.py"],
    f"{LAYERS}/multibehavior/fusion.py": ["tests/test_reference_blocks.py", "tests/test_reference_mb.py"],
    f"{LAYERS}/feature_fft.py": ["tests/test_feature_fft.py", "tests/test_reference_mm.py", "tests/test_reference_mb.py"],
    f"{LAYERS}/graph.py": ["tests/test_graph.py", "tests/test_reference_mm.py", "tests/test_reference_mb.py"],
    f"{LAYERS}/multibehavior/target_attention.py": ["tests/test_mb_baselines.py", "tests/test_reference_mb.py"],
    f"{LAYERS}/multibehavior/observed.py": ["tests/test_spectramb.py", "tests/test_reference_mb.py"],
    f"{LAYERS}/multibehavior/target_views.py": ["tests/test_spectramb.py", "tests/test_reference_mb.py"],
    f"{MODEL}/base.py": ["tests/test_base.py", "tests/test_reference_mm.py", "tests/test_reference_mb.py", "tests/test_mm_baselines.py"],
    f"{LAYERS}/edge_pruning.py": ["tests/test_mm_baselines.py", "tests/test_ssr.py"],
    f"{LAYERS}/csr.py": ["tests/test_mb_baselines.py", "tests/test_reference_mb.py"],
    f"{LAYERS}/graph_bands.py": ["tests/test_graph_bands.py"],
    f"{LAYERS}/knn.py": ["tests/test_knn.py"],
}

STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped", 35: "suspicious",
          36: "timeout", -24: "timeout", 24: "timeout", 152: "timeout", 255: "timeout", -11: "segfault", -9: "segfault", -6: "crashed"}


def scratch_copy(work):
    """The committed tree (HEAD) in ``work``, with a pyproject.toml that only configures mutmut."""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", "HEAD"], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(work)], input=archive, check=True)


def configure(work, target, tests):
    lines = ["[tool.mutmut]", 'source_paths = ["recbole_spectral/"]', f"only_mutate = [{json.dumps(target)}]",
             "pytest_add_cli_args_test_selection = [" + ", ".join(json.dumps(t) for t in tests) + "]",
             # tests that run the CLI or a shipped dataset end to end are slow, and a subprocess of a mutated tree
             # cannot find mutmut's configuration
             'pytest_add_cli_args = ["-k", "not cli and not recipe and not ml_100k and not ml100k", "-p", "no:cacheprovider"]',
             'also_copy = ["properties/", "run_recbole_spectral.py", "dataset_atomic/"]']
    (work / "pyproject.toml").write_text("\n".join(lines) + "\n")


def results(work, target):
    meta = work / "mutants" / (target + ".meta")
    if not meta.exists():
        return {}
    return {name: STATUS.get(code, f"exit {code}") for name, code in json.loads(meta.read_text())["exit_code_by_key"].items()}


def mutmut():
    """The ``mutmut`` console script beside this interpreter (``python -m mutmut`` imports its main module
    twice, and the second import fails)."""
    return str(Path(sys.executable).with_name("mutmut"))


def function_sources(work, target):
    """{function name: source} of every function in the mutated copy of ``target`` (originals and mutants)."""
    import ast
    text = (work / "mutants" / target).read_text()
    lines = text.splitlines()
    return {node.name: "\n".join(lines[node.lineno - 1:node.end_lineno])
            for node in ast.walk(ast.parse(text)) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}


def plain_name(function):
    """The source name of a mutmut function name: ``x_f`` -> ``f``, ``xǁClassǁm`` -> ``m``."""
    return function.split("ǁ")[-1] if "ǁ" in function else function[2:] if function.startswith("x_") else function


def diff(sources, name):
    """The changed lines of mutant ``name`` against its original function (what ``mutmut show`` prints, read from
    the mutated file directly: ``mutmut show`` takes seconds per mutant), the ``def`` line included (a mutated
    default argument) with the function's own name."""
    function = name.rsplit(".", 1)[-1]  # e.g. xǁSSRǁfuse__mutmut_3
    base, number = function.rsplit("__mutmut_", 1)
    original = sources.get(base + "__mutmut_orig", "")
    mutant = sources.get(function, "")
    original_lines = [line.replace(base + "__mutmut_orig", plain_name(base)).replace("__mutmut_orig", "")
                      for line in original.splitlines()]
    mutant_lines = [line.replace(function, plain_name(base)) for line in mutant.splitlines()]
    changed = [line for line in difflib.unified_diff(original_lines, mutant_lines, lineterm="", n=0)
               if line.startswith(("-", "+")) and not line.startswith(("---", "+++"))]
    return "\n".join(changed)


def apply_mutant(source, name, text):
    """``source`` (the file's current text) with survivor ``name``'s diff applied inside its function: each removed
    line, matched without its indentation, must occur exactly once there and becomes the added line."""
    import ast
    function = name.rsplit(".", 1)[-1].rsplit("__mutmut_", 1)[0]
    owner = function.split("ǁ")[1] if "ǁ" in function else None
    tree = ast.parse(source)
    scope = tree.body if owner is None else next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == owner).body
    node = next(n for n in scope if isinstance(n, ast.FunctionDef) and n.name == plain_name(function))
    lines = source.splitlines(keepends=True)
    removed = [line[1:] for line in text.splitlines() if line.startswith("-")]
    added = [line[1:] for line in text.splitlines() if line.startswith("+")]
    if not removed or len(removed) != len(added):
        raise ValueError(f"{name}: no line-for-line diff to apply")
    for old, new in zip(removed, added):
        hits = [i for i in range(node.lineno - 1, node.end_lineno) if lines[i].strip() == old.strip()]
        if len(hits) != 1:
            raise ValueError(f"{name}: {old.strip()!r} occurs {len(hits)} times in {plain_name(function)} (source changed?)")
        line = lines[hits[0]]
        lines[hits[0]] = line[:len(line) - len(line.lstrip())] + new.strip() + "\n"
    return "".join(lines)


def collect(target, work, seconds=0.0):
    """(status per mutant, {survivor: diff}, seconds) of a finished (or stopped) mutmut run in ``work``."""
    status = results(work, target)
    survivors = sorted(n for n, s in status.items() if s in ("survived", "timeout", "suspicious"))
    sources = function_sources(work, target) if survivors else {}
    return status, {n: diff(sources, n) for n in survivors}, seconds


def run_file(target, work, log):
    scratch_copy(work)
    configure(work, target, TESTS[target])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": ""}
    start = time.time()
    with open(log, "a") as f:
        f.write(f"\n==== {target}\n")
        f.flush()
        subprocess.run([mutmut(), "run", "--max-children", "1"], cwd=work, env=env,
                       stdout=f, stderr=subprocess.STDOUT)
    return collect(target, work, time.time() - start)


# Survivors judged equivalent (they cannot change what a test can observe): a regular expression on the
# mutant's "+" line, and one line why. A survivor matching none is listed as unexplained.
EQUIVALENT = [
    (r"\.to\(None\)|\(interactions, None\)|\(interactions, \)", "device None is the CPU the tests (and the default config) run on"),
    (r"dtype=None\)|as_tensor\(dataset\.item_features\(m\), \)", "the input is float32 already"),
    (r"\.astype\(None\)", "scipy's astype(None) gives float64: the same graph once to_torch_sparse casts it to float32"),
    (r"torch\.cat\(.*, \)", "torch.cat's default dim is 0"),
    (r"symmetric=(None|False)\)|aggregation=\"mean\", \)$",
     "symmetric only picks the faster backward for a symmetric graph (same values and gradients)"),
    (r"dim=\+1\)", "dim +1 and -1 are the same axis of a 2-D tensor"),
    (r"(cl_weight|reg_weight|lambda_\w+|final_reg_weight) >= 0", "with weight 0 the term adds 0 x term (only the cost changes)"),
    (r"normalize\(.*, \)", "F.normalize's default dim is 1 (rows of a 2-D tensor)"),
    (r"torch\.stack\(.*, \)", "torch.stack's default dim is 0"),
    (r"\.sum\(\+1\)|\.mean\(\+1\)|dim=\+1|shape\[\+1\]", "+1 and -1 are the same axis of a 2-D tensor"),
    (r"irfft\(spectrum \* weight, (n=None, )?dim=-1, norm=\"ortho\"\)",
     "irfft's default length 2(m - 1) is d for the even d every filter requires"),
    (r"torch\.randint\(n_bands, ", "randint(high, size) draws from [0, high): the same"),
        (r"norm\(p=None\)|normalize\(.*p=None", "p=None is the 2-norm, the default"),
    (r"logger\.info\(", "a log line only"),
    (r"errstate\(divide=None\)", "warnings only"),
    (r"context = (purified|full)_global if \(self\.filter_mode == \"context\"\) or True", "a static filter ignores the context"),
    (r"np\.where\(degree >= 0, |np\.maximum\(degree, 1\), 1\.0\)", "a zero degree's factor multiplies only an empty row"),
    (r"gumbel_softmax\(logits, tau=self\.tau, dim=1, (hard=None)?\)", "hard=None and the default are hard=False"),
    (r"np\.where\(values >= 0, |\*\* power, 1\.0\)", "a zero degree's factor multiplies only an empty row or column"),
    (r"self\.alpha \+ self\.beta >= 1\.0 \+ 1e-9", "differs only at alpha + beta = 1 + 1e-9 exactly"),
    (r"residual < self\.tolerance", "differs only when a change equals the tolerance exactly"),
    (r"if bool\(None\):", "the general path freezes every converged column and returns the same values (later)"),
    (r"warmed_up = None", "None is falsy like False"),
    (r"repeat_interleave\(rows\.degrees\(\)\)", "repeat_interleave(repeats) repeats arange(len(repeats)): the same"),
    (r"self\.n_layers = layers \* n_stages if \(len\(layers\) == 1\) or True",
     "a per-stage list repeated is only read at its first n_stages entries"),
    (r"m\.data\[:\] = 2\.0", "every consumer of the matrix (the normalised graph, the attention, binary) binarises it again"),
    (r"sp\.csr_matrix\(matrix, \)", "float64 instead of float32 0/1 entries: every consumer casts to float32"),
    (r"bias=None\)", "nn.Linear treats bias=None as bias=False"),
    (r"gumbel_softmax\(logits, tau=self\.tau, hard=False\)", "gumbel_softmax's default dim -1 is dim 1 of the 2-D logits"),
    (r"\(rows < self\.n_users\) \| \(cols >= self\.n_users\)", "a bipartite graph has no user-user or item-item entries"),
    (r"rows <= self\.n_users|cols > self\.n_users", "node n_users is item 0, RecBole's padding item, which has no edges"),
    (r"inter_matrix\(form=None\)", "the in-test dataset's inter_matrix ignores form (RecBole's rejects None: tests/test_all_models.py)"),
]


# Rules that only hold in one file (the reason depends on how that file's code is called): {path suffix: rules}.
EQUIVALENT_IN = {
    "model/multibehavior/spectramb.py": [(r"aux_edge_term=None\)", "None is falsy like False")],
    "layers/graph.py": [
        (r"sp\.bmat\(\[\[None, r\], \[r\.T, None\]\], (format=None, )?dtype=np\.float32\)",
         "COO instead of CSR: its consumer sym_normalize converts to CSR first (the same matrix)"),
        (r"sym_normalize\(bipartite_adjacency\(interactions\)\), None\)", "device None is the CPU the tests (and the default config) run on"),
        (r"symmetric_spmm\(graph, current\) if \(symmetric\) and False",
         "torch.sparse.mm gives the same values and gradients on a symmetric graph (only slower)"),
        (r"degree \*\* -0\.5, (None|1\.0)\)\.astype", "a zero degree's factor multiplies only an empty row or column"),
    ],
    "layers/multibehavior/target_attention.py": [
        (r"_Direction\(r(\.T\.tocsr\(\))?, None\)", "device None is the CPU the tests (and the default config) run on"),
        (r"r\.data\[:\] = (None|2\.0)$", "only the pattern of r is read (its indices, after eliminate_zeros), never its values"),
        (r"sampled_addmm\(pattern, a\.contiguous\(\), b\.T, (beta=1\.0)?\)", "beta scales the pattern's values, which are zeros"),
        (r"reduce=\"amax\", (include_self=False)?\)$",
         "the initial -inf never exceeds a score: include_self (default True) or not, the same maxima"),
        (r"self\.empty = None$", "without edges the general path returns zeros too (the shortcut only skips work)"),
    ],    "layers/multimodal/hsno.py": [
        (r"generator=generator, device=device\) > drop_prob\)", "differs only for a uniform draw equal to p exactly"),
        (r"masked_fill\(keep <= 0, float\(\"-INF\"\)\)", "float('-INF') is -inf"),
        (r"torch\.cat\(\[context, pre / m\], \+1\)", "+1 and -1 are the same axis of the 2-D halves"),
        (r"nn\.init\.normal_\(self\.weight_mlp\[-1\]\.weight, std=1e-3\)", "mean 0 is normal_'s default"),
    ],    "model/base.py": [
        (r"self\._cached_embeddings = \"\"$",
         "the cache is read only in eval mode, and eval() (train(False)) clears it to None first"),
    ],    "layers/multibehavior/observed.py": [
        (r"np\.arange\(self\.n_users, \)", "np.arange's default integer is int64 (NumPy 2 on every platform)"),
        (r"sp\.csr_matrix\(matrix, dtype=None, copy=True\)",
         "only the non-zero pattern is kept, the same in the input's own dtype"),
        (r"sp\.csr_matrix\(matrix, dtype=np\.float32, (copy=(None|False))?\)",
         "without a copy, sum_duplicates / eliminate_zeros / sort_indices rewrite the caller's matrix in place into the same matrix"),
        (r"row = torch\.repeat_interleave\(counts\)$", "repeat_interleave(repeats) repeats arange(len(repeats)): the same"),
    ],
    "layers/multibehavior/target_views.py": [
        (r"sp\.csr_matrix\(matrix, dtype=None, copy=True\)", "behavior matrices are float32 already (and every consumer casts)"),
    ],    "layers/edge_pruning.py": [
        (r"d_[ui] = torch\.bincount\((users|items), \)", "the degrees are read only at the edges' own users and items, which bincount covers"),
        (r"self\.device = None$", "device None is the CPU the tests (and the default config) run on"),
        (r"\.clamp_\(min=(1e-20|None), max=(1\.0 \+ 1e-7|2\.0 - 1e-7|None)\)|\.clamp_\(min=None, max=1\.0 - 1e-7\)"
         r"|\.clamp_\(max=1\.0 - 1e-7\)|\.clamp_\(min=1e-20, \)",
         "guards of log(-log U) at U = 0 and U near 1: they change a key only for draws torch.rand makes with probability < 2e-7"),
        (r"torch\.topk\(keys, self\.n_kept, (sorted=True)?\)", "the order of the kept indices is never used (a CSR matrix, a coalesced graph)"),
    ],
    "layers/csr.py": [
        (r"repeat_interleave\(counts\)$|repeat_interleave\(self\.degrees\(\)\)$",
         "repeat_interleave(repeats) repeats arange(len(repeats)): the same"),
        (r"torch\.zeros\(len\(rows\), self\.shape\[1\], (dtype=None, )?device=rows\.device\)",
         "float32 is the default dtype, and every caller uses dense's default float32"),
        (r"pick = torch\.minimum\(pick, \(counts (\+ 1\)\.clamp\(min=0\)|- 1\)\.clamp\(min=1\))\)",
         "torch.rand < 1 - 2^-24, so rand * count never rounds up to count (< 2^24): the guard never binds"),
        (r"def sample_outside\(self, rows, low=1, max_rounds=21\)",
         "one more rejection round before the exact fallback: the same uniform distribution over free columns"),
    ],
}

# Survivors killed by a test added after the run: {survivor: the test}. ``--verify`` re-checks each by applying
# the survivor's stored diff to the source and running that test; ``--rerender`` notes them in the results file.
KILLED = {}

# Survivors whose diff alone cannot say why they are equivalent (the same line is a real mutant elsewhere):
# {survivor: one line why}.
EQUIVALENT_NAMES = {
    "recbole_spectral.layers.edge_pruning.xǁDegreeSensitiveEdgePruningǁsample__mutmut_1":
        "at n_kept = n_edges sample_edges makes the same check (every edge, no draw): renormalised, the full graph",
}


def _kills(test, module, *mutants):
    KILLED.update({f"recbole_spectral.{module}.{mutant}": test for mutant in mutants})


_kills("tests/test_graph.py::test_propagation_without_the_input_layer_and_a_clear_error_for_an_unknown_aggregation",
       "layers.graph", "x_propagate__mutmut_10", "x_propagate__mutmut_7")
_kills("tests/test_graph.py::test_propagation_gradient_is_the_transpose_product_unless_the_graph_is_declared_symmetric",
       "layers.graph", "x_propagate__mutmut_15", "x_propagate__mutmut_5")
_kills("tests/test_graph.py::test_fixed_sparse_product_and_its_gradient_use_the_stored_transpose", "layers.graph",
       "xǁFixedSparseǁ__init____mutmut_2", "xǁFixedSparseǁ__init____mutmut_5", "xǁFixedSparseǁ__matmul____mutmut_2",
       "xǁ_FixedSpMMǁforward__mutmut_1")
T = "tests/test_mb_baselines.py::test_target_guided_attention_"
_kills(T + "with_isolated_last_nodes_or_a_single_edge", "layers.multibehavior.target_attention",
       "xǁTargetGuidedAttentionǁ__init____mutmut_11", "xǁ_Directionǁ__init____mutmut_34", "xǁ_Directionǁ__init____mutmut_36",
       "xǁ_Directionǁdots__mutmut_9", "xǁ_Directionǁreceiver_major__mutmut_8", "xǁ_Directionǁsender_major__mutmut_8")
_kills(T + "without_edges_passes_nothing", "layers.multibehavior.target_attention",
       "xǁTargetGuidedAttentionǁ__call____mutmut_1")
_kills(T + "is_stable_for_large_scores", "layers.multibehavior.target_attention", "xǁ_Directionǁsoftmax__mutmut_30")
H = "tests/test_hsno.py::test_"
_kills(H + "masking_one_band_or_p_zero_keeps_everything_and_draws_nothing", "layers.multimodal.hsno",
       "x_band_keep_mask__mutmut_1", "x_band_keep_mask__mutmut_2", "x_band_keep_mask__mutmut_5")
_kills(H + "masking_draws_from_the_given_generator_only", "layers.multimodal.hsno", "x_band_keep_mask__mutmut_15",
       "x_band_keep_mask__mutmut_19", "x_band_keep_mask__mutmut_31", "x_band_keep_mask__mutmut_36")
_kills(H + "a_row_that_lost_every_band_keeps_one_chosen_uniformly", "layers.multimodal.hsno", "x_band_keep_mask__mutmut_38")
_kills(H + "ghsno_rank_one_works_and_rank_zero_is_refused", "layers.multimodal.hsno",
       "xǁGHSNOǁ__init____mutmut_2", "xǁGHSNOǁ__init____mutmut_3", "xǁGHSNOǁ__init____mutmut_4")
_kills(H + "ghsno_starts_near_uniform_mixing_unit_gains_and_a_unit_scale_gate", "layers.multimodal.hsno",
       *(f"xǁGHSNOǁ__init____mutmut_{i}" for i in (8, 13, 16, 21, 30, 32, 33)))
_kills(H + "released_operator_defaults_are_the_released_codes", "layers.multimodal.hsno",
       *(f"xǁReleasedHSNOǁ__init____mutmut_{i}" for i in (1, 3, 26, 36, 37)))
_kills(H + "released_band_weights_start_within_a_thousandth_of_one", "layers.multimodal.hsno",
       *(f"xǁReleasedHSNOǁ__init____mutmut_{i}" for i in (79, 82, 83)))
_kills(H + "released_operator_keeps_the_eps_of_its_norm_ratio_on_tiny_signals", "layers.multimodal.hsno",
       "xǁReleasedHSNOǁforward_many__mutmut_56", "xǁReleasedHSNOǁforward_many__mutmut_63")
_kills("tests/test_ssr.py::test_released_operator_without_context_scale_stays_within_the_bounded_factors",
       "layers.multimodal.hsno", "xǁReleasedHSNOǁ__init____mutmut_40", "xǁReleasedHSNOǁforward_many__mutmut_7")
B = "tests/test_base.py::test_"
_kills(B + "the_kind_of_a_dataset", "model.base", *(f"x_dataset_kind_of__mutmut_{i}" for i in (15, 20, 21)))
_kills(B + "a_model_runs_on_the_kinds_it_declares_and_is_refused_on_others_in_one_line", "model.base",
       *(f"x_check_dataset_kind__mutmut_{i}" for i in (2, 4, 7, 8, 9, 10, 11, 16, 17, 18, 20)))
_kills(B + "an_unknown_declared_kind_is_named", "model.base", "x_check_dataset_kind__mutmut_13", "x_check_dataset_kind__mutmut_14")
_kills(B + "building_a_model_on_the_wrong_kind_of_dataset_is_refused", "model.base",
       *(f"xǁSpectralRecommenderǁ__init____mutmut_{i}" for i in (3, 5, 9)))
_kills(B + "a_training_free_model_holds_one_zero_and_its_loss_is_zero_with_zero_gradient", "model.base",
       "xǁTrainingFreeRecommenderǁ__init____mutmut_6", "xǁTrainingFreeRecommenderǁ__init____mutmut_8",
       "xǁTrainingFreeRecommenderǁcalculate_loss__mutmut_2")
S = "tests/test_spectramb.py::test_"
_kills(S + "observed_pairs_of_an_empty_or_one_pair_matrix", "layers.multibehavior.observed",
       *(f"xǁObservedPairsǁcontains__mutmut_{i}" for i in (2, 3, 4, 6, 7)))
_kills(S + "target_views_leave_their_inputs_unchanged_and_refuse_unknown_kinds", "layers.multibehavior.target_views",
       "x__binary__mutmut_4", "x__binary__mutmut_7", "x__binary__mutmut_8", "x_target_view_matrices__mutmut_1",
       "x_target_view_matrices__mutmut_3")
_kills("tests/test_mm_baselines.py::test_one_kept_edge_is_drawn_with_probability_proportional_to_its_weight",
       "layers.edge_pruning", "xǁDegreeSensitiveEdgePruningǁsample_edges__mutmut_17")
_kills("tests/test_mm_baselines.py::test_keeping_every_edge_draws_nothing_and_pruned_matrices_keep_their_shape",
       "layers.edge_pruning", "xǁDegreeSensitiveEdgePruningǁsample_edges__mutmut_1",
       "xǁDegreeSensitiveEdgePruningǁsample_matrix__mutmut_9", "xǁDegreeSensitiveEdgePruningǁsample_matrix__mutmut_11")
_kills("tests/test_mb_baselines.py::test_csr_rows_of_empty_one_entry_and_empty_last_rows", "layers.csr",
       *(f"xǁCSRRowsǁcontains__mutmut_{i}" for i in (2, 3, 4, 6, 7, 19)), *(f"xǁCSRRowsǁsample__mutmut_{i}" for i in (5, 7, 8, 27)))
_kills("tests/test_mb_baselines.py::test_sample_outside_falls_back_to_the_exact_complement_of_count_rows_and_keeps_full_rows",
       "layers.csr", "xǁCSRRowsǁsample_outside__mutmut_43", "xǁCSRRowsǁsample_outside__mutmut_49")


def only_drops(removed, added, argument):
    """Whether the mutant only replaced ``argument`` by None or left it out."""
    return any(r.replace(argument, "None") == a or r.replace(", " + argument, ", ") == a or r.replace(", " + argument, "") == a
               or r.replace(argument, "") == a for r, a in zip(removed, added)) and len(removed) == len(added)


def explain(text, target=None):
    removed = [line[1:] for line in text.splitlines() if line.startswith("-")]
    added = [line[1:] for line in text.splitlines() if line.startswith("+")]
    if only_drops(removed, added, "self.device"):
        return "device None is the CPU the tests (and the default config) run on"
    if only_drops(removed, added, "dtype=torch.float32") or only_drops(removed, added, "dtype=np.float32"):
        return "the input is float32 already"
    for r, a in zip(removed, added):  # a device argument dropped or set to None: the CPU here
        if len(removed) == len(added) and (re.sub(r"(, )?device=[\w.]+", "", r).replace(", )", ")")
                                           == re.sub(r"(, )?device=None", "", a).replace(", )", ")")):
            return "device None is the CPU the tests (and the default config) run on"
    if only_drops(removed, added, "dim=-1"):
        return "dim -1 is the default"
    if any("shape[-1]" in r for r in removed) and any(re.fullmatch(r"\s*d = (None|xs\[1\]\.shape\[-1\])", a) for a in added):
        return "irfft's default length 2(m - 1) is d for the even d every filter requires; all signals share d"
    if only_drops(removed, added, "p=2"):
        return "p=2 is the default"
    if only_drops(removed, added, "symmetric=True"):
        return "symmetric only picks the faster backward for a symmetric graph (same values and gradients)"
    rules = EQUIVALENT + [rule for path, scoped in EQUIVALENT_IN.items() if target and target.endswith(path) for rule in scoped]
    why = next((why for pattern, why in rules if any(re.search(pattern, line) for line in added)), None)
    if why is None and any("for diagnose" in line or "# diagnose" in line for line in removed):
        return "OUTSIDE: diagnose-only state (tests/test_diagnose.py, not in this file's selection)"
    return why


def write(out, target, status, survivors, seconds):
    """Add (or replace) ``target``'s section of the results file."""
    counts = {}
    for s in status.values():
        counts[s] = counts.get(s, 0) + 1
    caught = sum(counts.get(k, 0) for k in ("killed", "timeout", "crashed"))  # a hung or crashed test caught it too
    judged = caught + counts.get("survived", 0)
    score = caught / judged if judged else float("nan")
    unexplained = [n for n, text in survivors.items() if explain(text, target) is None]
    lines = [f"## {target}\n", f"score {score:.1%} ({caught} caught of {judged}; "
             + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + f"; {len(unexplained)} survivors unexplained; "
             f"{seconds / 60:.0f} min); tests: " + ", ".join(TESTS[target]) + "\n"]
    for name, text in survivors.items():
        why = explain(text, target)
        note = "" if why is None else f"; {why[len('OUTSIDE: '):]}" if why.startswith("OUTSIDE: ") else f"; equivalent: {why}"
        lines.append(f"`{name}` ({status[name]}{note})\n```diff\n{text}\n```\n")
    text = Path(out).read_text()
    head, *sections = text.split("\n## ")
    sections = {section.split("\n", 1)[0]: "## " + section for section in sections}
    sections[target] = "\n".join(lines)
    order = [t for t in TESTS if t in sections]
    Path(out).write_text(head.rstrip("\n") + "\n\n" + "\n".join(sections[t].rstrip("\n") + "\n" for t in order))


ENTRY = re.compile(r"`(?P<name>[^`]+)` \((?P<status>[a-z ]+)(;[^\n]*)?\)\n```diff\n(?P<diff>.*?)\n```\n", re.S)


def stored_survivors(out):
    """{survivor: diff} of every section of the results file."""
    return {m["name"]: m["diff"] for m in ENTRY.finditer(Path(out).read_text())}


def note(name, text, target):
    """The one line after a survivor's status: why it is equivalent, or which test kills it since the run."""
    if name in KILLED:
        return f"; killed after the run by {KILLED[name]} (checked by applying its diff: --verify)"
    why = EQUIVALENT_NAMES.get(name) or explain(text, target)
    return "" if why is None else f"; {why[len('OUTSIDE: '):]}" if why.startswith("OUTSIDE: ") else f"; equivalent: {why}"


def rerender(out, targets=None):
    """Re-apply ``explain`` and ``KILLED`` to the survivors already in the results file (after a rule or a test
    was added), without running mutmut again: each section's notes and its counts (only ``targets``' sections
    when given). The score stays mutmut's."""
    text = Path(out).read_text()
    head, *sections = text.split("\n## ")
    rendered = []
    for section in sections:
        target = section.split("\n", 1)[0]
        if targets and target not in targets:
            rendered.append("## " + section)
            continue
        entries = list(ENTRY.finditer(section))
        killed = sum(m["name"] in KILLED for m in entries)
        unexplained = sum(m["name"] not in KILLED and m["name"] not in EQUIVALENT_NAMES and explain(m["diff"], target) is None
                          for m in entries)
        lines = section.split("\n")
        lines[2] = re.sub(r"(\d+ killed after the run by new tests, )?\d+ survivors unexplained",
                          (f"{killed} killed after the run by new tests, " if killed else "")
                          + f"{unexplained} survivors unexplained", lines[2])
        gap = "\n" if "```\n\n`" in section else ""  # sections written with a blank line between entries keep it
        body = "\n".join(lines[:3]) + "\n" + gap
        for match in entries:
            body += (f"`{match['name']}` ({match['status']}{note(match['name'], match['diff'], target)})\n```diff\n"
                     f"{match['diff']}\n```\n{gap}")
        rendered.append("## " + body)
    Path(out).write_text(head.rstrip("\n") + "\n\n" + "\n".join(r.rstrip("\n") + "\n" for r in rendered))


def verify(out, names):
    """Apply each survivor's stored diff to the working tree's file and run the test ``KILLED`` names for it (in a
    forked child of one process that has imported torch and pytest once); the file is restored after each.
    Prints CAUGHT (the test failed), MISSED (it passed) or the error; returns the number not caught."""
    import pytest  # noqa: F401 -- imported once, before the forks
    import numpy, scipy.sparse, torch  # noqa: F401
    sys.dont_write_bytecode = True  # a mutated module must never leave a .pyc behind
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    stored = stored_survivors(out)
    failures = 0
    for name in names:
        module = name.rsplit(".", 1)[0]
        path = ROOT / (module.replace(".", "/") + ".py")
        original = path.read_text()
        try:
            mutated = apply_mutant(original, name, stored[name])
        except (ValueError, KeyError, StopIteration) as err:
            print(f"SETUP   {name}: {err}", flush=True)
            failures += 1
            continue
        try:
            path.write_text(mutated)
            pid = os.fork()
            if pid == 0:  # the child imports the mutated module fresh
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 1)
                os.dup2(devnull, 2)
                import pytest as child_pytest
                os._exit(int(child_pytest.main(["-q", "-x", "-p", "no:cacheprovider", KILLED[name]])))
            _, status = os.waitpid(pid, 0)
        finally:
            path.write_text(original)
        code = os.waitstatus_to_exitcode(status)
        failures += code != 1
        print(f"{'CAUGHT' if code == 1 else 'MISSED' if code == 0 else f'rc={code}':7} {name}  ({KILLED[name]})", flush=True)
        # rc < 0: the test process died (e.g. a segfault), not a failing assertion: counted as not caught
    return failures


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", nargs="*", default=list(TESTS), help="files to mutate (default: all, in priority order)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "verification" / "mutation.md"))
    parser.add_argument("--work", default="/tmp/recbole-spectral-mutation")
    parser.add_argument("--log", default="/tmp/recbole-spectral-mutation.log")
    parser.add_argument("--rerender", action="store_true", help="only re-apply the equivalence rules to the results file")
    parser.add_argument("--collect", action="store_true", help="write the section of --files' first file from --work")
    parser.add_argument("--verify", nargs="*", metavar="TEXT",
                        help="check the KILLED entries (those whose name contains a TEXT; all without one) by applying "
                             "each survivor's stored diff and running its test")
    args = parser.parse_args(argv)
    if args.rerender:
        rerender(args.out, None if args.files == list(TESTS) else args.files)
        return
    if args.verify is not None:
        names = [n for n in KILLED if not args.verify or any(t in n for t in args.verify)]
        sys.exit(1 if verify(args.out, names) else 0)
    if args.collect:  # the last run in --work, e.g. one stopped part-way: its section, without running mutmut
        write(args.out, args.files[0], *collect(args.files[0], Path(args.work)))
        return
    unknown = [f for f in args.files if f not in TESTS]
    if unknown:
        parser.error(f"no test selection for {unknown}; known: {list(TESTS)}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    if not Path(args.out).exists():
        Path(args.out).write_text("# Mutation testing of model/ and layers/\n\nCommand: `nice -n 10 python tools/mutation.py "
                                  "[--files ...]` (mutmut 3, one mutant at a time; see the script's docstring).\n")
    for target in args.files:
        status, survivors, seconds = run_file(target, Path(args.work), args.log)
        write(args.out, target, status, survivors, seconds)
        print(f"{target}: {sum(s == 'killed' for s in status.values())}/{len(status)} killed, "
              f"{len(survivors)} survived ({seconds / 60:.1f} min)", flush=True)


if __name__ == "__main__":
    main()
