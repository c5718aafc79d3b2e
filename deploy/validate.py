"""Validates the manifests of deploy/ offline; run by validate.sh (see README.md).

1. Every file a kustomization names exists, and every manifest in base/ is named by it.
2. The manifests are rendered with `kubectl kustomize` when kubectl is installed (base and every
   overlay); without it, base's resources are read as they are and the overlays only have
   their references checked.
3. Built-in kinds are validated with kubernetes-validate (strict: unknown fields are errors)
   against the Kubernetes version of KUBERNETES_VERSION (default: the package's newest); the
   Prometheus Operator kinds against the JSON schemas in schemas/.
4. The ConfigMap carries the gateway configuration file; tests/e2e/deploy.rs loads and runs it.
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import jsonschema
import yaml

HERE = pathlib.Path(__file__).resolve().parent
CRD_SCHEMAS = {
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule_v1.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor_v1.json",
}
errors = []


def fail(message):
    errors.append(message)
    print(f"FAIL {message}")


def kustomizations():
    return sorted(HERE.glob("**/kustomization.yaml"))


def check_references(path):
    spec = yaml.safe_load(path.read_text())
    base = path.parent
    named = set()
    for resource in spec.get("resources", []):
        target = (base / resource).resolve()
        if not target.exists():
            fail(f"{path.relative_to(HERE)}: resource {resource} does not exist")
        named.add(target)
    for generator in spec.get("configMapGenerator", []) + spec.get("secretGenerator", []):
        for entry in generator.get("files", []):
            source = entry.split("=", 1)[-1]
            if not (base / source).exists():
                fail(f"{path.relative_to(HERE)}: generator file {source} does not exist")
    return spec, named


def render(directory):
    """The documents of a kustomization directory."""
    if shutil.which("kubectl"):
        out = subprocess.run(
            ["kubectl", "kustomize", str(directory)], check=True, capture_output=True, text=True
        ).stdout
        return [doc for doc in yaml.safe_load_all(out) if doc]
    spec = yaml.safe_load((directory / "kustomization.yaml").read_text())
    docs = []
    for resource in spec.get("resources", []):
        target = directory / resource
        if target.is_file():
            docs.extend(doc for doc in yaml.safe_load_all(target.read_text()) if doc)
    return docs


def validate(name, docs):
    builtin = [d for d in docs if (d.get("apiVersion"), d.get("kind")) not in CRD_SCHEMAS]
    for doc in docs:
        schema_file = CRD_SCHEMAS.get((doc.get("apiVersion"), doc.get("kind")))
        if schema_file is None:
            continue
        schema = json.loads((HERE / "schemas" / schema_file).read_text())
        validator = jsonschema.validators.validator_for(schema)(schema)
        for error in validator.iter_errors(doc):
            path = "/".join(str(p) for p in error.absolute_path)
            fail(f"{name}: {doc['kind']}/{doc['metadata']['name']}: {path}: {error.message}")
        print(f"ok   {name}: {doc['kind']}/{doc['metadata']['name']} (schemas/{schema_file})")
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as out:
        yaml.safe_dump_all(builtin, out)
    command = [str(pathlib.Path(sys.executable).parent / "kubernetes-validate"), "--strict", "--quiet"]
    if os.environ.get("KUBERNETES_VERSION"):
        command += ["-k", os.environ["KUBERNETES_VERSION"]]
    result = subprocess.run(command + [out.name], capture_output=True, text=True)
    os.unlink(out.name)
    if result.returncode != 0:
        fail(f"{name}: kubernetes-validate:\n{result.stdout}{result.stderr}")
    else:
        kinds = ", ".join(f"{d['kind']}/{d['metadata']['name']}" for d in builtin)
        print(f"ok   {name}: {kinds}")


def main():
    listed = set()
    for path in kustomizations():
        _, named = check_references(path)
        listed |= named
    for manifest in sorted((HERE / "base").glob("*.yaml")):
        if manifest.name != "kustomization.yaml" and manifest.resolve() not in listed:
            fail(f"base/{manifest.name} is not named by base/kustomization.yaml")
    if not shutil.which("kubectl"):
        print("note: kubectl not found: base validated as written, overlays not rendered")
    for path in kustomizations():
        directory = path.parent
        name = str(directory.relative_to(HERE))
        if directory.name != "base" and not shutil.which("kubectl"):
            continue
        docs = render(directory)
        if not docs:
            fail(f"{name}: no documents")
            continue
        validate(name, docs)
    if errors:
        print(f"{len(errors)} problem(s)")
        sys.exit(1)
    print("deploy/: every manifest is valid")


main()
