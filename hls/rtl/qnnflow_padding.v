// Padding of an NHWC image stream: FMPadding (hls/nodes/padding.py, include/padding.hpp) and
// FMPaddingPixel (hls/nodes/pixel_padding.py, include/pixel_padding.hpp) in one walk.
//
// In: H x W pixels of CF words of LANES elements.  Out: OH x OW pixels, OH = TOP + (H-1)*SH + 1 +
// BOTTOM (OW likewise): input pixel (y, x) lands at (TOP + y*SH, LEFT + x*SW), every other pixel is
// PAD_CODE (one element's code) in every lane.  FMPadding is SH = SW = 1; FMPaddingPixel is no
// border and PAD_CODE 0.  One output word a cycle; an input word is read when its pixel is written.
// The output register is the only stage: in_ready follows out_ready within the cycle.
module qnnflow_padding #(
    parameter H = 1,
    parameter W = 1,
    parameter CF = 1,
    parameter LANES = 1,
    parameter BITS = 1,
    parameter TOP = 0,
    parameter LEFT = 0,
    parameter BOTTOM = 0,
    parameter RIGHT = 0,
    parameter SH = 1,
    parameter SW = 1,
    parameter [63:0] PAD_CODE = 0
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
    localparam OH = TOP + (H - 1) * SH + 1 + BOTTOM;
    localparam OW = LEFT + (W - 1) * SW + 1 + RIGHT;
    localparam YB = $clog2(OH + 1);
    localparam XB = $clog2(OW + 1);
    localparam CB = $clog2(CF + 1);
    localparam RB = $clog2((SH > SW ? SH : SW) + 1);
    // (row - TOP) mod SH and (column - LEFT) mod SW at row and column 0
    localparam RY0 = (SH - TOP % SH) % SH;
    localparam RX0 = (SW - LEFT % SW) % SW;

    reg [YB-1:0] y;
    reg [XB-1:0] x;
    reg [CB-1:0] cf;
    reg [RB-1:0] ry, rx;

    wire from_input = y >= TOP && y <= TOP + (H - 1) * SH && ry == 0 &&
                  x >= LEFT && x <= LEFT + (W - 1) * SW && rx == 0;
    wire en = !out_valid || out_ready;  // the output register is free this cycle
    wire go = en && (!from_input || in_valid);
    assign in_ready = en && from_input;

    always @(posedge clk) begin
        if (rst) begin
            y <= 0;
            x <= 0;
            cf <= 0;
            ry <= RY0;
            rx <= RX0;
            out_valid <= 1'b0;
        end else begin
            if (en) out_valid <= go;
            if (go) begin
                if (cf != CF - 1) begin
                    cf <= cf + 1'b1;
                end else begin
                    cf <= 0;
                    if (x != OW - 1) begin
                        x <= x + 1'b1;
                        rx <= (rx == SW - 1) ? {RB{1'b0}} : rx + 1'b1;
                    end else begin
                        x <= 0;
                        rx <= RX0;
                        if (y != OH - 1) begin
                            y <= y + 1'b1;
                            ry <= (ry == SH - 1) ? {RB{1'b0}} : ry + 1'b1;
                        end else begin
                            y <= 0;
                            ry <= RY0;
                        end
                    end
                end
            end
        end
        if (go) out_data <= from_input ? in_data : {LANES{PAD_CODE[BITS-1:0]}};
    end
endmodule
