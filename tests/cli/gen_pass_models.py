#!/usr/bin/env python3
# Builds small ONNX cases (NAME/model.onnx + NAME/test_data_set_0) for the
# rewriting passes: Conv/ConvTranspose/Gemm/MatMul(+Add) followed by
# BatchNormalization, and Transpose/Reshape chains with no-op ops between.
# Reference outputs come from onnx.reference on the unoptimized model (the
# grouped ConvTranspose, which onnx.reference mishandles, from numpy). Check with
#   python3 tests/cli/gen_pass_models.py /tmp/pass-models
#   bash tests/cli/shared_models.sh build/kiln /tmp/pass-models   (or kiln conformance)
import os, sys, numpy as np, onnx
from onnx import helper as h, numpy_helper as nh, TensorProto as TP
from onnx.reference import ReferenceEvaluator
rng = np.random.default_rng(0)
OUT = sys.argv[1] if len(sys.argv) > 1 else '/tmp/pass-models'

def bn(name, x, c, inits, out=None, eps=1e-5):
    ps = [rng.uniform(0.5, 1.5, c), rng.normal(size=c), rng.normal(size=c), rng.uniform(0.1, 2, c)]
    names = [f'{name}_{k}' for k in ('scale', 'bias', 'mean', 'var')]
    for n, p in zip(names, ps): inits.append(nh.from_array(p.astype(np.float32), n))
    return h.make_node('BatchNormalization', [x] + names, [out or name], epsilon=eps)

def w(name, shape, inits):
    inits.append(nh.from_array(rng.normal(size=shape).astype(np.float32) * 0.3, name)); return name

def conv_transpose_ref(x, w, b, group, stride):
    # Kernel == stride, no padding: every input pixel writes its own output block.
    n, c, hh, ww = x.shape
    cg, mg, kh, kw = c // group, w.shape[1], w.shape[2], w.shape[3]
    y = np.zeros((n, mg * group, hh * stride, ww * stride), np.float64)
    for g in range(group):
        xs = x[:, g * cg:(g + 1) * cg].astype(np.float64)
        blk = np.einsum('nchw,cjyx->njhywx', xs, w[g * cg:(g + 1) * cg].astype(np.float64))
        y[:, g * mg:(g + 1) * mg] = blk.reshape(n, mg, hh * kh, ww * kw)
    return y + b.reshape(1, -1, 1, 1)

def bn_ref(x, inits, name, eps=1e-5):
    p = {t.name: nh.to_array(t).astype(np.float64) for t in inits}
    sh = (1, -1) + (1,) * (x.ndim - 2)
    s = p[name + '_scale'] / np.sqrt(p[name + '_var'] + eps)
    return (x - p[name + '_mean'].reshape(sh)) * s.reshape(sh) + p[name + '_bias'].reshape(sh)

def save(case, nodes, inits, inputs, outputs, feeds, opset=17, ref=None):
    g = h.make_graph(nodes, case, inputs, outputs, inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid('', opset)])
    d = os.path.join(OUT, case); os.makedirs(os.path.join(d, 'test_data_set_0'), exist_ok=True)
    onnx.save(m, os.path.join(d, 'model.onnx'))
    res = ref(feeds) if ref else ReferenceEvaluator(m).run(None, feeds)
    for i, (vi, arr) in enumerate(zip(inputs, feeds.values())):
        onnx.save_tensor(nh.from_array(arr, vi.name), os.path.join(d, 'test_data_set_0', f'input_{i}.pb'))
    for i, (vo, arr) in enumerate(zip(outputs, res)):
        onnx.save_tensor(nh.from_array(arr, vo.name), os.path.join(d, 'test_data_set_0', f'output_{i}.pb'))
    return m

def vi(n, s): return h.make_tensor_value_info(n, TP.FLOAT, s)

# resnet-like: conv-bn-relu, conv(no bias)-bn, residual add, grouped conv-bn, output is a BN output
I = []; N = []
N += [h.make_node('Conv', ['x', w('w1', (8, 4, 3, 3), I), w('b1', (8,), I)], ['c1'], pads=[1, 1, 1, 1]), bn('bn1', 'c1', 8, I),
      h.make_node('Relu', ['bn1'], ['r1']),
      h.make_node('Conv', ['r1', w('w2', (8, 2, 3, 3), I)], ['c2'], pads=[1, 1, 1, 1], group=4), bn('bn2', 'c2', 8, I),
      h.make_node('Conv', ['x', w('w3', (8, 4, 1, 1), I)], ['c3']), bn('bn3', 'c3', 8, I),
      h.make_node('Add', ['bn2', 'bn3'], ['a']), h.make_node('Relu', ['a'], ['r2']),
      h.make_node('Conv', ['r2', w('w4', (8, 8, 1, 1), I)], ['c4']), bn('y', 'c4', 8, I)]
