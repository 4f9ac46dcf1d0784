# The accelerator: ../rtl's qnnflow_top inside the wrapper qnnflow_accel.v (AXI-Stream in0 and out0,
# ap_clk, ap_rst_n), a module reference: no Vitis HLS.  rtl_sources.tcl copies the Verilog with
# absolute $readmemh paths, since synthesis runs in a run directory of its own.
source [file join $here rtl_sources.tcl]
add_files -norecurse -fileset sources_1 [concat $qnnflow_rtl_files [list [file join $here $qnnflow_rtl_wrapper]] \
    $qnnflow_rtl_memory_files]
update_compile_order -fileset sources_1
set accel [create_bd_cell -type module -reference $qnnflow_rtl_module accel]
