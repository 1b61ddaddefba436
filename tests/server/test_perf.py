"""kiln perf, the load generator, briefly against a served model over HTTP and
gRPC: non-zero throughput, zero errors, the server's breakdown, measurement
windows until stable (perf_analyzer's rule), and precise errors for what it
cannot send."""
import json
import os
import re
import subprocess
import urllib.request

import pytest

from conftest import KILN


def perf(*args):
    return subprocess.run([KILN, "perf", *args], capture_output=True, text=True, timeout=120)


# The windows of a busy test machine differ by more than perf_analyzer's 10%:
# tests of the report accept any spread (the stability rule has unit tests in
# tests/unit/perf_windows_test.cpp and the tests below). Any: on 2 cores busy
# with other tests, a window's p50 latency was once 56 times the next one's
# (3214 against 57 us), past the 1000% this used to allow.
ANY_SPREAD = ("--stability-percentage", "1000000")


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_reports_throughput_latency_and_server_breakdown(server, protocol):
    url = server.url if protocol == "http" else server.grpc_url
    if url is None:
        pytest.skip("this kiln was built without gRPC")
    run = perf("-m", "add_sub", "-u", url, "-i", protocol, "-b", "2", "--concurrency-range", "1:2",
               "--measurement-interval", "500", "--percentile", "95", *ANY_SPREAD)
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
    # HTTP splits each request's time as perf_analyzer does; gRPC's synchronous call cannot.
    split = re.findall(r"client time \(medians\): send ([0-9]+) us \+ response wait ([0-9]+) us \+ receive ([0-9]+) us",
                       out)
    waits = re.findall(r"server overhead = response wait - compute time: -?[0-9]+ us at the median "
                       r"\(wait p50 ([0-9]+) - compute [0-9]+\)", out)
    if protocol == "http":
        assert len(split) == 2 and all(int(w) > 0 for _, w, _ in split), out
        assert [w for _, w, _ in split] == waits, out
    else:
        assert split == [] and waits == [], out


def test_server_overhead_from_its_metrics(server):
    """--metrics-url: the quantiles of the server's kiln_inference_overhead_us and, over HTTP,
    kiln_inference_frontend_us over the interval."""
    if server.metrics_port is None:
        pytest.skip("no metrics port")
    run = perf("-m", "add_sub", "-u", server.url, "--measurement-interval", "500",
               "--metrics-url", f"127.0.0.1:{server.metrics_port}", *ANY_SPREAD)
    assert run.returncode == 0, run.stdout + run.stderr
    m = re.search(r"server overhead \(kiln's timestamps: queue and copies, without the engine run\): "
                  r"p50 ([0-9.]+) us, p99 ([0-9.]+) us", run.stdout)
    assert m and 0 < float(m.group(1)) <= float(m.group(2)), run.stdout
    m = re.search(r"HTTP front end \(kiln's timestamps: the request's header read to the answer's last byte written, "
                  r"less its time in the scheduler\): p50 ([0-9.]+) us, p99 ([0-9.]+) us", run.stdout)
    assert m and 0 < float(m.group(1)) <= float(m.group(2)), run.stdout
    if server.grpc_url:  # gRPC's front end reports no time of its own: no such line
        run = perf("-m", "add_sub", "-u", server.grpc_url, "-i", "grpc", "--measurement-interval", "300",
                   "--metrics-url", f"127.0.0.1:{server.metrics_port}", *ANY_SPREAD)
        assert run.returncode == 0, run.stdout + run.stderr
        assert "server overhead (kiln's timestamps" in run.stdout and "HTTP front end" not in run.stdout
    run = perf("-m", "add_sub", "-u", server.url, "--measurement-interval", "200", "--metrics-url", "127.0.0.1:1",
               *ANY_SPREAD)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "server overhead: GET 127.0.0.1:1/metrics: Connection refused" in run.stdout


def test_dynamic_dims_need_shape(server):
    run = perf("-m", "identity_i64", "-u", server.url, "--measurement-interval", "200")
    assert run.returncode == 2
    assert run.stderr == ("kiln perf: input 'ids' has dynamic dims [-1]: give them with --shape ids:D1,D2,...\n")
    run = perf("-m", "identity_i64", "-u", server.url, "--measurement-interval", "200", "--shape", "ids:7",
               *ANY_SPREAD)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "inputs (random): ids INT64 [1,7]" in run.stdout


def test_unknown_model_and_bad_range(server):
    run = perf("-m", "nope", "-u", server.url)
    assert run.returncode == 1
    assert run.stderr.startswith("kiln perf: GET /v2/models/nope: HTTP 404: ")
    run = perf("-m", "add_sub", "-u", server.url, "--concurrency-range", "4:2")
    assert run.returncode == 2
    assert run.stderr == "kiln perf: --concurrency-range '4:2': the end is below the start\n"


def window_requests(out):
    return [int(n) for n in re.findall(r"^  window [0-9]+: ([0-9]+) requests in ", out, re.M)]


def test_windows_repeat_until_the_last_three_agree(server):
    run = perf("-m", "add_sub", "-u", server.url, "--measurement-interval", "200", "--max-trials", "6", *ANY_SPREAD)
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    counts = window_requests(out)
    assert len(counts) == 3 and min(counts) > 0, out
    assert "  stable after 3 windows; the figures of windows 1-3:\n" in out
    m = re.search(r"client: ([0-9]+) requests in ([0-9.]+) s, 0 errors", out)
    assert m and int(m.group(1)) == sum(counts), out
    assert 0.59 < float(m.group(2)) < 1.0, out


