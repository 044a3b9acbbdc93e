#!/usr/bin/env bash
# Run every benchmark in turn. Extra arguments go to each script (e.g. --repeats 3).
# BENCH_DATA=DIR keeps the generated studies in DIR/series, DIR/slice, DIR/results and DIR/retrieve (with Orthanc's
# storage) and reuses them next time. retrieve.py and results.py need root (private network namespace), Orthanc/DCMTK;
# sync.py also measures PostgreSQL when the Debian package postgresql is installed (root: it runs as 'postgres').
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
export QT_QPA_PLATFORM=${QT_QPA_PLATFORM:-offscreen}
load_args=() redraw_args=() retrieve_args=() results_args=()
if [ -n "${BENCH_DATA:-}" ]; then
    load_args=(--data "$BENCH_DATA/series")
    redraw_args=(--data "$BENCH_DATA/slice")
    retrieve_args=(--data "$BENCH_DATA/retrieve")
    results_args=(--data "$BENCH_DATA/results")
fi
echo "=== bench/load_series.py"
"$PY" bench/load_series.py "${load_args[@]}" "$@"
echo
echo "=== bench/window_redraw.py"
"$PY" bench/window_redraw.py "${redraw_args[@]}" "$@"
echo
echo "=== bench/mpr.py"
"$PY" bench/mpr.py ${BENCH_DATA:+--data "$BENCH_DATA/mpr"} "$@"
echo
echo "=== bench/retrieve.py"
"$PY" bench/retrieve.py "${retrieve_args[@]}" "$@"
echo
echo "=== bench/results.py"
"$PY" bench/results.py "${results_args[@]}" "$@"
echo
echo "=== bench/receiver.py"
"$PY" bench/receiver.py
echo
echo "=== bench/cold_start.py"
"$PY" bench/cold_start.py "$@"
echo
echo "=== bench/inference.py"
"$PY" bench/inference.py "$@"
echo
echo "=== bench/audit_write.py"
"$PY" bench/audit_write.py "$@"
echo
echo "=== bench/sync.py"
"$PY" bench/sync.py "$@"
echo
echo "=== bench/monitoring.py"
"$PY" bench/monitoring.py
echo
echo "=== bench/deid.py"
"$PY" bench/deid.py
