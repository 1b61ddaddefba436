"""Batch buckets (the "batch_buckets" parameter): a batch runs at the smallest
bucket >= its rows, padded, and each request still gets exactly its own
outputs; the statistics count the real rows; every bucket is warmed before
the model is ready; bad values fail the load naming the file and the
parameter; "none" (and CPU instances by default) run batches as formed.
The models report the batch size the engine ran at: `ran` = the batch dim
of x, per row (a probe of the padding; rows are otherwise independent)."""
import os
import re
import urllib.request

import numpy as np
import pytest
import tritonclient.http as httpclient
from onnx import TensorProto, helper

from conftest import KilnServer, save_model, vi

F32 = TensorProto.FLOAT
CONFIG = """max_batch_size: 8
instance_group [ { count: 1 kind: KIND_CPU } ]
dynamic_batching { max_queue_delay_microseconds: 300000 }
"""


def buckets(value):
    return f'parameters {{ key: "batch_buckets" value {{ string_value: "{value}" }} }}\n'


MODELS = {
    "bucketed": CONFIG + buckets("4,8"),
    "unpadded": CONFIG + buckets("none"),
    "cpu_auto": CONFIG,
    "bad_value": CONFIG + buckets("4,x"),
    "too_big": CONFIG + buckets("16"),
}


def probe_model(path):
    """y = 3x + 1 per row; ran = the batch size of the run, on every element."""
    zero = helper.make_tensor("zero", F32, [], [0.0])
    one = helper.make_tensor("one", F32, [], [1.0])
    three = helper.make_tensor("three", F32, [], [3.0])
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [0])
    save_model(path,
               [helper.make_node("Mul", ["x", "three"], ["x3"]),
                helper.make_node("Add", ["x3", "one"], ["y"]),
                helper.make_node("Mul", ["x", "zero"], ["zeros"]),
                helper.make_node("Add", ["zeros", "one"], ["ones"]),
                helper.make_node("ReduceSum", ["ones", "axes"], ["count"], keepdims=1),
                helper.make_node("Add", ["zeros", "count"], ["ran"])],
               [vi("x", F32, ["batch", 4])], [vi("y", F32, ["batch", 4]), vi("ran", F32, ["batch", 4])],
               [zero, one, three, axes])


@pytest.fixture(scope="module")
def bucket_repo(workdir):
    root = os.path.join(workdir, "repo_buckets")
    for name, config in MODELS.items():
        probe_model(os.path.join(root, name, "1", "model.onnx"))
        with open(os.path.join(root, name, "config.pbtxt"), "w") as f:
            f.write(config)
    save_model(os.path.join(root, "str_bucketed", "1", "model.onnx"),
               [helper.make_node("Identity", ["text"], ["text_out"])],
               [vi("text", TensorProto.STRING, ["batch", 2])], [vi("text_out", TensorProto.STRING, ["batch", 2])])
    with open(os.path.join(root, "str_bucketed", "config.pbtxt"), "w") as f:
        f.write("max_batch_size: 4\ndynamic_batching { max_queue_delay_microseconds: 300000 }\n" + buckets("4"))
    # A dynamic dim besides the batch and no profile: nothing to warm it at.
    save_model(os.path.join(root, "seq_ids", "1", "model.onnx"), [helper.make_node("Identity", ["ids"], ["ids_out"])],
               [vi("ids", TensorProto.INT64, ["batch", "seq"])], [vi("ids_out", TensorProto.INT64, ["batch", "seq"])])
    with open(os.path.join(root, "seq_ids", "config.pbtxt"), "w") as f:
        f.write("max_batch_size: 4\n" + buckets("4"))
    return root


@pytest.fixture(scope="module")
def bucket_server(bucket_repo, workdir):
    s = KilnServer(["--model-repository", bucket_repo], os.path.join(workdir, "cache"))
    yield s
    assert s.stop() == 0, "".join(s.log)


@pytest.fixture(scope="module")
def client(bucket_server):
    c = httpclient.InferenceServerClient(url=bucket_server.url, concurrency=8)
    yield c
    c.close()


def request(x):
    t = httpclient.InferInput("x", list(x.shape), "FP32")
    t.set_data_from_numpy(x)
    return [t]


def rows(n, seed):
    return np.random.default_rng(seed).standard_normal((n, 4)).astype(np.float32)


def stats(client, model):
    s = client.get_inference_statistics(model)["model_stats"][0]
    return s["inference_count"], s["execution_count"], {b["batch_size"]: b["compute_infer"]["count"]
                                                        for b in s["batch_stats"]}


def padded_rows(server, model):
    body = urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10).read().decode()
    m = re.search(r'^kiln_inference_padded_rows_total\{model="' + model + r'",version="1"\} (\d+)$', body, re.M)
    assert m, body
    return int(m.group(1))


def test_buckets_are_warmed_before_ready_and_not_counted(bucket_server, client):
    log = "".join(bucket_server.log)
    assert re.search(r"model 'bucketed': warmed batch buckets 4,8 in \d+ ms", log), log
    assert re.search(r"model 'str_bucketed': warmed batch buckets 4 in \d+ ms", log), log
    assert ("model 'seq_ids': batch buckets 4, not warmed: input 'ids' has a dynamic dim besides the batch dim, "
            "without a profile's opt size") in log, log
    # CPU instances without the parameter, or with "none", have no buckets.
    assert "model 'cpu_auto': warmed" not in log and "model 'unpadded': warmed" not in log
    assert client.is_model_ready("bucketed")
    assert stats(client, "bucketed") == (0, 0, {})
    assert padded_rows(bucket_server, "bucketed") == 0


