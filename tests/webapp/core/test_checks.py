"""System checks on settings that clash: run artifacts, checkpoints and the model cache in
folders apart."""

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from webapp.core.checks import run_folders_apart


@pytest.fixture
def folders(settings, tmp_path):
    def set_folders(artifacts, checkpoints, models="var/models"):
        settings.STEER_ARTIFACT_DIR = tmp_path / artifacts
        settings.STEER_CHECKPOINT_DIR = tmp_path / checkpoints
        settings.STEER_MODEL_CACHE_DIR = tmp_path / models
    return set_folders


def test_separate_folders_pass(folders):
    folders("var/artifacts", "var/checkpoints")
    assert run_folders_apart() == []


def test_folders_that_share_a_name_prefix_are_not_nested(folders):
    folders("var/runs", "var/runs-checkpoints")
    assert run_folders_apart() == []


def test_one_folder_for_both_is_an_error_naming_both_settings(folders, tmp_path):
    folders("var/runs", "var/other/../runs")
    [error] = run_folders_apart()
    assert error.id == "steer.E001" and error.is_serious()
    assert "STEER_ARTIFACT_DIR and STEER_CHECKPOINT_DIR are the same folder" in error.msg
    assert str(tmp_path / "var" / "runs") in error.msg


@pytest.mark.parametrize(("artifacts", "checkpoints", "inner"), [
    ("var/checkpoints/artifacts", "var/checkpoints", "STEER_ARTIFACT_DIR"),
    ("var/artifacts", "var/artifacts/run-1", "STEER_CHECKPOINT_DIR"),
])
def test_one_folder_inside_the_other_is_an_error(folders, artifacts, checkpoints, inner):
    folders(artifacts, checkpoints)
    [error] = run_folders_apart()
    assert error.id == "steer.E001" and f"nest: {inner}" in error.msg


def test_a_link_to_the_other_folder_is_the_same_folder(folders, tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "artifacts").symlink_to(tmp_path / "checkpoints")
    folders("artifacts", "checkpoints")
    [error] = run_folders_apart()
    assert "are the same folder" in error.msg


def test_manage_py_check_refuses_the_clash(folders):
    folders("var/runs", "var/runs")
    with pytest.raises(SystemCheckError, match="steer.E001"):
        call_command("check")


# --- the model cache ---------------------------------------------------------------------------

@pytest.mark.parametrize(("models", "other"), [
    ("var/checkpoints", "STEER_CHECKPOINT_DIR"),
    ("var/artifacts", "STEER_ARTIFACT_DIR"),
    ("var/other/../checkpoints", "STEER_CHECKPOINT_DIR"),
])
def test_the_model_cache_in_the_same_folder_as_a_run_folder_is_an_error_naming_both(folders, tmp_path,
                                                                                     models, other):
    folders("var/artifacts", "var/checkpoints", models)
    [error] = run_folders_apart()
    assert error.id == "steer.E001" and error.is_serious()
    assert f"STEER_MODEL_CACHE_DIR and {other} are the same folder" in error.msg
    assert str((tmp_path / models).resolve()) in error.msg
    assert "cached models" in error.msg


@pytest.mark.parametrize(("artifacts", "checkpoints", "models", "nest"), [
    ("var/artifacts", "var/checkpoints", "var/checkpoints/models",
     "STEER_MODEL_CACHE_DIR and STEER_CHECKPOINT_DIR nest: STEER_MODEL_CACHE_DIR"),
    ("var/artifacts", "var/models/checkpoints", "var/models",
     "STEER_MODEL_CACHE_DIR and STEER_CHECKPOINT_DIR nest: STEER_CHECKPOINT_DIR"),
    ("var/artifacts", "var/checkpoints", "var/artifacts/models",
     "STEER_MODEL_CACHE_DIR and STEER_ARTIFACT_DIR nest: STEER_MODEL_CACHE_DIR"),
    ("var/models/artifacts", "var/checkpoints", "var/models",
     "STEER_MODEL_CACHE_DIR and STEER_ARTIFACT_DIR nest: STEER_ARTIFACT_DIR"),
])
def test_the_model_cache_nested_with_a_run_folder_is_an_error(folders, artifacts, checkpoints, models, nest):
    folders(artifacts, checkpoints, models)
    [error] = run_folders_apart()
    assert error.id == "steer.E001" and nest in error.msg


def test_the_model_cache_beside_the_run_folders_passes(folders):
    folders("var/artifacts", "var/checkpoints", "var/models")
    assert run_folders_apart() == []
    folders("var/artifacts", "var/checkpoints", "var/checkpoints-models")  # a shared prefix only
    assert run_folders_apart() == []


def test_a_link_from_the_model_cache_to_the_checkpoints_is_the_same_folder(folders, tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "models").symlink_to(tmp_path / "checkpoints")
    folders("artifacts", "checkpoints", "models")
    [error] = run_folders_apart()
    assert "STEER_MODEL_CACHE_DIR and STEER_CHECKPOINT_DIR are the same folder" in error.msg


def test_one_folder_for_all_three_names_every_pair(folders):
    folders("var/runs", "var/runs", "var/runs")
    errors = run_folders_apart()
    assert [e.msg.split(" are ")[0] for e in errors] == [
        "STEER_ARTIFACT_DIR and STEER_CHECKPOINT_DIR", "STEER_MODEL_CACHE_DIR and STEER_CHECKPOINT_DIR",
        "STEER_MODEL_CACHE_DIR and STEER_ARTIFACT_DIR"]
    assert all(e.id == "steer.E001" for e in errors)


def test_manage_py_check_refuses_a_model_cache_inside_the_checkpoints(folders):
    folders("var/artifacts", "var/checkpoints", "var/checkpoints/models")
    with pytest.raises(SystemCheckError, match="STEER_MODEL_CACHE_DIR"):
        call_command("check")


# --- a path that cannot be resolved ------------------------------------------------------------

def _loop(tmp_path):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")


@pytest.mark.parametrize("checkpoints", ["a", "a/checkpoints"])
def test_a_loop_of_links_is_an_error_naming_the_setting_and_its_path(folders, tmp_path, checkpoints):
    _loop(tmp_path)
    folders("var/artifacts", checkpoints)
    [error] = run_folders_apart()
    assert error.id == "steer.E002" and error.is_serious()
    assert error.msg.startswith(f"STEER_CHECKPOINT_DIR ({tmp_path / checkpoints}) cannot be resolved")
    assert "STEER_CHECKPOINT_DIR" in error.hint


def test_the_other_settings_are_still_compared_beside_a_loop(folders, tmp_path):
    _loop(tmp_path)
    folders("var/runs", "a", "var/runs")
    errors = run_folders_apart()
    assert [e.id for e in errors] == ["steer.E002", "steer.E001"]
    assert "STEER_CHECKPOINT_DIR" in errors[0].msg
    assert "STEER_MODEL_CACHE_DIR and STEER_ARTIFACT_DIR are the same folder" in errors[1].msg


def test_manage_py_check_reports_the_loop(folders, tmp_path):
    _loop(tmp_path)
    folders("var/artifacts", "var/checkpoints", "b")
    with pytest.raises(SystemCheckError, match=r"steer\.E002.*STEER_MODEL_CACHE_DIR"):
        call_command("check")
