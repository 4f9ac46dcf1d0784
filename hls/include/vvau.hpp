// VVAU: vector-vector-activation unit, a depthwise convolution (qnnflow/hls/nodes/vvau.py).
//
// For each of C::VECS output pixels and each of CH channels: acc[c] = sum_k x[c][k] * W[c][k] over
// the K window positions, then out[c] = ACT_VAL + #{t : acc[c] >= T[c][t]} with thresholds, else
// acc[c].  The input is the depthwise sliding window's stream: a pixel's window elements
// channel-major, (c, k) with k fastest.
//
// Folding: PE channels in parallel, SIMD positions per cycle and channel.  A word holds PE*SIMD
// consecutive window elements: lane pe*SIMD + s is position sf*SIMD + s of channel cf*PE + pe
// (PE > 1 only with SIMD = K, whole windows).  One iteration per (channel fold, position fold):
// II=1, CH*K/(PE*SIMD) cycles per pixel.  The output stream carries PE channels a word.
//
// C is a configuration struct (generated per layer):
//   enum { CH, K, SIMD, PE, VECS, WMEM = CH*K/(PE*SIMD), WLIMBS, TMEM = CH/PE, NT, TSLOTS = NT,
//          HAS_ACT, ACT_VAL, DSP };
//   typedef ... in_t, w_t, out_t, acc_t, thr_t, wmem_t, tmem_t;  as the MVAU's (mvau.hpp)
// weights[pe][cf * K/SIMD + sf] holds positions sf*SIMD.. of channel cf*PE + pe (join_limbs);
// thresholds[pe][cf][0..NT-1] ascending (without activation mvau_no_thresholds<C>::table).
// Lane products and the output word (activation) are the MVAU's.
#ifndef QNNFLOW_VVAU_HPP
#define QNNFLOW_VVAU_HPP

#include "mvau.hpp"

namespace qnnflow {

template <class C>
void vvau(hls::stream<ap_uint<C::PE * C::SIMD * C::in_t::bits> >& in,
          hls::stream<ap_uint<C::PE * C::out_t::bits> >& out, const typename C::wmem_t weights[C::PE][C::WMEM][C::WLIMBS],
          const typename C::tmem_t thresholds[C::PE][C::TMEM][C::TSLOTS]) {
    typedef ap_uint<C::PE * C::SIMD * C::in_t::bits> in_word;
    typedef typename C::acc_t acc_type;
    enum { SF = C::K / C::SIMD, CF = C::CH / C::PE };

    acc_type acc[C::PE];
#pragma HLS ARRAY_PARTITION variable=acc complete dim=1

    unsigned sf = 0, cf = 0, tile = 0;
    for (unsigned i = 0; i < unsigned(C::VECS) * CF * SF; i++) {
#pragma HLS PIPELINE II=1
        const in_word x = in.read();
        for (unsigned pe = 0; pe < C::PE; pe++) {
#pragma HLS UNROLL
            const ap_uint<C::SIMD * C::w_t::bits> w = join_limbs<C::SIMD * C::w_t::bits>(weights[pe][tile]);
            acc_type sum = (sf == 0) ? acc_type(0) : acc[pe];
            for (unsigned s = 0; s < C::SIMD; s++) {
#pragma HLS UNROLL
                const typename C::in_t::value_t lane = get_lane<typename C::in_t>(x, pe * C::SIMD + s);
                const typename C::w_t::value_t weight = get_lane<typename C::w_t>(w, s);
                if (C::DSP) {
                    sum += lane_product_dsp(lane, weight);
                } else {
                    sum += lane_product_fabric(lane, weight);
                }
            }
            acc[pe] = sum;
        }
        if (sf == SF - 1) {
            out.write(mvau_output<C>(acc, thresholds, cf));
            sf = 0;
            cf = (cf == CF - 1) ? 0 : cf + 1;
        } else {
            sf++;
        }
        tile = (tile == C::WMEM - 1) ? 0 : tile + 1;
    }
}

}  // namespace qnnflow

#endif  // QNNFLOW_VVAU_HPP
