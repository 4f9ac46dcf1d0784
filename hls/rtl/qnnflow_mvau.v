// MVAU (hls/nodes/mvau.py, include/mvau.hpp): for each input vector of MW elements, acc[n] =
// sum_k x[k] * W[k][n] for the MH outputs (XNOR: acc[n] = #{k : x[k] == W[k][n]} over bits), then
// out[n] = ACT_VAL + #{t : acc[n] >= T[n][t]} with thresholds (HAS_ACT), else acc[n].
//
// Folding as the HLS kernel: PE outputs in parallel, SIMD inputs a cycle; output n in PE n % PE.
// One cycle per (output fold nf, input fold sf): MW*MH/(SIMD*PE) cycles a vector.  The SF words of
// a vector are read during nf = 0 and kept for the other output folds.
//
// WEIGHTS: MW*MH/(SIMD*PE) words of PE*SIMD*W_BITS bits, word nf*SF + sf holding, for PE p and
// lane s, the weight of input sf*SIMD + s for output nf*PE + p at bits [(p*SIMD + s)*W_BITS, ...).
// THRESHOLDS: MH/PE words, word nf the NT slots of outputs nf*PE .. nf*PE+PE-1 (qnnflow_activation).
// Element encodings as the streams' (qnnflow_dot_sum computes the lanes).
//
// Two stages: A picks the input word (stream or buffer) and addresses the ROMs (synchronous
// reads), B accumulates and, on the last input fold, writes the output register.  Everything
// stalls together while B holds a finished output that the output register cannot take.
module qnnflow_mvau #(
    parameter MW = 2,
    parameter MH = 2,
    parameter SIMD = 1,
    parameter PE = 1,
    parameter IN_BITS = 1,
    parameter IN_SIGNED = 0,
    parameter IN_BIPOLAR = 0,
    parameter W_BITS = 1,
    parameter W_SIGNED = 0,
    parameter W_BIPOLAR = 0,
    parameter XNOR = 0,
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
    input wire [SIMD*IN_BITS-1:0] in_data,
    input wire in_valid,
    output wire in_ready,
    output wire [PE*OUT_BITS-1:0] out_data,
    output wire out_valid,
    input wire out_ready
);
    localparam SF = MW / SIMD;
    localparam NF = MH / PE;
    localparam WMEM = SF * NF;
    localparam SB = SF > 1 ? $clog2(SF) : 1;
    localparam NB = NF > 1 ? $clog2(NF) : 1;
    localparam WB = WMEM > 1 ? $clog2(WMEM) : 1;
    localparam XW = SIMD * IN_BITS;

    // ----- stage A: input word, ROM addresses
    reg [SB-1:0] sf;
    reg [NB-1:0] nf;
    reg [WB-1:0] tile;
    reg b_valid, b_first, b_last;
    reg [XW-1:0] b_x;
    wire en = !(b_valid && b_last && out_valid && !out_ready);
    wire need_in = nf == 0;
    wire go = en && (!need_in || in_valid);
    assign in_ready = en && need_in;

    reg [XW-1:0] vector [0:SF-1];
    wire [XW-1:0] x = need_in ? in_data : vector[sf];
    always @(posedge clk) if (go && need_in) vector[sf] <= in_data;

    always @(posedge clk) begin
        if (rst) begin
            sf <= 0;
            nf <= 0;
            tile <= 0;
            b_valid <= 1'b0;
        end else if (en) begin
            b_valid <= go;
            if (go) begin
                if (sf == SF - 1) begin
                    sf <= 0;
                    nf <= (nf == NF - 1) ? {NB{1'b0}} : nf + 1'b1;
                    tile <= (nf == NF - 1) ? {WB{1'b0}} : tile + 1'b1;
                end else begin
                    sf <= sf + 1'b1;
                    tile <= tile + 1'b1;
                end
            end
        end
        if (en) begin
            b_x <= x;
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
                              .W_BITS(W_BITS), .W_SIGNED(W_SIGNED), .W_BIPOLAR(W_BIPOLAR), .XNOR(XNOR),
                              .USE_DSP(USE_DSP), .ACC_BITS(ACC_BITS))
                dot (.x(b_x), .w(b_w[p*SIMD*W_BITS +: SIMD*W_BITS]), .acc(acc[p*ACC_BITS +: ACC_BITS]),
                     .first(b_first), .sum(acc_next[p*ACC_BITS +: ACC_BITS]));
        end
    endgenerate
    always @(posedge clk) if (en && b_valid) acc <= acc_next;

    qnnflow_dot_output #(.PE(PE), .ACC_BITS(ACC_BITS), .OUT_BITS(OUT_BITS), .HAS_ACT(HAS_ACT), .NT(NT), .T_BITS(T_BITS),
                         .ACT_VAL(ACT_VAL), .DEPTH(NF), .THRESHOLDS(THRESHOLDS), .RAM_STYLE(T_RAM_STYLE))
        output_stage (.clk(clk), .rst(rst), .en(en), .addr(nf), .values(acc_next), .fire(b_valid && b_last),
                      .out_data(out_data), .out_valid(out_valid), .out_ready(out_ready));
endmodule
