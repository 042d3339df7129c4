#!/usr/bin/env bash
# The side-by-side benchmark, end to end (about an hour on 2 shared cores).
#   1. features (the project's ItemFeaturizer, fitted on oracle-train text) for every file
#   2. 20 seeds x {oracle, qwen}: both tools with the same single surrogate (logistic regression,
#      C = 10) so that the gates are compared on identical surrogates, splits and features
#   3. one default fit of each tool with its full zoo on oracle-train (fit time, coverage at 0.92)
set -euo pipefail
cd "$(dirname "$0")/../.."
bench=bench/surrogate
[ -x $bench/.venv-tracer/bin/python ] || $bench/setup_tracer_venv.sh
.venv/bin/python $bench/make_features.py
only_lr10=sgd_log,logreg_c1,mlp_1h,mlp_2h,dt,rf,et,gbt,xgb
for setting in oracle qwen; do
  .venv/bin/python $bench/run_ours.py $setting --seeds 20 --candidates logreg_c10 &
  $bench/.venv-tracer/bin/python $bench/run_tracer.py $setting --seeds 20 --memoize --skip $only_lr10
  wait
done
.venv/bin/python $bench/time_default_fit.py &
$bench/.venv-tracer/bin/python $bench/run_tracer.py oracle --default-fit-timing
wait
.venv/bin/python $bench/tables.py
