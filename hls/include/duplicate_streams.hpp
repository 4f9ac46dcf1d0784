// Fork (DuplicateStreams, qnnflow/hls/nodes/duplicate_streams.py): every word of one image read
// once and written to both output streams.  The depth of each output stream (how many words a
// branch may fall behind the other) is the top function's STREAM pragma.
//
// C: enum { WORDS, PE };  typedef ... elem_t;
#ifndef QNNFLOW_DUPLICATE_STREAMS_HPP
#define QNNFLOW_DUPLICATE_STREAMS_HPP

#include "streams.hpp"

namespace qnnflow {

template <class C>
void duplicate_streams(hls::stream<ap_uint<C::PE * C::elem_t::bits> >& in,
                       hls::stream<ap_uint<C::PE * C::elem_t::bits> >& out0,
                       hls::stream<ap_uint<C::PE * C::elem_t::bits> >& out1) {
    for (unsigned i = 0; i < C::WORDS; i++) {
#pragma HLS PIPELINE II=1
        const ap_uint<C::PE * C::elem_t::bits> word = in.read();
        out0.write(word);
        out1.write(word);
    }
}

}  // namespace qnnflow

#endif  // QNNFLOW_DUPLICATE_STREAMS_HPP
