"""Settings: every variable's default, accepted spellings and bad values,
`.env` parsing and precedence (environment > .env; keywords > both)."""
from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

from reqprof.config import (
    ASYNC_MODES,
    MAX_CONCURRENT_LIMIT,
    MAX_DEPTH_LIMIT,
    OVERHEAD_BUDGET_LIMIT,
    ConfigError,
    Settings,
    read_env_file,
)


def settings(env: dict | None = None, env_file: Path | str | None = None, **kw) -> Settings:
    return Settings.from_env(environ=env or {}, env_file=env_file, **kw)


def test_defaults_match_the_feature_text():
    s = settings()
    assert s == Settings()
    assert s.enabled is False
    assert s.sample_rate == 0.1
    assert s.max_depth == 50
    assert s.async_mode == "enabled"
    assert s.interval == 0.001
    assert s.overhead_budget is None
    assert s.output_dir is None
    assert s.manual is True
    assert s.token is None
    assert s.max_concurrent == 4


def test_settings_are_frozen():
    s = Settings()
    with pytest.raises(AttributeError):
        s.enabled = True  # type: ignore[misc]


def test_variable_names():
    assert Settings.variables() == {
        "enabled": "ENABLE_PROFILING",
        "sample_rate": "PROFILING_SAMPLE_RATE",
        "max_depth": "PROFILING_MAX_DEPTH",
        "async_mode": "PROFILING_ASYNC_MODE",
        "interval": "PROFILING_INTERVAL",
        "overhead_budget": "PROFILING_OVERHEAD_BUDGET",
        "output_dir": "PROFILING_OUTPUT_DIR",
        "manual": "PROFILING_MANUAL",
        "token": "PROFILING_TOKEN",
        "max_concurrent": "PROFILING_MAX_CONCURRENT",
        "output_max_mb": "PROFILING_OUTPUT_MAX_MB",
        "manual_timeout": "PROFILING_MANUAL_TIMEOUT",
        "slow_ms": "PROFILING_SLOW_MS",
        "loop_block_ms": "PROFILING_LOOP_BLOCK_MS",
        "max_routes": "PROFILING_MAX_ROUTES",
        "store": "PROFILING_STORE",
        "store_max_mb": "PROFILING_STORE_MAX_MB",
        "store_days": "PROFILING_STORE_DAYS",
        "pyroscope_url": "PROFILING_PYROSCOPE_URL",
        "service_name": "PROFILING_SERVICE_NAME",
        "labels": "PROFILING_LABELS",
        "push_interval": "PROFILING_PUSH_INTERVAL",
        "pyroscope_auth": "PROFILING_PYROSCOPE_AUTH",
        "pyroscope_tenant": "PROFILING_PYROSCOPE_TENANT",
        "push_max_mb": "PROFILING_PUSH_MAX_MB",
    }


# -- PROFILING_LOOP_BLOCK_MS --------------------------------------------------

@pytest.mark.parametrize("value,expected", [("50", 50), ("0", 0), (" 250 ", 250),
                                            ("600000", 600000)])
def test_loop_block_ms_accepted(value, expected):
    assert settings({"PROFILING_LOOP_BLOCK_MS": value}).loop_block_ms == expected


@pytest.mark.parametrize("value", ["-1", "600001", "2.5", "abc", "1e3"])
def test_loop_block_ms_rejected(value):
    with pytest.raises(ConfigError, match="PROFILING_LOOP_BLOCK_MS"):
        settings({"PROFILING_LOOP_BLOCK_MS": value})


def test_loop_block_ms_default_is_50_and_shows_in_the_startup_line_only_when_changed():
    assert Settings().loop_block_ms == 50
    assert "loop_block_ms" not in Settings().describe()
    assert "loop_block_ms=200" in Settings(loop_block_ms=200).describe()


# -- ENABLE_PROFILING ---------------------------------------------------------

TRUE_SPELLINGS = ["1", "true", "TRUE", "True", "t", "T", "yes", "YES", "Yes", "y", "Y",
                  "on", "ON", "On", " true ", "\tyes\n"]
FALSE_SPELLINGS = ["0", "false", "FALSE", "False", "f", "F", "no", "NO", "n", "N",
                   "off", "OFF", "Off", " 0 "]


@pytest.mark.parametrize("value", TRUE_SPELLINGS)
def test_enable_profiling_true_spellings(value):
    assert settings({"ENABLE_PROFILING": value}).enabled is True


