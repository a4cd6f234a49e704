#!/usr/bin/env bash
# The GPU check in one line, from anywhere: bash benchmarks/gpu_check.sh [--out FILE] (see benchmarks/gpu_check.py).
cd "$(dirname "$0")/.." && PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" exec "${PYTHON:-.venv/bin/python}" benchmarks/gpu_check.py "$@"
