"""kiln perf, the load generator, briefly against a served model over HTTP and
gRPC: non-zero throughput, zero errors, the server's breakdown, and precise
errors for what it cannot send."""
import re
import subprocess

import pytest

from conftest import KILN


def perf(*args):
    return subprocess.run([KILN, "perf", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_reports_throughput_latency_and_server_breakdown(server, protocol):
    url = server.url if protocol == "http" else server.grpc_url
    if url is None:
        pytest.skip("this kiln was built without gRPC")
    run = perf("-m", "add_sub", "-u", url, "-i", protocol, "-b", "2", "--concurrency-range", "1:2",
               "--measurement-interval", "500", "--percentile", "95")
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    assert "inputs (random): INPUT0 FP32 [2,4], INPUT1 FP32 [2,4]" in out
    for c in (1, 2):
        m = re.search(rf"^Concurrency: {c}, throughput: ([0-9.]+) infer/sec, latency ([0-9]+) usec$", out, re.M)
        assert m and float(m.group(1)) > 0 and int(m.group(2)) > 0, out
    assert len(re.findall(r"client: [1-9][0-9]* requests in [0-9.]+ s, 0 errors", out)) == 2, out
    assert len(re.findall(r"server: [1-9][0-9]* requests, [1-9][0-9]* executions", out)) == 2, out
    assert "server overhead = client latency - compute time:" in out
    assert "Inferences/Second vs. Client p95 Batch Latency" in out


def test_server_overhead_from_its_metrics(server):
    """--metrics-url: the quantiles of the server's kiln_inference_overhead_us over the interval."""
    if server.metrics_port is None:
        pytest.skip("no metrics port")
    run = perf("-m", "add_sub", "-u", server.url, "--measurement-interval", "500",
               "--metrics-url", f"127.0.0.1:{server.metrics_port}")
    assert run.returncode == 0, run.stdout + run.stderr
    m = re.search(r"server overhead \(kiln's timestamps: queue and copies, without the engine run\): "
                  r"p50 ([0-9.]+) us, p99 ([0-9.]+) us", run.stdout)
    assert m and 0 < float(m.group(1)) <= float(m.group(2)), run.stdout
    run = perf("-m", "add_sub", "-u", server.url, "--measurement-interval", "200", "--metrics-url", "127.0.0.1:1")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "server overhead: GET 127.0.0.1:1/metrics: Connection refused" in run.stdout


def test_dynamic_dims_need_shape(server):
    run = perf("-m", "identity_i64", "-u", server.url, "--measurement-interval", "200")
    assert run.returncode == 2
    assert run.stderr == ("kiln perf: input 'ids' has dynamic dims [-1]: give them with --shape ids:D1,D2,...\n")
    run = perf("-m", "identity_i64", "-u", server.url, "--measurement-interval", "200", "--shape", "ids:7")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "inputs (random): ids INT64 [1,7]" in run.stdout


def test_unknown_model_and_bad_range(server):
    run = perf("-m", "nope", "-u", server.url)
    assert run.returncode == 1
    assert run.stderr.startswith("kiln perf: GET /v2/models/nope: HTTP 404: ")
    run = perf("-m", "add_sub", "-u", server.url, "--concurrency-range", "4:2")
    assert run.returncode == 2
    assert run.stderr == "kiln perf: --concurrency-range '4:2': the end is below the start\n"
