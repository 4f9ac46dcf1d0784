# Vivado: the board's block design around the accelerator, synthesis, implementation and the
# bitstream, exported as output/qnnflow.bit + output/qnnflow.hwh (what pynq.Overlay loads).
# The accelerator is the Vitis HLS IP or the RTL of ../rtl; see where the cell 'accel' is made.

set here [file dirname [file normalize [info script]]]
set reports [file join $here reports]
set output [file join $here output]
file mkdir $reports $output

proc latest_ip {vln} {
    # The newest version of an IP in this Vivado's catalog (VLNV versions differ between releases).
    set found [lsort -dictionary [get_ipdefs -all "$vln:*"]]
    if {[llength $found] == 0} {
        error "qnnflow: IP $vln is not in the IP catalog"
    }
    return [lindex $found end]
}

proc check_run {run} {
    if {[get_property PROGRESS [get_runs $run]] ne "100%"} {
        error "qnnflow: run $run failed: [get_property STATUS [get_runs $run]]"
    }
}

create_project -force $qnnflow_project [file join $here vivado_project] -part $qnnflow_part
if {[info exists ::env(QNNFLOW_BOARD_REPO)]} {
    set_param board.repoPaths [list $::env(QNNFLOW_BOARD_REPO)]
}
# The PS preset (DDR, MIO, clocks) comes from the board files: without them the PS would be
# unconfigured, so a missing board part is an error rather than a bitstream that cannot boot.
if {[lsearch -exact [get_board_parts -quiet] $qnnflow_board_part] < 0} {
    error "qnnflow: board part $qnnflow_board_part is not installed; install its board files (Vivado's XHub store, or set QNNFLOW_BOARD_REPO to their directory)"
}
set_property board_part $qnnflow_board_part [current_project]

create_bd_design $qnnflow_project

# The processing system with the board's preset; the fabric clock at the build's frequency.
set ps [create_bd_cell -type ip -vlnv [latest_ip $qnnflow_ps_ip] ps]
apply_bd_automation -rule $qnnflow_ps_preset_rule -config $qnnflow_ps_preset_config $ps
set ps_config [list \
    CONFIG.$qnnflow_clock_config $qnnflow_clock_mhz \
    CONFIG.$qnnflow_master_enable 1 \
    CONFIG.$qnnflow_hp_enable 1 \
    CONFIG.$qnnflow_hp_width_config $qnnflow_hp_width]
foreach {key value} $qnnflow_ps_config {
    lappend ps_config CONFIG.$key $value
}
set_property -dict $ps_config $ps
puts "qnnflow: fabric clock requested $qnnflow_clock_mhz MHz, PS gives [get_property CONFIG.$qnnflow_clock_actual_config $ps] MHz"

# The AXI DMA: MM2S feeds the accelerator, S2MM takes its output; simple mode (no
# scatter-gather), as PYNQ's DMA driver expects.
set dma [create_bd_cell -type ip -vlnv [latest_ip xilinx.com:ip:axi_dma] dma]
set_property -dict [list \
    CONFIG.c_include_sg 0 \
    CONFIG.c_sg_length_width $qnnflow_dma_length_width \
    CONFIG.c_m_axi_mm2s_data_width $qnnflow_hp_width \
    CONFIG.c_m_axis_mm2s_tdata_width $qnnflow_axi_width \
    CONFIG.c_m_axi_s2mm_data_width $qnnflow_hp_width \
    CONFIG.c_s_axis_s2mm_tdata_width $qnnflow_axi_width \
    CONFIG.c_mm2s_burst_size 16 \
    CONFIG.c_s2mm_burst_size 16] $dma

#@accelerator
set ctrl_ic [create_bd_cell -type ip -vlnv [latest_ip xilinx.com:ip:smartconnect] ctrl_ic]
set_property -dict [list CONFIG.NUM_SI 1 CONFIG.NUM_MI 1] $ctrl_ic
set mem_ic [create_bd_cell -type ip -vlnv [latest_ip xilinx.com:ip:smartconnect] mem_ic]
set_property -dict [list CONFIG.NUM_SI 2 CONFIG.NUM_MI 1] $mem_ic
set rst [create_bd_cell -type ip -vlnv [latest_ip xilinx.com:ip:proc_sys_reset] rst]

