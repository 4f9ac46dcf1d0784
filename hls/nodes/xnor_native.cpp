// XNOR-popcount match counts on packed 64-bit words, compiled at first use by xnor_native.py.
//
// out[i * cols + j] = k_bits - popcount(x[i] XOR w[j]) summed over the row's words, where x is
// (rows, words) and w is (cols, words), both row-major: each row of w is one column of the
// weight matrix packed along K.  Zero padding of the last word XORs to zero.  With
// -march=native the word loop vectorises to AVX-512 VPOPCNTQ where the CPU has it.
#include <algorithm>
#include <cstdint>

namespace {

// Columns per block: a block of w (COL_BLOCK * words * 8 bytes) stays in L2 while every
// row streams past it.
constexpr int64_t COL_BLOCK = 256;

// Mismatch counts of one row of x against four rows of w: each x word is loaded once for
// four popcounts, and the four sums vectorise over the words.
inline void mismatches4(const uint64_t* a, const uint64_t* b0, const uint64_t* b1, const uint64_t* b2,
                        const uint64_t* b3, int64_t words, int64_t* c) {
    int64_t c0 = 0, c1 = 0, c2 = 0, c3 = 0;
    for (int64_t k = 0; k < words; ++k) {
        const uint64_t v = a[k];
        c0 += __builtin_popcountll(v ^ b0[k]);
        c1 += __builtin_popcountll(v ^ b1[k]);
        c2 += __builtin_popcountll(v ^ b2[k]);
        c3 += __builtin_popcountll(v ^ b3[k]);
    }
    c[0] = c0;
    c[1] = c1;
    c[2] = c2;
    c[3] = c3;
}

inline int64_t mismatches(const uint64_t* a, const uint64_t* b, int64_t words) {
    int64_t count = 0;
    for (int64_t k = 0; k < words; ++k) {
        count += __builtin_popcountll(a[k] ^ b[k]);
    }
    return count;
}

}  // namespace

extern "C" void qnnflow_xnor_matches(const uint64_t* x, const uint64_t* w, int64_t rows, int64_t cols,
                                     int64_t words, int32_t k_bits, int32_t* out) {
    for (int64_t j0 = 0; j0 < cols; j0 += COL_BLOCK) {
        const int64_t j1 = std::min(j0 + COL_BLOCK, cols);
        for (int64_t i = 0; i < rows; ++i) {
            const uint64_t* xi = x + i * words;
            int32_t* oi = out + i * cols;
            int64_t j = j0;
            for (; j + 4 <= j1; j += 4) {
                const uint64_t* wj = w + j * words;
                int64_t c[4];
                mismatches4(xi, wj, wj + words, wj + 2 * words, wj + 3 * words, words, c);
                for (int q = 0; q < 4; ++q) {
                    oi[j + q] = k_bits - static_cast<int32_t>(c[q]);
                }
            }
            for (; j < j1; ++j) {
                oi[j] = k_bits - static_cast<int32_t>(mismatches(xi, w + j * words, words));
            }
        }
    }
}
