// Multi-threshold activation (Thresholding, qnnflow/hls/nodes/thresholding.py).
//
// out[c] = ACT_VAL + #{t : x[c] >= T[c][t]} for C::VECS vectors of CH channels, PE channels
// per word and cycle.  thresholds[pe][cf][0..NT-1] holds channel cf*PE + pe, ascending (slots past
// the channel's own thresholds hold a value no input reaches).
//
// C: enum { CH, PE, VECS, NT, ACT_VAL };  typedef ... in_t, out_t, thr_t, tmem_t;
#ifndef QNNFLOW_THRESHOLDING_HPP
#define QNNFLOW_THRESHOLDING_HPP

#include "streams.hpp"

namespace qnnflow {

template <class C>
void thresholding(hls::stream<ap_uint<C::PE * C::in_t::bits> >& in, hls::stream<ap_uint<C::PE * C::out_t::bits> >& out,
                  const typename C::tmem_t thresholds[C::PE][C::CH / C::PE][C::NT]) {
    enum { CF = C::CH / C::PE };
    unsigned cf = 0;
    for (unsigned i = 0; i < unsigned(C::VECS) * CF; i++) {
#pragma HLS PIPELINE II=1
        const ap_uint<C::PE * C::in_t::bits> x = in.read();
        ap_uint<C::PE * C::out_t::bits> o = 0;
        for (unsigned pe = 0; pe < C::PE; pe++) {
#pragma HLS UNROLL
            const typename C::in_t::value_t v = get_lane<typename C::in_t>(x, pe);
            int count = 0;
            for (unsigned t = 0; t < C::NT; t++) {
#pragma HLS UNROLL
                typename C::thr_t threshold = thresholds[pe][cf][t];
                count += (v >= threshold) ? 1 : 0;
            }
            set_lane<typename C::out_t>(o, pe, int(C::ACT_VAL) + count);
        }
        out.write(o);
        cf = (cf == CF - 1) ? 0 : cf + 1;
    }
}

}  // namespace qnnflow

#endif  // QNNFLOW_THRESHOLDING_HPP
