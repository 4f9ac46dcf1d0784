// LANES stream lanes, each a signed value of V_BITS bits (the element encodings of base/streams.py):
// two's complement when SIGNED, zero-extended when not, BIPOLAR bit 1 = +1 and 0 = -1.
module qnnflow_lane #(
    parameter LANES = 1,
    parameter BITS = 8,
    parameter SIGNED = 1,
    parameter BIPOLAR = 0,
    parameter V_BITS = 9
) (
    input wire [LANES*BITS-1:0] raw,
    output wire [LANES*V_BITS-1:0] value
);
    genvar g;
    generate
        for (g = 0; g < LANES; g = g + 1) begin : lane
            wire [BITS-1:0] r = raw[g*BITS +: BITS];
            if (BIPOLAR != 0) begin : bipolar
                assign value[g*V_BITS +: V_BITS] = r[0] ? {{(V_BITS - 1){1'b0}}, 1'b1} : {V_BITS{1'b1}};
            end else if (V_BITS > BITS) begin : extended
                assign value[g*V_BITS +: V_BITS] = {{(V_BITS - BITS){SIGNED != 0 && r[BITS-1]}}, r};
            end else begin : same
                assign value[g*V_BITS +: V_BITS] = r[V_BITS-1:0];
            end
        end
    endgenerate
endmodule
