if ! cmp -s design.sha256 reports/hls.sha256; then
    rm -f reports/hls.sha256
    vitis_hls -f hls_synth.tcl -l logs/hls_synth.log
    cp hls_project/solution/syn/report/*.xml reports/ 2>/dev/null || true
    cp design.sha256 reports/hls.sha256
fi
