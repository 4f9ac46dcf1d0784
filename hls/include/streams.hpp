// qnnflow HLS kernel library: element types, lanes of stream words, AXI-Stream words,
// parameter memories and stream taps.  Header-only; synthesizable with Vitis HLS and
// compilable with g++ (-std=c++14) against Xilinx's ap_int.h / hls_stream.h.
//
// Stream words: a word of a kernel's stream is ap_uint<LANES * E::bits>; element i of the
// word sits at bits [i*bits, (i+1)*bits), LSB first; signed values are two's complement,
// BIPOLAR values are one bit (1 = +1, 0 = -1).  The Python side of the same format is
// qnnflow/base/streams.py.
#ifndef QNNFLOW_STREAMS_HPP
#define QNNFLOW_STREAMS_HPP

#ifndef AP_INT_MAX_W
#define AP_INT_MAX_W 4096  // the widest stream word qnnflow generates (checked in Python)
#endif

#include <ap_int.h>
#include <hls_stream.h>
#include <stdint.h>

#if defined(__has_include)
#if __has_include(<ap_axi_sdata.h>)
#include <ap_axi_sdata.h>
#define QNNFLOW_HAVE_AP_AXI_SDATA 1
#endif
#endif

// QNNFLOW_INLINE: small helpers g++ should always inline in simulation (Vitis HLS inlines them
// by their INLINE pragmas).
#if defined(__GNUC__) && !defined(__SYNTHESIS__)
#define QNNFLOW_INLINE inline __attribute__((always_inline))
#else
#define QNNFLOW_INLINE inline
#endif

