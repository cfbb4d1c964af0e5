"""Built-in recipes by name, from a source checkout and from an installed wheel."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile

import pytest
from typer.testing import CliRunner

from redegkit.cli import app
from redegkit.config import (
    SECTIONS,
    ConfigError,
    builtin_recipes,
    recipe_description,
    resolve_config,
    resolve_recipe,
    tomllib,
)

from .conftest import ROOT

runner = CliRunner()


def test_every_recipe_file_is_builtin_with_a_description():
    found = builtin_recipes()
    on_disk = sorted(p.stem for p in (ROOT / "recipes").glob("*.toml"))
    assert sorted(found) == on_disk and {"smoke", "paper", "f2n-esrgan"} <= set(found)
    for name, path in found.items():
        assert recipe_description(path), f"{path}: the first comment line is the description"
        assert resolve_recipe(name) == path and resolve_recipe(f"{name}.toml") == path


def test_name_path_and_unknown(tmp_path):
    assert resolve_config("fit", "smoke") == resolve_config("fit", ROOT / "recipes" / "smoke.toml")
    mine = tmp_path / "smoke"  # an existing file wins over the built-in name
    mine.write_text("[fit]\nsteps = 7\n")
    assert resolve_config("fit", mine).steps == 7
    with pytest.raises(ConfigError, match=r"nope: recipe file not found.*built-in: .*smoke"):
        resolve_config("fit", "nope")
    with pytest.raises(ConfigError, match="not found"):
        resolve_recipe(tmp_path / "sub" / "smoke")  # a path is never taken for a name


def test_config_list_and_show_give_an_editable_file(tmp_path):
    r = runner.invoke(app, ["config", "list"])
    assert r.exit_code == 0 and "smoke" in r.stdout.split()
    r = runner.invoke(app, ["config", "show", "--recipe", "smoke"])
    assert r.exit_code == 0 and r.stdout == (ROOT / "recipes" / "smoke.toml").read_text()
    # every default, as a TOML recipe that resolves back to the defaults
    r = runner.invoke(app, ["config", "show"])
    assert r.exit_code == 0
    f = tmp_path / "defaults.toml"
    f.write_text(r.stdout)
    assert set(tomllib.loads(r.stdout)) == set(SECTIONS)
    for name in SECTIONS:
        assert resolve_config(name, f) == resolve_config(name)
    r = runner.invoke(app, ["config", "show", "--recipe", "smoke", "--json"])
    assert r.exit_code == 0 and '"fit"' in r.stdout
    r = runner.invoke(app, ["config", "show", "--recipe", "nope"])
    assert r.exit_code == 2 and "built-in" in r.output


def test_wheel_ships_the_recipes_and_they_work_installed(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("redegkit", "recipes"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, src / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    subprocess.run(
        [
            *pip,
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            str(src),
            "-w",
            str(tmp_path / "dist"),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (whl,) = (tmp_path / "dist").glob("redegkit-*.whl")
    names = zipfile.ZipFile(whl).namelist()
    for p in (ROOT / "recipes").glob("*.toml"):
        assert f"redegkit/recipes/{p.name}" in names
    presets = sorted(p.stem for p in (ROOT / "redegkit" / "presets").glob("*.toml"))
    assert presets and all(f"redegkit/presets/{n}.toml" in names for n in presets)  # the TOML presets

    # a fresh venv; the test environment's packages (torch, typer …) are visible through a .pth
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    vpy = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    purelib = subprocess.run(
        [str(vpy), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (tmp_path / "venv" / purelib).joinpath("testenv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # the test environment's pip (visible through the .pth) installs into the venv it runs in
    subprocess.run(
        [
            str(vpy),
            "-m",
            "pip",
            "--disable-pip-version-check",
            "install",
            "--no-deps",
            "--no-index",
            "-q",
            str(whl),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    where = subprocess.run(
        [str(vpy), "-c", "import redegkit; print(redegkit.__file__)"],
        cwd=outside,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert where.stdout.startswith(str(venv)), where  # the installed copy, not the checkout
    redeg = venv / ("Scripts/redeg.exe" if os.name == "nt" else "bin/redeg")
    r = subprocess.run(
        [str(redeg), "config", "show", "--recipe", "smoke"],
        cwd=outside,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout == (ROOT / "recipes" / "smoke.toml").read_text()
    r = subprocess.run(
        [str(redeg), "config", "list"], cwd=outside, env=env, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0 and set(r.stdout.split()) == set(builtin_recipes())
    r = subprocess.run(
        [str(redeg), "presets", "list"], cwd=outside, env=env, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0 and set(presets) <= set(r.stdout.split()), r.stderr
