"""Packaging glue that pyproject.toml cannot express: ship the top-level ``config/`` data
directory inside the wheel as the ``probe.defaults`` package (no top-level ``config`` module)."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["probe", "probe.*", "measurements", "measurements.*"]), "probe.defaults"],
    package_dir={"probe.defaults": "config"},
)
