"""System checks on settings that clash: run artifacts and checkpoints in folders apart."""

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from webapp.core.checks import run_folders_apart


@pytest.fixture
def folders(settings, tmp_path):
    def set_folders(artifacts, checkpoints):
        settings.STEER_ARTIFACT_DIR = tmp_path / artifacts
        settings.STEER_CHECKPOINT_DIR = tmp_path / checkpoints
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
