"""Hostile HTTP input: each gets a precise error and the server stays up."""
import http.client
import json
import socket

import pytest


def post(server, path, body, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=30)
    try:
        c.request("POST", path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def error_of(body):
    return json.loads(body)["error"]


def alive(server):
    c = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=10)
    c.request("GET", "/v2/health/live")
    ok = c.getresponse().status == 200
    c.close()
    return ok


INFER = "/v2/models/add_sub/infer"


def test_malformed_json(server):
    status, body = post(server, INFER, b'{"inputs": [')
    assert status == 400 and "failed to parse the request JSON" in error_of(body)
    assert alive(server)


@pytest.mark.parametrize("doc,message", [
    ([], "must be an object"),
    ({}, "'inputs' array"),
    ({"inputs": [1]}, "input 0 is not a JSON object"),
    ({"inputs": [{"name": "INPUT0", "datatype": "FP99", "shape": [1, 4], "data": [1, 2, 3, 4]}]}, "unknown datatype"),
    ({"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, -4], "data": []}]}, "not a non-negative"),
    ({"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3]}]}, "has 3 elements"),
    ({"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, "x", 4]}]}, "element 2"),
    ({"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1099511627776, 1099511627776], "data": [1]}]},
     "too many elements"),
    ({"inputs": [{"name": "INPUT0", "datatype": "INT8", "shape": [1], "data": [300]}]}, "not a valid INT8"),
    ({"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]},
     "expected an input named 'INPUT1'"),
    ({"inputs": [{"name": "ZZ", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}, "unexpected inference input"),
    ({"inputs": [], "parameters": {"timeout": -1}}, "timeout"),
])
def test_bad_request_documents(server, doc, message):
    status, body = post(server, INFER, json.dumps(doc))
    assert status == 400, body
    assert message in error_of(body)


def test_header_length_that_lies(server):
    doc = json.dumps({"inputs": []}).encode()
    status, body = post(server, INFER, doc, {"Inference-Header-Content-Length": str(len(doc) + 100)})
    assert status == 400 and "exceeds the body size" in error_of(body)
    status, body = post(server, INFER, doc, {"Inference-Header-Content-Length": "12abc"})
    assert status == 400 and "is not a number" in error_of(body)


def test_binary_size_past_the_end(server):
    doc = json.dumps({"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 4],
                                  "parameters": {"binary_data_size": 16}}]}).encode()
    status, body = post(server, INFER, doc + b"\0" * 8, {"Inference-Header-Content-Length": str(len(doc))})
    assert status == 400 and "runs past the end" in error_of(body)


def test_body_over_the_limit(server):
    # Refused from the Content-Length alone, before any of the body is read.
    s = socket.create_connection(("127.0.0.1", server.http_port), timeout=30)
    s.sendall(b"POST " + INFER.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (2 << 20))
    reply = b""
    while b"}" not in reply:
        chunk = s.recv(4096)
        if not chunk:
            break
        reply += chunk
    s.close()
    assert reply.startswith(b"HTTP/1.1 413"), reply
    assert b"--max-request-bytes" in reply
    assert alive(server)


def test_content_length_that_lies(server):
    s = socket.create_connection(("127.0.0.1", server.http_port), timeout=30)
    s.sendall(b"POST " + INFER.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"inputs\":")
    s.shutdown(socket.SHUT_WR)
    reply = s.recv(4096)
    s.close()
    assert reply == b"" or reply.startswith(b"HTTP/1.1 400")
    assert alive(server)


def test_garbage_request_line(server):
    s = socket.create_connection(("127.0.0.1", server.http_port), timeout=30)
    s.sendall(b"\x00\x01\x02 not http at all\r\n\r\n")
    reply = s.recv(4096)
    s.close()
    assert reply.startswith(b"HTTP/1.1 400")
    assert alive(server)


def test_unknown_paths_and_methods(server):
    c = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=10)
    for method, path, code in [("GET", "/v3", 404), ("GET", "/v2/models/add_sub/infer", 405),
                               ("DELETE", "/v2", 405), ("GET", "/v2/models/add_sub/versions/x", 400),
                               ("GET", "/v2/models/%2e%2e%2f/config", 404), ("GET", "/v2/models/nope", 404),
                               ("GET", "/v2/models/add_sub/versions/99999999999999999999999", 400)]:
        c.request(method, path)
        r = c.getresponse()
        body = r.read()
        assert r.status == code, (method, path, body)
        assert "error" in json.loads(body)
    c.close()


def test_mutated_bodies_get_answers(server):
    """A bounded, seeded fuzz of JSON and binary bodies: every reply is a
    well-formed HTTP answer with a JSON error or a result."""
    import random
    rng = random.Random(7)
    doc = {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 4], "parameters": {"binary_data_size": 16}},
                      {"name": "INPUT1", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}],
           "outputs": [{"name": "OUTPUT0", "parameters": {"binary_data": True}}]}
    header = json.dumps(doc).encode()
    body = header + bytes(16)
    c = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=30)
    for i in range(300):
        b = bytearray(body)
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        if rng.random() < 0.2:
            b = b[:rng.randrange(len(b))]
        hl = str(len(header) + rng.choice([0, 0, 0, -1, 1, -30, 1000])) if rng.random() < 0.9 else "x"
        c.request("POST", INFER, body=bytes(b), headers={"Inference-Header-Content-Length": hl})
        r = c.getresponse()
        data = r.read()
        assert r.status in (200, 400), (i, r.status, data)
        if r.status == 400:
            assert "error" in json.loads(data)
    c.close()
    assert alive(server)


@pytest.mark.parametrize("where", ["shape", "data", "inputs"])
def test_deeply_nested_json(server, where):
    deep = "[" * 100000 + "]" * 100000
    deep_obj = '{"a":' * 100000 + "1" + "}" * 100000
    if where == "shape":
        doc = '{"inputs":[{"name":"INPUT0","datatype":"FP32","shape":[%s],"data":[1]}]}' % deep
    elif where == "data":
        doc = '{"inputs":[{"name":"INPUT0","datatype":"FP32","shape":[1],"data":[%s]}]}' % deep_obj
    else:
        doc = '{"inputs":%s}' % deep
    status, body = post(server, INFER, doc)
    assert status == 400
    assert "error" in json.loads(body)
    assert alive(server)


def test_expect_100_continue_is_answered(server):
    doc = json.dumps({"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]},
                                 {"name": "INPUT1", "datatype": "FP32", "shape": [1, 4], "data": [1, 1, 1, 1]}]})
    s = socket.create_connection(("127.0.0.1", server.http_port), timeout=5)
    s.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n"
              % (INFER.encode(), len(doc)))
    assert s.recv(4096).startswith(b"HTTP/1.1 100 Continue")
    s.sendall(doc.encode())
    reply = b""
    while b"OUTPUT1" not in reply:
        chunk = s.recv(4096)
        if not chunk:
            break
        reply += chunk
    s.close()
    assert reply.startswith(b"HTTP/1.1 200"), reply
