// Global sum pool (GlobalAccPool, qnnflow/hls/nodes/global_acc_pool.py).
//
// In: an image of C::PIXELS pixels of CH channels (NHWC, CH/PE words per pixel).  Out: one pixel,
// out[c] = sum over the pixels of x[c], in out_t (wide enough for PIXELS times the input's range).
// The 1/PIXELS of an average pool is a scale that streamlining moves downstream.
//
// sums[CF]: the caller's memory, one word of PE running sums per channel group.
//
// C: enum { PIXELS, CH, PE };  typedef ... in_t, out_t;
#ifndef QNNFLOW_GLOBAL_ACC_POOL_HPP
#define QNNFLOW_GLOBAL_ACC_POOL_HPP

#include "streams.hpp"

namespace qnnflow {

template <class C>
void global_acc_pool(hls::stream<ap_uint<C::PE * C::in_t::bits> >& in, hls::stream<ap_uint<C::PE * C::out_t::bits> >& out,
                     ap_uint<C::PE * C::out_t::bits> sums[C::CH / C::PE]) {
    enum { CF = C::CH / C::PE };
    unsigned pixel = 0, cf = 0;
    for (unsigned i = 0; i < unsigned(C::PIXELS) * CF; i++) {
#pragma HLS PIPELINE II=1
        const ap_uint<C::PE * C::in_t::bits> x = in.read();
        const ap_uint<C::PE * C::out_t::bits> previous = sums[cf];
        ap_uint<C::PE * C::out_t::bits> updated = 0;
        for (unsigned pe = 0; pe < C::PE; pe++) {
#pragma HLS UNROLL
            const typename C::out_t::value_t base = pixel == 0 ? typename C::out_t::value_t(0)
                                                               : get_lane<typename C::out_t>(previous, pe);
            const typename C::out_t::value_t sum = base + get_lane<typename C::in_t>(x, pe);
            set_lane<typename C::out_t>(updated, pe, sum);
        }
        if (pixel == C::PIXELS - 1) {
            out.write(updated);
        } else {
            sums[cf] = updated;
        }
        if (cf == CF - 1) {
            cf = 0;
            pixel++;
        } else {
            cf++;
        }
    }
}

}  // namespace qnnflow

#endif  // QNNFLOW_GLOBAL_ACC_POOL_HPP