namespace qnnflow {

// ----- element types: how E::bits raw bits of a word encode an integer --------------------

template <unsigned B, bool S>
struct Int;

// UINTn / BINARY
template <unsigned B>
struct Int<B, false> {
    enum { bits = B, is_signed = 0, max_is_or = (B == 1) };
    typedef ap_uint<B> value_t;
    static value_t decode(const ap_uint<B>& raw) { return raw; }
    template <class V>
    static ap_uint<B> encode(const V& v) { return ap_uint<B>(v); }
    static value_t lowest() { return value_t(0); }
    static long long decode_native(unsigned long long raw) { return (long long)raw; }
};

// INTn, two's complement
template <unsigned B>
struct Int<B, true> {
    enum { bits = B, is_signed = 1, max_is_or = 0 };
    typedef ap_int<B> value_t;
    static value_t decode(const ap_uint<B>& raw) { return value_t(raw); }  // same bits, read as signed
    template <class V>
    static ap_uint<B> encode(const V& v) {
        value_t t = v;  // wraps to B bits
        ap_uint<B> raw = t.range(B - 1, 0);
        return raw;
    }
    static value_t lowest() {
        value_t v = 0;
        v[B - 1] = 1;
        return v;
    }
    static long long decode_native(unsigned long long raw) {
        return (raw >> (B - 1)) & 1 ? (long long)(raw | (~0ULL << (B - 1))) : (long long)raw;
    }
};

// BIPOLAR: one bit, 1 stands for +1 and 0 for -1
struct Bipolar {
    enum { bits = 1, is_signed = 1, max_is_or = 1 };
    typedef ap_int<2> value_t;
    static value_t decode(const ap_uint<1>& raw) { return raw[0] ? value_t(1) : value_t(-1); }
    template <class V>
    static ap_uint<1> encode(const V& v) { return ap_uint<1>(v > 0 ? 1 : 0); }
    static value_t lowest() { return value_t(-1); }
    static long long decode_native(unsigned long long raw) { return raw ? 1 : -1; }
};

// ----- lanes of a word ---------------------------------------------------------------------

template <class E, int W>
QNNFLOW_INLINE typename E::value_t get_lane(const ap_uint<W>& word, unsigned i) {
#pragma HLS INLINE
    ap_uint<E::bits> raw = word >> (i * E::bits);  // truncates to the lane (cheaper than range() in g++)
    return E::decode(raw);
}

template <class E, int W, class V>
QNNFLOW_INLINE void set_lane(ap_uint<W>& word, unsigned i, const V& v) {
#pragma HLS INLINE
    word.range((i + 1) * E::bits - 1, i * E::bits) = E::encode(v);
}

// C simulation fast path, only with -DQNNFLOW_NATIVE (cppsim's native=True).  Xilinx's C model
// of ap_int clears unused bits through a volatile member after every operation, which makes
// lane arithmetic in hot loops 10-20x slower.  Where a value provably fits 64 bits, kernels may
// then compute it on native integers (the same value; tests/hls/backend/test_native.py compares
// the output words of both paths on every zoo model).  By default, and always in Vitis HLS, the
// exact ap_int code that synthesis compiles runs.
#if defined(QNNFLOW_NATIVE) && !defined(__SYNTHESIS__)
#define QNNFLOW_NATIVE_SIM 1
#else
#define QNNFLOW_NATIVE_SIM 0
#endif

// Lane i of a word stored as N limbs of type L (least significant first), as a native integer.
template <class E, class L, int N>
QNNFLOW_INLINE long long limb_lane_native(const L (&limbs)[N], unsigned i) {
    const unsigned LB = sizeof(L) * 8;
    const unsigned long long mask = (E::bits >= 64) ? ~0ULL : ((1ULL << E::bits) - 1);
    const unsigned bit = i * E::bits, k = bit / LB, offset = bit % LB;
    unsigned long long raw = (unsigned long long)limbs[k] >> offset;
    if (offset + E::bits > LB && k + 1 < unsigned(N)) raw |= (unsigned long long)limbs[k + 1] << (LB - offset);
    return E::decode_native(raw & mask);
}

// A word with value v in every lane.
template <class E, unsigned LANES, class V>
ap_uint<LANES * E::bits> splat(const V& v) {
#pragma HLS INLINE
    ap_uint<LANES * E::bits> word = 0;
    for (unsigned i = 0; i < LANES; i++) {
#pragma HLS UNROLL
        set_lane<E>(word, i, v);
    }
    return word;
}

// ----- parameter memories -------------------------------------------------------------------
// Generated parameter headers hold memories as plain unsigned integer arrays: one memory word
// is N limbs of sizeof(L) bytes, least significant limb first (ap_uint array initialisers are
// far too slow to compile).  join_limbs rebuilds the W-bit word.

template <int W, class L, int N>
QNNFLOW_INLINE ap_uint<W> join_limbs(const L (&limbs)[N]) {
#pragma HLS INLINE
    if (N == 1) return ap_uint<W>(limbs[0]);  // the word fits one limb
    ap_uint<W> word = 0;
    for (int i = 0; i < N; i++) {
#pragma HLS UNROLL
        const int lo = i * int(sizeof(L) * 8);
        const int top = lo + int(sizeof(L) * 8);
        const int hi = (top > W ? W : top) - 1;
        word.range(hi, lo) = ap_uint<sizeof(L) * 8>(limbs[i]).range(hi - lo, 0);
    }
    return word;
}

// ----- popcount -------------------------------------------------------------------------------

// Bits set in a 64-bit integer (simulation helper): the POPCNT instruction when the compiler
// may use it, else a branch-free bit count (cheaper than libgcc's out-of-line __popcountdi2).
QNNFLOW_INLINE unsigned popcount64(unsigned long long x) {
#if defined(__POPCNT__)
    return __builtin_popcountll(x);
#else
    x = x - ((x >> 1) & 0x5555555555555555ULL);
    x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
    x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
    return unsigned((x * 0x0101010101010101ULL) >> 56);
#endif
}

template <int N>
QNNFLOW_INLINE unsigned popcount(const ap_uint<N>& x) {
#pragma HLS INLINE
    unsigned count = 0;
#if !QNNFLOW_NATIVE_SIM
    for (int i = 0; i < N; i++) {
#pragma HLS UNROLL
        count += x[i];
    }
#else  // simulation speed: 64 bits at a time (same result)
    if (N <= 64) return popcount64(x.to_uint64() & (N >= 64 ? ~0ULL : (1ULL << (N % 64)) - 1));
    for (int lo = 0; lo < N; lo += 64) {
        const int hi = (lo + 64 > N ? N : lo + 64) - 1;
        count += popcount64(ap_uint<64>(x.range(hi, lo)).to_uint64());
    }
#endif
    return count;
}

// ----- AXI-Stream words -------------------------------------------------------------------
// The top function's ports carry W-bit words (W a multiple of 8) with TKEEP/TSTRB all ones
// and TLAST on the last word of each image.  With Vitis HLS's ap_axi_sdata.h this is
// ap_axiu<W, 0, 0, 0>; otherwise a struct with the same members for simulation.

#ifdef QNNFLOW_HAVE_AP_AXI_SDATA
template <int W>
using axis_word = ap_axiu<W, 0, 0, 0>;
#else
template <int W>
struct axis_word {
    ap_uint<W> data;
    ap_uint<W / 8> keep;
    ap_uint<W / 8> strb;
    ap_uint<1> last;
};
#endif

// ----- re-packing a bit stream ------------------------------------------------------------
// IN_WORDS words of IN_W bits -> OUT_WORDS words of OUT_W bits per image, the same bits in the
// same order (word 0's bit 0 first): width converters between kernels, and the port adapters
// between the AXI-Stream ports and the first and last kernel.  Input bits past OUT_WORDS x OUT_W
// (a port word's padding) are dropped; output bits past IN_WORDS x IN_W are zeros.  A buffer of
// IN_W + OUT_W bits: each iteration writes a word when OUT_W bits are held (or the input is
// exhausted) and reads one when fewer than OUT_W remain, so one image takes
// max(IN_WORDS, OUT_WORDS) + 1 iterations (hls/nodes/cost.py repack_cycles, repack_luts).

template <int W>
QNNFLOW_INLINE ap_uint<W> word_data(const ap_uint<W>& word) {
    return word;
}
template <int W>
QNNFLOW_INLINE ap_uint<W> word_data(const axis_word<W>& word) {
    return word.data;
}
template <int W>
QNNFLOW_INLINE void put_word(hls::stream<ap_uint<W> >& out, const ap_uint<W>& data, bool) {
    out.write(data);
}
template <int W>
QNNFLOW_INLINE void put_word(hls::stream<axis_word<W> >& out, const ap_uint<W>& data, bool last) {
    axis_word<W> word;
    word.data = data;
    word.keep = -1;
    word.strb = -1;
    word.last = last;
    out.write(word);
}

template <int IN_W, int OUT_W, unsigned IN_WORDS, unsigned OUT_WORDS, class In, class Out>
void repack(hls::stream<In>& in, hls::stream<Out>& out) {
    ap_uint<IN_W + OUT_W> buffer = 0;
    unsigned have = 0, reads = 0, writes = 0;
    for (unsigned i = 0; i < IN_WORDS + OUT_WORDS; i++) {
#pragma HLS PIPELINE II=1
        if (writes == OUT_WORDS) break;
        if (have >= unsigned(OUT_W) || reads == IN_WORDS) {
            put_word<OUT_W>(out, ap_uint<OUT_W>(buffer.range(OUT_W - 1, 0)), writes == OUT_WORDS - 1);
            buffer >>= OUT_W;
            have = have >= unsigned(OUT_W) ? have - OUT_W : 0;
            writes++;
        }
        if (have < unsigned(OUT_W) && reads < IN_WORDS) {
            const ap_uint<IN_W + OUT_W> word = ap_uint<IN_W>(word_data<IN_W>(in.read()));
            buffer |= word << have;
            have += IN_W;
            reads++;
        }
    }
}

}  // namespace qnnflow

