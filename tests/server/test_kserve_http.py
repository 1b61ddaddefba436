"""kiln serve over KServe v2 HTTP, driven by the official tritonclient."""
import os
import time
import urllib.request

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from conftest import KilnServer


@pytest.fixture(scope="module")
def client(server):
    c = httpclient.InferenceServerClient(url=server.url, concurrency=16)
    yield c
    c.close()


def add_sub_inputs(a, b, binary):
    i0 = httpclient.InferInput("INPUT0", list(a.shape), "FP32")
    i0.set_data_from_numpy(a, binary_data=binary)
    i1 = httpclient.InferInput("INPUT1", list(b.shape), "FP32")
    i1.set_data_from_numpy(b, binary_data=binary)
    return [i0, i1]


def test_health_live_and_not_ready_while_a_model_failed(client):
    assert client.is_server_live()
    # 'broken' should be loaded (control mode none) but failed.
    assert not client.is_server_ready()


def test_server_metadata_names_kiln(client):
    md = client.get_server_metadata()
    assert md["name"] == "kiln"
    assert "binary_tensor_data" in md["extensions"]


def test_model_metadata_has_batch_dim_and_datatypes(client):
    md = client.get_model_metadata("add_sub")
    assert md["name"] == "add_sub" and md["versions"] == ["1"]
    assert md["inputs"][0] == {"name": "INPUT0", "datatype": "FP32", "shape": [-1, 4]}
    assert [o["name"] for o in md["outputs"]] == ["OUTPUT0", "OUTPUT1"]


def test_missing_config_is_completed_from_the_model(client):
    cfg = client.get_model_config("identity_i64")
    assert cfg["max_batch_size"] == 8
    assert cfg["input"][0]["name"] == "ids" and cfg["input"][0]["data_type"] == "TYPE_INT64"
    assert "dynamic_batching" in cfg
    assert cfg["input"][0]["dims"] == [-1]  # numbers, as Triton gives them
    assert cfg["platform"] == "onnxruntime_onnx"


def test_model_ready_and_versions(client):
    assert client.is_model_ready("add_sub")
    assert client.is_model_ready("fixed_shape", "1") and client.is_model_ready("fixed_shape", "2")
    assert not client.is_model_ready("fixed_shape", "3")
    assert not client.is_model_ready("no_such_model")


@pytest.mark.parametrize("binary", [False, True])
def test_infer_add_sub(client, binary):
    a = np.arange(8, dtype=np.float32).reshape(2, 4)
    b = np.full((2, 4), 0.5, dtype=np.float32)
    outs = [httpclient.InferRequestedOutput("OUTPUT0", binary_data=binary),
            httpclient.InferRequestedOutput("OUTPUT1", binary_data=binary)]
    r = client.infer("add_sub", add_sub_inputs(a, b, binary), outputs=outs, request_id="r1")
    np.testing.assert_array_equal(r.as_numpy("OUTPUT0"), a + b)
    np.testing.assert_array_equal(r.as_numpy("OUTPUT1"), a - b)
    assert r.get_response()["id"] == "r1"


def test_infer_without_requested_outputs_returns_all_binary(client):
    ids = np.arange(6, dtype=np.int64).reshape(2, 3)
    i = httpclient.InferInput("ids", [2, 3], "INT64")
    i.set_data_from_numpy(ids)
    r = client.infer("identity_i64", [i])
    np.testing.assert_array_equal(r.as_numpy("ids_out"), ids)


def test_infer_specific_version_of_unbatched_model(client):
    x = np.array([[-1, 2, -3], [4, -5, 6]], dtype=np.float32)
    i = httpclient.InferInput("x", [2, 3], "FP32")
    i.set_data_from_numpy(x, binary_data=False)
    r = client.infer("fixed_shape", [i], model_version="2")
    np.testing.assert_array_equal(r.as_numpy("y"), np.maximum(x, 0))
    assert r.get_response()["model_version"] == "2"


def test_unknown_model_and_version_are_errors(client):
    x = np.zeros((2, 3), np.float32)
    i = httpclient.InferInput("x", [2, 3], "FP32")
    i.set_data_from_numpy(x)
    with pytest.raises(InferenceServerException, match="unknown model: 'nope'"):
        client.infer("nope", [i])
    with pytest.raises(InferenceServerException, match="version 7 is not found"):
        client.infer("fixed_shape", [i], model_version="7")