@pytest.mark.parametrize("value", FALSE_SPELLINGS)
def test_enable_profiling_false_spellings(value):
    assert settings({"ENABLE_PROFILING": value}).enabled is False


@pytest.mark.parametrize("value", ["", " ", "\t"])
def test_empty_enable_profiling_means_off(value):
    assert settings({"ENABLE_PROFILING": value}).enabled is False


@pytest.mark.parametrize("value", ["2", "-1", "enable", "tru", "yess", "si", "oui",
                                   "1.0", "none", "null", "true false", "\x00"])
def test_enable_profiling_rejects_anything_else(value):
    with pytest.raises(ConfigError) as err:
        settings({"ENABLE_PROFILING": value})
    msg = str(err.value)
    assert "ENABLE_PROFILING" in msg
    assert repr(value) in msg
    assert "1/true/t/yes/y/on" in msg and "0/false/f/no/n/off" in msg
    assert err.value.variable == "ENABLE_PROFILING" and err.value.value == value


# -- PROFILING_SAMPLE_RATE ----------------------------------------------------

@pytest.mark.parametrize("value,expected", [
    ("0", 0.0), ("0.0", 0.0), ("0.01", 0.01), ("0.1", 0.1), ("0.3", 0.3), ("1", 1.0),
    ("1.0", 1.0), (" 0.5 ", 0.5), (".25", 0.25), ("1e-2", 0.01), ("+0.2", 0.2), ("-0", 0.0),
])
def test_sample_rate_accepted(value, expected):
    assert settings({"PROFILING_SAMPLE_RATE": value}).sample_rate == expected


@pytest.mark.parametrize("value", ["abc", "1.5", "-0.1", "1.0000001", "", "  ", "nan", "NaN",
                                   "inf", "-inf", "infinity", "10%", "0,5", "0x1", "1_0",
                                   "1e400", "0.5.1", "½"])
def test_sample_rate_rejected(value):
    with pytest.raises(ConfigError) as err:
        settings({"PROFILING_SAMPLE_RATE": value})
    msg = str(err.value)
    assert "PROFILING_SAMPLE_RATE" in msg and repr(value) in msg
    assert "0.0 to 1.0" in msg


# -- PROFILING_MAX_DEPTH ------------------------------------------------------

@pytest.mark.parametrize("value,expected", [("1", 1), ("30", 30), ("50", 50), ("100", 100),
                                            (" 7 ", 7), ("+5", 5), (str(MAX_DEPTH_LIMIT),
                                                                    MAX_DEPTH_LIMIT)])
def test_max_depth_accepted(value, expected):
    assert settings({"PROFILING_MAX_DEPTH": value}).max_depth == expected


@pytest.mark.parametrize("value", ["0", "-1", "", "abc", "50.0", "5e1", "1.5",
                                   str(MAX_DEPTH_LIMIT + 1), "99999999999999999999", "nan",
                                   "0x10", "٣"])
def test_max_depth_rejected(value):
    with pytest.raises(ConfigError) as err:
        settings({"PROFILING_MAX_DEPTH": value})
    msg = str(err.value)
    assert "PROFILING_MAX_DEPTH" in msg and repr(value) in msg
    assert f"an integer from 1 to {MAX_DEPTH_LIMIT}" in msg


# -- PROFILING_ASYNC_MODE -----------------------------------------------------

@pytest.mark.parametrize("value,expected", [("enabled", "enabled"), ("disabled", "disabled"),
                                            ("strict", "strict"), ("STRICT", "strict"),
                                            (" Disabled ", "disabled")])
def test_async_mode_accepted(value, expected):
    assert settings({"PROFILING_ASYNC_MODE": value}).async_mode == expected


@pytest.mark.parametrize("value", ["", "on", "true", "enable", "async", "strict-ish", "0"])
def test_async_mode_rejected(value):
    with pytest.raises(ConfigError) as err:
        settings({"PROFILING_ASYNC_MODE": value})
    msg = str(err.value)
    assert "PROFILING_ASYNC_MODE" in msg and repr(value) in msg
    for mode in ASYNC_MODES:
        assert mode in msg


# -- PROFILING_INTERVAL -------------------------------------------------------

@pytest.mark.parametrize("value,expected", [("0.001", 0.001), ("0.0001", 0.0001), ("1", 1.0),
                                            ("0.005", 0.005), ("1e-3", 0.001)])
