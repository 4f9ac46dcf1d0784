# Vitis HLS: C synthesis of the accelerator, exported as a Vivado IP (ip_catalog).
# The sources are ../hls/ (hls_codegen); the project goes to ./hls_project/.

set here [file dirname [file normalize [info script]]]
set src [file normalize [file join $here .. hls]]
set cflags "-std=c++14 -I$src -I[file join $src include]"

open_project -reset [file join $here hls_project]
set_top $qnnflow_top
add_files [file join $src top.cpp] -cflags $cflags
add_files -tb [file join $src testbench.cpp] -cflags $cflags
open_solution -reset solution -flow_target vivado
set_part $qnnflow_part
create_clock -period $qnnflow_clock_ns -name default

# The stream FIFOs keep the depths the build chose (STREAM pragmas in top.cpp); nothing here
# overrides them.
puts "qnnflow: FIFO depths as built: $qnnflow_fifo_depths"

csynth_design
export_design -format ip_catalog -rtl verilog -vendor $qnnflow_ip_vendor -library $qnnflow_ip_library \
    -version $qnnflow_ip_version -ipname $qnnflow_top -display_name "qnnflow accelerator ($qnnflow_build)"
exit
