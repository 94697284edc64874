"""``glmix-viz app``: the options it hands to ``streamlit run``, parsed by Streamlit's own command line (no server)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from streamlit.web import cli as streamlit_cli

from glmix_viz.app import MAIN_SCRIPT
from glmix_viz.cli import build_parser
from glmix_viz.commands.app import CONFIG, config_options, streamlit_argv

ROOT = Path(__file__).resolve().parents[1]


def _streamlit_params(argv: list) -> dict:
    assert argv[0] == "run"
    return streamlit_cli.main.commands["run"].make_context("run", argv[1:]).params


def test_config_options_spell_sections_and_booleans_as_streamlit_does() -> None:
    config = {"server": {"port": 8502, "headless": True}, "browser": {"gatherUsageStats": False}}
    assert config_options(config) == ["--server.port", "8502", "--server.headless", "true",
                                      "--browser.gatherUsageStats", "false"]


def test_app_command_runs_the_packaged_script_with_its_settings_and_app_options(tmp_path: Path) -> None:
    args = build_parser().parse_args(["app", "--checkpoints", str(tmp_path), "--device", "cpu", "--",
                                      "--server.maxUploadSize", "300", "--server.headless", "true"])
    params = _streamlit_params(streamlit_argv(args))
    assert Path(params["target"]) == MAIN_SCRIPT and MAIN_SCRIPT.is_file()
    assert params["client_toolbarMode"] == "minimal" and params["browser_gatherUsageStats"] is False
    assert params["server_maxUploadSize"] == 300  # the user's option wins over the packaged setting (200)
    assert params["server_headless"] is True
    assert params["args"] == ("--checkpoints", str(tmp_path.resolve()), "--device", "cpu")


def test_the_upload_store_is_passed_to_the_app(tmp_path: Path) -> None:
    args = build_parser().parse_args(["app", "--uploads", str(tmp_path / "store")])
    assert _streamlit_params(streamlit_argv(args))["args"] == ("--uploads", str((tmp_path / "store").resolve()))


def test_without_options_the_packaged_settings_apply() -> None:
    params = _streamlit_params(streamlit_argv(build_parser().parse_args(["app"])))
    assert params["server_maxUploadSize"] == 200 and params["args"] == ()


def test_the_checkout_reads_the_same_settings_file() -> None:
    """``streamlit run app/main.py`` reads .streamlit/config.toml: a link to the packaged settings, not a copy."""
    link = ROOT / ".streamlit" / "config.toml"
    assert link.resolve() == CONFIG.resolve()
    with CONFIG.open("rb") as stream:
        assert tomllib.load(stream)["server"]["maxUploadSize"] == 200


def test_the_app_reads_its_options_after_the_double_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    from glmix_viz.app import main

    monkeypatch.setattr("sys.argv", [str(MAIN_SCRIPT), "--checkpoints", "/some/folder", "--device", "cuda:1"])
    monkeypatch.delenv("GLMIX_CHECKPOINTS", raising=False)
    assert main.checkpoint_folder() == "/some/folder"
    assert main.device_choices()[0] == "cuda:1"
    monkeypatch.setattr("sys.argv", [str(MAIN_SCRIPT)])
    monkeypatch.setenv("GLMIX_CHECKPOINTS", "/from/env")
    assert main.checkpoint_folder() == "/from/env"
    assert main.device_choices() == main.data.available_devices()


def test_the_command_is_registered() -> None:
    assert "app" in build_parser().format_help()


def test_runs_folder_goes_to_the_app_and_a_missing_one_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture) -> None:
    from glmix_viz.app.runs import runs_root
    from glmix_viz.cli import main

    args = build_parser().parse_args(["app", "--runs", str(tmp_path)])
    assert _streamlit_params(streamlit_argv(args))["args"] == ("--runs", str(tmp_path.resolve()))
    monkeypatch.setattr("sys.argv", [str(MAIN_SCRIPT), "--runs", str(tmp_path)])
    monkeypatch.setenv("GLMIX_RUNS", "/from/env")
    assert runs_root() == str(tmp_path.resolve())
    monkeypatch.setattr("sys.argv", [str(MAIN_SCRIPT)])
    assert runs_root() == "/from/env"
    monkeypatch.delenv("GLMIX_RUNS")
    assert runs_root() is None
    assert main(["app", "--runs", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.strip() == f"glmix-viz app: error: --runs {tmp_path / 'nowhere'}: no such folder"


def test_the_limits_have_their_defaults_in_help_and_reach_the_app(monkeypatch: pytest.MonkeyPatch) -> None:
    from glmix_viz.app import options

    help_text = " ".join(build_parser().parse_args(["app"]) and _app_help().split())
    for option, default in (("--upload-cap-mb", "512"), ("--random-variants", "glnet_tiny,glnet_stl"),
                            ("--models-cached", "3"), ("--model-cache-mb", "160")):
        assert option in help_text and f"else {default})" in help_text, option
    args = build_parser().parse_args(["app", "--upload-cap-mb", "2", "--random-variants", "glnet_tiny",
                                      "--models-cached", "1", "--model-cache-mb", "50"])
    app_args = _streamlit_params(streamlit_argv(args))["args"]
    assert app_args == ("--upload-cap-mb", "2.0", "--random-variants", "glnet_tiny", "--models-cached", "1",
                        "--model-cache-mb", "50.0")
    monkeypatch.setattr("sys.argv", [str(MAIN_SCRIPT), *app_args])
    assert options.upload_cap_bytes() == 2 * 2**20 and options.limit("models_cached") == 1
    assert options.random_variants(["glnet_stl", "glnet_tiny", "glnet_16g"]) == ["glnet_tiny"]
    monkeypatch.setattr("sys.argv", [str(MAIN_SCRIPT)])
    for variable in ("GLMIX_UPLOAD_CAP_MB", "GLMIX_RANDOM_VARIANTS", "GLMIX_MODELS_CACHED", "GLMIX_MODEL_CACHE_MB"):
        monkeypatch.delenv(variable, raising=False)
    assert options.upload_cap_bytes() == 512 * 2**20 and options.limit("model_cache_mb") == 160
    assert options.random_variants(["glnet_16g", "glnet_stl", "glnet_tiny"]) == ["glnet_stl", "glnet_tiny"]
    monkeypatch.setenv("GLMIX_MODELS_CACHED", "-4")  # unusable: the default, said in the server's log
    assert options.limit("models_cached") == 3


def _app_help() -> str:
    parser = build_parser()
    action = next(action for action in parser._subparsers._group_actions if action.dest)  # noqa: SLF001
    return action.choices["app"].format_help()
