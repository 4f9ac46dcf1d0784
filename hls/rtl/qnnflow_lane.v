// One stream lane as a signed value of V_BITS bits (the element encodings of base/streams.py):
// two's complement when SIGNED, zero-extended when not, BIPOLAR bit 1 = +1 and 0 = -1.
module qnnflow_lane #(
    parameter BITS = 8,
    parameter SIGNED = 1,
    parameter BIPOLAR = 0,
    parameter V_BITS = 9
) (
    input wire [BITS-1:0] raw,
    output wire [V_BITS-1:0] value
);
    generate
        if (BIPOLAR != 0) begin : bipolar
            assign value = raw[0] ? {{(V_BITS - 1){1'b0}}, 1'b1} : {V_BITS{1'b1}};
        end else if (V_BITS > BITS) begin : extended
            assign value = {{(V_BITS - BITS){SIGNED != 0 && raw[BITS-1]}}, raw};
        end else begin : same
            assign value = raw[V_BITS-1:0];
        end
    endgenerate
endmodule