def test_interval_accepted(value, expected):
    assert settings({"PROFILING_INTERVAL": value}).interval == expected


@pytest.mark.parametrize("value", ["0", "0.00009", "1.01", "-0.001", "", "fast", "nan", "inf",
                                   "1ms"])
def test_interval_rejected(value):
    with pytest.raises(ConfigError) as err:
        settings({"PROFILING_INTERVAL": value})
    assert "PROFILING_INTERVAL" in str(err.value) and repr(value) in str(err.value)
    assert "seconds" in str(err.value)


# -- PROFILING_OVERHEAD_BUDGET ------------------------------------------------

@pytest.mark.parametrize("value,expected", [("2", 2.0), ("0.5", 0.5), ("0.01", 0.01),
                                            ("100", 100.0), (" 1 ", 1.0), ("1e-3", 0.001),
                                            ("", None), ("  ", None)])
def test_overhead_budget_accepted(value, expected):
    assert settings({"PROFILING_OVERHEAD_BUDGET": value}).overhead_budget == expected


@pytest.mark.parametrize("value", ["0", "-1", "100.5", "1000", "2%", "abc", "nan", "inf", "0x1",
                                   "1,5"])
def test_overhead_budget_rejected_naming_variable_value_and_range(value):
    with pytest.raises(ConfigError) as err:
        settings({"PROFILING_OVERHEAD_BUDGET": value})
    msg = str(err.value)
    assert err.value.variable == "PROFILING_OVERHEAD_BUDGET" and err.value.value == value
    assert f"PROFILING_OVERHEAD_BUDGET={value!r}" in msg
    assert f"a percent of one core, a number > 0 and <= {OVERHEAD_BUDGET_LIMIT:g}" in msg
    assert "(empty means no budget)" in msg


def test_overhead_budget_keyword_and_startup_line():
    assert settings(overhead_budget=1).overhead_budget == 1.0
    assert settings(overhead_budget="0.25").overhead_budget == 0.25
    with pytest.raises(ConfigError) as err:
        settings(overhead_budget=0)
    assert err.value.variable == "overhead_budget" and "keyword argument" in str(err.value)
    assert "overhead_budget" not in Settings().describe()
    assert "overhead_budget=0.5%" in Settings(overhead_budget=0.5).describe()


# -- PROFILING_OUTPUT_DIR -----------------------------------------------------

def test_output_dir_is_taken_as_given(tmp_path):
    assert settings({"PROFILING_OUTPUT_DIR": str(tmp_path)}).output_dir == str(tmp_path)
    assert settings({"PROFILING_OUTPUT_DIR": " profiles "}).output_dir == "profiles"


def test_output_dir_expands_home():
    got = settings({"PROFILING_OUTPUT_DIR": "~/profiles"}).output_dir
    assert got == os.path.join(os.path.expanduser("~"), "profiles")


def test_output_dir_empty_means_not_set():
    assert settings({"PROFILING_OUTPUT_DIR": ""}).output_dir is None
    assert settings({"PROFILING_OUTPUT_DIR": "   "}).output_dir is None


def test_output_dir_with_nul_is_rejected():
    with pytest.raises(ConfigError, match="PROFILING_OUTPUT_DIR"):
        settings({"PROFILING_OUTPUT_DIR": "a\x00b"})


# -- PROFILING_MANUAL ---------------------------------------------------------

@pytest.mark.parametrize("value", TRUE_SPELLINGS)
def test_manual_true_spellings(value):
    assert settings({"PROFILING_MANUAL": value}).manual is True


@pytest.mark.parametrize("value", FALSE_SPELLINGS)
def test_manual_false_spellings(value):
    assert settings({"PROFILING_MANUAL": value}).manual is False


@pytest.mark.parametrize("value", ["", "  ", "2", "disable", "nope", "1" * 10_000, "\x00", "ja"])
def test_manual_rejects_anything_else(value):
    with pytest.raises(ConfigError) as err:
        settings({"PROFILING_MANUAL": value})
    assert err.value.variable == "PROFILING_MANUAL"
    assert "1/true/t/yes/y/on" in str(err.value)
    assert len(str(err.value)) < 500            # a huge value is not repeated whole


# -- PROFILING_TOKEN ----------------------------------------------------------

GOOD_TOKEN = "s3cr3t-Token_0123456789"


