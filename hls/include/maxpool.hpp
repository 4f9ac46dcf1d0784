// Streaming max pool (StreamingMaxPool, qnnflow/hls/nodes/maxpool.py): any kernel and stride,
// overlapping windows included, no padding, floor mode.
//
// In: an H x W image of CH channels (NHWC, CH/PE words per pixel).  Out: OH x OW pixels,
// out(oy, ox) = max over the KH x KW window at (oy*SH, ox*SW), lane by lane; for 1-bit
// elements (BINARY, BIPOLAR) the max is an OR.
//
// Running maxima for the NR = ceil(KH/SH) output rows that one input row can touch, each
// OWB x CF words: OWB = OW, or NX when KH = 1 (a 1-D pool: a row's windows close before the next
// row starts, and at most NX = ceil(KW/SW) of them are open at once; window ox uses ox % OWB).
// Every input word updates the (at most NR x NX) windows containing it; the
// window whose last element it is is complete and leaves at once, so outputs stream out in
// order while inputs arrive (one input word per iteration).  Consecutive words of one pixel
// row update the same running maximum when CH/PE = 1 (a read-modify-write dependence that
// Vitis HLS resolves by lengthening the initiation interval when the maxima are in block RAM;
// never declared false; maxpool.py initiation_interval).
//
// C: enum { H, W, CH, PE, KH, KW, SH, SW, OH, OW };  typedef ... elem_t;
#ifndef QNNFLOW_MAXPOOL_HPP
#define QNNFLOW_MAXPOOL_HPP

#include "streams.hpp"

namespace qnnflow {

template <class E, int W>
ap_uint<W> max_lanes(const ap_uint<W>& a, const ap_uint<W>& b) {
#pragma HLS INLINE
    if (E::max_is_or) return a | b;
    ap_uint<W> m = 0;
    for (unsigned i = 0; i < W / E::bits; i++) {
#pragma HLS UNROLL
        typename E::value_t va = get_lane<E>(a, i), vb = get_lane<E>(b, i);
        set_lane<E>(m, i, va > vb ? va : vb);
    }
    return m;
}

// What a pool does with a window (R): the running value's element type acc_t, its start init()
// and add(running, input word), lane by lane; maxpool's is the maximum, sum_pool.hpp's the sum.
template <class E, unsigned PE>
struct MaxReduce {
    typedef E in_t;
    typedef E acc_t;
    static ap_uint<PE * E::bits> init() { return splat<E, PE>(E::lowest()); }
    static ap_uint<PE * E::bits> add(const ap_uint<PE * E::bits>& m, const ap_uint<PE * E::bits>& v) {
#pragma HLS INLINE
        return max_lanes<E>(m, v);
    }
};

// running[NR][OWB][CF]: the caller's memory, partitioned completely on dim 1 and cyclically by NX on
// dim 2 (hls/nodes/maxpool.py memories()).
template <class C, class R>
void pool_windows(hls::stream<ap_uint<C::PE * R::in_t::bits> >& in, hls::stream<ap_uint<C::PE * R::acc_t::bits> >& out,
                  ap_uint<C::PE * R::acc_t::bits> running[(C::KH + C::SH - 1) / C::SH]
                                                         [C::KH == 1 ? (C::KW + C::SW - 1) / C::SW : C::OW][C::CH / C::PE]) {
    typedef ap_uint<C::PE * R::acc_t::bits> word;
    enum { CF = C::CH / C::PE, NR = (C::KH + C::SH - 1) / C::SH, NX = (C::KW + C::SW - 1) / C::SW };
    enum { OWB = C::KH == 1 ? NX : C::OW };
    const word start = R::init();
    for (unsigned r = 0; r < NR; r++)
        for (unsigned ox = 0; ox < OWB; ox++)
            for (unsigned cf = 0; cf < CF; cf++) {
#pragma HLS PIPELINE II=1
                running[r][ox][cf] = start;
            }

    unsigned y = 0, x = 0, cf = 0;
    for (unsigned i = 0; i < unsigned(C::H) * C::W * CF; i++) {
#pragma HLS PIPELINE II=1
        const ap_uint<C::PE * R::in_t::bits> v = in.read();
        const unsigned qy = y / C::SH, qx = x / C::SW;
        for (unsigned dy = 0; dy < NR; dy++) {
#pragma HLS UNROLL
            const unsigned oy = qy - dy;  // candidate output row (wraps when dy > qy: rejected below)
            const bool row_ok = dy <= qy && oy < unsigned(C::OH) && y < oy * C::SH + C::KH;
            for (unsigned dx = 0; dx < NX; dx++) {
#pragma HLS UNROLL
                const unsigned ox = qx - dx;
                const bool ok = row_ok && dx <= qx && ox < unsigned(C::OW) && x < ox * C::SW + C::KW;
                if (ok) {
                    const unsigned r = oy % NR, b = ox % OWB;
                    const word m = R::add(running[r][b][cf], v);
                    if (y == oy * C::SH + C::KH - 1 && x == ox * C::SW + C::KW - 1) {
                        out.write(m);  // the window's last element: complete
                        running[r][b][cf] = start;
                    } else {
                        running[r][b][cf] = m;
                    }
                }
            }
        }
        if (cf == CF - 1) {
            cf = 0;
            if (x == C::W - 1) {
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

template <class C>
void maxpool(hls::stream<ap_uint<C::PE * C::elem_t::bits> >& in, hls::stream<ap_uint<C::PE * C::elem_t::bits> >& out,
             ap_uint<C::PE * C::elem_t::bits> running[(C::KH + C::SH - 1) / C::SH]
                                                     [C::KH == 1 ? (C::KW + C::SW - 1) / C::SW : C::OW][C::CH / C::PE]) {
    pool_windows<C, MaxReduce<typename C::elem_t, C::PE> >(in, out, running);
}

}  // namespace qnnflow

#endif  // QNNFLOW_MAXPOOL_HPP
