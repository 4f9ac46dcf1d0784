// qnnflow HLS kernel library: every kernel.  See streams.hpp for the stream word format.
#ifndef QNNFLOW_HPP
#define QNNFLOW_HPP

#include "streams.hpp"
#include "dwc.hpp"
#include "fifo.hpp"
#include "label_select.hpp"
#include "maxpool.hpp"
#include "mvau.hpp"
#include "padding.hpp"
#include "sliding_window.hpp"
#include "thresholding.hpp"

#endif  // QNNFLOW_HPP
