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

Triage after a run, without running mutmut again: a survivor is either equivalent (a rule of ``EQUIVALENT`` /
``EQUIVALENT_IN``, or ``EQUIVALENT_NAMES``), killed by a test added since (``KILLED``: survivor -> test), or left
with one line why (``LEFT``). ``--verify [TEXT ...]`` checks every ``KILLED`` claim: it applies the survivor's
stored diff to the working tree's file, runs that one test (the file is restored after each) and prints CAUGHT or
MISSED; ``--rerender --files F ...`` then notes the triage in F's sections (the score stays mutmut's).
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
    f"{MODEL}/multibehavior/cascadingrank.py": MB_TESTS + ["tests/test_cascade_term.py"],  # its stages=True path
    f"{MODEL}/multibehavior/unionlightgcn.py": ["tests/test_reference_mb.py", "tests/test_history_term.py"],
    f"{LAYERS}/multibehavior/history_term.py": ["tests/test_history_term.py", "tests/test_reference_mb.py"],
    f"{LAYERS}/multibehavior/cascade_term.py": ["tests/test_cascade_term.py"],
    f"{MODEL}/general/simgcl.py": ["tests/test_simgcl.py"],
    f"{MODEL}/multimodal/ssr.py": ["tests/test_reference_mm.py", "tests/test_reference_blocks.py", "tests/test_ssr.py"],
    f"{LAYERS}/multimodal/hsno.py": ["tests/test_reference_blocks.py", "tests/test_hsno.py", "tests/test_reference_mm.py",
                                     "tests/test_ssr.py"],  # test_ssr: the released operator without context scale
    f"{LAYERS}/contrastive.py": ["tests/test_reference_blocks.py", "tests/test_contrastive.py", "tests/test_reference_mm.py"],
    f"{LAYERS}/multibehavior/fusion.py": ["tests/test_reference_blocks.py", "tests/test_reference_mb.py", "tests/test_feature_fft.py"],
    f"{LAYERS}/feature_fft.py": ["tests/test_feature_fft.py", "tests/test_reference_mm.py", "tests/test_reference_mb.py"],
    f"{LAYERS}/graph.py": ["tests/test_graph.py", "tests/test_reference_mm.py", "tests/test_reference_mb.py"],
    f"{LAYERS}/multibehavior/target_attention.py": ["tests/test_mb_baselines.py", "tests/test_reference_mb.py"],
    f"{LAYERS}/multibehavior/observed.py": ["tests/test_spectramb.py", "tests/test_reference_mb.py"],
    f"{LAYERS}/multibehavior/target_views.py": ["tests/test_spectramb.py", "tests/test_reference_mb.py"],
    f"{MODEL}/base.py": ["tests/test_base.py", "tests/test_reference_mm.py", "tests/test_reference_mb.py", "tests/test_mm_baselines.py",
                         "tests/test_history_term.py", "tests/test_cascade_term.py"],  # the add-on terms live in the base class
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
    if len(removed) > 1 and len(added) == 1:  # consecutive lines joined into one (e.g. a call's argument dropped)
        span = range(node.lineno - 1, node.end_lineno - len(removed) + 1)
        hits = [i for i in span if [lines[i + k].strip() for k in range(len(removed))] == [r.strip() for r in removed]]
        if len(hits) != 1:
            raise ValueError(f"{name}: the {len(removed)} removed lines occur {len(hits)} times in {plain_name(function)}")
        line = lines[hits[0]]
        lines[hits[0]: hits[0] + len(removed)] = [line[:len(line) - len(line.lstrip())] + added[0].strip() + "\n"]
        return "".join(lines)
    if not removed or len(removed) != len(added):
        raise ValueError(f"{name}: no line-for-line diff to apply")
    for old, new in zip(removed, added):
        hits = [i for i in range(node.lineno - 1, node.end_lineno) if lines[i].strip() == old.strip()]
        if len(hits) > 1 and name in OCCURRENCE:  # the same line twice in the function: which one mutmut changed
            hits = [hits[OCCURRENCE[name]]]
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
    (r"\.to\(None\)|\(interactions, None\)|\(interactions, \)|ObservedPairs\(m, (None)?\)", "device None is the CPU the tests (and the default config) run on"),
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
    "model/multibehavior/cascadingrank.py": [
        (r'take\((None|"XX\w+XX"|"[A-Z]_[A-Z]"|f"z\{b (/ 2|% 3)\}_[ui]"), ',
         "speed only: another key is a work array of its own instead of one shared or reused (each is written before it is read)"),
        (r"torch\.abs\(d_[ui], (out=None)?\)|g\.ones_i, (out=None)?\)",
         "speed only: a fresh array instead of the reused one for |δ| or the item part of a norm (the same values)"),
        (r"torch\.empty\(batch, (device=None)?\)|_layout\(act_[ui], d[ui] == 0, None\)|_csr32\(step(\.T)?, None\)"
         r"|\.tocsr\(\), (None)?\)$|torch\.ones\(self\.n_[ui], (device=None)?\)",
         "device None is the CPU the tests (and the default config) run on"),
        (r"residual\[running\] < self\.tolerance", "differs only when a change equals the tolerance exactly"),
        (r"if (2 / |3 \* )int\(running\.sum\(\)\) <= len|if 2 \* int\(running\.sum\(\)\) < len",
         "speed only: converged columns leave the block at another share of it (compaction moves their frozen x^{t+1}, "
         "never changes it; tests/test_mb_baselines.py::test_cascading_rank_stops_each_user_at_its_own_step has blocks "
         "that compact several times)"),
        (r"last=(None|b == len\(self\.graphs\) \+ 1)\)", "speed only: the target behavior also keeps r_u, which nothing reads"),
        (r"numel\(\) <= rows \* cols", "speed only: a buffer of exactly the size asked for is replaced by a fresh one"),
        (r'z_u = z_i = ""', "the first behavior never reads its cascade (its move is None)"),
        (r"if not bool\(None\):", "with every user of the block active in b the correction selects no column: the same"),
        (r"torch\.from_numpy\(m\.data\), device=device\)",
         "every row and column of γ Ã_b on active nodes holds an entry (kept at gamma 0 too): the size torch infers is the shape"),
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
        (r"np\.arange\(self\.n_users, \)", "np.arange's default integer is int64 on Linux and macOS (int32 only on Windows before NumPy 2)"),
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
    ],    "layers/knn.py": [
        (r"np\.load\(cache_file, (allow_pickle=None)?\) as stored", "np.load's allow_pickle defaults to False, and None is falsy"),
        (r"torch\.topk\((scores, min\(k, scores\.shape\[1\]\)|val, k), (sorted=False|dim=1, (sorted=True)?)\)",
         "topk's default dim -1 is dim 1 of the 2-D scores; the order within a row's top k is never used (a set of edges)"),
        (r"torch\.topk\(all_rows\[part\] @ all_rows\.T, k_eff, \)", "topk's default dim -1 is dim 1 of the 2-D scores"),
        (r"mkstemp\(dir=folder, (prefix=None, suffix=\"\.tmp\"|prefix=os\.path\.basename\(cache_file\) \+ \"\.\", (suffix=None|)"
         r"|suffix=\"\.tmp\"|prefix=os\.path\.basename\(cache_file\) \+ \"XX\.XX\", suffix=\"\.tmp\""
         r"|prefix=os\.path\.basename\(cache_file\) \+ \"\.\", suffix=\"(XX\.tmpXX|\.TMP)\")\)",
         "only the temporary file's name changes: mkstemp makes it unique in the cache's folder either way"),
        (r"check_invariants=(None|False)\)\.coalesce|\(n, n\), \)\.coalesce",
         "the check only validates indices, in range for every graph built here or cached with a matching checksum"),
        (r"\.detach\(\)\.to\((None, )?torch\.float32\)", "device only: the features are on the CPU the tests (and the default config) use"),
        (r"features\.detach\(\)\.to\(\"cpu\", (None)?\)\.numpy\(\)", "np.ascontiguousarray casts to float32 right after"),
        (r"found\.reshape\(-2\)", "NumPy (1.26 here) reads any negative size as the unknown one"),
        (r"x = torch\.as_tensor\(features\)\.detach\(\)\.to\(\"cpu\", (None)?\)$",
         "faiss casts the unit rows to float32 itself, and the recall check is exact in either precision"),
        (r"max\(2, 2 \*\* 26 // n\)|max\(1, (2 \* 26|3 \*\* 26|2 \*\* 27) // n\)",
         "the chunk only sets how many sampled rows are scored at once, not the hits"),
        (r"faiss\.IndexHNSWFlat\(d, 32, \)", "on unit rows the L2 distance orders neighbours as the inner product does"),
        (r"float\(\"-INF\"\)", "float('-INF') is -inf"),
        (r"torch\.where\(valid, 2\.0 / norms", "every cosine scaled by 4: each row's order is unchanged"),
        (r"max\(2, math\.isqrt\(BLOCK_ENTRIES\)\)", "isqrt(2^22) = 2048 > 2"),
        (r"_to_sparse\((\*cached|rows, cols, values), n, None\)|device = None$|isinstance\(features, torch\.Tensor\)\) and False",
         "device None is the CPU the tests (and the default config) run on"),
        (r"normalized_knn_values\(rows, cols, None\)|np\.bincount\(rows, (minlength=None)?\)\.astype",
         "degrees are read only at the edges' rows and columns (every column is a non-zero row, which has k edges)"),
        (r"np\.where\(degree > 0, degree \*\* -0\.5, (None|1\.0)\)$", "a zero degree's factor is never read"),
        (r"extra\), so it is built exactly, in o\(|XXextra\), so it is built|EXTRA\), SO IT IS BUILT", "a log line only"),
        (r"fingerprint = \"\"$", "read only when a cache file is given, which sets it"),
        (r"np\.ascontiguousarray\(array, \)$", "the arrays are int32 / float32 already at both calls (cast before saving, loaded as saved)"),
        (r"blake2b\(f\"\{int\(n\)\}\|\{int\(k\)\}\|\{fingerprint\}\"\.encode\(\), (digest_size=17)?\)"
         r"|blake2b\(memoryview\(array\)\.cast\(\"B\"\), (digest_size=17)?\)|memoryview\(array\)\.cast\(\"b\"\)",
         "another digest length or byte view of the same bytes: the same at writing and at reading"),
    ],    "layers/graph_bands.py": [
        (r"np\.asarray\(borders, \)", "integer borders become floats at once (float clip bounds, - 1.0, float() in every use)"),
        (r"np\.asarray\((moments|x|adjacency_poly|prefilter), \)", "float64 already, or only ever multiplied by floats"),
        (r"borders = np\.array\(borders, \)$", "the start borders come from energy_quantiles (float64)"),
        (r"edges = \[-2\.0\] \+", "indicator_coefficients clips the lower end to -1"),
        (r"if \(coeffs\) or True else identity", "np.sum([], axis=0) is 0.0: the identity either way"),
        (r"coefficients\.tolist\(\) if \(isinstance\(coefficients, np\.ndarray\)\) (and False|or True)",
         "the coefficients arrive as an ndarray (filter_coefficients; combine reads .shape): its rows or tolist() give the same floats"),
        (r"np\.ones\(order \+ 2\)", "only g[0..order] are read"),
        (r"total = cdf\[-1\] if (\(cdf\[-1\] > 0\) or True|cdf\[-1\] >= 0) else 1\.0|total = cdf\[-1\] if cdf\[-1\] > 0 else 2\.0",
         "differs only for a zero signal (F = 0 everywhere), where np.interp puts every border at the top of the grid either way"),
        (r"total = cdf\[-1\] if cdf\[(\+1|-2)\] > 0 else 1\.0",
         "the Jackson-damped density is a non-negative polynomial density: F(-0.999) > 0 exactly when F(1) > 0"),
        (r"if \(mean > 0\) or True else|if mean >= 0 else 0\.0|if mean > 0 else 1\.0",
         "the shares sum to ||X||^2 > 0; for X = 0 (a spread of nan or 1 instead of 0) no candidate improves either way"),
        (r"energies / mean \+ 1\.0\) \*\* 2|energies / mean - 2\.0\) \*\* 2",
         "sum(r) = M for r = S/mean, so sum((r+1)^2) and sum((r-2)^2) are sum((r-1)^2) plus a constant: the same search"),
        (r"improved = None$", "None is falsy like False"),
        (r"^\s*improved = True$", "a sweep that moves nothing leaves the borders, so every later sweep repeats it: only the cost changes"),
        (r"if score <= best - 1e-12:", "differs only for a score exactly 1e-12 below the best"),
        (r"self\.n_nodes = norm_adj\.shape\[1\]", "the adjacency is square"),
        (r"self\.coefficients = \"\"", "overwritten by _refresh() at the end of __init__"),
        (r"self\.shares = \"\"", "set by calibrate() before anything reads it (None and '' are both unusable before)"),
        (r"elif n_bands >= 3:", "the elif is reached only when n_bands != 3"),
        (r"coeffs = np\.zeros\(\(n_bands, order \+ 2\)\)", "the extra order stays zero and is trimmed with the unused ones"),
        (r"in_x = p / \(-1\.0\) \*\* np\.arange", "(-1)^k is +-1: dividing by it is multiplying by it"),
        (r"npcheb\.chebval\(evals\.cpu\(\)\.numpy\(\), prefilter\), \)", "chebval of the float64 eigenvalues is float64, their dtype"),
    ],
}

