"""instance_group kinds: KIND_GPU (with and without `gpus`) and KIND_AUTO
(a GPU when there is one, else the CPU). Without a GPU (CI) a KIND_GPU model
fails to load with its reason in the repository index and the other models
serve; with one (the GPU machine) KIND_GPU instances run on it and answer
what the CPU reference computes."""
import os
import re
import shutil
import subprocess
import urllib.request

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from onnx import TensorProto, helper

from conftest import KilnServer, save_model, vi


def gpu_visible():
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and "GPU 0" in out.stdout


HAVE_GPU = gpu_visible()
WIDE = 262144  # float32 elements per row of the "wide" model: 1 MiB
NO_GPU_REASONS = ("no CUDA GPU is visible to this process", "this kiln was built without the CUDA backend")

CONFIGS = {
    "on_gpu": 'max_batch_size: 8\ninstance_group [ { count: 2 kind: KIND_GPU } ]\ndynamic_batching { }\n',
    "on_gpu0": 'max_batch_size: 8\ninstance_group [ { count: 1 kind: KIND_GPU gpus: [ 0 ] } ]\n',
    "on_gpu7": 'max_batch_size: 8\ninstance_group [ { count: 1 kind: KIND_GPU gpus: [ 7 ] } ]\n',
    "auto": 'max_batch_size: 8\ninstance_group [ { count: 2 kind: KIND_AUTO } ]\n',
    "on_cpu": 'max_batch_size: 8\ninstance_group [ { count: 1 kind: KIND_CPU } ]\n',
    "graphs": 'max_batch_size: 8\ninstance_group [ { count: 1 kind: KIND_GPU } ]\n'
              'optimization { cuda { graphs: true busy_wait_events: true } }\n',
}


@pytest.fixture(scope="module")
def gpu_repo(workdir):
    root = os.path.join(workdir, "gpu_repo")
    shutil.rmtree(root, ignore_errors=True)
    f32 = TensorProto.FLOAT
    for name, config in CONFIGS.items():
        save_model(os.path.join(root, name, "1", "model.onnx"),
                   [helper.make_node("Mul", ["x", "x"], ["sq"]), helper.make_node("Add", ["sq", "x"], ["y"])],
                   [vi("x", f32, ["batch", 5])], [vi("y", f32, ["batch", 5])])
        with open(os.path.join(root, name, "config.pbtxt"), "w") as f:
            f.write(config)
    # Rows of 1 MiB: a batch of several gathers its inputs on several threads.
    save_model(os.path.join(root, "wide", "1", "model.onnx"), [helper.make_node("Add", ["x", "x"], ["y"])],
               [vi("x", f32, ["batch", WIDE])], [vi("y", f32, ["batch", WIDE])])
    with open(os.path.join(root, "wide", "config.pbtxt"), "w") as f:
        f.write("max_batch_size: 8\ninstance_group [ { count: 1 kind: KIND_GPU } ]\n"
                "dynamic_batching { max_queue_delay_microseconds: 50000 }\n")
    return root


@pytest.fixture(scope="module")
def gpu_server(gpu_repo, workdir):
    s = KilnServer(["--model-repository", gpu_repo], os.path.join(workdir, "gpu_cache"))
    yield s
    assert s.stop() == 0, "".join(s.log)


def index(server):
    c = httpclient.InferenceServerClient(url=server.url)
    try:
        return {m["name"]: m for m in c.get_model_repository_index()}
    finally:
        c.close()


def padded_rows(server, model):
    body = urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10).read().decode()
    m = re.search(r'^kiln_inference_padded_rows_total\{model="' + model + r'",version="1"\} (\d+)$', body, re.M)
    assert m, body
    return int(m.group(1))


def infer_check(module, url, name):
    c = module.InferenceServerClient(url=url)
    x = np.linspace(-2, 2, 15, dtype=np.float32).reshape(3, 5)
    t = module.InferInput("x", [3, 5], "FP32")
    t.set_data_from_numpy(x)
    y = c.infer(name, [t]).as_numpy("y")
    np.testing.assert_allclose(y, x * x + x, rtol=1e-6, atol=1e-6)
    c.close()


