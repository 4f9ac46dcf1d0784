// Feature-map padding (FMPadding, qnnflow/hls/nodes/padding.py).
//
// In: an H x W image of CH channels (NHWC, CH/SIMD words per pixel).  Out: the image with
// TOP/LEFT/BOTTOM/RIGHT rows and columns of PAD_VALUE around it; one output word per cycle.
//
// C: enum { H, W, CH, SIMD, TOP, LEFT, BOTTOM, RIGHT, PAD_VALUE };  typedef ... elem_t;
#ifndef QNNFLOW_PADDING_HPP
#define QNNFLOW_PADDING_HPP

#include "streams.hpp"

namespace qnnflow {

template <class C>
void fm_padding(hls::stream<ap_uint<C::SIMD * C::elem_t::bits> >& in,
                hls::stream<ap_uint<C::SIMD * C::elem_t::bits> >& out) {
    typedef ap_uint<C::SIMD * C::elem_t::bits> word;
    enum { CF = C::CH / C::SIMD, OH = C::H + C::TOP + C::BOTTOM, OW = C::W + C::LEFT + C::RIGHT };
    const word pad = splat<typename C::elem_t, C::SIMD>(int(C::PAD_VALUE));
    unsigned y = 0, x = 0, cf = 0;
    for (unsigned i = 0; i < unsigned(OH) * OW * CF; i++) {
#pragma HLS PIPELINE II=1
        const bool inside = y >= unsigned(C::TOP) && y < unsigned(C::TOP + C::H) && x >= unsigned(C::LEFT) &&
                            x < unsigned(C::LEFT + C::W);
        if (inside) {
            out.write(in.read());
        } else {
            out.write(pad);
        }
        if (cf == CF - 1) {
            cf = 0;
            if (x == OW - 1) {
                x = 0;
                y++;
            } else {
                x++;
            }
        } else {
            cf++;
        }
    }
}

}  // namespace qnnflow

#endif  // QNNFLOW_PADDING_HPP