def test_concurrent_small_batches_run_padded_and_get_their_own_rows(bucket_server, client):
    xs = [rows(1, 1), rows(2, 2)]
    count0, exec0, batches0 = stats(client, "bucketed")
    pad0 = padded_rows(bucket_server, "bucketed")
    pending = [client.async_infer("bucketed", request(x)) for x in xs]
    results = [p.get_result() for p in pending]
    for x, r in zip(xs, results):
        # Each request's own rows, as the model computes them run alone.
        alone = client.infer("unpadded", request(x))
        np.testing.assert_array_equal(r.as_numpy("y"), alone.as_numpy("y"))
        np.testing.assert_allclose(r.as_numpy("y"), 3 * x + 1, rtol=1e-6)
        # Any batch of these (3 rows at most) ran at bucket 4.
        assert r.as_numpy("ran").shape == (x.shape[0], 4)
        assert (r.as_numpy("ran") == 4).all(), r.as_numpy("ran")
    count1, exec1, batches1 = stats(client, "bucketed")
    # The statistics count the real rows and the batches as formed.
    assert count1 - count0 == 3
    formed = {b: n - batches0.get(b, 0) for b, n in batches1.items() if n != batches0.get(b, 0)}
    assert set(formed) <= {1, 2, 3}, formed
    assert sum(b * n for b, n in formed.items()) == 3
    assert exec1 - exec0 == sum(formed.values())
    assert padded_rows(bucket_server, "bucketed") - pad0 == sum((4 - b) * n for b, n in formed.items())


def test_many_concurrent_requests_each_get_their_own_rows(bucket_server, client):
    sizes = [1 + k % 3 for k in range(48)]
    xs = [rows(n, 100 + k) for k, n in enumerate(sizes)]
    count0, _, _ = stats(client, "bucketed")
    pending = [client.async_infer("bucketed", request(x)) for x in xs]
    for x, p in zip(xs, pending):
        r = p.get_result()
        np.testing.assert_allclose(r.as_numpy("y"), 3 * x + 1, rtol=1e-6)
        assert r.as_numpy("ran")[0, 0] in (4, 8)
    assert stats(client, "bucketed")[0] - count0 == sum(sizes)


@pytest.mark.parametrize("n,bucket", [(3, 4), (4, 4), (5, 8), (8, 8)])
def test_a_batch_runs_at_the_smallest_bucket_it_fits(bucket_server, client, n, bucket):
    x = rows(n, 10 + n)
    pad0 = padded_rows(bucket_server, "bucketed")
    count0, exec0, _ = stats(client, "bucketed")
    r = client.infer("bucketed", request(x))
    np.testing.assert_allclose(r.as_numpy("y"), 3 * x + 1, rtol=1e-6)
    assert (r.as_numpy("ran") == bucket).all()
    assert padded_rows(bucket_server, "bucketed") - pad0 == bucket - n
    count1, exec1, _ = stats(client, "bucketed")
    assert (count1 - count0, exec1 - exec0) == (n, 1)


@pytest.mark.parametrize("model", ["unpadded", "cpu_auto"])
def test_none_and_cpu_default_run_batches_as_formed(bucket_server, client, model):
    x = rows(3, 7)
    r = client.infer(model, request(x))
    np.testing.assert_allclose(r.as_numpy("y"), 3 * x + 1, rtol=1e-6)
    assert (r.as_numpy("ran") == 3).all()
    assert padded_rows(bucket_server, model) == 0


def test_bytes_inputs_are_padded_too(bucket_server, client):
    values = [np.array([[b"a", b"bc"]], dtype=np.object_), np.array([[b"", b"d"], [b"ef", b"g"]], dtype=np.object_)]
    pad0 = padded_rows(bucket_server, "str_bucketed")
    pending = []
    for v in values:
        t = httpclient.InferInput("text", list(v.shape), "BYTES")
        t.set_data_from_numpy(v)
        pending.append(client.async_infer("str_bucketed", [t]))
    for v, p in zip(values, pending):
        np.testing.assert_array_equal(p.get_result().as_numpy("text_out"), v)
    # 3 rows in one batch (1 padded) or 1 and 2 apart (3 and 2).
    assert padded_rows(bucket_server, "str_bucketed") - pad0 in (1, 5)


def test_dynamic_dims_besides_the_batch_are_padded_unwarmed(bucket_server, client):
    ids = np.arange(6, dtype=np.int64).reshape(2, 3)
    t = httpclient.InferInput("ids", [2, 3], "INT64")
    t.set_data_from_numpy(ids)
    np.testing.assert_array_equal(client.infer("seq_ids", [t]).as_numpy("ids_out"), ids)
    assert padded_rows(bucket_server, "seq_ids") == 2


def test_bad_values_fail_the_load_naming_file_and_parameter(bucket_server, bucket_repo, client):
    index = {m["name"]: m for m in client.get_model_repository_index()}
    cfg = os.path.join(bucket_repo, "bad_value", "config.pbtxt")
    assert index["bad_value"]["state"] == "UNAVAILABLE"
    assert index["bad_value"]["reason"] == (
        f"{cfg}: parameter 'batch_buckets': 'x' in '4,x' is not a batch size (a comma list of batch sizes, "
        '"auto" or "none")')
    cfg = os.path.join(bucket_repo, "too_big", "config.pbtxt")
    assert index["too_big"]["state"] == "UNAVAILABLE"
    assert index["too_big"]["reason"] == (
        f"{cfg}: parameter 'batch_buckets': batch size 16 is outside 1..max_batch_size (8)")
