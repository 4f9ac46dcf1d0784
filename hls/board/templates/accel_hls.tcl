# The accelerator: the Vitis HLS IP that hls_synth.tcl exported to hls_project/solution/impl/ip.
set_property ip_repo_paths [list [file join $here hls_project solution impl ip]] [current_project]
update_ip_catalog
set accel [create_bd_cell -type ip -vlnv $qnnflow_ip_vlnv accel]