# Data: DDR -> HP port -> DMA MM2S -> accelerator -> DMA S2MM -> HP port -> DDR.
connect_bd_intf_net [get_bd_intf_pins dma/M_AXIS_MM2S] [get_bd_intf_pins accel/in0]
connect_bd_intf_net [get_bd_intf_pins accel/out0] [get_bd_intf_pins dma/S_AXIS_S2MM]
connect_bd_intf_net [get_bd_intf_pins dma/M_AXI_MM2S] [get_bd_intf_pins mem_ic/S00_AXI]
connect_bd_intf_net [get_bd_intf_pins dma/M_AXI_S2MM] [get_bd_intf_pins mem_ic/S01_AXI]
connect_bd_intf_net [get_bd_intf_pins mem_ic/M00_AXI] [get_bd_intf_pins ps/$qnnflow_hp_port]
# Control: the PS master port -> the DMA's registers.
connect_bd_intf_net [get_bd_intf_pins ps/$qnnflow_master_port] [get_bd_intf_pins ctrl_ic/S00_AXI]
connect_bd_intf_net [get_bd_intf_pins ctrl_ic/M00_AXI] [get_bd_intf_pins dma/S_AXI_LITE]

# One clock, one reset for the whole fabric.
set clock_pins [list ps/$qnnflow_master_clock ps/$qnnflow_hp_clock rst/slowest_sync_clk accel/ap_clk \
    dma/s_axi_lite_aclk dma/m_axi_mm2s_aclk dma/m_axi_s2mm_aclk ctrl_ic/aclk mem_ic/aclk]
foreach pin $clock_pins {
    connect_bd_net [get_bd_pins ps/$qnnflow_clock_port] [get_bd_pins $pin]
}
connect_bd_net [get_bd_pins ps/$qnnflow_reset_port] [get_bd_pins rst/ext_reset_in]
foreach pin {accel/ap_rst_n dma/axi_resetn} {
    connect_bd_net [get_bd_pins rst/peripheral_aresetn] [get_bd_pins $pin]
}
foreach pin {ctrl_ic/aresetn mem_ic/aresetn} {
    connect_bd_net [get_bd_pins rst/interconnect_aresetn] [get_bd_pins $pin]
}

# The DMA's registers at the board's address base; the DMA sees all of DDR.
assign_bd_address -offset $qnnflow_address_base -range 64K \
    -target_address_space [get_bd_addr_spaces ps/Data] [get_bd_addr_segs dma/S_AXI_LITE/Reg]
assign_bd_address

validate_bd_design
save_bd_design
set bd_file [get_files $qnnflow_project.bd]
add_files -norecurse [make_wrapper -files $bd_file -top]
set_property top ${qnnflow_project}_wrapper [current_fileset]

if {[info exists ::env(QNNFLOW_VIVADO_JOBS)]} {
    set qnnflow_jobs $::env(QNNFLOW_VIVADO_JOBS)
}
launch_runs synth_1 -jobs $qnnflow_jobs
wait_on_run synth_1
check_run synth_1
launch_runs impl_1 -to_step write_bitstream -jobs $qnnflow_jobs
wait_on_run impl_1
check_run impl_1

open_run impl_1
report_utilization -hierarchical -hierarchical_depth 6 -file [file join $reports utilization_hier.rpt]
report_timing_summary -file [file join $reports timing_summary.rpt]

# The bitstream and the hardware handoff under one name, as pynq.Overlay wants them.
set run_dir [get_property DIRECTORY [get_runs impl_1]]
file copy -force [file join $run_dir ${qnnflow_project}_wrapper.bit] [file join $output $qnnflow_project.bit]
set hwh [glob -nocomplain [file join $here vivado_project *.gen sources_1 bd $qnnflow_project hw_handoff $qnnflow_project.hwh] \
    [file join $here vivado_project *.srcs sources_1 bd $qnnflow_project hw_handoff $qnnflow_project.hwh]]
if {[llength $hwh] == 0} {
    error "qnnflow: no $qnnflow_project.hwh under [file join $here vivado_project]"
}
file copy -force [lindex $hwh 0] [file join $output $qnnflow_project.hwh]
puts "qnnflow: bitstream [file join $output $qnnflow_project.bit]"
