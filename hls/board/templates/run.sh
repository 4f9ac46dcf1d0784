# Usage: bash run.sh [bitstream|ooc]   (default: bitstream)
#   bitstream: the Vivado project through the bitstream (output/qnnflow.bit + .hwh)
#   ooc:       out-of-context synthesis of the accelerator alone (reports only)
# The accelerator is the Vitis HLS IP of ../hls (synthesised first) or the RTL of ../rtl (Vivado
# alone): $tools above are the tools it needs.  Logs go to logs/, reports to reports/.  Each
# finished stage records design.sha256 (the scripts and sources it ran on) in reports/, so
# qnnflow takes only current reports.
set -euo pipefail
cd "$(dirname "$0")"
mode="${1:-bitstream}"
case "$mode" in
    bitstream | ooc) ;;
    *) echo "usage: bash run.sh [bitstream|ooc]" >&2; exit 2 ;;
esac
for tool in $tools; do
    if ! command -v "$tool" >/dev/null; then
        echo "run.sh: $tool is not on PATH; source the settings64.sh of your Vitis/Vivado installation" >&2
        exit 2
    fi
done
mkdir -p logs reports output
{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    for tool in $tools; do
        echo "$tool: $("$tool" -version 2>&1 | grep -m1 -i "${tool%%_*}" || echo unknown)"
    done
} | tee logs/versions.txt

#@accelerator
rm -f "reports/$mode.sha256"
if [ "$mode" = ooc ]; then
    vivado -mode batch -nojournal -source ooc_synth.tcl -log logs/ooc_synth.log
else
    vivado -mode batch -nojournal -source make_project.tcl -log logs/make_project.log
fi
cp design.sha256 "reports/$mode.sha256"
echo "run.sh: $mode done; reports in $(pwd)/reports"
