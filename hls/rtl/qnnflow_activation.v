// Multi-threshold activation of LANES values at once (thresholding and the MVAU's activation):
// lane i of out_data = ACT_VAL + #{t : value_i >= threshold_i,t}.  Values are V_BITS-bit two's
// complement (callers sign- or zero-extend), thresholds NT signed T_BITS-bit slots per lane,
// lane i's slot t at bits [(i*NT + t)*T_BITS, ...) of thresholds.
module qnnflow_activation #(
    parameter LANES = 1,
    parameter V_BITS = 8,
    parameter NT = 1,
    parameter T_BITS = 8,
    parameter OUT_BITS = 1,
    parameter ACT_VAL = 0
) (
    input wire [LANES*V_BITS-1:0] values,
    input wire [LANES*NT*T_BITS-1:0] thresholds,
    output reg [LANES*OUT_BITS-1:0] out_data
);
    integer i, t;
    reg signed [V_BITS-1:0] v;
    reg signed [T_BITS-1:0] thr;
    reg signed [31:0] level;
    always @* begin
        out_data = {LANES*OUT_BITS{1'b0}};
        for (i = 0; i < LANES; i = i + 1) begin
            v = values[i*V_BITS +: V_BITS];
            level = ACT_VAL;
            for (t = 0; t < NT; t = t + 1) begin
                thr = thresholds[(i*NT + t)*T_BITS +: T_BITS];
                if (v >= thr) level = level + 1;
            end
            out_data[i*OUT_BITS +: OUT_BITS] = level[OUT_BITS-1:0];
        end
    end
endmodule
