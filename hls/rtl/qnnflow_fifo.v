// Stream FIFO (StreamingFIFO, hls/nodes/fifo.py; also the depth-2 stream after every node of the
// generated top, as the HLS top declares it).  DEPTH words of WIDTH bits, first word always on
// out_data (asynchronous read: shift registers or LUT RAM).  in_ready and out_valid depend on
// registered state only, so a FIFO breaks the combinational ready path between two nodes.
// `count` is the occupancy, for FIFO sizing.
module qnnflow_fifo #(
    parameter WIDTH = 8,
    parameter DEPTH = 2
) (
    input wire clk,
    input wire rst,
    input wire [WIDTH-1:0] in_data,
    input wire in_valid,
    output wire in_ready,
    output wire [WIDTH-1:0] out_data,
    output wire out_valid,
    input wire out_ready,
    output reg [$clog2(DEPTH + 1)-1:0] count
);
    localparam AB = DEPTH > 1 ? $clog2(DEPTH) : 1;
    reg [WIDTH-1:0] mem [0:DEPTH-1];
    reg [AB-1:0] wr, rd;
    wire push = in_valid && in_ready;
    wire pop = out_valid && out_ready;

    assign in_ready = count != DEPTH;
    assign out_valid = count != 0;
    assign out_data = mem[rd];

    always @(posedge clk) begin
        if (push) mem[wr] <= in_data;
    end

    always @(posedge clk) begin
        if (rst) begin
            wr <= 0;
            rd <= 0;
            count <= 0;
        end else begin
            if (push) wr <= (wr == DEPTH - 1) ? {AB{1'b0}} : wr + 1'b1;
            if (pop) rd <= (rd == DEPTH - 1) ? {AB{1'b0}} : rd + 1'b1;
            if (push && !pop) count <= count + 1'b1;
            else if (pop && !push) count <= count - 1'b1;
        end
    end
endmodule
