"""Every command answers --help, and README.md documents every command."""

import typer
from typer.testing import CliRunner

from redegkit import __version__
from redegkit.cli import app

from .conftest import ROOT

runner = CliRunner()


def _commands():
    cmd = typer.main.get_command(app)
    for name, sub in cmd.commands.items():
        if hasattr(sub, "commands"):
            for sname in sub.commands:
                yield [name, sname]
        else:
            yield [name]


def test_every_command_has_help_and_is_in_readme():
    readme = (ROOT / "README.md").read_text()
    names = list(_commands())
    assert ["synthesize"] in names and ["fit-degradation"] in names and ["bank", "info"] in names
    for parts in names:
        r = runner.invoke(app, [*parts, "--help"])
        assert r.exit_code == 0, (parts, r.output)
        assert f"redeg {' '.join(parts)}" in readme, f"README.md lacks `redeg {' '.join(parts)}`"


def test_version_and_no_args():
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and __version__ in r.output
    r = runner.invoke(app, [])
    assert r.exit_code in (0, 2) and "synthesize" in r.output


def test_readme_test_command_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- ci:test -->")[1].split("<!-- /ci:test -->")[0]
    assert "pytest" in block
    ci = (ROOT / ".ci" / "run").read_text()
    assert "ci:test" in ci and "README.md" in ci


def test_pick_device_rules():
    import pytest
    import torch

    from redegkit.config import ConfigError
    from redegkit.run import pick_device

    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="not a device"):
        pick_device("gpu7")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            pick_device("cuda")


def test_readme_cli_reference_is_current():
    """The README's CLI reference is what `tools/gen_cli_reference.py` renders now: a changed
    option or help text without a regenerated README fails here (it drifted once already)."""
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "gen_cli_reference.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, f"run `python tools/gen_cli_reference.py`: {r.stdout}{r.stderr}"


def test_option_defaults_are_read_from_the_config_models():
    """Every option that sets a config field shows that field's default, read from its model (so
    a changed default cannot leave a stale help text), and no help text types a default by hand."""
    import re

    from redegkit.cli.app import CONFIG_OPTIONS, show_default

    assert len(CONFIG_OPTIONS) >= 25
    helps: dict[str, list[str]] = {}
    cmd = typer.main.get_command(app)
    stack = [cmd]
    while stack:
        c = stack.pop()
        stack += list(getattr(c, "commands", {}).values())
        for p in c.params:
            for name in p.opts:
                helps.setdefault(name, []).append(getattr(p, "help", "") or "")
    for model, field, opt in CONFIG_OPTIONS:
        default = model.model_fields[field].default
        shown = [re.search(r"\[default: ([^\]]*)\]$", h) for h in helps[opt]]
        values = {m.group(1) for m in shown if m}
        assert values, (opt, helps[opt])
        if default is not None:
            assert show_default(default) in values, (model.__name__, field, opt, values)
    # a hand-typed "[default: ...]" in a command's source would drift from the model
    for src in (ROOT / "redegkit" / "cli").glob("*.py"):
        typed = [ln for ln in src.read_text().splitlines() if "\\[default:" in ln and "{default}" not in ln]
        assert not typed, (src.name, typed)