def test_unstable_windows_still_report_and_fail(server):
    """--stability-percentage 0 needs three equal windows, which time never gives."""
    run = perf("-m", "add_sub", "-u", server.url, "--measurement-interval", "200", "--max-trials", "4",
               "--stability-percentage", "0")
    assert run.returncode == 1, run.stdout + run.stderr
    out = run.stdout
    counts = window_requests(out)
    assert len(counts) == 4, out
    assert ("  unstable after 4 windows (the last 3 not within 0% in throughput and p50 latency; a longer "
            "--measurement-interval or more --max-trials may help); the figures of windows 2-4:\n") in out
    m = re.search(r"client: ([0-9]+) requests in", out)
    assert m and int(m.group(1)) == sum(counts[1:]), out
    assert re.search(r"^Concurrency: 1, throughput: [0-9.]+ infer/sec, latency [0-9]+ usec$", out, re.M), out
    assert run.stderr == "kiln perf: concurrency 1: no stable measurement within 4 windows of 200 ms\n"


def test_a_window_without_completions_is_never_stable(server):
    """batcher holds a lone request 200 ms: one client completes at most one
    request per 200 ms, so some 100 ms windows are empty, however wide the
    stability percentage; a request counts in the window where it completes."""
    run = perf("-m", "batcher", "-u", server.url, "--measurement-interval", "100", "--max-trials", "4", *ANY_SPREAD)
    assert run.returncode == 1, run.stdout + run.stderr
    counts = window_requests(run.stdout)
    assert len(counts) == 4 and 0 in counts and 1 <= sum(counts) <= 3, run.stdout
    assert "  unstable after 4 windows" in run.stdout


def test_warmup_requests_come_first(server):
    run = perf("-m", "add_sub", "-u", server.url, "--measurement-interval", "200", "--concurrency-range", "4",
               "--warmup-request-count", "40", *ANY_SPREAD)
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.search(r"^Concurrency 4:\n  warm-up: 40 requests in [0-9.]+ s\n  window 1: ", run.stdout, re.M), run.stdout


@pytest.mark.parametrize("protocol,polled", [("http", "socket"), ("grpc", "completion queue")])
def test_busy_wait_client(server, protocol, polled):
    """--busy-wait-us: the clients poll for each answer first; the run says so and measures as before."""
    url = server.url if protocol == "http" else server.grpc_url
    if url is None:
        pytest.skip("this kiln was built without gRPC")
    run = perf("-m", "add_sub", "-u", url, "-i", protocol, "--measurement-interval", "300", "--concurrency-range",
               "1:2", "--busy-wait-us", "200", *ANY_SPREAD)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"  each client polls its {polled} for the answer up to 200 us before it blocks (--busy-wait-us)\n" in run.stdout
    assert len(re.findall(r"client: [1-9][0-9]* requests in [0-9.]+ s, 0 errors", run.stdout)) == 2, run.stdout
    bad = perf("-m", "add_sub", "-u", url, "-i", protocol, "--busy-wait-us", "-1")
    assert bad.returncode != 0 and "--busy-wait-us: Value -1 not in range 0 to 1000000" in bad.stderr, bad.stderr


def test_bad_window_options(server):
    for args in (("--max-trials", "0"), ("--stability-percentage", "-1"), ("--warmup-request-count", "-5")):
        run = perf("-m", "add_sub", "-u", server.url, *args)
        assert run.returncode == 2, args
        assert run.stderr == ("kiln perf: --max-trials must be positive, --stability-percentage and "
                              "--warmup-request-count not negative\n"), args


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_system_shared_memory(server, protocol):
    url = server.url if protocol == "http" else server.grpc_url
    if url is None:
        pytest.skip("this kiln was built without gRPC")
    p = subprocess.Popen([KILN, "perf", "-m", "add_sub", "-u", url, "-i", protocol, "-b", "2", "--concurrency-range",
                          "2", "--measurement-interval", "300", "--shared-memory", "system", *ANY_SPREAD],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, out + err
    assert f"{'HTTP' if protocol == 'http' else 'gRPC'} {url} with system shared memory, batch size 2" in out
    assert re.search(r"client: [1-9][0-9]* requests in [0-9.]+ s, 0 errors", out), out
    # Each client's region (kiln_perf_PID_CLIENT) is unregistered and removed at the end.
    with urllib.request.urlopen(f"http://{server.url}/v2/systemsharedmemory/status") as r:
        assert json.loads(r.read()) == []
    assert not [f for f in os.listdir("/dev/shm") if f.startswith(f"kiln_perf_{p.pid}_")]


def test_output_shared_memory_too_small_is_an_error(server):
    run = perf("-m", "add_sub", "-u", server.url, "-b", "2", "--measurement-interval", "200", "--max-trials", "3",
               "--shared-memory", "system", "--output-shared-memory-size", "4", *ANY_SPREAD)
    assert run.returncode != 0
    assert "output 'OUTPUT0': shared_memory_byte_size 4 is too small for its 32 bytes" in run.stdout + run.stderr
