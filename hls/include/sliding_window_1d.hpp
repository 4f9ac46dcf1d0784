// 1-D sliding window unit (ConvolutionInputGenerator1D, qnnflow/hls/nodes/sliding_window_1d.py).
//
// In: a row of W pixels of CH channels (a height-1 image), CH/SIMD words per pixel.  Out: for
// each output pixel ox its 1 x KW window, elements ordered (kx, ch) with ch fastest, as
// KW*CH/SIMD words; window ox starts at input pixel ox*SW.
//
// A ring of NB = KW + SW pixels replaces the 2-D unit's KH + SH whole rows, which for a height-1
// image would hold the whole image and write nothing until it had arrived.  Every iteration
// reads one input word when its slot is free (the pixel it overwrites, NB earlier, lies before
// the current window) and writes one output word when that word's pixel has arrived, so reading
// and writing overlap from the first word: about max(W*CF, OW*KW*CF) + 1 iterations at II=1.
//
// ring[NB * CF]: the caller's memory.
//
// C: enum { KW, CH, W, OW, SW, SIMD };  typedef ... elem_t;
#ifndef QNNFLOW_SLIDING_WINDOW_1D_HPP
#define QNNFLOW_SLIDING_WINDOW_1D_HPP

#include "streams.hpp"

namespace qnnflow {

template <class C>
void sliding_window_1d(hls::stream<ap_uint<C::SIMD * C::elem_t::bits> >& in,
                       hls::stream<ap_uint<C::SIMD * C::elem_t::bits> >& out,
                       ap_uint<C::SIMD * C::elem_t::bits> ring[(C::KW + C::SW) * (C::CH / C::SIMD)]) {
    enum { CF = C::CH / C::SIMD, NB = C::KW + C::SW, READS = C::W * CF, WRITES = C::OW * C::KW * CF };
    unsigned read = 0, read_slot = 0;          // input words read; ring slot of the next one
    unsigned written = 0, ox = 0, kx = 0, cf = 0;  // output words written; position of the next one
    for (unsigned i = 0; i < unsigned(READS) + unsigned(WRITES); i++) {
#pragma HLS PIPELINE II=1
#pragma HLS DEPENDENCE variable=ring inter false
        if (read == unsigned(READS) && written == unsigned(WRITES)) break;
        const unsigned pixel = ox * C::SW + kx;  // of the next output word
        const bool can_write = written < unsigned(WRITES) && pixel * CF + cf < read;
        const bool can_read = read < unsigned(READS) && (ox == unsigned(C::OW) || read < (ox * C::SW + NB) * CF);
        if (can_write) {
            out.write(ring[(pixel % NB) * CF + cf]);
            written++;
            if (cf == CF - 1) {
                cf = 0;
                if (kx == C::KW - 1) {
                    kx = 0;
                    ox++;
                } else {
                    kx++;
                }
            } else {
                cf++;
            }
        }
        if (can_read) {
            ring[read_slot] = in.read();
            read++;
            read_slot = read_slot == unsigned(NB * CF) - 1 ? 0 : read_slot + 1;
        }
    }
}

}  // namespace qnnflow

#endif  // QNNFLOW_SLIDING_WINDOW_1D_HPP
