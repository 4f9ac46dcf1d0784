// Channel concat (StreamingConcat, hls/nodes/streaming_concat.py, include/streaming_concat.hpp): per
// pixel, WORDS0 words of input 0 then WORDS1 words of input 1, each lane re-encoded as the output type
// (two's complement of OUT_BITS, or BIPOLAR when both inputs are), into the output register.  Only
// the input whose turn it is is ready: one word a cycle.
module qnnflow_streaming_concat #(
    parameter PE = 1,
    parameter WORDS0 = 1,
    parameter WORDS1 = 1,
    parameter IN0_BITS = 8,
    parameter IN0_SIGNED = 1,
    parameter IN0_BIPOLAR = 0,
    parameter IN1_BITS = 8,
    parameter IN1_SIGNED = 1,
    parameter IN1_BIPOLAR = 0,
    parameter OUT_BITS = 8,
    parameter OUT_BIPOLAR = 0
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
    localparam WORDS = WORDS0 + WORDS1;
    localparam WB = $clog2(WORDS + 1);
    localparam V_BITS = OUT_BITS + 1;
    reg [WB-1:0] word;  // of the pixel's WORDS
    wire first = word < WORDS0;
    wire en = !out_valid || out_ready;
    assign in_ready = en && first;
    assign in1_ready = en && !first;
    wire take = first ? in_valid && in_ready : in1_valid && in1_ready;

    wire [PE*OUT_BITS-1:0] recoded0, recoded1;
    genvar p;
    generate
        for (p = 0; p < PE; p = p + 1) begin : lane
            wire [V_BITS-1:0] x, y;
            qnnflow_lane #(.BITS(IN0_BITS), .SIGNED(IN0_SIGNED), .BIPOLAR(IN0_BIPOLAR), .V_BITS(V_BITS))
                decode0 (.raw(in_data[p*IN0_BITS +: IN0_BITS]), .value(x));
            qnnflow_lane #(.BITS(IN1_BITS), .SIGNED(IN1_SIGNED), .BIPOLAR(IN1_BIPOLAR), .V_BITS(V_BITS))
                decode1 (.raw(in1_data[p*IN1_BITS +: IN1_BITS]), .value(y));
            if (OUT_BIPOLAR != 0) begin : bipolar  // 1 = +1
                assign recoded0[p] = !x[V_BITS-1];
                assign recoded1[p] = !y[V_BITS-1];
            end else begin : twos
                assign recoded0[p*OUT_BITS +: OUT_BITS] = x[OUT_BITS-1:0];
                assign recoded1[p*OUT_BITS +: OUT_BITS] = y[OUT_BITS-1:0];
            end
        end
    endgenerate

    always @(posedge clk) begin
        if (rst) begin
            word <= 0;
            out_valid <= 1'b0;
        end else begin
            if (take) word <= (word == WORDS - 1) ? {WB{1'b0}} : word + 1'b1;
            if (take) out_valid <= 1'b1;
            else if (out_ready) out_valid <= 1'b0;
        end
        if (take) out_data <= first ? recoded0 : recoded1;
    end
endmodule
