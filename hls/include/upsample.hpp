// Nearest-neighbour upsampling by integer factors (UpsampleNearestNeighbour,
// qnnflow/hls/nodes/upsample.py).
//
// In: an H x W image of CH channels (NHWC, CH/SIMD words per pixel).  Out: (H*SH) x (W*SW) pixels,
// out(y, x) = in(y / SH, x / SW).  Each input row is read while its first copy is written (the
// first of its SW copies of each pixel) and kept in the caller's row memory for the other SH - 1
// copies: one output word per iteration, (H*SH) * (W*SW) * CF iterations at II=1.
//
// row[W * CF]: the caller's memory.
//
// C: enum { H, W, CH, SIMD, SH, SW };  typedef ... elem_t;
#ifndef QNNFLOW_UPSAMPLE_HPP
#define QNNFLOW_UPSAMPLE_HPP

#include "streams.hpp"

namespace qnnflow {

template <class C>
void upsample_nearest(hls::stream<ap_uint<C::SIMD * C::elem_t::bits> >& in,
                      hls::stream<ap_uint<C::SIMD * C::elem_t::bits> >& out,
                      ap_uint<C::SIMD * C::elem_t::bits> row[C::W * (C::CH / C::SIMD)]) {
    typedef ap_uint<C::SIMD * C::elem_t::bits> word;
    enum { CF = C::CH / C::SIMD };
    unsigned ry = 0, x = 0, rx = 0, cf = 0;  // copy of the row, input column, copy of the pixel, channel group
    for (unsigned i = 0; i < unsigned(C::H) * C::SH * C::W * C::SW * CF; i++) {
#pragma HLS PIPELINE II=1
        const unsigned at = x * CF + cf;
        word v;
        if (ry == 0 && rx == 0) {
            v = in.read();
            row[at] = v;
        } else {
            v = row[at];
        }
        out.write(v);
        if (cf == CF - 1) {
            cf = 0;
            if (rx == C::SW - 1) {
                rx = 0;
                if (x == C::W - 1) {
                    x = 0;
                    ry = ry == C::SH - 1 ? 0 : ry + 1;
                } else {
                    x++;
                }
            } else {
                rx++;
            }
        } else {
            cf++;
        }
    }
}

}  // namespace qnnflow

#endif  // QNNFLOW_UPSAMPLE_HPP
