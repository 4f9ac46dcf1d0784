// Sliding window unit (ConvolutionInputGenerator, qnnflow/hls/nodes/sliding_window.py).
//
// In: an H x W image of CH channels, NHWC, CH/SIMD words per pixel.  Out: for each output
// pixel (oy, ox) its KH x KW window, elements ordered (ky, kx, ch) with ch fastest, as
// KH*KW*CH/SIMD words; window (oy, ox) starts at input (oy*SH, ox*SW).
//
// A line buffer of KH + SH rows: KH rows feed the windows of output row oy while the SH rows
// of output row oy+1 arrive.  After the first KH rows, each output row takes
// max(OW*KH*KW*CF, SH*W*CF) iterations at II=1, reading and writing in the same loop.
// The line buffer is the caller's: the generated per-node process declares it, one memory per
// row, bound to block RAM, LUTRAM or UltraRAM as the node's ram_style says.
// Windows carry the KCF channel words listed in kept[] (ascending; all CH/SIMD of them unless the
// layer was pruned): the words of pruned channels are buffered but never written out.
//
// C: enum { KH, KW, CH, H, W, OH, OW, SH, SW, SIMD, KCF };  typedef ... elem_t;
#ifndef QNNFLOW_SLIDING_WINDOW_HPP
#define QNNFLOW_SLIDING_WINDOW_HPP

#include "streams.hpp"

namespace qnnflow {

template <class C>
void sliding_window(hls::stream<ap_uint<C::SIMD * C::elem_t::bits> >& in,
                    hls::stream<ap_uint<C::SIMD * C::elem_t::bits> >& out,
                    ap_uint<C::SIMD * C::elem_t::bits> rows[C::KH + C::SH][C::W * (C::CH / C::SIMD)],
                    const unsigned kept[C::KCF]) {
    typedef ap_uint<C::SIMD * C::elem_t::bits> word;
    enum { CF = C::CH / C::SIMD, ROW = C::W * CF, NB = C::KH + C::SH };
    enum { WRITES = C::OW * C::KH * C::KW * C::KCF };
    // input row r lives in slot r % NB of rows

    // the first KH rows
    unsigned slot = 0, col = 0;
    for (unsigned i = 0; i < unsigned(C::KH) * ROW; i++) {
#pragma HLS PIPELINE II=1
        rows[slot][col] = in.read();
        if (col == ROW - 1) {
            col = 0;
            slot++;
        } else {
            col++;
        }
    }

    unsigned next_row = C::KH;  // the next input row to arrive, in slot `slot`
    unsigned top = 0;           // slot of input row oy * SH
    for (unsigned oy = 0; oy < C::OH; oy++) {
        // rows arriving during this output row: SH, or the rows left below the last window
        const unsigned left = C::H - next_row;
        const unsigned reads = (left < unsigned(C::SH) ? left : unsigned(C::SH)) * ROW;
        const unsigned iterations = reads > unsigned(WRITES) ? reads : unsigned(WRITES);
        unsigned cf = 0, kx = 0, ky = 0, ox = 0;  // position of the next output word
        unsigned rcol = 0, rslot = slot;          // position of the next input word
        for (unsigned i = 0; i < iterations; i++) {
#pragma HLS PIPELINE II=1
#pragma HLS DEPENDENCE variable=rows inter false
            if (i < unsigned(WRITES)) {
                unsigned y_slot = top + ky;
                if (y_slot >= unsigned(NB)) y_slot -= NB;
                out.write(rows[y_slot][(ox * C::SW + kx) * CF + kept[cf]]);
                if (cf == C::KCF - 1) {
                    cf = 0;
                    if (kx == C::KW - 1) {
                        kx = 0;
                        if (ky == C::KH - 1) {
                            ky = 0;
                            ox++;
                        } else {
                            ky++;
                        }
                    } else {
                        kx++;
                    }
                } else {
                    cf++;
                }
            }
            if (i < reads) {
                rows[rslot][rcol] = in.read();
                if (rcol == ROW - 1) {
                    rcol = 0;
                    rslot = (rslot == NB - 1) ? 0 : rslot + 1;
                } else {
                    rcol++;
                }
            }
        }
        next_row += reads / ROW;
        slot = rslot;
        top += C::SH;
        if (top >= unsigned(NB)) top -= NB;
    }
}

}  // namespace qnnflow

#endif  // QNNFLOW_SLIDING_WINDOW_HPP
