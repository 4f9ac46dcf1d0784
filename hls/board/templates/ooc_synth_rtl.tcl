# Vivado: out-of-context synthesis of the RTL accelerator alone (../rtl's qnnflow_top, no block
# design, no Vitis HLS), for its resources and timing before a full bitstream.

set here [file dirname [file normalize [info script]]]
set reports [file join $here reports]
file mkdir $reports
source [file join $here rtl_sources.tcl]

create_project -in_memory -part $qnnflow_part
read_verilog $qnnflow_rtl_files
set xdc [file join $here ooc_clock.xdc]
set f [open $xdc w]
puts $f "create_clock -name ap_clk -period $qnnflow_clock_ns \[get_ports ap_clk\]"
close $f
read_xdc -mode out_of_context $xdc
synth_design -top $qnnflow_top -part $qnnflow_part -mode out_of_context
report_utilization -hierarchical -hierarchical_depth 4 -file [file join $reports ooc_utilization_hier.rpt]
report_timing_summary -file [file join $reports ooc_timing_summary.rpt]
