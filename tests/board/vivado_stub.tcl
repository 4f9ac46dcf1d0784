# Runs a generated Vivado script in tclsh with each Vivado command replaced by a stand-in that
# records the call (one Tcl list a line) and returns what the script needs to go on: the board
# part for get_board_parts, a version of the IP asked for, its last argument otherwise.  Tcl's
# own commands (file, open, source, ...) run for real, so the script's own logic is exercised.
# Nothing is synthesised: launch_runs and synth_design stop the script there.
# Usage: tclsh vivado_stub.tcl SCRIPT RECORD BOARD_PART
# Exit 0 when the script reached synthesis, 1 (and the Tcl error) when it failed before.
set script [lindex $argv 0]
set record [open [lindex $argv 1] w]
set board_part [lindex $argv 2]

proc unknown {args} {
    puts $::record [list {*}$args]
    flush $::record
    switch -- [lindex $args 0] {
        get_board_parts { return [list $::board_part] }
        get_ipdefs { return [list "[string trimright [lindex $args end] *]1.0"] }
        launch_runs - synth_design { error "stub: stopped at [lindex $args 0]" }
        default { return [lindex $args end] }
    }
}

if {[catch {source $script} message]} {
    if {[string match "stub: stopped at *" $message]} {
        puts $message
        exit 0
    }
    puts stderr $::errorInfo
    exit 1
}
puts stderr "the script ended without reaching synthesis"
exit 1
