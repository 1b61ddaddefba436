// How row-wise kernels (softmax, normalization, last-axis reductions) split
// rows among threads: a warp per row for short rows (four rows a 128-thread
// block, no barriers), a whole block per row for long ones (up to 1024
// threads, so each thread handles at least about 8 elements).
#pragma once

#include <algorithm>
#include <cstdint>

namespace kiln::cuda {

struct RowLaunch {
  int group;  // threads per row: 32, or the block size
  int block;  // threads per block
  unsigned grid;
};

inline RowLaunch row_launch(int64_t rows, int64_t cols) {
  constexpr int64_t kMaxGrid = 0x7fffffff;
  if (cols <= 1024) {
    const int64_t blocks = (rows + 3) / 4;
    return {32, 128, static_cast<unsigned>(std::min(blocks, kMaxGrid))};
  }
  int block = 128;
  while (block < 1024 && int64_t(block) * 8 < cols) block *= 2;
  return {block, block, static_cast<unsigned>(std::min(rows, kMaxGrid))};
}

}  // namespace kiln::cuda