@pytest.mark.skipif(HAVE_GPU, reason="a GPU is visible: KIND_GPU models load here")
def test_kind_gpu_without_a_gpu_fails_with_its_reason(gpu_server, gpu_repo):
    models = index(gpu_server)
    cfg = os.path.join(gpu_repo, "on_gpu", "config.pbtxt")
    assert models["on_gpu"]["state"] == "UNAVAILABLE"
    assert models["on_gpu"]["reason"] in [
        f"{cfg}: instance_group 0: KIND_GPU needs a CUDA GPU, but {why}" for why in NO_GPU_REASONS]
    cfg = os.path.join(gpu_repo, "on_gpu7", "config.pbtxt")
    assert models["on_gpu7"]["state"] == "UNAVAILABLE"
    assert models["on_gpu7"]["reason"] in [
        f"{cfg}: instance_group 0: KIND_GPU names GPU 7, which does not exist: this process sees 0 CUDA GPUs ({why})"
        for why in NO_GPU_REASONS]
    assert models["on_gpu0"]["state"] == "UNAVAILABLE"
    # The other models are unaffected; the server is not ready (models that
    # should be loaded are not).
    for name in ("auto", "on_cpu"):
        assert models[name]["state"] == "READY", models[name]
        infer_check(httpclient, gpu_server.url, name)
    c = httpclient.InferenceServerClient(url=gpu_server.url)
    assert not c.is_server_ready()
    # KIND_AUTO without a GPU is the CPU, as the completed config says.
    groups = c.get_model_config("auto")["instance_group"]
    assert [(g["kind"], g["count"], g.get("gpus", [])) for g in groups] == [("KIND_CPU", 2, [])]
    c.close()
    # CPU instances have no batch buckets by default: nothing warmed, nothing padded.
    assert "warmed batch buckets" not in "".join(gpu_server.log)
    assert padded_rows(gpu_server, "auto") == 0


@pytest.mark.skipif(not HAVE_GPU, reason="no GPU visible")
def test_kind_gpu_instances_run_on_the_gpu(gpu_server, gpu_repo):
    models = index(gpu_server)
    # KIND_GPU instances warm the batch buckets (max_batch_size 8: 1,2,4,8)
    # before the model is ready; KIND_CPU ones have none by default.
    log = "".join(gpu_server.log)
    for name in ("on_gpu", "on_gpu0", "auto"):
        assert re.search(rf"model '{name}': warmed batch buckets 1,2,4,8 in \d+ ms", log), log
    assert "model 'on_cpu': warmed" not in log
    for name in ("on_gpu", "on_gpu0", "auto", "on_cpu"):
        assert models[name]["state"] == "READY", models[name]
        padded = padded_rows(gpu_server, name)
        infer_check(httpclient, gpu_server.url, name)
        calls = 1
        if gpu_server.grpc_url:
            infer_check(grpcclient, gpu_server.grpc_url, name)
            calls = 2
        # One request at a time, each a batch of 3 rows: bucket 4 on the GPU,
        # as formed on the CPU.
        assert padded_rows(gpu_server, name) - padded == (0 if name == "on_cpu" else calls)
    assert models["on_gpu7"]["state"] == "UNAVAILABLE"
    assert "KIND_GPU names GPU 7, which does not exist" in models["on_gpu7"]["reason"]
    c = httpclient.InferenceServerClient(url=gpu_server.url)
    groups = c.get_model_config("auto")["instance_group"]
    assert groups[0]["kind"] == "KIND_GPU" and groups[0]["gpus"]
    # A batch of concurrent requests through the GPU instances' dynamic batching.
    x = np.random.default_rng(0).standard_normal((1, 5)).astype(np.float32)
    pending = []
    for _ in range(32):
        t = httpclient.InferInput("x", [1, 5], "FP32")
        t.set_data_from_numpy(x)
        pending.append(c.async_infer("on_gpu", [t]))
    for p in pending:
        np.testing.assert_allclose(p.get_result().as_numpy("y"), x * x + x, rtol=1e-6, atol=1e-6)
    c.close()


