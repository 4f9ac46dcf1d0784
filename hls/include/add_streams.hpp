// Join (AddStreams, qnnflow/hls/nodes/add_streams.py): out = in0 + in1, PE lanes a word, read
// one word from each input per cycle.  out_t is wide enough for every sum (the node checks it).
//
// C: enum { WORDS, PE };  typedef ... in0_t, in1_t, out_t;
#ifndef QNNFLOW_ADD_STREAMS_HPP
#define QNNFLOW_ADD_STREAMS_HPP

#include "streams.hpp"

namespace qnnflow {

template <class C>
void add_streams(hls::stream<ap_uint<C::PE * C::in0_t::bits> >& in0,
                 hls::stream<ap_uint<C::PE * C::in1_t::bits> >& in1,
                 hls::stream<ap_uint<C::PE * C::out_t::bits> >& out) {
    for (unsigned i = 0; i < C::WORDS; i++) {
#pragma HLS PIPELINE II=1
        const ap_uint<C::PE * C::in0_t::bits> a = in0.read();
        const ap_uint<C::PE * C::in1_t::bits> b = in1.read();
        ap_uint<C::PE * C::out_t::bits> sum = 0;
        for (unsigned pe = 0; pe < C::PE; pe++) {
#pragma HLS UNROLL
            const typename C::out_t::value_t lane = typename C::out_t::value_t(get_lane<typename C::in0_t>(a, pe)) +
                                                    typename C::out_t::value_t(get_lane<typename C::in1_t>(b, pe));
            set_lane<typename C::out_t>(sum, pe, lane);
        }
        out.write(sum);
    }
}

}  // namespace qnnflow

#endif  // QNNFLOW_ADD_STREAMS_HPP
