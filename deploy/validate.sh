#!/usr/bin/env bash
# Validates deploy/ offline (see validate.py): installs kubernetes-validate (with its bundled
# Kubernetes schemas) and jsonschema from PyPI into a virtual environment once, then checks
# every manifest. Used by .ci/run; run it by hand after editing a manifest.
#   DEPLOY_VENV=DIR        where the virtual environment lives (default: $TMPDIR/agentgw-deploy-venv)
#   KUBERNETES_VERSION=X   validate against this Kubernetes version (default: the newest known)
set -euo pipefail
cd "$(dirname "$0")"
venv=${DEPLOY_VENV:-${TMPDIR:-/tmp}/agentgw-deploy-venv}
if [ ! -x "$venv/bin/kubernetes-validate" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        "kubernetes-validate==1.37.0" "jsonschema>=4.23,<5" "PyYAML>=6,<7"
fi
"$venv/bin/python" validate.py
