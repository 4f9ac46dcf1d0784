// ChannelwiseOp (hls/nodes/channelwise.py, include/channelwise.hpp): out[c] = mul[c] * x[c] + add[c],
// PE channels a word and a cycle.  PARAMS holds CH/PE words, word cf the (mul, add) pairs of channels
// cf*PE .. cf*PE+PE-1, lane p's mul at bits [2p*P_BITS, ...) and its add at [(2p+1)*P_BITS, ...),
// signed P_BITS-bit.  The product and sum are formed in ACC_BITS, wide enough for every value they
// take; the output lane is their low OUT_BITS bits (BIPOLAR: 1 when positive).  Two stages as
// qnnflow_thresholding: the input word and its parameters (a synchronous ROM read) are registered,
// then the results go to the output register.
module qnnflow_channelwise #(
    parameter CH = 1,
    parameter PE = 1,
    parameter IN_BITS = 8,
    parameter IN_SIGNED = 1,
    parameter IN_BIPOLAR = 0,
    parameter P_BITS = 8,
    parameter ACC_BITS = 16,
    parameter OUT_BITS = 8,
    parameter OUT_BIPOLAR = 0,
    parameter PARAMS = "",
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

    reg [CB-1:0] cf;
    reg b_valid;
    reg [PE*IN_BITS-1:0] b_x;
    wire [PE*2*P_BITS-1:0] b_p;
    wire en = !(b_valid && out_valid && !out_ready);
    wire go = en && in_valid;
    assign in_ready = en;

    qnnflow_rom #(.WIDTH(PE*2*P_BITS), .DEPTH(CF), .INIT(PARAMS), .STYLE(RAM_STYLE))
        params (.clk(clk), .en(en), .addr(cf), .data(b_p));

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

    // mul * x + add in fabric (shift and add over the multiplier's bits, as the node's cost counts
    // it), modulo 2**ACC_BITS: the result fits, so the wrapped partial sums do not matter.
    function signed [ACC_BITS-1:0] lane_result(input signed [ACC_BITS-1:0] x, input signed [P_BITS-1:0] mul,
                                               input signed [P_BITS-1:0] add);
        reg signed [ACC_BITS-1:0] r;
        integer k;
        begin
            r = add;
            for (k = 0; k < P_BITS - 1; k = k + 1)
                if (mul[k]) r = r + (x <<< k);
            if (mul[P_BITS-1]) r = r - (x <<< (P_BITS - 1));
            lane_result = r;
        end
    endfunction

    wire [PE*ACC_BITS-1:0] x_lanes;  // the input lanes as ACC_BITS-bit values
    qnnflow_lane #(.LANES(PE), .BITS(IN_BITS), .SIGNED(IN_SIGNED), .BIPOLAR(IN_BIPOLAR), .V_BITS(ACC_BITS))
        decode (.raw(b_x), .value(x_lanes));

    reg [PE*OUT_BITS-1:0] results;
    reg signed [ACC_BITS-1:0] r;
    integer i;
    always @* begin
        for (i = 0; i < PE; i = i + 1) begin
            r = lane_result(x_lanes[i*ACC_BITS +: ACC_BITS], b_p[2*i*P_BITS +: P_BITS], b_p[(2*i+1)*P_BITS +: P_BITS]);
            results[i*OUT_BITS +: OUT_BITS] = OUT_BIPOLAR != 0 ? r > 0 : r[OUT_BITS-1:0];
        end
    end

    always @(posedge clk) begin
        if (rst) out_valid <= 1'b0;
        else if (en && b_valid) out_valid <= 1'b1;
        else if (out_ready) out_valid <= 1'b0;
        if (en && b_valid) out_data <= results;
    end
endmodule
