"""Packaging beyond what pyproject.toml can say: the top-level ``recipes/`` folder ships inside the
package as ``redegkit/recipes/`` (one copy in the repository, every ``*.toml`` in it, no list to
keep up to date). Everything else is in pyproject.toml."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["redegkit*"]), "redegkit.recipes"],
    package_dir={"redegkit.recipes": "recipes"},
)