@pytest.mark.skipif(not HAVE_GPU, reason="no GPU visible")
def test_cuda_graphs_replay_each_bucket_on_fresh_data(gpu_server):
    # optimization.cuda.graphs: each bucket (1,2,4,8) is captured while the
    # model warms; every later request, whatever bucket ran before it, gets
    # its own data's answer from the replay.
    assert re.search(r"model 'graphs': warmed batch buckets 1,2,4,8 in \d+ ms", "".join(gpu_server.log))
    c = httpclient.InferenceServerClient(url=gpu_server.url)
    rng = np.random.default_rng(3)
    for rows in (3, 8, 1, 5, 2, 8, 3):
        x = rng.standard_normal((rows, 5)).astype(np.float32)
        t = httpclient.InferInput("x", [rows, 5], "FP32")
        t.set_data_from_numpy(x)
        y = c.infer("graphs", [t]).as_numpy("y")
        np.testing.assert_allclose(y, x * x + x, rtol=1e-6, atol=1e-6, err_msg=f"{rows} rows")
    c.close()


@pytest.mark.skipif(not HAVE_GPU, reason="no GPU visible")
def test_large_inputs_gathered_on_several_threads_keep_their_rows(gpu_server):
    # 8 concurrent 1-row requests of 1 MiB each batch together (8 MiB: the
    # gather into pinned memory runs on 4 threads); each gets its own row back.
    c = httpclient.InferenceServerClient(url=gpu_server.url, concurrency=8)
    rng = np.random.default_rng(5)
    xs = [rng.standard_normal((1, WIDE)).astype(np.float32) for _ in range(8)]
    pending = []
    for x in xs:
        t = httpclient.InferInput("x", [1, WIDE], "FP32")
        t.set_data_from_numpy(x, binary_data=True)
        pending.append(c.async_infer("wide", [t]))
    for x, p in zip(xs, pending):
        np.testing.assert_array_equal(p.get_result().as_numpy("y"), x + x)
    stats = c.get_inference_statistics("wide")["model_stats"][0]
    assert int(stats["execution_count"]) < 8, stats  # batched
    c.close()


@pytest.mark.skipif(not HAVE_GPU, reason="no GPU visible")
def test_shared_memory_inputs_go_straight_to_the_gpu_and_keep_their_rows(gpu_server):
    # 8 concurrent 1-row requests whose 1 MiB inputs sit in one registered
    # (and so page-locked) region at different offsets, plus one whose input
    # travels in the body. However the batcher groups them (a batch all in
    # shared memory goes to the device piece by piece, a mixed one through
    # the gather), every request gets its own row back.
    import tritonclient.utils.shared_memory as shm
    row = WIDE * 4
    key = f"/kiln_gpu_test_{os.getpid()}"
    h = shm.create_shared_memory_region("rows", key, 8 * row)
    c = httpclient.InferenceServerClient(url=gpu_server.url, concurrency=9)
    try:
        rng = np.random.default_rng(6)
        xs = [rng.standard_normal((1, WIDE)).astype(np.float32) for _ in range(9)]
        for i, x in enumerate(xs[:8]):
            shm.set_shared_memory_region(h, [x], offset=i * row)
        c.register_system_shared_memory("rows", key, 8 * row)
        pending = []
        for i, x in enumerate(xs):
            t = httpclient.InferInput("x", [1, WIDE], "FP32")
            if i < 8:
                t.set_shared_memory("rows", row, offset=i * row)
            else:
                t.set_data_from_numpy(x, binary_data=True)
            pending.append(c.async_infer("wide", [t]))
        for x, p in zip(xs, pending):
            np.testing.assert_array_equal(p.get_result().as_numpy("y"), x + x)
    finally:
        c.unregister_system_shared_memory()
        c.close()
        shm.destroy_shared_memory_region(h)
