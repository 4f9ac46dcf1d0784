# The RTL accelerator's sources (../rtl, step rtl_codegen) prepared for Vivado: each Verilog file is
# copied to ./rtl_sources/ with the memory files it reads ($readmemh "mem/...") named by absolute
# path, since Vivado synthesis runs in a directory of its own where the relative paths that
# Verilator and Yosys use (from ../rtl) find nothing.  Sourced by make_project.tcl and
# ooc_synth.tcl; sets qnnflow_rtl_files (the copies) and qnnflow_rtl_memory_files (absolute).

set rtl_dir [file normalize [file join [file dirname [file normalize [info script]]] .. rtl]]
set rtl_copies [file join [file dirname [file normalize [info script]]] rtl_sources]
file delete -force $rtl_copies

set qnnflow_rtl_memory_files {}
set rtl_paths {}
foreach rel $qnnflow_rtl_memories {
    set path [file join $rtl_dir $rel]
    if {![file isfile $path]} {
        error "qnnflow: $path is missing; run the build's rtl_codegen step (OUT/rtl is what the scripts were made for)"
    }
    if {[string first "\"" $path] >= 0 || [string first "\\" $path] >= 0} {
        error "qnnflow: $path cannot be a Verilog string (quote or backslash); copy OUT/ to a plainer path"
    }
    lappend qnnflow_rtl_memory_files $path
    lappend rtl_paths "\"$rel\"" "\"$path\""
}

set qnnflow_rtl_files {}
set rtl_read {}
foreach rel $qnnflow_rtl_verilog {
    set path [file join $rtl_dir $rel]
    if {![file isfile $path]} {
        error "qnnflow: $path is missing; run the build's rtl_codegen step (OUT/rtl is what the scripts were made for)"
    }
    set f [open $path r]
    set text [read $f]
    close $f
    foreach {quoted absolute} $rtl_paths {
        if {[string first $quoted $text] >= 0} {
            lappend rtl_read $quoted
        }
    }
    set copy [file join $rtl_copies $rel]
    file mkdir [file dirname $copy]
    set f [open $copy w]
    puts -nonewline $f [string map $rtl_paths $text]
    close $f
    lappend qnnflow_rtl_files $copy
}
foreach {quoted absolute} $rtl_paths {
    if {[lsearch -exact $rtl_read $quoted] < 0} {
        error "qnnflow: no Verilog file of $rtl_dir reads $quoted; rerun the build's rtl_codegen step"
    }
}
puts "qnnflow: [llength $qnnflow_rtl_files] Verilog files and [llength $qnnflow_rtl_memory_files] memory files from $rtl_dir"