save('test_resnet_block_bn', N, I, [vi('x', ['N', 4, 6, 6])], [vi('y', None)],
     {'x': rng.normal(size=(2, 4, 6, 6)).astype(np.float32)})

# ConvTranspose with groups + BN; Conv read twice (no fold) + BN
I = []; N = []
N += [h.make_node('ConvTranspose', ['x', w('wt', (4, 3, 2, 2), I), w('bt', (6,), I)], ['t'], group=2, strides=[2, 2]),
      bn('bnt', 't', 6, I, out='y'),
      h.make_node('Conv', ['x', w('wc', (4, 4, 1, 1), I)], ['c']), bn('bnc', 'c', 4, I),
      h.make_node('Add', ['bnc', 'c'], ['z'])]
def ct_ref(feeds, I=I):
    p = {t.name: nh.to_array(t) for t in I}
    x = feeds['x']
    y = bn_ref(conv_transpose_ref(x, p['wt'], p['bt'], 2, 2), I, 'bnt')
    c = np.einsum('nchw,mc->nmhw', x.astype(np.float64), p['wc'][:, :, 0, 0].astype(np.float64))
    return [y.astype(np.float32), (bn_ref(c, I, 'bnc') + c).astype(np.float32)]
save('test_convtranspose_bn', N, I, [vi('x', [1, 4, 3, 3])], [vi('y', None), vi('z', None)],
     {'x': rng.normal(size=(1, 4, 3, 3)).astype(np.float32)}, ref=ct_ref)

# Gemm(transB, alpha, beta)+BN, MatMul+Add+BN, plain MatMul+BN
I = []; N = []
N += [h.make_node('Gemm', ['x', w('wg', (5, 3), I), w('bg', (5,), I)], ['g'], transB=1, alpha=0.7, beta=1.3), bn('bng', 'g', 5, I),
      h.make_node('MatMul', ['bng', w('wm', (5, 4), I)], ['m']), h.make_node('Add', [w('bm', (4,), I), 'm'], ['ma']), bn('bnm', 'ma', 4, I),
      h.make_node('MatMul', ['bnm', w('wm2', (4, 3), I)], ['m2']), bn('y', 'm2', 3, I)]
save('test_gemm_matmul_bn', N, I, [vi('x', [2, 3])], [vi('y', None)],
     {'x': rng.normal(size=(2, 3)).astype(np.float32)})

# Transposes, reshape chains and no-ops
I = []; N = []
I += [nh.from_array(np.array([0, 12], np.int64), 'shp'), nh.from_array(np.array([1], np.int64), 'ax1'),
      nh.from_array(np.zeros(8, np.int64), 'zpads'), nh.from_array(np.array([0], np.int64), 'st'),
      nh.from_array(np.array([2**63 - 1], np.int64), 'en')]
N += [h.make_node('Transpose', ['x'], ['t1'], perm=[0, 2, 3, 1]), h.make_node('Transpose', ['t1'], ['t2'], perm=[0, 3, 1, 2]),
      h.make_node('Cast', ['t2'], ['c'], to=TP.FLOAT), h.make_node('Pad', ['c', 'zpads'], ['p']),
      h.make_node('Dropout', ['p'], ['d']), h.make_node('Slice', ['d', 'st', 'en'], ['s']),
      h.make_node('Flatten', ['s'], ['f']), h.make_node('Unsqueeze', ['f', 'ax1'], ['u']),
      h.make_node('Squeeze', ['u', 'ax1'], ['q']), h.make_node('Reshape', ['q', 'shp'], ['r']),
      h.make_node('Transpose', ['r'], ['y'], perm=[1, 0])]
save('test_layout_noops', N, I, [vi('x', ['N', 3, 2, 2])], [vi('y', None)],
     {'x': rng.normal(size=(2, 3, 2, 2)).astype(np.float32)})
print('ok')
