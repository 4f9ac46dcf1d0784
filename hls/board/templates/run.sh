# Usage: bash run.sh [bitstream|ooc]   (default: bitstream)
#   bitstream: Vitis HLS, then the Vivado project through the bitstream (output/qnnflow.bit + .hwh)
#   ooc:       Vitis HLS, then out-of-context synthesis of the accelerator alone (reports only)
# Logs go to logs/, reports to reports/.  Each finished stage records design.sha256 (the
# scripts and HLS sources it ran on) in reports/, so qnnflow takes only current reports.
set -euo pipefail
cd "$(dirname "$0")"
mode="${1:-bitstream}"
case "$mode" in
    bitstream | ooc) ;;
    *) echo "usage: bash run.sh [bitstream|ooc]" >&2; exit 2 ;;
esac
for tool in vitis_hls vivado; do
    if ! command -v "$tool" >/dev/null; then
        echo "run.sh: $tool is not on PATH; source the settings64.sh of your Vitis/Vivado installation" >&2
        exit 2
    fi
done
mkdir -p logs reports output
{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "vitis_hls: $(vitis_hls -version 2>&1 | grep -m1 -i 'vitis' || echo unknown)"
    echo "vivado: $(vivado -version 2>&1 | grep -m1 -i 'vivado' || echo unknown)"
} | tee logs/versions.txt

if ! cmp -s design.sha256 reports/hls.sha256; then
    rm -f reports/hls.sha256
    vitis_hls -f hls_synth.tcl -l logs/hls_synth.log
    cp hls_project/solution/syn/report/*.xml reports/ 2>/dev/null || true
    cp design.sha256 reports/hls.sha256
fi
rm -f "reports/$mode.sha256"
if [ "$mode" = ooc ]; then
    vivado -mode batch -nojournal -source ooc_synth.tcl -log logs/ooc_synth.log
else
    vivado -mode batch -nojournal -source make_project.tcl -log logs/make_project.log
fi
cp design.sha256 "reports/$mode.sha256"
echo "run.sh: $mode done; reports in $(pwd)/reports"
