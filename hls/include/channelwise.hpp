// Per-channel integer multiply-add (ChannelwiseOp, qnnflow/hls/nodes/channelwise.py).
//
// out[c] = params[c][0] * x[c] + params[c][1] for C::VECS vectors of CH channels, PE channels per
// word and cycle.  params[pe][cf][0..1] holds channel cf*PE + pe (multiplier, addend); the
// product and sum are formed in acc_t, wide enough for every value they can take.
//
// C: enum { CH, PE, VECS };  typedef ... in_t, out_t, acc_t, pmem_t;
#ifndef QNNFLOW_CHANNELWISE_HPP
#define QNNFLOW_CHANNELWISE_HPP

#include "streams.hpp"

namespace qnnflow {

template <class C>
void channelwise(hls::stream<ap_uint<C::PE * C::in_t::bits> >& in, hls::stream<ap_uint<C::PE * C::out_t::bits> >& out,
                 const typename C::pmem_t params[C::PE][C::CH / C::PE][2]) {
    enum { CF = C::CH / C::PE };
    unsigned cf = 0;
    for (unsigned i = 0; i < unsigned(C::VECS) * CF; i++) {
#pragma HLS PIPELINE II=1
        const ap_uint<C::PE * C::in_t::bits> x = in.read();
        ap_uint<C::PE * C::out_t::bits> o = 0;
        for (unsigned pe = 0; pe < C::PE; pe++) {
#pragma HLS UNROLL
            const typename C::acc_t v = get_lane<typename C::in_t>(x, pe);
            const typename C::acc_t mul = params[pe][cf][0];
            const typename C::acc_t add = params[pe][cf][1];
            const typename C::acc_t r = mul * v + add;
            set_lane<typename C::out_t>(o, pe, r);
        }
        out.write(o);
        cf = (cf == CF - 1) ? 0 : cf + 1;
    }
}

}  // namespace qnnflow

#endif  // QNNFLOW_CHANNELWISE_HPP
