// Top-K label selection (LabelSelect, qnnflow/hls/nodes/label_select.py).
//
// In: LABELS values, PE per word.  Out: the indices of the K largest values, largest first,
// one index per word; equal values keep the lower index first (ONNX TopK order).  A sorted
// list of K (value, index) registers takes each value by insertion: behind every entry that
// is at least as large, so earlier (lower) indices win ties.
//
// C: enum { LABELS, PE, K };  typedef ... in_t, out_t;
#ifndef QNNFLOW_LABEL_SELECT_HPP
#define QNNFLOW_LABEL_SELECT_HPP

#include "streams.hpp"

namespace qnnflow {

template <class C>
void label_select(hls::stream<ap_uint<C::PE * C::in_t::bits> >& in, hls::stream<ap_uint<C::out_t::bits> >& out) {
    typedef typename C::in_t::value_t value_t;
    value_t best[C::K];
    unsigned index[C::K];
    bool valid[C::K];
#pragma HLS ARRAY_PARTITION variable=best complete
#pragma HLS ARRAY_PARTITION variable=index complete
#pragma HLS ARRAY_PARTITION variable=valid complete
    for (unsigned k = 0; k < C::K; k++) {
#pragma HLS UNROLL
        valid[k] = false;
        best[k] = 0;
        index[k] = 0;
    }
    for (unsigned w = 0; w < C::LABELS / C::PE; w++) {
#pragma HLS PIPELINE II=1
        const ap_uint<C::PE * C::in_t::bits> x = in.read();
        for (unsigned pe = 0; pe < C::PE; pe++) {
#pragma HLS UNROLL
            const value_t v = get_lane<typename C::in_t>(x, pe);
            unsigned pos = 0;  // entries at least as large as v (a prefix of the sorted list)
            for (unsigned k = 0; k < C::K; k++) {
#pragma HLS UNROLL
                pos += (valid[k] && best[k] >= v) ? 1 : 0;
            }
            for (int k = C::K - 1; k >= 0; k--) {
#pragma HLS UNROLL
                if (unsigned(k) > pos) {
                    best[k] = best[k - 1];
                    index[k] = index[k - 1];
                    valid[k] = valid[k - 1];
                } else if (unsigned(k) == pos) {
                    best[k] = v;
                    index[k] = w * C::PE + pe;
                    valid[k] = true;
                }
            }
        }
    }
    for (unsigned k = 0; k < C::K; k++) {
#pragma HLS PIPELINE II=1
        ap_uint<C::out_t::bits> o = 0;
        set_lane<typename C::out_t>(o, 0, index[k]);
        out.write(o);
    }
}

}  // namespace qnnflow

#endif  // QNNFLOW_LABEL_SELECT_HPP