@pytest.mark.parametrize("value,expected", [
    (GOOD_TOKEN, GOOD_TOKEN),
    (f"  {GOOD_TOKEN}\n", GOOD_TOKEN),                # surrounding spaces are not part of it
    ("!" * 16, "!" * 16),
    ("~" * 256, "~" * 256),
    ("aB3$%&'()*+,-./:;<=>?@[]^_`{|}", "aB3$%&'()*+,-./:;<=>?@[]^_`{|}"),
    ("", None), ("   ", None),                        # empty means not set
])
def test_token_accepted(value, expected):
    assert settings({"PROFILING_TOKEN": value}).token == expected


@pytest.mark.parametrize("value", [
    "short", "a" * 15, "a" * 257, "x" * 1_000_000,                  # too short / too long
    "has a space inside!!", "tab\tinside-0123456789", "new\nline-0123456789",
    "nul\x00byte-0123456789", "caf\u00e9-0123456789abcdef", "\u20ac" * 20,
    "\x7f" * 20, "\udcff" * 20,
])
def test_token_rejected_without_showing_it(value):
    with pytest.raises(ConfigError) as err:
        settings({"PROFILING_TOKEN": value})
    msg = str(err.value)
    assert err.value.variable == "PROFILING_TOKEN"
    assert "16 to 256 visible ASCII characters" in msg
    assert f"<hidden, {len(value)} characters>" in msg
    # Not even a piece of it: the message goes to the log.
    assert value.strip()[:5] not in msg.replace("PROFILING_TOKEN", "").replace("hidden", "")
    assert err.value.value == f"<hidden, {len(value)} characters>"
    assert len(msg) < 300


def test_token_never_in_repr_or_describe():
    s = Settings(enabled=True, token=GOOD_TOKEN)
    assert GOOD_TOKEN not in repr(s)
    assert GOOD_TOKEN not in s.describe()
    assert "manual=token" in s.describe()
    assert s.public()["token"] is True and Settings().public()["token"] is False
    assert GOOD_TOKEN not in str(s.public())


def test_bad_token_keyword_is_hidden_too():
    with pytest.raises(ConfigError) as err:
        settings(token="tooshort")
    assert "tooshort" not in str(err.value) and "keyword argument" in str(err.value)
    with pytest.raises(ConfigError):
        settings(token=12345678901234567890)         # not a string