# Survivors killed by a test added after the run: {survivor: the test}. ``--verify`` re-checks each by applying
# the survivor's stored diff to the source and running that test; ``--rerender`` notes them in the results file.
KILLED = {}

# A removed line that occurs more than once in its function: {survivor: which occurrence (0-based) mutmut changed},
# read from the order of mutmut's numbering (mutants of the first occurrence come first).
OCCURRENCE = {f"recbole_spectral.model.multibehavior.cascadingrank.xǁCascadingRankǁ_stage__mutmut_{i}": k
              for i, k in ((192, 0), (219, 1), (255, 0), (359, 1))}

# Survivors left as they are, neither equivalent nor killed, with one line why (tuning constants of an approximate
# index, guards no test input can reach without replacing torch's generator, ...): {survivor: why}.
LEFT = {}
_GB = "recbole_spectral.layers.graph_bands."
# graph_bands.py, the run of 2026-12-07 (numbers of that run)
LEFT.update({_GB + f"x_energy_quantiles__mutmut_{i}": "another quantile grid (2002 points, or stretched to [-2, 1] or [-1, 2]): "
             "the start borders move by interpolation error only (< 1e-5 measured, < 3e-7 on the test graph), far below "
             "the <= 0.01 grid of the refinement that follows" for i in (1, 10, 11)})
