// Join (AddStreams, hls/nodes/add_streams.py, include/add_streams.hpp): out = in0 + in1, PE lanes a
// word.  Each input has a one-word register of its own, so an input's ready depends on registered
// state and the output's ready only (never on the other input's valid), and a branch that is late
// shows as that input starving.  The sum of both registers goes to the output register: one word a
// cycle, two cycles of latency.  Lanes are decoded by qnnflow_lane; OUT_BITS holds every sum (the node
// checks it), its low bits are the output lane.
module qnnflow_add_streams #(
    parameter PE = 1,
    parameter IN0_BITS = 8,
    parameter IN0_SIGNED = 1,
    parameter IN0_BIPOLAR = 0,
    parameter IN1_BITS = 8,
    parameter IN1_SIGNED = 1,
    parameter IN1_BIPOLAR = 0,
    parameter OUT_BITS = 9
) (
    input wire clk,
    input wire rst,
    input wire [PE*IN0_BITS-1:0] in_data,
    input wire in_valid,
    output wire in_ready,
    input wire [PE*IN1_BITS-1:0] in1_data,
    input wire in1_valid,
    output wire in1_ready,
    output reg [PE*OUT_BITS-1:0] out_data,
    output reg out_valid,
    input wire out_ready
);
    // wide enough for either input and every sum
    localparam V_BITS = (IN0_BITS > IN1_BITS ? (IN0_BITS > OUT_BITS ? IN0_BITS : OUT_BITS)
                                             : (IN1_BITS > OUT_BITS ? IN1_BITS : OUT_BITS)) + 2;
    reg [PE*IN0_BITS-1:0] a;
    reg [PE*IN1_BITS-1:0] b;
    reg a_valid, b_valid;
    wire add = a_valid && b_valid && (!out_valid || out_ready);
    assign in_ready = !a_valid || add;
    assign in1_ready = !b_valid || add;

    wire [PE*OUT_BITS-1:0] sums;
    genvar p;
    generate
        for (p = 0; p < PE; p = p + 1) begin : lane
            wire [V_BITS-1:0] x, y;
            qnnflow_lane #(.BITS(IN0_BITS), .SIGNED(IN0_SIGNED), .BIPOLAR(IN0_BIPOLAR), .V_BITS(V_BITS))
                decode0 (.raw(a[p*IN0_BITS +: IN0_BITS]), .value(x));
            qnnflow_lane #(.BITS(IN1_BITS), .SIGNED(IN1_SIGNED), .BIPOLAR(IN1_BIPOLAR), .V_BITS(V_BITS))
                decode1 (.raw(b[p*IN1_BITS +: IN1_BITS]), .value(y));
            wire [V_BITS-1:0] sum = x + y;
            assign sums[p*OUT_BITS +: OUT_BITS] = sum[OUT_BITS-1:0];
        end
    endgenerate

    always @(posedge clk) begin
        if (rst) begin
            a_valid <= 1'b0;
            b_valid <= 1'b0;
            out_valid <= 1'b0;
        end else begin
            if (in_valid && in_ready) a_valid <= 1'b1;
            else if (add) a_valid <= 1'b0;
            if (in1_valid && in1_ready) b_valid <= 1'b1;
            else if (add) b_valid <= 1'b0;
            if (add) out_valid <= 1'b1;
            else if (out_ready) out_valid <= 1'b0;
        end
        if (in_valid && in_ready) a <= in_data;
        if (in1_valid && in1_ready) b <= in1_data;
        if (add) out_data <= sums;
    end
endmodule
