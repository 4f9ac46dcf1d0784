// Channel concat (StreamingConcat, qnnflow/hls/nodes/streaming_concat.py): per pixel, WORDS0 words of
// input 0 then WORDS1 words of input 1, each lane re-encoded as out_t (which holds both inputs' ranges).
//
// C: enum { PIXELS, WORDS0, WORDS1, PE };  typedef ... in0_t, in1_t, out_t;
#ifndef QNNFLOW_STREAMING_CONCAT_HPP
#define QNNFLOW_STREAMING_CONCAT_HPP

#include "streams.hpp"

namespace qnnflow {

template <class In, class Out, unsigned PE>
QNNFLOW_INLINE ap_uint<PE * Out::bits> recode(const ap_uint<PE * In::bits>& word) {
#pragma HLS INLINE
    ap_uint<PE * Out::bits> out = 0;
    for (unsigned pe = 0; pe < PE; pe++) {
#pragma HLS UNROLL
        set_lane<Out>(out, pe, typename Out::value_t(get_lane<In>(word, pe)));
    }
    return out;
}

template <class C>
void streaming_concat(hls::stream<ap_uint<C::PE * C::in0_t::bits> >& in0,
                      hls::stream<ap_uint<C::PE * C::in1_t::bits> >& in1,
                      hls::stream<ap_uint<C::PE * C::out_t::bits> >& out) {
    unsigned word = 0;
    for (unsigned i = 0; i < unsigned(C::PIXELS) * (C::WORDS0 + C::WORDS1); i++) {
#pragma HLS PIPELINE II=1
        if (word < unsigned(C::WORDS0)) {
            out.write(recode<typename C::in0_t, typename C::out_t, C::PE>(in0.read()));
        } else {
            out.write(recode<typename C::in1_t, typename C::out_t, C::PE>(in1.read()));
        }
        word = word == unsigned(C::WORDS0 + C::WORDS1) - 1 ? 0 : word + 1;
    }
}

}  // namespace qnnflow

#endif  // QNNFLOW_STREAMING_CONCAT_HPP
