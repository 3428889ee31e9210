#!/usr/bin/env bash
# One setup path for the README, the tests and CI. Idempotent: re-running skips what is up to date.
#   .venv            project virtualenv (Python >= 3.11): driftstack + spark/cdk/dev extras
#   .venv-localstack LocalStack virtualenv (Python >= 3.13) + our LocalStack plugins
#   cdk/node_modules CDK CLI (aws-cdk@2, aws-cdk-local)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
start=$(date +%s)
say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# Find an interpreter of at least the given minor version: PATH first, then pyenv.
find_python() {
  local minor=$1 cand v
  for cand in python3.$minor python3 python; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c "import sys; sys.exit(0 if sys.version_info >= (3, $minor) else 1)" 2>/dev/null; then
      command -v "$cand"; return 0
    fi
  done
  local root=${PYENV_ROOT:-$HOME/.pyenv}
  for v in $(ls -d "$root"/versions/3.* 2>/dev/null | sort -V -r); do
    for cand in "$v"/bin/python3.*[0-9]; do
      [ -x "$cand" ] || continue
      if "$cand" -c "import sys; sys.exit(0 if sys.version_info >= (3, $minor) else 1)" 2>/dev/null; then
        echo "$cand"; return 0
      fi
    done
  done
  return 1
}

# pip, with the noise of this machine's extra indexes and setuptools' deprecation banners filtered.
pip_q() {
  local log; log=$(mktemp)
  if "$@" >"$log" 2>&1; then rm -f "$log"; return 0; fi
  grep -vE "^WARNING: Location" "$log" >&2; rm -f "$log"
  echo "[setup] failed: $*" >&2; return 1
}

# Re-install only when the inputs changed (hash stamp inside the venv).
stamp_ok() { [ -f "$1/.driftstack-stamp" ] && [ "$(cat "$1/.driftstack-stamp")" = "$2" ]; }

PY311=$(find_python 11) || { echo "Python >= 3.11 not found. Install it (e.g. 'pyenv install 3.11') and re-run." >&2; exit 1; }
PY313=$(find_python 13) || { cat >&2 <<MSG
LocalStack on the host needs Python >= 3.13 (localstack-core 2026.3 fails on 3.11/3.12).
None was found on PATH or under pyenv (\$PYENV_ROOT/versions). Install one, e.g.:
    pyenv install 3.13      # or: apt-get install python3.13
then re-run: make setup
(Or use Docker instead: see localstack/docker-compose.yml and the README.)
MSG
exit 1; }

# --- project venv ---
# The layer's pins are constraints here, so the venv (and the unit tests) run the versions the Lambda
# layer ships. Both files are in the stamp: a changed pin or requirement re-runs pip, which also
# moves an installed package that no longer fits (e.g. pandas 3 -> 2.x for pyspark 4.3).
h=$(cat pyproject.toml layers/requirements.txt | sha256sum | cut -c1-16)
if stamp_ok .venv "$h"; then say "project venv up to date (.venv)"; else
  if [ -x .venv/bin/python ]; then say "updating project venv (.venv): pyproject.toml or layer pins changed"
  else say "creating project venv with $PY311"; "$PY311" -m venv .venv; fi
  pip_q .venv/bin/pip install -q --upgrade pip
  pip_q .venv/bin/pip install -q -e ".[spark,cdk,dev,tools]" -c layers/requirements.txt
  echo "$h" > .venv/.driftstack-stamp
fi

# --- LocalStack venv ---
h=$(cat localstack/requirements.txt localstack/plugin/pyproject.toml | sha256sum | cut -c1-16)
if stamp_ok .venv-localstack "$h"; then say "LocalStack venv up to date (.venv-localstack)"; else
  say "creating LocalStack venv with $PY313"
  [ -x .venv-localstack/bin/python ] || "$PY313" -m venv .venv-localstack
  pip_q .venv-localstack/bin/pip install -q --upgrade pip
  pip_q .venv-localstack/bin/pip install -q -r localstack/requirements.txt
  # LocalStack finds our hooks through the plugin's entry points; a stale in-tree egg-info from an older
  # install would shadow the new ones (hooks silently not loaded), so it is made anew.
  rm -rf localstack/plugin/*.egg-info
  pip_q .venv-localstack/bin/pip install -q -e localstack/plugin
  echo "$h" > .venv-localstack/.driftstack-stamp
fi

# --- CDK CLI ---
h=$(sha256sum cdk/package.json | cut -c1-16)
if [ -f cdk/node_modules/.driftstack-stamp ] && [ "$(cat cdk/node_modules/.driftstack-stamp)" = "$h" ]; then
  say "CDK CLI up to date (cdk/node_modules)"
else
  command -v npm >/dev/null || { echo "Node.js/npm not found: install Node 20+ (apt-get install nodejs npm)." >&2; exit 1; }
  say "installing the CDK CLI (aws-cdk@2, aws-cdk-local) with npm"
  (cd cdk && npm install --no-audit --no-fund --loglevel=error >/dev/null)
  echo "$h" > cdk/node_modules/.driftstack-stamp
fi

# --- the console's front-end libraries (cytoscape, dagre, Chart.js), served from node_modules ---
h=$(cat driftstack/tools/console/package.json driftstack/tools/console/package-lock.json | sha256sum | cut -c1-16)
if [ -f driftstack/tools/console/node_modules/.driftstack-stamp ] && \
   [ "$(cat driftstack/tools/console/node_modules/.driftstack-stamp)" = "$h" ]; then
  say "console assets up to date (driftstack/tools/console/node_modules)"
else
  say "installing the console's front-end libraries with npm"
  (cd driftstack/tools/console && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  echo "$h" > driftstack/tools/console/node_modules/.driftstack-stamp
fi

# --- Chromium for the console's browser test (Debian's; Playwright's own download is not reachable) ---
if ! command -v chromium >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing chromium (apt-get) for the console's browser test"
    export DEBIAN_FRONTEND=noninteractive  # no prompts: CI has no terminal
    apt-get install -y -qq chromium >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -qq chromium >/dev/null; } \
      || say "warning: chromium not installed; tests/integration/test_console_browser.py will fail"
  else
    say "warning: chromium not found (apt-get install chromium); the console's browser test will fail"
  fi
fi

# Lambda runtime packages (boto3 for the local python3.12 runtime) and LocalStack's service catalog:
# built once under .state/, cheap to re-check.
say "preparing LocalStack host mode (Lambda runtime packages, service catalog)"
pip_q .venv/bin/driftstack localstack prepare

# Lambda layers for the python3.12 runtime (numpy, onnxruntime, pydantic, Powertools + our package).
say "building Lambda layers (skipped when up to date)"
pip_q .venv/bin/python layers/build.py

command -v java >/dev/null || say "warning: java not found; Spark training needs Java 17 (apt-get install openjdk-17-jre-headless)"
say "done in $(( $(date +%s) - start ))s"