_KNN = "recbole_spectral.layers.knn.x_approximate_knn_edges__mutmut_"
_TUNING = "a tuning constant of the approximate index: it moves the recall (measured and logged at build time), not what an edge means"
LEFT.update({_KNN + str(i): _TUNING for i in (1, 67, 69, 76, 77, 78, 85, 95, 102, 105, 111, 112, 115)})
LEFT.update({
    _KNN + "98": "the IVF training sample's seed (IVF only above HNSW_MAX_ITEMS): recall, and run-to-run reproducibility of IVF graphs",
    **{_KNN + str(i): "which rows the recall is estimated on (with or without repeats), not the graph" for i in (145, 149, 152, 157)},
    _KNN + "187": "the recall estimate over more than one chunk of sampled rows (n > 67,000 items), not the graph",
    _KNN + "127": "only when faiss finds fewer than k neighbours (returns -1), which the tests' small indexes never do",
    "recbole_spectral.layers.knn.x_knn_graph__mutmut_3": "the size limit of method=auto (50,000 vs 50,001 items): too large to build in a test",
    "recbole_spectral.layers.knn.x_knn_edges__mutmut_3":
        "float64 features scored in float64 instead of float32: the same lists except at near-ties below float32 resolution",
})

# Survivors whose diff alone cannot say why they are equivalent (the same line is a real mutant elsewhere):
# {survivor: one line why}.
_SSR = "recbole_spectral.model.multimodal.ssr.xǁSSRǁ"
EQUIVALENT_SSR = {
    **{_SSR + f"_pruned__mutmut_{i}": "train_adj is built only when edge_keep_ratio < 1 (None otherwise)" for i in (3, 4)},
    _SSR + "_sync_borders__mutmut_2": "the cache exists from construction on (calibrate_bands builds it): the same bands rebuilt",
    _SSR + "calculate_loss__mutmut_133": "with lambda_reg 0 the term adds 0 x regulariser; with sum fusion the regulariser is 0",
    **{_SSR + f"calculate_loss__mutmut_{i}": "alignment_loss is 0 with fewer than 2 views, and lambda_cl 0 adds 0 x loss"
       for i in (142, 143, 145)},
    **{_SSR + f"calculate_loss__mutmut_{i}": "torch.full infers int64 from the integer fill value n" for i in (156, 160)},
    _SSR + "calculate_loss__mutmut_25": "band_keep_mask keeps every band when M = 1: the masked copy is the unmasked one",
    **{_SSR + f"fuse_many__mutmut_{i}": "slice(None, n) and slice(n) are slice(0, n)" for i in (21, 23)},
    _SSR + "fuse_many__mutmut_29": "the operator on zero rows returns zero rows: skipping an empty slice only saves the call",
    _SSR + "fusion_regularizer__mutmut_4": "calculate_loss calls it only with fusion hsno; the zero branch serves no training path",
    **{_SSR + f"user_item_mean__mutmut_{i}": "only users without training items take the other branch (or the 1e-12 floor), and "
       "their rows of R are empty: D_u^-1 R is the same" for i in (13, 17, 25, 26)},
    _SSR + "calculate_loss__mutmut_181": "first < n: it indexes the first n entries of either slice",
    _SSR + "calculate_loss__mutmut_20": "node n_users is item 0, RecBole's padding item, which no batch holds",
    **{_SSR + f"calculate_loss__mutmut_{i}": "without masking the masked copy is the unmasked one (consistency 0); with "
       "lambda_mask 0 it adds 0 x consistency" for i in (43, 71)},
    **{_SSR + f"{f}__mutmut_1": "every caller passes n_user_rows: the default was never read (removed from ssr.py since the run)"
       for f in ("fuse", "fuse_many")},
    _SSR + "check_hyperparameters__mutmut_89": "the default is read only for settings without edge_keep_ratio, where any "
    "default >= 1.0 refuses held_out alike (test_held_out_pairs_without_an_edge_keep_ratio_are_refused)",
    _SSR + "__init____mutmut_12": "the dataset's float64 0/1 matrix kept as float64: every consumer casts to float32 "
    "(to_torch_sparse, the normalised graph) or reads only the pattern (the edge sampler, the kept keys)",
    **{_SSR + f"__init____mutmut_{i}": "inter_matrix is float64 (np.ones in RecBole's and the in-test dataset), so the float32 "
       "cast copies it whatever copy says" for i in (13, 16, 20)},
    **{_SSR + f"__init____mutmut_{i}": "normalized_bipartite_graph(self.interactions) rebinarises this float32 matrix in place "
       "before anything reads it (bipartite_adjacency's float32 csr_matrix shares its data array)" for i in (21, 22)},
    **{_SSR + f"__init____mutmut_{i}": "nothing read self.n_nodes (dead; the line is removed from ssr.py since the run)"
       for i in (23, 24)},
    _SSR + "__init____mutmut_281": "read only while _pruned(), i.e. after resample_training_graph has set it",
    _SSR + "__init____mutmut_282": "read only with loss_pairs held_out while _pruned(), i.e. after resample_training_graph has set it",
    _SSR + "__init____mutmut_343": "read only while _pruned() on the paths that have user_mean, where resample_training_graph "
    "has set it",
    _SSR + "__init____mutmut_344": "overwritten by calibrate_bands() at the end of __init__ (_cached_borders is None: it rebuilds)",
    **{_SSR + f"__init____mutmut_{i}": "user_mean is read only on the gated paths with item_mean users, where it is built either "
       "way: elsewhere only its cost (and user_mean_train's) changes" for i in (337, 338)},
    **{_SSR + f"_projection_input__mutmut_{i}": "a (d,) mean broadcasts over the rows like the (1, d) one" for i in (7, 10)},
}
_CT = "recbole_spectral.layers.multibehavior.cascade_term."
EQUIVALENT_SSR["recbole_spectral.layers.graph.x_bipartite_adjacency__mutmut_3"] = (
    "bmat casts the result to float32, and the binarised entries (1.0) are exact in any dtype")
