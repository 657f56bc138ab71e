"""Declared hyperparameters (recbole_spectral.hyperparameters), checked by the config before anything runs.

The parametrised tests are generated from the declarations: for every registered plugin model and every
key it declares, a value of the wrong type and one out of range (``example_bad_values``) are refused
with one line ``config key '<key>': expected <what>, got <value>`` by the config and, for a sample of
keys, by the command line (exit 2, nothing on stdout, one line on stderr, no log written). A model
added to the registry is covered without a new test.
"""
import math

import pytest

from recbole_spectral import cli, registry
from recbole_spectral.config import SpectralConfig
from recbole_spectral.errors import ConfigError
from recbole_spectral.hyperparameters import (
    Bool,
    Choice,
    Dict,
    Float,
    Int,
    List,
    check,
    check_model,
    example_bad_values,
)
from tests.helpers import default_dataset

CLI_KEYS_PER_MODEL = 3  # the command line is the same code path; a sample keeps the run short


def _declared():
    for name in sorted(registry.plugin_model_names()):
        model_class = registry.get_model(name)
        for position, (key, param) in enumerate((getattr(model_class, "hyperparameters", None) or {}).items()):
            yield name, position, key, param


def _cases(max_position=None):
    cases = []
    for name, position, key, param in _declared():
        if max_position is not None and position >= max_position:
            continue
        bad_values = example_bad_values(param)  # [wrong type] or [wrong type, out of range]
        for which, bad in zip(("wrong-type", "out-of-range"), bad_values):
            cases.append(pytest.param(name, key, bad, id=f"{name}-{key}-{which}"))
    return cases


def expected_line(name, key, bad):
    param = registry.get_model(name).hyperparameters[key]
    return f"config key '{key}': expected {param.describe()}, got {bad!r}"


def cli_value(value):
    """How a user writes ``value`` after --key= (parsed back by RecBole's literal_eval rules)."""
    return value if isinstance(value, str) else repr(value)


