// Nearest-neighbour upsampling (UpsampleNearestNeighbour, hls/nodes/upsample.py,
// include/upsample.hpp): out(y, x) = in(y / SH, x / SW) for an H x W image of CF words a pixel.
//
// The output walk is the kernel's: SH copies of each input row, in each SW copies of each pixel
// (CF words each).  The first copy of a row's first copy of a pixel comes from the input and is
// written to the row memory (W*CF words); every other word is read back from it.  Two stages:
// A takes the input word or addresses the memory (a synchronous read), B is the output register;
// both stall together while B holds a word nobody takes.  One output word a cycle.
module qnnflow_upsample #(
    parameter W = 1,
    parameter CF = 1,
    parameter LANES = 1,
    parameter BITS = 1,
    parameter SH = 1,
    parameter SW = 1
) (
    input wire clk,
    input wire rst,
    input wire [LANES*BITS-1:0] in_data,
    input wire in_valid,
    output wire in_ready,
    output reg [LANES*BITS-1:0] out_data,
    output reg out_valid,
    input wire out_ready
);
    localparam DEPTH = W * CF;
    localparam AB = DEPTH > 1 ? $clog2(DEPTH) : 1;
    localparam CB = $clog2(CF + 1);
    localparam RB = $clog2((SH > SW ? SH : SW) + 1);

    reg [RB-1:0] ry, rx;  // copy of the row, copy of the pixel
    reg [AB-1:0] pixel;   // x * CF, the row memory address of the pixel's first word
    reg [CB-1:0] cf;
    wire [AB-1:0] addr = pixel + cf;
    wire fresh = ry == 0 && rx == 0;

    reg b_valid, b_fresh;
    reg [LANES*BITS-1:0] b_x, b_row;
    wire en = !(b_valid && out_valid && !out_ready);
    wire go = en && (!fresh || in_valid);
    assign in_ready = en && fresh;

    reg [LANES*BITS-1:0] row [0:DEPTH-1];
    always @(posedge clk) begin
        if (go && fresh) row[addr] <= in_data;
        if (en) b_row <= row[addr];  // a word is read at least one cycle after it was written
    end

    always @(posedge clk) begin
        if (rst) begin
            ry <= 0;
            rx <= 0;
            pixel <= 0;
            cf <= 0;
            b_valid <= 1'b0;
        end else if (en) begin
            b_valid <= go;
            if (go) begin
                if (cf != CF - 1) begin
                    cf <= cf + 1'b1;
                end else begin
                    cf <= 0;
                    if (rx != SW - 1) begin
                        rx <= rx + 1'b1;
                    end else begin
                        rx <= 0;
                        if (pixel != DEPTH - CF) begin
                            pixel <= pixel + CF;
                        end else begin
                            pixel <= 0;
                            ry <= (ry == SH - 1) ? {RB{1'b0}} : ry + 1'b1;
                        end
                    end
                end
            end
        end
        if (go) begin
            b_fresh <= fresh;
            b_x <= in_data;
        end
    end

    always @(posedge clk) begin
        if (rst) out_valid <= 1'b0;
        else if (en && b_valid) out_valid <= 1'b1;
        else if (out_ready) out_valid <= 1'b0;
        if (en && b_valid) out_data <= b_fresh ? b_x : b_row;
    end
endmodule
