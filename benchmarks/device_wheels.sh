#!/usr/bin/env bash
# Wheels of the Python packages that `benchmarks/gpu_suite.sh` needs and a GPU machine's image
# lacks, into .whl/ (ignored by git; the device tool carries it with `carry: [".whl"]`).
#
# Usage, from the repository root of a machine that reaches PyPI:
#   bash benchmarks/device_wheels.sh            # for CPython 3.12 (the device image's python3)
#   PYVER=3.11 bash benchmarks/device_wheels.sh # another CPython
#
# The image already holds torch, numpy, opencv(-headless), rich and typing-extensions; what the
# benchmarks import beyond those is pydantic (and its three dependencies) for the configuration,
# and isal and pyspng for the fast PNG path. The versions are the ones this repository is tested
# with; pydantic and pydantic-core must match each other exactly.
set -euo pipefail
PYVER=${PYVER:-3.12}
PKGS=(pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
      isal==1.9.1 pyspng==0.1.4)
mkdir -p .whl
plat=()
for p in manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux_2_24_x86_64 manylinux_2_27_x86_64 \
         manylinux_2_28_x86_64 manylinux_2_34_x86_64 manylinux1_x86_64; do
  plat+=(--platform "$p")
done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
  "${plat[@]}" -d .whl "${PKGS[@]}"
# keep one version of each package: two would stop the install there
ls .whl/*.whl | sed 's|.*/||; s|-[0-9].*||' | sort | uniq -d | while read -r dup; do
  echo "two versions of $dup in .whl/: remove one" >&2
  exit 1
done
du -sh .whl
ls .whl
