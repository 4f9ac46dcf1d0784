// MVAU: matrix-vector-activation unit (qnnflow/hls/nodes/mvau.py).
//
// For each of C::VECS input vectors of MW elements: acc[n] = sum_k x[k] * W[k][n] for the MH
// outputs n (binaryXnorMode: acc[n] = popcount(XNOR(x, W[:, n])) over bits standing for
// -1/+1), then out[n] = ACT_VAL + #{t : acc[n] >= T[n][t]} with thresholds, else acc[n].
//
// Folding: PE outputs are computed in parallel, SIMD inputs per cycle; output n belongs to
// PE n % PE at local row n / PE.  The input stream carries SIMD elements per word (MW/SIMD
// words per vector), the output stream PE elements per word (MH/PE words per vector).
// One loop iteration per (output fold, input fold) pair: II=1, MW*MH/(SIMD*PE) cycles per vector.
//
// C is a configuration struct (generated per layer):
//   enum { MW, MH, SIMD, PE, VECS, WMEM = MW*MH/(SIMD*PE), WLIMBS, TMEM = MH/PE, NT, TSLOTS = NT,
//          XNOR, HAS_ACT, ACT_VAL, DSP };  DSP: lane products in DSP slices, else in fabric
//   typedef ... in_t, w_t, out_t;   element types (qnnflow::Int<B, S> / Bipolar)
//   typedef ... acc_t;              ap_int<A> / ap_uint<A>
//   typedef ... thr_t;              ap_int<T> holding every threshold
//   typedef ... wmem_t, tmem_t;     POD types of the weight limbs / thresholds
// weights[pe][nf * SF + sf] holds the SIMD weights of inputs sf*SIMD.. for output nf*PE + pe,
// element s at bits [s*wbits, (s+1)*wbits) of the word its WLIMBS limbs form (see
// join_limbs); thresholds[pe][nf][0..NT-1] ascending (without activation: TMEM = TSLOTS = 1,
// NT = 0, and mvau_no_thresholds<C>::table stands in).  vector[MW/SIMD] holds the current input
// vector for the MH/PE output folds (a memory the node's cost model counts; declared by the caller
// so that the parameter header shows every memory of the layer).
//
// C simulation (QNNFLOW_NATIVE_SIM, see streams.hpp) computes the same values on native
// integers: lanes, products and the accumulator when it fits 63 bits (every partial sum lies
// within the accumulator's range, which Python checks against the weights).
#ifndef QNNFLOW_MVAU_HPP
#define QNNFLOW_MVAU_HPP

#include <type_traits>

#include "streams.hpp"