def test_wrong_shape_and_dtype_are_errors(client):
    a = np.zeros((2, 5), np.float32)
    with pytest.raises(InferenceServerException, match=r"INPUT0.*shape \[2,5\]"):
        client.infer("add_sub", add_sub_inputs(a, a, True))
    i = np.zeros((2, 4), np.int32)
    inputs = [httpclient.InferInput("INPUT0", [2, 4], "INT32"), httpclient.InferInput("INPUT1", [2, 4], "INT32")]
    for t in inputs:
        t.set_data_from_numpy(i)
    with pytest.raises(InferenceServerException, match="data type INT32 but the model expects FP32"):
        client.infer("add_sub", inputs)
    big = np.zeros((9, 4), np.float32)
    with pytest.raises(InferenceServerException, match="batch size 9 is outside 1..8"):
        client.infer("add_sub", add_sub_inputs(big, big, True))


def test_statistics_count_requests(client):
    before = client.get_inference_statistics("identity_i64")["model_stats"][0]
    ids = np.zeros((1, 2), np.int64)
    i = httpclient.InferInput("ids", [1, 2], "INT64")
    i.set_data_from_numpy(ids)
    for _ in range(3):
        client.infer("identity_i64", [i])
    after = client.get_inference_statistics("identity_i64")["model_stats"][0]
    assert after["inference_stats"]["success"]["count"] == before["inference_stats"]["success"]["count"] + 3
    assert after["inference_count"] == before["inference_count"] + 3
    assert client.get_inference_statistics()["model_stats"]


def test_dynamic_batching_batches_concurrent_requests(client):
    a = np.ones((1, 4), np.float32)
    n = 16
    before = client.get_inference_statistics("batcher")["model_stats"][0]
    reqs = [client.async_infer("batcher", add_sub_inputs(a * k, a, True)) for k in range(n)]
    for k, r in enumerate(reqs):
        np.testing.assert_array_equal(r.get_result().as_numpy("OUTPUT0"), a * k + 1)
    st = client.get_inference_statistics("batcher")["model_stats"][0]
    assert st["inference_count"] - before["inference_count"] == n
    assert st["execution_count"] - before["execution_count"] < n, st
    assert any(b["batch_size"] > 1 for b in st["batch_stats"])


def test_repository_index_reports_failed_model_with_reason(client):
    index = {m["name"]: m for m in client.get_model_repository_index()}
    assert index["add_sub"]["state"] == "READY"
    assert index["broken"]["state"] == "UNAVAILABLE"
    assert "config.pbtxt:2:" in index["broken"]["reason"] and "max_batch" in index["broken"]["reason"]


def test_load_is_refused_outside_explicit_mode(client):
    with pytest.raises(InferenceServerException, match="explicit"):
        client.load_model("add_sub")


def test_metrics_use_triton_names(server, client):
    client.is_server_live()
    body = urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10).read().decode()
    for name in ("nv_inference_request_success", "nv_inference_request_failure", "nv_inference_count",
                 "nv_inference_exec_count", "nv_inference_request_duration_us", "nv_inference_queue_duration_us",
                 "nv_inference_compute_input_duration_us", "nv_inference_compute_infer_duration_us",
                 "nv_inference_compute_output_duration_us", "kiln_engine_build_duration_us",
                 "kiln_engine_cache_hits"):
        assert f"# TYPE {name} counter" in body
    count = client.get_inference_statistics("batcher")["model_stats"][0]["inference_count"]
    assert f'nv_inference_count{{model="batcher",version="1"}} {count}' in body


def metric_value(server, series):
    body = urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10).read().decode()
    for line in body.splitlines():
        if line.startswith(series + " "):
            return int(line.split()[-1])
    raise AssertionError(f"{series} is not in /metrics")


