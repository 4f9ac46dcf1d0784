// Stream data-width converter (StreamingDataWidthConverter, qnnflow/hls/nodes/dwc.py):
// IN_WORDS words of IN_W bits -> IN_WORDS*IN_W/OUT_W words of OUT_W bits, the same bits in
// the same order: streams.hpp's repack.
#ifndef QNNFLOW_DWC_HPP
#define QNNFLOW_DWC_HPP

#include "streams.hpp"

namespace qnnflow {

template <int IN_W, int OUT_W, unsigned IN_WORDS>
void dwc(hls::stream<ap_uint<IN_W> >& in, hls::stream<ap_uint<OUT_W> >& out) {
    repack<IN_W, OUT_W, IN_WORDS, (unsigned long long)IN_WORDS * IN_W / OUT_W>(in, out);
}

}  // namespace qnnflow

#endif  // QNNFLOW_DWC_HPP
