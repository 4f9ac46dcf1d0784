// Stream data-width converter (StreamingDataWidthConverter, qnnflow/hls/nodes/dwc.py):
// IN_WORDS words of IN_W bits -> IN_WORDS*IN_W/OUT_W words of OUT_W bits, the same bits in
// the same order (word 0's bit 0 first).  A shift register of IN_W + OUT_W bits: each
// iteration writes an output word when OUT_W bits are buffered and reads an input word when
// fewer than OUT_W remain, so the loop runs about max(in words, out words) times.
#ifndef QNNFLOW_DWC_HPP
#define QNNFLOW_DWC_HPP

#include "streams.hpp"

namespace qnnflow {

template <int IN_W, int OUT_W, unsigned IN_WORDS>
void dwc(hls::stream<ap_uint<IN_W> >& in, hls::stream<ap_uint<OUT_W> >& out) {
    enum { OUT_WORDS = (unsigned long long)IN_WORDS * IN_W / OUT_W };
    ap_uint<IN_W + OUT_W> buffer = 0;
    unsigned have = 0, reads = 0, writes = 0;
    for (unsigned i = 0; i < unsigned(IN_WORDS) + unsigned(OUT_WORDS); i++) {
#pragma HLS PIPELINE II=1
        if (writes == unsigned(OUT_WORDS)) break;
        if (have >= unsigned(OUT_W)) {
            out.write(ap_uint<OUT_W>(buffer.range(OUT_W - 1, 0)));
            buffer >>= OUT_W;
            have -= OUT_W;
            writes++;
        }
        if (have < unsigned(OUT_W) && reads < IN_WORDS) {
            ap_uint<IN_W + OUT_W> word = in.read();
            buffer |= word << have;
            have += IN_W;
            reads++;
        }
    }
}

}  // namespace qnnflow

#endif  // QNNFLOW_DWC_HPP
