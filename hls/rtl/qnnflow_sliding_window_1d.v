// 1-D sliding window unit (ConvolutionInputGenerator1D, hls/nodes/sliding_window_1d.py,
// include/sliding_window_1d.hpp).
//
// In: a row of W pixels of CH channels (a height-1 image), CF = CH/SIMD words per pixel.  Out: for each
// output pixel ox its 1 x KW window at input pixel ox*SW, elements (kx, ch) with ch fastest, KW*CF words.
//
// A ring of NB = KW + SW pixels (NB*CF words, RAM_STYLE).  Reading and writing run independently, as
// in the HLS kernel's loop: input word i is taken once its slot is free (the pixel it overwrites, NB
// earlier, lies before the current window), output word j is issued once its input word has arrived.
// About max(W*CF, OW*KW*CF) + 1 cycles an image; the next image starts when both sides are done.
// Output path as qnnflow_sliding_window's: addresses, the ring's synchronous read, the output register.
module qnnflow_sliding_window_1d #(
    parameter KW = 3,
    parameter CH = 1,
    parameter SIMD = 1,
    parameter BITS = 1,
    parameter W = 3,
    parameter OW = 1,
    parameter SW = 1,
    parameter RAM_STYLE = "auto"
) (
    input wire clk,
    input wire rst,
    input wire [SIMD*BITS-1:0] in_data,
    input wire in_valid,
    output wire in_ready,
    output reg [SIMD*BITS-1:0] out_data,
    output reg out_valid,
    input wire out_ready
);
    localparam CF = CH / SIMD;
    localparam XW = SIMD * BITS;
    localparam RING = (KW + SW) * CF;
    localparam READS = W * CF;
    localparam WRITES = OW * KW * CF;
    localparam WIN = KW * CF;                // words of a window
    localparam AW = RING > 1 ? $clog2(RING) : 1;
    localparam CW = $clog2(READS + WRITES + 2 * RING + (OW + 1) * SW * CF + 1) + 1;

    reg [CW-1:0] read;        // input words read this image
    reg [AW-1:0] wslot;       // ring slot of the next input word
    reg [CW-1:0] written;     // output words issued this image
    reg [CW-1:0] ox;          // output pixel of the next output word
    reg [CW-1:0] limit;       // (ox*SW + NB)*CF: input words allowed before window ox is done
    reg [CW-1:0] widx;        // input word index of the next output word
    reg [CW-1:0] wpos;        // its position within the window
    reg [AW-1:0] raddr;       // its ring slot
    reg [AW-1:0] next_start;  // ring slot of window ox + 1's first word
    wire en;

    assign in_ready = read != READS && (ox == OW || read < limit);
    wire rd_fire = in_valid && in_ready;
    wire issue = en && written != WRITES && widx < read;
    wire image_end = (read == READS || (read == READS - 1 && rd_fire)) &&
                     (written == WRITES || (written == WRITES - 1 && issue));
    wire [AW:0] start_step = next_start + SW * CF % RING;

    always @(posedge clk) begin
        if (rst || image_end) begin
            read <= 0;
            wslot <= 0;
            written <= 0;
            ox <= 0;
            limit <= RING;
            widx <= 0;
            wpos <= 0;
            raddr <= 0;
            next_start <= SW * CF % RING;
        end else begin
            if (rd_fire) begin
                read <= read + 1'b1;
                wslot <= wslot == RING - 1 ? {AW{1'b0}} : wslot + 1'b1;
            end
            if (issue) begin
                written <= written + 1'b1;
                if (wpos == WIN - 1) begin  // the next window
                    wpos <= 0;
                    ox <= ox + 1'b1;
                    limit <= limit + SW * CF;
                    widx <= limit + SW * CF - RING;  // (ox + 1)*SW*CF
                    raddr <= next_start;
                    next_start <= start_step >= RING ? start_step - RING : start_step;
                end else begin
                    wpos <= wpos + 1'b1;
                    widx <= widx + 1'b1;
                    raddr <= raddr == RING - 1 ? {AW{1'b0}} : raddr + 1'b1;
                end
            end
        end
    end

    reg d_valid;
    wire [XW-1:0] rdata;
    assign en = !(d_valid && out_valid && !out_ready);
    qnnflow_sdp_ram #(.WIDTH(XW), .DEPTH(RING), .STYLE(RAM_STYLE)) ring (
        .clk(clk), .we(rd_fire), .waddr(wslot), .wdata(in_data), .re(en), .raddr(raddr), .rdata(rdata));

    always @(posedge clk) begin
        if (rst) d_valid <= 1'b0;
        else if (en) d_valid <= issue;
        if (rst) out_valid <= 1'b0;
        else if (en && d_valid) out_valid <= 1'b1;
        else if (out_ready) out_valid <= 1'b0;
        if (en && d_valid) out_data <= rdata;
    end
endmodule
