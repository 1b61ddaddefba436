"""Fixtures for the kiln serve tests: tiny ONNX models written into a
Triton-style repository, and `kiln serve` processes on free ports that always
stop. KILN names the kiln binary."""
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

KILN = os.environ.get("KILN", os.path.join(os.path.dirname(__file__), "..", "..", "build", "kiln"))


def save_model(path, nodes, inputs, outputs, initializers=()):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def vi(name, dtype, dims):
    return helper.make_tensor_value_info(name, dtype, dims)


def make_repository(root):
    """add_sub (config.pbtxt, batching), identity_i64 (no config: completed
    from the model), batcher (long queue delay), broken (bad config.pbtxt),
    fixed_shape (no batch dim, two versions)."""
    f32 = TensorProto.FLOAT
    for name in ("add_sub", "batcher", "slow_queue", "prio"):
        save_model(os.path.join(root, name, "1", "model.onnx"),
                   [helper.make_node("Add", ["INPUT0", "INPUT1"], ["OUTPUT0"]),
                    helper.make_node("Sub", ["INPUT0", "INPUT1"], ["OUTPUT1"])],
                   [vi("INPUT0", f32, ["batch", 4]), vi("INPUT1", f32, ["batch", 4])],
                   [vi("OUTPUT0", f32, ["batch", 4]), vi("OUTPUT1", f32, ["batch", 4])])
    with open(os.path.join(root, "add_sub", "config.pbtxt"), "w") as f:
        f.write("""name: "add_sub"
platform: "onnxruntime_onnx"
max_batch_size: 8
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] },
        { name: "INPUT1" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] },
         { name: "OUTPUT1" data_type: TYPE_FP32 dims: [ 4 ] } ]
instance_group [ { count: 2 kind: KIND_CPU } ]
dynamic_batching { }
""")
    with open(os.path.join(root, "batcher", "config.pbtxt"), "w") as f:
        f.write("""max_batch_size: 16
dynamic_batching { preferred_batch_size: [ 16 ] max_queue_delay_microseconds: 200000 }
""")
    with open(os.path.join(root, "slow_queue", "config.pbtxt"), "w") as f:
        f.write("""max_batch_size: 8
dynamic_batching { preferred_batch_size: [ 8 ] max_queue_delay_microseconds: 300000
                   default_queue_policy { max_queue_size: 2 } }
model_warmup [ { name: "zeros" batch_size: 2 count: 3
                 inputs { key: "INPUT0" value { data_type: TYPE_FP32 dims: [ 4 ] zero_data: true } }
                 inputs { key: "INPUT1" value { data_type: TYPE_FP32 dims: [ 4 ] random_data: true } } } ]
""")
    with open(os.path.join(root, "prio", "config.pbtxt"), "w") as f:
        f.write("""max_batch_size: 4
dynamic_batching { preferred_batch_size: [ 4 ] max_queue_delay_microseconds: 2000000
                   priority_levels: 2 default_priority_level: 2 }
""")
    save_model(os.path.join(root, "identity_i64", "1", "model.onnx"),
               [helper.make_node("Identity", ["ids"], ["ids_out"])],
               [vi("ids", TensorProto.INT64, ["batch", "seq"])], [vi("ids_out", TensorProto.INT64, ["batch", "seq"])])
    for v in (1, 2):
        save_model(os.path.join(root, "fixed_shape", str(v), "model.onnx"),
                   [helper.make_node("Relu", ["x"], ["y"])], [vi("x", f32, [2, 3])], [vi("y", f32, [2, 3])])
    with open(os.path.join(root, "fixed_shape", "config.pbtxt"), "w") as f:
        f.write('version_policy: { all { } }\n')
    save_model(os.path.join(root, "broken", "1", "model.onnx"),
               [helper.make_node("Relu", ["x"], ["y"])], [vi("x", f32, [2])], [vi("y", f32, [2])])
    with open(os.path.join(root, "broken", "config.pbtxt"), "w") as f:
        f.write('name: "broken"\nmax_batch: 4\n')


class KilnServer:
    def __init__(self, args, cache_dir):
        cmd = [KILN, "serve", "--http-port", "0", "--metrics-port", "0", "--grpc-port", "0",
               "--engine-cache-dir", cache_dir] + args
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
        self.log = []
        self.http_port = self.metrics_port = self.grpc_port = None
        ready = threading.Event()

        def reader():
            for line in self.proc.stderr:
                self.log.append(line)
                m = re.search(r"HTTP on [^:]+:(\d+)(?:, metrics on [^:]+:(\d+))?", line)
                if m:
                    self.http_port = int(m.group(1))
                    self.metrics_port = int(m.group(2)) if m.group(2) else None
                    g = re.search(r"gRPC on [^:]+:(\d+)", line)
                    self.grpc_port = int(g.group(1)) if g else None
                    ready.set()
            ready.set()

        threading.Thread(target=reader, daemon=True).start()
        # Loading builds engines and, on a GPU, warms each batch bucket first.
        if not ready.wait(300) or self.http_port is None:
            self.stop()
            raise RuntimeError("kiln serve did not start:\n" + "".join(self.log))
        self.url = f"127.0.0.1:{self.http_port}"
        self.grpc_url = f"127.0.0.1:{self.grpc_port}" if self.grpc_port else None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        # A sanitizer build (KILN pointing at one) reports through stderr.
        if any("runtime error:" in line or "Sanitizer" in line for line in self.log):
            print("".join(self.log))
            return -1
        return self.proc.returncode


@pytest.fixture(scope="session")
def workdir():
    d = tempfile.mkdtemp(prefix="kiln_serve_test_")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def repo(workdir):
    root = os.path.join(workdir, "repo")
    make_repository(root)
    return root


@pytest.fixture(scope="module")
def server(repo, workdir):
    s = KilnServer(["--model-repository", repo, "--max-request-bytes", str(1 << 20)], os.path.join(workdir, "cache"))
    yield s
    assert s.stop() == 0, "".join(s.log)
