// Fork (DuplicateStreams, hls/nodes/duplicate_streams.py, include/duplicate_streams.hpp): every input
// word written to both outputs.  Each output has a one-word register, so the branches take the word
// independently; a word is read when both registers are free or being emptied.  One word a cycle
// while both branches take theirs; each output stream's FIFO (the fork's outFIFODepths) is in the
// generated wrapper.
module qnnflow_duplicate_streams #(
    parameter WIDTH = 8
) (
    input wire clk,
    input wire rst,
    input wire [WIDTH-1:0] in_data,
    input wire in_valid,
    output wire in_ready,
    output reg [WIDTH-1:0] out_data,
    output reg out_valid,
    input wire out_ready,
    output reg [WIDTH-1:0] out1_data,
    output reg out1_valid,
    input wire out1_ready
);
    assign in_ready = (!out_valid || out_ready) && (!out1_valid || out1_ready);
    wire take = in_valid && in_ready;

    always @(posedge clk) begin
        if (rst) begin
            out_valid <= 1'b0;
            out1_valid <= 1'b0;
        end else begin
            if (take) out_valid <= 1'b1;
            else if (out_ready) out_valid <= 1'b0;
            if (take) out1_valid <= 1'b1;
            else if (out1_ready) out1_valid <= 1'b0;
        end
        if (take) begin
            out_data <= in_data;
            out1_data <= in_data;
        end
    end
endmodule
