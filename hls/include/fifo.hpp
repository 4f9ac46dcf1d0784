// Stream FIFO (StreamingFIFO, qnnflow/hls/nodes/fifo.py): the identity on WORDS words of W bits
// per image.  The buffering is the depth of the stream this process writes: the generated top
// function sets it with "#pragma HLS STREAM variable=<out> depth=<depth>".
#ifndef QNNFLOW_FIFO_HPP
#define QNNFLOW_FIFO_HPP

#include "streams.hpp"

namespace qnnflow {

template <int W, unsigned WORDS>
void fifo(hls::stream<ap_uint<W> >& in, hls::stream<ap_uint<W> >& out) {
    for (unsigned i = 0; i < WORDS; i++) {
#pragma HLS PIPELINE II=1
        out.write(in.read());
    }
}

}  // namespace qnnflow

#endif  // QNNFLOW_FIFO_HPP
