// One PE's step of a dot product (the MVAU's and the VVAU's lanes): sum = (first ? 0 : acc) +
// sum_s x_s * w_s over the SIMD lanes of x and w (XNOR: + #{s : x_s == w_s}, one bit each; both
// operands BIPOLAR: the same count of agreeing bits, a, as + 2a - SIMD).
// Element encodings as the streams': two's complement when *_SIGNED, BIPOLAR bits 1 = +1, 0 = -1.
// The sum is ACC_BITS-bit two's complement; the callers size ACC_BITS for the range it reaches.
module qnnflow_dot_sum #(
    parameter SIMD = 1,
    parameter IN_BITS = 1,
    parameter IN_SIGNED = 0,
    parameter IN_BIPOLAR = 0,
    parameter W_BITS = 1,
    parameter W_SIGNED = 0,
    parameter W_BIPOLAR = 0,
    parameter XNOR = 0,
    parameter USE_DSP = 0,
    parameter ACC_BITS = 16
) (
    input wire [SIMD*IN_BITS-1:0] x,
    input wire [SIMD*W_BITS-1:0] w,
    input wire [ACC_BITS-1:0] acc,
    input wire first,
    output reg [ACC_BITS-1:0] sum
);
    // the lanes as signed values one bit wider (qnnflow_lane: the streams' element encodings)
    wire [SIMD*(IN_BITS+1)-1:0] x_lanes;
    wire [SIMD*(W_BITS+1)-1:0] w_lanes;
    qnnflow_lane #(.LANES(SIMD), .BITS(IN_BITS), .SIGNED(IN_SIGNED), .BIPOLAR(IN_BIPOLAR), .V_BITS(IN_BITS + 1))
        x_decode (.raw(x), .value(x_lanes));
    qnnflow_lane #(.LANES(SIMD), .BITS(W_BITS), .SIGNED(W_SIGNED), .BIPOLAR(W_BIPOLAR), .V_BITS(W_BITS + 1))
        w_decode (.raw(w), .value(w_lanes));

    // One lane's product: a sign flip for a BIPOLAR operand; else a multiplier for DSP slices
    // (USE_DSP, the node's resType), or shift-and-add in fabric, which synthesis keeps out of DSPs.
    function signed [IN_BITS+W_BITS+1:0] lane_product(input signed [IN_BITS:0] a, input signed [W_BITS:0] b);
        integer k;
        reg signed [IN_BITS+W_BITS+1:0] partial;
        begin
            if (W_BIPOLAR != 0) lane_product = b[W_BITS] ? -a : a;
            else if (IN_BIPOLAR != 0) lane_product = a[IN_BITS] ? -b : b;
            else if (USE_DSP != 0) lane_product = a * b;
            else begin
                partial = 0;
                for (k = 0; k < W_BITS; k = k + 1)
                    if (b[k]) partial = partial + (a <<< k);
                if (b[W_BITS]) partial = partial - (a <<< W_BITS);
                lane_product = partial;
            end
        end
    endfunction

    // +-1 x +-1 is +1 where the bits agree: a popcount, as in XNOR mode, rather than SIMD signed adders
    localparam AGREEMENT = XNOR == 0 && IN_BIPOLAR != 0 && W_BIPOLAR != 0;
    integer s;
    reg signed [ACC_BITS-1:0] total;
    reg [ACC_BITS-1:0] agree;
    always @* begin
        total = first ? {ACC_BITS{1'b0}} : acc;
        agree = {ACC_BITS{1'b0}};
        for (s = 0; s < SIMD; s = s + 1) begin
            if (XNOR != 0) total = total + {x[s] ~^ w[s]};  // one bit: {} is self-determined
            else if (AGREEMENT) agree = agree + {x[s] ~^ w[s]};
            else total = total + lane_product(x_lanes[s*(IN_BITS+1) +: IN_BITS+1], w_lanes[s*(W_BITS+1) +: W_BITS+1]);
        end
        if (AGREEMENT) total = total + (agree << 1) - SIMD;  // modulo 2^ACC_BITS, as the result fits
        sum = total;
    end
endmodule
