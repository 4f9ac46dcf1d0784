// Streaming window-sum pool (SumPool, qnnflow/hls/nodes/sum_pool.py): an average pool without
// its 1/(KH*KW), which streamlining moves into the next thresholds.  Any kernel and stride, no
// padding, floor mode, as maxpool.hpp (whose window walk it shares).
//
// In: an H x W image of CH channels (NHWC, CH/PE words per pixel) of in_t.  Out: OH x OW pixels,
// out(oy, ox)[c] = sum over the KH x KW window at (oy*SH, ox*SW) of x[c], in out_t (wide enough
// for KH*KW times the input's range).
//
// C: enum { H, W, CH, PE, KH, KW, SH, SW, OH, OW };  typedef ... in_t, out_t;
#ifndef QNNFLOW_SUM_POOL_HPP
#define QNNFLOW_SUM_POOL_HPP

#include "maxpool.hpp"

namespace qnnflow {

template <class In, class Acc, unsigned PE>
struct SumReduce {
    typedef In in_t;
    typedef Acc acc_t;
    static ap_uint<PE * Acc::bits> init() { return 0; }
    static ap_uint<PE * Acc::bits> add(const ap_uint<PE * Acc::bits>& s, const ap_uint<PE * In::bits>& v) {
#pragma HLS INLINE
        ap_uint<PE * Acc::bits> sum = 0;
        for (unsigned pe = 0; pe < PE; pe++) {
#pragma HLS UNROLL
            const typename Acc::value_t lane = get_lane<Acc>(s, pe) + get_lane<In>(v, pe);
            set_lane<Acc>(sum, pe, lane);
        }
        return sum;
    }
};

template <class C>
void sum_pool(hls::stream<ap_uint<C::PE * C::in_t::bits> >& in, hls::stream<ap_uint<C::PE * C::out_t::bits> >& out,
              ap_uint<C::PE * C::out_t::bits> running[(C::KH + C::SH - 1) / C::SH]
                                                     [C::KH == 1 ? (C::KW + C::SW - 1) / C::SW : C::OW][C::CH / C::PE]) {
    pool_windows<C, SumReduce<typename C::in_t, typename C::out_t, C::PE> >(in, out, running);
}

}  // namespace qnnflow

#endif  // QNNFLOW_SUM_POOL_HPP
