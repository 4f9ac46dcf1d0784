# Parse a generated Tcl script without running it: every command must be complete, and the
# first word of each top-level command is printed, one per line, for the test to check.
# Usage: tclsh tcl_check.tcl SCRIPT [header]   ("header": evaluate the `set qnnflow_*` lines and print them)
set path [lindex $argv 0]
set f [open $path]
set text [read $f]
close $f
if {![info complete $text]} {
    puts stderr "$path: incomplete script (unbalanced braces, brackets or quotes)"
    exit 1
}
set cmd ""
foreach line [split $text "\n"] {
    append cmd $line "\n"
    if {![info complete $cmd]} {
        continue
    }
    set trimmed [string trim $cmd]
    set cmd ""
    if {$trimmed eq "" || [string index $trimmed 0] eq "#"} {
        continue
    }
    if {[lindex $argv 1] eq "header"} {
        if {[lindex $trimmed 0] eq "set" && [string match "qnnflow_*" [lindex $trimmed 1]]} {
            eval $trimmed
            puts "[lindex $trimmed 1]\t[set [lindex $trimmed 1]]"
        }
    } else {
        puts [lindex $trimmed 0]
    }
}
if {[string trim $cmd] ne ""} {
    puts stderr "$path: a command is left unfinished at the end"
    exit 1
}