def test_frontend_histogram_counts_each_http_request_once(server, client):
    """kiln_inference_frontend_us: one observation per successful HTTP infer,
    none for gRPC's (its front end does not report one)."""
    labels = '{model="add_sub",version="1"}'
    frontend, success = "kiln_inference_frontend_us_count" + labels, "nv_inference_request_success" + labels
    before = metric_value(server, frontend), metric_value(server, success)
    a = np.ones((1, 4), np.float32)
    for _ in range(3):
        client.infer("add_sub", add_sub_inputs(a, a, True))
    grpc_calls = 0
    if server.grpc_url:
        import tritonclient.grpc as grpcclient
        g = grpcclient.InferenceServerClient(url=server.grpc_url)
        for _ in range(2):
            inputs = [grpcclient.InferInput(n, [1, 4], "FP32") for n in ("INPUT0", "INPUT1")]
            for i in inputs:
                i.set_data_from_numpy(a)
            g.infer("add_sub", inputs)
            grpc_calls += 1
        g.close()
    # The server records a request after its answer's last byte, so the
    # client may see the answer first: wait for the count, then check it.
    deadline = time.monotonic() + 5
    while metric_value(server, frontend) < before[0] + 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert metric_value(server, frontend) == before[0] + 3
    assert metric_value(server, success) == before[1] + 3 + grpc_calls


def test_engine_cache_makes_a_restart_skip_the_build(repo, workdir):
    cache = os.path.join(workdir, "cache2")
    for expected_hits in (0, 1):
        s = KilnServer(["--model-repository", repo, "--model-control-mode", "explicit", "--load-model",
                        "identity_i64"], cache)
        try:
            body = urllib.request.urlopen(f"http://127.0.0.1:{s.metrics_port}/metrics", timeout=10).read().decode()
            assert f"kiln_engine_cache_hits {expected_hits}" in body
        finally:
            assert s.stop() == 0
    # An engine the runtime refuses (here: damaged; likewise another device or
    # kiln version) is rebuilt, not fatal.
    engines = [os.path.join(cache, f) for f in os.listdir(cache) if f.endswith(".kiln")]
    assert len(engines) == 1
    with open(engines[0], "r+b") as f:
        f.truncate(100)
    s = KilnServer(["--model-repository", repo, "--model-control-mode", "explicit", "--load-model", "identity_i64"],
                   cache)
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{s.metrics_port}/metrics", timeout=10).read().decode()
        assert "kiln_engine_cache_misses 1" in body and "kiln_engine_build_count 1" in body
        assert httpclient.InferenceServerClient(url=s.url).is_model_ready("identity_i64")
        assert any("is not usable" in line and "rebuilding" in line for line in s.log)
    finally:
        assert s.stop() == 0


def test_request_timeout_expires_in_the_queue(client):
    a = np.ones((1, 4), np.float32)
    with pytest.raises(InferenceServerException, match="Request timeout expired"):
        client.infer("slow_queue", add_sub_inputs(a, a, True), timeout=1000)


def test_full_queue_rejects_with_a_clear_error(client):
    a = np.ones((1, 4), np.float32)
    reqs = [client.async_infer("slow_queue", add_sub_inputs(a * k, a, True)) for k in range(5)]
    ok, rejected = 0, []
    for r in reqs:
        try:
            r.get_result()
            ok += 1
        except InferenceServerException as e:
            rejected.append(str(e))
    assert ok >= 2 and rejected, rejected
    assert all("Exceeds maximum queue size (2)" in m for m in rejected), rejected


def test_warmup_runs_before_the_model_is_ready(server, client):
    assert any("model 'slow_queue': warmup 'zeros' ran 3 times at batch size 2" in line for line in server.log)
    # Warmup runs are not inference requests: of the 5 sent above, at most 5 rows ran.
    st = client.get_inference_statistics("slow_queue")["model_stats"][0]
    assert st["inference_count"] <= 5


def test_priority_level_jumps_the_queue(client):
    """Three default-priority (2) rows wait for a preferred batch of 4; a
    priority-1 request of 2 rows arriving later is batched first with two of
    them at once. In arrival order it would not fit and would wait the 2 s
    queue delay."""
    import time
    one, two = np.ones((1, 4), np.float32), np.ones((2, 4), np.float32)
    start = time.time()
    low = [client.async_infer("prio", add_sub_inputs(one * k, one, True)) for k in range(3)]
    high = client.async_infer("prio", add_sub_inputs(two * 7, two, True), priority=1)
    np.testing.assert_array_equal(high.get_result().as_numpy("OUTPUT0"), two * 8)
    assert time.time() - start < 1.5
    for k, r in enumerate(low):
        np.testing.assert_array_equal(r.get_result().as_numpy("OUTPUT0"), one * (k + 1))
    assert time.time() - start >= 1.9
