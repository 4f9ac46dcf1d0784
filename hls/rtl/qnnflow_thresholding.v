// Thresholding (hls/nodes/thresholding.py, include/thresholding.hpp): PE channels a word and a
// cycle; out = ACT_VAL + #{t : x >= T[c][t]}, x two's complement, unsigned or BIPOLAR (1 = +1, 0 = -1).  THRESHOLDS holds CH/PE words, word cf the NT slots of
// channels cf*PE .. cf*PE+PE-1 (qnnflow_activation's order).  Two stages: the input word and its
// thresholds (a synchronous ROM read) are registered, then the levels go to the output register.
module qnnflow_thresholding #(
    parameter CH = 1,
    parameter PE = 1,
    parameter IN_BITS = 8,
    parameter IN_SIGNED = 1,
    parameter IN_BIPOLAR = 0,
    parameter OUT_BITS = 1,
    parameter NT = 1,
    parameter T_BITS = 9,
    parameter ACT_VAL = 0,
    parameter THRESHOLDS = "",
    parameter RAM_STYLE = "auto"
) (
    input wire clk,
    input wire rst,
    input wire [PE*IN_BITS-1:0] in_data,
    input wire in_valid,
    output wire in_ready,
    output reg [PE*OUT_BITS-1:0] out_data,
    output reg out_valid,
    input wire out_ready
);
    localparam CF = CH / PE;
    localparam CB = CF > 1 ? $clog2(CF) : 1;
    localparam V_BITS = IN_BITS + 1;

    reg [CB-1:0] cf;
    reg b_valid;
    reg [PE*IN_BITS-1:0] b_x;
    wire [PE*NT*T_BITS-1:0] b_t;
    wire en = !(b_valid && out_valid && !out_ready);
    wire go = en && in_valid;
    assign in_ready = en;

    qnnflow_rom #(.WIDTH(PE*NT*T_BITS), .DEPTH(CF), .INIT(THRESHOLDS), .STYLE(RAM_STYLE))
        thresholds (.clk(clk), .en(en), .addr(cf), .data(b_t));

    always @(posedge clk) begin
        if (rst) begin
            cf <= 0;
            b_valid <= 1'b0;
        end else if (en) begin
            b_valid <= go;
            if (go) cf <= (cf == CF - 1) ? {CB{1'b0}} : cf + 1'b1;
        end
        if (en) b_x <= in_data;
    end

    // lanes sign- or zero-extended by one bit; a BIPOLAR bit b is 2b - 1 (01 or 11)
    wire [PE*V_BITS-1:0] values;
    qnnflow_lane #(.LANES(PE), .BITS(IN_BITS), .SIGNED(IN_SIGNED), .BIPOLAR(IN_BIPOLAR), .V_BITS(V_BITS))
        decode (.raw(b_x), .value(values));
    wire [PE*OUT_BITS-1:0] levels;
    qnnflow_activation #(.LANES(PE), .V_BITS(V_BITS), .NT(NT), .T_BITS(T_BITS), .OUT_BITS(OUT_BITS),
                         .ACT_VAL(ACT_VAL))
        activation (.values(values), .thresholds(b_t), .out_data(levels));

    always @(posedge clk) begin
        if (rst) out_valid <= 1'b0;
        else if (en && b_valid) out_valid <= 1'b1;
        else if (out_ready) out_valid <= 1'b0;
        if (en && b_valid) out_data <= levels;
    end
endmodule