EQUIVALENT_NAMES = {
    **EQUIVALENT_SSR,
    **{f"recbole_spectral.model.multibehavior.cascadingrank.x__csr32__mutmut_{i}": "float64 index arrays hold the same "
       "integers: torch's CSR tensor keeps them and its products read the same entries" for i in (17, 19)},
    "recbole_spectral.model.multibehavior.cascadingrank.x__inverse__mutmut_13": "astype(None) is astype(float64)",
    # cascade_term.py, the run of 2026-12-07 (numbers of that run)
    **{_CT + f"x__cascading_rank__mutmut_{i}": "the training graph's num() answers n_items for every field but 'user_id'" for i in (8, 9)},
    **{_CT + f"x__cascading_rank__mutmut_{i}": "CascadingRank never reads NEG_PREFIX or the dataset's name: it draws no negatives "
       "and logs nothing by name" for i in (12, 13, 21, 22)},
    _CT + "x__top_k__mutmut_45": "astype(None) is astype(float64)",
    **{_CT + f"x__top_k__mutmut_{i}": "None in a float array is NaN: argsort puts it last and the isfinite filter drops it, as -inf"
       for i in (46, 48)},
    _CT + "x__top_k__mutmut_56": "a slice past the row's end takes the whole row; item 0 (-inf) is then dropped by the isfinite filter",
    _CT + "x__top_k__mutmut_64": "argsort's default axis -1 is axis 1 of the 2-D scores",
    _CT + "x__top_k__mutmut_69": "NumPy reads the sort kind case-insensitively: 'STABLE' is the stable sort",
    _CT + "x__top_k__mutmut_86": "that branch runs only with the padding user alone (n_users = 1): np.zeros(None) is one 0 "
    "as np.zeros(1) is (a dataset always has the padding user)",
    _CT + "x__top_k__mutmut_93": "without stages only out[0] is returned: a second empty list is built and dropped",
    _CT + "x_cascade_lists__mutmut_3": "'' is falsy like None: no cache file either way",
    **{_CT + f"x_cascade_lists__mutmut_{i}": "the target's values are never read: its pairs are zeroed by fold and CascadingRank "
       "casts every matrix to float32" for i in (34, 36)},
    **{_CT + f"xǁCascadeTermǁ__init____mutmut_{i}": "device None is the CPU the tests (and the default config) run on"
       for i in (13, 15, 35, 39, 58, 60)},
    **{_CT + f"xǁCascadeTermǁ__init____mutmut_{i}": "only the target's pattern is read (the fold of each stored pair): its "
       "values are replaced" for i in (44, 46)},
    _CT + "xǁCascadeTermǁ__init____mutmut_49": "ObservedPairs stores its values as float32 whatever it is given",
    **{_CT + f"xǁCascadeTermǁ__init____mutmut_{i}": "an int64 arange divided by an int is a float32 tensor (true division to "
       "torch's default dtype)" for i in (72, 74)},
    _CT + "xǁCascadeTermǁgamma__mutmut_6": "+1 and -1 are the same axis of the (B, 1) embedding rows",
    **{_CT + f"xǁCascadeTermǁhard_negatives__mutmut_{i}": "device None is the CPU the tests (and the default config) run on"
       for i in (27, 30, 34, 37)},
    _CT + "xǁCascadeTermǁhard_negatives__mutmut_40": "differs only for a uniform draw equal to the share exactly",
    _CT + "xǁCascadeTermǁhard_negatives__mutmut_48": "pick < 1, so ⌊pick·count⌋ <= count - 1: a looser bound never binds",
    _CT + "xǁCascadeTermǁhard_negatives__mutmut_50": "differs only where count = 0, and there pick·count = 0 is below either bound",
    _CT + "xǁCascadeTermǁrank_value__mutmut_7": "the ranks are float32 already (ObservedPairs' values), the curve's dtype",
    "recbole_spectral.model.general.simgcl.xǁSimGCLǁencode__mutmut_22":
        "the layer mean of −E^(l): every user and item row negated together, so every score (a dot product), norm and cosine is the same",
    "recbole_spectral.layers.knn.x_cache_checksum__mutmut_15":
        "the fixed separator hashed between the arrays already marks where each ends (a re-cut of rows and cols is caught)",
    "recbole_spectral.layers.knn.x_features_fingerprint__mutmut_24":
        "n is in the cache key beside the fingerprint: with n fixed, the byte count fixes the shape",
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
_kills("tests/test_mb_baselines.py::test_cascading_rank_stops_each_user_at_its_own_step", "model.multibehavior.cascadingrank",
       *(f"xǁCascadingRankǁ_stage__mutmut_{i}" for i in (106, 108, 110, 116, 118, 119, 120, 192, 219, 255, 291, 359)))
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
_kills("tests/test_reference_mb.py::test_spectramb_forward_and_loss_equal_the_reference[extra_views1-context-cascade-attention-False]",
       "model.multibehavior.spectramb", "xǁSpectraMBǁ_views__mutmut_78")
_kills("tests/test_cascade_term.py::test_lists_are_cached_in_the_data_folder_else_beside_the_checkpoints_else_where_the_key_says", "model.base",
       *('xǁEmbeddingRecommenderǁ_build_cascade_term__mutmut_20', 'xǁEmbeddingRecommenderǁ_build_cascade_term__mutmut_25', 'xǁEmbeddingRecommenderǁ_build_cascade_term__mutmut_26', 'xǁEmbeddingRecommenderǁ_build_cascade_term__mutmut_27', 'xǁEmbeddingRecommenderǁ_build_cascade_term__mutmut_28', 'xǁEmbeddingRecommenderǁ_build_cascade_term__mutmut_29', 'xǁEmbeddingRecommenderǁ_build_cascade_term__mutmut_30', 'xǁEmbeddingRecommenderǁ_build_cascade_term__mutmut_31', 'xǁEmbeddingRecommenderǁ_build_cascade_term__mutmut_32', 'xǁEmbeddingRecommenderǁ_build_cascade_term__mutmut_33', 'xǁEmbeddingRecommenderǁ_build_cascade_term__mutmut_34', 'xǁEmbeddingRecommenderǁ_build_cascade_term__mutmut_35', 'xǁEmbeddingRecommenderǁ_build_cascade_term__mutmut_36', 'xǁEmbeddingRecommenderǁ_build_cascade_term__mutmut_37', 'xǁEmbeddingRecommenderǁ_build_cascade_term__mutmut_38', 'xǁEmbeddingRecommenderǁ_build_cascade_term__mutmut_39', 'xǁEmbeddingRecommenderǁ_build_cascade_term__mutmut_40', 'xǁEmbeddingRecommenderǁ_build_cascade_term__mutmut_41', 'xǁEmbeddingRecommenderǁ_build_cascade_term__mutmut_42', 'xǁEmbeddingRecommenderǁ_build_cascade_term__mutmut_43', 'xǁEmbeddingRecommenderǁ_build_cascade_term__mutmut_44', 'xǁEmbeddingRecommenderǁ_build_cascade_term__mutmut_45', 'xǁEmbeddingRecommenderǁ_build_cascade_term__mutmut_46', 'xǁEmbeddingRecommenderǁ_build_cascade_term__mutmut_47'))
_kills("tests/test_cascade_term.py::test_the_stage_option_reaches_the_model_and_a_foreign_state_is_refused", "model.base", *('xǁEmbeddingRecommenderǁload_state_dict__mutmut_1', 'xǁEmbeddingRecommenderǁload_state_dict__mutmut_3'))
_kills("tests/test_cascade_term.py::test_alpha_plus_beta_of_exactly_one_is_accepted", "model.base", "xǁEmbeddingRecommenderǁ_build_cascade_term__mutmut_7")
_kills("tests/test_cascade_term.py::test_the_stage_option_reaches_the_model_and_a_foreign_state_is_refused", "model.base",
       "xǁEmbeddingRecommenderǁ_build_cascade_term__mutmut_61", "xǁEmbeddingRecommenderǁ_build_cascade_term__mutmut_71")
_kills("tests/test_cascade_term.py::test_a_model_draws_its_hard_negatives_from_the_depth_it_is_given", "model.base",
       "xǁEmbeddingRecommenderǁprepare_training_batch__mutmut_14")
_BASE = "recbole_spectral.model.base.xǁEmbeddingRecommenderǁ"
EQUIVALENT_NAMES.update({
    _BASE + "_build_cascade_term__mutmut_6": "differs only when alpha + beta is exactly 1 + 1e-9",
    **{_BASE + f"_build_cascade_term__mutmut_{i}": "a log line only (the lists' progress or build time)"
       for i in (60, 70, 82, 83, 84, 85, 86)},
    _BASE + "load_state_dict__mutmut_5": "strict=True is torch's default too",
    _BASE + "load_state_dict__mutmut_6": "no caller passes keyword arguments other than strict (RecBole and the plugin pass a state, at most strict)",
    **{_BASE + f"__init____mutmut_{i}": "hard_negatives and its depth are read only when the cascade term is on, which sets both"
       for i in (35, 36)},
    **{_BASE + f"prepare_training_batch__mutmut_{i}": "at share 0 no negative is replaced (draw < 0 never holds): the batch is "
       "the same, only the generator advances" for i in (1, 3)},
})
_kills("tests/test_cascade_term.py::test_observed_pairs_return_stored_values_and_zero_elsewhere", "layers.multibehavior.observed",
       "xǁObservedPairsǁ__init____mutmut_18")
_kills("tests/test_history_term.py::test_crgcn_trains_its_target_stage_on_the_score_with_the_term", "model.multibehavior.crgcn",
       *(f"xǁCRGCNǁcalculate_loss__mutmut_{i}" for i in (20, 29, 30, 37, 38)))
_kills("tests/test_mb_baselines.py::test_mbcgcn_warmup_reports_each_epochs_mean_batch_loss", "model.multibehavior.mbcgcn",
       "xǁMBCGCNǁwarmup__mutmut_89", "xǁMBCGCNǁwarmup__mutmut_92")
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
_kills("tests/test_knn.py::test_a_cache_that_cannot_be_trusted_is_rebuilt_with_the_reason", "layers.knn",
       "x__load_cache__mutmut_10", "x__load_cache__mutmut_11", "x__load_cache__mutmut_13",
       "x__load_cache__mutmut_14", "x__load_cache__mutmut_38", "x__load_cache__mutmut_52",
       "x__load_cache__mutmut_6", "x__load_cache__mutmut_7", "x__load_cache__mutmut_9",
       "x_cache_checksum__mutmut_4")
_kills("tests/test_knn.py::test_a_cache_is_written_beside_its_name_and_a_failed_write_leaves_nothing", "layers.knn",
       "x__save_cache__mutmut_27", "x__save_cache__mutmut_30", "x__save_cache__mutmut_70")
_kills("tests/test_knn.py::test_one_neighbour_is_the_row_itself_and_a_trailing_zero_row_keeps_the_shape", "layers.knn",
       "x__to_sparse__mutmut_18", "x_knn_edges__mutmut_10", "x_knn_edges__mutmut_28",
       "x_knn_edges__mutmut_4", "x_knn_edges__mutmut_9", "x_normalized_knn_values__mutmut_18")
_kills("tests/test_knn.py::test_approximate_edge_cases", "layers.knn",
       "x_approximate_knn_edges__mutmut_137", "x_approximate_knn_edges__mutmut_138", "x_approximate_knn_edges__mutmut_141",
       "x_approximate_knn_edges__mutmut_142", "x_approximate_knn_edges__mutmut_29", "x_approximate_knn_edges__mutmut_38",
       "x_approximate_knn_edges__mutmut_39", "x_approximate_knn_edges__mutmut_40", "x_approximate_knn_edges__mutmut_42",
       "x_approximate_knn_edges__mutmut_43", "x_approximate_knn_edges__mutmut_44", "x_approximate_knn_edges__mutmut_45",
       "x_approximate_knn_edges__mutmut_46", "x_approximate_knn_edges__mutmut_47", "x_approximate_knn_edges__mutmut_48",
       "x_approximate_knn_edges__mutmut_49", "x_approximate_knn_edges__mutmut_50", "x_approximate_knn_edges__mutmut_51",
       "x_approximate_knn_edges__mutmut_52", "x_approximate_knn_edges__mutmut_53", "x_approximate_knn_edges__mutmut_54",
       "x_approximate_knn_edges__mutmut_59")
_kills("tests/test_knn.py::test_the_approximate_graph_without_faiss_is_refused_by_name", "layers.knn",
       "x_approximate_knn_edges__mutmut_4", "x_approximate_knn_edges__mutmut_5", "x_approximate_knn_edges__mutmut_6",
       "x_approximate_knn_edges__mutmut_7")
_kills("tests/test_knn.py::test_a_tensor_has_the_fingerprint_of_its_float32_array", "layers.knn",
       "x_features_fingerprint__mutmut_1", "x_features_fingerprint__mutmut_6", "x_features_fingerprint__mutmut_7")
_kills("tests/test_knn.py::test_all_zero_features_have_no_edges_and_bad_shapes_or_k_are_refused", "layers.knn",
       "x_knn_edges__mutmut_11", "x_knn_edges__mutmut_29", "x_knn_edges__mutmut_30",
       "x_knn_edges__mutmut_32", "x_knn_edges__mutmut_33", "x_knn_edges__mutmut_34",
       "x_knn_edges__mutmut_7", "x_knn_edges__mutmut_8")
_kills("tests/test_knn.py::test_the_exact_graph_keeps_its_cache_key", "layers.knn",
       "x_knn_graph__mutmut_36", "x_knn_graph__mutmut_38", "x_knn_graph__mutmut_40",
       "x_knn_graph__mutmut_41")
SSR_T = "tests/test_ssr.py::test_"
_kills(SSR_T + "each_cross_key_constraint_is_refused_in_one_line_naming_its_key", "model.multimodal.ssr",
       *[f"xǁSSRǁcheck_hyperparameters__mutmut_{i}" for i in (
           1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 17, 19, 20, 21, 23, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 36, 38, 39, 40,
           41, 42, 43, 44, 54, 56, 72, 74, 75, 76, 92, 94, 96, 97, 98, 99, 100, 101, 102, 103, 107, 108, 109, 110, 112,
           113, 114)])
_kills(SSR_T + "valid_neighbours_of_each_constraint_are_accepted", "model.multimodal.ssr",
       *[f"xǁSSRǁcheck_hyperparameters__mutmut_{i}" for i in (
           11, 12, 13, 14, 16, 18, 22, 24, 35, 37, 83, 87, 88, 104, 105, 106, 111)])
_kills(SSR_T + "held_out_pairs_without_an_edge_keep_ratio_are_refused", "model.multimodal.ssr",
       "xǁSSRǁcheck_hyperparameters__mutmut_84", "xǁSSRǁcheck_hyperparameters__mutmut_86")
_kills(SSR_T + "borders_are_recalibrated_every_band_recalibrate_every_epochs_after_the_first", "model.multimodal.ssr",
       "xǁSSRǁ__init____mutmut_122", *[f"xǁSSRǁon_train_epoch_start__mutmut_{i}" for i in range(1, 12)])
_kills(SSR_T + "the_learned_part_is_learned_dim_wide", "model.multimodal.ssr",
       *[f"xǁSSRǁ__init____mutmut_{i}" for i in (141, 142, 143, 144, 145, 146, 148, 149, 151)])
_kills(SSR_T + "mlp_encoder_is_linear_leaky_relu_linear_without_biases", "model.multimodal.ssr",
       *[f"xǁSSRǁ__init____mutmut_{i}" for i in (205, 212, 214, 220, 221)])
_kills(SSR_T + "hsno_rank_and_context_scale_reach_both_released_operators", "model.multimodal.ssr",
       *[f"xǁSSRǁ__init____mutmut_{i}" for i in (252, 253, 261, 262)])
_kills(SSR_T + "the_item_graph_is_built_on_the_reduced_features", "model.multimodal.ssr",
       "xǁSSRǁ__init____mutmut_274", "xǁSSRǁ__init____mutmut_277")
_kills(SSR_T + "the_pruned_graphs_are_drawn_from_the_config_seed", "model.multimodal.ssr",
       *[f"xǁSSRǁ__init____mutmut_{i}" for i in (285, 288, 291, 292, 293, 295)])
_kills(SSR_T + "the_borders_buffer_holds_the_float64_borders_exactly", "model.multimodal.ssr", "xǁSSRǁ__init____mutmut_322")
_kills(SSR_T + "infonce_covers_at_most_cl_max_items_distinct_positive_items", "model.multimodal.ssr", "xǁSSRǁ__init____mutmut_106")
_kills(SSR_T + "item_features_are_centred_scaled_to_unit_mean_row_norm_with_a_bias_column", "model.multimodal.ssr",
       "xǁSSRǁ_projection_input__mutmut_20")
_kills(SSR_T + "pref_reg_weight_regularises_only_free_preferences", "model.multimodal.ssr", "xǁSSRǁcalculate_loss__mutmut_186")
_kills(SSR_T + "free_preferences_enter_row_normalised_only_with_pref_normalize", "model.multimodal.ssr",
       "xǁSSRǁlearned_input__mutmut_31")
_kills(SSR_T + "the_learned_signal_propagates_over_the_graph_it_is_given", "model.multimodal.ssr", "xǁSSRǁlearned_signal__mutmut_3")
C, CT = "tests/test_cascade_term.py::test_", "layers.multibehavior.cascade_term"
_kills(C + "top_k_orders_by_score_and_breaks_ties_by_item_id", CT, "x__top_k__mutmut_34", "x__top_k__mutmut_36")
_kills(C + "top_k_of_a_dataset_without_users_is_empty", CT, *[f"x__top_k__mutmut_{i}" for i in (87, 89, 91)])
_kills(C + "the_cache_key_reads_the_graph_not_its_index_type_and_stays_fixed", CT,
       *[f"x_cache_key__mutmut_{i}" for i in (14, 15, 22, 24, 27, 29, 30)])
for setting, mutants in (("stages", (21, 28)), ("k", (24,)), ("folds", (25,)), ("alpha", (26,)), ("beta", (27,))):
    _kills(C + f"a_cache_is_never_read_for_other_settings[{setting}]", CT, *[f"x_cascade_lists__mutmut_{i}" for i in mutants])
_kills(C + "a_stopped_build_resumes_at_the_next_pass[False-2]", CT, "x_cascade_lists__mutmut_58")
_kills(C + "the_target_stage_term_learns_one_curve_and_one_reliability_per_user", CT, "xǁCascadeTermǁ__init____mutmut_86")
_kills(C + "hard_negatives_of_a_last_user_without_a_list_keep_theirs", CT,
       "xǁCascadeTermǁhard_negatives__mutmut_62", "xǁCascadeTermǁhard_negatives__mutmut_64")
_kills("tests/test_history_term.py::test_the_term_starts_at_alpha_for_every_user", "layers.multibehavior.history_term",
       "xǁHistoryTermǁ__init____mutmut_1")


# graph_bands.py, the run of 2026-12-07 (numbers of that run)
_REFRESH, _REPEAT = _GB + "xǁSpectralBandsǁ_refresh__mutmut_", _GB + "x__off_repeated_eigenvalue__mutmut_"
EQUIVALENT_NAMES.update({
    _REPEAT + "4": "its only caller passes cut = searchsorted(...) + 1 >= 1: cut < 0 and cut <= 0 are both false",
    _REPEAT + "10": "differs only for two eigenvalues exactly 1e-9 (_REPEATED) apart (eigh spreads a repeated one by ~1e-13)",
    _REPEAT + "18": "side='left' is searchsorted's default",
    _REPEAT + "29": "differs only for an eigenvalue exactly 1e-9 (_REPEATED) above another (eigh spreads a repeated one by ~1e-13)",
    **{_REFRESH + str(i): "the exact cuts recomputed from the borders: the same cuts, since an energy cut never splits a "
       "repeated eigenvalue (_off_repeated_eigenvalue) and each border lies strictly between two distinct eigenvalues "
       "(or 1e-6 outside the spectrum)" for i in (26, 27, 31, 32)},
    **{_REFRESH + str(i): "inside a branch that never runs: _refresh meets a set _eigen only from calibrate and "
       "set_borders, which both set _cuts first (_ensure_exact sets both without calling it)" for i in range(33, 39)},
    _GB + "xǁSpectralBandsǁ__init____mutmut_54": "overwritten by _refresh() at the end of __init__ (it sets _operators to None)",
    _REFRESH + "23": "_operators is read only in bands() after _eigen is set, and every path that sets _eigen (calibrate, "
       "_ensure_exact) sets _operators after it: the placeholder value is never read",
    _GB + "xǁSpectralBandsǁ__init____mutmut_3":
        "a graph has users and items, more than one node: exact only when exact_max_nodes asks for it",
    # dtype=float dropped (None): what the generic dtype=None rule says is not why here
    _GB + "x__strictly_increasing__mutmut_10": "its callers pass float64 arrays (energy_quantiles' np.interp, lambda_to_x's "
    "float64 difference); integers would become floats at once (float clip bounds)",
    _GB + "x_balance_borders__mutmut_6": "the start borders come from energy_quantiles (float64); np.array copies either way",
    _GB + "x_cumulative_energy__mutmut_4": "the moments are a float64 Gram row (or Python numbers), only ever multiplied by "
    "the float64 damping and sines",
    _GB + "x_cumulative_energy__mutmut_26": "energy_quantiles passes a float64 grid; Python numbers become float64 (or "
    "integers, which np.clip's float bounds make float64)",
    _GB + "x_exact_projectors__mutmut_6": "chebval of the float64 eigenvalues is float64, their dtype",
    _GB + "x_lambda_to_x__mutmut_4": "fixed_borders are Python numbers (a config list): float64, or integers, which "
    "- 1.0 makes float64",
    _GB + "x_power_to_chebyshev_in_laplacian__mutmut_3": "Python numbers: float64, or integers, which the float "
    "(-1.0)**k makes float64",
    _GB + "xǁSpectralBandsǁ__init____mutmut_22": "the prefilter is float64 (power_to_chebyshev_in_laplacian); numpy's "
    "Chebyshev functions (chebmul, chebval) cast integer coefficients to float64 themselves",
    _GB + "xǁSpectralBandsǁset_borders__mutmut_3": "SSR restores float64 borders (its float64 buffer) and a list of Python "
    "floats is float64 either way; integer borders are only read through float(), searchsorted and + 1.0",
})
GB_T = "tests/test_graph_bands.py::test_"
# an existing test, deselected in the run by -k "not cli" (its name held "clip"), renamed since
_kills(GB_T + "indicator_coefficients_limit_the_interval_to_the_spectrum_and_damp_by_default", "layers.graph_bands",
       "x_indicator_coefficients__mutmut_1", "x_indicator_coefficients__mutmut_8", "x_indicator_coefficients__mutmut_14")
_kills(GB_T + "balance_borders_is_the_coordinate_search_at_any_signal_scale[5-False]", "layers.graph_bands",
       "x_balance_borders__mutmut_2")
_kills(GB_T + "balance_borders_reaches_the_grid_points_next_to_the_ends_of_the_spectrum[-0.99]", "layers.graph_bands",
       "x_balance_borders__mutmut_62")
_kills(GB_T + "balance_borders_reaches_the_grid_points_next_to_the_ends_of_the_spectrum[0.99]", "layers.graph_bands",
       "x_balance_borders__mutmut_64")
_REPEATED_T = GB_T + "exact_cuts_move_to_the_nearer_end_of_a_repeated_eigenvalue_in_energy"
_kills(_REPEATED_T + "[upper_end_nearer]", "layers.graph_bands",
       *[f"x__off_repeated_eigenvalue__mutmut_{i}" for i in (7, 21, 30, 31, 34, 38, 40, 46, 52)])
_kills(_REPEATED_T + "[crossed_at_the_first_of_four]", "layers.graph_bands",
       "x__off_repeated_eigenvalue__mutmut_9", "x__off_repeated_eigenvalue__mutmut_32")
_kills(_REPEATED_T + "[between_distinct_eigenvalues]", "layers.graph_bands", "x__off_repeated_eigenvalue__mutmut_8")
_kills(_REPEATED_T + "[tie_moves_down]", "layers.graph_bands", "x__off_repeated_eigenvalue__mutmut_50")
_kills(_REPEATED_T + "[lowest_eigenvalue_repeated]", "layers.graph_bands",
       *[f"x__off_repeated_eigenvalue__mutmut_{i}" for i in (5, 37, 39)],
       *[f"x_exact_decomposition_from_eigen__mutmut_{i}" for i in (65, 67, 68, 69, 70, 71)])
_kills(GB_T + "exact_bands_of_equal_energies_take_equally_many_eigenvalues", "layers.graph_bands",
       "x_exact_decomposition_from_eigen__mutmut_31", "x_exact_decomposition_from_eigen__mutmut_33")


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


def note(name, text, target, status="survived"):
    """The one line after a survivor's status: why it is equivalent, or which test kills it since the run."""
    if name in KILLED:
        return f"; killed after the run by {KILLED[name]} (checked by applying its diff: --verify)"
    if name in LEFT:
        return f"; left: {LEFT[name]}"
    if status == "timeout":
        return "; caught: the test ran past its time limit"
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
        left = sum(m["name"] in LEFT for m in entries)
        unexplained = sum(m["status"] != "timeout" and m["name"] not in KILLED and m["name"] not in LEFT
                          and m["name"] not in EQUIVALENT_NAMES and explain(m["diff"], target) is None for m in entries)
        lines = section.split("\n")
        lines[2] = re.sub(r"(\d+ killed after the run by new tests, )?(\d+ left with a reason, )?\d+ survivors unexplained",
                          (f"{killed} killed after the run by new tests, " if killed else "")
                          + (f"{left} left with a reason, " if left else "") + f"{unexplained} survivors unexplained", lines[2])
        gap = "\n" if "```\n\n`" in section else ""  # sections written with a blank line between entries keep it
        body = "\n".join(lines[:3]) + "\n" + gap
        for match in entries:
            body += (f"`{match['name']}` ({match['status']}{note(match['name'], match['diff'], target, match['status'])})\n```diff\n"
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
