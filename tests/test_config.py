"""The strategy loader and schema, piece by piece (the CLI matrix is in test_errors_cli.py)."""

from __future__ import annotations

import pytest
import yaml

from candleflow.cli import parse_assignments
from candleflow.config import Strategy, load_strategy, parse_strategy, parse_timeframe, render_template
from candleflow.config.loader import StrictSafeLoader, format_loc
from candleflow.errors import ConfigError

GOOD = """\
name: demo
symbol: EURUSD
timeframe: 4h
data: {sample: eurusd_1h}
indicators:
  - {name: fast, component: sma, params: {period: 5}}
signals:
  - {name: cross, component: ma_crossover, inputs: {fast: fast, slow: close}}
rules: {entry: {golden_cross: buy}}
"""


def error(text: str, **kwargs) -> str:
    with pytest.raises(ConfigError) as info:
        parse_strategy(text, file="s.yaml", **kwargs)
    return str(info.value)


def test_a_good_strategy_and_its_defaults():
    strategy = parse_strategy(GOOD)
    assert isinstance(strategy, Strategy)
    assert strategy.indicators[0].params == {"period": 5}
    assert strategy.signals[0].inputs == {"fast": "fast", "slow": "close"}
    assert strategy.execution.fill == "next_open" and strategy.execution.commission.fraction == 0
    assert strategy.sizing.method == "fraction" and strategy.sizing.value == 1.0
    assert strategy.initial_cash == 10_000 and strategy.risk.allow_short
    assert strategy.rules.exit == {}


def test_models_are_frozen():
    strategy = parse_strategy(GOOD)
    with pytest.raises(Exception):
        strategy.name = "other"


@pytest.mark.parametrize("text, seconds", [("1m", 60), ("15m", 900), ("4h", 14400), ("1d", 86400), ("1w", 604800),
                                           (" 1H ", 3600), ("1 h", None), ("h", None), ("1y", None)])
def test_timeframes(text, seconds):
    assert parse_timeframe(text) == seconds


def test_every_problem_is_counted_and_the_first_three_others_are_listed():
    message = error("name: x\n")
    assert message == ("s.yaml: symbol: required field missing (and 3 more: timeframe: required field missing; "
                       "data: required field missing; rules: required field missing)")
    message = error("{}\n")
    assert message.startswith("s.yaml: name: required field missing (and 4 more: ") and message.endswith("; ...)")


def test_duplicate_keys_are_errors_at_any_depth():
    assert error(GOOD.replace("timeframe: 4h\n", "timeframe: 4h\ntimeframe: 1h\n")) == \
        "s.yaml: line 4: duplicate key 'timeframe' (first at line 3)"
    assert error(GOOD.replace("{period: 5}", "{period: 5, period: 6}")) == \
        "s.yaml: line 6: duplicate key 'period' (first at line 6)"


def test_merge_keys_may_be_overridden():
    merged = yaml.load("base: &b {a: 1, b: 2}\nchild:\n  <<: *b\n  b: 3\n", Loader=StrictSafeLoader)
    assert merged["child"] == {"a": 1, "b": 3}


def test_the_loader_is_a_safe_loader():
    """No YAML tag can build a Python object: the loader is yaml's safe loader (C or Python), plus the duplicate-key check."""
    assert issubclass(StrictSafeLoader, (yaml.SafeLoader, getattr(yaml, "CSafeLoader", yaml.SafeLoader)))
    assert issubclass(StrictSafeLoader, yaml.constructor.SafeConstructor)
    assert not issubclass(StrictSafeLoader, yaml.constructor.FullConstructor)
    assert not [tag for tag in StrictSafeLoader.yaml_constructors if tag and "python" in tag]
    assert not StrictSafeLoader.yaml_multi_constructors  # where yaml.Loader hooks python/object:...
    assert error("!!python/object/apply:os.getcwd []\n") == (
        "s.yaml: line 1, column 1: invalid YAML: could not determine a constructor for the tag "
        "'tag:yaml.org,2002:python/object/apply:os.getcwd'")


def test_locations_keep_every_yaml_key():
    assert format_loc(("signals", 0, "inputs", 1)) == "signals[0].inputs[1]"
    assert format_loc(("signals", 0, "inputs", "list[str]", 2)) == "signals[0].inputs[2]"
    assert format_loc(("signals", 0, "inputs", "dict[str,str]", "fast")) == "signals[0].inputs.fast"
    assert format_loc(("interval",)) == "interval"  # a key starting with 'int' is a key, not a type tag
    assert format_loc(("strength",)) == "strength"
    assert format_loc(("data", "function-after[_one_source(), DataSource]")) == "data"


def test_script_only_fields_and_limits():
    assert error(GOOD.replace("params: {period: 5}", "params: {period: 5}, timeout: 3")) == \
        "s.yaml: indicators[0]: 'timeout' is only for component: script"
    script = GOOD.replace("component: sma, params: {period: 5}", "component: script, path: x.py, lookback: 0")
    assert error(script) == "s.yaml: indicators[0].lookback: Input should be greater than or equal to 1, got 0"


def test_plain_text_is_not_a_template():
    text = "name: x  # 100% {not jinja}\n"
    assert render_template(text, {}, file="s.yaml") is text


def test_template_variables():
    text = "period: {{ fast }}\nname: {{ name | default('demo') }}\n"
    assert render_template(text, {"fast": 12}, file="s.yaml") == "period: 12\nname: demo\n"


def test_load_strategy_reads_renders_and_validates(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(GOOD.replace("period: 5", "period: {{ fast }}"))
    assert load_strategy(path, variables={"fast": 7}).indicators[0].params == {"period": 7}
    with pytest.raises(ConfigError) as info:
        load_strategy(tmp_path)
    assert str(info.value).startswith(f"{tmp_path}: cannot read strategy file: [Errno 21] Is a directory")
    path.write_bytes(b"name: \xff\xfe\n")
    with pytest.raises(ConfigError) as info:
        load_strategy(path)
    assert str(info.value).startswith(f"{path}: cannot read strategy file: 'utf-8' codec can't decode byte 0xff")


def test_set_values_are_yaml_scalars():
    assert parse_assignments(["fast=10", "rate=0.5", "name=abc", "flag=true", "periods=[5, 10]", "empty=",
                              "expr=a=b"]) == {"fast": 10, "rate": 0.5, "name": "abc", "flag": True,
                                               "periods": [5, 10], "empty": "", "expr": "a=b"}
    assert parse_assignments(None) == {}
    with pytest.raises(ConfigError, match="--set expects NAME=VALUE, got '=5'"):
        parse_assignments(["=5"])
