"""Declared hyperparameters: each plugin model states every key's type and allowed values once.

A model class lists its keys in ``hyperparameters`` (defaults stay in ``properties/model/<Model>.yaml``)::

    hyperparameters = {
        "embedding_size": Int(low=2, even=True),
        "dropout": Float(low=0.0, high=1.0, high_open=True),
        "fusion": Choice("attention", "mean"),
        "fixed_band_borders": List(Float(low=0.0, high=2.0)),
        "modality_weights": Dict(Float(low=0.0)),
    }

:class:`recbole_spectral.config.SpectralConfig` checks a run's final settings against the declaration
before RecBole logs the configuration or loads data, and refuses a bad value with one line naming the
key, the value and what is allowed.

Constraints between keys (e.g. SSR's ``fixed_band_borders`` must hold ``n_bands - 1`` borders when
``band_method: fixed``) go in one optional classmethod on the model, checked right after the
declarations with the same one-line format::

    @classmethod
    def check_hyperparameters(cls, values):
        # None when the settings fit together, else (key, what is expected for that key)
 ``example_bad_values`` gives, per declaration, a value of the wrong
type and one out of range (the generated test in ``tests/test_hyperparameters.py`` uses them).
"""
import math

from recbole_spectral.errors import ConfigError


class Param:
    """A declared value; ``nullable`` admits None (YAML ``~``)."""

    def __init__(self, nullable=False):
        self.nullable = nullable

    def problem(self, value):
        """Why ``value`` is not allowed (text after 'expected'), or None."""
        if value is None:
            return None if self.nullable else self.describe()
        return self._problem(value)

    def describe(self):
        raise NotImplementedError

    def _problem(self, value):
        raise NotImplementedError

    def bad_values(self):
        """[(value of the wrong type), (value out of range, if the declaration has a range)]."""
        raise NotImplementedError


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _range_text(low, high, low_open, high_open):
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high}")
    return " and ".join(parts)


class _Number(Param):
    kind = "a number"

    def __init__(self, low=None, high=None, low_open=False, high_open=False, nullable=False):
        super().__init__(nullable)
        self.low, self.high, self.low_open, self.high_open = low, high, low_open, high_open

    def describe(self):
        bounds = _range_text(self.low, self.high, self.low_open, self.high_open)
        return self.kind + (f" {bounds}" if bounds else "") + (" or ~" if self.nullable else "")

    def _type_ok(self, value):
        return _is_number(value)

    def _problem(self, value):
        if not self._type_ok(value) or (isinstance(value, float) and not math.isfinite(value)):  # NaN, ±inf
            return self.describe()
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return self.describe()
        if self.high is not None and (value > self.high or (self.high_open and value == self.high)):
            return self.describe()
        return None

    def _out_of_range(self):
        if self.low is not None:
            return self.low if self.low_open else self.low - 1
        if self.high is not None:
            return self.high if self.high_open else self.high + 1
        return None

    def bad_values(self):
        out = self._out_of_range()
        return ["abc"] + ([out] if out is not None else [])


class Int(_Number):
    kind = "an integer"

    def __init__(self, low=None, high=None, even=False, nullable=False):
        super().__init__(low, high, nullable=nullable)
        self.even = even

    def describe(self):
        text = super().describe()
        return text.replace("an integer", "an even integer", 1) if self.even else text

    def _type_ok(self, value):
        return _is_int(value)

    def _problem(self, value):
        problem = super()._problem(value)
        if problem is None and self.even and value % 2:
            return self.describe()
        return problem

    def bad_values(self):
        return [1.5] + super().bad_values()[1:]


class Float(_Number):
    pass


class Bool(Param):
    def describe(self):
        return "true or false" + (" or ~" if self.nullable else "")

    def _problem(self, value):
        return None if isinstance(value, bool) else self.describe()

    def bad_values(self):
        return ["yes"]


class Choice(Param):
    def __init__(self, *choices, nullable=False):
        super().__init__(nullable)
        self.choices = choices

    def describe(self):
        return f"one of {list(self.choices)}" + (" or ~" if self.nullable else "")

    def _problem(self, value):
        return None if value in self.choices and type(value) in {type(c) for c in self.choices} else self.describe()

    def bad_values(self):
        if all(isinstance(c, str) for c in self.choices):
            return [3.5, "no-such-choice"]
        if all(_is_number(c) for c in self.choices):
            return ["abc", max(self.choices) + 1]
        return ["no-such-choice"]


class List(Param):
    def __init__(self, element, min_len=0, max_len=None, nullable=False):
        super().__init__(nullable)
        self.element, self.min_len, self.max_len = element, min_len, max_len

    def describe(self):
        size = ""
        if self.min_len and self.max_len == self.min_len:
            size = f"{self.min_len} "
        elif self.min_len:
            size = f"at least {self.min_len} "
        return f"a list of {size}values, each {self.element.describe()}" + (" or ~" if self.nullable else "")

    def _problem(self, value):
        if not isinstance(value, (list, tuple)):
            return self.describe()
        if len(value) < self.min_len or (self.max_len is not None and len(value) > self.max_len):
            return self.describe()
        if any(self.element.problem(v) for v in value):
            return self.describe()
        return None

    def bad_values(self):
        return [7, [self.element.bad_values()[0]] * max(self.min_len, 1)]


class Dict(Param):
    """A mapping from names to values of one declaration."""

    def __init__(self, value, nullable=False):
        super().__init__(nullable)
        self.value = value

    def describe(self):
        return f"a mapping name -> {self.value.describe()}" + (" or ~" if self.nullable else "")

    def _problem(self, value):
        if not isinstance(value, dict) or any(not isinstance(k, str) or self.value.problem(v) for k, v in value.items()):
            return self.describe()
        return None

    def bad_values(self):
        return [7, {"x": self.value.bad_values()[0]}]


def check(declarations, values, where=""):
    """Raise a one-line :class:`ConfigError` for the first declared key whose value is not allowed."""
    for key, param in declarations.items():
        if key not in values:
            continue
        problem = param.problem(values[key])
        if problem is not None:
            raise ConfigError(f"config key '{key}'{where}: expected {problem}, got {values[key]!r}")


def check_model(model_class, values):
    """Check ``values`` against ``model_class``'s declarations, then its ``check_hyperparameters``
    (constraints between keys); a model without either (RecBole's) passes."""
    check(getattr(model_class, "hyperparameters", None) or {}, values)
    cross = getattr(model_class, "check_hyperparameters", None)
    problem = cross(values) if cross is not None else None
    if problem is not None:
        key, expected = problem
        raise ConfigError(f"config key '{key}': expected {expected}, got {values.get(key)!r}")


def example_bad_values(param):
    """Values ``param`` must refuse: one of the wrong type, and one out of range where it has a range."""
    return param.bad_values()
