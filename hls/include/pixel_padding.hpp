// Pixel padding (FMPaddingPixel, qnnflow/hls/nodes/pixel_padding.py): SH-1 zero rows and SW-1 zero
// columns between the pixels of an image, as a transposed convolution's stride needs.
//
// In: an H x W image of CH channels (NHWC, CH/SIMD words per pixel).  Out: OH x OW pixels with
// OH = (H-1)*SH + 1, OW = (W-1)*SW + 1; pixel (y*SH, x*SW) is input pixel (y, x), every other
// pixel is 0.  One output word per iteration, OH*OW*CF iterations at II=1.
//
// C: enum { H, W, CH, SIMD, SH, SW };  typedef ... elem_t;
#ifndef QNNFLOW_PIXEL_PADDING_HPP
#define QNNFLOW_PIXEL_PADDING_HPP

#include "streams.hpp"

namespace qnnflow {

template <class C>
void pixel_padding(hls::stream<ap_uint<C::SIMD * C::elem_t::bits> >& in,
                   hls::stream<ap_uint<C::SIMD * C::elem_t::bits> >& out) {
    typedef ap_uint<C::SIMD * C::elem_t::bits> word;
    enum { CF = C::CH / C::SIMD, OH = (C::H - 1) * C::SH + 1, OW = (C::W - 1) * C::SW + 1 };
    const word zero = splat<typename C::elem_t, C::SIMD>(0);
    unsigned x = 0, cf = 0, ry = 0, rx = 0;  // output column and channel group; offsets within the stride
    for (unsigned i = 0; i < unsigned(OH) * OW * CF; i++) {
#pragma HLS PIPELINE II=1
        if (ry == 0 && rx == 0) {
            out.write(in.read());
        } else {
            out.write(zero);
        }
        if (cf == CF - 1) {
            cf = 0;
            if (x == OW - 1) {
                x = 0;
                rx = 0;
                ry = ry == C::SH - 1 ? 0 : ry + 1;
            } else {
                x++;
                rx = rx == C::SW - 1 ? 0 : rx + 1;
            }
        } else {
            cf++;
        }
    }
}

}  // namespace qnnflow

#endif  // QNNFLOW_PIXEL_PADDING_HPP
