// Sliding window unit (ConvolutionInputGenerator, qnnflow/hls/nodes/sliding_window.py).
//
// In: an H x W image of CH channels, NHWC, CH/SIMD words per pixel.  Out: for each output
// pixel (oy, ox) its KH x KW window, elements ordered (ky, kx, ch) with ch fastest, as
// KH*KW*CH/SIMD words; window (oy, ox) starts at input (oy*SH, ox*SW).
// Depthwise mode (DW=1, for the VVAU): the window elements channel-major, (ch, ky, kx) with kx
// fastest, as CH/SIMD words of SIMD whole windows (SIMD*KH*KW elements).
//
// A line buffer of KH + SH rows: KH rows feed the windows of output row oy while the SH rows
// of output row oy+1 arrive.  After the first KH rows, each output row takes
// max(OW*KH*KW*CF, SH*W*CF) iterations (depthwise: max(OW*CF, SH*W*CF)) at II=1, reading and
// writing in the same loop.  In depthwise mode every row is split into KW banks by pixel column
// (pixel x in bank x % KW), so that the KW columns of a window are read in the same cycle.
// The line buffer is the caller's: the generated per-node process declares it, one memory per
// row and bank, bound to block RAM, LUTRAM or UltraRAM as the node's ram_style says.
// Windows carry the KCF channel words listed in kept[] (ascending; all CH/SIMD of them unless the
// layer was pruned): the words of pruned channels are buffered but never written out.
//
// C: enum { KH, KW, CH, H, W, OH, OW, SH, SW, SIMD, DW, KCF };  typedef ... elem_t;
#ifndef QNNFLOW_SLIDING_WINDOW_HPP
#define QNNFLOW_SLIDING_WINDOW_HPP

#include "streams.hpp"

namespace qnnflow {

template <class C>
struct sliding_window_geometry {
    enum {
        CF = C::CH / C::SIMD,
        BANKS = C::DW ? C::KW : 1,                      // memories per row
        DEPTH = (C::W + BANKS - 1) / BANKS * CF,        // words per bank
        OUT_LANES = C::DW ? C::SIMD * C::KH * C::KW : C::SIMD,
        KX_STEPS = C::DW ? 1 : C::KW,                   // output words per window row and channel fold
        KY_STEPS = C::DW ? 1 : C::KH,
    };
};

template <class C>
void sliding_window(hls::stream<ap_uint<C::SIMD * C::elem_t::bits> >& in,
                    hls::stream<ap_uint<sliding_window_geometry<C>::OUT_LANES * C::elem_t::bits> >& out,
                    ap_uint<C::SIMD * C::elem_t::bits> rows[C::KH + C::SH][sliding_window_geometry<C>::BANKS]
                                                          [sliding_window_geometry<C>::DEPTH],
                    const unsigned kept[C::KCF]) {
    typedef sliding_window_geometry<C> G;
    typedef ap_uint<C::SIMD * C::elem_t::bits> word;
    typedef ap_uint<G::OUT_LANES * C::elem_t::bits> out_word;
    enum { CF = G::CF, ROW = C::W * CF, NB = C::KH + C::SH };
    enum { WRITES = C::OW * G::KY_STEPS * G::KX_STEPS * C::KCF };
    // input row r lives in slot r % NB of rows; its pixel x, channel fold cf in bank x % BANKS at
    // (x / BANKS) * CF + cf

    // the first KH rows
    unsigned slot = 0, col = 0, cfi = 0;
    for (unsigned i = 0; i < unsigned(C::KH) * ROW; i++) {
#pragma HLS PIPELINE II=1
        rows[slot][col % G::BANKS][col / G::BANKS * CF + cfi] = in.read();
        if (cfi == CF - 1) {
            cfi = 0;
            if (col == C::W - 1) {
                col = 0;
                slot++;
            } else {
                col++;
            }
        } else {
            cfi++;
        }
    }

    unsigned next_row = C::KH;  // the next input row to arrive, in slot `slot`
    unsigned top = 0;           // slot of input row oy * SH
    for (unsigned oy = 0; oy < C::OH; oy++) {
        // rows arriving during this output row: SH, or the rows left below the last window
        const unsigned left = C::H - next_row;
        const unsigned reads = (left < unsigned(C::SH) ? left : unsigned(C::SH)) * ROW;
        const unsigned iterations = reads > unsigned(WRITES) ? reads : unsigned(WRITES);
        unsigned cf = 0, kx = 0, ky = 0, ox = 0;   // position of the next output word
        unsigned rcol = 0, rcf = 0, rslot = slot;  // position of the next input word
        for (unsigned i = 0; i < iterations; i++) {
#pragma HLS PIPELINE II=1
#pragma HLS DEPENDENCE variable=rows inter false
            if (i < unsigned(WRITES)) {
                if (C::DW) {  // SIMD channels' whole windows: every (ky, kx) of channel fold cf
                    out_word o = 0;
                    for (unsigned wy = 0; wy < C::KH; wy++) {
#pragma HLS UNROLL
                        unsigned y_slot = top + wy;
                        if (y_slot >= unsigned(NB)) y_slot -= NB;
                        for (unsigned wx = 0; wx < C::KW; wx++) {
#pragma HLS UNROLL
                            const unsigned x = ox * C::SW + wx;
                            const word pixel = rows[y_slot][x % G::BANKS][x / G::BANKS * CF + kept[cf]];
                            for (unsigned s = 0; s < C::SIMD; s++) {
#pragma HLS UNROLL
                                set_lane<typename C::elem_t>(o, (s * C::KH + wy) * C::KW + wx,
                                                             get_lane<typename C::elem_t>(pixel, s));
                            }
                        }
                    }
                    out.write(o);
                } else {
                    unsigned y_slot = top + ky;
                    if (y_slot >= unsigned(NB)) y_slot -= NB;
                    const unsigned x = ox * C::SW + kx;
                    out.write(rows[y_slot][x % G::BANKS][x / G::BANKS * CF + kept[cf]]);
                }
                if (cf == C::KCF - 1) {
                    cf = 0;
                    if (kx == G::KX_STEPS - 1) {
                        kx = 0;
                        if (ky == G::KY_STEPS - 1) {
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
                rows[rslot][rcol % G::BANKS][rcol / G::BANKS * CF + rcf] = in.read();
                if (rcf == CF - 1) {
                    rcf = 0;
                    if (rcol == C::W - 1) {
                        rcol = 0;
                        rslot = (rslot == NB - 1) ? 0 : rslot + 1;
                    } else {
                        rcol++;
                    }
                } else {
                    rcf++;
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