namespace qnnflow {

// Value types of one layer: exact ap types, or native integers in C simulation.
template <class C, bool NATIVE = QNNFLOW_NATIVE_SIM && (C::acc_t::width <= 63) && (C::in_t::bits <= 32) &&
                                 (C::w_t::bits <= 32)>
struct mvau_types {
    enum { native = 0 };
    typedef typename C::acc_t acc_type;
    typedef typename C::in_t::value_t lane_type;
    typedef typename C::thr_t threshold_type;
};
template <class C>
struct mvau_types<C, true> {
    enum { native = 1 };
    typedef long long acc_type;
    typedef long long lane_type;
    typedef long long threshold_type;
};

// One cycle's input word, decoded once for all PEs: the word (for XNOR, a bit vector) and its
// SIMD lanes; in native simulation its 64-bit limbs and lanes instead.
template <class C>
struct mvau_input {
    enum { LIMBS = (C::SIMD * C::in_t::bits + 63) / 64 };
    ap_uint<C::SIMD * C::in_t::bits> word;
    typename mvau_types<C>::lane_type lanes[C::SIMD];
#if QNNFLOW_NATIVE_SIM
    unsigned long long limbs[LIMBS];
#endif
};

template <class C>
QNNFLOW_INLINE void mvau_decode(const ap_uint<C::SIMD * C::in_t::bits>& x, mvau_input<C>& input) {
#pragma HLS INLINE
#if QNNFLOW_NATIVE_SIM
    if (mvau_types<C>::native) {
        enum { BITS = C::SIMD * C::in_t::bits };
        if (BITS <= 64) {
            input.limbs[0] = x.to_uint64();
        } else {
            for (int k = 0; k < mvau_input<C>::LIMBS; k++) {
                const int hi = (64 * k + 64 > BITS ? BITS : 64 * k + 64) - 1;
                input.limbs[k] = ap_uint<64>(x.range(hi, 64 * k)).to_uint64();
            }
        }
        if (!C::XNOR)
            for (unsigned s = 0; s < C::SIMD; s++) input.lanes[s] = limb_lane_native<typename C::in_t>(input.limbs, s);
        return;
    }
#endif
    input.word = x;
    if (C::XNOR) return;
    for (unsigned s = 0; s < C::SIMD; s++) {
#pragma HLS UNROLL
        input.lanes[s] = get_lane<typename C::in_t>(x, s);
    }
}

// One lane's product, bound to DSP slices or to fabric as the node's resType (and the cost
// model) chose; without the binding Vitis HLS picks by itself.  A pragma cannot take a
// template argument, hence two functions; the one not selected by C::DSP is dead code.
template <class A, class B>
QNNFLOW_INLINE auto lane_product_dsp(const A& a, const B& b) -> decltype(a * b) {
#pragma HLS INLINE
    const decltype(a * b) product = a * b;
#pragma HLS BIND_OP variable=product op=mul impl=dsp
    return product;
}

template <class A, class B>
QNNFLOW_INLINE auto lane_product_fabric(const A& a, const B& b) -> decltype(a * b) {
#pragma HLS INLINE
    const decltype(a * b) product = a * b;
#pragma HLS BIND_OP variable=product op=mul impl=fabric
    return product;
}

// One PE's contribution for one cycle: SIMD products (or agreeing bits) summed.
template <class C>
QNNFLOW_INLINE typename mvau_types<C>::acc_type mvau_dot(const mvau_input<C>& input,
                                                         const typename C::wmem_t (&weights)[C::WLIMBS]) {
#pragma HLS INLINE
    typedef typename mvau_types<C>::acc_type acc_type;
    acc_type sum = 0;
#if QNNFLOW_NATIVE_SIM
    if (mvau_types<C>::native) {
        if (C::XNOR) {  // weight words of more than 64 bits are 64-bit limbs, like the input's
            for (int k = 0; k < mvau_input<C>::LIMBS; k++) {
                const int bits = (64 * k + 64 > C::SIMD ? C::SIMD - 64 * k : 64);
                const unsigned long long mask = bits >= 64 ? ~0ULL : ((1ULL << bits) - 1);
                const unsigned long long w = C::WLIMBS == 1 ? (unsigned long long)weights[0] : (unsigned long long)weights[k];
                sum += popcount64(~(input.limbs[k] ^ w) & mask);
            }
        } else {
            for (unsigned s = 0; s < C::SIMD; s++) sum += input.lanes[s] * limb_lane_native<typename C::w_t>(weights, s);
        }
        return sum;
    }
#endif
    const ap_uint<C::SIMD * C::w_t::bits> w = join_limbs<C::SIMD * C::w_t::bits>(weights);
    if (C::XNOR) {
        ap_uint<C::SIMD> agree = ~(ap_uint<C::SIMD>(input.word) ^ ap_uint<C::SIMD>(w));
        sum = popcount<C::SIMD>(agree);
    } else {
        for (unsigned s = 0; s < C::SIMD; s++) {
#pragma HLS UNROLL
            const typename C::w_t::value_t weight = get_lane<typename C::w_t>(w, s);
            if (C::DSP) {
                sum += lane_product_dsp(input.lanes[s], weight);
            } else {
                sum += lane_product_fabric(input.lanes[s], weight);
            }
        }
    }
    return sum;
}

// ACT_VAL + the number of thresholds acc reaches (thresholds ascending, but order does not matter).
template <class C>
QNNFLOW_INLINE int mvau_activation(const typename mvau_types<C>::acc_type& acc,
                                   const typename C::tmem_t (&thresholds)[C::TSLOTS]) {
#pragma HLS INLINE
    int count = 0;
    for (unsigned t = 0; t < C::NT; t++) {
#pragma HLS UNROLL
        const typename mvau_types<C>::threshold_type threshold = thresholds[t];
        count += (acc >= threshold) ? 1 : 0;
    }
    return int(C::ACT_VAL) + count;
}

// The thresholds argument of a layer without activation (never read).
template <class C>
struct mvau_no_thresholds {
    static const typename C::tmem_t table[C::PE][1][1];
};
template <class C>
const typename C::tmem_t mvau_no_thresholds<C>::table[C::PE][1][1] = {};

// The output word of PE sums: each through its thresholds of row nf with an activation, else as is.
template <class C, class A>
QNNFLOW_INLINE ap_uint<C::PE * C::out_t::bits> mvau_output(const A (&acc)[C::PE],
                                                          const typename C::tmem_t thresholds[C::PE][C::TMEM][C::TSLOTS],
                                                          unsigned nf) {
#pragma HLS INLINE
    ap_uint<C::PE * C::out_t::bits> o = 0;
    for (unsigned pe = 0; pe < C::PE; pe++) {
#pragma HLS UNROLL
        if (C::HAS_ACT) {
            set_lane<typename C::out_t>(o, pe, mvau_activation<C>(acc[pe], thresholds[pe][C::HAS_ACT ? nf : 0]));
        } else {
            set_lane<typename C::out_t>(o, pe, acc[pe]);
        }
    }
    return o;
}

template <class C>
void mvau(hls::stream<ap_uint<C::SIMD * C::in_t::bits> >& in, hls::stream<ap_uint<C::PE * C::out_t::bits> >& out,
          const typename C::wmem_t weights[C::PE][C::WMEM][C::WLIMBS],
          const typename C::tmem_t thresholds[C::PE][C::TMEM][C::TSLOTS],
          ap_uint<C::SIMD * C::in_t::bits> vector[C::MW / C::SIMD]) {
    typedef ap_uint<C::SIMD * C::in_t::bits> in_word;
    typedef typename mvau_types<C>::acc_type acc_type;
    enum { SF = C::MW / C::SIMD, NF = C::MH / C::PE };

    acc_type acc[C::PE];
#pragma HLS ARRAY_PARTITION variable=acc complete dim=1
    mvau_input<C> input;
#pragma HLS ARRAY_PARTITION variable=input.lanes complete dim=1

    unsigned sf = 0, nf = 0, tile = 0;
    for (unsigned i = 0; i < unsigned(C::VECS) * NF * SF; i++) {
#pragma HLS PIPELINE II=1
        in_word x;
        if (nf == 0) {
            x = in.read();
            vector[sf] = x;
        } else {
            x = vector[sf];
        }
        mvau_decode<C>(x, input);
        for (unsigned pe = 0; pe < C::PE; pe++) {
#pragma HLS UNROLL
            const acc_type base = (sf == 0) ? acc_type(0) : acc[pe];
            acc[pe] = base + mvau_dot<C>(input, weights[pe][tile]);
        }
        if (sf == SF - 1) {
            out.write(mvau_output<C>(acc, thresholds, nf));
            sf = 0;
            if (nf == NF - 1) {
                nf = 0;
                tile = 0;
            } else {
                nf++;
                tile++;
            }
        } else {
            sf++;
            tile++;
        }
    }
}

}  // namespace qnnflow

#endif  // QNNFLOW_MVAU_HPP
