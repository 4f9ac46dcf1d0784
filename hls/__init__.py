"""The dataflow node library and its HLS back end."""
