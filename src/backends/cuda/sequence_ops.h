// Sequences and optionals on the CUDA backend. A sequence or optional value
// is a DeviceList (run_plan.h): a list the host holds of tensors in device
// memory. Planning ends a segment before each sequence or optional node
// (is_device_sequence_op, a break like control flow); the executor runs the
// node here, between segments:
//   - positions (SequenceAt, SequenceErase, SequenceInsert) and split lengths
//     (SplitToSequence) are read on the host (downloaded at the break, a
//     stream synchronization);
//   - SequenceConstruct, SequenceInsert, SequenceErase, SequenceAt, Optional,
//     OptionalGetElement and Identity of a list move no data: elements are
//     immutable, so lists share them (and SequenceAt's output is the
//     element's memory);
//   - SplitToSequence and ConcatFromSequence copy on the device (one copy
//     per piece or element, 2-D when strided, on the run's stream);
//   - SequenceLength and OptionalHasElement are known on the host (uploaded
//     when a kernel reads them);
//   - a sequence or optional only the host has (computed from constants while
//     planning) is uploaded when a node here reads it; one a host node reads
//     (CPU fallback) is downloaded.
// Memory these nodes allocate is held until the run ends (ControlFlowRun::hold).
// If and Loop carry lists into and out of their bodies (a body's list
// output is copied, element by element, into memory of the node's run:
// control_flow.cpp), and SequenceMap runs its body once per element. The
// top graph's inputs and outputs stay tensors: a sequence is made and
// consumed inside it. A run with such a node has breaks, so it is never
// captured as a CUDA graph.
#pragma once

#include <vector>

#include "backends/cuda/control_flow.h"

namespace kiln::cuda {

// Runs a sequence or optional node (is_device_sequence_op, or Identity of a
// sequence or optional) and returns its
// outputs in order: a list, a tensor on the device, or a tensor only the host
// has (data null). Errors name the node.
Expected<std::vector<OuterValue>> run_sequence_op(const Node& node, ControlFlowRun& run);

// `host` (a sequence or optional only the host has) uploaded: each element
// in memory appended to `owned` (cudaMallocAsync'ed on `stream`; the caller
// frees it, stream-ordered).
Expected<std::shared_ptr<const DeviceList>> upload_list(const RunValue& host, cudaStream_t stream,
                                                        std::vector<void*>& owned);

// `v` (a value `node` reads) as a list: its own, or uploaded when only the
// host has it (held by `run`); null for a tensor.
Expected<std::shared_ptr<const DeviceList>> device_list(const Node& node, const OuterValue& v, ControlFlowRun& run);

// `list` copied to the host: the copies are queued on `stream`; the value is
// valid once the stream is synchronized.
Expected<RunValue> download_list(const DeviceList& list, cudaStream_t stream);

}  // namespace kiln::cuda