def run_cli(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# -- generated from the declarations -------------------------------------------------------------
def test_every_plugin_model_declares_its_hyperparameters():
    names = registry.plugin_model_names()
    assert names and set(names) <= set(registry.PLUGIN_MODELS)
    for name in names:
        assert getattr(registry.get_model(name), "hyperparameters", None), f"{name} declares no hyperparameters"


@pytest.mark.parametrize("name,key,bad", _cases())
def test_config_refuses_a_bad_value_of_every_declared_key(name, key, bad, workdir):
    with pytest.raises(ConfigError) as err:
        SpectralConfig(name, default_dataset(name), config_dict={"use_gpu": False, key: bad})
    assert str(err.value) == expected_line(name, key, bad)


@pytest.mark.parametrize("name,key,bad", _cases(max_position=CLI_KEYS_PER_MODEL))
def test_cli_refuses_a_bad_value_with_one_line_and_exit_2(name, key, bad, workdir, capsys):
    code, out, err = run_cli(capsys, f"--model={name}", f"--dataset={default_dataset(name)}",
                             f"--{key}={cli_value(bad)}")
    assert (code, out) == (2, "")
    assert err.splitlines() == [f"error: {expected_line(name, key, bad)}"]
    assert not (workdir / "log").exists()  # refused before RecBole opened its log


@pytest.mark.parametrize("name,position,key,param", [pytest.param(*row, id=f"{row[0]}-{row[2]}") for row in _declared()])
def test_example_bad_values_are_refused_by_their_declaration(name, position, key, param):
    bad = example_bad_values(param)
    assert bad, f"{name}.{key}: no bad example"
    for value in bad:
        assert param.problem(value) == param.describe()


# -- the issue's table: each row one line, exit 2, before the configuration dump -------------------
TABLE = [
    (["--model=SSR", "--dataset=ml-100k-mm", "--n_bands=0"],
     "error: config key 'n_bands': expected an integer >= 1, got 0"),
    (["--model=SSR", "--dataset=ml-100k-mm", "--knn_k=0"],
     "error: config key 'knn_k': expected an integer >= 1, got 0"),
    (["--model=SSR", "--dataset=ml-100k-mm", "--chebyshev_order=-3"],
     "error: config key 'chebyshev_order': expected an integer >= 1, got -3"),
    (["--model=SpectraMB", "--dataset=ml-100k-mb", "--n_layers=-1"],
     "error: config key 'n_layers': expected an integer >= 0, got -1"),
    (["--model=SpectraMB", "--dataset=ml-100k-mb", "--embedding_size=63"],
     "error: config key 'embedding_size': expected an even integer >= 2, got 63"),
    (["--model=SSR", "--dataset=ml-100k-mm", "--band_drop_prob=1.0"],
     "error: config key 'band_drop_prob': expected a number >= 0.0 and < 1.0, got 1.0"),
    (["--model=SSR", "--dataset=ml-100k-mm", "--band_method=fixed", "--n_bands=4"],
     "error: config key 'fixed_band_borders': expected 3 increasing values strictly inside (0, 2) "
     "(band_method: fixed, n_bands: 4), got [0.6667, 1.3333]"),
]


@pytest.mark.parametrize("argv,line", TABLE, ids=[row[0][-1].lstrip("-") for row in TABLE])
def test_issue_table_rows_are_one_line_before_the_configuration_dump(argv, line, workdir, capsys):
    code, out, err = run_cli(capsys, *argv)
    assert (code, out, err.splitlines()) == (2, "", [line])
    assert not (workdir / "log").exists()


def test_a_bad_value_in_a_config_file_is_refused_the_same_way(workdir, capsys):
    (workdir / "bad.yaml").write_text("band_drop_prob: 1.0\n")
    code, out, err = run_cli(capsys, "--model=SSR", "--dataset=ml-100k-mm", f"--config_files={workdir / 'bad.yaml'}")
    assert (code, out) == (2, "")
    assert err.splitlines() == ["error: config key 'band_drop_prob': expected a number >= 0.0 and < 1.0, got 1.0"]


# -- constraints between keys (the model's check_hyperparameters) ---------------------------------
@pytest.mark.parametrize("borders", [[0.5], [1.5, 0.5], [0.0, 1.0], [1.0, 2.0], [0.5, 0.5]])
def test_ssr_fixed_borders_must_fit_n_bands_and_lie_inside_0_2(borders, workdir):
    with pytest.raises(ConfigError) as err:
        SpectralConfig("SSR", "ml-100k-mm", config_dict={"band_method": "fixed", "n_bands": 3, "fixed_band_borders": borders})
    assert str(err.value) == (
        "config key 'fixed_band_borders': expected 2 increasing values strictly inside (0, 2) "
        f"(band_method: fixed, n_bands: 3), got {borders!r}")


def test_ssr_fixed_borders_that_fit_are_accepted_and_ignored_by_the_energy_method(workdir):
    config = SpectralConfig("SSR", "ml-100k-mm", config_dict={"band_method": "fixed", "n_bands": 4,
                                                               "fixed_band_borders": [0.5, 1.0, 1.5]})
    assert config["fixed_band_borders"] == [0.5, 1.0, 1.5]
    SpectralConfig("SSR", "ml-100k-mm", config_dict={"band_method": "energy", "n_bands": 4})  # borders unused


def test_ssr_modality_weights_must_not_all_be_zero(workdir):
    with pytest.raises(ConfigError) as err:
        SpectralConfig("SSR", "ml-100k-mm", config_dict={"modality_weights": {"text": 0.0, "genre_year": 0}})
    assert str(err.value) == ("config key 'modality_weights': expected weights with a positive sum over the "
                              "dataset's modalities ['text', 'genre_year'], got {'text': 0.0, 'genre_year': 0}")
    SpectralConfig("SSR", "ml-100k-mm", config_dict={"modality_weights": {"text": 0.0, "genre_year": 1}})
    SpectralConfig("SSR", "ml-100k-mm", config_dict={"modality_weights": {"image": 0.0}})  # equal weights then


def test_recbole_models_keep_the_generic_type_checks(workdir):
    with pytest.raises(ConfigError, match=r"^config key 'embedding_size': expected an integer \(default 64\), got 'abc'$"):
        SpectralConfig("BPR", "ml-100k", config_dict={"embedding_size": "abc"})
    with pytest.raises(ConfigError, match=r"^config key 'embedding_size': expected a positive number, got 0$"):
        SpectralConfig("BPR", "ml-100k", config_dict={"embedding_size": 0})


# -- the declarations themselves -------------------------------------------------------------------
PARAMS = [
    # declaration, accepted, refused, the 'expected ...' text
    (Int(low=1), [1, 7, 10 ** 9], [0, -1, 1.5, 1.0, True, "3", None, [1]], "an integer >= 1"),
    (Int(low=2, even=True), [2, 64], [0, 63, 3, 2.0, False], "an even integer >= 2"),
    (Int(low=0, high=3), [0, 3], [-1, 4], "an integer >= 0 and <= 3"),
    (Int(nullable=True), [None, -5, 0], [1.5, "x"], "an integer or ~"),
    (Float(), [0, -2, 1.5, 1e30], ["abc", True, None, math.nan, math.inf, -math.inf, [1.0]], "a number"),
    (Float(low=0.0, high=1.0, high_open=True), [0, 0.0, 0.5, 0.999], [1.0, 1, -0.1, math.nan], "a number >= 0.0 and < 1.0"),
    (Float(low=0.0, low_open=True), [1e-9, 3], [0.0, 0, -1.0], "a number > 0.0"),
    (Bool(), [True, False], [1, 0, "yes", "true", None], "true or false"),
    (Bool(nullable=True), [None, True], ["no"], "true or false or ~"),
    (Choice("sum", "mean"), ["sum", "mean"], ["last", "SUM", 1, None], "one of ['sum', 'mean']"),
    (Choice(1, 2), [1, 2], ["1", 1.5, True], "one of [1, 2]"),
    (List(Float(low=0.0, high=2.0)), [[], [0.0, 2.0], (1,)], [7, "0.5", [3.0], ["x"], None], "a list of values, each a number >= 0.0 and <= 2.0"),
    (List(Int(low=1), min_len=2), [[1, 2], [1, 2, 3]], [[1], []], "a list of at least 2 values, each an integer >= 1"),
    (List(Int(), min_len=2, max_len=2), [[1, 2]], [[1], [1, 2, 3]], "a list of 2 values, each an integer"),
    (Dict(Float(low=0.0)), [{}, {"image": 0.1, "text": 1}], [7, [0.1], {"image": -1.0}, {1: 0.5}, {"a": "x"}],
     "a mapping name -> a number >= 0.0"),
    (Dict(Float(low=0.0), nullable=True), [None], [7], "a mapping name -> a number >= 0.0 or ~"),
]


@pytest.mark.parametrize("param,accepted,refused,text", PARAMS, ids=[row[3] for row in PARAMS])
def test_each_declaration_accepts_and_refuses(param, accepted, refused, text):
    assert param.describe() == text
    for value in accepted:
        assert param.problem(value) is None, value
    for value in refused:
        assert param.problem(value) == text, value
    for value in example_bad_values(param):
        assert param.problem(value) == text, value


@pytest.mark.parametrize("param,bad", [
    (Int(low=1), [1.5, 0]),
    (Int(low=2, even=True), [1.5, 1]),
    (Int(high=5), [1.5, 6]),
    (Int(), [1.5]),
    (Float(low=0.0, low_open=True), ["abc", 0.0]),
    (Float(low=0.0, high=1.0, high_open=True), ["abc", -1.0]),
    (Float(high=1.0, high_open=True), ["abc", 1.0]),
    (Float(), ["abc"]),
    (Bool(), ["yes"]),
    (Choice("a", "b"), [3.5, "no-such-choice"]),
    (Choice(1, 2), ["abc", 3]),
    (List(Float(low=0.0)), [7, ["abc"]]),
    (Dict(Float(low=0.0)), [7, {"x": "abc"}]),
])
def test_example_bad_values(param, bad):
    assert example_bad_values(param) == bad


def test_check_reports_the_first_bad_declared_key_in_one_line():
    declarations = {"a": Int(low=1), "b": Choice("x", "y"), "c": Float()}
    check(declarations, {"a": 1, "b": "x", "other": object()})  # undeclared and absent keys are not checked
    with pytest.raises(ConfigError) as err:
        check(declarations, {"a": 1, "b": "z", "c": "nope"})
    assert str(err.value) == "config key 'b': expected one of ['x', 'y'], got 'z'"


def test_check_model_runs_the_declarations_then_the_cross_key_check():
    class Model:
        hyperparameters = {"n": Int(low=1), "borders": List(Float())}

        @classmethod
        def check_hyperparameters(cls, values):
            if len(values["borders"]) != values["n"] - 1:
                return "borders", f"{values['n'] - 1} values"
            return None

    check_model(Model, {"n": 3, "borders": [0.1, 0.2]})
    with pytest.raises(ConfigError, match=r"^config key 'n': expected an integer >= 1, got 0$"):
        check_model(Model, {"n": 0, "borders": []})
    with pytest.raises(ConfigError) as err:
        check_model(Model, {"n": 3, "borders": [0.1]})
    assert str(err.value) == "config key 'borders': expected 2 values, got [0.1]"
    check_model(type("RecBoleModel", (), {}), {"n": "anything"})  # no declaration: nothing to check