// ----- stream taps (C simulation only) --------------------------------------------------------
// QNNFLOW_TAP(stream, "name") appends the words a kernel wrote for the current image to
// $QNNFLOW_TAP_DIR/name.bin (ceil(W/8) little-endian bytes per word) and puts them back.
// C simulation runs the processes of a DATAFLOW region one after the other, so the stream
// then holds the kernel's whole output for the image.  Without QNNFLOW_TAP_STREAMS (and in
// synthesis) the macro is empty.
#if defined(QNNFLOW_TAP_STREAMS) && !defined(__SYNTHESIS__)
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace qnnflow {
template <int W>
void tap_stream(hls::stream<ap_uint<W> >& s, const char* name) {
    std::vector<ap_uint<W> > words;
    while (!s.empty()) words.push_back(s.read());
    const char* dir = std::getenv("QNNFLOW_TAP_DIR");
    std::string path = std::string(dir ? dir : ".") + "/" + name + ".bin";
    std::FILE* f = std::fopen(path.c_str(), "ab");
    if (!f) {
        std::fprintf(stderr, "qnnflow tap: cannot append to %s\n", path.c_str());
        std::exit(2);
    }
    for (size_t k = 0; k < words.size(); k++) {
        ap_uint<(W + 7) / 8 * 8> padded = words[k];
        for (int b = 0; b < (W + 7) / 8; b++) std::fputc(int(padded.range(8 * b + 7, 8 * b)), f);
        s.write(words[k]);
    }
    std::fclose(f);
}
}  // namespace qnnflow
#define QNNFLOW_TAP(s, name) ::qnnflow::tap_stream(s, name)
#else
#define QNNFLOW_TAP(s, name)
#endif

#endif  // QNNFLOW_STREAMS_HPP
