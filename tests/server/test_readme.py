"""The README's "Serving models" walkthrough, run as written: its shell
commands (scripts/serve_example.py repository, kiln serve, serve_example.py
query) and its Python snippet, against a repository of the bundled model and
the shared models ($KILN_SHARED_MODELS; their part is skipped, saying so,
when the folder is absent). Only the ports (free ones), the repository folder
(a temporary one) and the binaries (this build's kiln, this Python) differ."""
import os
import re
import subprocess
import sys

import pytest

from conftest import KILN, KilnServer

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SHARED = os.environ.get("KILN_SHARED_MODELS") or os.path.join(ROOT, "..", "shared", "models")


def readme_blocks():
    """The fenced blocks of the README's "## Serving models" section, as (language, text)."""
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    section = text.split("## Serving models", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```(\w+)\n(.*?)```", section, re.S)


def shell_lines():
    return [line for lang, block in readme_blocks() if lang == "sh" for line in block.splitlines() if line.strip()]


def localize(line, repo):
    """The README's command with this test's repository, Python and kiln."""
    line = line.replace(".venv/bin/python", sys.executable).replace("build/models", repo)
    return line.replace("build/kiln", KILN)


@pytest.fixture(scope="module")
def walkthrough(workdir):
    repo = os.path.join(workdir, "readme_models")
    lines = shell_lines()
    assert [l.split()[:3] for l in lines] == [
        [".venv/bin/python", "scripts/serve_example.py", "repository"],
        ["build/kiln", "serve", "--model-repository"],
        [".venv/bin/python", "scripts/serve_example.py", "query"]], lines
    made = subprocess.run(localize(lines[0], repo), shell=True, cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, KILN_SHARED_MODELS=SHARED), timeout=300)
    assert made.returncode == 0, made.stdout + made.stderr
    serve_args = localize(lines[1], repo).split()[2:]
    server = KilnServer(serve_args, os.path.join(workdir, "readme_cache"))
    query_cmd = localize(lines[2], repo) + f" --http-url {server.url} --grpc-url {server.grpc_url}"
    query = subprocess.run(query_cmd, shell=True, cwd=ROOT, capture_output=True, text=True, timeout=600)
    yield server, made.stdout, query
    assert server.stop() == 0, "".join(server.log)


def test_bundled_model_matches_its_reference_over_http_and_grpc(walkthrough):
    server, made, query = walkthrough
    assert server.grpc_url, "this kiln was built without gRPC"
    assert query.returncode == 0, query.stdout + query.stderr + "".join(server.log)
    for protocol in ("HTTP", "gRPC"):
        assert re.search(rf"^tiny_cnn +{protocol} +matches the reference", query.stdout, re.M), query.stdout


def test_shared_models_match_their_references(walkthrough):
    server, made, query = walkthrough
    models = sorted(d for d in os.listdir(SHARED) if os.path.isfile(os.path.join(SHARED, d, "model.onnx"))) \
        if os.path.isdir(SHARED) else []
    if not models:
        pytest.skip(f"no shared models at {SHARED} (set KILN_SHARED_MODELS): only the bundled model was served")
    assert query.returncode == 0, query.stdout + query.stderr + "".join(server.log)
    for name in models:
        for protocol in ("HTTP", "gRPC"):
            assert re.search(rf"^{name} +{protocol} +matches the reference", query.stdout, re.M), query.stdout
    assert f"{len(models) + 1} models, {2 * (len(models) + 1)} of {2 * (len(models) + 1)} requests match" \
        in query.stdout


def test_python_snippet(walkthrough):
    server, _, _ = walkthrough
    (snippet,) = [block for lang, block in readme_blocks() if lang == "python"]
    assert "localhost:8000" in snippet and "localhost:8001" in snippet
    snippet = snippet.replace("localhost:8000", server.url).replace("localhost:8001", server.grpc_url)
    run = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [f"{server.url} (1, 10) 1.000", f"{server.grpc_url} (1, 10) 1.000"]