def test_token_from_dotenv_unterminated_quote_is_hidden(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text('PROFILING_TOKEN="abcdefghijklmnopqrstuvwxyz\n')
    with pytest.raises(ConfigError) as err:
        settings({}, env_file)
    assert "abcdefgh" not in str(err.value) and "line 1" in str(err.value)


# -- PROFILING_MAX_CONCURRENT -------------------------------------------------

@pytest.mark.parametrize("value,expected", [("1", 1), ("4", 4), (" 16 ", 16), ("+2", 2),
                                            (str(MAX_CONCURRENT_LIMIT), MAX_CONCURRENT_LIMIT)])
def test_max_concurrent_accepted(value, expected):
    assert settings({"PROFILING_MAX_CONCURRENT": value}).max_concurrent == expected


@pytest.mark.parametrize("value", ["0", "-1", "", " ", "four", "4.0", "4e0", "0x4", "inf", "nan",
                                   str(MAX_CONCURRENT_LIMIT + 1), "9" * 30, "9" * 100_000, "٤",
                                   "4 4", "1_0"])
def test_max_concurrent_rejected(value):
    with pytest.raises(ConfigError) as err:
        settings({"PROFILING_MAX_CONCURRENT": value})
    msg = str(err.value)
    assert err.value.variable == "PROFILING_MAX_CONCURRENT"
    assert f"an integer from 1 to {MAX_CONCURRENT_LIMIT}" in msg
    assert len(msg) < 500


# -- huge values everywhere ------------------------------------------------------

@pytest.mark.parametrize("var", sorted(set(Settings.variables().values())
                                        - {"PROFILING_OUTPUT_DIR", "PROFILING_STORE"}))
def test_huge_values_are_rejected_with_a_bounded_message(var):
    value = "1" + "0" * 1_000_000
    with pytest.raises(ConfigError) as err:
        settings({var: value})
    assert err.value.variable == var
    assert len(str(err.value)) < 500


def test_huge_output_dir_is_taken_as_a_path_and_fails_at_startup():
    # A path is a path: the middleware's directory check rejects it when it
    # cannot be created (ENAMETOOLONG).
    assert settings({"PROFILING_OUTPUT_DIR": "d" * 100_000}).output_dir == "d" * 100_000


# -- keyword arguments and direct construction --------------------------------

def test_keywords_win_over_environment(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("PROFILING_SAMPLE_RATE=0.2\n")
    s = settings({"PROFILING_SAMPLE_RATE": "0.3", "ENABLE_PROFILING": "false"}, env_file,
                 sample_rate=0.7, enabled=True)
    assert s.sample_rate == 0.7 and s.enabled is True


def test_keyword_none_means_not_given():
    assert settings({"PROFILING_MAX_DEPTH": "30"}, max_depth=None).max_depth == 30


def test_keywords_accept_strings_like_the_environment():
    s = settings(enabled="yes", sample_rate="0.5", max_depth="10", async_mode="Strict",
                 interval="0.002")
    assert (s.enabled, s.sample_rate, s.max_depth, s.async_mode, s.interval) == \
        (True, 0.5, 10, "strict", 0.002)


def test_keywords_accept_path_objects(tmp_path):
    assert settings(output_dir=tmp_path).output_dir == str(tmp_path)


@pytest.mark.parametrize("kw", [dict(sample_rate=1.5), dict(sample_rate=math.nan),
                                dict(sample_rate=True), dict(max_depth=0), dict(max_depth=2.0),
                                dict(max_depth=True), dict(enabled=1), dict(enabled="maybe"),
                                dict(async_mode="fast"), dict(interval=0), dict(interval=math.inf),
                                dict(output_dir=42), dict(manual="sometimes"), dict(manual=0),
                                dict(max_concurrent=0), dict(max_concurrent=1.5),
                                dict(max_concurrent=True), dict(max_concurrent=10**6)])
def test_bad_keywords_raise_config_error_naming_the_argument(kw):
    (name, value), = kw.items()
    with pytest.raises(ConfigError) as err:
        settings(**kw)
    assert err.value.variable == name
    assert f"{name}={value!r}" in str(err.value)
    assert "keyword argument" in str(err.value)


def test_unknown_keyword_is_a_type_error():
    with pytest.raises(TypeError, match="sample_rte"):
        settings(sample_rte=0.5)


def test_direct_construction_is_checked():
    with pytest.raises(ConfigError, match="sample_rate"):
        Settings(sample_rate=2.0)
    assert Settings(interval=1).interval == 1.0
    assert isinstance(Settings(interval=1).interval, float)


def test_replace_checks_and_keeps():
    s = Settings(enabled=True)
    t = s.replace(sample_rate=0.5, max_depth=None)
    assert t.enabled is True and t.sample_rate == 0.5 and t.max_depth == 50
    with pytest.raises(ConfigError):
        s.replace(sample_rate=-1)
    with pytest.raises(TypeError):
        s.replace(nope=1)


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


def test_reads_os_environ_by_default(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)     # no .env here
    monkeypatch.setenv("ENABLE_PROFILING", "on")
    monkeypatch.setenv("PROFILING_SAMPLE_RATE", "0.25")
    s = Settings.from_env()
    assert s.enabled is True and s.sample_rate == 0.25


# -- .env ---------------------------------------------------------------------

def test_dotenv_in_working_directory_is_read(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for var in Settings.variables().values():
        monkeypatch.delenv(var, raising=False)
    (tmp_path / ".env").write_text(
        "ENABLE_PROFILING=true\nPROFILING_SAMPLE_RATE=0.01\nPROFILING_MAX_DEPTH=30\n"
        "PROFILING_ASYNC_MODE=disabled\nPROFILING_INTERVAL=0.002\n"
        "PROFILING_OUTPUT_DIR=profiles\nPROFILING_MANUAL=off\n"
        f"PROFILING_TOKEN='{GOOD_TOKEN}'\nPROFILING_MAX_CONCURRENT=2\n")
    s = Settings.from_env()
    assert s == Settings(enabled=True, sample_rate=0.01, max_depth=30, async_mode="disabled",
                         interval=0.002, output_dir="profiles", manual=False, token=GOOD_TOKEN,
                         max_concurrent=2)


def test_environment_wins_over_dotenv(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("ENABLE_PROFILING=true\nPROFILING_MAX_DEPTH=30\n")
    s = settings({"ENABLE_PROFILING": "false"}, env_file)
    assert s.enabled is False and s.max_depth == 30


def test_environment_wins_even_when_dotenv_value_is_bad(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("PROFILING_SAMPLE_RATE=abc\n")
    assert settings({"PROFILING_SAMPLE_RATE": "0.5"}, env_file).sample_rate == 0.5


def test_missing_dotenv_is_fine(tmp_path):
    assert settings({}, tmp_path / "nope.env") == Settings()


def test_env_file_none_skips_dotenv(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("ENABLE_PROFILING=true\n")
    assert Settings.from_env(environ={}, env_file=None).enabled is False
    assert Settings.from_env(environ={}).enabled is True


def test_bad_dotenv_value_names_file_and_line(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("# profiling\nENABLE_PROFILING=true\n\nPROFILING_SAMPLE_RATE=1.5\n")
    with pytest.raises(ConfigError) as err:
        settings({}, env_file)
    msg = str(err.value)
    assert "PROFILING_SAMPLE_RATE='1.5'" in msg
    assert f"{env_file} line 4" in msg
    assert "0.0 to 1.0" in msg


def test_dotenv_syntax(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text(
        "\ufeff# comment line\n"
        "   \n"
        "export ENABLE_PROFILING=yes\n"
        "PROFILING_SAMPLE_RATE = 0.2   # inline comment\n"
        "PROFILING_ASYNC_MODE='strict'  # quoted\n"
        'PROFILING_OUTPUT_DIR="/tmp/with space#hash"\n'
        "OTHER_TOOL=\"multi\nline = value\nPROFILING_MAX_DEPTH=999\"\n"
        "PROFILING_MAX_DEPTH=20\r\n"
        "not an assignment\n"
        "PROFILING_INTERVAL=0.002")
    s = settings({}, env_file)
    assert s.enabled is True
    assert s.sample_rate == 0.2
    assert s.async_mode == "strict"
    assert s.output_dir == "/tmp/with space#hash"
    assert s.max_depth == 20           # the line inside OTHER_TOOL's quotes is not a variable
    assert s.interval == 0.002         # last line without newline


def test_dotenv_later_line_wins(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("PROFILING_MAX_DEPTH=10\nPROFILING_MAX_DEPTH=40\n")
    assert settings({}, env_file).max_depth == 40


def test_dotenv_quotes_and_escapes(tmp_path):
    env_file = tmp_path / "x.env"
    env_file.write_text("A='lit\\n $B'\nB=\"tab\\there\"\nC=plain#nocomment\nD=\n")
    got = {k: v for k, (v, _) in read_env_file(env_file).items()}
    assert got == {"A": "lit\\n $B", "B": "tab\there", "C": "plain#nocomment", "D": ""}


def test_dotenv_expands_variables(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("BASE=/srv/app\nPROFILING_OUTPUT_DIR=${BASE}/profiles\n"
                        "PROFILING_ASYNC_MODE=${MODE:-strict}\n")
    s = settings({}, env_file)
    assert s.output_dir == "/srv/app/profiles" and s.async_mode == "strict"
    s = settings({"BASE": "/opt", "MODE": "disabled"}, env_file)
    assert s.output_dir == "/opt/profiles" and s.async_mode == "disabled"


def test_dotenv_unterminated_quote_on_our_variable(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text('PROFILING_ASYNC_MODE="strict\nENABLE_PROFILING=true\n')
    with pytest.raises(ConfigError) as err:
        settings({}, env_file)
    assert "PROFILING_ASYNC_MODE" in str(err.value) and "line 1" in str(err.value)


def test_dotenv_unterminated_quote_elsewhere_is_skipped(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text('SECRET="abc\nENABLE_PROFILING=true\n')
    assert settings({}, env_file).enabled is True


def test_unreadable_dotenv_is_a_config_error(tmp_path):
    directory = tmp_path / "dir.env"
    directory.mkdir()
    with pytest.raises(ConfigError, match="env_file"):
        settings({}, directory)


def test_describe_lists_every_setting():
    line = Settings(enabled=True, output_dir="/x").describe()
    for part in ("sample_rate=0.1", "max_depth=50", "async_mode=enabled", "interval=0.001s",
                 "output_dir=/x", "manual=open", "max_concurrent=4"):
        assert part in line
    assert "manual=off" in Settings(manual=False, token=GOOD_TOKEN).describe()


def test_config_imports_without_the_extension(tmp_path):
    """`reqprof.config` must work where the C extension cannot load."""
    import subprocess
    import sys
    code = ("import sys; sys.modules['reqprof._core'] = None\n"
            "from reqprof.config import Settings\n"
            "print(Settings.from_env(environ={'ENABLE_PROFILING': 'yes'}, env_file=None).enabled)\n"
            "import reqprof; print(reqprof.Settings is Settings)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tmp_path, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True"]


# -- pushing to Pyroscope -----------------------------------------------------------

def test_push_settings_defaults_are_off():
    s = settings({})
    assert s.pyroscope_url is None and s.service_name is None and s.labels == ()
    assert s.push_interval == 15.0 and s.push_max_mb == 16
    assert s.pyroscope_auth is None and s.pyroscope_tenant is None


def test_push_settings_are_read():
    s = settings({"PROFILING_PYROSCOPE_URL": " http://pyroscope:4040/ ",
                  "PROFILING_SERVICE_NAME": "shop", "PROFILING_LABELS": "region=eu, env=prod,",
                  "PROFILING_PUSH_INTERVAL": "1", "PROFILING_PYROSCOPE_AUTH": "u:p",
                  "PROFILING_PYROSCOPE_TENANT": "team-a", "PROFILING_PUSH_MAX_MB": "2"})
    assert s.pyroscope_url == "http://pyroscope:4040"
    assert s.service_name == "shop"
    assert s.labels == (("env", "prod"), ("region", "eu"))
    assert s.push_interval == 1.0 and s.push_max_mb == 2
    assert s.pyroscope_auth == "u:p" and s.pyroscope_tenant == "team-a"
    assert "u:p" not in repr(s) and s.public()["pyroscope_auth"] is True
    assert ("pyroscope_url=http://pyroscope:4040 push_interval=1s push_max_mb=2 service_name=shop "
            "labels=env=prod,region=eu tenant=team-a") in s.describe()


def test_labels_keyword_accepts_a_mapping():
    assert Settings(labels={"b": "2", "a": "1"}).labels == (("a", "1"), ("b", "2"))


@pytest.mark.parametrize("var,value,accepted", [
    ("PROFILING_PYROSCOPE_URL", "pyroscope:4040", "http:// or https:// URL"),
    ("PROFILING_PYROSCOPE_URL", "ftp://host", "http:// or https:// URL"),
    ("PROFILING_PYROSCOPE_URL", "http://", "with a host"),
    ("PROFILING_PYROSCOPE_URL", "http://h:99999", "http:// or https:// URL"),
    ("PROFILING_PYROSCOPE_URL", "http://h/?x=1", "no query"),
    ("PROFILING_SERVICE_NAME", "my app", "without spaces"),
    ("PROFILING_SERVICE_NAME", "a{b}", "without spaces"),
    ("PROFILING_LABELS", "env", "name=value pairs"),
    ("PROFILING_LABELS", "1env=x", "name=value pairs"),
    ("PROFILING_LABELS", "__name__=x", "not starting with __"),
    ("PROFILING_LABELS", "route=x", "reqprof sets"),
    ("PROFILING_LABELS", "a=1,a=2", "name=value pairs"),
    ("PROFILING_LABELS", "a=", "values of 1 to 200"),
    ("PROFILING_LABELS", "a=x,y", "name=value pairs"),
    ("PROFILING_LABELS", "a=x{y}", "values of 1 to 200"),
    ("PROFILING_LABELS", ",".join(f"l{i}=v" for i in range(21)), "up to 20"),
    ("PROFILING_PUSH_INTERVAL", "0.5", "from 1 to 3600"),
    ("PROFILING_PUSH_INTERVAL", "3601", "from 1 to 3600"),
    ("PROFILING_PUSH_INTERVAL", "nan", "from 1 to 3600"),
    ("PROFILING_PYROSCOPE_AUTH", "user pass", "visible ASCII"),
    ("PROFILING_PYROSCOPE_TENANT", "a b", "visible ASCII"),
    ("PROFILING_PUSH_MAX_MB", "0", "from 1 to 1024"),
    ("PROFILING_PUSH_MAX_MB", "2.5", "from 1 to 1024"),
])
def test_push_settings_rejected(var, value, accepted):
    with pytest.raises(ConfigError) as err:
        settings({var: value})
    assert err.value.variable == var
    assert accepted in str(err.value)


def test_pyroscope_auth_is_never_shown_in_an_error():
    with pytest.raises(ConfigError) as err:
        settings({"PROFILING_PYROSCOPE_AUTH": "secret word"})
    assert "secret" not in str(err.value)
