# Vivado: out-of-context synthesis of the accelerator alone (no block design), for its
# resources and timing before a full bitstream.  Needs hls_synth.tcl to have run.

set here [file dirname [file normalize [info script]]]
set rtl [file join $here hls_project solution impl verilog]
set reports [file join $here reports]
file mkdir $reports
set sources [glob -nocomplain -directory $rtl *.v]
if {[llength $sources] == 0} {
    error "qnnflow: no RTL in $rtl; run hls_synth.tcl first (run.sh does)"
}

create_project -in_memory -part $qnnflow_part
read_verilog $sources
set xdc [file join $here ooc_clock.xdc]
set f [open $xdc w]
puts $f "create_clock -name ap_clk -period $qnnflow_clock_ns \[get_ports ap_clk\]"
close $f
read_xdc -mode out_of_context $xdc
# Memory initialisation files are read relative to the working directory.
cd $rtl
synth_design -top $qnnflow_top -part $qnnflow_part -mode out_of_context
report_utilization -hierarchical -hierarchical_depth 4 -file [file join $reports ooc_utilization_hier.rpt]
report_timing_summary -file [file join $reports ooc_timing_summary.rpt]
