#!/usr/bin/env bash
# Install tracer-llm (the TRACER reference implementation) in its own venv, bench/surrogate/.venv-tracer.
# It is a benchmark comparator only, never a runtime dependency of tracelab (it pins numpy < 2.1).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv-tracer"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
"$venv/bin/pip" install --quiet "tracer-llm==0.3.3" scipy
"$venv/bin/python" -c "import tracer, sklearn, numpy; print('tracer-llm ok; numpy', numpy.__version__, 'sklearn', sklearn.__version__)"
