// VVAU (hls/nodes/vvau.py, include/vvau.hpp): a depthwise convolution.  For each output pixel and
// each of CH channels, acc[c] = sum_k x[c][k] * W[c][k] over the K window positions, then
// out[c] = ACT_VAL + #{t : acc[c] >= T[c][t]} with thresholds (HAS_ACT), else acc[c].
//
// Input: the depthwise sliding window's stream, a pixel's window elements channel-major ((c, k),
// k fastest), PE*SIMD elements a word: lane p*SIMD + s is position sf*SIMD + s of channel
// cf*PE + p (PE > 1 only with SIMD = K).  Output: PE channels a word, channel cf*PE + p in lane p.
// Each word is used once: one cycle per (channel fold cf, position fold sf), CH*K/(PE*SIMD) a pixel.
//
// WEIGHTS: CF*SF words of PE*SIMD*W_BITS bits, word cf*SF + sf holding, for PE p and lane s, the
// weight of position sf*SIMD + s of channel cf*PE + p at bits [(p*SIMD + s)*W_BITS, ...).
// THRESHOLDS: CF words, word cf the NT slots of channels cf*PE .. cf*PE+PE-1 (qnnflow_activation).
//
// The MVAU's two stages without its vector buffer: A takes the input word and addresses the ROMs,
// B accumulates (qnnflow_dot_sum) and, on the last position fold, writes the output register.
// Everything stalls together while B holds a finished output that the output register cannot take.
module qnnflow_vvau #(
    parameter CH = 1,
    parameter K = 1,
    parameter SIMD = 1,
    parameter PE = 1,
    parameter IN_BITS = 1,
    parameter IN_SIGNED = 0,
    parameter IN_BIPOLAR = 0,
    parameter W_BITS = 1,
    parameter W_SIGNED = 0,
    parameter W_BIPOLAR = 0,
    parameter USE_DSP = 0,
    parameter ACC_BITS = 16,
    parameter OUT_BITS = 16,
    parameter HAS_ACT = 0,
    parameter NT = 1,
    parameter T_BITS = 16,
    parameter ACT_VAL = 0,
    parameter WEIGHTS = "",
    parameter THRESHOLDS = "",
    parameter RAM_STYLE = "auto",  // the weight ROM's (qnnflow_rom STYLE)
    parameter T_RAM_STYLE = "auto"  // the threshold ROM's
) (
    input wire clk,
    input wire rst,
    input wire [PE*SIMD*IN_BITS-1:0] in_data,
    input wire in_valid,
    output wire in_ready,
    output wire [PE*OUT_BITS-1:0] out_data,
    output wire out_valid,
    input wire out_ready
);
    localparam SF = K / SIMD;
    localparam CF = CH / PE;
    localparam WMEM = SF * CF;
    localparam SB = SF > 1 ? $clog2(SF) : 1;
    localparam CB = CF > 1 ? $clog2(CF) : 1;
    localparam WB = WMEM > 1 ? $clog2(WMEM) : 1;
    localparam XW = PE * SIMD * IN_BITS;

    // ----- stage A: input word, ROM addresses
    reg [SB-1:0] sf;
    reg [CB-1:0] cf;
    reg [WB-1:0] tile;
    reg b_valid, b_first, b_last;
    reg [XW-1:0] b_x;
    wire en = !(b_valid && b_last && out_valid && !out_ready);
    wire go = en && in_valid;
    assign in_ready = en;

    always @(posedge clk) begin
        if (rst) begin
            sf <= 0;
            cf <= 0;
            tile <= 0;
            b_valid <= 1'b0;
        end else if (en) begin
            b_valid <= go;
            if (go) begin
                tile <= (tile == WMEM - 1) ? {WB{1'b0}} : tile + 1'b1;
                if (sf == SF - 1) begin
                    sf <= 0;
                    cf <= (cf == CF - 1) ? {CB{1'b0}} : cf + 1'b1;
                end else begin
                    sf <= sf + 1'b1;
                end
            end
        end
        if (en) begin
            b_x <= in_data;
            b_first <= sf == 0;
            b_last <= sf == SF - 1;
        end
    end

    wire [PE*SIMD*W_BITS-1:0] b_w;
    qnnflow_rom #(.WIDTH(PE*SIMD*W_BITS), .DEPTH(WMEM), .INIT(WEIGHTS), .STYLE(RAM_STYLE))
        weights (.clk(clk), .en(en), .addr(tile), .data(b_w));

    // ----- stage B: accumulate, activate
    reg [PE*ACC_BITS-1:0] acc;
    wire [PE*ACC_BITS-1:0] acc_next;
    genvar p;
    generate
        for (p = 0; p < PE; p = p + 1) begin : pe_sum
            qnnflow_dot_sum #(.SIMD(SIMD), .IN_BITS(IN_BITS), .IN_SIGNED(IN_SIGNED), .IN_BIPOLAR(IN_BIPOLAR),
                              .W_BITS(W_BITS), .W_SIGNED(W_SIGNED), .W_BIPOLAR(W_BIPOLAR), .XNOR(0),
                              .USE_DSP(USE_DSP), .ACC_BITS(ACC_BITS))
                dot (.x(b_x[p*SIMD*IN_BITS +: SIMD*IN_BITS]), .w(b_w[p*SIMD*W_BITS +: SIMD*W_BITS]),
                     .acc(acc[p*ACC_BITS +: ACC_BITS]), .first(b_first), .sum(acc_next[p*ACC_BITS +: ACC_BITS]));
        end
    endgenerate
    always @(posedge clk) if (en && b_valid) acc <= acc_next;

    qnnflow_dot_output #(.PE(PE), .ACC_BITS(ACC_BITS), .OUT_BITS(OUT_BITS), .HAS_ACT(HAS_ACT), .NT(NT), .T_BITS(T_BITS),
                         .ACT_VAL(ACT_VAL), .DEPTH(CF), .THRESHOLDS(THRESHOLDS), .RAM_STYLE(T_RAM_STYLE))
        output_stage (.clk(clk), .rst(rst), .en(en), .addr(cf), .values(acc_next), .fire(b_valid && b_last),
                      .out_data(out_data), .out_valid(out_valid), .out_ready(out_ready));
endmodule
