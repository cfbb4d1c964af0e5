"""Every command answers --help and is in the docs' CLI reference; the generated reference pages
(CLI, recipes) are current; the README keeps its size limit and its CI test command."""

import pytest
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


def test_every_command_has_help_and_is_in_the_cli_reference():
    page = (ROOT / "docs" / "reference" / "cli.md").read_text()
    names = list(_commands())
    assert ["synthesize"] in names and ["fit-degradation"] in names and ["bank", "info"] in names
    assert ["report"] in names
    for parts in names:
        r = runner.invoke(app, [*parts, "--help"])
        assert r.exit_code == 0, (parts, r.output)
        assert f"## `redeg {' '.join(parts)}`" in page, (
            f"docs/reference/cli.md lacks `redeg {' '.join(parts)}`"
        )


def test_readme_is_short_and_links_the_docs():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.encode()) <= 15 * 1024, f"README.md is {len(readme.encode())} bytes (limit 15 KiB)"
    for page in ("docs/index.md", "docs/reference/cli.md"):
        assert page in readme, page
    assert "CC BY-NC-SA 4.0" in readme


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


def _tool(name: str, *args: str):
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, str(ROOT / "tools" / name), *args], capture_output=True, text=True, timeout=300
    )


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


@pytest.mark.parametrize("tool", ["gen_cli_reference.py", "gen_config_reference.py"])
def test_generated_reference_pages_are_current(tool, tmp_path):
    """docs/reference/cli.md and config.md are what the tools render now: a changed option, help
    text or config field without a regenerated page fails here (the CLI reference drifted once).
    And the check can fail: a page one line off is reported stale."""
    r = _tool(tool, "--check")
    assert r.returncode == 0, f"run `python tools/{tool}`: {r.stdout}{r.stderr}"
    page = ROOT / "docs" / "reference" / ("cli.md" if "cli" in tool else "config.md")
    stale = tmp_path / "stale.md"
    lines = page.read_text().splitlines(keepends=True)
    stale.write_text("".join(lines[:-3] + lines[-2:]))
    r = _tool(tool, "--check", "--page", str(stale))
    assert r.returncode == 1 and "stale" in r.stderr


def test_the_run_summary_prints_brackets_as_data(capsys):
    """A summary value like [null, null] (an undefined interval) is printed, not eaten as a rich
    style tag (it printed `"closure_ci": ,`)."""
    from redegkit.cli.app import finish

    with pytest.raises(typer.Exit):
        finish({"x1": {"closure_ci": [None, None], "tag": "[bold]"}}, json_out=False)
    out = capsys.readouterr().err  # human output goes to stderr
    assert '"closure_ci": [null, null]' in out and '"tag": "[bold]"' in out
